"""Elastic resize end to end (benchmarks/bench_elastic.py, on its own Ray cluster): a
``--workers 1:2`` run grows to two workers when a second node joins (``ray start --address``
after the first checkpoint), goes back to one when that node leaves (SIGTERM: it drains and
stops), and finishes every epoch with the configured global batch and the clustering
actor's exactly-once check passed every epoch. Times are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.starts_nodes]


def test_a_run_grows_when_a_node_joins_and_shrinks_when_it_leaves(tmp_path):
    # the second node is a `ray start --address HEAD` process; 45 epochs of 9,600 rows (about
    # 1 s each here) keep the one-worker group training while it starts (20-45 s) and leave
    # room for the shrink after it leaves
    epochs = 45
    script = str(ROOT / "benchmarks" / "bench_elastic.py")
    # Ray's raylet waits a fixed 15 s for its dashboard agent's port file and aborts after it;
    # on this 2-core machine, with the run training beside it, the joining node's agent is
    # sometimes slower, the node never joins and the run ends unresized. That start-up is
    # Ray's, not what this test checks, so it gets one more try; anything else fails at once.
    for attempt in range(2):
        out = tmp_path / f"attempt{attempt}"
        done, result, log = _run_benchmark(script, out, epochs)
        if result["error"] is None or "WaitForDashboardAgentPorts" not in log:
            break
        print(f"attempt {attempt}: the joining node's raylet gave up on its dashboard agent")
    log = log[-4000:]
    assert result["error"] is None, log
    assert done.returncode == 0, log
    print({k: v for k, v in result.items() if k.endswith("_s") or k.startswith("epochs_")})
    assert result["epochs_completed"] == epochs
    history = json.loads((Path(result["run_dir"]) / "history.json").read_text())
    assert [m["epoch"] for m in history] == list(range(1, epochs + 1))
    sizes = result["world_sizes"]
    grown = sizes.index(2)  # it grew ...
    assert grown > 0 and all(s == 1 for s in sizes[:grown])
    assert 1 in sizes[grown:], sizes  # ... and shrank back after the node left
    # each resize is a restart from a checkpoint, recorded on the first epoch after it
    restarts = result["restarts"]
    assert [r["world_size"] for r in restarts][:2] == [2, 1], restarts
    for r in restarts:
        assert r["epoch"] == r["resumed_from_epoch"] + 1 and r["epochs_repeated"] >= 0
    assert set(result["global_batches"]) == {result["configured_batch"]}
    # warm-up is 1 epoch; every later epoch clustered (the actor checks every id came once)
    assert result["clustered_epochs"] == epochs - 1
    summary = json.loads((Path(result["run_dir"]) / "summary.json").read_text())
    assert summary["restarts"] == len(restarts) >= 2


def _run_benchmark(script: str, out: Path, epochs: int):
    done = subprocess.run(
        [
            sys.executable,
            script,
            "--out",
            str(out),
            "--epochs",
            str(epochs),
            "--samples-per-class",
            "3000",
            "--interval",
            "2",
            # Ray's 60 s of retrying the old size after the node left is waiting, not testing;
            # it bounds only the placement group's wait (ready in 0.00 s when the CPUs are
            # there), and a timed-out start is a retry, not an error
            "--group-start-timeout",
            "10",
            # SIGTERM drains the node for this long before its processes stop (Ray: 30 s)
            "--drain-timeout",
            "5",
            "--join",
            "ray-start",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    result_file = out / "elastic.json"
    assert result_file.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(result_file.read_text())
    return done, result, Path(result["log"]).read_text()
