"""Datasets registered under ROOT, for ``POST /nemd`` with ``"dataset": NAME``.

A dataset is registered by placing a prepared dataset folder (``python -m pauc_ray.data
prepare SOURCE ROOT/datasets/NAME``: Parquet splits plus ``dataset.json``) at
``ROOT/datasets/NAME``. ``NAME`` is one path component of letters, digits, ``.``, ``_`` and
``-`` that starts with a letter or digit, so ``..``, ``/`` and absolute paths are not names; a
folder (or its ``dataset.json``) that resolves outside ROOT through a symbolic link is not
registered. Anything else is "unknown dataset" (404), the same answer a missing one gets, so
the service reveals nothing about files outside ROOT.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from pauc_ray.data import DatasetError, DatasetInfo, SplitArrays, load_split_arrays
from pauc_ray.data.dataset_info import INFO_FILE, read_dataset_info
from service.registry import is_inside

__all__ = ["DATASETS_DIR", "NAME_PATTERN", "DatasetCatalog"]

logger = logging.getLogger(__name__)

DATASETS_DIR = "datasets"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@functools.lru_cache(maxsize=2)
def _load_split(directory: str, split: str, mtime_ns: int) -> SplitArrays:
    """The decoded split, cached by folder, split and ``dataset.json``'s modification time."""
    return load_split_arrays(directory, split)


class DatasetCatalog:
    """The datasets under ``ROOT/datasets``; names are checked before any file is touched."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.directory = self.root / DATASETS_DIR

    def resolve(self, name: str) -> Path | None:
        """The folder of dataset ``name``, or None when it is not a registered dataset."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            return None
        path = self.directory / name
        if not (is_inside(path, self.root) and is_inside(path / INFO_FILE, self.root)):
            return None
        return path if (path / INFO_FILE).is_file() else None

    def info(self, name: str) -> DatasetInfo | None:
        path = self.resolve(name)
        if path is None:
            return None
        try:
            return read_dataset_info(path)
        except DatasetError as exc:
            logger.warning("dataset %s is not usable: %s", name, exc)
            return None

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if self.resolve(p.name))

    def describe(self) -> list[dict[str, Any]]:
        """The entries of ``GET /datasets``."""
        out = []
        for name in self.names():
            info = self.info(name)
            if info is not None:
                out.append(
                    {
                        "name": name,
                        "kind": info.kind,
                        "sample_shape": list(info.sample_shape),
                        "counts": dict(info.counts),
                        "num_classes": info.num_classes,
                    }
                )
        return out

    def load(self, name: str, split: str, max_rows: int, seed: int) -> tuple[np.ndarray, int]:
        """``(inputs, rows in the split)``: at most ``max_rows`` rows (seeded subsample, in id
        order). Blocking; raises ``DatasetError`` for a split that is missing or malformed."""
        path = self.resolve(name)
        if path is None:
            raise DatasetError(f"unknown dataset {name!r}")
        try:
            arrays = _load_split(str(path), split, (path / INFO_FILE).stat().st_mtime_ns)
        except (DatasetError, OSError) as exc:
            # the message reaches clients (a failed job): name files relative to ROOT
            raise DatasetError(str(exc).replace(str(self.root), "ROOT")) from None
        total = len(arrays)
        if total > max_rows:
            keep = np.sort(np.random.default_rng(seed).choice(total, max_rows, replace=False))
            return arrays.inputs[keep], total
        return arrays.inputs, total
