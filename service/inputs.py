"""Request inputs to arrays: base64 PNG/JPEG images, uploaded image files, float vectors.

Every check names the item (``inputs[3]``, ``files[0] (cat.png)``) and says what was expected.
Images are checked from their header (format, size, mode) before any pixel is decoded, so a
huge or malformed upload costs little; they are never resized or converted, because a model
only means something on inputs like the ones it was trained on. A JPEG's EXIF orientation is
applied (its size is checked as displayed), as ``python -m pauc_ray.data prepare`` applies it to
an image folder's photos.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from service.errors import MAX_REPORTED, ApiError

__all__ = ["decode_image", "parse_items", "parse_uploads"]

FORMATS = ("PNG", "JPEG")
ORIENTATION_TAG = 0x0112  # EXIF Orientation
_MODE_OF_CHANNELS = {1: "L", 3: "RGB"}
_CHANNELS_OF_MODE = {"1": 1, "L": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "I": 1}
_DATA_URL = "data:"
_BAD_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class _ItemError(ValueError):
    pass


def _b64(text: str) -> bytes:
    if text.startswith(_DATA_URL):  # data:image/png;base64,....
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise _ItemError("a data URL must be 'data:<type>;base64,<data>'")
    cleaned = "".join(text.split())
    if not cleaned:
        raise _ItemError("empty string; expected base64 PNG or JPEG bytes")
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _ItemError(f"not valid base64 ({exc})") from None


def decode_image(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """(C, H, W) uint8 pixels of PNG or JPEG ``data`` that must be exactly ``shape``.

    Raises a ``ValueError`` saying what is wrong (not an image, format, size, channels).
    """
    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in FORMATS:
                raise _ItemError(f"is a {image.format} image; expected PNG or JPEG")
            if image.getexif().get(ORIENTATION_TAG, 1) != 1:
                image = ImageOps.exif_transpose(image)
            if image.size != (width, height):
                raise _ItemError(
                    f"image is {image.size[1]}x{image.size[0]} (HxW), expected {height}x{width}"
                )
            if image.mode != _MODE_OF_CHANNELS[channels]:
                got = _CHANNELS_OF_MODE.get(image.mode, "?")
                raise _ItemError(
                    f"image has mode {image.mode} ({got} channel(s)), expected {channels} "
                    f"channel(s) (mode {_MODE_OF_CHANNELS[channels]})"
                )
            pixels = np.asarray(image)
    except _ItemError:
        raise
    except _BAD_IMAGE as exc:
        if isinstance(exc, OSError) and "cannot identify" in str(exc):
            raise _ItemError("not a PNG or JPEG image") from None
        raise _ItemError(f"not a readable PNG or JPEG image ({exc})") from None
    return pixels.reshape(height, width, channels).transpose(2, 0, 1)


def _vector(item: Any, dim: int) -> np.ndarray:
    if isinstance(item, str):
        raise _ItemError(f"got a string; this model takes vectors of {dim} numbers")
    if not isinstance(item, list):
        raise _ItemError(f"expected a list of {dim} numbers, got {type(item).__name__}")
    if len(item) != dim:
        raise _ItemError(f"vector of length {len(item)}, expected {dim}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item):
        raise _ItemError(f"expected {dim} numbers, got a non-number")
    vector = np.asarray(item, dtype=np.float64)
    if not np.isfinite(vector).all():
        raise _ItemError("contains NaN or infinity")
    if np.abs(vector).max(initial=0.0) > np.finfo(np.float32).max:
        raise _ItemError("contains a value beyond float32's range")
    return vector.astype(np.float32)


def _image_item(item: Any, shape: tuple[int, int, int]) -> np.ndarray:
    if isinstance(item, list):
        raise _ItemError("got a list; this model takes images (base64 PNG or JPEG strings)")
    if not isinstance(item, str):
        raise _ItemError(f"expected a base64 string, got {type(item).__name__}")
    return decode_image(_b64(item), shape)


def _collect(results: list, errors: list, field: str, label: str, fn, *args) -> None:
    try:
        results.append(fn(*args))
    except ValueError as exc:
        errors.append({"field": field, "message": f"{label}: {exc}"})


def _check_count(count: int, max_items: int, field: str) -> None:
    if count == 0:
        raise ApiError(422, f"{field}: empty list; give at least one input", field)
    if count > max_items:
        raise ApiError(422, f"{field}: {count} items, at most {max_items} allowed", field)


def _raise_first(errors: list[dict[str, str]]) -> None:
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ApiError(422, errors[0]["message"] + more, errors[0]["field"], errors)


def parse_items(
    items: Any, kind: str, shape: tuple[int, ...], max_items: int, field: str = "inputs"
) -> np.ndarray:
    """Raw inputs of a JSON request: (N, C, H, W) uint8 images or (N, dim) float32 vectors.

    Raises ``ApiError(422)`` naming every bad item (at most ``MAX_REPORTED``).
    """
    if not isinstance(items, list):
        raise ApiError(422, f"{field}: expected a list, got {type(items).__name__}", field)
    _check_count(len(items), max_items, field)
    out: list[np.ndarray] = []
    errors: list[dict[str, str]] = []
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if kind == "image":
            _collect(out, errors, where, where, _image_item, item, shape)
        else:
            _collect(out, errors, where, where, _vector, item, shape[0])
        if len(errors) >= MAX_REPORTED:
            break
    _raise_first(errors)
    return np.stack(out)


def parse_uploads(
    files: Sequence[tuple[str, bytes]], shape: tuple[int, int, int], max_items: int
) -> np.ndarray:
    """(N, C, H, W) uint8 images of uploaded files ``(filename, bytes)``, named ``files[i]``."""
    _check_count(len(files), max_items, "files")
    out: list[np.ndarray] = []
    errors: list[dict[str, str]] = []
    for i, (name, data) in enumerate(files):
        label = f"files[{i}] ({name})" if name else f"files[{i}]"
        _collect(out, errors, f"files[{i}]", label, decode_image, data, shape)
        if len(errors) >= MAX_REPORTED:
            break
    _raise_first(errors)
    return np.stack(out)
