"""A training storage folder (ROOT) for the service tests, built from real parts.

- ``vec-run``: an MLP on 3-D vectors (the blobs' shape), embedding 16, with summary.json and
  nemd_report.json;
- ``sweep/img-run``: a ResNet-18 (small-image stem) on 1x8x8 images (digits' shape), with the
  digits' ``dataset_info`` in model.json, summary.json, nemd_report.json;
- ``broken-run``: an export whose weights do not match its spec (must not be served);
- ``datasets/blobs`` (vectors, 3-D) and ``datasets/digits`` (1x8x8 images), prepared with
  ``pauc_ray.data.prepare``;
- traversal bait: ``datasets/escape`` and ``linked-run``, symbolic links to a dataset and a run
  outside ROOT.

Encoders are freshly initialised (seeded) and exported with ``pauc_ray.export.export_model``,
the function training uses.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pauc_ray.data import PrepareConfig, prepare, read_dataset_info
from pauc_ray.data.augment import AugmentConfig
from pauc_ray.export import export_model
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from pauc_ray.nemd.synthetic import sphere_clusters

VECTOR_ID = "vec-run"
IMAGE_ID = "sweep/img-run"
BROKEN_ID = "broken-run"
EMBEDDING_DIM = 16  # the projection head's output
FEATURE_DIM = 32  # the backbone's features: what /embed returns by default


def _augment() -> dict:
    return json.loads(json.dumps(dataclasses.asdict(AugmentConfig())))


def _run(root: Path, run_id: str, spec: EncoderSpec, dataset: str, info: dict | None) -> Path:
    torch.manual_seed(0)
    encoder = build_encoder(spec)
    run_dir = root / run_id
    meta = {
        "method": "pauc",
        "dataset": dataset,
        "dataset_info": info,
        "epoch": 3,
        "metrics": {"knn_top1": 0.5, "knn_top5": 0.9, "nemd": 1.1, "nemd_nn": 0.4},
        "preprocessing": {"augment": _augment()},
        "config": {"method": "pauc"},
    }
    export_model(run_dir / "export", encoder.state_dict(), spec, meta)
    summary = {
        "method": "pauc",
        "dataset": dataset,
        "epochs_completed": 3,
        "knn_top1": 0.5,
        "nemd": 1.1,
        "nemd_nn": 0.4,
        "run_dir": str(run_dir),  # a path: must not be served
        "wall_seconds": 12.5,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    from pauc_ray.nemd import nemd_report

    x, y = sphere_clusters(3, 20, 4, seed=0)
    report = nemd_report(x, y, device="cpu")
    (run_dir / "nemd_report.json").write_text(json.dumps({"num_clusters": 3, **report.to_dict()}))
    return run_dir


def build_storage(base: Path) -> Path:
    """Builds ``base/root`` (returned) and ``base/outside`` (bait outside ROOT)."""
    root = base / "root"
    outside = base / "outside"
    root.mkdir(parents=True)
    quiet = {"progress": False}
    blobs = prepare(
        "blobs",
        root / "datasets" / "blobs",
        PrepareConfig(classes=4, samples_per_class=40, dim=3, seed=0, **quiet),
    )
    digits = prepare("digits", root / "datasets" / "digits", PrepareConfig(limit=120, **quiet))
    _run(
        root, VECTOR_ID, EncoderSpec("mlp", "vector", (3,), EMBEDDING_DIM, 1, (32,)), "blobs", None
    )
    digits_info = json.loads(read_dataset_info(root / "datasets" / "digits").to_json())
    image_spec = EncoderSpec(
        "convnet", "image", (1, 8, 8), EMBEDDING_DIM, 1, width=FEATURE_DIM // 8
    )
    _run(root, IMAGE_ID, image_spec, "digits", digits_info)
    broken = _run(root, BROKEN_ID, EncoderSpec("mlp", "vector", (3,), 8, 1, (8,)), "blobs", None)
    meta = json.loads((broken / "export" / "model.json").read_text())
    meta["spec"]["embedding_dim"] = 9  # the weights say 8
    (broken / "export" / "model.json").write_text(json.dumps(meta))
    # bait outside ROOT, reachable only through symbolic links
    shutil.copytree(root / "datasets" / "blobs", outside / "secret-dataset")
    shutil.copytree(root / VECTOR_ID, outside / "secret-run")
    (root / "datasets" / "escape").symlink_to(outside / "secret-dataset")
    (root / "linked-run").symlink_to(outside / "secret-run")
    assert blobs.dim == 3 and digits.height == 8
    return root


def png_b64(image: np.ndarray) -> str:
    """Base64 PNG of a (H, W) or (H, W, 3) uint8 array."""
    return base64.b64encode(encode(image, "PNG")).decode()


def encode(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


def digit_images(n: int, seed: int = 0) -> np.ndarray:
    """(n, 8, 8) uint8 random images."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
