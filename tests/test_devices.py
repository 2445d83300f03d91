"""pauc_ray.devices.resolve_device: auto, explicit devices, and the errors a user can cause."""

from __future__ import annotations

import pytest
import torch

from pauc_ray.devices import resolve_device


@pytest.mark.parametrize("name", [None, "auto", "AUTO", " auto "])
def test_auto_picks_a_gpu_only_when_one_is_visible(name):
    assert resolve_device(name).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu_is_always_usable():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu0", "", "mps"])
def test_unknown_devices_are_named(name):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_a_gpu_asked_for_without_one_is_an_error(name):
    with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_an_index_past_the_visible_gpus_is_an_error():
    with pytest.raises(ValueError, match="GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
