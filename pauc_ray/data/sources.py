"""Converters from the project's data sources to Parquet shards (``prepare``).

Sources (DESIGN.md section 4):

- ``digits``: scikit-learn's bundled 1,797 8x8 digits; values 0..16 rescaled to 0..255 and
  stored as grayscale PNG.
- ``fashion-mnist``: the four idx files (gzip or not) in ``/usr/share/datasets/fashion-mnist``
  (Debian's ``dataset-fashion-mnist``) or ``from_dir``; its own 60,000/10,000 split.
  ``mnist`` reads the same format with digit class names (``from_dir`` required).
- ``blobs``: the paper's synthetic Gaussian blobs (``blobs.make_blob_data``), as vectors.
- ``imagefolder:PATH``: ``PATH/<class>/*.jpg|png|...``; ``PATH/train`` and ``PATH/val`` (or
  ``PATH/test``) become the splits when both exist, else a split is drawn.

Sources without a split of their own get a seeded stratified one: within each class,
``round(test_fraction * n_class)`` samples go to ``test`` (at least one stays in ``train``).
Ids follow source order within each split, so a re-run with the same settings writes the same
rows under the same ids. Output goes to a temporary sibling folder that replaces ``out`` only
once complete, so an interrupted run leaves no half-written dataset.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pauc_ray.data.idx import find_idx_file, read_idx, read_idx_header
from pauc_ray.data.image_codec import encode_png
from pauc_ray.data.imagefolder import ImageEncoder, scan_class_folders
from pauc_ray.data.imagefolder_ray import FolderSplit, convert_folder_splits
from pauc_ray.data.parquet_io import (
    INFO_FILE,
    DatasetError,
    DatasetInfo,
    SplitWriter,
    WriteConfig,
    write_dataset_info,
)
from pauc_ray.storage import Location, resolve

__all__ = [
    "BUILTIN_SOURCES",
    "FASHION_MNIST_DIR",
    "SOURCES",
    "PrepareConfig",
    "prepare",
    "resolve_dataset",
    "stratified_split",
]

logger = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
BUILTIN_SOURCES = ("digits", "fashion-mnist", "mnist", "blobs")  # built in: need no path
SOURCES = (*BUILTIN_SOURCES, "imagefolder:PATH")
_CHUNK = 512  # rows encoded per writer call


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of ``prepare`` (the CLI flags are views of these).

    Attributes:
        test_fraction: share of each class held out as ``test`` for sources without a split
            of their own; 0 writes ``train`` only. 0.2 is the usual 80/20 hold-out and keeps
            >= 300 test samples per class for digits.
        seed: seed of that split and of generated data (blobs).
        rows_per_file: rows per Parquet shard at most.
        limit: keep only the first ``limit`` rows of each split (tests, quick looks).
        from_dir: folder of the idx files (fashion-mnist, mnist).
        classes: number of blobs (blobs).
        samples_per_class: samples per blob (blobs).
        dim: blob dimension (blobs; the paper's Fig. 2 uses 3).
        image_size: bring every image to this square size (imagefolder); ``None``: keep
            sizes, which must then agree.
        channels: 1 or 3 (imagefolder).
        workers: image folders are converted by this many Ray tasks at a time (one CPU each;
            ``None``: as many as the cluster has CPUs; 0: in this process, without Ray).
        overwrite: replace a non-empty ``out`` (only one holding a dataset.json).
        progress: show progress bars.
    """

    test_fraction: float = 0.2
    seed: int = 0
    rows_per_file: int = 10_000
    limit: int | None = None
    from_dir: Path | None = None
    classes: int = 10
    samples_per_class: int = 1000
    dim: int = 3
    image_size: int | None = None
    channels: int = 3
    workers: int | None = None
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {self.rows_per_file}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: ``(train_idx, test_idx)``, each sorted ascending.

    Per class ``c`` with ``n_c`` samples, ``min(round(test_fraction * n_c), n_c - 1)`` random
    samples go to test, so every class keeps at least one training sample.
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = min(round(test_fraction * len(members)), len(members) - 1)
        test_parts.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def _split_indices(labels: np.ndarray, config: PrepareConfig) -> dict[str, np.ndarray]:
    if config.test_fraction == 0:
        splits = {"train": np.arange(len(labels))}
    else:
        train, test = stratified_split(labels, config.test_fraction, config.seed)
        splits = {"train": train, "test": test}
    return {name: idx[: config.limit] for name, idx in splits.items() if len(idx)}


