"""The on-disk dataset format: Parquet shards per split plus ``dataset.json``.

Layout of a prepared dataset directory ``DIR``::

    DIR/dataset.json                  # DatasetInfo, written last
    DIR/train/part-00000.parquet ...  # at most rows_per_file rows each, ids ascending
    DIR/test/part-00000.parquet ...

Columns (one row per sample):

- ``id`` int64: 0..N-1 within each split, unique. Cluster assignments are keyed by it, so it
  survives sharding, restarts and a change in the number of workers.
- ``image`` binary (an encoded PNG or JPEG) for ``kind == "image"``, or ``x`` a
  ``fixed_size_list<float32>[dim]`` (``list<float32>`` of length ``dim`` is accepted too) for
  ``kind == "vector"``.
- ``label`` int64 in 0..num_classes-1, optional (absent: unlabelled; readers return -1).
- ``path`` string, optional: where the sample came from (image folders), for people.

``dataset.json`` and ``DatasetError`` live in ``dataset_info.py`` (re-exported here). Readers
here are Ray-free (pyarrow and numpy); ``ray_dataset.py`` reads the same files through Ray
Data. ``DIR`` is a local folder or a URI (``s3://bucket/data/fashion-mnist``, any filesystem
``pauc_ray.storage`` opens): every read goes through that filesystem.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pauc_ray.data.dataset_info import (
    FORMAT_VERSION,
    INFO_FILE,
    KINDS,
    DatasetError,
    DatasetInfo,
    read_dataset_info,
    sample_column,
    write_dataset_info,
)
from pauc_ray.data.image_codec import decode_images
from pauc_ray.storage import Location, resolve

__all__ = [
    "FORMAT_VERSION",
    "INFO_FILE",
    "DatasetError",
    "DatasetInfo",
    "SplitArrays",
    "SplitWriter",
    "WriteConfig",
    "iter_id_range",
    "load_split_arrays",
    "read_dataset_info",
    "rows_table",
    "sample_column",
    "shard_name",
    "shard_schema",
    "split_files",
    "vectors_from_arrow",
    "write_dataset_info",
    "write_shard",
]


@dataclass(frozen=True)
class WriteConfig:
    """How shards are written.

    Attributes:
        rows_per_file: rows per ``part-NNNNN.parquet`` at most.
        row_group_size: rows per Parquet row group; small groups let readers of an id range
            (the feature pass, ``iter_id_range``) skip most of a file by its statistics.
        compression: Parquet codec. Images are already compressed, vectors are not.
    """

    rows_per_file: int = 10_000
    row_group_size: int = 1024
    compression: str = "zstd"

    def __post_init__(self) -> None:
        if self.rows_per_file < 1 or self.row_group_size < 1:
            raise ValueError(
                f"rows_per_file and row_group_size must be >= 1, got "
                f"{self.rows_per_file}, {self.row_group_size}"
            )


def split_files(directory: str | Path | Location, split: str) -> list[Location]:
    """The split's Parquet files in order; ``DatasetError`` when there are none."""
    split_dir = resolve(directory) / split
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: split '{split}' not found")
    files = [f for f in split_dir.children() if f.name.endswith(".parquet")]
    if not files:
        raise DatasetError(f"{split_dir}: no Parquet files (expected part-*.parquet)")
    return files


def shard_name(index: int) -> str:
    """``part-NNNNN.parquet``: shards sort by name in id order."""
    return f"part-{index:05d}.parquet"


def write_shard(table: pa.Table, where: Location, config: WriteConfig = WriteConfig()) -> None:
    """Writes one shard with ``config``'s row groups and codec, straight to ``where``'s
    filesystem (one upload on object stores, whose objects appear whole)."""
    where.parent.mkdir()
    pq.write_table(
        table,
        where.path,
        filesystem=where.fs,
        row_group_size=config.row_group_size,
        compression=config.compression,
    )


