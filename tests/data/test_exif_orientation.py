"""A photo's EXIF orientation: applied when an image folder is prepared and when the service
decodes an upload, so a model sees the same pixels in both."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pauc_ray.data.image_codec import decode_images
from pauc_ray.data.imagefolder import ORIENTATION_TAG, ImageEncoder
from service.inputs import decode_image as decode_upload


def _rotated_jpeg(tmp_path):
    """A 6x10 (HxW) JPEG stored sideways with orientation 6 ("rotate 90 clockwise to view")."""
    rng = np.random.default_rng(0)
    upright = rng.integers(0, 255, (10, 6), dtype=np.uint8)  # as it should be viewed: 10x6
    stored = Image.fromarray(np.rot90(upright, k=1).copy(), mode="L")  # sideways: 6x10
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=100, exif=exif)
    path = tmp_path / "photo.jpg"
    path.write_bytes(buffer.getvalue())
    return path, upright


def test_prepared_and_uploaded_photos_are_turned_the_same_way(tmp_path):
    path, upright = _rotated_jpeg(tmp_path)
    stored = ImageEncoder(channels=1)(path)
    prepared = decode_images([stored], 1, 10, 6)[0, 0]  # what training decodes
    uploaded = decode_upload(path.read_bytes(), (1, 10, 6))[0]
    assert prepared.shape == (10, 6) and uploaded.shape == (10, 6)
    # prepared is re-encoded after the turn (JPEG again), so equal up to compression error
    turned_alike = np.abs(prepared.astype(int) - uploaded.astype(int)).mean()
    upside_down = np.abs(prepared.astype(int) - uploaded[::-1, ::-1].astype(int)).mean()
    assert turned_alike < 8 < upside_down
    # JPEG is lossy: the upright picture, not the sideways one, within compression error
    assert np.abs(prepared.astype(int) - upright.astype(int)).mean() < 20
