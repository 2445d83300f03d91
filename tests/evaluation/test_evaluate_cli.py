"""``python -m pauc_ray.evaluate`` on exports of randomly initialised encoders (no Ray).

The trained-run case (a run folder from the Ray trainer) is in
``tests/experiments/test_compare.py``, which evaluates the runs it trains.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pauc_ray import evaluate
from pauc_ray.checkpoint import write_checkpoint
from pauc_ray.data import PrepareConfig, load_split_arrays, prepare, read_dataset_info
from pauc_ray.data.augment import AugmentConfig, EvalTransform
from pauc_ray.data.parquet_io import split_files
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.knn import knn_classify
from pauc_ray.export import export_model, load_exported_model
from pauc_ray.model.backbones import EncoderSpec, build_encoder


@pytest.fixture(scope="module")
def blobs_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data") / "blobs"
    prepare("blobs", directory, PrepareConfig(classes=4, samples_per_class=100, progress=False))
    return directory


def make_export(directory, spec: EncoderSpec, dataset: str, num_clusters=(4, 8)):
    torch.manual_seed(0)
    meta = {
        "method": "pauc",
        "dataset": dataset,
        "epoch": 0,
        "preprocessing": {"augment": dataclasses.asdict(AugmentConfig())},
        "config": {"seed": 0, "kmeans": {"num_clusters": list(num_clusters)}},
    }
    return export_model(directory, build_encoder(spec).state_dict(), spec, meta)


@pytest.fixture(scope="module")
def blob_export(blobs_dir, tmp_path_factory):
    spec = EncoderSpec("mlp", "vector", (3,), embedding_dim=2, hidden=(32, 32))
    return make_export(tmp_path_factory.mktemp("model") / "export", spec, f"parquet:{blobs_dir}")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = evaluate.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_blob_export_writes_every_file_and_the_numbers_recompute(
    blob_export, blobs_dir, tmp_path, capsys
):
    out = tmp_path / "eval"
    code, stdout, _ = run_cli(capsys, blob_export, "--out", out)
    assert code == 0
    assert f"eval: {out / 'eval.json'}" in stdout
    for name in ("tsne.png", "nemd_k4.png", "nemd_k8.png", "unit_circle.png"):
        assert (out / name).stat().st_size > 5_000, name
    result = json.loads((out / "eval.json").read_text())
    assert result["dataset"] == f"parquet:{blobs_dir}"  # the model's, as no --dataset was given
    assert (result["num_train"], result["num_test"]) == (320, 80)
    assert set(result["figures"]) == {"tsne", "nemd_k4", "nemd_k8", "unit_circle"}
    assert [row["k"] for row in result["knn"]] == [20, 200]
    assert [r["num_clusters"] for r in result["nemd"]] == [4, 8]
    assert np.array(result["nemd"][1]["matrix"], dtype=float).shape == (8, 8)
    assert result["settings"]["seed"] == 0 and result["settings"]["num_clusters"] == [4, 8]
    summary = result["summary"]
    assert 0 <= summary["alignment"] <= 4 and summary["uniformity"] <= 0
    assert 0 < summary["nemd_nn"] <= summary["nemd"] + 1e-9
    assert summary["nemd"] == result["nemd"][0]["nemd"]
    # kNN equals a recomputation from the loaded export
    model = load_exported_model(blob_export)
    train, test = load_split_arrays(blobs_dir, "train"), load_split_arrays(blobs_dir, "test")
    a = embed_arrays(model.encoder, train.inputs, EvalTransform(), representation="backbone")
    b = embed_arrays(model.encoder, test.inputs, EvalTransform(), representation="backbone")
    assert summary["knn20_top1"] == pytest.approx(
        knn_classify(a, train.labels, b, test.labels, k=20).top1
    )
    assert result["representation"] == "backbone" and result["embedding_dim"] == 32
    # the baselines on the same split: raw inputs, and the encoder at the run's seed 0
    raw = knn_classify(train.inputs, train.labels, test.inputs, test.labels, k=20).top1
    assert summary["raw_knn20_top1"] == pytest.approx(raw)
    initial = build_encoder(model.spec, seed=0)
    a0 = embed_arrays(initial, train.inputs, EvalTransform(), representation="backbone")
    b0 = embed_arrays(initial, test.inputs, EvalTransform(), representation="backbone")
    assert summary["random_init_knn20_top1"] == pytest.approx(
        knn_classify(a0, train.labels, b0, test.labels, k=20).top1
    )
    assert summary["linear_top1"] == result["linear_probe"]["top1"]


def test_same_seed_gives_the_same_numbers(blob_export, tmp_path, capsys):
    results = []
    for name in ("a", "b"):
        code, _, _ = run_cli(capsys, blob_export, "--out", tmp_path / name, "--no-plots")
        assert code == 0
        results.append(json.loads((tmp_path / name / "eval.json").read_text()))
    assert results[0]["summary"] == results[1]["summary"]
    assert results[0]["figures"] == {}


def test_images_from_digits(tmp_path, capsys):
    """The image path (EvalTransform, augmented views) on real 8x8 digits; a random MLP's
    features already separate digits far above chance (10%)."""
    spec = EncoderSpec("mlp", "image", (1, 8, 8), embedding_dim=16, hidden=(64,))
    export = make_export(tmp_path / "export", spec, "digits", num_clusters=(10,))
    out = tmp_path / "eval"
    code, _, err = run_cli(
        capsys,
        export,
        "--out",
        out,
        "--data-dir",
        tmp_path / "data",
        "--max-samples",
        400,
        "--num-clusters",
        "10,20",
        "--knn-k",
        "20",
    )
    assert code == 0, err
    result = json.loads((out / "eval.json").read_text())
    test_rows = read_dataset_info(tmp_path / "data" / "digits").counts["test"]
    assert (result["num_train"], result["num_test"]) == (400, min(400, test_rows))
    assert result["summary"]["knn20_top1"] > 50 and result["summary"]["linear_top1"] > 50
    assert set(result["figures"]) == {"tsne", "nemd_k10", "nemd_k20"}  # no unit circle in 16-D


def _unlabelled_copy(blobs_dir, target):
    shutil.copytree(blobs_dir, target)
    for file in split_files(target, "train"):
        pq.write_table(pq.read_table(file.path).drop(["label"]), file.path)
    return target


def _bad_input(kind, blobs_dir, blob_export, tmp_path):
    """(model path, extra flags, expected words of the one-line error)."""
    if kind == "missing":
        return tmp_path / "nowhere", [], "no such run or export folder"
    if kind == "run-without-checkpoint":
        run = tmp_path / "run"
        run.mkdir()
        (run / "config.json").write_text("{}")
        return run, [], "neither a complete checkpoint nor export"
    if kind == "run-with-checkpoint-only":
        run = tmp_path / "run"
        write_checkpoint(run / "checkpoint_epoch_00001", {"epoch": torch.tensor(1)}, 1)
        return run, [], "--resume"
    if kind == "unlabelled":
        copy = _unlabelled_copy(blobs_dir, tmp_path / "unlabelled")
        return blob_export, ["--dataset", f"parquet:{copy}"], "rows have no label"
    if kind == "no-test-split":
        data = tmp_path / "train-only"
        prepare(  # no progress bar: it shows on stderr when preparing is slow
            "blobs",
            data,
            PrepareConfig(classes=4, samples_per_class=30, test_fraction=0, progress=False),
        )
        return blob_export, ["--dataset", f"parquet:{data}"], "no test split"
    if kind == "wrong-input-size":
        spec = EncoderSpec("mlp", "vector", (5,), embedding_dim=2, hidden=(8,))
        export = make_export(tmp_path / "export5", spec, f"parquet:{blobs_dir}")
        return export, [], "model expects (5,)"
    if kind == "unknown-dataset":
        return blob_export, ["--dataset", "cifar"], "expected one of"
    if kind == "too-many-clusters":
        return blob_export, ["--num-clusters", "1000"], "more clusters than"
    if kind == "unknown-device":
        return blob_export, ["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"
    if kind == "cuda-without-gpu":
        if torch.cuda.is_available():
            pytest.skip("a GPU is visible: cuda is a valid device here")
        return blob_export, ["--device", "cuda"], "torch sees no CUDA GPU"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "run-without-checkpoint",
        "run-with-checkpoint-only",
        "unlabelled",
        "no-test-split",
        "wrong-input-size",
        "unknown-dataset",
        "too-many-clusters",
        "unknown-device",
        "cuda-without-gpu",
    ],
)
def test_bad_inputs_exit_2_with_one_line(kind, blobs_dir, blob_export, tmp_path, capsys):
    path, flags, words = _bad_input(kind, blobs_dir, blob_export, tmp_path)
    code, stdout, err = run_cli(capsys, path, "--out", tmp_path / "out", *flags)
    assert code == 2
    assert stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert words in lines[0]
    assert not (tmp_path / "out" / "eval.json").exists()
