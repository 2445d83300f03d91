"""The paper's tiny experiment (Sec. 3, Fig. 2): MoCo vs PCL vs PAUC on 3-D Gaussian blobs.

Each method trains an MLP encoder into the 2-D unit circle on 1000 samples per class, with the
same step and loss code as the Ray trainer (:func:`pauc_ray.step.train_step`). After training,
the query encoder's embedding is clustered into ``classes`` prototypes, and from that
assignment the NEMD report (Eq. 3) is computed; a weighted kNN on the embedding measures how
much class information survived.

Run: ``python -m pauc_ray.experiments.blobs --out runs/blobs``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cluster.kmeans import cluster_features
from pauc_ray.config import KMeansConfig, LossConfig, NEMDConfig
from pauc_ray.data import sampler
from pauc_ray.data.blobs import BlobData, make_blob_data
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.knn import knn_classify
from pauc_ray.evaluation.prototype_nemd import nemd_per_clustering
from pauc_ray.model import MLPEncoder, MoCo
from pauc_ray.prototypes import EpochPrototypes
from pauc_ray.schedule import build_lr_scheduler
from pauc_ray.step import train_step

log = logging.getLogger(__name__)

METHODS = ("moco", "pcl", "pauc")


@dataclass(frozen=True)
class BlobExperimentConfig:
    """Settings of the blob experiment; the loss, k-means and NEMD defaults are the project's.

    Attributes:
        classes: class counts to run (paper: 10, 20, 30, 40, 50).
        methods: which of ``moco``, ``pcl``, ``pauc``.
        seeds: seeds ``0..seeds-1`` (data, initialisation, batches, sampling).
        epochs: training epochs per run.
        samples_per_class: paper: 1000.
        batch_size: samples per step.
        lr: SGD learning rate (paper's schedule: x0.1 at 60% and 80% of the epochs).
        queue_size: MoCo queue ``r`` (clipped to half the data).
        moco_momentum: key-encoder momentum.
        jitter: standard deviation of the Gaussian noise making the two views (standardised
            units; the blobs' own spread is about 0.1-0.3 there).
        hidden: MLP hidden widths.
        cluster_multiples: each epoch's clusterings use K = multiple x classes.
        knn_k: neighbours of the kNN evaluation.
    """

    classes: tuple[int, ...] = (10, 20, 30, 40, 50)
    methods: tuple[str, ...] = METHODS
    seeds: int = 1
    epochs: int = 20
    samples_per_class: int = 1000
    batch_size: int = 256
    lr: float = 0.03
    queue_size: int = 4096
    moco_momentum: float = 0.99
    jitter: float = 0.05
    hidden: tuple[int, ...] = (128, 128)
    cluster_multiples: tuple[int, ...] = (1, 2)
    knn_k: int = 20
    loss: LossConfig = field(default_factory=lambda: LossConfig(warmup_epochs=2))
    nemd: NEMDConfig = field(default_factory=NEMDConfig)


@dataclass(frozen=True)
class RunResult:
    row: dict
    embedding: np.ndarray  # (N, 2) unit vectors
    labels: np.ndarray  # (N,)
    assignment: np.ndarray  # (N,) prototype of each point, from which NEMD was computed


def _kmeans_config(classes: int, multiples: Sequence[int], seed: int, tau: float):
    return KMeansConfig(
        num_clusters=tuple(m * classes for m in multiples),
        niter=20,
        nredo=1,
        seed=seed,
        concentration_mean=tau,
        use_gpu=False,
    )


def train_blobs(
    data: BlobData, method: str, seed: int, config: BlobExperimentConfig, progress: bool = True
) -> tuple[MoCo, dict[str, float]]:
    """Trains one method on one blob dataset; returns the MoCo pair and each loss term's
    gradient norm w.r.t. the query embeddings on the middle step of the last epoch (weights
    included: whether one term dominates)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.array(data.x))
    n = len(x)
    model = MoCo(
        MLPEncoder(x.shape[1], embedding_dim=2, hidden=config.hidden),
        queue_size=min(config.queue_size, n // 2),
        momentum=config.moco_momentum,
    )
    optimizer = torch.optim.SGD(
        model.encoder_q.parameters(), lr=config.lr, momentum=0.9, weight_decay=1e-4
    )
    ids = torch.from_numpy(np.array(data.ids))
    batch_size = min(config.batch_size, n)  # a dataset smaller than a batch: one batch of all
    steps_per_epoch = sampler.steps_per_epoch(n, 1, batch_size)
    scheduler = build_lr_scheduler(  # the paper's: x0.1 at 60 % and 80 %, stepped per step
        optimizer, "step", epochs=config.epochs, steps_per_epoch=steps_per_epoch
    )
    epochs = tqdm(
        range(config.epochs),
        desc=f"{method} C={data.num_classes} s={seed}",
        leave=False,
        disable=not progress,
    )
    norms: dict[str, float] = {}
    for epoch in epochs:
        step = -1
        warmup = method == "moco" or epoch < config.loss.warmup_epochs
        prototypes = None
        if not warmup:
            features = embed_arrays(model.encoder_k, data.x)
            result = cluster_features(
                features,
                data.ids,
                _kmeans_config(
                    data.num_classes,
                    config.cluster_multiples,
                    seed * 1000 + epoch,
                    config.loss.temperature,
                ),
            )
            prototypes = EpochPrototypes.from_result(result)
        # each epoch a fresh seeded permutation, full batches only (the trainer's data order)
        for positions in sampler.epoch_batches(
            n, seed=seed, epoch=epoch, rank=0, world_size=1, batch_size=batch_size
        ):
            step += 1
            batch_ids = ids[torch.from_numpy(positions)]
            xb = x[batch_ids]
            x_q = xb + config.jitter * torch.randn(xb.shape, generator=generator)
            x_k = xb + config.jitter * torch.randn(xb.shape, generator=generator)
            out = train_step(
                model,
                x_q,
                x_k,
                optimizer,
                prototypes.for_batch(batch_ids) if prototypes is not None else [],
                method=method,
                loss_config=config.loss,
                warmup=warmup,
                generator=generator,
                measure_gradients=epoch == config.epochs - 1 and step == steps_per_epoch // 2,
            )
            norms = out.gradient_norms or norms
            scheduler.step()
        epochs.set_postfix(loss=f"{out.total.item():.3f}")
    return model, norms


def run_one(
    classes: int, method: str, seed: int, config: BlobExperimentConfig, progress: bool = False
) -> RunResult:
    """Trains, embeds, clusters into ``classes`` prototypes, and measures NEMD and kNN."""
    start = time.perf_counter()
    data = make_blob_data(classes, config.samples_per_class, seed=seed)
    model, norms = train_blobs(data, method, seed, config, progress=progress)
    embedding = embed_arrays(model.encoder_q, data.x)
    final = nemd_per_clustering(embedding, (classes,), config.nemd, seed=seed, use_gpu=False)
    assignment, report = final.first.assignments, final.first.report
    # kNN: even-indexed samples are the labelled memory, odd-indexed ones the held-out half.
    knn = knn_classify(
        embedding[0::2], data.labels[0::2], embedding[1::2], data.labels[1::2], k=config.knn_k
    )
    row = {
        "classes": classes,
        "method": method,
        "seed": seed,
        "nemd": report.nemd,
        "nemd_nn": report.nemd_nn,
        "knn_top1": knn.top1,
        **{f"grad_norm_{term}": value for term, value in norms.items()},
        "seconds": round(time.perf_counter() - start, 2),
    }
    return RunResult(row, embedding, np.array(data.labels), assignment)


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per (classes, method)."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["classes"], row["method"]), []).append(row)
    summary = []
    for (classes, method), group in sorted(groups.items()):
        entry = {"classes": classes, "method": method, "seeds": len(group)}
        for key in ("nemd", "nemd_nn", "knn_top1"):
            values = np.array([g[key] for g in group], dtype=float)
            entry[f"{key}_mean"] = float(values.mean())
            entry[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def format_table(summary: Sequence[dict]) -> str:
    lines = [
        "| classes | method | seeds | NEMD | NEMD-nn | kNN top-1 (%) |",
        "|---:|---|---:|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['classes']} | {s['method']} | {s['seeds']} "
            f"| {s['nemd_mean']:.4f} ± {s['nemd_std']:.4f} "
            f"| {s['nemd_nn_mean']:.4f} ± {s['nemd_nn_std']:.4f} "
            f"| {s['knn_top1_mean']:.2f} ± {s['knn_top1_std']:.2f} |"
        )
    return "\n".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    d = BlobExperimentConfig()
    p = argparse.ArgumentParser(
        prog="python -m pauc_ray.experiments.blobs",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--classes", type=int, nargs="+", default=list(d.classes))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(d.methods))
    p.add_argument("--seeds", type=int, default=d.seeds, help="runs seeds 0..N-1")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--samples-per-class", type=int, default=d.samples_per_class)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.seeds < 1 or args.epochs < 1 or min(args.classes) < 2:
        print("error: --seeds and --epochs must be >= 1 and --classes >= 2", file=sys.stderr)
        return 2
    config = dataclasses.replace(
        BlobExperimentConfig(),
        classes=tuple(args.classes),
        methods=tuple(args.methods),
        seeds=args.seeds,
        epochs=args.epochs,
        samples_per_class=args.samples_per_class,
    )
    out: Path = args.out
    try:
        done = _finished_runs(out, config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (out / "embeddings").mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", _comparable(config))
    jobs = [(c, m, s) for s in range(config.seeds) for c in config.classes for m in config.methods]
    if done:
        print(f"{len(done)} of the {len(jobs)} runs are in {out} already; running the rest")
    rows, results = [], {}
    for classes, method, seed in tqdm(jobs, desc="blob runs", disable=args.quiet):
        result = done.get((classes, method, seed))
        if result is None:
            result = run_one(classes, method, seed, config, progress=not args.quiet)
            np.savez(
                _embedding_file(out, classes, method, seed),
                embedding=result.embedding,
                label=result.labels,
                assignment=result.assignment,
            )
        rows.append(result.row)
        results[(classes, method, seed)] = result
        _write_json(out / "results.json", rows)  # after the embeddings: a row means done
    summary = summarize(rows)
    _write_json(out / "summary.json", {"config": dataclasses.asdict(config), "summary": summary})
    draw_figure(results, config, out / "figure.png")
    print(format_table(summary))
    print(f"\nwrote {out / 'results.json'}, {out / 'figure.png'}")
    return 0


def _embedding_file(out: Path, classes: int, method: str, seed: int) -> Path:
    return out / "embeddings" / f"{method}_{classes}_{seed}.npz"


def _write_json(path: Path, value) -> None:
    """Whole or not at all: a run stopped mid-write leaves the previous file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


def _comparable(config: BlobExperimentConfig) -> dict:
    """The settings a finished run depends on (not which classes, methods or how many seeds
    this invocation asks for: a later command may add some)."""
    settings = dataclasses.asdict(config)
    for key in ("classes", "methods", "seeds"):
        settings.pop(key)
    return json.loads(json.dumps(settings))  # tuples as lists, as they come back from JSON


def _finished_runs(out: Path, config: BlobExperimentConfig) -> dict[tuple, RunResult]:
    """The runs ``out`` holds from an earlier invocation with the same settings (their rows in
    ``results.json`` and their embeddings), so a stopped experiment goes on where it stopped.
    ValueError when ``out`` holds runs made with other settings."""
    if not (out / "results.json").is_file():
        return {}
    config_file = out / "config.json"
    earlier = json.loads(config_file.read_text()) if config_file.is_file() else None
    if earlier != _comparable(config):
        raise ValueError(
            f"{out} holds blob runs made with other settings ({config_file.name} differs or is "
            "missing); use another --out, or remove that folder to start again"
        )
    done = {}
    for row in json.loads((out / "results.json").read_text()):
        key = (int(row["classes"]), str(row["method"]), int(row["seed"]))
        path = _embedding_file(out, *key)
        if not path.is_file():
            continue
        with np.load(path) as saved:
            done[key] = RunResult(
                row=row,
                embedding=saved["embedding"],
                labels=saved["label"],
                assignment=saved["assignment"],
            )
    return done


def draw_figure(results: dict, config: BlobExperimentConfig, path: Path, seed: int = 0) -> Path:
    """Fig. 2: ``results[(classes, method, seed)]`` on the unit circle, methods as rows and
    class counts as columns, coloured by true class with NEMD in each title."""
    from pauc_ray.evaluation.plots import CirclePanel, plot_circle_grid

    panels = {}
    for i, method in enumerate(config.methods):
        for j, classes in enumerate(config.classes):
            result = results.get((classes, method, seed))
            if result is not None:
                title = f"{method.upper()}, {classes} cls\nNEMD {result.row['nemd']:.3f}"
                panels[(i, j)] = CirclePanel(result.embedding, result.labels, classes, title)
    return plot_circle_grid(panels, len(config.methods), len(config.classes), path)


if __name__ == "__main__":
    sys.exit(main())
