"""What a run shows its user: epoch lines, curves.png, TensorBoard events, MLflow, and a console
free of Ray's report lines and deprecation warnings unless ``--verbose``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pauc_ray.data import PrepareConfig, prepare
from pauc_ray.evaluation.plots import plot_training_curves
from pauc_ray.train.console import RunMonitor, format_epoch

PNG = b"\x89PNG\r\n\x1a\n"


def _epoch(epoch: int, **extra) -> dict:
    return {
        "epoch": epoch,
        "lr": 0.06,
        "warmup": epoch == 1,
        "loss_total": 5.0 - epoch,
        "loss_info_nce": 5.0 - epoch,
        "loss_proto_nce": 0.0 if epoch == 1 else 0.7,
        "grad_norm_info_nce": 0.4,
        "samples_per_second": 900.0,
        "epoch_seconds": 12.0,
        **extra,
    }


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """The event files' scalars, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_epoch_line_has_loss_knn_with_baselines_nemd_and_speed():
    evaluated = _epoch(
        3, knn_top1=85.5, raw_knn_top1=84.59, random_init_knn_top1=83.11, nemd=0.9, nemd_nn=0.7
    )
    line = format_epoch(evaluated, epochs=30)
    assert line.startswith("epoch  3/30  loss 2.000 (info_nce 2.000, proto_nce 0.700)")
    assert "kNN 85.50 % (raw 84.59, random init 83.11)" in line
    assert "NEMD 0.900/0.700 nn" in line and "900 samples/s" in line and line.endswith("12 s")
    assert "warm-up" in format_epoch(_epoch(1), epochs=30)


def test_monitor_writes_curves_and_tensorboard_every_epoch(tmp_path, capsys):
    seen = []
    with RunMonitor(None, tmp_path, epochs=3, on_epoch=seen.append) as monitor:
        monitor.handle(("step", 1, 5, 10, 4.2))  # no terminal: no bar, nothing printed
        monitor.handle(("epoch", _epoch(1)))
        first = (tmp_path / "curves.png").read_bytes()
        monitor.handle(("epoch", _epoch(2, knn_top1=80.0, raw_knn_top1=79.0, nemd=0.5)))
    assert first[:8] == PNG and len(first) > 10_000
    assert (tmp_path / "curves.png").read_bytes() != first  # rewritten with the new epoch
    assert [m["epoch"] for m in seen] == [1, 2]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("epoch 1/3") and out[1].startswith("epoch 2/3")
    scalars = _scalars(tmp_path / "tensorboard")
    assert scalars["loss/total"] == [(1, 4.0), (2, 3.0)]
    assert scalars["eval/knn_top1"] == [(2, 80.0)]
    assert "train/samples_per_second" in scalars and "train/warmup" not in scalars


def test_monitor_survives_a_broken_update(tmp_path):
    monitor = RunMonitor(None, tmp_path, epochs=3, console=False)
    monitor.handle(("epoch", {"no": "epoch"}))  # logged, never raised into the run
    assert not (tmp_path / "curves.png").exists()


def test_curves_of_an_empty_history_are_not_drawn(tmp_path):
    assert plot_training_curves([], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


# ------------------------------------------------------------------ the CLI on the shared cluster
def _train(ray_cluster, tmp_path, data_dir, name: str, *extra: str) -> tuple[str, str]:
    env = dict(os.environ)
    env["RAY_ADDRESS"] = ray_cluster.get_runtime_context().gcs_address
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # the test's file store; servers use http(s)://
    env.pop("PYTHONWARNINGS", None)
    argv = [
        sys.executable, "-m", "pauc_ray.train",
        "--dataset", f"parquet:{data_dir}", "--storage", str(tmp_path / "runs"), "--name", name,
        "--recipe", "none", "--epochs", "2", "--eval-every", "1", "--batch-size", "64",
        "--embedding-dim", "16", "--queue-size", "128", "--num-clusters", "4,8",
        "--kmeans.nredo", "1", "--loss.warmup-epochs", "1", "--eval-max-samples", "480",
        *extra,
    ]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data") / "blobs"
    prepare("blobs", directory, PrepareConfig(classes=4, samples_per_class=150, progress=False))
    return directory


@pytest.mark.ray
@pytest.mark.slow
def test_console_is_quiet_and_verbose_brings_ray_back(ray_cluster, tmp_path, blobs, monkeypatch):
    mlflow_dir = tmp_path / "mlruns"
    out, err = _train(ray_cluster, tmp_path, blobs, "quiet", "--mlflow-uri", f"file://{mlflow_dir}")
    console = out + err
    assert "Reporting training result" not in console
    assert "Checkpoint successfully created" not in console
    assert "FutureWarning" not in console
    assert "SplitCoordinator" not in console and "Execution plan" not in console
    lines = out.splitlines()
    assert lines[0].startswith("PAUC on parquet:") and lines[1].startswith("run folder:")
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["1/2", "2/2"]
    assert any(line.startswith("  trained ") for line in lines)  # the final report
    run = tmp_path / "runs" / "quiet"
    assert (run / "curves.png").read_bytes()[:8] == PNG
    assert [s for s, _ in _scalars(run / "tensorboard")["loss/total"]] == [1, 2]
    history = json.loads((run / "history.json").read_text())
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(f"file://{mlflow_dir}")
    client = mlflow.tracking.MlflowClient()
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("pauc-ray").experiment_id])
    logged = client.get_metric_history(mlflow_run.info.run_id, "knn_top1")
    assert [(m.step, m.value) for m in logged] == [
        (h["epoch"], pytest.approx(h["knn_top1"])) for h in history
    ]
    assert mlflow_run.data.params["loss.alpha"] == "1.0"

    out, err = _train(ray_cluster, tmp_path, blobs, "verbose", "--verbose")
    assert "Reporting training result" in out + err