def shard_schema(
    kind: str, dim: int | None = None, labelled: bool = True, with_path: bool = False
) -> pa.Schema:
    """The columns of a shard (see the module docstring)."""
    fields = [pa.field("id", pa.int64(), nullable=False)]
    if kind == "image":
        fields.append(pa.field("image", pa.binary(), nullable=False))
    else:
        fields.append(pa.field("x", pa.list_(pa.float32(), dim), nullable=False))
    if labelled:
        fields.append(pa.field("label", pa.int64(), nullable=False))
    if with_path:
        fields.append(pa.field("path", pa.string()))
    return pa.schema(fields)


def rows_table(
    schema: pa.Schema,
    first_id: int,
    samples: Sequence[bytes] | np.ndarray,
    labels: np.ndarray | None = None,
    paths: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of ``schema`` with ids ``first_id, first_id + 1, ...``: ``samples`` are encoded
    images, or (n, dim) float vectors."""
    n = len(samples)
    ids = pa.array(np.arange(first_id, first_id + n, dtype=np.int64))
    if pa.types.is_binary(schema.field(1).type):
        sample = pa.array(list(samples), type=pa.binary())
    else:
        dim = schema.field(1).type.list_size
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if x.shape != (n, dim):
            raise ValueError(f"expected vectors of shape ({n}, {dim}), got {x.shape}")
        sample = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
    columns = [ids, sample]
    if "label" in schema.names:
        if labels is None or len(labels) != n:
            raise ValueError(f"expected {n} labels")
        columns.append(pa.array(np.asarray(labels, dtype=np.int64)))
    if "path" in schema.names:
        if paths is None or len(paths) != n:
            raise ValueError(f"expected {n} paths")
        columns.append(pa.array(list(paths), type=pa.string()))
    return pa.Table.from_arrays(columns, schema=schema)


class SplitWriter:
    """Writes one split as ``part-NNNNN.parquet`` shards, assigning ids 0, 1, ... in order.

    Args:
        split_dir: folder to create (must not hold shards yet).
        kind: ``"image"`` (samples are encoded image bytes) or ``"vector"``.
        dim: vector length (vectors only).
        labelled: whether a ``label`` column is written.
        with_path: whether a ``path`` column is written.
        config: shard sizes and compression.

    Example:
        >>> with SplitWriter(out / "train", "vector", dim=3) as w:  # doctest: +SKIP
        ...     w.add(np.zeros((5, 3), np.float32), labels=np.zeros(5, np.int64))
    """

    def __init__(
        self,
        split_dir: str | Path,
        kind: str,
        dim: int | None = None,
        labelled: bool = True,
        with_path: bool = False,
        config: WriteConfig = WriteConfig(),
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind == "vector" and not dim:
            raise ValueError("vector shards need dim")
        self.split_dir = Path(split_dir)
        self.split_dir.mkdir(parents=True, exist_ok=False)
        self.kind, self.dim, self.labelled, self.with_path = kind, dim, labelled, with_path
        self.config = config
        self.schema = shard_schema(kind, dim, labelled, with_path)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0
        self.files: list[Path] = []

    def add(
        self,
        samples: Sequence[bytes] | np.ndarray,
        labels: np.ndarray | None = None,
        paths: Sequence[str] | None = None,
    ) -> None:
        """Appends rows: ``samples`` is a list of encoded images, or (n, dim) float vectors."""
        n = len(samples)
        if n == 0:
            return
        self._pending.append(rows_table(self.schema, self.rows, samples, labels, paths))
        self._pending_rows += n
        self.rows += n
        while self._pending_rows >= self.config.rows_per_file:
            self._flush(self.config.rows_per_file)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._pending)
        path = self.split_dir / shard_name(len(self.files))
        write_shard(table.slice(0, rows), resolve(path), self.config)
        self.files.append(path)
        rest = table.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> int:
        """Writes what is left; returns the split's row count."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        return self.rows

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


@dataclass(frozen=True)
class SplitArrays:
    """A decoded split (or part of one) in memory.

    Attributes:
        ids: (N,) int64.
        inputs: (N, C, H, W) uint8 images or (N, dim) float32 vectors.
        labels: (N,) int64, -1 where unlabelled.
    """

    ids: np.ndarray
    inputs: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, positions: np.ndarray) -> SplitArrays:
        """Rows at ``positions`` (indices into these arrays, not ids)."""
        return SplitArrays(self.ids[positions], self.inputs[positions], self.labels[positions])


