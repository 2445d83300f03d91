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
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pauc_ray.data.idx import find_idx_file, read_idx, read_idx_header
from pauc_ray.data.image_codec import encode_png
from pauc_ray.data.imagefolder import ImageEncoder, scan_class_folders
from pauc_ray.data.parquet_io import (
    INFO_FILE,
    DatasetError,
    DatasetInfo,
    SplitWriter,
    WriteConfig,
    write_dataset_info,
)

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
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {self.rows_per_file}")


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
    out: Path, split: str, images: np.ndarray, labels: np.ndarray, config: PrepareConfig
) -> int:
    """images (N, H, W) or (N, H, W, 3) uint8, encoded as PNG."""
    write = WriteConfig(rows_per_file=config.rows_per_file)
    with (
        SplitWriter(out / split, "image", config=write) as writer,
        _bar(len(images), split, config) as bar,
    ):
        for start in range(0, len(images), _CHUNK):
            chunk = images[start : start + _CHUNK]
            writer.add([encode_png(image) for image in chunk], labels[start : start + _CHUNK])
            bar.update(len(chunk))
    return writer.rows


def _write_vectors(
    out: Path, split: str, x: np.ndarray, labels: np.ndarray, config: PrepareConfig
) -> int:
    write = WriteConfig(rows_per_file=config.rows_per_file)
    with SplitWriter(out / split, "vector", dim=x.shape[1], config=write) as writer:
        writer.add(x, labels)
    return writer.rows


def _digits(out: Path, config: PrepareConfig) -> DatasetInfo:
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
    def convert(out: Path, config: PrepareConfig) -> DatasetInfo:
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


def _blobs(out: Path, config: PrepareConfig) -> DatasetInfo:
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


def _imagefolder(root: Path) -> Callable[[Path, PrepareConfig], DatasetInfo]:
    def convert(out: Path, config: PrepareConfig) -> DatasetInfo:
        held_out = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
        if (root / "train").is_dir() and held_out is not None:
            train = scan_class_folders(root / "train")
            test = scan_class_folders(held_out, class_names=train.class_names)
            splits = {
                "train": (train.paths[: config.limit], train.labels[: config.limit]),
                "test": (test.paths[: config.limit], test.labels[: config.limit]),
            }
            class_names = train.class_names
        else:
            found = scan_class_folders(root)
            splits = {
                split: ([found.paths[i] for i in idx], found.labels[idx])
                for split, idx in _split_indices(found.labels, config).items()
            }
            class_names = found.class_names
        encoder = ImageEncoder(channels=config.channels, size=config.image_size)
        write = WriteConfig(rows_per_file=config.rows_per_file)
        counts = {}
        for split, (paths, labels) in splits.items():
            with SplitWriter(out / split, "image", with_path=True, config=write) as writer:
                bar = _bar(len(paths), split, config)
                for start in range(0, len(paths), _CHUNK):
                    chunk = paths[start : start + _CHUNK]
                    writer.add(
                        [encoder(p) for p in chunk],
                        labels[start : start + _CHUNK],
                        [str(p.relative_to(root)) for p in chunk],
                    )
                    bar.update(len(chunk))
                bar.close()
            counts[split] = writer.rows
        height, width = encoder.shape
        return DatasetInfo(
            name=root.resolve().name, source=f"imagefolder:{root}", kind="image",
            counts=counts, height=height, width=width, channels=config.channels,
            num_classes=len(class_names), class_names=class_names,
        )  # fmt: skip

    return convert


def _converter(source: str) -> Callable[[Path, PrepareConfig], DatasetInfo]:
    if source.startswith("imagefolder:"):
        root = Path(source.split(":", 1)[1])
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


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out}: not empty; pass --overwrite to replace it")
        if not (out / INFO_FILE).is_file():
            raise DatasetError(
                f"{out}: not empty and holds no {INFO_FILE}; refusing to replace a folder "
                "that is not a prepared dataset"
            )


def prepare(source: str, out: str | Path, config: PrepareConfig = PrepareConfig()) -> DatasetInfo:
    """Writes ``source`` as Parquet shards plus ``dataset.json`` under ``out``.

    Args:
        source: ``digits``, ``fashion-mnist``, ``mnist``, ``blobs`` or ``imagefolder:PATH``.
        out: output folder; must be empty or missing unless ``config.overwrite``.
        config: split, shard and source settings.

    Returns:
        The ``DatasetInfo`` written to ``out/dataset.json``.

    Raises:
        DatasetError: unknown source, missing or malformed input, non-empty ``out``.
    """
    out = Path(out)
    convert = _converter(source)
    _check_out(out, config.overwrite)
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        info = convert(staging, config)
        info = replace(info, options=_options(source, config))
        write_dataset_info(staging, info)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "prepared %s in %s: %s (%.1f s)", source, out, info.counts, time.perf_counter() - started
    )
    return info


def resolve_dataset(dataset: str, data_dir: str | Path, seed: int = 0) -> Path:
    """The prepared dataset folder for ``--dataset``, preparing it on first use.

    ``dataset`` is a built-in source (prepared into ``data_dir/NAME``), ``imagefolder:PATH``
    (prepared into ``data_dir/<folder name>``) or ``parquet:PATH`` (a folder written by
    ``python -m pauc_ray.data prepare``, used as it is). ``seed`` shapes the split of a
    dataset prepared here.
    """
    if dataset.startswith("parquet:"):
        directory = Path(dataset.partition(":")[2]).expanduser()
        if not (directory / INFO_FILE).is_file():
            raise DatasetError(f"--dataset {dataset}: {directory} holds no {INFO_FILE}")
        return directory
    if dataset.startswith("imagefolder:"):
        directory = Path(data_dir) / Path(dataset.partition(":")[2]).name
    elif dataset in BUILTIN_SOURCES:
        directory = Path(data_dir) / dataset
    else:
        raise DatasetError(
            f"--dataset {dataset!r}: expected one of {BUILTIN_SOURCES}, imagefolder:PATH or "
            "parquet:PATH"
        )
    if not (directory / INFO_FILE).is_file():
        logger.info("preparing %s into %s", dataset, directory)
        prepare(dataset, directory, PrepareConfig(seed=seed, progress=False))
    return directory
