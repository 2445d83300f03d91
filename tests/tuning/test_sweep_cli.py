"""``python -m tuning.sweep`` refuses bad input with a clear message before any trial runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tuning.sweep import OPTUNA_MISSING, build_parser, main


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_optuna_asked_for_but_missing(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    code, err = run(capsys, "--search", "optuna", "--out", str(tmp_path / "s"))
    assert code == 2
    assert OPTUNA_MISSING in err and "pip install -e '.[optuna]'" in err
    assert not (tmp_path / "s").exists()


def test_optuna_missing_in_this_environment_too(capsys, tmp_path):
    """This project does not depend on optuna; where it is absent the real import fails."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        code, err = run(capsys, "--search", "optuna", "--out", str(tmp_path / "s"))
        assert code == 2 and "optuna package, which is not installed" in err
    else:
        pytest.skip("optuna is installed here")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--param", "alhpa=0.5"], "unknown parameter 'alhpa'"),
        (["--param", "tau=uniform:0.5:0.1"], "low > high"),
        (["--param", "rho=-0.1"], "temperature and must be > 0"),
        (["--metric", "accuracy"], "--metric 'accuracy'"),
        (["--set", "loss.warmup_epochs=5", "--epochs", "4"], "would never start"),
        (
            ["--set", "loss.warmup_epochs=3", "--epochs", "12", "--grace-period", "3"],
            "before the prototype terms",
        ),
        (["--set", "method=moco", "--set", "loss.warmup_epochs=1"], "only method pauc uses"),
        (["--set", "epochz=3"], "epochz"),
        (["--set", "nothing"], "KEY=VALUE"),
        (["--num-samples", "0", "--set", "loss.warmup_epochs=1"], "--num-samples"),
    ],
)
def test_bad_input_exits_2_naming_it(capsys, tmp_path, argv, message):
    code, err = run(capsys, "--out", str(tmp_path / "s"), *argv)
    assert code == 2
    assert message in err
    assert not (tmp_path / "s").exists()  # refused before anything was written or started


def test_bad_space_file_is_named(capsys, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("alpha: {distribution: loguniform, low: 1, high: 0.1}\n")
    code, err = run(capsys, "--space", str(path), "--out", str(tmp_path / "s"))
    assert code == 2 and str(path) in err and "low > high" in err


def test_resume_needs_a_sweep_folder(capsys, tmp_path):
    code, err = run(capsys, "--resume")
    assert code == 2 and "--resume needs --out" in err
    code, err = run(capsys, "--resume", "--out", str(tmp_path))
    assert code == 2 and "holds no sweep.json" in err


def test_help_names_the_issue_flags():
    text = build_parser().format_help()
    for flag in (
        "--num-samples",
        "--epochs",
        "--dataset",
        "--workers",
        "--metric",
        "--mode",
        "--search",
        "--resume",
        "--out",
        "--space",
        "--param",
    ):
        assert flag in text


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "tuning.sweep", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "python -m tuning.sweep" in done.stdout
