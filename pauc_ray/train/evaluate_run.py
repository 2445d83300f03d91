"""Evaluation inside a run (rank 0): kNN top-1/top-5 on the held-out split, its two
baselines, and NEMD.

The kNN memory is (a seeded subsample of) the train split, the queries the ``test`` split;
embeddings are ``config.representation`` (the backbone's features by default). Beside the
trained encoder's kNN come the raw-input kNN and the random-init encoder's kNN on the same
split (:mod:`pauc_ray.evaluation.baselines`), computed once per run. NEMD (Eq. 3) is computed
on the train embedding clustered into ``kmeans.num_clusters[0]`` prototypes. The fuller
offline evaluation (linear probe, pictures) is ``pauc_ray.evaluate``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
from torch import nn

from pauc_ray.data import DatasetError, load_split_arrays, read_dataset_info
from pauc_ray.data.augment import EvalTransform
from pauc_ray.evaluation.baselines import baseline_knn
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.knn import knn_classify
from pauc_ray.evaluation.prototype_nemd import nemd_per_clustering
from pauc_ray.model.backbones import EncoderSpec

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _split(dataset_dir: str, split: str, max_samples: int | None, seed: int):
    arrays = load_split_arrays(dataset_dir, split)
    if max_samples is not None and len(arrays) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(arrays), max_samples, replace=False))
        arrays = arrays.take(keep)
    return arrays


@functools.lru_cache(maxsize=4)
def _baselines(dataset_dir: str, config, spec: EncoderSpec) -> tuple[tuple[str, float]]:
    """Raw-input and random-init kNN of a run (cached: they do not change during it; the
    frozen config and spec are the key)."""
    train = _split(dataset_dir, "train", config.eval_max_samples, config.seed)
    test = _split(dataset_dir, "test", None, config.seed)
    found = baseline_knn(
        train,
        test,
        spec,
        config.seed,
        EvalTransform(config.augment),
        k=config.knn_k,
        representation=config.representation,
    )
    return tuple(found.items())


def _labelled_test(dataset_dir: str, train, seed: int):
    if "test" not in read_dataset_info(dataset_dir).counts or not (train.labels >= 0).all():
        return None
    try:
        test = _split(dataset_dir, "test", None, seed)
    except DatasetError as exc:
        logger.warning("no kNN evaluation: %s", exc)
        return None
    return test if (test.labels >= 0).all() else None


def evaluate_encoder(
    encoder: nn.Module,
    config,
    spec: EncoderSpec,
    dataset_dir: str,
    device,
    files,
    write_nemd: bool,
) -> dict[str, Any]:
    """kNN (with ``raw_knn_top1`` and ``random_init_knn_top1`` beside it) and NEMD."""
    transform = EvalTransform(config.augment)
    representation = config.representation
    train = _split(dataset_dir, "train", config.eval_max_samples, config.seed)
    train_emb = embed_arrays(encoder, train.inputs, transform, device, None, representation)
    out: dict[str, Any] = {}
    test = _labelled_test(dataset_dir, train, config.seed)
    if test is not None:
        test_emb = embed_arrays(encoder, test.inputs, transform, device, None, representation)
        knn = knn_classify(train_emb, train.labels, test_emb, test.labels, k=config.knn_k)
        out.update(knn_top1=knn.top1, knn_top5=knn.top5)
        out.update(_baselines(dataset_dir, config, spec))
    k = config.kmeans.num_clusters[0]
    if len(train_emb) >= 2 * k:
        report = nemd_per_clustering(
            train_emb,
            (k,),
            config.nemd,
            seed=config.kmeans.seed,
            niter=config.kmeans.niter,
            use_gpu=False,
        ).first.report
        out.update(nemd=report.nemd, nemd_nn=report.nemd_nn, nemd_num_prototypes=k)
        if write_nemd:
            from pauc_ray.train.run_files import write_json_atomic

            write_json_atomic(
                files.nemd_report,
                {"num_clusters": k, "representation": representation, **report.to_dict()},
            )
    return out
