"""Encoders for the MoCo pair: a backbone that pools an input to a feature vector, and a
projection head that maps it to the embedding the losses see.

``features(x)`` is the backbone's pooled feature (B, F), the representation MoCo v2 and PCL
evaluate (kNN, linear probe); ``forward(x)`` is the projection (B, D), what the contrastive
losses, the queue and the clustering use. Backbones:

- ``convnet``: a VGG-style ConvNet for small images (8-64 px): four stages of
  conv3x3-BN-ReLU with 2x2 max-pooling between them and global average pooling, widths
  ``w, 2w, 4w, 8w``. About 10 M multiply-adds for a 28x28 image at ``w = 32`` against ResNet-18's
  ~560 M (with the small-image stem), so it trains on a CPU.
- ``resnet18``, ``resnet50``: torchvision's, with a CIFAR-style stem (3x3 convolution,
  stride 1, no max-pool) for inputs of at most 32 px, so an 8 px digit is not pooled away.
- ``mlp``: hidden layers over flattened images or vectors (quick tests, the blob data).

Heads: ``mlp`` (MoCo v2's: Linear(F, F), ReLU, Linear(F, D)) or ``linear`` (MoCo v1's).
Weights are always initialised here (``weights=None``): nothing is ever downloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from pauc_ray.model.encoders import mlp_layers

BACKBONES = ("convnet", "resnet18", "resnet50", "mlp")
HEADS = ("mlp", "linear")
REPRESENTATIONS = ("backbone", "projection")
SMALL_IMAGE_MAX_SIDE = 32  # 8-32 px inputs get the CIFAR-style stem


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to rebuild an encoder (saved with checkpoints and exports).

    Attributes:
        backbone: one of :data:`BACKBONES`.
        input_kind: ``image`` (C, H, W) or ``vector`` (dim,).
        input_shape: (C, H, W) for images, (dim,) for vectors.
        embedding_dim: projection output size (paper: 128).
        bn_groups: ghost-batch groups of every BatchNorm in training (see
            :class:`GhostBatchNorm2d`); 1 means plain BatchNorm.
        hidden: MLP hidden widths (``mlp`` only); the last one is the feature size.
        width: first-stage channels of ``convnet`` (stages ``w, 2w, 4w, 8w``).
        head: projection head, one of :data:`HEADS`.
    """

    backbone: str
    input_kind: str
    input_shape: tuple[int, ...]
    embedding_dim: int = 128
    bn_groups: int = 2
    hidden: tuple[int, ...] = (256, 256)
    width: int = 32
    head: str = "mlp"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.input_kind not in ("image", "vector"):
            raise ValueError(f"input_kind must be 'image' or 'vector', got {self.input_kind!r}")
        if self.input_kind == "image" and len(self.input_shape) != 3:
            raise ValueError(f"image inputs need input_shape (C, H, W), got {self.input_shape}")
        if self.input_kind == "vector" and (len(self.input_shape) != 1 or self.backbone != "mlp"):
            raise ValueError(
                f"vector inputs need input_shape (dim,) and backbone 'mlp', got "
                f"{self.input_shape} and {self.backbone!r}"
            )
        if self.embedding_dim < 1 or self.bn_groups < 1 or self.width < 1:
            raise ValueError("embedding_dim, bn_groups and width must be >= 1")
        if self.backbone == "mlp" and (not self.hidden or any(h < 1 for h in self.hidden)):
            raise ValueError(f"mlp needs at least one positive hidden width, got {self.hidden}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EncoderSpec:
        data = dict(data)
        data["input_shape"] = tuple(data["input_shape"])
        data["hidden"] = tuple(data.get("hidden", (256, 256)))
        return cls(**data)


class GhostBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics come from ``groups`` contiguous sub-batches.

    MoCo's shuffle-BN (He et al., Sec. 3.3) exists because a sample's query and key sharing
    batch statistics lets the model find the positive pair through them. MoCo shuffles keys
    across GPUs, so each GPU's statistics cover another subset; here each encoder normalises
    ``groups`` sub-batches separately and :class:`~pauc_ray.model.moco.MoCo` shuffles the key
    batch before the key encoder, so a key's statistics come from another random subset than
    its query's -- within one worker, so it holds with one worker too (where cross-GPU
    shuffling would do nothing). In eval mode it is plain BatchNorm.
    """

    def __init__(self, num_features: int, groups: int = 2, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.groups == 1 or x.shape[0] < 2 * self.groups:
            return super().forward(x)
        return torch.cat(
            [
                F.batch_norm(
                    chunk,
                    self.running_mean,
                    self.running_var,
                    self.weight,
                    self.bias,
                    True,
                    self.momentum,
                    self.eps,
                )
                for chunk in x.chunk(self.groups)
            ]
        )


def _ghost_batch_norm(module: nn.Module, groups: int) -> nn.Module:
    """Replaces every BatchNorm2d in ``module`` by a :class:`GhostBatchNorm2d` (same state)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GhostBatchNorm2d):
            ghost = GhostBatchNorm2d(
                child.num_features, groups, eps=child.eps, momentum=child.momentum
            )
            ghost.load_state_dict(child.state_dict())
            setattr(module, name, ghost)
        else:
            _ghost_batch_norm(child, groups)
    return module


