"""Evaluation inside a run (rank 0): kNN top-1/top-5 on the held-out split and NEMD.

The kNN memory is (a seeded subsample of) the train split, the queries the ``test`` split;
NEMD (Eq. 3) is computed on the train embedding clustered into ``kmeans.num_clusters[0]``
prototypes. The fuller offline evaluation (linear probe, pictures) is ``pauc_ray.evaluate``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from cluster.kmeans import cluster_features
from pauc_ray.data import DatasetError, load_split_arrays, read_dataset_info
from pauc_ray.data.augment import EvalTransform
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.knn import knn_classify

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _split(dataset_dir: str, split: str, max_samples: int | None, seed: int):
    arrays = load_split_arrays(dataset_dir, split)
    if max_samples is not None and len(arrays) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(arrays), max_samples, replace=False))
        arrays = arrays.take(keep)
    return arrays


def evaluate_encoder(
    encoder: nn.Module, config, dataset_dir: str, device, files, write_nemd: bool
) -> dict[str, Any]:
    transform = EvalTransform(config.augment)
    train = _split(dataset_dir, "train", config.eval_max_samples, config.seed)
    train_emb = embed_arrays(encoder, train.inputs, transform, device)
    out: dict[str, Any] = {}
    has_test = "test" in read_dataset_info(dataset_dir).counts
    if has_test and (train.labels >= 0).all():
        try:
            test = _split(dataset_dir, "test", None, config.seed)
        except DatasetError as exc:
            logger.warning("no kNN evaluation: %s", exc)
        else:
            if (test.labels >= 0).all():
                test_emb = embed_arrays(encoder, test.inputs, transform, device)
                knn = knn_classify(train_emb, train.labels, test_emb, test.labels, k=config.knn_k)
                out.update(knn_top1=knn.top1, knn_top5=knn.top5)
    k = config.kmeans.num_clusters[0]
    if len(train_emb) >= 2 * k:
        kmeans = replace(config.clustering, num_clusters=(k,), nredo=1, use_gpu=False)
        ids = np.arange(len(train_emb))
        assignment = np.array(cluster_features(train_emb, ids, kmeans).clusterings[0].assignments)
        from pauc_ray.nemd import nemd_report

        report = nemd_report(train_emb, assignment, config.nemd)
        out.update(nemd=report.nemd, nemd_nn=report.nemd_nn, nemd_num_prototypes=k)
        if write_nemd:
            from pauc_ray.train.run_files import write_json_atomic

            write_json_atomic(Path(files.nemd_report), {"num_clusters": k, **report.to_dict()})
    return out
