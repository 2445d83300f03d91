"""Elastic resize, end to end: a ``--workers 1:2`` run grows when a node joins and shrinks when
one leaves.

    python benchmarks/bench_elastic.py [--out DIR] [--epochs 24] [--interval 2]

Starts its own Ray cluster: a head node (``ray.cluster_utils.Cluster``) with room for one
train worker (1.5 CPUs per worker, nodes of 2). A PAUC run on blobs starts with one worker;
once its first checkpoint is stored a second node with its own CPUs joins with
``ray start --address HEAD --num-cpus 2`` (on this machine, as an operator adds one); Ray
Train's resize monitor (``--elastic-resize-interval-s``) restarts the group with two workers
from the latest checkpoint. After two epochs with two workers the node leaves (SIGTERM: it
drains and goes; ``--kill-node``: SIGKILL to all its processes): its worker dies, and the
group restarts with the one worker that still fits. The run must finish every epoch.

Prints and writes ``DIR/elastic.json``: the world size of every epoch, each restart (from which
epoch, how many finished epochs were trained again), the time from the node's join to the
first step of the two-worker group and from its removal to the first step of the one-worker
group (both from the epoch times in ``history.json``: the step clock starts an epoch's
``epoch_seconds`` before its entry is written), and the global batch of every epoch. A test
(tests/train/test_elastic_resize.py) runs it and checks the history; no test asserts a time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench_elastic")


class NodeChanger:
    """Watches the run's history and checkpoints from the main thread: adds the second node
    after the first checkpoint, removes it after ``grown_epochs`` epochs trained by two
    workers, and notes when each epoch's entry first appeared."""

    def __init__(
        self,
        cluster,
        run_dir: Path,
        grown_epochs: int,
        timeout_s: float,
        graceful: bool,
        drain_timeout_s: float | None = None,
        join_with: str = "ray-start",
    ):
        self.graceful = graceful
        self.join_with = join_with
        self.drain_timeout_s = drain_timeout_s
        self.cluster = cluster
        self.run_dir = run_dir
        self.grown_epochs = grown_epochs
        self.timeout_s = timeout_s
        self.events: dict[str, float] = {}
        self.error: str | None = None
        self.node = None  # the ray start process, or Cluster's node
        self.node_log_path = run_dir.parent.parent / "node.log"  # the ray start process's output
        self.node_log = None  # its open file while the node runs

    def history(self) -> list[dict[str, Any]]:
        try:
            return json.loads((self.run_dir / "history.json").read_text())
        except (OSError, json.JSONDecodeError):
            return []

    def drive(self, trainer, seen: dict[tuple, float]) -> None:
        from pauc_ray.checkpoint import find_latest_checkpoint

        deadline = time.monotonic() + self.timeout_s
        while trainer.poll() is None:
            history = self.history()
            for entry in history:  # a repeated epoch is a new entry (other size or time)
                seen.setdefault(_entry_key(entry), time.time())
            if time.monotonic() > deadline:
                self.error = "timed out"
                return
            if "joined" not in self.events:
                if find_latest_checkpoint(self.run_dir) is not None:
                    self.node = self.join()  # room for one 1.5-CPU worker
                    self.events["joined"] = time.time()
                    logger.info("second node joined")
            elif "removed" not in self.events:
                if sum(m.get("world_size") == 2 for m in history) >= self.grown_epochs:
                    self.events["removed"] = time.time()  # its processes start going now
                    self.leave(self.node)
                    logger.info("second node removed")
            time.sleep(0.1)
        if "removed" not in self.events:
            self.error = "the run ended before it grew and shrank"

    def stop_node(self) -> None:
        """Takes the second node down if it is still up (the end of the scenario)."""
        if self.node is not None and "removed" not in self.events:
            if self.join_with == "cluster" or self.node.poll() is None:
                self.leave(self.node)
        if self.node_log is not None:
            self.node_log.close()

    def join(self):
        """``ray start --address HEAD --num-cpus 2 --block``: a second node with its own CPUs,
        as an operator adds a machine; its processes live as long as this one. With
        ``join_with="cluster"``: Ray's ``Cluster.add_node`` (the same raylet, started by this
        process; what the test uses, see ``--join``)."""
        if self.join_with == "cluster":
            return self.cluster.add_node(num_cpus=2)
        ray_cli = str(Path(sys.executable).with_name("ray"))
        command = [ray_cli, "start", f"--address={self.cluster.address}", "--num-cpus=2", "--block"]
        # Fixed agent ports, as a cluster's node config sets them: with port 0 the node's raylet
        # waits 30 s for its dashboard agent to write the port it bound and exits when it does
        # not; on this 2-core machine, training on both cores, the agent's start-up once took
        # longer than that (benchmarks/RESULTS.md). With the ports given the raylet connects
        # when the agent is up.
        command += [
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
        ]
        env = dict(os.environ)
        env.setdefault("RAY_agent_register_timeout_ms", "120000")
        if self.drain_timeout_s is not None:  # how long SIGTERM lets the node drain (Ray: 30 s)
            env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = str(self.drain_timeout_s)
        self.node_log = self.node_log_path.open("w")
        return subprocess.Popen(
            command,
            env=env,
            stdout=self.node_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill below takes all of it
        )

    def leave(self, node) -> None:
        """Graceful: SIGTERM, on which the node drains and leaves (as when a machine is shut
        down or preempted with notice); else SIGKILL to the node's every process (a machine
        lost), which the cluster notices only when its heartbeats stop."""
        if self.join_with == "cluster":
            self.cluster.remove_node(node, allow_graceful=self.graceful)
            return
        if self.graceful:
            node.terminate()
            try:
                node.wait(timeout=60)
                return
            except subprocess.TimeoutExpired:
                logger.warning("the node did not leave within 60 s of SIGTERM; killing it")
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry_key(entry: dict) -> tuple:
    return (int(entry["epoch"]), entry.get("world_size"), entry.get("epoch_seconds"))