def _bar(total: int, desc: str, config: PrepareConfig) -> tqdm:
    return tqdm(total=total, desc=desc, unit="rows", disable=not config.progress or total < 5000)


def _write_images(
    out: Location, split: str, images: np.ndarray, labels: np.ndarray, config: PrepareConfig
) -> int:
    """images (N, H, W) or (N, H, W, 3) uint8, encoded as PNG."""
    write = WriteConfig(rows_per_file=config.rows_per_file)
    with (
        SplitWriter(out.local_path / split, "image", config=write) as writer,
        _bar(len(images), split, config) as bar,
    ):
        for start in range(0, len(images), _CHUNK):
            chunk = images[start : start + _CHUNK]
            writer.add([encode_png(image) for image in chunk], labels[start : start + _CHUNK])
            bar.update(len(chunk))
    return writer.rows


def _write_vectors(
    out: Location, split: str, x: np.ndarray, labels: np.ndarray, config: PrepareConfig
) -> int:
    write = WriteConfig(rows_per_file=config.rows_per_file)
    with SplitWriter(out.local_path / split, "vector", dim=x.shape[1], config=write) as writer:
        writer.add(x, labels)
    return writer.rows


def _digits(out: Location, config: PrepareConfig) -> DatasetInfo:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    counts = {
        split: _write_images(out, split, images[idx], labels[idx], config)
        for split, idx in _split_indices(labels, config).items()
    }
    return DatasetInfo(
        name="digits", source="digits", kind="image", counts=counts, height=8, width=8,
        channels=1, num_classes=10, class_names=[str(d) for d in range(10)],
    )  # fmt: skip


def _idx_images(name: str, default_dir: Path | None, class_names: list[str] | None):
    def convert(out: Location, config: PrepareConfig) -> DatasetInfo:
        folder = config.from_dir or default_dir
        if folder is None:
            raise DatasetError(f"source '{name}' needs --from DIR (the folder of its idx files)")
        counts, shape = {}, None
        for split, prefix in (("train", "train"), ("test", "t10k")):
            image_file = find_idx_file(folder, f"{prefix}-images-idx3-ubyte")
            label_file = find_idx_file(folder, f"{prefix}-labels-idx1-ubyte")
            (_, image_shape), (_, label_shape) = map(read_idx_header, (image_file, label_file))
            if len(image_shape) != 3 or image_shape[0] != label_shape[0]:
                raise DatasetError(
                    f"{image_file}: shape {image_shape} does not fit {label_file}'s "
                    f"{label_shape} (expected (N, H, W) images and N labels)"
                )
            shape = image_shape[1:]
            images = read_idx(image_file, config.limit).astype(np.uint8, copy=False)
            labels = read_idx(label_file, config.limit).astype(np.int64)
            logger.info("%s: %s of %d images", image_file, split, image_shape[0])
            counts[split] = _write_images(out, split, images, labels, config)
        num_classes = len(class_names) if class_names else int(labels.max()) + 1
        return DatasetInfo(
            name=name, source=f"{name}:{folder}", kind="image", counts=counts,
            height=shape[0], width=shape[1], channels=1, num_classes=num_classes,
            class_names=class_names,
        )  # fmt: skip

    return convert


def _blobs(out: Location, config: PrepareConfig) -> DatasetInfo:
    from pauc_ray.data.blobs import make_blob_data  # scikit-learn: imported when needed

    data = make_blob_data(config.classes, config.samples_per_class, config.dim, config.seed)
    counts = {
        split: _write_vectors(out, split, data.x[idx], data.labels[idx], config)
        for split, idx in _split_indices(data.labels, config).items()
    }
    return DatasetInfo(
        name=f"blobs-{config.classes}", source="blobs", kind="vector", counts=counts,
        dim=config.dim, num_classes=config.classes,
    )  # fmt: skip


