"""Checks a prepared dataset before any training starts.

Each problem raises ``DatasetError`` with the file and the row (0-based within that file):
missing ``dataset.json`` or split, missing column, null values, undecodable image bytes, an
image of another shape than ``dataset.json`` says, vectors of the wrong length or with NaN/inf,
labels outside 0..num_classes-1, ids that are not exactly 0..N-1 across the split's files
(duplicates, out of range, hence missing), an empty split, and row counts that disagree with
``dataset.json``.

Ids, labels and vectors are checked with vectorised numpy. Images are checked by their header
(size and mode) by default; ``decode=True`` decodes every pixel as well, which also catches
truncated data (Fashion-MNIST's 70,000 PNGs: see the README for timings).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pauc_ray.data.image_codec import image_header
from pauc_ray.data.parquet_io import (
    INFO_FILE,
    DatasetError,
    DatasetInfo,
    read_dataset_info,
    sample_column,
    split_files,
)
from pauc_ray.storage import Location, resolve

__all__ = ["SplitReport", "ValidationReport", "validate_dataset"]

logger = logging.getLogger(__name__)

_ARTICLE = {"image": "an image", "vector": "a vector"}


@dataclass(frozen=True)
class SplitReport:
    """What was checked in one split: rows, files, and the wall time in seconds."""

    split: str
    rows: int
    files: int
    seconds: float


@dataclass(frozen=True)
class ValidationReport:
    directory: str
    info: DatasetInfo
    splits: tuple[SplitReport, ...]
    decoded: bool

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.splits)


def _first_true(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _check_integer_column(path: Location, table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if not pa.types.is_integer(column.type):
        raise DatasetError(f"{path}: column '{name}' has type {column.type}, expected int64")
    if column.null_count:
        row = _first_true(column.is_null().to_numpy(zero_copy_only=False))
        raise DatasetError(f"{path} row {row}: '{name}' is null")
    return column.to_numpy().astype(np.int64, copy=False)


def _check_images(path: Location, column: pa.ChunkedArray, info: DatasetInfo, decode: bool) -> None:
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        raise DatasetError(f"{path}: column 'image' has type {column.type}, expected binary")
    expected = (info.height, info.width, info.channels)
    for row, data in enumerate(column.to_pylist()):
        if data is None:
            raise DatasetError(f"{path} row {row}: 'image' is null")
        try:
            height, width, channels, mode = image_header(data, decode=decode)
        except (OSError, ValueError, SyntaxError) as err:
            # Pillow's message for unknown bytes names a BytesIO object: say what it means.
            reason = "not a known image format" if "cannot identify" in str(err) else str(err)
            raise DatasetError(f"{path} row {row}: undecodable image bytes ({reason})") from err
        if (height, width, channels) != expected:
            raise DatasetError(
                f"{path} row {row}: image is {height}x{width} mode {mode} (channels "
                f"{channels or '?'}), but {INFO_FILE} says {info.height}x{info.width} with "
                f"{info.channels} channel(s)"
            )


def _check_vectors(path: Location, column: pa.ChunkedArray, info: DatasetInfo) -> None:
    kind = column.type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind)) or not (
        pa.types.is_floating(kind.value_type)
    ):
        raise DatasetError(f"{path}: column 'x' has type {kind}, expected list<float32>")
    column = column.combine_chunks()
    if column.null_count:
        row = _first_true(column.is_null().to_numpy(zero_copy_only=False))
        raise DatasetError(f"{path} row {row}: 'x' is null")
    if pa.types.is_fixed_size_list(kind):
        if kind.list_size != info.dim and len(column):
            raise DatasetError(
                f"{path} row 0: vectors have length {kind.list_size}, but {INFO_FILE} says "
                f"dim {info.dim}"
            )
    else:
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if np.any(lengths != info.dim):
            row = _first_true(lengths != info.dim)
            raise DatasetError(
                f"{path} row {row}: vector of length {lengths[row]}, but {INFO_FILE} says "
                f"dim {info.dim}"
            )
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), info.dim)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = _first_true(bad)
        what = "NaN" if np.isnan(values[row]).any() else "an infinite value"
        raise DatasetError(f"{path} row {row}: vector contains {what}")


def _check_ids(split_dir: Location, ids: np.ndarray, where: list[tuple[Location, int]]) -> None:
    """``ids`` (N,) of all rows in file order; ``where[i]`` = (file, first global row)."""
    starts = np.array([start for _, start in where])

    def locate(position: int) -> str:
        index = int(np.searchsorted(starts, position, side="right")) - 1
        path, start = where[index]
        return f"{path} row {position - start}"

    n = len(ids)
    out_of_range = (ids < 0) | (ids >= n)
    if out_of_range.any():
        position = _first_true(out_of_range)
        present = np.zeros(n, dtype=bool)
        present[ids[~out_of_range]] = True
        missing = _first_true(~present)
        raise DatasetError(
            f"{locate(position)}: id {ids[position]} is outside 0..{n - 1} ({n} rows in "
            f"{split_dir}); id {missing} is missing"
        )
    counts = np.bincount(ids, minlength=n)
    if np.any(counts > 1):
        duplicate = _first_true(counts > 1)
        first, second = np.flatnonzero(ids == duplicate)[:2]
        missing = _first_true(counts == 0)
        raise DatasetError(
            f"{locate(int(second))}: duplicate id {duplicate} (also at {locate(int(first))}); "
            f"id {missing} is missing"
        )


def _validate_split(
    directory: Location, split: str, info: DatasetInfo, decode: bool
) -> SplitReport:
    start_time = time.perf_counter()
    split_dir = directory / split
    files = split_files(directory, split)
    sample = sample_column(info)
    all_ids: list[np.ndarray] = []
    where: list[tuple[Location, int]] = []
    rows = 0
    for path in files:
        try:
            names = pq.read_schema(path.path, filesystem=path.fs).names
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"{path}: not a readable Parquet file ({err})") from err
        for column in ("id", sample):
            if column not in names:
                raise DatasetError(
                    f"{path}: missing column '{column}' (has {', '.join(names)}; "
                    f"{_ARTICLE[info.kind]} dataset needs 'id' and '{sample}')"
                )
        columns = ["id", sample] + (["label"] if "label" in names else [])
        table = pq.read_table(path.path, columns=columns, filesystem=path.fs)
        ids = _check_integer_column(path, table, "id")
        if "label" in names:
            labels = _check_integer_column(path, table, "label")
            limit = info.num_classes
            bad = (labels < 0) | (labels >= limit if limit is not None else False)
            if bad.any():
                row = _first_true(bad)
                expected = f"0..{limit - 1}" if limit is not None else ">= 0"
                raise DatasetError(f"{path} row {row}: label {labels[row]}, expected {expected}")
        if info.kind == "image":
            _check_images(path, table.column("image"), info, decode)
        else:
            _check_vectors(path, table.column("x"), info)
        all_ids.append(ids)
        where.append((path, rows))
        rows += len(ids)
    if rows == 0:
        raise DatasetError(f"{split_dir}: split '{split}' is empty (0 rows)")
    _check_ids(split_dir, np.concatenate(all_ids), where)
    expected_rows = info.counts.get(split)
    if expected_rows is not None and expected_rows != rows:
        raise DatasetError(
            f"{directory / INFO_FILE}: says split '{split}' has {expected_rows} rows, but "
            f"{split_dir} holds {rows}"
        )
    seconds = time.perf_counter() - start_time
    logger.info("%s: %d rows in %d file(s) valid (%.2f s)", split_dir, rows, len(files), seconds)
    return SplitReport(split=split, rows=rows, files=len(files), seconds=seconds)


def validate_dataset(
    directory: str | Path | Location, split: str | None = None, decode: bool = False
) -> ValidationReport:
    """Checks ``directory`` (one split, or every split ``dataset.json`` lists).

    Args:
        directory: a prepared dataset folder (local path or URI).
        split: e.g. ``"train"``; ``None`` checks all splits in ``dataset.json``'s counts.
        decode: decode every image's pixels, not only its header.

    Returns:
        A ``ValidationReport`` with rows, files and seconds per split.

    Raises:
        DatasetError: naming the file (and row) of the first problem found.
    """
    directory = resolve(directory)
    info = read_dataset_info(directory)
    splits = [split] if split is not None else sorted(info.counts)
    if not splits:
        raise DatasetError(f"{directory / INFO_FILE}: lists no splits (counts is empty)")
    reports = tuple(_validate_split(directory, s, info, decode) for s in splits)
    return ValidationReport(str(directory), info, reports, decode)
