"""The served models: every run folder under ROOT that holds a complete export.

A run folder is any folder ``ROOT/.../RUN`` (at most ``discovery_depth`` levels down) holding
``export/model.json`` and ``export/model.pt``; its model id is ``RUN``'s path relative to ROOT
in POSIX form (``pauc-digits-20261125-031500``, ``sweep-3/trial_0``). Discovery never follows
symbolic links to folders, skips hidden folders, ``checkpoint_*``, ``clustering`` and
``datasets`` (at the top), and drops an export whose files resolve outside ROOT.

Models are loaded only through :func:`pauc_ray.export.load_exported_model` (strict, weights
read with ``torch.load(weights_only=True)``: no arbitrary object is ever unpickled). A model
that fails to load is logged and listed by ``/readyz``; the others are still served.

Requests to a model carry raw inputs: images of the dataset's stored size (``dataset_info`` in
``model.json``) and channel count, or vectors of the encoder's length. They go through
``EvalTransform(preprocessing.augment)`` exactly as in evaluation.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pauc_ray.data.augment import EvalTransform
from pauc_ray.export import (
    META_FILE,
    WEIGHTS_FILE,
    ExportedModel,
    ExportError,
    load_exported_model,
)
from pauc_ray.model.backbones import EncoderSpec, build_encoder

__all__ = [
    "ModelRegistry",
    "ServedModel",
    "describe_unloaded",
    "discover_runs",
    "is_inside",
]

logger = logging.getLogger(__name__)

EXPORT_DIR = "export"
SUMMARY_FILE = "summary.json"
NEMD_REPORT_FILE = "nemd_report.json"
_SKIPPED = ("clustering",)
_SKIPPED_PREFIXES = (".", "checkpoint_")
_LOAD_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, pickle.UnpicklingError)


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symbolic link resolved, lies inside ``root`` (resolved)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


def discover_runs(
    root: Path, max_depth: int, skip_top: tuple[str, ...] = ("datasets",)
) -> list[tuple[str, Path]]:
    """Run folders under ``root`` holding ``export/model.json``, as sorted ``(id, path)`` pairs."""
    root = root.resolve()
    found: list[tuple[str, Path]] = []
    for current, dirs, _files in os.walk(root, followlinks=False):
        here = Path(current)
        depth = len(here.relative_to(root).parts)
        if depth and (here / EXPORT_DIR / META_FILE).is_file():
            export = here / EXPORT_DIR
            if all(is_inside(export / name, root) for name in (META_FILE, WEIGHTS_FILE)):
                found.append((here.relative_to(root).as_posix(), here))
            else:
                logger.warning("skipping %s: its export resolves outside %s", here, root)
        dirs[:] = sorted(
            d
            for d in dirs
            if depth < max_depth
            and d not in _SKIPPED
            and d != EXPORT_DIR
            and not d.startswith(_SKIPPED_PREFIXES)
            and not (depth == 0 and d in skip_top)
        )
    return sorted(found)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("ignoring %s: %s", path, exc)
        return None


def _numbers(data: Any) -> dict[str, Any]:
    """The scalar entries of a JSON object (paths and nested values left out)."""
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if v is None or (isinstance(v, (int, float, bool)) and not isinstance(v, str))
    }


def _raw_input_shape(spec: EncoderSpec, meta: dict[str, Any]) -> tuple[int, ...]:
    """The shape of one input in a request: the stored dataset's image size, else the spec's."""
    info = meta.get("dataset_info")
    if spec.input_kind == "image" and isinstance(info, dict):
        shape = (info.get("channels"), info.get("height"), info.get("width"))
        if all(isinstance(v, int) and v > 0 for v in shape) and shape[0] == spec.input_shape[0]:
            return shape  # type: ignore[return-value]
    return tuple(spec.input_shape)


def _description(
    model_id: str,
    spec: EncoderSpec,
    meta: dict[str, Any],
    feature_dim: int,
    summary: dict[str, Any],
    has_nemd_report: bool,
) -> dict[str, Any]:
    """The entry of ``GET /models`` (loaded or not: a lazily loading service lists both)."""
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if v is not None}
    metrics.update({k: v for k, v in summary.items() if k not in ("method", "dataset")})
    return {
        "id": model_id,
        "method": meta.get("method"),
        "dataset": meta.get("dataset"),
        "backbone": spec.backbone,
        "input_kind": spec.input_kind,
        "input_shape": list(_raw_input_shape(spec, meta)),
        "embedding_dim": feature_dim,
        "projection_dim": spec.embedding_dim,
        "epoch": meta.get("epoch"),
        "metrics": metrics,
        "has_nemd_report": has_nemd_report,
    }


def _summary(run_dir: Path, root: Path) -> dict[str, Any]:
    """The scalar entries of the run's ``summary.json`` ({} without one, or when it is a link
    leaving ROOT)."""
    summary_file = run_dir / SUMMARY_FILE
    if not summary_file.is_file():
        return {}
    if not is_inside(summary_file, root):
        logger.warning("%s: not read, it resolves outside %s", summary_file, root)
        return {}
    return _numbers(_read_json(summary_file))


def _nemd_report_path(run_dir: Path, root: Path) -> Path | None:
    path = run_dir / NEMD_REPORT_FILE
    return path if path.is_file() and is_inside(path, root) else None


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One loaded export and what the routes need to serve it.

    Attributes:
        id: the run folder relative to ROOT.
        exported: the encoder (eval mode) and its description.
        transform: ``EvalTransform`` of the run's preprocessing.
        input_shape: shape of one request input: (C, H, W) uint8 images or (dim,) floats.
        run_dir: the run folder.
        summary: scalar entries of ``summary.json`` (empty when there is none, or when it is a
            link that leaves ROOT).
        root: ROOT; no file the model's routes read may resolve outside it.
    """

    id: str
    exported: ExportedModel
    transform: EvalTransform
    input_shape: tuple[int, ...]
    run_dir: Path
    summary: dict[str, Any]
    root: Path

    @property
    def input_kind(self) -> str:
        return self.exported.spec.input_kind

    @property
    def device(self) -> torch.device:
        """Where the encoder runs (the service's ``--device``)."""
        return next(self.exported.encoder.parameters()).device

    @property
    def embedding_dim(self) -> int:
        """Size of the default (backbone) embedding."""
        return self.exported.embedding_dim("backbone")

    @property
    def nemd_report_path(self) -> Path | None:
        """``nemd_report.json`` of the run when it is a file inside ROOT, else None."""
        return _nemd_report_path(self.run_dir, self.root)

    def describe(self) -> dict[str, Any]:
        """The entry of ``GET /models``."""
        return _description(
            self.id,
            self.exported.spec,
            self.exported.meta,
            self.embedding_dim,
            self.summary,
            self.nemd_report_path is not None,
        )

    @torch.inference_mode()
    def embed(self, inputs: np.ndarray, representation: str = "backbone") -> np.ndarray:
        """(N, F or D) float32 L2-normalised embeddings of raw inputs (N, *input_shape): the
        backbone's features (default, projection head removed) or the projection output."""
        x = self.transform(torch.from_numpy(np.ascontiguousarray(inputs)).to(self.device))
        return self.exported.embed(x, representation=representation).cpu().numpy()


