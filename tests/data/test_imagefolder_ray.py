"""Image folders converted by Ray tasks (``imagefolder_ray.py``) against the same folder
converted in one process (the slow obvious reference), on local disk and on the loopback S3
server: the same rows, ids, labels, paths and stored bytes; errors name the file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pauc_ray.data import __main__ as data_cli
from pauc_ray.data.imagefolder_ray import MIN_CHUNK, chunk_size
from pauc_ray.data.parquet_io import (
    DatasetError,
    load_split_arrays,
    read_dataset_info,
    split_files,
)
from pauc_ray.data.sources import PrepareConfig, prepare, resolve_dataset
from pauc_ray.data.validation import validate_dataset
from pauc_ray.storage import resolve

pytestmark = pytest.mark.ray


def _folder(root, classes=3, per_class=30, size=(12, 10)):
    """PNG, JPEG and grayscale images in class folders, one nested sub-folder."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            folder = root / f"class{c}" / ("nested" if i % 7 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            fmt = ("PNG", "JPEG", "L")[i % 3]
            image = Image.fromarray(pixels).convert("L") if fmt == "L" else Image.fromarray(pixels)
            image.save(folder / f"im{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}")
    return root


def _table(directory, split) -> pa.Table:
    files = split_files(directory, split)
    table = pa.concat_tables(pq.read_table(f.path, filesystem=f.fs) for f in files)
    return table.sort_by("id")


def _assert_same_dataset(a, b):
    info_a, info_b = read_dataset_info(a), read_dataset_info(b)
    assert info_a.counts == info_b.counts and info_a.class_names == info_b.class_names
    assert (info_a.height, info_a.width, info_a.channels) == (
        info_b.height,
        info_b.width,
        info_b.channels,
    )
    for split in info_a.counts:
        assert _table(a, split).equals(_table(b, split))  # ids, bytes, labels, paths


def test_chunks_give_every_worker_several_tasks_within_a_shard():
    assert chunk_size(10_000, 2, 10_000) == 1250
    assert chunk_size(100, 2, 10_000) == MIN_CHUNK
    assert chunk_size(10_000, 1, 500) == 500
    assert chunk_size(3, 8, 2) == 2


def test_ray_tasks_write_what_one_process_writes(ray_cluster, tmp_path):
    root = _folder(tmp_path / "folder")
    here = prepare(
        f"imagefolder:{root}",
        tmp_path / "here",
        PrepareConfig(workers=0, rows_per_file=16, progress=False),
    )
    config = PrepareConfig(workers=2, rows_per_file=16, progress=False)
    ray_info = prepare(f"imagefolder:{root}", tmp_path / "ray", config)
    assert ray_info.counts == here.counts == {"train": 72, "test": 18}
    assert len(split_files(tmp_path / "ray", "train")) == 5  # 72 rows, tasks of <= 16
    _assert_same_dataset(tmp_path / "here", tmp_path / "ray")
    validate_dataset(tmp_path / "ray", decode=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "here", "ray"]


def test_sizes_that_differ_between_tasks_are_refused(ray_cluster, tmp_path):
    root = tmp_path / "folder"
    _folder(root, classes=2, per_class=4)
    Image.new("RGB", (20, 20)).save(root / "class1" / "zz_big.png")  # the last task's
    config = PrepareConfig(workers=2, rows_per_file=2, test_fraction=0, progress=False)
    with pytest.raises(DatasetError, match=r"zz_big\.png: image is 20x20, but .* is 12x10"):
        prepare(f"imagefolder:{root}", tmp_path / "out", config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # no staging left


def test_an_unreadable_image_is_named(ray_cluster, tmp_path):
    root = _folder(tmp_path / "folder", classes=2, per_class=4)
    (root / "class0" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match=r"broken\.png: cannot read image"):
        prepare(f"imagefolder:{root}", tmp_path / "out", PrepareConfig(workers=2, progress=False))
    assert not (tmp_path / "out").exists()


def test_an_image_folder_on_s3_becomes_a_dataset_on_s3(ray_cluster, s3_bucket, tmp_path, capsys):
    local = _folder(tmp_path / "folder")
    reference = tmp_path / "reference"
    prepare(f"imagefolder:{local}", reference, PrepareConfig(workers=0, progress=False))
    source = resolve(f"{s3_bucket}/raw/folder").upload(local)
    out = f"{s3_bucket}/data/folder"
    argv = ["prepare", f"imagefolder:{source}", "--out", out, "--workers", "2", "--no-progress"]
    assert data_cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"to {out}: train 72, test 18 rows" in printed and "rows/s" in printed
    store = resolve(out)
    assert {f.name for f in store.walk_files()} >= {"dataset.json", "part-00000.parquet"}
    _assert_same_dataset(reference, out)
    validate_dataset(out, decode=True)
    np.testing.assert_array_equal(
        load_split_arrays(out, "test").inputs, load_split_arrays(reference, "test").inputs
    )
    # a second prepare into the same place is refused unless asked to replace it
    assert data_cli.main(argv) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert data_cli.main([*argv, "--overwrite"]) == 0
    _assert_same_dataset(reference, out)


def test_built_in_sources_prepare_into_s3_on_first_use(s3_bucket, tmp_path):
    data_dir = f"{s3_bucket}/data"
    found = resolve_dataset("digits", data_dir, seed=0)
    assert found == f"{data_dir}/digits"
    reference = tmp_path / "digits"
    prepare("digits", reference, PrepareConfig(progress=False))
    _assert_same_dataset(reference, found)
    validate_dataset(found)
    assert resolve_dataset(f"parquet:{found}", "unused") == found
    with pytest.raises(DatasetError, match=r"holds no dataset\.json"):
        resolve_dataset(f"parquet:{s3_bucket}/nothing", "unused")


def test_ray_data_reads_a_dataset_on_s3(ray_cluster, s3_bucket, digits_dir):
    from pauc_ray.data.ray_dataset import RayReadConfig, read_split

    remote = resolve(f"{s3_bucket}/data/digits").upload(digits_dir)
    expected = load_split_arrays(digits_dir, "train")
    for reader in ("tasks", "parquet"):
        rows = read_split(str(remote), "train", RayReadConfig(reader=reader)).take_all()
        ids = np.array([r["id"] for r in rows])
        order = np.argsort(ids)
        np.testing.assert_array_equal(ids[order], expected.ids)
        images = np.stack([rows[i]["image"] for i in order])
        np.testing.assert_array_equal(images, expected.inputs)
