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

import faulthandler
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch

from pauc_ray.checkpoint import read_checkpoint
from pauc_ray.collectives import allreduce_one_at_a_time, gather_rows
from pauc_ray.config_io import from_dict
from pauc_ray.data import sampler
from pauc_ray.data.augment import EvalTransform, TwoViewAugment
from pauc_ray.data.parquet_io import SplitArrays
from pauc_ray.data.ray_dataset import input_column, rows_from_object_store
from pauc_ray.data.sharding import shard_bounds
from pauc_ray.evaluation.embed import embed_arrays
from pauc_ray.losses import TERM_NAMES
from pauc_ray.model.acceleration import compile_encoders, to_channels_last, use_channels_last
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from pauc_ray.model.moco import MoCo
from pauc_ray.prototypes import EpochPrototypes
from pauc_ray.schedule import build_lr_scheduler
from pauc_ray.step import resolve_precision, train_step
from pauc_ray.train.config import TrainConfig
from pauc_ray.train.evaluate_run import evaluate_encoder
from pauc_ray.train.fault_injection import FAULT_ENV, maybe_inject_fault
from pauc_ray.train.reporting import brief, report_with_checkpoint, reportable
from pauc_ray.train.run_files import RunFiles, read_json, write_json_atomic
from pauc_ray.train.worker_comm import (
    exchange_with_actor,
    group_token,
    load_share,
    mean_over_workers,
)

logger = logging.getLogger(__name__)

__all__ = ["FAULT_ENV", "train_loop_per_worker"]


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker's run: set up (and restore), then per epoch the prototypes, the
    training steps, the epoch's metrics (and evaluation when due), and the report."""
    # A fatal signal (a native crash) dumps the Python stack of every thread to the worker's
    # stderr log. Ray enables faulthandler for the faulting thread only, and the heap
    # corruption seen in long runs (docs/results.md) aborted in threads with no Python frame:
    # what the training thread was doing then is in the other threads' stacks.
    faulthandler.enable(all_threads=True)
    run = _set_up(loop_config)
    data = _TrainData.open(loop_config, run)
    for epoch in range(run.start_epoch, run.config.epochs):
        epoch_start = time.perf_counter()
        warmup = run.config.method == "moco" or epoch < run.config.loss.warmup_epochs
        lr = run.scheduler.get_last_lr()[0]
        prototypes, seconds = _epoch_prototypes(run, data, epoch, warmup)
        stats = _train_epoch(run, data, epoch, warmup, prototypes)
        seconds["epoch"] = time.perf_counter() - epoch_start
        metrics = _epoch_metrics(run, epoch, lr, warmup, stats, seconds)
        if epoch == run.start_epoch and run.restored is not None:
            metrics.update(run.restored)  # the first epoch after a restart says what it cost
        _report_epoch(run, epoch, metrics, loop_config)


@dataclass
class _Run:
    """What one worker holds for the whole run."""

    config: TrainConfig
    spec: EncoderSpec
    files: RunFiles
    dataset_dir: str
    actor: Any
    rank: int
    world: int
    device: torch.device
    model: MoCo
    query_encoder: torch.nn.Module  # DDP around model.encoder_q with several workers
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    per_worker_batch: int
    steps_per_epoch: int
    group: str
    progress: Any = None  # rank 0's ProgressChannel to the driver (console.py), or None
    mlflow: Any = None  # rank 0's MLflow module when --mlflow-uri is given
    precision: str = "fp32"
    scaler: Any = None  # fp16's GradScaler (its state travels with checkpoints)
    start_epoch: int = 0
    history: list = field(default_factory=list)
    # after a restore: {"resumed_from_epoch": E, "epochs_repeated": N} (N: epochs finished
    # before the restart that the checkpoint did not hold, trained again)
    restored: dict | None = None
    clustering: Any = None  # the last epoch's clustering result (saved with checkpoints)
    channels_last: bool = False  # config.channels_last resolved for this device and input


