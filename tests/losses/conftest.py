"""Loss tests use tiny tensors: run them on one thread.

On a loaded machine, waking a second OpenMP thread for a 12 x 20 reduction can cost
milliseconds; one thread keeps these tests fast and their timings steady.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
