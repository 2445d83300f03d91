"""Every validation error names the file and, where there is one, the row."""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pauc_ray.data.parquet_io import (
    DatasetError,
    DatasetInfo,
    SplitWriter,
    WriteConfig,
    write_dataset_info,
)
from pauc_ray.data.validation import validate_dataset


def _png(height=4, width=4, mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 7).save(buffer, format="PNG")
    return buffer.getvalue()


def _image_dataset(root, columns: dict, counts=None, files=1):
    """One image split 'train' from raw columns, cut into ``files`` files."""
    table = pa.table(columns)
    (root / "train").mkdir(parents=True)
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    for i in range(files):
        pq.write_table(
            table.slice(bounds[i], bounds[i + 1] - bounds[i]),
            root / "train" / f"part-{i:05d}.parquet",
        )
    info = DatasetInfo(
        name="t", source="test", kind="image", counts=counts or {"train": table.num_rows},
        height=4, width=4, channels=1, num_classes=3,
    )  # fmt: skip
    write_dataset_info(root, info)
    return root / "train"


def _vector_dataset(root, x: pa.Array, ids=None, dim=3):
    n = len(x)
    ids = np.arange(n) if ids is None else ids
    (root / "train").mkdir(parents=True)
    pq.write_table(
        pa.table({"id": pa.array(ids, pa.int64()), "x": x}), root / "train" / "part-00000.parquet"
    )
    write_dataset_info(
        root, DatasetInfo(name="v", source="test", kind="vector", counts={"train": n}, dim=dim)
    )
    return root / "train" / "part-00000.parquet"


def _expect(match_file, row, call):
    with pytest.raises(DatasetError) as err:
        call()
    message = str(err.value)
    assert str(match_file) in message, message
    if row is not None:
        assert re.search(rf"\brow {row}\b", message), message
    return message


def test_valid_dataset_passes_and_reports(digits_dir):
    report = validate_dataset(digits_dir, "train")
    assert report.splits[0].rows == 1438 and report.splits[0].files == 3
    assert report.seconds >= 0 and not report.decoded


def test_missing_dataset_json(tmp_path):
    (tmp_path / "train").mkdir()
    _expect(tmp_path / "dataset.json", None, lambda: validate_dataset(tmp_path))


def test_missing_split_and_empty_split(tmp_path):
    split = _image_dataset(
        tmp_path,
        {"id": pa.array([], pa.int64()), "image": pa.array([], pa.binary())},
        counts={"train": 0, "test": 0},
    )
    message = _expect(split, None, lambda: validate_dataset(tmp_path, "train"))
    assert "empty" in message
    _expect(tmp_path / "test", None, lambda: validate_dataset(tmp_path, "test"))


def test_missing_column(tmp_path):
    split = _image_dataset(tmp_path, {"id": [0, 1], "pixels": [_png(), _png()]})
    message = _expect(split / "part-00000.parquet", None, lambda: validate_dataset(tmp_path))
    assert "missing column 'image'" in message


def test_undecodable_image(tmp_path):
    images = [_png(), _png(), b"not a png at all", _png()]
    split = _image_dataset(tmp_path, {"id": range(4), "image": images}, files=2)
    message = _expect(split / "part-00001.parquet", 0, lambda: validate_dataset(tmp_path))
    assert "undecodable" in message


def test_truncated_image_caught_only_when_decoding(tmp_path):
    big = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (4, 4), np.uint8)).save(big, "PNG")
    truncated = big.getvalue()[:-30]
    _image_dataset(tmp_path, {"id": [0, 1], "image": [_png(), truncated]})
    validate_dataset(tmp_path)  # the header is intact
    message = _expect(
        tmp_path / "train" / "part-00000.parquet",
        1,
        lambda: validate_dataset(tmp_path, decode=True),
    )
    assert "undecodable" in message


