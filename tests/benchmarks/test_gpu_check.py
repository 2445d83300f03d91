"""benchmarks/gpu_check.sh --cpu-dry-run: every part of the prepared GPU check runs on the CPU
at a tiny size and lands in its table and JSON (the GPU run itself needs a GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("precision", "kmeans", "nemd", "train", "service")

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_cpu_dry_run_runs_every_part(ray_cluster, tmp_path):
    # the train part's subprocess joins the test session's cluster instead of starting one
    address = ray_cluster.get_runtime_context().gcs_address
    result = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu_check.sh"),
            "--cpu-dry-run",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAY_ADDRESS": address},
    )
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    failed = {k: v.get("error") for k, v in record["results"].items() if v["status"] != "ok"}
    assert result.returncode == 0 and not failed, (failed, result.stderr[-2000:])
    assert tuple(record["results"]) == PARTS and record["dry_run"] is True
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {part} | ok |" in table for part in PARTS)
    rows = record["results"]["precision"]["rows"]
    assert {(r["precision"], r["channels_last"]) for r in rows} == {
        (p, cl) for p in ("fp32", "bf16", "fp16") for cl in (False, True)
    }
    assert record["results"]["train"]["precision"] == "bf16"
    assert record["results"]["service"]["device"] == "cpu"


def test_without_a_gpu_the_real_run_refuses_with_a_hint(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "--cpu-dry-run" in result.stderr