def small_convnet(in_channels: int, side: int, width: int) -> tuple[nn.Module, int]:
    """The ``convnet`` backbone and its feature size (``8 * width``).

    Four stages of conv3x3-BN-ReLU; a 2x2 max-pool follows each of the first three while the
    map is at least 2 px wide (8 px: 8-4-2-1; 28 px: 28-14-7-3); global average pooling.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for stage, mult in enumerate((1, 2, 4, 8)):
        out = width * mult
        layers += [
            nn.Conv2d(channels, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        ]
        if stage < 3 and side >= 2:
            layers.append(nn.MaxPool2d(2))
            side //= 2
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), channels


def _resnet(spec: EncoderSpec) -> tuple[nn.Module, int]:
    channels, height, width = spec.input_shape
    net = getattr(torchvision.models, spec.backbone)(weights=None)
    if channels != 3 or max(height, width) <= SMALL_IMAGE_MAX_SIDE:
        small = max(height, width) <= SMALL_IMAGE_MAX_SIDE
        net.conv1 = nn.Conv2d(
            channels,
            64,
            kernel_size=3 if small else 7,
            stride=1 if small else 2,
            padding=1 if small else 3,
            bias=False,
        )
        if small:
            net.maxpool = nn.Identity()
    features = net.fc.in_features
    net.fc = nn.Identity()
    return net, features


def _mlp(in_features: int, hidden: tuple[int, ...]) -> tuple[nn.Module, int]:
    """The vector backbone: flatten, then :func:`~pauc_ray.model.encoders.mlp_layers`."""
    layers, width = mlp_layers(in_features, hidden)
    return nn.Sequential(nn.Flatten(), *layers), width


def projection_head(kind: str, features: int, embedding_dim: int) -> nn.Module:
    """MoCo v2's two-layer MLP head (``mlp``) or a single linear map (``linear``)."""
    if kind == "linear":
        return nn.Linear(features, embedding_dim)
    return nn.Sequential(
        nn.Linear(features, features), nn.ReLU(inplace=True), nn.Linear(features, embedding_dim)
    )


class Encoder(nn.Module):
    """A backbone (input to pooled features) followed by a projection head.

    Attributes:
        feature_dim: ``F``, the backbone's pooled feature size.
        embedding_dim: ``D``, the projection's output size.
    """

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        self.input_shape = tuple(spec.input_shape)
        if spec.backbone == "convnet":
            if spec.input_kind != "image":
                raise ValueError("convnet needs image inputs")
            channels, height, width = spec.input_shape
            backbone, features = small_convnet(channels, min(height, width), spec.width)
        elif spec.backbone == "mlp":
            in_features = 1
            for size in spec.input_shape:
                in_features *= size
            backbone, features = _mlp(in_features, spec.hidden)
        else:
            backbone, features = _resnet(spec)
        self.backbone = _ghost_batch_norm(backbone, spec.bn_groups)
        self.head = projection_head(spec.head, features, spec.embedding_dim)
        self.feature_dim = features
        self.embedding_dim = spec.embedding_dim

    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x must be (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled features (B, F), projection head removed."""
        self._check(x)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The projection (B, D) (not normalised)."""
        return self.head(self.features(x))

    def represent(self, x: torch.Tensor, representation: str = "backbone") -> torch.Tensor:
        """``features(x)`` for ``"backbone"``, ``forward(x)`` for ``"projection"``."""
        if representation not in REPRESENTATIONS:
            raise ValueError(
                f"representation must be one of {REPRESENTATIONS}, got {representation!r}"
            )
        return self.features(x) if representation == "backbone" else self.forward(x)


def represent(encoder: nn.Module, x: torch.Tensor, representation: str) -> torch.Tensor:
    """``encoder``'s backbone features (``"backbone"``: projection head removed, what MoCo v2
    and PCL evaluate) or its output (``"projection"``: what the losses and the clustering
    see). Encoders without a ``features`` method (plain MLPs) only have the projection."""
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    if representation == "projection":
        return encoder(x)
    features = getattr(encoder, "features", None)
    if features is None:
        raise ValueError(f"{type(encoder).__name__} has no backbone features; use 'projection'")
    return features(x)


def build_encoder(spec: EncoderSpec, seed: int | None = None) -> Encoder:
    """The encoder ``spec`` describes, freshly initialised; with ``seed``, from a private RNG
    seeded with it (the global one is untouched), so the same seed gives the same weights,
    e.g. a run's starting point for the random-init baseline."""
    if seed is None:
        return Encoder(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Encoder(spec)
