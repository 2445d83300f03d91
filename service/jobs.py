"""NEMD jobs: queued, run in a thread pool off the event loop, kept for a while for polling.

A job goes ``queued -> running -> done | failed | cancelled``. The pool has ``nemd_workers``
threads;
embedding, faiss k-means and the Sinkhorn solver spend their time in native code that releases
the GIL, so ``/embed`` stays responsive while a job runs. At most ``nemd_max_pending`` jobs
are queued or running (``POST /nemd`` answers 429 beyond that) and the last
``nemd_keep_jobs`` finished ones are kept. Jobs live in memory: a restart forgets them.

**Several processes.** A server of several processes (uvicorn ``--workers N``, Serve replicas)
hands each request to any one of them, so a job posted to one process may be polled on
another. With ``shared_dir`` (``--nemd-jobs-dir``) a job is still run by the process that took
it, which also writes the job's state to ``DIR/ID.json`` (and its figure to ``DIR/ID.png``)
whenever it changes, atomically (write, then rename); every process answers ``GET`` from there
for jobs it does not run. ``DELETE`` from another process leaves ``DIR/ID.cancel``, which the
running process's check sees at the next stage boundary. ``nemd_max_pending`` and
``nemd_keep_jobs`` count the jobs of all processes, under a lock file. A job whose process died
before finishing (its record names host and pid) reads as failed. Hand-written because the
state of a job is a few small files that one machine's processes share; across nodes the
folder must be on a shared filesystem, where the lock and the liveness check, both per host,
are best effort.

A job stops early, and says so in ``error``, when it is cancelled (``DELETE /nemd/{id}``) or runs
past ``nemd_time_limit_s``: its work calls :meth:`NemdJob.check` between stages (each chunk of
the embedding, the clustering, each clustering's NEMD), so it stops at the next stage boundary;
a stage in native code (one faiss k-means call, one clustering's Sinkhorn) runs to its end, which
the up-front cost limits of ``POST /nemd`` keep short.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.errors import ApiError
from service.metrics import ServiceMetrics

__all__ = ["JOB_ID_PATTERN", "JobStore", "NemdJob"]

logger = logging.getLogger(__name__)

JOB_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)

# What a job runs: called with the job's check (raises JobStopped when the job must stop);
# returns (result dict, plot PNG bytes).
Work = Callable[[Callable[[], None]], tuple[dict[str, Any], bytes]]


class JobStopped(Exception):
    """Raised inside a job's work by :meth:`NemdJob.check`: cancelled or out of time."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass
