"""Exported models: the query encoder plus everything needed to use it, and the one loader.

``RUN_DIR/export/`` holds ``model.pt`` (the encoder's ``state_dict`` only: tensors, read with
``weights_only=True``) and ``model.json`` (the encoder spec, the input preprocessing, the
method, dataset and metrics of the run). :func:`load_exported_model` rebuilds the encoder and
loads the weights strictly (every key must match), in the way DINO's hub entry points do, and
parses the preprocessing (``model.json`` ``preprocessing.augment``) strictly into the
:class:`~pauc_ray.data.augment.AugmentConfig` the run trained with. The service and the
evaluation read models, and their preprocessing, only through it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pauc_ray.config_io import from_dict
from pauc_ray.data.augment import AugmentConfig
from pauc_ray.model.acceleration import use_channels_last
from pauc_ray.model.backbones import EncoderSpec, build_encoder, represent
from pauc_ray.storage import Location, is_remote, resolve

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"
META_FILE = "model.json"


class ExportError(ValueError):
    """A missing or malformed export."""


@dataclass(frozen=True)
class ExportedModel:
    """A loaded encoder in eval mode and its description.

    Attributes:
        encoder: an :class:`~pauc_ray.model.backbones.Encoder`: ``features(x)`` (B, F) are
            the backbone's pooled features, ``encoder(x)`` (B, D) the projection (neither
            normalised).
        spec: how the encoder was built (backbone, input kind and shape, embedding size).
        meta: the rest of ``model.json`` (method, dataset, epoch, metrics, preprocessing).
        path: the export folder.
        preprocessing: the run's augmentation settings (normalisation, output size), which
            ``EvalTransform`` turns into the evaluation preprocessing.
    """

    encoder: nn.Module
    spec: EncoderSpec
    meta: dict[str, Any]
    path: Path | str  # the export folder, or its URI on an object store
    preprocessing: AugmentConfig = field(default_factory=AugmentConfig)

    def embedding_dim(self, representation: str = "backbone") -> int:
        """Size of the ``representation``'s vectors (backbone features or projection)."""
        if representation == "backbone":
            return int(self.encoder.feature_dim)
        return self.spec.embedding_dim

    @torch.no_grad()
    def embed(
        self, inputs: torch.Tensor, batch_size: int = 1024, representation: str = "backbone"
    ) -> torch.Tensor:
        """L2-normalised embeddings (N, F or D) of already preprocessed inputs: the backbone's
        features (default, what is evaluated) or the projection head's output."""
        out = [
            F.normalize(represent(self.encoder, inputs[i : i + batch_size], representation), dim=1)
            for i in range(0, len(inputs), batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, self.embedding_dim(representation))


def export_model(
    directory: str | Path,
    encoder_state: dict[str, torch.Tensor],
    spec: EncoderSpec,
    meta: dict[str, Any],
) -> Path:
    """Writes ``model.pt`` and then ``model.json`` (the latter marks a complete export)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{WEIGHTS_FILE}.tmp"
    torch.save({k: v.detach().cpu() for k, v in encoder_state.items()}, tmp)
    os.replace(tmp, directory / WEIGHTS_FILE)
    tmp_meta = directory / f".{META_FILE}.tmp"
    tmp_meta.write_text(json.dumps({"spec": spec.to_dict(), **meta}, indent=2, default=str))
    os.replace(tmp_meta, directory / META_FILE)
    return directory


def parse_preprocessing(meta: dict[str, Any], where: str | Path = META_FILE) -> AugmentConfig:
    """``meta["preprocessing"]["augment"]`` as an ``AugmentConfig``, strictly (unknown keys and
    bad values are an :class:`ExportError` naming the file). An export without it (none written
    by this project's trainer) gets the defaults, with a warning."""
    preprocessing = meta.get("preprocessing")
    raw = preprocessing.get("augment") if isinstance(preprocessing, dict) else None
    if raw is None:
        logger.warning("%s: no preprocessing.augment; using AugmentConfig()", where)
        return AugmentConfig()
    try:
        return from_dict(AugmentConfig, raw, "preprocessing.augment")
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{where}: unreadable preprocessing settings ({exc})") from None


def load_exported_model(path: str | Path, device: str | torch.device = "cpu") -> ExportedModel:
    """Loads an export folder (or a run folder holding ``export/``) strictly: a local path,
    or a URI on an object store (:mod:`pauc_ray.storage`; the two files are downloaded to a
    temporary folder, loaded, and the folder removed; ``path`` is then the URI)."""
    if is_remote(path):
        return _load_remote(resolve(path), device)
    path = Path(path)
    if (path / "export" / META_FILE).is_file():
        path = path / "export"
    meta_path, weights_path = path / META_FILE, path / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise ExportError(f"{path}: not an exported model (needs {META_FILE} and {WEIGHTS_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
        spec = EncoderSpec.from_dict(meta.pop("spec"))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{meta_path}: malformed ({exc})") from None
    preprocessing = parse_preprocessing(meta, meta_path)
    encoder = build_encoder(spec)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{weights_path}: weights do not match the spec ({exc})") from None
    encoder.to(device).eval()
    use_channels_last(encoder, spec.input_kind, device)  # faster CPU inference, same values
    return ExportedModel(
        encoder=encoder, spec=spec, meta=meta, path=path, preprocessing=preprocessing
    )


def _load_remote(location: Location, device: str | torch.device) -> ExportedModel:
    if (location / "export" / META_FILE).is_file():
        location = location / "export"
    if not all((location / name).is_file() for name in (META_FILE, WEIGHTS_FILE)):
        raise ExportError(
            f"{location}: not an exported model (needs {META_FILE} and {WEIGHTS_FILE})"
        )
    with tempfile.TemporaryDirectory(prefix="pauc-export-") as tmp:
        for name in (META_FILE, WEIGHTS_FILE):
            (Path(tmp) / name).write_bytes((location / name).read_bytes())
        model = load_exported_model(tmp, device)
    return dataclasses.replace(model, path=location.uri)
