"""A run on object storage, end to end, against the loopback S3 server (tests/conftest.py):
its data is read from the bucket (Ray Data, the workers' feature pass, the evaluation), every
file of the run lands in the bucket, and ``--resume``, ``pauc_ray.evaluate`` and the service
read it back from there."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from test_training import blob_config

from pauc_ray.checkpoint import find_latest_checkpoint, read_checkpoint
from pauc_ray.data.augment import EvalTransform
from pauc_ray.evaluate import load_model
from pauc_ray.evaluate import main as evaluate_main
from pauc_ray.export import load_exported_model
from pauc_ray.storage import resolve
from pauc_ray.train.driver import run_training
from service.app import create_app
from service.settings import settings_from

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_a_run_on_s3_writes_every_file_there_and_is_read_back(
    ray_cluster, blobs_dir, s3_bucket, tmp_path, monkeypatch, capsys
):
    storage = f"{s3_bucket}/runs"
    run_uri = f"{storage}/s3run"
    data = resolve(f"{s3_bucket}/data/blobs").upload(blobs_dir)  # a prepared dataset on S3
    first = run_training(blob_config(data, storage, name="s3run", epochs=2, workers="2"))
    assert first["error"] is None and first["epochs_completed"] == 2
    assert first["run_dir"] == run_uri and first["export"] == f"{run_uri}/export"
    run = resolve(run_uri)
    files = {f.path.removeprefix(run.path + "/") for f in run.walk_files()}
    expected = {
        "config.json",
        "history.json",
        "summary.json",
        "nemd_report.json",
        "curves.png",
        "export/model.pt",
        "export/model.json",
        "clustering/epoch_00001.npz",  # epoch 0 is InfoNCE warm-up: nothing clustered
        "checkpoint_epoch_00002/state.pt",
        "checkpoint_epoch_00002/manifest.json",
    }
    assert expected <= files, expected - files
    assert any(f.startswith("tensorboard/events.out.tfevents") for f in files)
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 2
    assert first["checkpoint"] == f"{run_uri}/checkpoint_epoch_00002"
    assert find_latest_checkpoint(run_uri) == first["checkpoint"]
    assert read_checkpoint(first["checkpoint"])["epoch"] == 2

    # --resume from the bucket: epochs 3-4 on top of the stored checkpoint and history
    resumed = run_training(
        blob_config(data, storage, name="s3run", epochs=4, workers="2"), resume=run_uri
    )
    assert resumed["error"] is None and resumed["epochs_completed"] == 4
    history = json.loads((run / "history.json").read_text())
    assert [m["epoch"] for m in history] == [1, 2, 3, 4]
    assert find_latest_checkpoint(run_uri) == f"{run_uri}/checkpoint_epoch_00004"

    # evaluation reads the export from the bucket
    model = load_model(run_uri)
    assert model.path == f"{run_uri}/export" and model.meta["epoch"] == 4
    out = tmp_path / "eval"
    code = evaluate_main(
        [run_uri, "--out", str(out), "--no-plots", "--no-baselines", "--num-clusters", "4"]
    )
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "eval.json").read_text())
    assert result["model"] == f"{run_uri}/export" and result["summary"]["knn20_top1"] > 50
    assert result["dataset_dir"] == str(data)  # evaluated on the bucket's copy

    # the service mirrors the served files and answers from them
    monkeypatch.setenv("PAUC_MODELS_CACHE", str(tmp_path / "cache"))
    settings = settings_from(models=storage)
    assert settings.models.is_relative_to(tmp_path / "cache")
    mirrored = {p.relative_to(settings.models).as_posix() for p in settings.models.rglob("*")}
    assert {"s3run/export/model.pt", "s3run/summary.json", "s3run/nemd_report.json"} <= mirrored
    assert not any(p.startswith(("s3run/checkpoint_", "s3run/clustering")) for p in mirrored)
    vectors = np.random.default_rng(0).normal(size=(3, model.spec.input_shape[0]))
    with TestClient(create_app(settings)) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
        models = client.get("/models").json()
        assert [m["id"] for m in models] == ["s3run"] and models[0]["has_nemd_report"]
        answer = client.post(
            "/embed", json={"model": "s3run", "inputs": vectors.astype(np.float32).tolist()}
        )
        assert answer.status_code == 200, answer.text
        report = client.get("/models/s3run/nemd")
        assert report.status_code == 200
    served = np.asarray(answer.json()["embeddings"], dtype=np.float32)
    exported = load_exported_model(f"{run_uri}/export")
    inputs = EvalTransform(exported.preprocessing)(torch.from_numpy(vectors.astype(np.float32)))
    np.testing.assert_allclose(served, exported.embed(inputs).numpy(), atol=1e-5)