def vectors_from_arrow(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """(N, dim) float32 from a fixed-size or variable list column whose rows all have ``dim``."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) == 0:
        return np.zeros((0, dim), np.float32)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if not np.all(lengths == dim):
            row = int(np.argmax(lengths != dim))
            raise DatasetError(f"row {row}: vector of length {lengths[row]}, expected {dim}")
    elif not pa.types.is_fixed_size_list(column.type):
        raise DatasetError(f"column x has type {column.type}, expected a list of float32")
    values = column.flatten().to_numpy(zero_copy_only=False)
    if values.size != len(column) * dim:
        raise DatasetError(f"column x holds {values.size} values, expected {len(column)}x{dim}")
    return values.astype(np.float32, copy=False).reshape(len(column), dim)


def _decode_table(table: pa.Table, info: DatasetInfo) -> SplitArrays:
    ids = table.column("id").to_numpy().astype(np.int64, copy=False)
    if "label" in table.column_names:
        labels = table.column("label").to_numpy().astype(np.int64, copy=False)
    else:
        labels = np.full(len(ids), -1, np.int64)
    if info.kind == "image":
        inputs = decode_images(
            table.column("image").to_pylist(), info.channels, info.height, info.width
        )
    else:
        inputs = vectors_from_arrow(table.column("x"), info.dim)
    return SplitArrays(ids, inputs, labels)


def _columns(files: Sequence[Location], info: DatasetInfo) -> list[str]:
    names = pq.read_schema(files[0].path, filesystem=files[0].fs).names
    columns = ["id", sample_column(info)]
    return columns + (["label"] if "label" in names else [])


def load_split_arrays(
    directory: str | Path | Location, split: str, info: DatasetInfo | None = None
) -> SplitArrays:
    """Reads and decodes a whole split into memory, sorted by id (no Ray).

    For evaluation, tests and in-process baselines; the ids must be 0..N-1 (a cheap check;
    ``validate_dataset`` explains what is wrong when they are not).
    """
    info = info or read_dataset_info(directory)
    files = split_files(directory, split)
    columns = _columns(files, info)
    table = pa.concat_tables(pq.read_table(f.path, columns=columns, filesystem=f.fs) for f in files)
    arrays = _decode_table(table, info)
    order = np.argsort(arrays.ids, kind="stable")
    arrays = arrays.take(order)
    if not np.array_equal(arrays.ids, np.arange(len(arrays))):
        raise DatasetError(
            f"{resolve(directory) / split}: ids are not exactly 0..{len(arrays) - 1}; run "
            f"`python -m pauc_ray.data validate {directory}` for the offending row"
        )
    return arrays


def iter_id_range(
    directory: str | Path | Location,
    split: str,
    start: int,
    stop: int,
    batch_size: int = 1024,
    info: DatasetInfo | None = None,
) -> Iterator[SplitArrays]:
    """Streams the decoded rows with ``start <= id < stop``, ``batch_size`` rows at a time.

    A filtered Parquet scan: row groups whose id statistics lie outside the range are skipped,
    so a worker reading its own contiguous range touches about ``1 / world_size`` of the files.
    Batches come in file order (ids ascending for datasets written by ``SplitWriter``); a
    caller that needs a particular order should use the ids it gets back.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    info = info or read_dataset_info(directory)
    files = split_files(directory, split)
    dataset = pads.dataset([f.path for f in files], format="parquet", filesystem=files[0].fs)
    scan = dataset.to_batches(
        columns=_columns(files, info),
        filter=(pc.field("id") >= start) & (pc.field("id") < stop),
        batch_size=batch_size,
    )
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in scan:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= batch_size:
            table = pa.Table.from_batches(pending)
            yield _decode_table(table.slice(0, batch_size), info)
            rest = table.slice(batch_size)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield _decode_table(pa.Table.from_batches(pending), info)
