"""``python -m pauc_ray.nemd``: JSON on stdout, and exit code 2 with one line for bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pauc_ray.config import NEMDConfig
from pauc_ray.nemd import sphere_clusters

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # see conftest: a shared 2-core machine


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pauc_ray.nemd", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
        check=False,
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    x, y = sphere_clusters(4, 30, 8, spread=0.5, seed=0)
    np.save(tmp_path / "e.npy", x.astype(np.float32))
    np.save(tmp_path / "a.npy", y + 10)
    return tmp_path / "e.npy", tmp_path / "a.npy"


def test_prints_the_report_as_json(files: tuple[Path, Path]) -> None:
    emb, assign = files
    out = _run("--embeddings", str(emb), "--assignments", str(assign), "--matrix",
               "--max-pairs", "4", "--device", "cpu")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["prototype_ids"] == [10, 11, 12, 13]
    assert report["sizes"] == [30, 30, 30, 30]
    assert (report["pairs_evaluated"], report["pairs_total"], report["max_pairs"]) == (4, 6, 4)
    assert report["method"] == "sinkhorn" and report["epsilon"] == NEMDConfig().epsilon
    assert sum(v is None for row in report["matrix"] for v in row) == 4  # 2 pairs x 2
    assert 0 < report["nemd_nn"] and 0 < report["nemd"] <= 2
    assert "NEMD" in out.stderr  # the log line goes to stderr, not into the JSON


def test_exact_emd(files: tuple[Path, Path]) -> None:
    emb, assign = files
    out = _run("--embeddings", str(emb), "--assignments", str(assign), "--exact",
               "--max-points", "none", "--seed", "3", "-q")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["method"], report["epsilon"], report["seed"]) == ("emd", None, 3)
    assert report["max_points"] is None and report["matrix"] is None
    assert out.stderr == ""


def test_help_shows_defaults_from_the_config() -> None:
    out = _run("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps lines
    defaults = NEMDConfig()
    for flag, value in [("--epsilon", defaults.epsilon), ("--max-points", defaults.max_points),
                        ("--max-pairs", defaults.max_pairs), ("--tol", defaults.tol)]:  # fmt: skip
        assert f"(default: {value})" in text.split(flag, 2)[2].split("--", 1)[0], flag


def _bad_case(tmp: Path, name: str) -> tuple[list[str], str]:
    x, y = sphere_clusters(3, 10, 4, seed=0)
    good_e, good_a = tmp / "e.npy", tmp / "a.npy"
    np.save(good_e, x)
    np.save(good_a, y)
    bad = tmp / "bad.npy"
    if name == "missing":
        return ["--embeddings", str(tmp / "nope.npy"), "--assignments", str(good_a)], "no such file"
    if name == "not_npy":
        bad.write_text("1,2,3\n4,5,6\n")
        return ["--embeddings", str(bad), "--assignments", str(good_a)], "not a readable .npy"
    if name == "npz":
        np.savez(tmp / "both.npz", e=x, a=y)
        return ["--embeddings", str(tmp / "both.npz"), "--assignments", str(good_a)], ".npz"
    if name == "wrong_shape":
        np.save(bad, x[:, 0])
        return ["--embeddings", str(bad), "--assignments", str(good_a)], "must be 2-D"
    if name == "length_mismatch":
        np.save(bad, y[:-2])
        return ["--embeddings", str(good_e), "--assignments", str(bad)], "28 entries"
    if name == "nan":
        x[4, 2] = np.nan
        np.save(bad, x)
        return ["--embeddings", str(bad), "--assignments", str(good_a)], "NaN or inf in 1 of 30"
    if name == "one_prototype":
        np.save(bad, np.zeros_like(y))
        return ["--embeddings", str(good_e), "--assignments", str(bad)], "at least 2"
    if name == "bad_setting":
        return ["--embeddings", str(good_e), "--assignments", str(good_a), "--epsilon", "0"], (
            "epsilon must be"
        )
    raise AssertionError(name)


@pytest.mark.parametrize(
    "name",
    ["missing", "not_npy", "npz", "wrong_shape", "length_mismatch", "nan", "one_prototype",
     "bad_setting"],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(tmp_path: Path, name: str) -> None:
    args, expected = _bad_case(tmp_path, name)
    out = _run(*args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert expected in lines[0]
