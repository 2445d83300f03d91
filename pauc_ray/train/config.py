"""The training run's configuration: one frozen dataclass, with YAML and the CLI as views.

``TrainConfig`` nests the method's defaults (:mod:`pauc_ray.config`), k-means
(:class:`cluster.config.KMeansConfig`), NEMD and augmentation settings. ``--config FILE.yaml``
gives any subset of fields (nested sections as mappings); CLI flags override it; the resolved
config is saved with the run as ``config.json`` and inside every checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from cluster.config import KMeansConfig
from pauc_ray.config import METHODS, LossConfig, NEMDConfig
from pauc_ray.config_io import from_dict, load_config_file, merge
from pauc_ray.data.augment import AugmentConfig
from pauc_ray.model.backbones import BACKBONES, HEADS, REPRESENTATIONS
from pauc_ray.schedule import LR_SCHEDULES
from pauc_ray.step import PRECISIONS

BATCH_NORMS = ("ghost", "shuffle", "sync")


def parse_worker_range(workers: str | int, name: str = "workers") -> tuple[int, int]:
    """``(min, max)`` from ``"N"`` or ``"MIN:MAX"``; ValueError naming ``name`` otherwise."""
    text = str(workers).strip()
    try:
        low, _, high = text.partition(":")
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"{name} must be 'N' or 'MIN:MAX', got {text!r}") from None
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must satisfy 1 <= MIN <= MAX, got {text!r}")
    return lo, hi


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of ``python -m pauc_ray.train`` (defaults: the paper's where it has one).

    Attributes:
        dataset: ``digits``, ``fashion-mnist``, ``blobs``, ``imagefolder:PATH`` (prepared
            into ``data_dir`` on first use) or ``parquet:PATH`` (a folder written by
            ``python -m pauc_ray.data prepare``).
        data_dir: where prepared datasets are kept.
        method: ``moco`` (InfoNCE), ``pcl`` (+ ProtoNCE) or ``pauc`` (+ p-align, p-uniform,
            p-corr), Eq. 7.
        epochs: training epochs.
        batch_size: global batch; each of W workers takes ``batch_size // W`` (rounded down
            to a multiple of ``bn_groups``), so it stays fixed when W changes.
        workers: ``"N"`` or ``"MIN:MAX"`` (elastic: starts with what fits, at least MIN).
        cpus_per_worker: logical CPUs per worker; fractions leave room for Ray Data's tasks.
        elastic_resize_interval_s: with ``workers`` ``MIN:MAX``, how often (seconds) Ray Train
            looks for room to grow a healthy worker group (it then restarts the group from the
            latest checkpoint with more workers); Ray's default is 60.
        use_gpu: one GPU per worker; None: when the cluster has GPUs.
        backbone: ``convnet``, ``resnet18``, ``resnet50``, ``mlp`` or ``auto`` (convnet for
            images of at most 64 px, resnet18 above, mlp for vectors).
        width: first-stage channels of ``convnet`` (stages ``w, 2w, 4w, 8w``).
        head: projection head, ``mlp`` (MoCo v2's) or ``linear``.
        embedding_dim: L2-normalised projection size (paper: 128).
        representation: what evaluation embeds: ``backbone`` (pooled features, projection
            head removed, as MoCo v2 and PCL evaluate) or ``projection``.
        bn_groups: ghost BatchNorm groups for MoCo's shuffle-BN within a worker.
        batch_norm: how BatchNorm sees the key batch: ``ghost`` (default: ``bn_groups`` ghost
            batches inside each worker with the key batch shuffled among them, the same with
            one worker or many), ``shuffle`` (MoCo's shuffle-BN across workers: the global key
            batch permuted before the key encoder and unshuffled after; ghost BatchNorm with
            one worker) or ``sync`` (SyncBatchNorm: statistics over every worker's batch).
        precision: ``auto`` (bf16 on a GPU that supports it, else fp32), ``fp32``, ``bf16`` or
            ``fp16`` (autocast around the encoders; fp16 with a gradient scaler whose overflowing
            steps are skipped and counted in ``skipped_steps``).
        channels_last: keep the encoders' weights and image batches in channels_last (NHWC)
            memory order; None (default): on when the workers train on CPUs (1.44x faster
            ConvNet steps here, ``benchmarks/RESULTS.md``), off on GPUs until measured there.
            Ignored for vector inputs.
        compile: ``torch.compile`` the two encoders (off by default; the first steps compile).
        queue_size: MoCo queue ``r``; clipped to half the training set (a longer queue would
            hold stale copies of the same samples).
        moco_momentum: key encoder momentum (MoCo: 0.999).
        lr, sgd_momentum, weight_decay: SGD (paper: 0.03, 0.9, 1e-4).
        lr_schedule: ``cosine`` (linear warm-up over ``lr_warmup_epochs``, then cosine decay
            to 0, per step) or ``step`` (the paper's: x0.1 at each of ``lr_milestones``).
        lr_warmup_epochs: linear warm-up of the cosine schedule, in epochs (0: none; at most
            all but the last step).
        lr_milestones: fractions of the epochs where the step schedule multiplies the rate by
            0.1 (paper: epochs 120 and 160 of 200).
        recipe: the shipped recipe whose values this config starts from (informational;
            ``--recipe`` picks it, see :mod:`pauc_ray.recipes`).
        seed: seeds initialisation, data order, augmentation and sampling.
        storage: where runs go (on a multi-node cluster: a path every node shares).
        name: run name (folder under ``storage``); default ``{method}-{dataset}-{time}``.
        checkpoint_every: epochs between checkpoints (the last epoch always checkpoints).
        checkpoint_upload: ``async`` (training goes on while Ray Train copies a checkpoint to
            ``storage`` in a background thread; the last one is always waited for) or
            ``sync`` (the step waits for the copy).
        eval_every: epochs between kNN/NEMD evaluations (0: only at the end).
        max_failures: worker-group restarts allowed (Ray Train's FailureConfig).
        mlflow_uri: also log the run's settings and per-epoch metrics to MLflow at this
            tracking URI (Ray's ``setup_mlflow`` on rank 0; the ``mlflow`` extra).
        mlflow_experiment: the MLflow experiment (created if missing).
        knn_k: neighbours of the kNN evaluation.
        eval_max_samples: train-split samples used as kNN memory and for NEMD (seeded).
        train_max_samples: pretrain on a seeded subset of this many train rows (None: all);
            for quick sweeps and smoke runs. The subset is the same for every worker, epoch
            and resume; evaluation still reads the whole splits (``eval_max_samples``), so a
            subset run's kNN is comparable with a full run's. Needs a split that fits the
            object store (under 2 GiB decoded).
        loss, kmeans, nemd, augment: the nested settings. ``kmeans.concentration_mean``
            unset (``None``) follows ``loss.temperature``, as in PCL; a value given is kept.
    """

    dataset: str = "digits"
    data_dir: str = "./data"
    method: str = "pauc"
    epochs: int = 30
    batch_size: int = 256
    workers: str = "2"
    cpus_per_worker: float = 0.5
    elastic_resize_interval_s: float = 60.0
    use_gpu: bool | None = None
    backbone: str = "auto"
    width: int = 32
    head: str = "mlp"
    embedding_dim: int = 128
    representation: str = "backbone"
    bn_groups: int = 2
    batch_norm: str = "ghost"
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    queue_size: int = 16384
    moco_momentum: float = 0.99
    lr: float = 0.03
    sgd_momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    lr_warmup_epochs: float = 2.0
    lr_milestones: tuple[float, ...] = (0.6, 0.8)
    recipe: str | None = None
    seed: int = 0
    storage: str = "./runs"
    name: str | None = None
    checkpoint_every: int = 1
    checkpoint_upload: str = "async"
    eval_every: int = 0
    max_failures: int = 3
    mlflow_uri: str | None = None
    mlflow_experiment: str = "pauc-ray"
    knn_k: int = 20
    eval_max_samples: int = 20000
    train_max_samples: int | None = None
    loss: LossConfig = field(default_factory=LossConfig)
    kmeans: KMeansConfig = field(  # unset concentration: follows loss.temperature
        default_factory=lambda: KMeansConfig(concentration_mean=None)
    )
    nemd: NEMDConfig = field(default_factory=NEMDConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("epochs", "batch_size", "checkpoint_every", "knn_k", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint_upload not in ("async", "sync"):
            raise ValueError(
                f"checkpoint_upload must be 'async' or 'sync', got {self.checkpoint_upload!r}"
            )
        if self.eval_every < 0 or self.max_failures < 0:
            raise ValueError("eval_every and max_failures must be >= 0")
        if not self.elastic_resize_interval_s > 0:
            raise ValueError(
                f"elastic_resize_interval_s must be > 0, got {self.elastic_resize_interval_s}"
            )
        if self.cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.moco_momentum <= 1:
            raise ValueError(f"moco_momentum must be in [0, 1], got {self.moco_momentum}")
        if self.backbone not in ("auto", *BACKBONES):
            raise ValueError(f"backbone must be auto or one of {BACKBONES}, got {self.backbone!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.lr_warmup_epochs < 0:
            raise ValueError(f"lr_warmup_epochs must be >= 0, got {self.lr_warmup_epochs}")
        if self.batch_norm not in BATCH_NORMS:
            raise ValueError(f"batch_norm must be one of {BATCH_NORMS}, got {self.batch_norm!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(
                f"precision must be auto or one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.train_max_samples is not None and self.train_max_samples < 1:
            raise ValueError(
                f"train_max_samples must be >= 1 or unset, got {self.train_max_samples}"
            )
        _ = self.worker_range  # validates `workers`

    @property
    def clustering(self) -> KMeansConfig:
        """The k-means settings the run uses: ``kmeans`` with an unset concentration mean
        replaced by the InfoNCE temperature (PCL's choice)."""
        if self.kmeans.concentration_mean is not None:
            return self.kmeans
        return dataclasses.replace(self.kmeans, concentration_mean=self.loss.temperature)

    @property
    def worker_range(self) -> tuple[int, int]:
        """``(min, max)`` workers parsed from ``workers``."""
        return parse_worker_range(self.workers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# -- CLI -------------------------------------------------------------------------------------
# The flags the issue names; every other field is reachable as --section.field too.
SHORT_FLAGS = {"num-clusters": ("kmeans", "num_clusters")}


def _flag_rows(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any]]:
    rows = []
    hints = typing.get_type_hints(cls)
    default = cls()
    for f in fields(cls):
        annotation = hints[f.name]
        value = getattr(default, f.name)
        if is_dataclass(annotation):
            rows += _flag_rows(annotation, (*prefix, f.name))
        else:
            rows.append(((*prefix, f.name), annotation, value))
    return rows


def _nested_default(path: tuple[str, ...]) -> Any:
    value: Any = TrainConfig()
    for part in path:
        value = getattr(value, part)
    return value


def build_parser(prog: str = "python -m pauc_ray.train") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="PAUC / PCL / MoCo pretraining on Ray Train (DDP workers, a clustering "
        "actor, checkpoints). Every setting of TrainConfig is a flag; --config FILE.yaml "
        "sets any of them, flags override the file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", help="YAML or JSON file of settings", default=None)
    parser.add_argument(
        "--recipe",
        default="auto",
        metavar="NAME|PATH",
        help="settings applied before --config and flags: auto (the shipped recipe named after "
        "the dataset, if any), none, a shipped recipe's name or a YAML file",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show Ray's own log lines (cluster start, Ray Data plans, Ray Train reports) "
        "and this package's INFO logs; by default the console shows the run's header, one "
        "line per epoch and the final report, plus every warning and error",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue an interrupted run from its latest checkpoint",
    )
    top = parser.add_argument_group("run")
    nested = parser.add_argument_group("nested settings (section.field)")
    for path, _annotation, default in _flag_rows(TrainConfig):
        if path == ("recipe",):  # recorded from --recipe, not set directly
            continue
        flag = "--" + ".".join(p.replace("_", "-") for p in path)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group = top if len(path) == 1 else nested
        group.add_argument(
            flag,
            dest="/".join(path),
            default=argparse.SUPPRESS,
            metavar="V",
            help=f"(default: {shown})",
        )
    for short, path in SHORT_FLAGS.items():
        top.add_argument(
            f"--{short}",
            dest="/".join(path),
            default=argparse.SUPPRESS,
            metavar="K1,K2",
            help=f"alias of --{'.'.join(path).replace('_', '-')} "
            f"(default: {','.join(map(str, _nested_default(path)))})",
        )
    return parser


def resolve_config(
    data: Mapping[str, Any], recipe: str = "auto", where: str = "config"
) -> TrainConfig:
    """``TrainConfig`` from the defaults, then the recipe for the dataset ``data`` names
    (:func:`pauc_ray.recipes.load_recipe`), then ``data``; ``recipe`` records its name."""
    from pauc_ray.recipes import load_recipe

    dataset = data.get("dataset", TrainConfig.dataset)
    name, settings = load_recipe(str(dataset), recipe)
    merged = merge(settings, data)
    if name is not None and "recipe" not in data:
        merged["recipe"] = name
    return from_dict(TrainConfig, merged, where)


def config_from_args(args: argparse.Namespace, recipe: bool = True) -> TrainConfig:
    """Recipe, then file settings, then flags; raises ValueError naming a bad setting.
    ``recipe=False`` leaves the recipe out (flags given with ``--resume``)."""
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    overrides: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key in ("recipe", "verbose") or (
            "/" not in key and key not in {f.name for f in fields(TrainConfig)}
        ):
            continue
        node = overrides
        parts = key.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return resolve_config(merge(data, overrides), args.recipe if recipe else "none")
