"""The driver: from a :class:`TrainConfig` to a finished run folder and its summary.

:func:`run_training` is what ``python -m pauc_ray.train`` calls, and what a Ray Tune trial
calls (Ray's Train/Tune interop pattern: Tune sweeps this driver function, which builds the
TorchTrainer). It prepares and validates the dataset before any worker starts, starts the
run's clustering actor, runs the TorchTrainer (elastic workers, fault tolerance, resume) and
writes ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import ray

from cluster.actor import create_cluster_actor
from pauc_ray.checkpoint import find_latest_checkpoint
from pauc_ray.data import (
    DatasetError,
    read_dataset_info,
    resolve_dataset,
    sampler,
    validate_dataset,
)
from pauc_ray.model.backbones import EncoderSpec
from pauc_ray.storage import resolve, storage_env
from pauc_ray.train.config import TrainConfig
from pauc_ray.train.console import (
    ProgressChannel,
    RunMonitor,
    ray_logging_options,
    train_logging_config,
)
from pauc_ray.train.local_cluster import start_local_cluster
from pauc_ray.train.run_files import RunFiles, read_json, write_json_atomic

logger = logging.getLogger(__name__)

FULL_DECODE_LIMIT = 200_000  # validate every image's pixels below this many rows
CONVNET_MAX_SIDE = 64  # "auto" picks the small ConvNet up to here, ResNet-18 above


def encoder_spec_for(config: TrainConfig, info) -> EncoderSpec:
    """The encoder a run trains: ``config.backbone`` (``auto``: ``convnet`` for images of at
    most 64 px, ``resnet18`` above, ``mlp`` for vectors) at the run's input shape."""
    if info.kind == "image":
        shape: tuple[int, ...] = (info.channels, info.height, info.width)
        if config.augment.output_size:
            shape = (info.channels, config.augment.output_size, config.augment.output_size)
        small = max(shape[1:]) <= CONVNET_MAX_SIDE
        auto = "convnet" if small else "resnet18"
    else:
        shape, auto = (info.dim,), "mlp"
    return EncoderSpec(
        auto if config.backbone == "auto" else config.backbone,
        info.kind,
        shape,
        config.embedding_dim,
        config.bn_groups,
        width=config.width,
        head=config.head,
    )


def init_ray(verbose: bool = True) -> None:
    """Connects to the cluster in ``RAY_ADDRESS`` (what ``ray job submit`` sets) or one started
    with ``ray start``, else starts a local one with at least 4 logical CPUs: fractional train
    workers and Ray Data's tasks then fit next to each other on a 2-core machine
    (shared/RAY-NOTES.md). ``RAY_ADDRESS=local`` always starts a private local cluster.

    Unlike ``address="auto"``, this never attaches to some other process's private
    ``ray.init()`` cluster (a test session, a notebook) that may vanish mid-run. A cluster it
    starts is one where Ray Train can clean up after killed runs (:mod:`.local_cluster`).
    ``verbose=False`` keeps Ray's own lines below a warning out of the console
    (:func:`pauc_ray.train.console.ray_logging_options`).
    """
    if ray.is_initialized():
        return
    options = ray_logging_options(verbose)
    address = _existing_cluster_address()
    if address is not None:
        ray.init(address=address, log_to_driver=True, **options)
        return
    start_local_cluster(num_cpus=max(4, os.cpu_count() or 1), **options)


def _existing_cluster_address() -> str | None:
    """``RAY_ADDRESS``, else the cluster ``ray start`` recorded, else None (start one)."""
    env = os.environ.get("RAY_ADDRESS", "")
    if env:
        return None if env == "local" else env
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(None)
    except (ImportError, ConnectionError, ValueError):  # an older/newer Ray: no lookup
        return None


def _cluster_gpus(use_gpu: bool) -> float:
    """A GPU for the clustering actor only when faiss in this environment can use one."""
    try:
        import faiss

        has_gpu_faiss = hasattr(faiss, "StandardGpuResources")
    except ImportError:
        has_gpu_faiss = False
    return 1.0 if use_gpu and has_gpu_faiss else 0.0


def default_run_name(config: TrainConfig) -> str:
    dataset = config.dataset.replace(":", "_").replace("/", "_").strip("_")
    return f"{config.method}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


IN_MEMORY_LIMIT_BYTES = 2 << 30


def fits_object_store(info, num_rows: int) -> bool:
    """Whether ``num_rows`` decoded rows stay under ``IN_MEMORY_LIMIT_BYTES``."""
    per_row = 4 * info.dim if info.kind == "vector" else info.channels * info.height * info.width
    return num_rows * (per_row + 16) < IN_MEMORY_LIMIT_BYTES


