"""``python -m pauc_ray.data``: summaries on success, one ``error:`` line and status 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pauc_ray.data.__main__ import main


def test_prepare_then_validate(tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["prepare", "blobs", "--classes", "3", "--samples-per-class", "10", "--out", str(out)]
    assert main([*argv, "--rows-per-file", "7", "--no-progress"]) == 0
    assert "train 24, test 6 rows" in capsys.readouterr().out
    assert len(list((out / "train").glob("*.parquet"))) == 4
    assert main(["validate", str(out), "--full"]) == 0
    printed = capsys.readouterr().out
    assert "valid" in printed and "train: 24 rows in 4 file(s) ok" in printed


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["validate", "{tmp}/nothing"], "no such dataset directory"),
        (["prepare", "cifar", "--out", "{tmp}/x"], "unknown source 'cifar'"),
        (["prepare", "blobs", "--out", "{tmp}/x", "--test-fraction", "1.5"], "test_fraction"),
        (["prepare", "blobs"], "--out"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, expected):
    argv = [a.format(tmp=tmp_path) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err


def test_subprocess_bad_dataset_no_traceback(tmp_path):
    (tmp_path / "train").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pauc_ray.data", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "dataset.json: missing" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