def _set_up(loop_config: dict[str, Any]) -> _Run:
    """Builds the MoCo pair, the optimiser and the schedule; restores the latest checkpoint
    (Ray Train's after a restart, or ``resume_from``) if there is one."""
    config: TrainConfig = from_dict(TrainConfig, loop_config["config"])
    spec = EncoderSpec.from_dict(loop_config["encoder_spec"])
    if not loop_config.get("verbose", True):
        # Ray Train configured this process's loggers at INFO; the driver prints each epoch,
        # so only warnings and errors of the worker (and of Ray Train in it) need to travel
        for name in ("", "ray.train", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
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
    precision = resolve_precision(config.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    start_epoch, history, restored = 0, [], None
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
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        history = json.loads(state["history_json"])
        generator.manual_seed(config.seed * 7919 + rank + 104729 * start_epoch)
        if rank == 0:
            logger.info("resumed from epoch %d (%s)", start_epoch, source)
    # history.json is written after every epoch, checkpoints less often (and stored later): the
    # difference is what this (re)start trains again. Also a group restarted before any
    # checkpoint was stored (start_epoch 0) is a restart, when epochs were already finished.
    written = read_json(RunFiles(loop_config["run_dir"]).history, default=[])
    finished = max((int(m["epoch"]) for m in written), default=0)
    if state is not None or finished > 0:
        restored = {
            "resumed_from_epoch": start_epoch,
            "epochs_repeated": max(0, finished - start_epoch),
        }
        if rank == 0 and restored["epochs_repeated"]:
            logger.info("%d finished epoch(s) to train again", restored["epochs_repeated"])
    if config.batch_norm == "sync" and world > 1:  # statistics over every worker's batch
        model.encoder_q = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.encoder_q)
        model.encoder_k = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.encoder_k)
    channels_last = use_channels_last(model, spec.input_kind, device, config.channels_last)
    if config.compile:
        compile_encoders(model.encoder_q, model.encoder_k)
    query_encoder = model.encoder_q
    if world > 1:
        query_encoder = torch.nn.parallel.DistributedDataParallel(
            model.encoder_q,
            device_ids=[device.index] if device.type == "cuda" else None,
            # BN statistics stay per worker after the start (every worker starts from the same
            # seed, so syncing them once at init changes nothing); the queue never travels
            forward_sync_buffers=False,
        )
        if torch.distributed.get_backend() == "gloo":  # see pauc_ray/collectives.py
            query_encoder.register_comm_hook(None, allreduce_one_at_a_time)
    per_worker_batch = sampler.per_worker_batch(config.batch_size, world, config.bn_groups)
    steps_per_epoch = sampler.steps_per_epoch(loop_config["num_train"], world, per_worker_batch)
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
    return _Run(
        config=config,
        spec=spec,
        files=RunFiles(loop_config["run_dir"]),
        dataset_dir=loop_config["dataset_dir"],
        actor=loop_config["cluster_actor"],
        rank=rank,
        world=world,
        device=device,
        model=model,
        query_encoder=query_encoder,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=generator,
        per_worker_batch=per_worker_batch,
        steps_per_epoch=steps_per_epoch,
        group=group_token(world),
        progress=loop_config.get("progress") if rank == 0 else None,
        mlflow=_mlflow_session(config) if rank == 0 else None,
        precision=precision,
        scaler=scaler,
        channels_last=channels_last,
        start_epoch=start_epoch,
        history=history,
        restored=restored,
    )


@dataclass
class _TrainData:
    """Where this worker's training batches and feature-pass rows come from: the split held in
    the object store (``rows``), or this worker's Ray Data shard for splits too large for it."""

    rows: Any  # in-memory split (ids, inputs), or None when streaming
    shard: Any  # Ray Data shard when streaming, else None
    feature_inputs: tuple | None  # (ids, inputs) of this worker's feature-pass share
    num_train: int

    @classmethod
    def open(cls, loop_config: dict[str, Any], run: _Run) -> _TrainData:
        num_train = loop_config["num_train"]
        if loop_config.get("train_rows") is not None:
            rows = _subset(rows_from_object_store(loop_config["train_rows"]), run.config)
            if len(rows) != num_train:
                raise RuntimeError(f"the driver planned {num_train} train rows, got {len(rows)}")
            start, stop = shard_bounds(num_train, run.rank, run.world)
            return cls(rows, None, (rows.ids[start:stop], rows.inputs[start:stop]), num_train)
        # the share of the feature pass is read (and decoded once) when first needed
        return cls(None, ray.train.get_dataset_shard("train"), None, num_train)

    def batches(self, run: _Run, epoch: int):
        if self.rows is not None:
            return _memory_batches(
                self.rows, run.config.seed, epoch, run.rank, run.world, run.per_worker_batch
            )
        return self.shard.iter_torch_batches(
            batch_size=run.per_worker_batch,
            drop_last=True,
            local_shuffle_buffer_size=min(self.num_train, 4 * run.per_worker_batch),
            local_shuffle_seed=run.config.seed + 1000 * epoch + run.rank,
        )

    def feature_share(self, run: _Run) -> tuple:
        if self.feature_inputs is None:
            self.feature_inputs = load_share(run.dataset_dir, run.rank, run.world)
        return self.feature_inputs


