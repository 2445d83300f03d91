"""The offline evaluation of a finished model: every number in ``eval.json``, and the PNGs.

On the frozen, L2-normalised embeddings of an export (:mod:`pauc_ray.export`), with the same
preprocessing as in training (:class:`~pauc_ray.data.augment.EvalTransform`); the embedding is
the backbone's pooled features (projection head removed, as MoCo v2 and PCL evaluate) unless
``EvalConfig.representation`` asks for the projection:

- the two baselines on the same split: kNN on the raw inputs and the same encoder at its
  random initialisation (:mod:`pauc_ray.evaluation.baselines`), for each ``k``;
- weighted kNN top-1/top-5 for each ``k`` (cosine; the held-out split against the train split);
- the linear probe top-1/top-5 (:mod:`pauc_ray.evaluation.linear_probe`);
- per K, a k-means clustering of the train embedding and its NEMD report (Eq. 3);
- Wang & Isola's alignment (two augmented views of held-out samples, as in training) and
  uniformity (held-out embeddings) (:mod:`pauc_ray.evaluation.instance_metrics`);
- ``tsne.png`` (held-out embeddings by class), ``nemd_k{K}.png`` per clustering and, for a
  2-D projection, ``unit_circle.png`` (train projections by class).

Every subsample is drawn with ``EvalConfig.seed`` and reported. ``python -m pauc_ray.evaluate``
is the command line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pauc_ray.data import DatasetError, SplitArrays, load_split_arrays, read_dataset_info
from pauc_ray.data.augment import AugmentConfig, EvalTransform, TwoViewAugment
from pauc_ray.devices import resolve_device
from pauc_ray.evaluation.baselines import baseline_knn
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.instance_metrics import alignment, uniformity
from pauc_ray.evaluation.knn import knn_classify
from pauc_ray.evaluation.linear_probe import LinearProbeConfig, linear_probe
from pauc_ray.export import ExportedModel
from pauc_ray.model.backbones import REPRESENTATIONS

logger = logging.getLogger(__name__)

EVAL_FILE = "eval.json"


@dataclass(frozen=True)
class EvalConfig:
    """Settings of :func:`evaluate_model` (``python -m pauc_ray.evaluate`` flags are views).

    Attributes:
        knn_ks: neighbours of the weighted kNN (Wu et al. use 200; the trainer's in-run 20).
        knn_temperature: kNN vote weight ``exp(similarity / temperature)``.
        num_clusters: K of each clustering whose NEMD is reported; None: the K's the model was
            trained with (``kmeans.num_clusters`` of its config), else ``(10,)``.
        max_samples: rows of each split used at most (seeded subsample); None: all.
        seed: every subsample, the k-means initialisation, the augmentations, t-SNE and the
            linear probe's validation split.
        tsne_samples: held-out points in the t-SNE map.
        instance_samples: held-out samples for alignment and uniformity.
        kmeans_niter: k-means iterations per clustering.
        batch_size: samples per forward pass; None: the device's default
            (:func:`pauc_ray.evaluation.embed.default_batch`).
        device: where the encoder runs: auto (or None) picks a GPU when one is visible, else
            cpu, cuda or cuda:N (:func:`pauc_ray.devices.resolve_device`).
        plots: write the PNGs.
        probe: the linear probe's settings (its seed is replaced by ``seed``).
        representation: ``backbone`` (default) or ``projection``.
        baselines: also evaluate the raw-input and random-init baselines (kNN).
    """

    knn_ks: tuple[int, ...] = (20, 200)
    knn_temperature: float = 0.07
    num_clusters: tuple[int, ...] | None = None
    max_samples: int | None = None
    seed: int = 0
    tsne_samples: int = 2000
    instance_samples: int = 5000
    kmeans_niter: int = 20
    batch_size: int | None = None
    device: str | None = None
    plots: bool = True
    probe: LinearProbeConfig = field(default_factory=LinearProbeConfig)
    representation: str = "backbone"
    baselines: bool = True

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}"
            )
        if not self.knn_ks or min(self.knn_ks) < 1:
            raise ValueError(f"knn_ks must be integers >= 1, got {self.knn_ks}")
        if self.num_clusters is not None and (not self.num_clusters or min(self.num_clusters) < 2):
            raise ValueError(f"num_clusters must be integers >= 2, got {self.num_clusters}")
        if self.max_samples is not None and self.max_samples < 2:
            raise ValueError(f"max_samples must be >= 2, got {self.max_samples}")
        for name in ("tsne_samples", "instance_samples", "kmeans_niter", "batch_size"):
            if name == "batch_size" and self.batch_size is None:
                continue
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _subsample(arrays: SplitArrays, max_samples: int | None, seed: int) -> SplitArrays:
    if max_samples is None or len(arrays) <= max_samples:
        return arrays
    keep = np.sort(np.random.default_rng(seed).choice(len(arrays), max_samples, replace=False))
    return arrays.take(keep)


def _check_compatible(model: ExportedModel, info, augment: AugmentConfig, where: str) -> None:
    spec = model.spec
    if info.kind != spec.input_kind:
        raise DatasetError(
            f"{where} holds {info.kind}s but the model ({spec.backbone}) takes {spec.input_kind}s"
        )
    if info.kind == "vector":
        got, expected = (info.dim,), tuple(spec.input_shape)
    else:
        size = augment.output_size
        got = (info.channels, size, size) if size else (info.channels, info.height, info.width)
        expected = tuple(spec.input_shape)
    if got != expected:
        raise DatasetError(f"{where}: inputs become {got} but the model expects {expected}")


def _labelled_splits(dataset_dir: str, config: EvalConfig) -> tuple[SplitArrays, SplitArrays]:
    info = read_dataset_info(dataset_dir)
    if info.counts.get("test", 0) == 0:
        raise DatasetError(
            f"{dataset_dir}: no test split; kNN and the linear probe need a held-out split "
            "(prepare the dataset with --test-fraction > 0)"
        )
    if info.counts.get("train", 0) < 2:
        raise DatasetError(f"{dataset_dir}: the train split has fewer than 2 rows")
    splits = []
    for split in ("train", "test"):
        arrays = _subsample(
            load_split_arrays(dataset_dir, split, info), config.max_samples, config.seed
        )
        unlabelled = int((arrays.labels < 0).sum())
        if unlabelled:
            raise DatasetError(
                f"{dataset_dir}/{split}: {unlabelled} of {len(arrays)} rows have no label; "
                "kNN and the linear probe need a labelled dataset"
            )
        splits.append(arrays)
    return splits[0], splits[1]


def _view_embeddings(
    model: ExportedModel, inputs: np.ndarray, augment: AugmentConfig, seed: int, config, device
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of two independently augmented views of ``inputs`` (seeded)."""
    two_views = TwoViewAugment(augment)
    generator = torch.Generator(device=device).manual_seed(seed)
    views = []
    for _ in range(2):
        views.append(
            embed_arrays(
                model.encoder,
                inputs,
                lambda batch: two_views.view(batch, generator),
                device,
                config.batch_size,
                config.representation,
            )
        )
    return views[0], views[1]


def evaluate_model(
    model: ExportedModel,
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: EvalConfig = EvalConfig(),
    dataset_name: str | None = None,
) -> dict[str, Any]:
    """Evaluates ``model`` on a prepared dataset; writes ``out_dir/eval.json`` and the PNGs.

    Raises:
        DatasetError: no held-out split, unlabelled rows, or inputs the model cannot take.
        ValueError: a K larger than the train split, or another bad setting.
    """
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    dataset_dir, out_dir = str(dataset_dir), Path(out_dir)
    device = resolve_device(config.device)
    augment = model.preprocessing
    info = read_dataset_info(dataset_dir)
    _check_compatible(model, info, augment, dataset_dir)
    train, test = _labelled_splits(dataset_dir, config)
    saved = model.meta.get("config", {})
    ks = config.num_clusters or tuple(saved.get("kmeans", {}).get("num_clusters", (10,)))
    if max(ks) > len(train):
        raise ValueError(f"num_clusters {ks}: more clusters than the {len(train)} train rows")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.to(device)

    tick = time.perf_counter()
    transform = EvalTransform(augment)
    embed = lambda arrays: embed_arrays(  # noqa: E731
        model.encoder, arrays.inputs, transform, device, config.batch_size, config.representation
    )
    train_emb, test_emb = embed(train), embed(test)
    seconds["embed"] = time.perf_counter() - tick

    tick = time.perf_counter()
    knn = [
        dataclasses.asdict(
            knn_classify(
                train_emb,
                train.labels,
                test_emb,
                test.labels,
                k=k,
                temperature=config.knn_temperature,
            )
        )
        for k in config.knn_ks
    ]
    seconds["knn"] = time.perf_counter() - tick

    baselines = {}
    if config.baselines:
        tick = time.perf_counter()
        seed = int(saved.get("seed", 0))  # the run's initialisation
        for k in config.knn_ks:
            found = baseline_knn(
                train,
                test,
                model.spec,
                seed,
                transform,
                k=k,
                temperature=config.knn_temperature,
                representation=config.representation,
                device=device,
                batch_size=config.batch_size,
            )
            baselines.update({key.replace("knn", f"knn{k}"): v for key, v in found.items()})
        seconds["baselines"] = time.perf_counter() - tick

    probe_config = dataclasses.replace(config.probe, seed=config.seed)
    probe = linear_probe(train_emb, train.labels, test_emb, test.labels, probe_config)
    seconds["linear_probe"] = probe.seconds

    tick = time.perf_counter()
    reports, nemd_config = _nemd_reports(train_emb, ks, saved, config)
    seconds["cluster_and_nemd"] = time.perf_counter() - tick

    tick = time.perf_counter()
    instance = _instance_metrics(model, test, test_emb, augment, config, device)
    seconds["alignment_uniformity"] = time.perf_counter() - tick

    figures: dict[str, str] = {}
    if config.plots:
        tick = time.perf_counter()
        embedded = {"train": (train_emb, train.labels), "test": (test_emb, test.labels)}
        if model.spec.embedding_dim == 2:  # Fig. 2 plots the 2-D projection on the circle
            circle = train_emb if config.representation == "projection" else None
            if circle is None:
                circle = embed_arrays(
                    model.encoder, train.inputs, transform, device, config.batch_size
                )
            embedded["circle"] = (circle, train.labels)
        figures = _draw(model, out_dir, config, embedded, reports, info.class_names)
        seconds["plots"] = time.perf_counter() - tick

    first_k, first = reports[0]
    result = {
        "model": str(model.path),
        "method": model.meta.get("method"),
        "trained_on": model.meta.get("dataset"),
        "epoch": model.meta.get("epoch"),
        "backbone": model.spec.backbone,
        "representation": config.representation,
        "embedding_dim": int(train_emb.shape[1]),
        "dataset": dataset_name,
        "dataset_dir": str(dataset_dir),
        "class_names": info.class_names,
        "num_train": len(train),
        "num_test": len(test),
        "summary": {
            **{f"knn{row['k']}_top1": row["top1"] for row in knn},
            **baselines,
            "linear_top1": probe.top1,
            "linear_top5": probe.top5,
            "nemd": first.nemd,
            "nemd_nn": first.nemd_nn,
            "nemd_num_clusters": first_k,
            "alignment": instance["alignment"],
            "uniformity": instance["uniformity"],
        },
        "knn": knn,
        "linear_probe": probe.to_dict(),
        "nemd": [{"num_clusters": k, **report.to_dict()} for k, report in reports],
        "instance": instance,
        "figures": figures,
        "settings": {
            **dataclasses.asdict(config),
            "num_clusters": list(ks),
            "device": str(device),
            "nemd": dataclasses.asdict(nemd_config),
            "preprocessing": dataclasses.asdict(augment),
        },
        "seconds": {
            **{k: round(v, 3) for k, v in seconds.items()},
            "total": round(time.perf_counter() - started, 3),
        },
    }
    tmp = out_dir / f".{EVAL_FILE}.tmp"
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, out_dir / EVAL_FILE)
    logger.info("wrote %s in %.1f s", out_dir / EVAL_FILE, result["seconds"]["total"])
    return result