def _imagefolder(root: Location) -> Callable[[Location, PrepareConfig], DatasetInfo]:
    def convert(out: Location, config: PrepareConfig) -> DatasetInfo:
        held_out = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
        if (root / "train").is_dir() and held_out is not None:
            train = scan_class_folders(root / "train")
            test = scan_class_folders(held_out, class_names=train.class_names)
            found = {
                "train": (train.paths[: config.limit], train.labels[: config.limit]),
                "test": (test.paths[: config.limit], test.labels[: config.limit]),
            }
            class_names = train.class_names
        else:
            every = scan_class_folders(root)
            found = {
                split: ([every.paths[i] for i in idx], every.labels[idx])
                for split, idx in _split_indices(every.labels, config).items()
            }
            class_names = every.class_names
        splits = {
            name: FolderSplit(paths, labels, [posixpath.relpath(p.path, root.path) for p in paths])
            for name, (paths, labels) in found.items()
        }
        write = WriteConfig(rows_per_file=config.rows_per_file)
        if config.workers == 0:
            counts, (height, width) = _convert_here(splits, out, config, write)
        else:
            counts, (height, width) = convert_folder_splits(
                splits, out, config.channels, config.image_size, write, config.workers,
                local_input=root.is_local, progress=config.progress,
            )  # fmt: skip
        return DatasetInfo(
            name=root.name, source=f"imagefolder:{root}", kind="image",
            counts=counts, height=height, width=width, channels=config.channels,
            num_classes=len(class_names), class_names=class_names,
        )  # fmt: skip

    return convert


def _convert_here(
    splits: dict[str, FolderSplit], out: Location, config: PrepareConfig, write: WriteConfig
) -> tuple[dict[str, int], tuple[int, int]]:
    """The image folder converted in this process (``workers=0``), into a local ``out``."""
    encoder = ImageEncoder(channels=config.channels, size=config.image_size)
    counts = {}
    for name, split in splits.items():
        with (
            SplitWriter(out.local_path / name, "image", with_path=True, config=write) as writer,
            _bar(len(split.files), name, config) as bar,
        ):
            for start in range(0, len(split.files), _CHUNK):
                stop = start + _CHUNK
                writer.add(
                    [encoder(p) for p in split.files[start:stop]],
                    split.labels[start:stop],
                    split.relative[start:stop],
                )
                bar.update(len(split.files[start:stop]))
        counts[name] = writer.rows
    return counts, encoder.shape


def _converter(source: str) -> Callable[[Location, PrepareConfig], DatasetInfo]:
    if source.startswith("imagefolder:"):
        root = resolve(source.split(":", 1)[1])
        if not root.is_dir():
            raise DatasetError(f"{root}: image folder not found")
        return _imagefolder(root)
    converters = {
        "digits": _digits,
        "fashion-mnist": _idx_images("fashion-mnist", FASHION_MNIST_DIR, FASHION_MNIST_CLASSES),
        "mnist": _idx_images("mnist", None, [str(d) for d in range(10)]),
        "blobs": _blobs,
    }
    assert set(converters) == set(BUILTIN_SOURCES)
    if source not in converters:
        raise DatasetError(f"unknown source '{source}'; expected one of {', '.join(SOURCES)}")
    return converters[source]


_COMMON_OPTIONS = ("test_fraction", "seed", "rows_per_file", "limit")
_SOURCE_OPTIONS = {
    "blobs": ("classes", "samples_per_class", "dim"),
    "fashion-mnist": ("from_dir",),
    "mnist": ("from_dir",),
    "imagefolder": ("image_size", "channels"),
}


def _options(source: str, config: PrepareConfig) -> dict:
    """The settings that shaped this dataset, for dataset.json."""
    names = _COMMON_OPTIONS + _SOURCE_OPTIONS.get(source.split(":", 1)[0], ())
    values = asdict(config)
    return {k: str(values[k]) if isinstance(values[k], Path) else values[k] for k in names}


def _check_out(out: Location, overwrite: bool) -> None:
    if out.is_file():
        raise DatasetError(f"{out}: exists and is not a folder")
    if out.is_dir() and out.children():
        if not overwrite:
            raise DatasetError(f"{out}: not empty; pass --overwrite to replace it")
        if not (out / INFO_FILE).is_file():
            raise DatasetError(
                f"{out}: not empty and holds no {INFO_FILE}; refusing to replace a folder "
                "that is not a prepared dataset"
            )


def _remove_dataset(out: Location) -> None:
    """Deletes a prepared dataset: ``dataset.json`` first, so that no reader takes what is
    left for a complete dataset."""
    (out / INFO_FILE).delete()
    out.delete()


