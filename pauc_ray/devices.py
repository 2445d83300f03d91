"""Which torch device a command runs on: ``auto`` (a GPU when one is visible), ``cpu``,
``cuda`` or ``cuda:N``, checked up front so a wrong choice is one clear error."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``device``.

    ``None`` and ``"auto"`` pick ``cuda`` when torch sees a GPU, else ``cpu``. A CUDA device
    asked for on a machine without one, or an index past the visible GPUs, is a
    :class:`ValueError` that says so (torch would fail later, inside the first forward).
    """
    if isinstance(device, str):
        device = device.strip().lower()
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but torch sees no CUDA GPU")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} requested but torch sees {torch.cuda.device_count()} GPU(s)"
            )
    return resolved
