"""Chaos testing for the trainer: ``PAUC_FAULT_INJECTION=worker@E`` or ``actor@E``.

The driver forwards the variable to the workers; the hook fires once per run (a marker file in
the run folder), so the restarted group does not kill itself again.
"""

from __future__ import annotations

import logging
import os
import signal

import ray
import ray.train

from pauc_ray.train.run_files import RunFiles

logger = logging.getLogger(__name__)

FAULT_ENV = "PAUC_FAULT_INJECTION"  # tests only: "worker@E" or "actor@E" (epoch E, once)


def maybe_inject_fault(kind: str, epoch: int, rank: int, files: RunFiles, actor) -> None:
    """Test hook (``PAUC_FAULT_INJECTION=worker@E`` or ``actor@E``), fires once per run:
    SIGKILL to the last-ranked worker mid-epoch, or rank 0 kills the clustering actor."""
    spec = os.environ.get(FAULT_ENV, "")
    want_kind, _, want_epoch = spec.partition("@")
    if want_kind != kind or want_epoch != str(epoch):
        return
    world = ray.train.get_context().get_world_size()
    if rank != (world - 1 if kind == "worker" else 0):
        return
    marker = files.root / f".fault-{kind}-{epoch}"
    if marker.exists():
        return
    marker.write_bytes(b"")
    if kind == "worker":
        logger.warning("fault injection: SIGKILL to worker rank %d at epoch %d", rank, epoch)
        os.kill(os.getpid(), signal.SIGKILL)
    logger.warning("fault injection: killing the clustering actor at epoch %d", epoch)
    ray.kill(actor, no_restart=False)
