"""Losses of PAUC (Eqs. 1, 2, 4-7), each a pure function of tensors.

No Ray, no faiss, no I/O and no state: the MoCo queue and the clusterings are passed in.

Example:
    >>> from pauc_ray.losses import PrototypeSet, pauc_loss
"""

from __future__ import annotations

from pauc_ray.losses.batch_prototypes import BatchPrototypes, batch_prototypes
from pauc_ray.losses.info_nce import info_nce, instance_logits
from pauc_ray.losses.p_align import p_align
from pauc_ray.losses.p_corr import p_corr
from pauc_ray.losses.p_uniform import p_uniform, pairwise_sq_distances
from pauc_ray.losses.proto_nce import proto_nce, prototype_logits, sample_negative_prototypes
from pauc_ray.losses.total import (
    TERM_NAMES,
    LossOutput,
    PrototypeSet,
    pauc_loss,
    term_gradient_norms,
)

__all__ = [
    "TERM_NAMES",
    "BatchPrototypes",
    "LossOutput",
    "PrototypeSet",
    "batch_prototypes",
    "info_nce",
    "instance_logits",
    "p_align",
    "p_corr",
    "p_uniform",
    "pairwise_sq_distances",
    "pauc_loss",
    "proto_nce",
    "prototype_logits",
    "sample_negative_prototypes",
    "term_gradient_norms",
]