def _epoch_prototypes(
    run: _Run, data: _TrainData, epoch: int, warmup: bool
) -> tuple[EpochPrototypes | None, dict[str, float]]:
    """After warm-up: the feature pass over this worker's share (momentum encoder, projection
    output, no augmentation) and the exchange with the clustering actor for the epoch's
    prototypes. Returns them (None in warm-up) and the seconds each part took."""
    seconds = {"feature_pass": 0.0, "clustering": 0.0}
    if warmup:
        return None, seconds
    ids, inputs = data.feature_share(run)
    t0 = time.perf_counter()
    features = embed_arrays(
        run.model.encoder_k,
        inputs,
        EvalTransform(run.config.augment),
        run.device,
        representation="projection",
    )
    seconds["feature_pass"] = time.perf_counter() - t0
    maybe_inject_fault("actor", epoch, run.rank, run.files, run.actor)
    t0 = time.perf_counter()
    run.clustering = exchange_with_actor(
        run.actor, epoch, run.group, run.rank, run.world, features, ids
    )
    seconds["clustering"] = time.perf_counter() - t0
    return EpochPrototypes.from_result(run.clustering, run.device), seconds


@dataclass
class _EpochStats:
    """This worker's sums over one epoch's steps."""

    sums: dict[str, float]  # "total" and each of TERM_NAMES
    instance_accuracy: float = 0.0
    prototype_accuracy: float = 0.0
    steps: int = 0
    skipped: int = 0  # fp16 steps whose gradients overflowed
    gradient_norms: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _train_epoch(
    run: _Run, data: _TrainData, epoch: int, warmup: bool, prototypes: EpochPrototypes | None
) -> _EpochStats:
    """One epoch of :func:`pauc_ray.step.train_step` on two augmented views, the learning rate
    stepped every step; each term's gradient norm is measured on the middle step."""
    config, device = run.config, run.device
    augment = TwoViewAugment(config.augment)
    stats = _EpochStats(sums={name: 0.0 for name in ("total", *TERM_NAMES)})
    run.model.train()
    start = time.perf_counter()
    for batch in data.batches(run, epoch):
        if stats.steps == run.steps_per_epoch:
            break
        if stats.steps == run.steps_per_epoch // 2:
            maybe_inject_fault("worker", epoch, run.rank, run.files, run.actor)
        inputs = batch[input_column(batch)]
        x_q, x_k = augment(
            inputs.to(device), generator=None if device.type == "cuda" else run.generator
        )
        if run.channels_last:
            x_q, x_k = to_channels_last(x_q), to_channels_last(x_k)
        sets = prototypes.for_batch(batch["id"].to(device)) if prototypes else []
        out = train_step(
            run.model,
            x_q,
            x_k,
            run.optimizer,
            sets,
            method=config.method,
            loss_config=config.loss,
            warmup=warmup,
            generator=run.generator,
            query_encoder=run.query_encoder,
            gather_keys=gather_rows if run.world > 1 else None,
            gather_distributed=run.world > 1,
            # mid-epoch: at the very first step of a run the queue is still empty
            measure_gradients=stats.steps == run.steps_per_epoch // 2,
            precision=run.precision,
            scaler=run.scaler,
            shuffle_across_workers=config.batch_norm == "shuffle" and run.world > 1,
        )
        stats.skipped += out.skipped
        run.scheduler.step()
        stats.gradient_norms = stats.gradient_norms or out.gradient_norms
        total = out.total.item()
        stats.sums["total"] += total
        for name in TERM_NAMES:
            stats.sums[name] += out.terms.get(name, 0.0)
        stats.instance_accuracy += out.instance_accuracy
        stats.prototype_accuracy += out.prototype_accuracy or 0.0
        stats.steps += 1
        if run.progress is not None:
            run.progress.step(epoch + 1, stats.steps, run.steps_per_epoch, total)
    stats.seconds = time.perf_counter() - start
    return stats


