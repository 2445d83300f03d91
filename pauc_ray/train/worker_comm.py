"""What workers exchange: with each other (gloo/nccl collectives) and with the clustering actor."""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
import ray
import torch
import torch.distributed as dist

from cluster.result import MultiClusterResult
from pauc_ray.data import feature_pass_batches

logger = logging.getLogger(__name__)


def group_token(world: int) -> str:
    """Identifies this worker group to the clustering actor; newer groups sort later."""
    token = [f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"]
    if world > 1:
        dist.broadcast_object_list(token, src=0)
    return token[0]


def load_share(dataset_dir: str, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's exact share of the train split (ids, decoded inputs), read once."""
    parts = list(feature_pass_batches(dataset_dir, "train", rank, world, batch_size=4096))
    if not parts:
        raise ValueError(f"rank {rank} of {world} owns no training rows")
    return np.concatenate([p.ids for p in parts]), np.concatenate([p.inputs for p in parts])


def exchange_with_actor(actor, epoch, group, rank, world, features, ids) -> MultiClusterResult:
    """Sends this worker's part to the clustering actor; returns the epoch's shared result."""
    for attempt in range(5):
        ref = actor.cluster.remote(epoch, group, rank, world, features, ids)
        try:
            return ray.get(ray.get(ref)[0])
        except ray.exceptions.OwnerDiedError:
            # the actor died after answering; its restart serves the epoch from its disk cache
            logger.warning(
                "clustering result of epoch %d lost with its owner; asking again (attempt %d)",
                epoch,
                attempt + 1,
            )
    raise RuntimeError(f"could not obtain the clustering of epoch {epoch}")


def mean_over_workers(values: list[float], device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor.tolist()
