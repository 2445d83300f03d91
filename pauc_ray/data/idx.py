"""Reading idx files (the MNIST / Fashion-MNIST format), gzip-compressed or not.

An idx file is: two zero bytes, a type code, the number of dimensions ``d``, ``d`` big-endian
int32 sizes, then the values in C order (big-endian for multi-byte types).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pauc_ray.data.dataset_info import DatasetError

__all__ = ["find_idx_file", "read_idx", "read_idx_header", "write_idx"]

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def _open(path: Path) -> BinaryIO:
    with path.open("rb") as raw:
        magic = raw.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else path.open("rb")


def _header(stream: BinaryIO, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = stream.read(4)
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _DTYPES:
        raise DatasetError(f"{path}: not an idx file (bad magic number {head.hex() or 'empty'})")
    ndim = head[3]
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{path}: truncated idx header")
    return _DTYPES[head[2]], struct.unpack(f">{ndim}I", dims)


def read_idx_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """``(dtype, shape)`` from the header alone."""
    path = Path(path)
    try:
        with _open(path) as stream:
            return _header(stream, path)
    except (OSError, EOFError) as err:
        raise DatasetError(f"{path}: cannot read idx file ({err})") from err


def read_idx(path: str | Path, limit: int | None = None) -> np.ndarray:
    """The array stored in ``path`` (native byte order); only its first ``limit`` items if set.

    Raises ``DatasetError`` naming the file when the header is bad or the data is short.
    """
    path = Path(path)
    try:
        with _open(path) as stream:
            dtype, shape = _header(stream, path)
            count = shape[0] if limit is None else min(limit, shape[0])
            item = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            data = stream.read(count * item)
    except (OSError, EOFError) as err:
        raise DatasetError(f"{path}: cannot read idx file ({err})") from err
    if len(data) != count * item:
        raise DatasetError(
            f"{path}: truncated data: header says {shape[0]} items of {item} bytes, "
            f"found {len(data) // max(item, 1)}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape((count, *shape[1:]))
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Writes a uint8/int8 array as an idx file (gzip when ``compress`` or the name ends .gz)."""
    path = Path(path)
    dtype = np.dtype(array.dtype)
    if dtype not in _CODES:
        raise ValueError(f"write_idx supports uint8 and int8, got {dtype}")
    header = bytes([0, 0, _CODES[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=1)
    path.write_bytes(payload)
    return path


def find_idx_file(folder: str | Path, stem: str) -> Path:
    """``folder/stem.gz`` or ``folder/stem`` (e.g. stem ``train-images-idx3-ubyte``); also the
    ``train-images.idx3-ubyte`` spelling some mirrors use."""
    folder = Path(folder)
    names = [stem, stem.replace("-idx", ".idx")]
    for name in names:
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    raise DatasetError(f"{folder}: no {stem}.gz or {stem} (expected the four idx files)")