def load_served_model(
    model_id: str, run_dir: Path, root: Path, device: str | torch.device = "cpu"
) -> ServedModel:
    exported = load_exported_model(run_dir / EXPORT_DIR, device)
    return ServedModel(
        id=model_id,
        exported=exported,
        transform=EvalTransform(exported.preprocessing),
        input_shape=_raw_input_shape(exported.spec, exported.meta),
        run_dir=run_dir,
        summary=_summary(run_dir, root),
        root=root,
    )


def describe_unloaded(model_id: str, run_dir: Path, root: Path) -> dict[str, Any]:
    """The ``GET /models`` entry of a model whose weights are not loaded: ``model.json`` is
    read, and the encoder is built on torch's meta device (no memory, no weights) for its
    feature size. Raises ExportError (or OSError) when ``model.json`` is unreadable."""
    meta = json.loads((run_dir / EXPORT_DIR / META_FILE).read_text())
    try:
        spec = EncoderSpec.from_dict(meta.pop("spec"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{run_dir / EXPORT_DIR / META_FILE}: malformed ({exc})") from None
    with torch.device("meta"):
        feature_dim = int(build_encoder(spec).feature_dim)
    return _description(
        model_id,
        spec,
        meta,
        feature_dim,
        _summary(run_dir, root),
        _nemd_report_path(run_dir, root) is not None,
    )


class ModelRegistry:
    """The models found under ROOT, by id.

    Two ways to fill it: :meth:`load_all` (one process serving everything: every model is
    loaded at start, then the registry is read-only), or :meth:`discover` and then
    :meth:`load` per model on first use (Ray Serve replicas: Serve's model multiplexing keeps
    the most recently used ones and drops the rest, so a ROOT of hundreds of runs is not
    loaded at once).
    """

    def __init__(self, root: Path, max_depth: int, device: str | torch.device = "cpu") -> None:
        self.root = root
        self.max_depth = max_depth
        self.device = torch.device(device)
        self.run_dirs: dict[str, Path] = {}
        self.models: dict[str, ServedModel] = {}
        self.failed: dict[str, str] = {}

    def discover(self) -> None:
        """Finds the run folders under ROOT (reads no weights; blocking)."""
        self.run_dirs = dict(discover_runs(self.root, self.max_depth))
        if (self.root / EXPORT_DIR / META_FILE).is_file():
            logger.warning("%s is itself a run folder; serve its parent folder instead", self.root)

    def load(self, model_id: str) -> ServedModel:
        """Loads one discovered model (blocking; not kept here: the caller caches it).

        Raises:
            KeyError: ``model_id`` was not discovered.
            ExportError, OSError, ...: the export is broken (the loader's errors).
        """
        return load_served_model(model_id, self.run_dirs[model_id], self.root, self.device)

    def load_all(self) -> None:
        """Discovers and loads every export (blocking: call it off the event loop)."""
        self.discover()
        for model_id in self.run_dirs:
            try:
                served = self.load(model_id)
            except _LOAD_ERRORS as exc:
                message = " ".join(str(exc).split())
                logger.warning("model %s not served: %s", model_id, message)
                self.failed[model_id] = message
                continue
            self.models[model_id] = served
            logger.info(
                "model %s: %s %s input %s -> %d",
                model_id,
                served.exported.spec.backbone,
                served.input_kind,
                served.input_shape,
                served.embedding_dim,
            )
        logger.info(
            "%d model(s) loaded from %s, %d failed", len(self.models), self.root, len(self.failed)
        )

    def get(self, model_id: str) -> ServedModel | None:
        return self.models.get(model_id)
