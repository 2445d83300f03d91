"""benchmarks/gpu_check.sh --cpu-dry-run: every part of the prepared GPU check runs on the CPU
at a tiny size and lands in its table and JSON (the GPU run itself needs a GPU machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS_WITHOUT_TRAIN = ("precision", "kmeans", "nemd", "service")

pytestmark = pytest.mark.slow


def test_the_train_parts_command_is_a_valid_bf16_run(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    from pauc_ray.train.config import build_parser, config_from_args

    for dry_run in (True, False):
        command = gpu_check.train_command(gpu_check.SIZES["gpu"]["train"], dry_run, tmp_path)
        assert command[1:3] == ["-m", "pauc_ray.train"]
        config = config_from_args(build_parser().parse_args(command[3:]))
        assert config.precision == "bf16" and config.epochs == 2 and config.use_gpu is not dry_run


def test_the_cpu_dry_run_runs_every_part_but_training(tmp_path):
    # the train part (bf16 training under Ray) is what tests/train's bf16 test runs; its
    # command line is checked above, without a second Ray run here
    script = str(ROOT / "benchmarks" / "gpu_check.sh")
    result = subprocess.run(
        ["bash", script, "--cpu-dry-run", "--out", str(tmp_path), "--parts", *PARTS_WITHOUT_TRAIN],
        capture_output=True,
        text=True,
        timeout=600,
    )
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    failed = {k: v.get("error") for k, v in record["results"].items() if v["status"] != "ok"}
    assert result.returncode == 0 and not failed, (failed, result.stderr[-2000:])
    assert tuple(record["results"]) == PARTS_WITHOUT_TRAIN and record["dry_run"] is True
    table = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {part} | ok |" in table for part in PARTS_WITHOUT_TRAIN)
    rows = record["results"]["precision"]["rows"]
    assert {(r["precision"], r["channels_last"]) for r in rows} == {
        (p, cl) for p in ("fp32", "bf16", "fp16") for cl in (False, True)
    }
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