def test_wrong_image_shape_and_mode(tmp_path):
    _image_dataset(tmp_path / "a", {"id": [0, 1, 2], "image": [_png(), _png(), _png(5, 4)]})
    message = _expect(
        tmp_path / "a" / "train" / "part-00000.parquet", 2, lambda: validate_dataset(tmp_path / "a")
    )
    assert "5x4" in message and "4x4" in message
    _image_dataset(tmp_path / "b", {"id": [0, 1], "image": [_png(mode="RGB"), _png()]})
    _expect(
        tmp_path / "b" / "train" / "part-00000.parquet", 0, lambda: validate_dataset(tmp_path / "b")
    )


def test_duplicate_id_names_both_rows(tmp_path):
    split = _image_dataset(tmp_path, {"id": [0, 1, 2, 3, 1, 5], "image": [_png()] * 6}, files=2)
    message = _expect(split / "part-00001.parquet", 1, lambda: validate_dataset(tmp_path))
    assert "duplicate id 1" in message and f"{split / 'part-00000.parquet'} row 1" in message
    assert "id 4 is missing" in message


def test_out_of_range_id_means_missing(tmp_path):
    split = _image_dataset(tmp_path, {"id": [0, 1, 7], "image": [_png()] * 3})
    message = _expect(split / "part-00000.parquet", 2, lambda: validate_dataset(tmp_path))
    assert "id 7 is outside 0..2" in message and "id 2 is missing" in message


def test_null_id_and_bad_label(tmp_path):
    _image_dataset(tmp_path / "a", {"id": pa.array([0, None], pa.int64()), "image": [_png()] * 2})
    _expect(
        tmp_path / "a" / "train" / "part-00000.parquet", 1, lambda: validate_dataset(tmp_path / "a")
    )
    _image_dataset(tmp_path / "b", {"id": [0, 1], "image": [_png()] * 2, "label": [2, 3]})
    message = _expect(
        tmp_path / "b" / "train" / "part-00000.parquet", 1, lambda: validate_dataset(tmp_path / "b")
    )
    assert "label 3, expected 0..2" in message


def test_count_disagrees_with_dataset_json(tmp_path):
    _image_dataset(tmp_path, {"id": [0, 1], "image": [_png()] * 2}, counts={"train": 3})
    message = _expect(tmp_path / "dataset.json", None, lambda: validate_dataset(tmp_path))
    assert "3 rows" in message and "holds 2" in message


def test_vector_wrong_length(tmp_path):
    x = pa.array([[0.0, 1.0, 2.0], [0.0, 1.0], [1.0, 1.0, 1.0]], pa.list_(pa.float32()))
    path = _vector_dataset(tmp_path / "a", x)
    message = _expect(path, 1, lambda: validate_dataset(tmp_path / "a"))
    assert "length 2" in message and "dim 3" in message
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(8, np.float32)), 4)
    _expect(_vector_dataset(tmp_path / "b", fixed), 0, lambda: validate_dataset(tmp_path / "b"))


def test_vector_nan_and_null(tmp_path):
    values = np.zeros((4, 3), np.float32)
    values[2, 1] = np.nan
    x = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), 3)
    message = _expect(
        _vector_dataset(tmp_path / "a", x), 2, lambda: validate_dataset(tmp_path / "a")
    )
    assert "NaN" in message
    x = pa.array([[0.0, 0, 0], None], pa.list_(pa.float32(), 3))
    _expect(_vector_dataset(tmp_path / "b", x), 1, lambda: validate_dataset(tmp_path / "b"))


def test_writer_output_is_valid_and_sharded(tmp_path):
    with SplitWriter(tmp_path / "train", "vector", dim=2, config=WriteConfig(rows_per_file=4)) as w:
        w.add(np.ones((3, 2), np.float32), labels=np.zeros(3, np.int64))
        w.add(np.ones((6, 2), np.float32), labels=np.ones(6, np.int64))
    assert [pq.read_metadata(f).num_rows for f in w.files] == [4, 4, 1]
    write_dataset_info(
        tmp_path,
        DatasetInfo(name="w", source="t", kind="vector", counts={"train": 9}, dim=2, num_classes=2),
    )
    assert validate_dataset(tmp_path).splits[0].rows == 9