def _nemd_reports(train_emb: np.ndarray, ks: tuple[int, ...], saved: dict, config: EvalConfig):
    """k-means of the train embedding for every K (one faiss call), then each NEMD report
    (with the run's NEMD settings, seeded with ``config.seed``)."""
    from pauc_ray.config import NEMDConfig
    from pauc_ray.config_io import from_dict
    from pauc_ray.evaluation.prototype_nemd import nemd_per_clustering

    nemd_config = NEMDConfig()
    if "nemd" in saved:
        nemd_config = from_dict(NEMDConfig, saved["nemd"], "model.json config.nemd")
    nemd_config = dataclasses.replace(nemd_config, seed=config.seed)
    found = nemd_per_clustering(
        train_emb, ks, nemd_config, seed=config.seed, niter=config.kmeans_niter, return_matrix=True
    )
    return [(c.num_clusters, c.report) for c in found.clusterings], nemd_config


def _instance_metrics(model, test: SplitArrays, test_emb, augment, config, device) -> dict:
    """Alignment over two augmented views and uniformity of the clean embeddings, both on a
    seeded subsample of the held-out split."""
    held = _subsample(test, config.instance_samples, config.seed)
    view1, view2 = _view_embeddings(model, held.inputs, augment, config.seed, config, device)
    if len(held) == len(test):
        held_emb = test_emb
    else:
        transform = EvalTransform(augment)
        held_emb = embed_arrays(
            model.encoder, held.inputs, transform, device, config.batch_size, config.representation
        )
    return {
        "alignment": alignment(view1, view2, alpha=2.0),
        "uniformity": uniformity(held_emb, t=2.0, max_samples=None) if len(held) > 1 else None,
        "alpha": 2.0,
        "t": 2.0,
        "samples": len(held),
        "split": "test",
    }


