"""Per-epoch reports to Ray Train: metrics every epoch, a checkpoint from rank 0 when due."""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any

import numpy as np
import ray.train
import torch
from ray.train import CheckpointUploadMode

from cluster.result import MultiClusterResult
from pauc_ray.checkpoint import write_checkpoint


def reportable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool)) or v is None}


def brief(metrics: dict[str, Any]) -> str:
    keys = (
        "loss_total",
        "loss_info_nce",
        "loss_proto_nce",
        "instance_accuracy",
        "samples_per_second",
        "knn_top1",
        "raw_knn_top1",
        "random_init_knn_top1",
        "nemd",
    )
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys if metrics.get(k) is not None)


def report_with_checkpoint(
    rank, model, optimizer, epoch, config, history, clustering, metrics, scaler=None, last=False
) -> None:
    """Rank 0 writes the checkpoint to a local temporary folder and Ray Train copies it to the
    run's storage: in a background thread (``config.checkpoint_upload == "async"``, except for
    the ``last`` one, whose copy the driver's summary must see; Ray deletes the folder once
    copied) or before this returns."""
    upload_async = config.checkpoint_upload == "async" and not last
    tmp = tempfile.mkdtemp(prefix="pauc-checkpoint-")
    checkpoint = None
    try:
        if rank == 0:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "config_json": config.to_json(),
                "history_json": json.dumps(history),
                "metrics_json": json.dumps(metrics),
                "clustering": _clustering_state(clustering),
                "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
            }
            write_checkpoint(tmp, state, epoch)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(
            reportable(metrics),
            checkpoint=checkpoint,
            checkpoint_dir_name=f"checkpoint_epoch_{epoch:05d}",
            checkpoint_upload_mode=CheckpointUploadMode.ASYNC
            if upload_async
            else CheckpointUploadMode.SYNC,
            delete_local_checkpoint_after_upload=upload_async,
        )
    finally:
        if not (upload_async and checkpoint is not None):  # (that folder is Ray's to delete)
            shutil.rmtree(tmp, ignore_errors=True)


def _clustering_state(result: MultiClusterResult | None) -> dict[str, Any]:
    if result is None:
        return {}
    return {
        k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
        for k, v in result.to_state().items()
    }
