"""Encoding and decoding of the ``image`` column (PNG or JPEG bytes) with Pillow."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["CHANNELS_OF_MODE", "decode_images", "encode_png", "image_header"]

# Modes a stored image may have, and the channels each decodes to. Other modes (P, RGBA, CMYK,
# 16-bit) are converted by `prepare`, never stored.
CHANNELS_OF_MODE = {"L": 1, "RGB": 3}
_MODE_OF_CHANNELS = {1: "L", 3: "RGB"}


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of one uint8 image, (H, W) grayscale or (H, W, 3) RGB."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def image_header(data: bytes, decode: bool = False) -> tuple[int, int, int, str]:
    """``(height, width, channels, mode)`` of encoded image bytes, read from the header.

    With ``decode`` the pixels are decoded too, which also catches truncated or corrupt data
    (about 10x slower). Channels is 0 for a mode other than L or RGB. Raises ``OSError`` or
    ``ValueError`` (from Pillow) when the bytes are not an image.
    """
    with Image.open(io.BytesIO(data)) as image:
        if decode:
            image.load()
        width, height = image.size
        return height, width, CHANNELS_OF_MODE.get(image.mode, 0), image.mode


def decode_images(blobs: Sequence[bytes], channels: int, height: int, width: int) -> np.ndarray:
    """Decodes encoded images into a (B, C, H, W) uint8 array.

    Images in another colour mode are converted to ``channels`` (L or RGB); an image of
    another size raises ``ValueError`` naming its position in ``blobs``.
    """
    mode = _MODE_OF_CHANNELS[channels]
    out = np.empty((len(blobs), height, width, channels), dtype=np.uint8)
    for i, data in enumerate(blobs):
        if data is None:
            raise ValueError(f"image {i} is null")
        with Image.open(io.BytesIO(data)) as image:
            if image.size != (width, height):
                raise ValueError(
                    f"image {i} is {image.size[1]}x{image.size[0]}, expected {height}x{width}"
                )
            if image.mode != mode:
                image = image.convert(mode)
            pixels = np.asarray(image)
        out[i] = pixels.reshape(height, width, channels)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
