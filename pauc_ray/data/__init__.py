"""Datasets: Parquet shards (``id``, ``image`` | ``x``, ``label``) plus ``dataset.json``.

- ``prepare(source, out)`` / ``python -m pauc_ray.data prepare``: digits, fashion-mnist,
  blobs, imagefolder:PATH to Parquet (``sources.py``); image folders by Ray tasks over chunks
  of files (``imagefolder_ray.py``). ``out``, ``PATH`` and every reader's ``dir`` may be
  URIs (``s3://...``, through ``pauc_ray.storage``).
- ``validate_dataset(dir, split)`` / ``python -m pauc_ray.data validate``: stops with a
  ``DatasetError`` naming the file and row of a problem (``validation.py``).
- ``read_split(dir, split)``: a decoded Ray Dataset for Ray Train (``ray_dataset.py``; imported
  on first use, like the torch and scikit-learn parts).
- ``load_split_arrays(dir, split)``: the decoded split in numpy, sorted by id, no Ray.
- ``shard_bounds`` / ``feature_pass_batches``: each rank's exact share of the ids for the
  per-epoch feature pass (``sharding.py``).
- ``TwoViewAugment`` / ``EvalTransform``: per-sample batched augmentation (``augment.py``).
- ``make_blob_data``: the paper's synthetic blobs (``blobs.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pauc_ray.data.parquet_io import (
    DatasetError,
    DatasetInfo,
    SplitArrays,
    iter_id_range,
    load_split_arrays,
    read_dataset_info,
)
from pauc_ray.data.sharding import feature_pass_batches, shard_bounds, shard_ids
from pauc_ray.data.sources import BUILTIN_SOURCES, PrepareConfig, prepare, resolve_dataset
from pauc_ray.data.validation import ValidationReport, validate_dataset

if TYPE_CHECKING:
    from pauc_ray.data.augment import AugmentConfig, EvalTransform, TwoViewAugment
    from pauc_ray.data.blobs import BlobData, make_blob_data
    from pauc_ray.data.ray_dataset import RayReadConfig, read_split

__all__ = [
    "BUILTIN_SOURCES",
    "AugmentConfig",
    "BlobData",
    "DatasetError",
    "DatasetInfo",
    "EvalTransform",
    "PrepareConfig",
    "RayReadConfig",
    "SplitArrays",
    "TwoViewAugment",
    "ValidationReport",
    "feature_pass_batches",
    "iter_id_range",
    "load_split_arrays",
    "make_blob_data",
    "prepare",
    "read_dataset_info",
    "read_split",
    "resolve_dataset",
    "shard_bounds",
    "shard_ids",
    "validate_dataset",
]

# Imported on first use, so that the CLI and the Parquet readers start without torch, Ray or
# scikit-learn.
_LAZY = {
    "AugmentConfig": "augment",
    "EvalTransform": "augment",
    "TwoViewAugment": "augment",
    "BlobData": "blobs",
    "make_blob_data": "blobs",
    "RayReadConfig": "ray_dataset",
    "read_split": "ray_dataset",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