def prepare(
    source: str, out: str | Path | Location, config: PrepareConfig = PrepareConfig()
) -> DatasetInfo:
    """Writes ``source`` as Parquet shards plus ``dataset.json`` under ``out``.

    Args:
        source: ``digits``, ``fashion-mnist``, ``mnist``, ``blobs`` or ``imagefolder:PATH``
            (``PATH`` local or a URI such as ``s3://bucket/raw/in100``).
        out: output folder, local or a URI (``s3://bucket/data/x``); must be empty or missing
            unless ``config.overwrite``.
        config: split, shard, source and parallelism settings.

    Returns:
        The ``DatasetInfo`` written to ``out/dataset.json``.

    Raises:
        DatasetError: unknown source, missing or malformed input, non-empty ``out``.

    Readers never see a half-written dataset: a local one is built in a sibling folder
    renamed into place; on an object store (no rename there) ``dataset.json``, which readers
    require, is written last and deleted first when a dataset is replaced. Image folders are
    converted by Ray tasks (``imagefolder_ray.py``) that write shards to an object store
    directly; the other sources are converted here and uploaded.
    """
    target = resolve(out)
    convert = _converter(source)
    _check_out(target, config.overwrite)
    started = time.perf_counter()
    if not target.is_local and source.startswith("imagefolder:") and config.workers != 0:
        info = _prepare_in_place(source, target, convert, config)
    else:
        info = _prepare_staged(source, target, convert, config)
    seconds = time.perf_counter() - started
    logger.info("prepared %s in %s: %s (%.1f s)", source, target, info.counts, seconds)
    return info


def _prepare_staged(source: str, target: Location, convert, config: PrepareConfig) -> DatasetInfo:
    """Converts into a local staging folder, then renames it into place (local ``target``) or
    uploads it with ``dataset.json`` last (remote)."""
    if target.is_local:
        target.parent.mkdir()
        staging = Path(target.parent.path) / f".{target.name}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    else:
        staging = Path(tempfile.mkdtemp(prefix="pauc-prepare-"))
    try:
        info = replace(convert(resolve(staging), config), options=_options(source, config))
        write_dataset_info(staging, info)
        if target.is_local:
            if target.exists():
                shutil.rmtree(target.path)
            staging.rename(target.path)
        else:
            if target.exists():
                _remove_dataset(target)
            shards = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*.parquet"))
            target.upload(staging, [*shards, INFO_FILE])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def _prepare_in_place(source: str, target: Location, convert, config: PrepareConfig) -> DatasetInfo:
    """Ray tasks write the shards straight into ``target`` on its object store;
    ``dataset.json`` follows once every shard is there. A failed conversion leaves nothing."""
    if target.exists():
        _remove_dataset(target)
    try:
        info = replace(convert(target, config), options=_options(source, config))
        write_dataset_info(target, info)
    except BaseException:
        target.delete()
        raise
    return info


def resolve_dataset(dataset: str, data_dir: str | Path, seed: int = 0) -> str:
    """The prepared dataset folder for ``--dataset`` (an absolute path or a URI), preparing
    it on first use.

    ``dataset`` is a built-in source (prepared into ``data_dir/NAME``), ``imagefolder:PATH``
    (prepared into ``data_dir/<folder name>``) or ``parquet:PATH`` (a folder written by
    ``python -m pauc_ray.data prepare``, used as it is). ``data_dir`` and ``PATH`` may be URIs
    (``s3://bucket/data``): Ray Data and the workers then read the shards from the store.
    ``seed`` shapes the split of a dataset prepared here.
    """
    if dataset.startswith("parquet:"):
        directory = resolve(dataset.partition(":")[2])
        if not (directory / INFO_FILE).is_file():
            raise DatasetError(f"--dataset {dataset}: {directory} holds no {INFO_FILE}")
        return str(directory)
    if dataset.startswith("imagefolder:"):
        directory = resolve(data_dir) / resolve(dataset.partition(":")[2]).name
    elif dataset in BUILTIN_SOURCES:
        directory = resolve(data_dir) / dataset
    else:
        raise DatasetError(
            f"--dataset {dataset!r}: expected one of {BUILTIN_SOURCES}, imagefolder:PATH or "
            "parquet:PATH"
        )
    if not (directory / INFO_FILE).is_file():
        logger.info("preparing %s into %s", dataset, directory)
        prepare(dataset, directory, PrepareConfig(seed=seed, progress=False))
    return str(directory)
