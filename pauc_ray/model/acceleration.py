"""Speed settings of the encoders: channels_last memory format and ``torch.compile``.

Neither changes a result beyond floating-point rounding (``tests/model/test_acceleration.py``
holds a step to that). channels_last is on by default for image encoders on CPUs
(:func:`resolve_channels_last`): there PyTorch's NCHW ``max_pool2d`` kernel is an order of
magnitude slower than its NHWC one and oneDNN's convolutions prefer NHWC, which made a ConvNet
step 1.44x faster (``benchmarks/RESULTS.md``); on GPUs it stays off until measured there.
``torch.compile`` is opt-in. Checkpoints and exports are unaffected: a module's memory format
is a layout of the same values, and ``nn.Module.compile`` compiles in place, so parameter names
stay those of the eager module.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["compile_encoders", "resolve_channels_last", "to_channels_last", "use_channels_last"]


def resolve_channels_last(
    setting: bool | None, input_kind: str, device: torch.device | str
) -> bool:
    """Whether encoders of ``input_kind`` inputs on ``device`` run in channels_last.

    ``setting`` True or False is kept for images; None (the default) means on CPUs. Vector
    inputs have no channels, so never."""
    if input_kind != "image":
        return False
    if setting is None:
        return torch.device(device).type == "cpu"
    return bool(setting)


def use_channels_last(
    module: nn.Module,
    input_kind: str,
    device: torch.device | str,
    setting: bool | None = None,
) -> bool:
    """Puts ``module``'s 4-D weights in channels_last where :func:`resolve_channels_last`
    says so for ``setting`` (None: the default, as the loaders of exported models use it);
    returns whether it did. A convolution whose weight is channels_last returns channels_last
    outputs, so NCHW inputs need no conversion."""
    if not resolve_channels_last(setting, input_kind, device):
        return False
    module.to(memory_format=torch.channels_last)
    return True


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A 4-D image batch in channels_last (NHWC) memory order; anything else as it is."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def compile_encoders(*encoders: nn.Module) -> None:
    """``torch.compile`` each encoder's forward in place (the first call of each new input
    shape compiles; inductor needs a C++ compiler on CPUs and Triton on GPUs)."""
    for encoder in encoders:
        encoder.compile()
