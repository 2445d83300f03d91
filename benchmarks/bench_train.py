"""Ray Train with one worker vs a plain in-process loop over the same model, data and step.

    .venv/bin/python benchmarks/bench_train.py [--epochs 6] [--method moco]

Both sides run :func:`pauc_ray.step.train_step` on the same ResNet-18 (small-image stem),
digits, batch size, augmentation and torch thread count. Reported: training samples/s (the
time inside the step loop, as the trainer's ``samples_per_second``) and whole-epoch samples/s
(everything from the start of one epoch to the next: Ray Data hand-off, reporting,
checkpointing), their ratios (goal for Ray / in-process: >= 0.9), and for PAUC the share of the
epoch spent in the feature pass and clustering (goal <= 15 %). Never run from the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from pauc_ray.data import load_split_arrays, resolve_dataset
from pauc_ray.data.augment import TwoViewAugment
from pauc_ray.model.acceleration import to_channels_last, use_channels_last
from pauc_ray.model.backbones import build_encoder
from pauc_ray.model.moco import MoCo
from pauc_ray.schedule import build_lr_scheduler
from pauc_ray.step import train_step
from pauc_ray.train.config import TrainConfig
from pauc_ray.train.driver import encoder_spec_for, init_ray, run_training


def in_process(config: TrainConfig, threads: int) -> dict:
    """The same loop without Ray (MoCo method: no clustering, to time the step loop alone)."""
    torch.set_num_threads(threads)
    directory = resolve_dataset(config.dataset, config.data_dir, config.seed)
    from pauc_ray.data import read_dataset_info

    info = read_dataset_info(directory)
    train = load_split_arrays(directory, "train")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    spec = encoder_spec_for(config, info)
    model = MoCo(
        build_encoder(spec),
        min(config.queue_size, len(train) // 2),
        config.moco_momentum,
        config.bn_groups,
    )
    # the memory format the Ray workers use for this config (channels_last on CPUs by default)
    channels_last = use_channels_last(model, spec.input_kind, "cpu", config.channels_last)
    optimizer = torch.optim.SGD(
        model.encoder_q.parameters(),
        lr=config.lr,
        momentum=config.sgd_momentum,
        weight_decay=config.weight_decay,
    )
    augment = TwoViewAugment(config.augment)
    inputs = torch.from_numpy(train.inputs)
    batch = config.batch_size
    steps = len(train) // batch
    scheduler = build_lr_scheduler(optimizer, "step", epochs=config.epochs, steps_per_epoch=steps)
    train_rates, epoch_rates = [], []
    for _ in range(config.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(train), generator=generator)
        t0 = time.perf_counter()
        for s in range(steps):
            x_q, x_k = augment(inputs[order[s * batch : (s + 1) * batch]], generator)
            if channels_last:
                x_q, x_k = to_channels_last(x_q), to_channels_last(x_k)
            train_step(
                model,
                x_q,
                x_k,
                optimizer,
                [],
                method="moco",
                loss_config=config.loss,
                warmup=True,
                generator=generator,
            )
            scheduler.step()
        train_rates.append(steps * batch / (time.perf_counter() - t0))
        epoch_rates.append(steps * batch / (time.perf_counter() - start))
    return {
        "train_samples_per_second": statistics.median(train_rates[1:]),
        "epoch_samples_per_second": statistics.median(epoch_rates[1:]),
    }


def with_ray(config: TrainConfig) -> dict:
    init_ray()
    summary = run_training(config)
    history = json.loads((Path(summary["run_dir"]) / "history.json").read_text())[1:]
    from pauc_ray.data import read_dataset_info

    num_train = read_dataset_info(
        resolve_dataset(config.dataset, config.data_dir, config.seed)
    ).counts["train"]
    samples_per_epoch = (num_train // config.batch_size) * config.batch_size
    steps_samples = [h["samples_per_second"] for h in history]
    epoch_rates = [samples_per_epoch / h["epoch_seconds"] for h in history]
    share = [
        (h["feature_pass_seconds"] + h["clustering_seconds"]) / h["epoch_seconds"]
        for h in history
        if not h["warmup"]
    ]
    return {
        "train_samples_per_second": statistics.median(steps_samples),
        "epoch_samples_per_second": statistics.median(epoch_rates),
        "feature_pass_and_clustering_share": statistics.median(share) if share else None,
        "wall_seconds": summary["wall_seconds"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    base = TrainConfig(
        epochs=args.epochs,
        workers="1",
        cpus_per_worker=float(args.threads),
        data_dir=str(work / "data"),
        storage=str(work / "runs"),
        checkpoint_every=args.epochs,
    )
    results = {
        "in_process_moco": in_process(dataclasses.replace(base, method="moco"), args.threads)
    }
    results["ray_moco"] = with_ray(dataclasses.replace(base, method="moco", name="moco"))
    results["ray_pauc"] = with_ray(
        dataclasses.replace(
            base, method="pauc", name="pauc", loss=dataclasses.replace(base.loss, warmup_epochs=1)
        )
    )
    a, b = results["ray_moco"], results["in_process_moco"]
    results["ratio_train"] = a["train_samples_per_second"] / b["train_samples_per_second"]
    results["ratio_epoch"] = a["epoch_samples_per_second"] / b["epoch_samples_per_second"]
    print(json.dumps(results, indent=2))
    print(
        f"Ray/in-process samples/s: step loop {results['ratio_train']:.2f}, whole epoch "
        f"{results['ratio_epoch']:.2f} (goal >= 0.9); PAUC feature pass + clustering share "
        f"{results['ray_pauc']['feature_pass_and_clustering_share']:.1%} (goal <= 15%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