def first_step_after(history: list[dict], seen: dict[tuple, float], since: float, world: int):
    """Seconds from ``since`` to the first step of the first epoch trained by ``world``
    workers that started after it (the epoch's entry time minus its ``epoch_seconds``)."""
    for entry in history:
        key = _entry_key(entry)
        if entry.get("world_size") != world or key not in seen:
            continue
        started = seen[key] - float(entry.get("epoch_seconds", 0.0))
        if started >= since - 1.0:
            return round(max(0.0, started - since), 1)
    return None


def run_scenario(
    out: Path,
    epochs: int = 24,
    samples_per_class: int = 1500,
    interval_s: float = 2.0,
    graceful: bool = True,
    group_start_timeout_s: float | None = None,
    drain_timeout_s: float | None = None,
    join_with: str = "ray-start",
) -> dict[str, Any]:
    """The scenario of the module docstring; returns (and writes) ``elastic.json``'s content.

    The run is a ``python -m pauc_ray.train`` process attached to the cluster through
    ``RAY_ADDRESS`` (as ``ray job submit`` runs it). The second node is a ``ray start
    --address`` process (``NodeChanger.join``). ``graceful``: it leaves on SIGTERM, draining
    first; otherwise its processes are killed, as when a machine is lost, and the cluster
    notices only when its heartbeats stop."""
    from ray.cluster_utils import Cluster

    from pauc_ray.data import PrepareConfig, prepare
    from pauc_ray.train.config import TrainConfig
    from pauc_ray.train.local_cluster import GCS_PORT_ENV

    out.mkdir(parents=True, exist_ok=True)
    data = out / f"blobs-{samples_per_class}"
    if not (data / "dataset.json").exists():
        prepare(
            "blobs",
            data,
            PrepareConfig(classes=4, samples_per_class=samples_per_class, progress=False),
        )
    base = TrainConfig()
    config = dataclasses.replace(
        base,
        dataset=f"parquet:{data}",
        storage=str(out / "runs"),
        name=f"elastic-{time.strftime('%H%M%S')}",
        epochs=epochs,
        batch_size=128,
        workers="1:2",
        cpus_per_worker=1.5,
        elastic_resize_interval_s=interval_s,
        max_failures=5,
        embedding_dim=16,
        queue_size=512,
        kmeans=dataclasses.replace(base.kmeans, num_clusters=(4, 8), nredo=1),
        loss=dataclasses.replace(base.loss, warmup_epochs=1),
        eval_max_samples=1000,
    )
    config_file = out / f"{config.name}.json"
    config_file.write_text(config.to_json())
    run_dir = out / "runs" / config.name
    # the GCS port fixed in advance so that every process of this cluster, Ray Train's
    # placement-group cleaner included, is told its address (pauc_ray.train.local_cluster)
    port = _free_port()
    os.environ[GCS_PORT_ENV] = str(port)
    if group_start_timeout_s is not None:  # read by Train's controller, started by this cluster
        os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(group_start_timeout_s)
    from ray._private.services import get_node_ip_address

    os.environ["RAY_ADDRESS"] = f"{get_node_ip_address()}:{port}"
    # the head: one train worker (1.5 CPUs) and what is left for Ray Data's read task
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "dashboard_port": _free_port(), "include_dashboard": True},
    )
    changer = NodeChanger(
        cluster,
        run_dir,
        grown_epochs=2,
        timeout_s=600,
        graceful=graceful,
        drain_timeout_s=drain_timeout_s,
        join_with=join_with,
    )
    seen: dict[tuple, float] = {}
    started = time.time()
    log = (out / f"{config.name}.log").open("w")
    trainer = subprocess.Popen(
        [sys.executable, "-m", "pauc_ray.train", "--config", str(config_file), "--recipe", "none"],
        cwd=ROOT,
        env={**os.environ, "RAY_ADDRESS": cluster.address},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        changer.drive(trainer, seen)
        code = trainer.wait(timeout=600)
    finally:
        if trainer.poll() is None:
            trainer.kill()
        log.close()
        changer.stop_node()
        cluster.shutdown()
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    restarts = [
        {k: m[k] for k in ("epoch", "resumed_from_epoch", "epochs_repeated", "world_size")}
        for m in history
        if "resumed_from_epoch" in m
    ]
    joined, removed = changer.events.get("joined"), changer.events.get("removed")
    result = {
        "epochs": epochs,
        "epochs_completed": summary["epochs_completed"],
        "error": summary["error"] or changer.error or (f"exit code {code}" if code else None),
        "world_sizes": [m["world_size"] for m in history],
        "global_batches": [m.get("global_batch") for m in history],
        "configured_batch": config.batch_size,
        "restarts": restarts,
        "epochs_repeated_per_resize": [r["epochs_repeated"] for r in restarts],
        "join_to_first_2_worker_step_s": (
            first_step_after(history, seen, joined, 2) if joined else None
        ),
        "removal_to_first_1_worker_step_s": (
            first_step_after(history, seen, removed, 1) if removed else None
        ),
        "clustered_epochs": sum(m.get("clustering_seconds", 0) > 0 for m in history),
        "checkpoint_every": config.checkpoint_every,
        "resize_interval_s": interval_s,
        "group_start_timeout_s": group_start_timeout_s or 60.0,
        "drain_timeout_s": drain_timeout_s if drain_timeout_s is not None else 30.0,
        "joined_with": join_with,
        "node_left": "gracefully" if graceful else "killed",
        "wall_s": round(time.time() - started, 1),
        "run_dir": str(run_dir),
        "log": str(out / f"{config.name}.log"),
        "node_log": str(changer.node_log_path) if changer.node_log is not None else None,
    }
    (out / "elastic.json").write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument(
        "--samples-per-class",
        type=int,
        default=1500,
        help="blobs rows per class (4 classes; 80%% train): sets the epoch length, which must "
        "leave the one-worker group training while the second node starts",
    )
    parser.add_argument("--interval", type=float, default=2.0, help="resize monitor interval, s")
    parser.add_argument(
        "--group-start-timeout",
        type=float,
        default=None,
        help="RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (Ray's default 60 s): how long Ray Train "
        "keeps trying the old group size after a node left",
    )
    parser.add_argument(
        "--join",
        choices=("ray-start", "cluster"),
        default="ray-start",
        help="how the second node joins: a `ray start --address` process, or Ray's "
        "Cluster.add_node (same raylet; starts reliably on a CPU-starved machine, where a "
        "`ray start` node's raylet was once seen dying waiting for its dashboard agent)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S of the second node (Ray's default 30 s): "
        "how long it keeps its workers after SIGTERM",
    )
    parser.add_argument(
        "--kill-node", action="store_true", help="kill the second node's processes instead"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pauc-elastic-"))
    result = run_scenario(
        out,
        epochs=args.epochs,
        samples_per_class=args.samples_per_class,
        interval_s=args.interval,
        graceful=not args.kill_node,
        group_start_timeout_s=args.group_start_timeout,
        drain_timeout_s=args.drain_timeout,
        join_with=args.join,
    )
    print(json.dumps(result, indent=2))
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
