"""The files of one run folder (``STORAGE/NAME``), in one place.

``config.json`` (resolved config), ``checkpoint_epoch_XXXXX/`` (Ray Train's checkpoints),
``clustering/`` (the clustering actor's per-epoch cache), ``export/`` (the served model),
``nemd_report.json`` (the final NEMD report), ``history.json`` (per-epoch metrics) and
``summary.json`` (written last by the driver).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pauc_ray.export import export_model
from pauc_ray.model.backbones import EncoderSpec


def write_json_atomic(path: Path, data: Any) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class RunFiles:
    run_dir: str

    @property
    def root(self) -> Path:
        return Path(self.run_dir)

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def clustering_cache(self) -> Path:
        return self.root / "clustering"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    @property
    def nemd_report(self) -> Path:
        return self.root / "nemd_report.json"

    @property
    def history(self) -> Path:
        return self.root / "history.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def export(
        self,
        encoder: nn.Module,
        spec: EncoderSpec,
        config: Any,
        history: list[dict[str, Any]],
        dataset_info: dict[str, Any],
    ) -> Path:
        """Writes ``export/`` (query encoder + description) and ``history.json``."""
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
        return export_model(self.export_dir, encoder.state_dict(), spec, meta)
