"""Opt-in speed settings of the encoders: channels_last memory format and ``torch.compile``.

Both are off by default and change no result beyond floating-point rounding; whether either
pays depends on the device (``benchmarks/bench_precision.py`` measures them;
``benchmarks/RESULTS.md`` has what it measured). Checkpoints and exports are unaffected:
``nn.Module.compile`` compiles in place, so parameter names stay those of the eager module.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["compile_encoders", "to_channels_last"]


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A 4-D image batch in channels_last (NHWC) memory order; anything else as it is."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def compile_encoders(*encoders: nn.Module) -> None:
    """``torch.compile`` each encoder's forward in place (the first call of each new input
    shape compiles; inductor needs a C++ compiler on CPUs and Triton on GPUs)."""
    for encoder in encoders:
        encoder.compile()
