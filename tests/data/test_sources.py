"""Each source round-trips through prepare -> validate -> load_split_arrays."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pauc_ray.data.blobs import make_blob_data
from pauc_ray.data.idx import read_idx, read_idx_header, write_idx
from pauc_ray.data.parquet_io import DatasetError, load_split_arrays, read_dataset_info
from pauc_ray.data.sources import (
    FASHION_MNIST_DIR,
    PrepareConfig,
    prepare,
    stratified_split,
)
from pauc_ray.data.validation import validate_dataset

QUIET = PrepareConfig(progress=False, workers=0)  # image folders in this process


def test_digits_round_trip(digits_dir):
    from sklearn.datasets import load_digits

    info = read_dataset_info(digits_dir)
    assert (info.kind, info.height, info.width, info.channels) == ("image", 8, 8, 1)
    assert info.counts == {"train": 1438, "test": 359}
    assert info.class_names == [str(d) for d in range(10)] and info.format_version == 1
    assert len(list((digits_dir / "train").glob("part-*.parquet"))) == 3  # 500-row shards
    report = validate_dataset(digits_dir, decode=True)
    assert [(s.split, s.rows) for s in report.splits] == [("test", 359), ("train", 1438)]

    digits = load_digits()
    expected = np.rint(digits.images * 255 / 16).astype(np.uint8)
    train, test = stratified_split(digits.target, 0.2, seed=0)
    for split, idx in (("train", train), ("test", test)):
        arrays = load_split_arrays(digits_dir, split)
        assert arrays.inputs.shape == (len(idx), 1, 8, 8) and arrays.inputs.dtype == np.uint8
        np.testing.assert_array_equal(arrays.ids, np.arange(len(idx)))
        np.testing.assert_array_equal(arrays.inputs[:, 0], expected[idx])
        np.testing.assert_array_equal(arrays.labels, digits.target[idx])
    assert arrays.inputs.max() == 255


def test_stratified_split_properties():
    labels = np.repeat(np.arange(4), [10, 5, 1, 2])
    train, test = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    assert np.bincount(labels[test], minlength=4).tolist() == [2, 1, 0, 0]
    assert np.array_equal(test, np.sort(test))
    again, _ = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(again, train)
    other, _ = stratified_split(labels, 0.2, seed=4)
    assert not np.array_equal(other, train)


def test_blobs_round_trip(tmp_path):
    out = tmp_path / "blobs"
    config = PrepareConfig(classes=3, samples_per_class=20, test_fraction=0.25, progress=False)
    info = prepare("blobs", out, config)
    assert (info.kind, info.dim, info.num_classes) == ("vector", 3, 3)
    assert info.counts == {"train": 45, "test": 15} and info.options["classes"] == 3
    validate_dataset(out)
    data = make_blob_data(3, 20, 3, seed=0)
    _, test = stratified_split(data.labels, 0.25, seed=0)
    arrays = load_split_arrays(out, "test")
    assert arrays.inputs.dtype == np.float32 and arrays.inputs.shape == (15, 3)
    np.testing.assert_array_equal(arrays.inputs, data.x[test])
    np.testing.assert_array_equal(arrays.labels, data.labels[test])
    schema = pq.read_schema(next((out / "train").glob("*.parquet")))
    x_type = schema.field("x").type
    assert pa.types.is_fixed_size_list(x_type) and x_type.list_size == 3
    assert x_type.value_type == pa.float32()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_synthetic(tmp_path, gz):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    src = tmp_path / "idx"
    src.mkdir()
    arrays = {}
    for prefix, n in (("train", 12), ("t10k", 5)):
        arrays[prefix] = (
            rng.integers(0, 256, (n, 6, 4), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.uint8),
        )
        write_idx(src / f"{prefix}-images-idx3-ubyte{suffix}", arrays[prefix][0])
        write_idx(src / f"{prefix}-labels-idx1-ubyte{suffix}", arrays[prefix][1])
    out = tmp_path / "out"
    info = prepare("fashion-mnist", out, PrepareConfig(from_dir=src, progress=False))
    assert info.counts == {"train": 12, "test": 5} and (info.height, info.width) == (6, 4)
    assert info.class_names[0] == "T-shirt/top" and info.source == f"fashion-mnist:{src}"
    validate_dataset(out, decode=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        loaded = load_split_arrays(out, split)
        np.testing.assert_array_equal(loaded.inputs[:, 0], arrays[prefix][0])
        np.testing.assert_array_equal(loaded.labels, arrays[prefix][1])


def test_idx_bad_files(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(DatasetError, match=r"bad\.gz: not an idx file"):
        read_idx(bad)
    short = tmp_path / "short"
    write_idx(short, np.zeros((4, 2, 2), np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(DatasetError, match="short: truncated data"):
        read_idx(short)
    with pytest.raises(DatasetError, match="no train-images-idx3-ubyte"):
        prepare("fashion-mnist", tmp_path / "o", PrepareConfig(from_dir=tmp_path))


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_real_headers_and_subsample(tmp_path):
    images = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
    assert read_idx_header(images)[1] == (60000, 28, 28)
    assert read_idx_header(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")[1] == (10000,)
    out = tmp_path / "fm"
    info = prepare("fashion-mnist", out, PrepareConfig(limit=300, progress=False))
    assert info.counts == {"train": 300, "test": 300} and info.options["limit"] == 300
    assert (info.height, info.width, info.channels, info.num_classes) == (28, 28, 1, 10)
    validate_dataset(out, decode=True)
    loaded = load_split_arrays(out, "train")
    np.testing.assert_array_equal(loaded.inputs[:, 0], read_idx(images, limit=300))
    assert set(np.unique(loaded.labels)) <= set(range(10))


def _write_images(folder, n, size, mode="RGB", fmt="PNG", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    for i in range(n):
        pixels = rng.integers(0, 256, (size[0], size[1], channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
            folder / f"img{i}.{fmt.lower()}", format=fmt
        )


def test_imagefolder_split_png_and_jpeg(tmp_path):
    root = tmp_path / "folder"
    _write_images(root / "cat", 5, (10, 12))
    _write_images(root / "dog", 5, (10, 12), fmt="JPEG", seed=1)
    _write_images(root / "eel", 5, (10, 12), mode="L", seed=2)  # converted to RGB
    (root / "empty").mkdir()
    (root / "cat" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    info = prepare(f"imagefolder:{root}", out, QUIET)
    assert info.class_names == ["cat", "dog", "eel"] and info.counts == {"train": 12, "test": 3}
    assert (info.height, info.width, info.channels) == (10, 12, 3)
    validate_dataset(out, decode=True)
    train = load_split_arrays(out, "train")
    assert train.inputs.shape == (12, 3, 10, 12)
    assert np.bincount(train.labels).tolist() == [4, 4, 4]
    paths = pq.read_table(out / "train" / "part-00000.parquet").column("path").to_pylist()
    cat_png = np.asarray(Image.open(root / paths[0]))
    np.testing.assert_array_equal(train.inputs[0], cat_png.transpose(2, 0, 1))  # PNG: lossless
    assert paths[0].startswith("cat/")


def test_imagefolder_train_val_and_resize(tmp_path):
    root = tmp_path / "in"
    _write_images(root / "train" / "a", 3, (20, 30))
    _write_images(root / "train" / "b", 2, (16, 16))
    _write_images(root / "val" / "b", 2, (40, 20))
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"img0\.png: image is 16x16.*--image-size"):
        prepare(f"imagefolder:{root}", out, QUIET)
    assert not out.exists()  # nothing half-written
    config = PrepareConfig(image_size=8, channels=1, progress=False, workers=0)
    info = prepare(f"imagefolder:{root}", out, config)
    assert info.counts == {"train": 5, "test": 2} and info.class_names == ["a", "b"]
    assert (info.height, info.width, info.channels) == (8, 8, 1)
    test = load_split_arrays(out, "test")
    assert test.inputs.shape == (2, 1, 8, 8) and test.labels.tolist() == [1, 1]
    validate_dataset(out, decode=True)
    _write_images(root / "val" / "zebra", 1, (8, 8))
    with pytest.raises(DatasetError, match="zebra are not among the train classes"):
        prepare(f"imagefolder:{root}", tmp_path / "o2", config)


def test_refuses_non_empty_out_unless_overwrite(tmp_path):
    out = tmp_path / "blobs"
    config = PrepareConfig(classes=2, samples_per_class=5, progress=False)
    prepare("blobs", out, config)
    first = json.loads((out / "dataset.json").read_text())["created"]
    with pytest.raises(DatasetError, match="not empty; pass --overwrite"):
        prepare("blobs", out, config)
    info = prepare("blobs", out, PrepareConfig(classes=3, samples_per_class=5, overwrite=True))
    assert info.num_classes == 3 and info.created != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs"]  # no staging left behind
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match=r"holds no dataset\.json"):
        prepare("blobs", other, PrepareConfig(overwrite=True))
    assert (other / "thesis.tex").exists()


def test_unknown_source(tmp_path):
    with pytest.raises(DatasetError, match="unknown source 'cifar'"):
        prepare("cifar", tmp_path / "x")
    with pytest.raises(DatasetError, match="image folder not found"):
        prepare(f"imagefolder:{tmp_path / 'nope'}", tmp_path / "x")
