"""Encoders for the MoCo pair: torchvision ResNets (with a small-image stem) and an MLP.

Every encoder maps a batch to (B, embedding_dim) and exposes ``embedding_dim``. Weights are
always initialised here (``weights=None``): nothing is ever downloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from pauc_ray.model.encoders import MLPEncoder

BACKBONES = ("resnet18", "resnet50", "mlp")
SMALL_IMAGE_MAX_SIDE = 32  # 8-32 px inputs get the CIFAR-style stem


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to rebuild an encoder (saved with checkpoints and exports).

    Attributes:
        backbone: ``resnet18``, ``resnet50`` or ``mlp``.
        input_kind: ``image`` (C, H, W) or ``vector`` (dim,).
        input_shape: (C, H, W) for images, (dim,) for vectors.
        embedding_dim: output size (paper: 128).
        bn_groups: ghost-batch groups of every BatchNorm in training (see
            :class:`GhostBatchNorm2d`); 1 means plain BatchNorm.
        hidden: MLP hidden widths (``mlp`` only).
    """

    backbone: str
    input_kind: str
    input_shape: tuple[int, ...]
    embedding_dim: int = 128
    bn_groups: int = 2
    hidden: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.input_kind not in ("image", "vector"):
            raise ValueError(f"input_kind must be 'image' or 'vector', got {self.input_kind!r}")
        if self.input_kind == "image" and len(self.input_shape) != 3:
            raise ValueError(f"image inputs need input_shape (C, H, W), got {self.input_shape}")
        if self.input_kind == "vector" and (len(self.input_shape) != 1 or self.backbone != "mlp"):
            raise ValueError(
                f"vector inputs need input_shape (dim,) and backbone 'mlp', got "
                f"{self.input_shape} and {self.backbone!r}"
            )
        if self.embedding_dim < 1 or self.bn_groups < 1:
            raise ValueError("embedding_dim and bn_groups must be >= 1")

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


class ResNetEncoder(nn.Module):
    """A torchvision ResNet whose classifier is replaced by a linear map to ``embedding_dim``.

    For inputs of at most 32 px the stem is the CIFAR one (3x3 convolution, stride 1, no
    max-pool) so an 8 px digit is not pooled away before the first block.
    """

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
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
        net.fc = nn.Linear(net.fc.in_features, spec.embedding_dim)
        self.net = _ghost_batch_norm(net, spec.bn_groups)
        self.embedding_dim = spec.embedding_dim
        self.input_shape = tuple(spec.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x must be (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        return self.net(x)


class FlatImageMLP(MLPEncoder):
    """An MLP over flattened images (tiny images, quick tests); no spatial inductive bias."""

    def __init__(self, spec: EncoderSpec) -> None:
        channels, height, width = spec.input_shape
        super().__init__(channels * height * width, spec.embedding_dim, spec.hidden)
        self.input_shape = tuple(spec.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x must be (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        return super().forward(x.flatten(1))


def build_encoder(spec: EncoderSpec) -> nn.Module:
    """The encoder ``spec`` describes, freshly initialised."""
    if spec.backbone == "mlp":
        if spec.input_kind == "image":
            return FlatImageMLP(spec)
        return MLPEncoder(spec.input_shape[0], spec.embedding_dim, spec.hidden)
    return ResNetEncoder(spec)
