"""A quick in-process MoCo loop (no Ray) for trying recipe settings: the project's augmentation,
encoders, MoCo pair, loss, cosine schedule and per-epoch permutation in one process, kNN top-1
on the backbone features (and the projection) against the raw-input and random-init baselines.

Used to choose the shipped recipes (the figures are in benchmarks/RESULTS.md); the recipes
themselves are then measured through ``python -m pauc_ray.train``.

Run: ``python benchmarks/inprocess_recipe.py --dataset fashion-mnist --epochs 15 --tau 0.1
--crop 0.35 --flip 0.5 --eval-every 2 --minutes 6``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pauc_ray.config import LossConfig
from pauc_ray.data import PrepareConfig, load_split_arrays, prepare
from pauc_ray.data.augment import AugmentConfig, EvalTransform, TwoViewAugment
from pauc_ray.data.sampler import epoch_batches
from pauc_ray.evaluation.baselines import baseline_knn
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.evaluation.knn import knn_classify
from pauc_ray.losses import pauc_loss
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from pauc_ray.model.moco import MoCo
from pauc_ray.schedule import build_lr_scheduler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default="./data")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.06)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--crop", type=float, default=0.6, help="smallest crop area fraction")
    p.add_argument("--flip", type=float, default=0.0)
    p.add_argument("--jitter", type=float, default=0.4, help="brightness and contrast")
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--queue", type=int, default=4096)
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--minutes", type=float, default=1e9, help="stop after this much training")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    directory = Path(args.data_dir) / args.dataset
    if not (directory / "dataset.json").exists():
        prepare(args.dataset, directory, PrepareConfig(seed=0, progress=False))
    train, test = load_split_arrays(directory, "train"), load_split_arrays(directory, "test")
    augment_config = AugmentConfig(
        crop_scale=(args.crop, 1.0),
        flip_p=args.flip,
        brightness=args.jitter,
        contrast=args.jitter,
        saturation=0.0,
        hue=0.0,
        grayscale_p=0.0,
    )
    augment, transform = TwoViewAugment(augment_config), EvalTransform(augment_config)
    spec = EncoderSpec("convnet", "image", train.inputs.shape[1:], 128, 2, width=args.width)
    model = MoCo(build_encoder(spec, seed=0), min(args.queue, len(train) // 2), args.momentum, 2)

    def knn(representation: str) -> float:
        embed = lambda a: embed_arrays(  # noqa: E731
            model.encoder_q, a.inputs, transform, representation=representation
        )
        return knn_classify(embed(train), train.labels, embed(test), test.labels, k=20).top1

    base = baseline_knn(train, test, spec, 0, transform)
    print(f"baselines: {base}", flush=True)
    optimizer = torch.optim.SGD(
        model.encoder_q.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay
    )
    steps = len(train) // args.batch_size
    scheduler = build_lr_scheduler(
        optimizer, "cosine", epochs=args.epochs, steps_per_epoch=steps, warmup_epochs=1
    )
    loss_config = LossConfig(temperature=args.tau)
    generator = torch.Generator().manual_seed(0)
    trained = 0.0
    for epoch in range(args.epochs):
        started, losses = time.perf_counter(), []
        batches = epoch_batches(
            len(train), seed=0, epoch=epoch, rank=0, world_size=1, batch_size=args.batch_size
        )
        for rows in batches:
            x_q, x_k = augment(torch.from_numpy(train.inputs[rows]), generator=generator)
            q, k = model(x_q, x_k)
            out = pauc_loss(q, k, model.negatives(), method="moco", config=loss_config)
            optimizer.zero_grad()
            out.total.backward()
            optimizer.step()
            scheduler.step()
            model.momentum_update()
            model.enqueue(k)
            losses.append(out.total.item())
        trained += (time.perf_counter() - started) / 60
        line = f"epoch {epoch + 1} loss {np.mean(losses):.3f} training minutes {trained:.2f}"
        last = epoch + 1 == args.epochs or trained > args.minutes
        if (epoch + 1) % args.eval_every == 0 or last:
            line += f" kNN backbone {knn('backbone'):.2f} projection {knn('projection'):.2f}"
        print(line, flush=True)
        if trained > args.minutes:
            break


if __name__ == "__main__":
    main()
