"""How hard each PAUC term pulls on the query embeddings of a trained run: the gradient norm
``||d (weight x term) / d q||`` per term, averaged over batches, for the run's own loss
settings and for variants (other weights, p-uniform as Eq. 5 or its log).

The run's latest checkpoint gives both encoders; its momentum encoder's projections of the whole
train split are clustered as in training (the run's K's), and batches of two augmented views go
through the loss exactly as in a training step (no optimiser step is taken).

Run: ``python benchmarks/term_balance.py RUN_DIR [--batches 8] [--batch-size 256]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from cluster.kmeans import cluster_features
from pauc_ray.checkpoint import find_latest_checkpoint, read_checkpoint
from pauc_ray.config_io import from_dict
from pauc_ray.data import load_split_arrays, read_dataset_info, resolve_dataset
from pauc_ray.data.augment import EvalTransform, TwoViewAugment
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.losses import TERM_NAMES, pauc_loss, term_gradient_norms
from pauc_ray.model.backbones import build_encoder
from pauc_ray.model.moco import MoCo
from pauc_ray.prototypes import EpochPrototypes
from pauc_ray.train.config import TrainConfig
from pauc_ray.train.driver import encoder_spec_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = from_dict(TrainConfig, json.loads((args.run / "config.json").read_text()))
    state = read_checkpoint(find_latest_checkpoint(args.run))
    dataset_dir = resolve_dataset(config.dataset, config.data_dir, config.seed)
    spec = encoder_spec_for(config, read_dataset_info(dataset_dir))
    model = MoCo(build_encoder(spec), state["model"]["queue"].shape[0], config.moco_momentum)
    model.load_state_dict(state["model"])
    train = load_split_arrays(dataset_dir, "train")
    features = embed_arrays(model.encoder_k, train.inputs, EvalTransform(config.augment))
    clustering = cluster_features(features, train.ids, config.clustering)
    prototypes = EpochPrototypes.from_result(clustering)
    augment = TwoViewAugment(config.augment)
    generator = torch.Generator().manual_seed(0)
    variants = {
        "run's settings": config.loss,
        "p-uniform as Eq. 5 (mean)": dataclasses.replace(config.loss, uniform_form="mean"),
    }
    model.train()
    print(f"{args.run.name}: epoch {int(state['epoch'])}, K = {config.kmeans.num_clusters}")
    print("| variant | " + " | ".join(TERM_NAMES) + " |")
    print("|---|" + "---:|" * len(TERM_NAMES))
    for label, loss_config in variants.items():
        sums = dict.fromkeys(TERM_NAMES, 0.0)
        batch_rng = np.random.default_rng(0)
        for _ in range(args.batches):
            rows = batch_rng.choice(len(train), args.batch_size, replace=False)
            x_q, x_k = augment(torch.from_numpy(train.inputs[rows]), generator=generator)
            q, k = model(x_q, x_k)
            sets = prototypes.for_batch(torch.from_numpy(train.ids[rows]))
            out = pauc_loss(q, k, model.negatives(), sets, method="pauc", config=loss_config)
            for name, value in term_gradient_norms(out, q).items():
                sums[name] += value / args.batches
        cells = [f"{sums[n]:.3f}" for n in TERM_NAMES]
        print(
            f"| {label} (alpha {loss_config.alpha}, beta {loss_config.beta}, gamma "
            f"{loss_config.gamma}) | " + " | ".join(cells) + " |"
        )


if __name__ == "__main__":
    main()
