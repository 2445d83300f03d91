"""Reading a prepared split through Ray Data (for Ray Train's ``datasets=``).

Resources: on a small machine the training workers hold fractional CPUs (0.5 each on 2 cores),
and a Ray Data task that asks for a whole CPU then waits forever ("Cluster resources are not
enough", shared/RAY-NOTES.md). ``ray.data.read_parquet`` (ray 2.60) starts with a ``ListFiles``
task that always asks for one whole CPU, whatever ``num_cpus`` the read is given: measured on
``ray.init(num_cpus=2)``, a TorchTrainer of 2 workers x 0.5 CPU over ``read_parquet`` runs, one
of 3 workers x 0.5 CPU hangs (0.5 CPU left). The default reader here (``reader="tasks"``)
therefore starts from the file list in memory (``ray.data.from_items``, no task) and reads and
decodes each file in a task of ``num_cpus=0.25``, streaming it by row groups; the same
3 x 0.5 trainer then runs. ``reader="parquet"`` uses ``read_parquet`` (projection pushed
into the read, decode fused into the read tasks) where a whole CPU is always free. Either
way, leave at least ``num_cpus`` (0.25) logical CPU unclaimed by the train workers (4 workers
x 0.5 on 2 CPUs leaves none, and nothing is read).

Output rows: ``id`` int64, ``label`` int64 (-1 when the split is unlabelled), and ``image``
uint8 (C, H, W) or ``x`` float32 (dim,); batches of them stack to (B, C, H, W) and (B, dim).
Row order follows the files (ids ascending within each); shuffle in the consumer, e.g.
``iter_torch_batches(local_shuffle_buffer_size=...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray

from pauc_ray.data.image_codec import decode_images
from pauc_ray.data.parquet_io import (
    DatasetError,
    DatasetInfo,
    SplitArrays,
    read_dataset_info,
    sample_column,
    split_files,
    vectors_from_arrow,
)
from pauc_ray.storage import Location, resolve

__all__ = [
    "READERS",
    "RayReadConfig",
    "decode_batch",
    "read_split",
    "rows_from_object_store",
    "split_to_object_store",
]


READERS = ("tasks", "parquet")


@dataclass(frozen=True)
class RayReadConfig:
    """Ray Data settings of ``read_split``.

    Attributes:
        num_cpus: logical CPUs each read/decode task asks for. Small so that the tasks fit
            next to fractional train workers; decoding 28x28 PNGs is light.
        batch_size: rows per decode call (one Python loop over Pillow per batch).
        reader: ``"tasks"`` (default: never asks for a whole CPU) or ``"parquet"``
            (``ray.data.read_parquet``; its file listing takes one whole CPU), see above.
    """

    num_cpus: float = 0.25
    batch_size: int = 256
    reader: str = "tasks"

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ValueError(f"num_cpus must be > 0, got {self.num_cpus}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}, got {self.reader!r}")


def decode_batch(batch: pa.Table, info: DatasetInfo) -> dict[str, np.ndarray]:
    """Decodes one Arrow batch of stored rows.

    Args:
        batch: rows with ``id``, ``image`` (bytes) or ``x`` (list<float>), optional ``label``.
        info: the dataset's ``dataset.json``.

    Returns:
        ``{"id": (B,) int64, "label": (B,) int64, "image": (B, C, H, W) uint8}`` for images,
        ``"x": (B, dim) float32`` instead of ``"image"`` for vectors.
    """
    ids = batch.column("id").to_numpy().astype(np.int64, copy=False)
    if "label" in batch.column_names:
        labels = batch.column("label").to_numpy().astype(np.int64, copy=False)
    else:
        labels = np.full(len(ids), -1, dtype=np.int64)
    out = {"id": ids, "label": labels}
    if info.kind == "image":
        out["image"] = decode_images(
            batch.column("image").to_pylist(), info.channels, info.height, info.width
        )
    else:
        out["x"] = vectors_from_arrow(batch.column("x"), info.dim)
    return out


def _read_files(
    batch: dict[str, np.ndarray],
    info: DatasetInfo,
    columns: list[str],
    batch_size: int,
    filesystem: pafs.FileSystem,
) -> Iterator[dict[str, np.ndarray]]:
    """Reads and decodes the Parquet files named in ``batch["path"]`` (paths on
    ``filesystem``), ``batch_size`` rows at a time (only that many encoded rows are held at
    once)."""
    for path in batch["path"]:
        with filesystem.open_input_file(str(path)) as stream:
            parquet = pq.ParquetFile(stream)
            for record_batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
                yield decode_batch(pa.Table.from_batches([record_batch]), info)


def read_split(
    directory: str | Path | Location,
    split: str,
    config: RayReadConfig = RayReadConfig(),
    info: DatasetInfo | None = None,
) -> ray.data.Dataset:
    """A lazy Ray Dataset of the decoded split.

    Args:
        directory: a prepared dataset folder (``validate_dataset`` it first): a URI such as
            ``s3://bucket/data/fashion-mnist``, read by every task straight from the store
            (the filesystem object, with its endpoint and keys, travels with the tasks), or a
            local path, which on a cluster of several nodes must be visible to every node at
            the same path.
        split: e.g. ``"train"``.
        config: CPUs per task, decode batch size, reader.
        info: ``dataset.json`` contents, read from ``directory`` when ``None``.

    Returns:
        Rows of ``id``, ``label`` and ``image`` (uint8 C, H, W) or ``x`` (float32 dim).

    Example:
        >>> ds = read_split("data/fashion-mnist", "train")  # doctest: +SKIP
        >>> trainer = TorchTrainer(loop, datasets={"train": ds}, ...)  # doctest: +SKIP
    """
    # absolute paths (resolve): the read tasks may run in another working directory or node
    directory = resolve(directory)
    info = info or read_dataset_info(directory)
    shards = split_files(directory, split)
    files, filesystem = [f.path for f in shards], directory.fs
    names = pq.read_schema(files[0], filesystem=filesystem).names
    columns = ["id", sample_column(info)] + (["label"] if "label" in names else [])
    if config.reader == "tasks":
        listing = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
        return listing.map_batches(
            _read_files,
            fn_kwargs={
                "info": info,
                "columns": columns,
                "batch_size": config.batch_size,
                "filesystem": filesystem,
            },
            batch_size=1,
            batch_format="numpy",
            num_cpus=config.num_cpus,
        )
    dataset = ray.data.read_parquet(
        files, filesystem=filesystem, num_cpus=config.num_cpus
    ).select_columns(columns)
    # Arrow in, numpy out: in "numpy" format a fixed-size list column arrives as an object
    # array of per-row arrays; Arrow flattens it without a per-row copy.
    return dataset.map_batches(
        decode_batch,
        fn_kwargs={"info": info},
        batch_format="pyarrow",
        batch_size=config.batch_size,
        num_cpus=config.num_cpus,
        udf_modifying_row_count=False,
    )


def input_column(columns) -> str:
    """The inputs' column of a decoded split's batch: ``image`` (B, C, H, W) or ``x`` (B, D)."""
    return "image" if "image" in columns else "x"


def split_to_object_store(dataset: ray.data.Dataset) -> list[ray.ObjectRef]:
    """Executes ``dataset`` (rows of :func:`read_split`) and leaves its decoded blocks in Ray's
    object store; the refs travel to the workers, which read them with
    :func:`rows_from_object_store` (zero-copy on the node that holds them, one transfer per
    node otherwise). Reading and decoding run once, in Ray Data's parallel tasks."""
    return dataset.to_numpy_refs()


def rows_from_object_store(refs: list[ray.ObjectRef]) -> SplitArrays:
    """The whole split in memory, sorted by id, from :func:`split_to_object_store`'s refs.

    Raises:
        DatasetError: the ids are not exactly ``0..N-1``.
    """
    blocks = ray.get(list(refs))
    ids = np.concatenate([b["id"] for b in blocks])
    key = input_column(blocks[0])
    order = np.argsort(ids, kind="stable")
    rows = SplitArrays(
        ids[order],
        np.concatenate([b[key] for b in blocks])[order],
        np.concatenate([b["label"] for b in blocks])[order],
    )
    if not np.array_equal(rows.ids, np.arange(len(rows))):
        raise DatasetError(f"the train split's ids are not exactly 0..{len(rows) - 1}")
    return rows