class NemdJob:
    """One NEMD job; ``status`` and the results are written by its worker thread."""

    id: str
    model: str
    source: dict[str, Any]
    settings: dict[str, Any]
    status: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    plot_png: bytes | None = field(default=None, repr=False)
    time_limit_s: float | None = None
    # the process that runs it ({"host", "pid"}), for jobs shared between processes
    owner: dict[str, Any] | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    # another process asks this job to stop by creating this file (shared stores)
    cancel_file: Path | None = field(default=None, repr=False)

    def check(self) -> None:
        """Raises :class:`JobStopped` when the job was cancelled or is past its time limit."""
        if self.cancel_requested.is_set() or (
            self.cancel_file is not None and self.cancel_file.exists()
        ):
            raise JobStopped(CANCELLED, "cancelled by DELETE /nemd/{id}")
        if (
            self.time_limit_s is not None
            and self.started is not None
            and time.time() - self.started > self.time_limit_s
        ):
            raise JobStopped(
                FAILED,
                f"stopped after {time.time() - self.started:.1f} s: past the time limit of "
                f"{self.time_limit_s:g} s (--nemd-time-limit-s)",
            )

    def view(self) -> dict[str, Any]:
        """The body of ``GET /nemd/{id}``."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "model": self.model,
            "source": self.source,
            "settings": self.settings,
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "seconds": None
            if self.started is None or self.finished is None
            else round(self.finished - self.started, 3),
            "error": self.error,
        }
        if self.status == DONE and self.result is not None:
            out.update(self.result)
            out["plot"] = f"/nemd/{self.id}/plot.png"
        return out


# the fields of a job's record in a shared folder (its state; not the figure, not the events)
_RECORD_FIELDS = (
    "id",
    "model",
    "source",
    "settings",
    "status",
    "created",
    "started",
    "finished",
    "error",
    "result",
    "time_limit_s",
    "owner",
)
HOST = socket.gethostname()


def _alive(owner: dict[str, Any] | None) -> bool:
    """Whether the process that runs a job is alive (unknowable on another host: assumed)."""
    if not owner or owner.get("host") != HOST:
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, KeyError, TypeError):
        return True
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a part (write, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class JobStore:
    """The jobs of one app and the pool that runs them; with ``shared_dir``, also the jobs of
    the server's other processes (the module's docstring)."""

    def __init__(
        self,
        workers: int,
        max_pending: int,
        keep: int,
        metrics: ServiceMetrics,
        time_limit_s: float | None = None,
        shared_dir: Path | None = None,
    ):
        self.time_limit_s = time_limit_s
        self.workers = workers
        self.max_pending = max_pending
        self.keep = keep
        self.metrics = metrics
        self.shared_dir = None if shared_dir is None else Path(shared_dir)
        self._jobs: dict[str, NemdJob] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self.shared_dir is not None:
            self.shared_dir.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="nemd-job")

    def shutdown(self) -> None:
        """Drops queued jobs; a running one finishes in its thread (it cannot be interrupted)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def get(self, job_id: str) -> NemdJob | None:
        if not JOB_ID_PATTERN.fullmatch(job_id):
            return None
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None and self.shared_dir is not None:
            job = self._read(job_id)  # another process's job
        return job

    def pending(self) -> int:
        with self._lock, self._shared_lock():
            return self._unfinished()

    def submit(
        self, model: str, source: dict[str, Any], settings: dict[str, Any], work: Work
    ) -> NemdJob:
        """Queues ``work``; ``ApiError(429)`` when ``max_pending`` jobs are unfinished."""
        if self._executor is None:
            raise ApiError(503, "the service is not started", headers={"Retry-After": "1"})
        job = NemdJob(
            id=uuid.uuid4().hex,
            model=model,
            source=source,
            settings=settings,
            time_limit_s=self.time_limit_s,
        )
        if self.shared_dir is not None:
            job.owner = {"host": HOST, "pid": os.getpid()}
            job.cancel_file = self.shared_dir / f"{job.id}.cancel"
        with self._lock, self._shared_lock():
            unfinished = self._unfinished()
            if unfinished >= self.max_pending:
                raise ApiError(
                    429,
                    f"{unfinished} NEMD jobs are queued or running (at most {self.max_pending});"
                    " poll them and retry later",
                    headers={"Retry-After": "5"},
                )
            self._jobs[job.id] = job
            self._publish(job, QUEUED)
            self._evict()
        self.metrics.jobs_queued.inc()
        self._executor.submit(self._run, job, work)
        logger.info("NEMD job %s queued for model %s (%s)", job.id, model, source)
        return job

    def cancel(self, job: NemdJob) -> NemdJob:
        """Asks ``job`` to stop: a queued job is cancelled at once, a running one at its next
        stage boundary; a finished job is left as it is."""
        if job.id in self._jobs or job.cancel_file is None:  # this process runs it
            job.cancel_requested.set()
        else:  # another process's: its check() sees the file
            with contextlib.suppress(FileNotFoundError):  # its records were just evicted
                job.cancel_file.touch()
        logger.info("NEMD job %s: cancel requested (%s)", job.id, job.status)
        return job

    # -- the jobs of all processes (a shared folder) ----------------------------------------

    @contextlib.contextmanager
    def _shared_lock(self) -> Iterator[None]:
        """The server's processes count and evict jobs one at a time (an exclusive lock on
        ``DIR/.lock``); nothing without a shared folder."""
        if self.shared_dir is None:
            yield
            return
        with open(self.shared_dir / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _records(self) -> list[NemdJob]:
        assert self.shared_dir is not None
        jobs = []
        for path in self.shared_dir.glob("*.json"):
            job = self._read(path.stem, with_plot=False)
            if job is not None:
                jobs.append(job)
        return jobs

    def _unfinished(self) -> int:
        jobs = self._jobs.values() if self.shared_dir is None else self._records()
        return sum(job.status in (QUEUED, RUNNING) for job in jobs)

    def _publish(self, job: NemdJob, status: str) -> None:
        """Writes ``job``'s state with ``status`` (and, when done, its figure first) to the
        shared folder; called before ``job.status`` changes in memory, so the other
        processes never see a job behind what this one answers."""
        if self.shared_dir is None:
            return
        if status == DONE and job.plot_png is not None:
            _write_atomic(self.shared_dir / f"{job.id}.png", job.plot_png)
        record = {name: getattr(job, name) for name in _RECORD_FIELDS}
        record["status"] = status
        _write_atomic(self.shared_dir / f"{job.id}.json", json.dumps(record).encode())

    def _read(self, job_id: str, with_plot: bool = True) -> NemdJob | None:
        """A job from its record in the shared folder; ``None`` when there is none."""
        assert self.shared_dir is not None
        path = self.shared_dir / f"{job_id}.json"
        try:
            record = json.loads(path.read_bytes())
            job = NemdJob(**{name: record[name] for name in _RECORD_FIELDS})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("NEMD job record %s unreadable: %s", path, exc)
            return None
        job.cancel_file = self.shared_dir / f"{job_id}.cancel"
        if job.status not in FINISHED and not _alive(job.owner):
            job.status, job.finished = FAILED, job.finished or time.time()
            job.error = "the server process that ran it exited before it finished"
        if with_plot and job.status == DONE:
            with contextlib.suppress(FileNotFoundError):
                job.plot_png = (self.shared_dir / f"{job_id}.png").read_bytes()
        return job

    def _evict(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in FINISHED]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]
        if self.shared_dir is None:
            return
        done = sorted(
            (j for j in self._records() if j.status in FINISHED), key=lambda j: j.finished or 0
        )
        for job in done[: max(0, len(done) - self.keep)]:
            self._jobs.pop(job.id, None)
            for suffix in (".json", ".png", ".cancel"):
                with contextlib.suppress(FileNotFoundError):
                    (self.shared_dir / f"{job.id}{suffix}").unlink()

    def _run(self, job: NemdJob, work: Work) -> None:
        self.metrics.jobs_queued.dec()
        self.metrics.jobs_running.inc()
        job.started = time.time()
        status = FAILED
        try:
            self._publish(job, RUNNING)
            job.status = RUNNING
            job.check()  # cancelled while it was queued
            job.result, job.plot_png = work(job.check)
            status = DONE
        except JobStopped as stop:
            status, job.error = stop.status, str(stop)
            logger.info("NEMD job %s %s: %s", job.id, stop.status, stop)
        except Exception as exc:  # recorded in the job and logged: a job never takes the server
            job.error = " ".join(str(exc).split()) or type(exc).__name__
            logger.warning("NEMD job %s failed: %s", job.id, job.error, exc_info=True)
        finally:
            job.finished = time.time()
            with self._lock, self._shared_lock():
                shared = self.shared_dir is not None
                try:
                    self._publish(job, status)
                except OSError:  # this process still answers for it; the others cannot
                    shared = False
                    logger.warning("NEMD job %s: state not shared", job.id, exc_info=True)
                self.metrics.jobs_running.dec()
                self.metrics.jobs_finished.labels(status).inc()
                job.status = status  # last, so a reader that sees "done" sees everything else
                if shared:  # finished: the folder answers for it, in every process alike
                    del self._jobs[job.id]
                self._evict()
        logger.info("NEMD job %s %s in %.2fs", job.id, status, job.finished - job.started)
