"""service.registry: discovery under ROOT, strict loading, preprocessing as in evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from service_storage import BROKEN_ID, FEATURE_DIM, IMAGE_ID, VECTOR_ID, digit_images

from pauc_ray.data.augment import AugmentConfig, EvalTransform
from pauc_ray.export import load_exported_model
from service.registry import ModelRegistry, discover_runs, is_inside


def test_discovery_finds_runs_and_never_leaves_root(storage_root):
    ids = [model_id for model_id, _ in discover_runs(storage_root, max_depth=4)]
    # linked-run is a symbolic link to a run outside ROOT; datasets/ holds no runs
    assert ids == [BROKEN_ID, IMAGE_ID, VECTOR_ID]
    shallow = [model_id for model_id, _ in discover_runs(storage_root, max_depth=1)]
    assert shallow == [BROKEN_ID, VECTOR_ID]


def test_an_export_linked_from_outside_root_is_skipped(tmp_path, storage_root):
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / "run" / "export").symlink_to(storage_root / VECTOR_ID / "export")
    assert discover_runs(root, max_depth=4) == []
    assert not is_inside(root / "run" / "export" / "model.json", root)
    assert is_inside(storage_root / VECTOR_ID / "export" / "model.json", storage_root)


def test_registry_loads_good_exports_and_lists_the_broken_one(storage_root):
    registry = ModelRegistry(storage_root, max_depth=4)
    registry.load_all()
    assert sorted(registry.models) == [IMAGE_ID, VECTOR_ID]
    assert list(registry.failed) == [BROKEN_ID]
    assert "do not match" in registry.failed[BROKEN_ID]
    image = registry.get(IMAGE_ID)
    assert image.input_kind == "image" and image.input_shape == (1, 8, 8)
    assert registry.get(VECTOR_ID).input_shape == (3,)
    assert registry.get("../" + VECTOR_ID) is None


def test_embed_is_the_loaders_forward_after_eval_transform(storage_root):
    registry = ModelRegistry(storage_root, max_depth=4)
    registry.load_all()
    served = registry.get(IMAGE_ID)
    images = digit_images(5)[:, None]
    got = served.embed(images)
    exported = load_exported_model(storage_root / IMAGE_ID)
    want = exported.embed(EvalTransform(AugmentConfig())(torch.from_numpy(images))).numpy()
    assert got.shape == (5, FEATURE_DIM) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_models_load_on_the_registrys_device(storage_root, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    registry = ModelRegistry(storage_root, max_depth=4, device=device)
    registry.load_all()
    served = registry.get(IMAGE_ID)
    assert served.device.type == device
    got = served.embed(digit_images(3)[:, None])  # inputs travel to the device, results back
    cpu = ModelRegistry(storage_root, max_depth=4)
    cpu.load_all()
    np.testing.assert_allclose(got, cpu.get(IMAGE_ID).embed(digit_images(3)[:, None]), atol=1e-4)


def test_describe_has_the_runs_metrics_but_no_paths(storage_root):
    registry = ModelRegistry(storage_root, max_depth=4)
    registry.load_all()
    entry = registry.get(VECTOR_ID).describe()
    assert entry["method"] == "pauc" and entry["dataset"] == "blobs" and entry["epoch"] == 3
    assert entry["input_kind"] == "vector" and entry["input_shape"] == [3]
    assert entry["embedding_dim"] == FEATURE_DIM and entry["has_nemd_report"]
    assert entry["metrics"]["knn_top1"] == 0.5 and entry["metrics"]["wall_seconds"] == 12.5
    assert str(storage_root) not in str(entry)


def test_summary_and_report_linked_from_outside_root_are_not_read(tmp_path, storage_root):
    import shutil

    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "summary.json").write_text('{"knn_top1": 99.9, "secret": 1}')
    (outside / "nemd_report.json").write_text('{"nemd": 0.5}')
    run = root / "run"
    shutil.copytree(storage_root / VECTOR_ID / "export", run / "export")
    (run / "summary.json").symlink_to(outside / "summary.json")
    (run / "nemd_report.json").symlink_to(outside / "nemd_report.json")
    registry = ModelRegistry(root, max_depth=4)
    registry.load_all()
    served = registry.get("run")
    assert served.summary == {} and served.nemd_report_path is None
    entry = served.describe()
    assert entry["has_nemd_report"] is False and "secret" not in str(entry)
    assert 99.9 not in entry["metrics"].values()
