"""What a run shows its user while it trains: a header, one progress bar for the running epoch
(on a terminal), one line per epoch, and the files that follow the run live: ``curves.png``
and TensorBoard events.

Rank 0 sends its progress to the driver through a :class:`ProgressChannel` (a Ray queue, so
it works the same on one laptop and across the nodes of a cluster). The driver's
:class:`RunMonitor` thread reads it while ``trainer.fit()`` blocks, prints, and rewrites
``RUN_DIR/curves.png`` and ``RUN_DIR/tensorboard/`` after every epoch. Everything Ray itself
logs below a warning stays out of the console unless ``--verbose``
(:func:`ray_logging_options`); warnings and errors always show.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pauc_ray.storage import resolve

logger = logging.getLogger(__name__)

STEP_INTERVAL_S = 0.5  # rank 0 sends at most two step updates a second
QUIET_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.serve")


def ray_logging_options(verbose: bool) -> dict[str, Any]:
    """``ray.init`` keyword arguments: Ray's own INFO lines (cluster start, Ray Data's plans,
    Ray Train's per-report lines) only with ``verbose``. Also sets the driver's Ray loggers."""
    import ray
    import ray.data

    level = "INFO" if verbose else "WARNING"
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return {"logging_level": level, "logging_config": ray.LoggingConfig(log_level=level)}


def train_logging_config(verbose: bool):
    """Ray Train's ``RunConfig(logging_config=...)``: its controller and worker lines below a
    warning (``Reporting training result ...``, checkpoint uploads) only with ``verbose``."""
    import ray.train

    return ray.train.LoggingConfig(log_level="INFO" if verbose else "WARNING")


class ProgressChannel:
    """Rank 0 to the driver: throttled step updates and each finished epoch's metrics.

    A :class:`ray.util.queue.Queue` actor at zero CPUs (it never competes with the workers);
    the worker side never blocks: an update that does not fit is dropped (the next one says
    more), an epoch's metrics wait for room a few seconds at most.
    """

    def __init__(self, maxsize: int = 256) -> None:
        from ray.util.queue import Queue

        self._queue = Queue(maxsize=maxsize, actor_options={"num_cpus": 0})
        self._last_step = 0.0

    # -- worker side (rank 0) -------------------------------------------------------------
    def step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        if step < steps and now - self._last_step < STEP_INTERVAL_S:
            return
        self._last_step = now
        self._put(("step", epoch, step, steps, loss), timeout=None)

    def epoch(self, metrics: dict[str, Any]) -> None:
        self._put(("epoch", metrics), timeout=5.0)

    def _put(self, item: tuple, timeout: float | None) -> None:
        from ray.util.queue import Full

        try:
            if timeout is None:
                self._queue.put_nowait(item)
            else:
                self._queue.put(item, timeout=timeout)
        except Full:
            pass
        except Exception as exc:  # the driver is gone or the actor died: training goes on
            logger.debug("progress not sent: %s", exc)

    # -- driver side ----------------------------------------------------------------------
    def get(self, timeout: float) -> tuple | None:
        from ray.util.queue import Empty

        try:
            return self._queue.get(timeout=timeout)
        except Empty:
            return None

    def shutdown(self) -> None:
        self._queue.shutdown(force=True)

    def __getstate__(self) -> dict:  # travels to the workers with the loop config
        return {"_queue": self._queue, "_last_step": 0.0}


def format_epoch(metrics: dict[str, Any], epochs: int) -> str:
    """One line per epoch: the loss and its terms, kNN beside its baselines when evaluated,
    NEMD, throughput and time."""
    parts = [f"epoch {metrics['epoch']:>{len(str(epochs))}}/{epochs}"]
    terms = [
        f"{name.removeprefix('loss_')} {value:.3f}"
        for name, value in metrics.items()
        if name.startswith("loss_") and name != "loss_total" and value
    ]
    parts.append(
        f"loss {metrics.get('loss_total', math.nan):.3f}"
        + (f" ({', '.join(terms)})" if terms else "")
    )
    if metrics.get("warmup") and metrics.get("loss_proto_nce") == 0:
        parts[-1] += " warm-up"
    if metrics.get("knn_top1") is not None:
        knn = f"kNN {metrics['knn_top1']:.2f} %"
        raw, initial = metrics.get("raw_knn_top1"), metrics.get("random_init_knn_top1")
        if raw is not None and initial is not None:
            knn += f" (raw {raw:.2f}, random init {initial:.2f})"
        parts.append(knn)
    if metrics.get("nemd") is not None:
        parts.append(f"NEMD {metrics['nemd']:.3f}/{metrics.get('nemd_nn', math.nan):.3f} nn")
    if metrics.get("skipped_steps"):
        parts.append(f"{metrics['skipped_steps']:.0f} fp16 step(s) skipped (overflow)")
    if "resumed_from_epoch" in metrics:
        parts.append(
            f"resumed from epoch {metrics['resumed_from_epoch']} with "
            f"{metrics.get('world_size', '?')} worker(s), "
            f"{metrics['epochs_repeated']} epoch(s) repeated"
        )
    parts.append(f"{metrics.get('samples_per_second', 0):,.0f} samples/s")
    parts.append(f"{metrics.get('epoch_seconds', 0):.0f} s")
    return "  ".join(parts)


class RunMonitor:
    """The driver's view of a running run (a thread while ``trainer.fit()`` blocks).

    Args:
        channel: where rank 0's updates arrive; None: only the files are followed at the end.
        run_dir: where ``curves.png`` and ``tensorboard/`` go: a local folder or a URI. On an
            object store TensorBoard writes to a local staging folder first, uploaded after
            each epoch (its writer appends to a file, which object stores cannot).
        epochs: the run's epochs (for ``epoch N/E``).
        console: print one line per epoch, and the progress bar when ``bar_stream`` is a
            terminal.
        stream: where the epoch lines go (stdout by default).
        bar_stream: where the progress bar goes (stderr by default, as tqdm's).
        on_epoch: called with each epoch's metrics after the files are written (tests, Tune).
    """

    def __init__(
        self,
        channel: ProgressChannel | None,
        run_dir: str | Path,
        epochs: int,
        console: bool = True,
        stream: IO[str] | None = None,
        bar_stream: IO[str] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        self.channel = channel
        self.run = resolve(run_dir)
        self._staging: tempfile.TemporaryDirectory | None = None
        self.epochs = epochs
        self.console = console
        self.stream = stream or sys.stdout
        self.bar_stream = bar_stream or sys.stderr
        self.on_epoch = on_epoch
        self.history = {int(h["epoch"]): h for h in history or []}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None
        self._writer = None

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> RunMonitor:
        if self.channel is not None:
            self._thread = threading.Thread(target=self._run, name="run-monitor", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._close_bar()
        if self._writer is not None:
            self._writer.close()
            self._upload_tensorboard()
        if self._staging is not None:
            self._staging.cleanup()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.channel.get(timeout=0.5)
            if item is not None:
                self.handle(item)
        while (item := self.channel.get(timeout=0.1)) is not None:  # what came in last
            self.handle(item)

    # -- updates ------------------------------------------------------------------------------
    def handle(self, item: tuple) -> None:
        try:
            if item[0] == "step":
                self._step(*item[1:])
            elif item[0] == "epoch":
                self._epoch(item[1])
        except Exception:  # a picture or an event file must never stop the run
            logger.exception("run monitor: could not handle %s", item[0])

    def _step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if not (self.console and self.bar_stream.isatty()):
            return
        from tqdm import tqdm

        if self._bar is None or self._bar.desc != f"epoch {epoch}/{self.epochs}":
            self._close_bar()
            self._bar = tqdm(
                total=steps, desc=f"epoch {epoch}/{self.epochs}", file=self.bar_stream, leave=False
            )
        self._bar.n = step
        self._bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        self._bar.refresh()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _epoch(self, metrics: dict[str, Any]) -> None:
        self._close_bar()
        self.history[int(metrics["epoch"])] = metrics
        if self.console:
            print(format_epoch(metrics, self.epochs), file=self.stream, flush=True)
        history = [self.history[e] for e in sorted(self.history)]
        from pauc_ray.evaluation.plots import plot_training_curves

        curves = self.run / "curves.png"
        if curves.is_local:
            plot_training_curves(history, curves.path, title=self.run.name)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                plot_training_curves(history, Path(tmp) / curves.name, title=self.run.name)
                curves.write_bytes((Path(tmp) / curves.name).read_bytes())
        self._tensorboard(metrics)
        if self.on_epoch is not None:
            self.on_epoch(metrics)

    def _tensorboard(self, metrics: dict[str, Any]) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = self.run / "tensorboard"
            if not log_dir.is_local:
                self._staging = tempfile.TemporaryDirectory(prefix="pauc-tensorboard-")
                log_dir = resolve(self._staging.name)
            self._writer = SummaryWriter(log_dir=log_dir.path)
        step = int(metrics["epoch"])
        for name, value in metrics.items():
            if name == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            self._writer.add_scalar(_tag(name), value, step)
        self._writer.flush()
        self._upload_tensorboard()

    def _upload_tensorboard(self) -> None:
        if self._staging is not None:
            (self.run / "tensorboard").upload(self._staging.name)


def _tag(name: str) -> str:
    """TensorBoard groups scalars by the part before ``/``."""
    for prefix, group in (("loss_", "loss"), ("grad_norm_", "grad_norm")):
        if name.startswith(prefix):
            return f"{group}/{name.removeprefix(prefix)}"
    if "knn" in name or name.startswith("nemd"):
        return f"eval/{name}"
    return f"train/{name}"