def _draw(model, out_dir: Path, config: EvalConfig, embedded, reports, class_names):
    """``embedded``: split name -> (embeddings, labels). Returns figure name -> file name."""
    from pauc_ray.evaluation.plots import plot_nemd_matrix, plot_tsne, plot_unit_circle

    name = f"{model.meta.get('method', 'model')}"
    test_emb, test_labels = embedded["test"]
    figures = {}
    if len(test_emb) >= 5:
        plot_tsne(
            test_emb,
            test_labels,
            out_dir / "tsne.png",
            title=f"{name}: t-SNE of held-out embeddings",
            max_points=config.tsne_samples,
            seed=config.seed,
            class_names=class_names,
        )
        figures["tsne"] = "tsne.png"
    for k, report in reports:
        file = f"nemd_k{k}.png"
        plot_nemd_matrix(
            report.matrix,
            out_dir / file,
            title=f"{name}: NEMD matrix, K = {k} (mean {report.nemd:.3f}, "
            f"nearest {report.nemd_nn:.3f})",
        )
        figures[f"nemd_k{k}"] = file
    if "circle" in embedded:
        circle_emb, circle_labels = embedded["circle"]
        plot_unit_circle(
            circle_emb,
            circle_labels,
            out_dir / "unit_circle.png",
            name=name,
            nemd=reports[0][1].nemd,
            seed=config.seed,
        )
        figures["unit_circle"] = "unit_circle.png"
    return figures
