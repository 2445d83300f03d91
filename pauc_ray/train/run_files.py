"""The files of one run folder (``STORAGE/NAME``), in one place.

``STORAGE`` is a local folder or any URI :mod:`pauc_ray.storage` opens (``s3://bucket/runs``):
every file below is written and read through the run's :class:`~pauc_ray.storage.Location`,
whole (a rename on local disks, one PUT on object stores), so a reader never sees half a file.

``config.json`` (resolved config), ``checkpoint_epoch_XXXXX/`` (Ray Train's checkpoints),
``clustering/`` (the clustering actor's per-epoch cache), ``export/`` (the served model),
``nemd_report.json`` (the final NEMD report), ``history.json`` (per-epoch metrics) and
``summary.json`` (written last by the driver).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from torch import nn

from pauc_ray.export import META_FILE, WEIGHTS_FILE, export_model
from pauc_ray.model.backbones import EncoderSpec
from pauc_ray.storage import Location, resolve


def write_json_atomic(where: str | Path | Location, data: Any) -> Location:
    """``data`` as indented JSON at ``where`` (a path, URI or Location), written whole."""
    return resolve(where).write_text(json.dumps(data, indent=2, default=str))


def read_json(where: str | Path | Location, default: Any = None) -> Any:
    """The JSON at ``where``, or ``default`` when there is no such file."""
    location = resolve(where)
    return json.loads(location.read_text()) if location.is_file() else default


def _entry(name: str) -> property:
    """A ``RunFiles`` attribute: the run folder's file or folder ``name``."""
    return property(lambda self: self.root / name, doc=f"``RUN/{name}``")


@dataclass(frozen=True)
class RunFiles:
    """Args: run_dir: the run folder, a local path or a URI."""

    run_dir: str

    @cached_property
    def root(self) -> Location:
        return resolve(self.run_dir)

    config = _entry("config.json")
    clustering_cache = _entry("clustering")
    export_dir = _entry("export")
    nemd_report = _entry("nemd_report.json")
    history = _entry("history.json")
    summary = _entry("summary.json")
    curves = _entry("curves.png")
    tensorboard = _entry("tensorboard")

    def export(
        self,
        encoder: nn.Module,
        spec: EncoderSpec,
        config: Any,
        history: list[dict[str, Any]],
        dataset_info: dict[str, Any],
    ) -> Location:
        """Writes ``export/`` (query encoder + description) and ``history.json``; on a remote
        store the export is built in a temporary folder and uploaded ``model.json`` last (it
        marks a complete export)."""
        write_json_atomic(self.history, history)
        final = history[-1] if history else {}
        meta = {
            "method": config.method,
            "dataset": config.dataset,
            "dataset_info": dataset_info,
            "epoch": final.get("epoch"),
            "metrics": {k: final.get(k) for k in ("knn_top1", "knn_top5", "nemd", "nemd_nn")},
            "preprocessing": {
                "augment": config.to_dict()["augment"],
                "note": "inputs go through pauc_ray.data.augment.EvalTransform(augment)",
            },
            "config": config.to_dict(),
        }
        target = self.export_dir
        if target.is_local:
            export_model(target.path, encoder.state_dict(), spec, meta)
            return target
        with tempfile.TemporaryDirectory(prefix="pauc-export-") as tmp:
            export_model(tmp, encoder.state_dict(), spec, meta)
            return target.upload(tmp, names=[WEIGHTS_FILE, META_FILE])
