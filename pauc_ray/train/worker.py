"""The per-worker training loop (Ray Train V2, DDP); its pieces are in ``worker_comm``,
``reporting`` and ``fault_injection`` (with this module, the only ones that use ray.train).

Each worker: builds the MoCo pair (same seed everywhere; DDP wraps the query encoder), resumes
from ``ray.train.get_checkpoint()`` if there is one, and per epoch
1. (after warm-up) runs the feature pass over its exact share of the ids (momentum encoder,
   projection output, no augmentation) and exchanges it with the clustering actor for the
   epoch's prototypes;
2. trains with two-view augmentation and :func:`pauc_ray.step.train_step`, the learning rate
   following :func:`pauc_ray.schedule.build_lr_scheduler` step by step. The rows come from
   the train split held in Ray's object store (``train_rows``: each epoch a fresh seeded
   global permutation, :mod:`pauc_ray.data.sampler`) or, for splits too large for memory,
   from this worker's Ray Data shard (Ray Data's order with a local shuffle buffer);
3. reports metrics, each term's gradient norm on the epoch's middle step, and (every
   ``checkpoint_every`` epochs) a checkpoint from rank 0.
At the end rank 0 evaluates (kNN and its baselines, NEMD) and exports the query encoder.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from tqdm import tqdm

from pauc_ray.checkpoint import read_checkpoint
from pauc_ray.config_io import from_dict
from pauc_ray.data import sampler
from pauc_ray.data.augment import EvalTransform, TwoViewAugment
from pauc_ray.data.ray_dataset import rows_from_object_store
from pauc_ray.data.sharding import shard_bounds
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.losses import TERM_NAMES
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from pauc_ray.model.moco import MoCo
from pauc_ray.prototypes import EpochPrototypes
from pauc_ray.schedule import build_lr_scheduler
from pauc_ray.step import train_step
from pauc_ray.train.config import TrainConfig
from pauc_ray.train.evaluate_run import evaluate_encoder
from pauc_ray.train.fault_injection import FAULT_ENV, maybe_inject_fault
from pauc_ray.train.reporting import brief, report_with_checkpoint, reportable
from pauc_ray.train.run_files import RunFiles, write_json_atomic
from pauc_ray.train.worker_comm import (
    all_gather,
    exchange_with_actor,
    group_token,
    load_share,
    mean_over_workers,
)

logger = logging.getLogger(__name__)

__all__ = ["FAULT_ENV", "train_loop_per_worker"]


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config: TrainConfig = from_dict(TrainConfig, loop_config["config"])
    files = RunFiles(loop_config["run_dir"])
    spec = EncoderSpec.from_dict(loop_config["encoder_spec"])
    dataset_dir: str = loop_config["dataset_dir"]
    num_train: int = loop_config["num_train"]
    actor = loop_config["cluster_actor"]

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    # a fractional CPU is one thread; more threads than cores thrash on a shared machine
    torch.set_num_threads(max(1, int(config.cpus_per_worker)))
    torch.manual_seed(config.seed)
    generator = torch.Generator(device="cpu").manual_seed(config.seed * 7919 + rank)

    model = MoCo(
        build_encoder(spec, seed=config.seed),
        loop_config["queue_size"],
        config.moco_momentum,
        config.bn_groups,
    ).to(device)
    optimizer = torch.optim.SGD(
        model.encoder_q.parameters(),
        lr=config.lr,
        momentum=config.sgd_momentum,
        weight_decay=config.weight_decay,
    )
    start_epoch, history, clustering = 0, [], None
    state, source = None, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state, source = read_checkpoint(directory, map_location=device), checkpoint.path
    elif loop_config.get("resume_from"):
        source = loop_config["resume_from"]
        state = read_checkpoint(source, map_location=device)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        history = json.loads(state["history_json"])
        generator.manual_seed(config.seed * 7919 + rank + 104729 * start_epoch)
        if rank == 0:
            logger.info("resumed from epoch %d (%s)", start_epoch, source)
    query_encoder = model.encoder_q
    if world > 1:
        query_encoder = torch.nn.parallel.DistributedDataParallel(
            model.encoder_q,
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,  # BN statistics stay per worker; the queue never travels
        )
    group = group_token(world)
    per_worker_batch = sampler.per_worker_batch(config.batch_size, world, config.bn_groups)
    steps_per_epoch = sampler.steps_per_epoch(num_train, world, per_worker_batch)
    for param_group in optimizer.param_groups:  # the config's rate, also after a resume
        param_group["lr"] = param_group["initial_lr"] = config.lr
    scheduler = build_lr_scheduler(
        optimizer,
        config.lr_schedule,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=config.lr_warmup_epochs,
        milestones=config.lr_milestones,
        start_step=start_epoch * steps_per_epoch,
    )
    augment = TwoViewAugment(config.augment)
    eval_transform = EvalTransform(config.augment)
    rows = None
    if loop_config.get("train_rows") is not None:
        rows = rows_from_object_store(loop_config["train_rows"])
        start, stop = shard_bounds(num_train, rank, world)
        feature_inputs = (rows.ids[start:stop], rows.inputs[start:stop])
    else:
        shard = ray.train.get_dataset_shard("train")
        feature_inputs = None  # this worker's share of the train split, decoded once

    for epoch in range(start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        lr = scheduler.get_last_lr()[0]
        warmup = config.method == "moco" or epoch < config.loss.warmup_epochs
        feature_seconds = cluster_seconds = 0.0
        prototypes = None
        if not warmup:
            if feature_inputs is None:
                feature_inputs = load_share(dataset_dir, rank, world)
            t0 = time.perf_counter()
            features = embed_arrays(
                model.encoder_k,
                feature_inputs[1],
                eval_transform,
                device,
                representation="projection",
            )
            feature_seconds = time.perf_counter() - t0
            maybe_inject_fault("actor", epoch, rank, files, actor)
            t0 = time.perf_counter()
            clustering = exchange_with_actor(
                actor, epoch, group, rank, world, features, feature_inputs[0]
            )
            cluster_seconds = time.perf_counter() - t0
            prototypes = EpochPrototypes.from_result(clustering, device)

        model.train()
        names = ("total", *TERM_NAMES)
        sums = {name: 0.0 for name in names}
        acc_sum = proto_acc_sum = 0.0
        gradient_norms: dict[str, float] = {}
        steps = 0
        train_start = time.perf_counter()
        if rows is not None:
            batches = _memory_batches(rows, config.seed, epoch, rank, world, per_worker_batch)
        else:
            batches = shard.iter_torch_batches(
                batch_size=per_worker_batch,
                drop_last=True,
                local_shuffle_buffer_size=min(num_train, 4 * per_worker_batch),
                local_shuffle_seed=config.seed + 1000 * epoch + rank,
            )
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=rank != 0,
            leave=False,
        )
        for batch in batches:
            if steps == steps_per_epoch:
                break
            if steps == steps_per_epoch // 2:
                maybe_inject_fault("worker", epoch, rank, files, actor)
            inputs = batch["image"] if "image" in batch else batch["x"]
            x_q, x_k = augment(
                inputs.to(device), generator=None if device.type == "cuda" else generator
            )
            sets = prototypes.for_batch(batch["id"].to(device)) if prototypes else []
            out = train_step(
                model,
                x_q,
                x_k,
                optimizer,
                sets,
                method=config.method,
                loss_config=config.loss,
                warmup=warmup,
                generator=generator,
                query_encoder=query_encoder,
                gather_keys=all_gather if world > 1 else None,
                gather_distributed=world > 1,
                # mid-epoch: at the very first step of a run the queue is still empty
                measure_gradients=steps == steps_per_epoch // 2,
            )
            scheduler.step()
            gradient_norms = gradient_norms or out.gradient_norms
            total = out.total.item()
            sums["total"] += total
            for name in TERM_NAMES:
                sums[name] += out.terms.get(name, 0.0)
            acc_sum += out.instance_accuracy
            proto_acc_sum += out.prototype_accuracy or 0.0
            steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{total:.3f}")
        bar.close()
        train_seconds = time.perf_counter() - train_start
        local = [sums[n] / max(steps, 1) for n in names] + [
            acc_sum / max(steps, 1),
            proto_acc_sum / max(steps, 1),
            float(steps),
        ]
        local += [gradient_norms.get(n, 0.0) for n in TERM_NAMES]
        averaged = mean_over_workers(local, device)
        norms = dict(zip(TERM_NAMES, averaged[len(names) + 3 :]))
        epoch_seconds = time.perf_counter() - epoch_start
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": lr,
            "warmup": warmup,
            "world_size": world,
            **{f"loss_{n}": v for n, v in zip(names, averaged)},
            "instance_accuracy": averaged[len(names)],
            "prototype_accuracy": None if warmup else averaged[len(names) + 1],
            # |d (weighted term) / d q|, middle step of the epoch, mean over workers
            **{f"grad_norm_{n}": norms[n] for n in TERM_NAMES if n in gradient_norms},
            "samples_per_second": steps * per_worker_batch * world / max(train_seconds, 1e-9),
            "feature_pass_seconds": feature_seconds,
            "clustering_seconds": cluster_seconds,
            "epoch_seconds": epoch_seconds,
        }
        last = epoch + 1 == config.epochs
        if rank == 0 and (last or (config.eval_every and (epoch + 1) % config.eval_every == 0)):
            metrics.update(
                evaluate_encoder(
                    model.encoder_q, config, spec, dataset_dir, device, files, write_nemd=last
                )
            )
        history.append(metrics)
        if rank == 0:
            logger.info("epoch %d: %s", epoch + 1, brief(metrics))
            write_json_atomic(files.history, history)  # live: readable while the run goes on
        if last or (epoch + 1) % config.checkpoint_every == 0:
            report_with_checkpoint(
                rank, model, optimizer, epoch + 1, config, history, clustering, metrics
            )
        else:
            ray.train.report(reportable(metrics))
        if last and rank == 0:
            files.export(model.encoder_q, spec, config, history, loop_config["dataset_info"])


def _memory_batches(rows, seed: int, epoch: int, rank: int, world: int, batch_size: int):
    """This rank's batches of epoch ``epoch`` from the in-memory split, in the order of the
    epoch's global permutation (:func:`pauc_ray.data.sampler.epoch_batches`)."""
    positions = sampler.epoch_batches(
        len(rows), seed=seed, epoch=epoch, rank=rank, world_size=world, batch_size=batch_size
    )
    key = "image" if rows.inputs.ndim == 4 else "x"
    for batch in positions:
        yield {"id": torch.from_numpy(rows.ids[batch]), key: torch.from_numpy(rows.inputs[batch])}
