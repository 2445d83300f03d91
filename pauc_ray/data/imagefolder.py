"""ImageNet-style class folders: ``ROOT/<class>/**/*.jpg|png|...``.

Class names are the sorted sub-folder names (label = position), as torchvision's
``ImageFolder`` does; folders holding no image are left out with a warning. ``ROOT`` is a local
folder or a URI (``s3://bucket/raw/in100``): listing and reading go through its filesystem.
"""

from __future__ import annotations

import io
import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pauc_ray.data.dataset_info import DatasetError
from pauc_ray.storage import Location, resolve

__all__ = ["IMAGE_SUFFIXES", "FolderImages", "ImageEncoder", "scan_class_folders"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)

ORIENTATION_TAG = 0x0112  # EXIF Orientation


@dataclass(frozen=True)
class FolderImages:
    """Images found under class folders: ``paths[i]`` has label ``labels[i]`` (int64).

    Attributes:
        class_names: label -> class folder name.
        paths: the image files (on the root's filesystem).
        labels: (N,) int64.
        root: the scanned folder; ``relative(i)`` names a file within it.
    """

    class_names: list[str]
    paths: list[Location]
    labels: np.ndarray
    root: Location

    def relative(self, path: Location) -> str:
        """``class/.../file.png``: where ``path`` lies under the root (the ``path`` column)."""
        return posixpath.relpath(path.path, self.root.path)


def scan_class_folders(
    root: str | Path | Location, class_names: list[str] | None = None
) -> FolderImages:
    """Lists ``root/<class>/...`` images, sorted by class then path.

    Args:
        root: folder (local or URI) with one sub-folder per class.
        class_names: fixed label order (e.g. the train split's, for the val split); a class
            folder not in it is an error. ``None``: the sorted non-empty sub-folders.
    """
    root = resolve(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    found: dict[str, list[Location]] = {}
    for folder in root.children():
        if not folder.is_dir():
            continue
        files = [
            p
            for p in folder.walk_files()
            if posixpath.splitext(p.name)[1].lower() in IMAGE_SUFFIXES
        ]
        if files:
            found[folder.name] = files
        else:
            logger.warning("%s: no images, class left out", folder)
    if not found:
        raise DatasetError(
            f"{root}: no images in class sub-folders (expected ROOT/<class>/*.jpg|png|...)"
        )
    if class_names is None:
        class_names = sorted(found)
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DatasetError(
            f"{root}: class folder(s) {', '.join(unknown)} are not among the train classes"
        )
    index = {name: i for i, name in enumerate(class_names)}
    paths = [p for name in sorted(found, key=index.get) for p in found[name]]
    labels = np.array(
        [index[name] for name in sorted(found, key=index.get) for _ in found[name]],
        dtype=np.int64,
    )
    return FolderImages(class_names=list(class_names), paths=paths, labels=labels, root=root)


class ImageEncoder:
    """Turns image files into the stored bytes, all of one size and colour mode.

    A file already in the target mode and size, as PNG or JPEG, is stored byte for byte (no
    re-compression); others are converted (``ImageOps.fit``: centre crop to a square and resize
    when ``size`` is set) and re-encoded in their own format when JPEG, else as PNG.

    Args:
        channels: 1 (mode L) or 3 (RGB).
        size: side of the square every image is brought to; ``None`` keeps sizes, which must
            then all equal the first image's.
        jpeg_quality: quality of re-encoded JPEGs.
    """

    def __init__(self, channels: int = 3, size: int | None = None, jpeg_quality: int = 95):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if size is not None and size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.mode = "L" if channels == 1 else "RGB"
        self.size = size
        self.jpeg_quality = jpeg_quality
        self.shape: tuple[int, int] | None = (size, size) if size else None  # (H, W)
        self.first: str | None = None  # the file that set ``shape`` (when size is None)

    def __call__(self, path: str | Path | Location) -> bytes:
        """The stored bytes of the image file ``path`` (local or on any filesystem)."""
        path = resolve(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DatasetError(f"{path}: cannot read image ({err})") from err
        return self.encode(data, str(path))

    def encode(self, data: bytes, name: str) -> bytes:
        """The stored bytes of one image file's contents ``data``; ``name`` is for messages."""
        try:
            with Image.open(io.BytesIO(data)) as image:
                image_format = image.format
                image.load()
                return self._convert(name, data, image, image_format)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            if isinstance(err, DatasetError):
                raise
            raise DatasetError(f"{name}: cannot read image ({err})") from err

    def _convert(self, name: str, data: bytes, image: Image.Image, image_format: str) -> bytes:
        changed = False
        # a photo's EXIF orientation is applied, as viewers do (and as the service does)
        if image.getexif().get(ORIENTATION_TAG, 1) != 1:
            image = ImageOps.exif_transpose(image)
            changed = True
        if image.mode != self.mode:
            image = image.convert(self.mode)
            changed = True
        if self.size is not None and image.size != (self.size, self.size):
            image = ImageOps.fit(image, (self.size, self.size), Image.Resampling.BICUBIC)
            changed = True
        height_width = (image.size[1], image.size[0])
        if self.shape is None:
            self.shape, self.first = height_width, name
        elif height_width != self.shape:
            raise DatasetError(
                f"{name}: image is {height_width[0]}x{height_width[1]}, but {self.first} is "
                f"{self.shape[0]}x{self.shape[1]}; pass --image-size to resize all images"
            )
        if not changed and image_format in ("PNG", "JPEG"):
            return data
        buffer = io.BytesIO()
        if image_format == "JPEG":
            image.save(buffer, format="JPEG", quality=self.jpeg_quality)
        else:
            image.save(buffer, format="PNG")
        return buffer.getvalue()
