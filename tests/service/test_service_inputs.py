"""service.inputs: every malformed input is an ApiError(422) naming the item."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from service_storage import digit_images, encode, png_b64

from service.errors import ApiError
from service.inputs import parse_items, parse_uploads

SHAPE = (1, 8, 8)


def image_error(item, shape=SHAPE) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_items([png_b64(digit_images(1)[0]), item], "image", shape, max_items=16)
    assert info.value.status == 422 and info.value.field == "inputs[1]"
    return info.value


def vector_error(item) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_items([[0.0, 1.0, 2.0], item], "vector", (3,), max_items=16)
    assert info.value.status == 422 and info.value.field == "inputs[1]"
    return info.value


def test_images_decode_to_uint8_chw():
    images = digit_images(3)
    items = [png_b64(images[0]), png_b64(images[1]), png_b64(images[2])]
    items[2] = "data:image/png;base64," + items[2]  # a data URL is accepted
    out = parse_items(items, "image", SHAPE, max_items=16)
    assert out.dtype == np.uint8 and out.shape == (3, 1, 8, 8)
    np.testing.assert_array_equal(out[:, 0], images)
    jpeg = base64.b64encode(encode(images[0], "JPEG")).decode()
    assert parse_items([jpeg], "image", SHAPE, max_items=16).shape == (1, 1, 8, 8)
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = parse_items([png_b64(rgb)], "image", (3, 8, 8), max_items=16)
    np.testing.assert_array_equal(out[0], rgb.transpose(2, 0, 1))


def test_vectors_parse_to_float32():
    out = parse_items([[1, 2.5, -3], [0, 0, 1e-3]], "vector", (3,), max_items=16)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_allclose(out[0], [1, 2.5, -3])


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("not base64!!", "not valid base64"),
        ("", "empty string"),
        ("data:image/png,abc", "data URL"),
        (base64.b64encode(b"just some text, no image").decode(), "not a PNG or JPEG image"),
        (base64.b64encode(encode(digit_images(1)[0], "GIF")).decode(), "GIF image"),
        (png_b64(np.zeros((9, 8), np.uint8)), "image is 9x8 (HxW), expected 8x8"),
        (png_b64(np.zeros((8, 8, 3), np.uint8)), "mode RGB (3 channel(s)), expected 1"),
        (png_b64(digit_images(1)[0])[:60], "not"),  # truncated: bad padding or broken PNG
        ([0.0, 1.0], "got a list; this model takes images"),
        (7, "expected a base64 string, got int"),
    ],
)
def test_bad_images_are_named(item, says):
    error = image_error(item)
    assert error.message.startswith("inputs[1]: ") and says in error.message


def test_truncated_png_with_valid_base64():
    data = encode(digit_images(1)[0], "PNG")
    error = image_error(base64.b64encode(data[: len(data) // 2]).decode())
    assert "not a readable PNG or JPEG image" in error.message


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ([1.0, 2.0], "vector of length 2, expected 3"),
        ([1.0, 2.0, 3.0, 4.0], "vector of length 4, expected 3"),
        ([1.0, float("nan"), 3.0], "NaN or infinity"),
        ([1.0, float("inf"), 3.0], "NaN or infinity"),
        ([1.0, 1e39, 3.0], "beyond float32"),
        ([1.0, True, 3.0], "non-number"),
        ([1.0, "2", 3.0], "non-number"),
        ("aGVsbG8=", "got a string; this model takes vectors of 3 numbers"),
        ({"x": 1}, "expected a list of 3 numbers, got dict"),
        (None, "got NoneType"),
    ],
)
def test_bad_vectors_are_named(item, says):
    error = vector_error(item)
    assert error.message.startswith("inputs[1]: ") and says in error.message


def test_empty_and_too_many():
    with pytest.raises(ApiError, match="inputs: empty list") as info:
        parse_items([], "vector", (3,), max_items=4)
    assert info.value.field == "inputs"
    with pytest.raises(ApiError, match="inputs: 5 items, at most 4 allowed"):
        parse_items([[0, 0, 0]] * 5, "vector", (3,), max_items=4)
    with pytest.raises(ApiError, match="inputs: expected a list, got str"):
        parse_items("abc", "vector", (3,), max_items=4)


def test_every_bad_item_is_listed():
    items = [[1, 2], [1, 2, 3], [float("nan")] * 3]
    with pytest.raises(ApiError) as info:
        parse_items(items, "vector", (3,), max_items=16)
    assert [e["field"] for e in info.value.errors] == ["inputs[0]", "inputs[2]"]
    assert "(and 1 more)" in info.value.message


def test_uploads_are_named_by_position_and_file_name():
    good = encode(digit_images(1)[0], "PNG")
    out = parse_uploads([("a.png", good), ("b.png", good)], SHAPE, max_items=4)
    assert out.shape == (2, 1, 8, 8)
    with pytest.raises(ApiError) as info:
        parse_uploads([("a.png", good), ("notes.txt", b"hello")], SHAPE, max_items=4)
    assert info.value.field == "files[1]"
    assert info.value.message.startswith("files[1] (notes.txt): not a PNG or JPEG image")
    with pytest.raises(ApiError, match="files: 3 items, at most 2"):
        parse_uploads([("a.png", good)] * 3, SHAPE, max_items=2)
