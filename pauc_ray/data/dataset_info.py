"""``dataset.json``: what a prepared dataset holds, and the error every data check raises."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pauc_ray.storage import Location, resolve

__all__ = [
    "FORMAT_VERSION",
    "INFO_FILE",
    "KINDS",
    "DatasetError",
    "DatasetInfo",
    "read_dataset_info",
    "sample_column",
    "write_dataset_info",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INFO_FILE = "dataset.json"
KINDS = ("image", "vector")


class DatasetError(ValueError):
    """A prepared dataset (or a source to prepare one from) is missing or malformed.

    The message names the file (and the row, where there is one) and what was expected.
    """


@dataclass(frozen=True)
class DatasetInfo:
    """The contents of ``dataset.json``.

    Attributes:
        name: short name, e.g. ``"fashion-mnist"``, ``"blobs-10"``, an image folder's name.
        source: what it was prepared from, e.g. ``"digits"``, ``"imagefolder:/data/in100"``.
        kind: ``"image"`` (column ``image``) or ``"vector"`` (column ``x``).
        counts: rows per split, e.g. ``{"train": 60000, "test": 10000}``.
        height, width, channels: image shape (every image has it); ``None`` for vectors.
        dim: vector length; ``None`` for images.
        num_classes: number of label values (labels lie in 0..num_classes-1), ``None`` if
            unlabelled.
        class_names: name of each label value, when known.
        created: ISO 8601 UTC time of writing.
        format_version: version of this layout (``FORMAT_VERSION``).
        options: the settings used to prepare it (seed, test fraction, limit, ...).
    """

    name: str
    source: str
    kind: str
    counts: dict[str, int]
    height: int | None = None
    width: int | None = None
    channels: int | None = None
    dim: int | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    format_version: int = FORMAT_VERSION
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "image" and not all(
            isinstance(v, int) and v > 0 for v in (self.height, self.width, self.channels)
        ):
            raise ValueError(
                "an image dataset needs positive integer height, width and channels, got "
                f"{self.height}, {self.width}, {self.channels}"
            )
        if self.kind == "image" and self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.kind == "vector" and not (isinstance(self.dim, int) and self.dim > 0):
            raise ValueError(f"a vector dataset needs a positive integer dim, got {self.dim}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names has {len(self.class_names)} entries but num_classes is "
                f"{self.num_classes}"
            )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one decoded sample: (C, H, W) for images, (dim,) for vectors."""
        if self.kind == "image":
            return (self.channels, self.height, self.width)
        return (self.dim,)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict, where: str = INFO_FILE) -> DatasetInfo:
        """Builds from parsed JSON; raises ``DatasetError`` naming ``where`` if malformed."""
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise DatasetError(
                f"{where}: format_version {version!r} is not supported (this code reads "
                f"versions up to {FORMAT_VERSION})"
            )
        missing = [k for k in ("name", "source", "kind", "counts") if k not in data]
        if missing:
            raise DatasetError(f"{where}: missing field(s) {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("%s: ignoring unknown field(s) %s", where, ", ".join(unknown))
        counts = data["counts"]
        if not isinstance(counts, dict) or not all(
            isinstance(v, int) and v >= 0 for v in counts.values()
        ):
            raise DatasetError(f"{where}: counts must map split names to row counts")
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as err:
            raise DatasetError(f"{where}: {err}") from err


def read_dataset_info(directory: str | Path | Location) -> DatasetInfo:
    """Reads ``DIR/dataset.json`` (a local folder or a URI such as ``s3://bucket/data/x``);
    ``DatasetError`` if it is missing or malformed."""
    where = resolve(directory)
    path = where / INFO_FILE
    if not path.is_file():
        if not where.is_dir():
            raise DatasetError(f"{directory}: no such dataset directory")
        raise DatasetError(
            f"{path}: missing (prepare the dataset with `python -m pauc_ray.data prepare`)"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: not readable JSON: {err}") from err
    return DatasetInfo.from_dict(data, where=str(path))


def write_dataset_info(directory: str | Path | Location, info: DatasetInfo) -> Location:
    """Writes ``DIR/dataset.json`` whole (readers take its presence as "the dataset is
    complete", so it is written after the shards)."""
    return (resolve(directory) / INFO_FILE).write_text(info.to_json())


def sample_column(info: DatasetInfo) -> str:
    """``"image"`` or ``"x"``: the column holding the sample."""
    return "image" if info.kind == "image" else "x"
