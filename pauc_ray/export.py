"""Exported models: the query encoder plus everything needed to use it, and the one loader.

``RUN_DIR/export/`` holds ``model.pt`` (the encoder's ``state_dict`` only: tensors, read with
``weights_only=True``) and ``model.json`` (the encoder spec, the input preprocessing, the
method, dataset and metrics of the run). :func:`load_exported_model` rebuilds the encoder and
loads the weights strictly (every key must match), in the way DINO's hub entry points do. The
service and the evaluation read models only through it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pauc_ray.model.backbones import EncoderSpec, build_encoder, represent

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
    """

    encoder: nn.Module
    spec: EncoderSpec
    meta: dict[str, Any]
    path: Path

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


def load_exported_model(path: str | Path, device: str | torch.device = "cpu") -> ExportedModel:
    """Loads an export folder (or a run folder holding ``export/``) strictly."""
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
    encoder = build_encoder(spec)
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"{weights_path}: weights do not match the spec ({exc})") from None
    encoder.to(device).eval()
    return ExportedModel(encoder=encoder, spec=spec, meta=meta, path=path)
