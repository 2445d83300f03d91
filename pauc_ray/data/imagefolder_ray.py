"""Converting an image folder with Ray: tasks over chunks of files, on every node's CPUs.

Each split's files (sorted by class, then path; ids follow that order) are cut into
contiguous chunks; a Ray task (one CPU) reads a chunk's files, brings them to the stored form
(``ImageEncoder``) and makes one Parquet shard of them with the chunk's ids. So the rows, ids
and bytes are the same as a conversion in one process; only where shard files begin differs.

Where the bytes go:

- output on an object store (``s3://...``): each task writes its shard there itself, so no
  image passes through the driver;
- output on a local path: the task returns the shard's bytes and the driver writes them (a
  task on another node could not write the driver's disk).

Where the tasks run: anywhere in the cluster when the image folder is on an object store; on
the driver's node when it is a local folder (other nodes may not have it).

At most ``workers`` tasks run at a time (a window over ``ray.wait``), so ``workers`` is the
parallelism a user asked for, and 1 vs 2 workers can be compared (``benchmarks/bench_prepare.py``).
Hand-written rather than Ray Data because the shards must keep their contiguous id ranges and
names, and a task's failure must come back as the ``DatasetError`` naming the bad file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from pauc_ray.data.dataset_info import DatasetError
from pauc_ray.data.imagefolder import ImageEncoder
from pauc_ray.data.parquet_io import WriteConfig, rows_table, shard_name, shard_schema, write_shard
from pauc_ray.storage import Location

__all__ = ["ChunkResult", "FolderSplit", "chunk_size", "convert_folder_splits", "encode_chunk"]

logger = logging.getLogger(__name__)

MIN_CHUNK = 64  # images per task at least: a task costs ~ms to schedule, an image ~0.1-1 ms
TASKS_PER_WORKER = 4  # chunks per worker at least (when the images allow), for load balance


@dataclass(frozen=True)
class FolderSplit:
    """One split to convert: ``files[i]`` (named ``relative[i]`` under the root) has label
    ``labels[i]`` and becomes row (and id) ``i``."""

    files: list[Location]
    labels: np.ndarray
    relative: list[str]


@dataclass(frozen=True)
class ChunkResult:
    """What a task did: ``rows`` images of ``shape`` (H, W), the first of them ``first``;
    ``data`` is the shard's Parquet bytes when the driver is to write it, else ``None``."""

    split: str
    index: int
    rows: int
    shape: tuple[int, int]
    first: str
    data: bytes | None


def chunk_size(rows: int, workers: int, rows_per_file: int) -> int:
    """Images per task: at most a shard's worth, small enough to give every worker
    ``TASKS_PER_WORKER`` tasks, and at least ``MIN_CHUNK``."""
    wanted = math.ceil(rows / (TASKS_PER_WORKER * max(workers, 1)))
    return max(1, min(rows_per_file, max(MIN_CHUNK, wanted)))


def encode_chunk(
    split: str,
    index: int,
    first_id: int,
    files: Sequence[Location],
    labels: np.ndarray,
    relative: Sequence[str],
    channels: int,
    size: int | None,
    target: Location | None,
    write: WriteConfig,
) -> ChunkResult:
    """Reads and encodes ``files`` into one shard with ids ``first_id...``; writes it to
    ``target`` (a file on the output's filesystem) or returns its bytes when ``target`` is
    None. Runs in a Ray task (or in this process: it has no Ray in it)."""
    encoder = ImageEncoder(channels=channels, size=size)
    images = [encoder(file) for file in files]
    table = rows_table(shard_schema("image", with_path=True), first_id, images, labels, relative)
    data = None
    if target is None:
        sink = pa.BufferOutputStream()
        pq.write_table(
            table, sink, row_group_size=write.row_group_size, compression=write.compression
        )
        data = sink.getvalue().to_pybytes()
    else:
        write_shard(table, target, write)
    assert encoder.shape is not None
    return ChunkResult(
        split, index, len(files), encoder.shape, encoder.first or str(files[0]), data
    )


def _ensure_ray():
    import ray

    if not ray.is_initialized():
        # RAY_ADDRESS (e.g. set by `ray job submit`) joins that cluster; else a local one
        ray.init(logging_level=logging.WARNING, log_to_driver=False)
    return ray


def convert_folder_splits(
    splits: dict[str, FolderSplit],
    out: Location,
    channels: int,
    size: int | None,
    write: WriteConfig,
    workers: int | None = None,
    local_input: bool = True,
    progress: bool = True,
) -> tuple[dict[str, int], tuple[int, int]]:
    """Converts every split into ``out/<split>/part-NNNNN.parquet`` with Ray tasks.

    Args:
        splits: split name -> its files, labels and relative names.
        out: the dataset folder being written (a local staging folder or the final URI).
        channels, size: as ``ImageEncoder``'s.
        write: shard row groups and codec (``rows_per_file`` caps a task's chunk).
        workers: tasks at a time; ``None``: the cluster's CPU count.
        local_input: the files are on a local disk (tasks then stay on this node).
        progress: show a progress bar of images.

    Returns:
        Rows per split, and the (H, W) every image has.

    Raises:
        DatasetError: an unreadable image (naming it), or images of different sizes without
            ``size``.
    """
    ray = _ensure_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    options: dict = {"num_cpus": 1, "max_retries": 2, "retry_exceptions": False}
    if local_input:
        node = ray.get_runtime_context().get_node_id()
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
    task = ray.remote(encode_chunk).options(**options)
    total = sum(len(s.files) for s in splits.values())
    jobs = []
    for name, split in splits.items():
        step = chunk_size(len(split.files), workers, write.rows_per_file)
        for index, start in enumerate(range(0, len(split.files), step)):
            stop = start + step
            target = None if out.is_local else out / name / shard_name(index)
            jobs.append(
                (name, index, start, split.files[start:stop], split.labels[start:stop],
                 split.relative[start:stop], channels, size, target, write)
            )  # fmt: skip
    logger.info("converting %d images in %d tasks, %d at a time", total, len(jobs), workers)
    results: list[ChunkResult] = []
    pending, queued = [], list(reversed(jobs))
    with tqdm(total=total, unit="img", desc="prepare", disable=not progress) as bar:
        try:
            while pending or queued:
                while queued and len(pending) < workers:
                    pending.append(task.remote(*queued.pop()))
                done, pending = ray.wait(pending, num_returns=1)
                result = _result(ray, done[0])
                if result.data is not None:
                    (out / result.split / shard_name(result.index)).write_bytes(result.data)
                results.append(result)
                bar.update(result.rows)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
    return _counts_and_shape(results, splits)


def _result(ray, ref) -> ChunkResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, DatasetError):
            raise DatasetError(str(cause).splitlines()[0]) from None
        raise


def _counts_and_shape(
    results: list[ChunkResult], splits: dict[str, FolderSplit]
) -> tuple[dict[str, int], tuple[int, int]]:
    results = sorted(results, key=lambda r: (list(splits).index(r.split), r.index))
    first = results[0]
    for result in results[1:]:
        if result.shape != first.shape:  # only possible without ``size``
            raise DatasetError(
                f"{result.first}: image is {result.shape[0]}x{result.shape[1]}, but "
                f"{first.first} is {first.shape[0]}x{first.shape[1]}; pass --image-size to "
                "resize all images"
            )
    counts = {name: sum(r.rows for r in results if r.split == name) for name in splits}
    assert all(counts[name] == len(split.files) for name, split in splits.items())
    return counts, first.shape