def _epoch_metrics(
    run: _Run, epoch: int, lr: float, warmup: bool, stats: _EpochStats, seconds: dict
) -> dict[str, Any]:
    """The epoch's metrics, averaged over the workers (one all-reduce); rank 0 adds the kNN,
    its baselines and NEMD when an evaluation is due (every ``eval_every`` epochs, and last)."""
    config = run.config
    names = ("total", *TERM_NAMES)
    steps = max(stats.steps, 1)
    local = [stats.sums[n] / steps for n in names] + [
        stats.instance_accuracy / steps,
        stats.prototype_accuracy / steps,
        float(stats.steps),
        float(stats.skipped),
    ]
    local += [stats.gradient_norms.get(n, 0.0) for n in TERM_NAMES]
    averaged = mean_over_workers(local, run.device)
    norms = dict(zip(TERM_NAMES, averaged[len(names) + 4 :]))
    samples = stats.steps * run.per_worker_batch * run.world
    metrics: dict[str, Any] = {
        "epoch": epoch + 1,
        "lr": lr,
        # a prototype method's InfoNCE-only epoch (MoCo's are all InfoNCE: no warm-up to show)
        "warmup": warmup and run.config.method != "moco",
        "world_size": run.world,
        "global_batch": run.per_worker_batch * run.world,
        **{f"loss_{n}": v for n, v in zip(names, averaged)},
        "instance_accuracy": averaged[len(names)],
        "prototype_accuracy": None if warmup else averaged[len(names) + 1],
        # |d (weighted term) / d q|, middle step of the epoch, mean over workers
        **{f"grad_norm_{n}": norms[n] for n in TERM_NAMES if n in stats.gradient_norms},
        "samples_per_second": samples / max(stats.seconds, 1e-9),
        "precision": run.precision,
        "skipped_steps": averaged[len(names) + 3] * run.world,  # summed over the workers
        "feature_pass_seconds": seconds["feature_pass"],
        "clustering_seconds": seconds["clustering"],
        "epoch_seconds": seconds["epoch"],
    }
    last = epoch + 1 == config.epochs
    due = last or (config.eval_every and (epoch + 1) % config.eval_every == 0)
    if run.rank == 0 and due:
        metrics.update(
            evaluate_encoder(
                run.model.encoder_q,
                config,
                run.spec,
                run.dataset_dir,
                run.device,
                run.files,
                write_nemd=last,
            )
        )
    return metrics


def _report_epoch(run: _Run, epoch: int, metrics: dict[str, Any], loop_config: dict) -> None:
    """History (live on rank 0), the report to Ray Train with a checkpoint when one is due,
    and after the last epoch the export."""
    config = run.config
    last = epoch + 1 == config.epochs
    run.history.append(metrics)
    if run.rank == 0:
        logger.info("epoch %d: %s", epoch + 1, brief(metrics))
        write_json_atomic(run.files.history, run.history)  # readable while the run goes on
        if run.progress is not None:
            run.progress.epoch(reportable(metrics))
        if run.mlflow is not None:
            numbers = {k: v for k, v in reportable(metrics).items() if v is not None}
            run.mlflow.log_metrics({k: float(v) for k, v in numbers.items()}, step=epoch + 1)
    if last or (epoch + 1) % config.checkpoint_every == 0:
        report_with_checkpoint(
            run.rank,
            run.model,
            run.optimizer,
            epoch + 1,
            config,
            run.history,
            run.clustering,
            metrics,
            scaler=run.scaler,
            last=last,
        )
    else:
        ray.train.report(reportable(metrics))
    if last and run.rank == 0:
        run.files.export(
            run.model.encoder_q, run.spec, config, run.history, loop_config["dataset_info"]
        )
        if run.mlflow is not None:
            run.mlflow.end_run()


def _mlflow_session(config: TrainConfig):
    """Ray's ``setup_mlflow`` on rank 0 (MLflow run named after the run, the flattened
    settings as its parameters), or None without ``mlflow_uri``."""
    if not config.mlflow_uri:
        return None
    from ray.air.integrations.mlflow import setup_mlflow

    def flat(data: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in data.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    return setup_mlflow(
        flat(config.to_dict()),
        tracking_uri=config.mlflow_uri,
        experiment_name=config.mlflow_experiment,
        run_name=config.name,
        create_experiment_if_not_exists=True,
        rank_zero_only=True,
    )


def _subset(rows: SplitArrays, config: TrainConfig) -> SplitArrays:
    """``rows``, or the seeded subset ``train_max_samples`` asks for, renumbered ``0..M-1``
    (the clustering actor's assignments and the feature pass index rows by id)."""
    keep = sampler.train_subset(len(rows), config.train_max_samples, config.seed)
    if keep is None:
        return rows
    return SplitArrays(np.arange(len(keep), dtype=np.int64), rows.inputs[keep], rows.labels[keep])


def _memory_batches(rows, seed: int, epoch: int, rank: int, world: int, batch_size: int):
    """This rank's batches of epoch ``epoch`` from the in-memory split, in the order of the
    epoch's global permutation (:func:`pauc_ray.data.sampler.epoch_batches`)."""
    positions = sampler.epoch_batches(
        len(rows), seed=seed, epoch=epoch, rank=rank, world_size=world, batch_size=batch_size
    )
    for batch in positions:  # "x": the inputs, images or vectors (see input_column)
        yield {"id": torch.from_numpy(rows.ids[batch]), "x": torch.from_numpy(rows.inputs[batch])}