def _train_data(dataset_dir: str, info, num_train: int) -> tuple[list | None, dict]:
    """How workers get the train split: ``(train_rows, datasets)``.

    A split under 2 GiB decoded is read and decoded once by Ray Data and left in the object
    store (``train_rows``, refs): every worker then draws each epoch's batches from a fresh
    seeded global permutation (:mod:`pauc_ray.data.sampler`), as MoCo and PCL do. A larger
    split streams through Ray Train's dataset shards (``datasets``) in Ray Data's order with
    a local shuffle buffer.
    """
    from pauc_ray.data.ray_dataset import read_split, split_to_object_store

    dataset = read_split(dataset_dir, "train")
    if fits_object_store(info, num_train):
        return split_to_object_store(dataset), {}
    logger.info("train split over %d GiB decoded: streaming it", IN_MEMORY_LIMIT_BYTES >> 30)
    return None, {"train": dataset}


def _worker_env() -> dict[str, str]:
    env = {"OMP_WAIT_POLICY": "PASSIVE", **storage_env()}
    from pauc_ray.train.fault_injection import FAULT_ENV

    if os.environ.get(FAULT_ENV):  # chaos testing: forwarded to the workers
        env[FAULT_ENV] = os.environ[FAULT_ENV]
    # MLflow's own settings (credentials, TLS, store options) reach rank 0, which logs
    env.update({k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")})
    return env


def describe_run(config: TrainConfig, info, num_train: int, spec: EncoderSpec, run_dir) -> str:
    """The console's header: what trains on what, where, and where it goes."""
    lo, hi = config.worker_range
    workers = f"{lo}" if lo == hi else f"{lo}-{hi}"
    model = spec.backbone + (f" (width {spec.width})" if spec.backbone == "convnet" else "")
    recipe = f", recipe {config.recipe}" if config.recipe else ""
    gpu = " + 1 GPU" if config.use_gpu else ""
    split_rows = info.counts.get("train", num_train)
    subset = f" of {split_rows:,}, a seeded subset" if num_train < split_rows else ""
    return (
        f"{config.method.upper()} on {config.dataset} "
        f"({num_train:,} train rows{subset}, {info.kind}s): "
        f"{model}{recipe}, {config.epochs} epochs, batch {config.batch_size}, "
        f"{workers} worker(s) x {config.cpus_per_worker:g} CPU{gpu}\nrun folder: {run_dir}"
    )


def run_training(
    config: TrainConfig,
    resume: str | None = None,
    callbacks: list | None = None,
    console: bool = False,
    verbose: bool = False,
) -> dict[str, Any]:
    """Runs (or resumes) one training run; returns the summary (also in ``summary.json``).

    Every run follows itself live in ``RUN_DIR/curves.png`` and ``RUN_DIR/tensorboard/``
    (:mod:`pauc_ray.train.console`). ``console`` prints the header and one line per epoch
    (and the epoch's progress bar on a terminal); ``verbose`` lets Ray Train log its own
    INFO lines too."""
    started = time.perf_counter()
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from pauc_ray.train.worker import train_loop_per_worker

    latest = None
    if resume is not None:
        run_dir = resolve(resume)
        config = dataclasses.replace(config, storage=str(run_dir.parent), name=run_dir.name)
        latest = find_latest_checkpoint(run_dir)
        if latest is None:
            logger.warning("%s has no complete checkpoint; starting from epoch 0", run_dir)
    name = config.name or default_run_name(config)
    config = dataclasses.replace(config, name=name)
    storage = resolve(config.storage)
    files = RunFiles(str(storage / name))
    if resume is None and find_latest_checkpoint(files.root) is not None:
        raise ValueError(
            f"run {files.root} already has checkpoints: continue it with --resume "
            f"{files.root}, or choose another --name"
        )
    files.root.mkdir()

    dataset_dir = resolve_dataset(config.dataset, config.data_dir, config.seed)
    info = read_dataset_info(dataset_dir)
    total_rows = sum(info.counts.values())
    validate_dataset(dataset_dir, decode=total_rows <= FULL_DECODE_LIMIT)
    split_rows = info.counts.get("train", 0)
    if split_rows == 0:
        raise DatasetError(f"{dataset_dir}: the train split is empty")
    num_train = min(split_rows, config.train_max_samples or split_rows)
    if num_train < split_rows and not fits_object_store(info, split_rows):
        raise ValueError(
            f"train_max_samples needs a train split that fits the object store; "
            f"{dataset_dir}'s is over {IN_MEMORY_LIMIT_BYTES >> 30} GiB decoded and streams"
        )
    lo, hi = config.worker_range
    per_worker = sampler.per_worker_batch(config.batch_size, hi, config.bn_groups)
    if per_worker < 2:
        raise ValueError(f"batch_size {config.batch_size} is too small for {hi} workers")
    if num_train // hi < per_worker:
        raise ValueError(
            f"the train split ({num_train} rows) is too small for batch_size "
            f"{config.batch_size} over {hi} workers"
        )
    k_max = max(config.kmeans.num_clusters)
    if config.method != "moco" and num_train < k_max:
        raise ValueError(
            f"num_clusters up to {k_max} needs at least that many train rows, "
            f"the train split has {num_train}"
        )
    queue_size = min(config.queue_size, num_train // 2)
    use_gpu = (
        (ray.cluster_resources().get("GPU", 0) > 0) if config.use_gpu is None else config.use_gpu
    )
    if config.batch_norm == "sync" and not use_gpu and hi > 1:
        raise ValueError(
            "--batch-norm sync needs GPU workers (torch's SyncBatchNorm has no CPU kernel); "
            "use --batch-norm shuffle (MoCo's shuffle-BN across workers) on CPUs"
        )
    files.config.write_text(config.to_json())
    if latest is not None:
        logger.info("resuming %s from %s", name, latest)
    actor = create_cluster_actor(
        num_train,
        config.clustering,
        cache_dir=str(files.clustering_cache),
        num_gpus=_cluster_gpus(use_gpu),
        name=f"pauc-cluster-{name}",
        log_level="INFO" if verbose else "WARNING",
        env=storage_env(),
    )
    spec = encoder_spec_for(config, info)
    if console:
        print(describe_run(config, info, num_train, spec, files.root), flush=True)
    # streamed splits: the same seed gives the same batches, Ray Data keeps the files' order
    data_context = ray.data.DataContext.get_current()
    data_context.execution_options.preserve_order = True
    data_context.enable_progress_bars = verbose  # the driver's epoch bar says it
    if not verbose:  # off on purpose: Ray Data's one-time notice that they are off is not news
        from ray.util.debug import log_once

        log_once("ray_data_progress_manager_disabled")
    train_rows, datasets = _train_data(dataset_dir, info, split_rows)
    progress = ProgressChannel()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config.to_dict(),
            "run_dir": str(files.root),
            "dataset_dir": dataset_dir,
            "dataset_info": json.loads(info.to_json()),
            "num_train": num_train,
            "queue_size": queue_size,
            "encoder_spec": spec.to_dict(),
            "cluster_actor": actor,
            "train_rows": train_rows,
            "progress": progress,
            "verbose": verbose,
            # Ray Train restores its own latest checkpoint when a run of the same name and
            # storage is started again; this is the fallback when its bookkeeping is gone.
            "resume_from": str(latest) if latest is not None else None,
        },
        scaling_config=ScalingConfig(
            num_workers=hi if lo == hi else (lo, hi),
            use_gpu=use_gpu,
            resources_per_worker={"CPU": config.cpus_per_worker, **({"GPU": 1} if use_gpu else {})},
            elastic_resize_monitor_interval_s=config.elastic_resize_interval_s,
        ),
        run_config=RunConfig(
            name=name,
            # Ray Train writes checkpoints through the same pyarrow filesystem as the rest
            storage_path=storage.path,
            storage_filesystem=None if storage.is_local else storage.fs,
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
            worker_runtime_env={"env_vars": _worker_env()},
            logging_config=train_logging_config(verbose),
        ),
        datasets=datasets,
    )
    previous = read_json(files.history, default=[])
    monitor = RunMonitor(
        progress, str(files.root), config.epochs, console=console, history=previous
    )
    try:
        with monitor:
            result = trainer.fit()
    finally:
        ray.kill(actor)
        progress.shutdown()
    history = read_json(files.history, default=[])
    final = history[-1] if history else {}
    restarts = [m for m in history if "resumed_from_epoch" in m]
    checkpoint = find_latest_checkpoint(files.root)
    summary = {
        "method": config.method,
        "dataset": config.dataset,
        "train_rows": num_train,
        "epochs_completed": final.get("epoch", 0),
        "backbone": spec.backbone,
        "representation": config.representation,
        "knn_top1": final.get("knn_top1"),
        "raw_knn_top1": final.get("raw_knn_top1"),
        "random_init_knn_top1": final.get("random_init_knn_top1"),
        "nemd": final.get("nemd"),
        "nemd_nn": final.get("nemd_nn"),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "export": str(files.export_dir) if files.export_dir.exists() else None,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "run_dir": str(files.root),
        "world_size": final.get("world_size"),
        "restarts": len(restarts),  # resumes and worker-group restarts alike
        "epochs_repeated": sum(int(m["epochs_repeated"]) for m in restarts),
        "error": str(result.error) if getattr(result, "error", None) else None,
    }
    write_json_atomic(files.summary, summary)
    return summary
