"""One gloo process of a multi-process test (``torch.multiprocessing.spawn``)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator

import torch
import torch.distributed as dist


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gloo_process(rank: int, world_size: int, port: int) -> Iterator[None]:
    """Joins a gloo group of ``world_size`` on ``port`` for the body, then leaves it.

    A TCP store rather than a file store: a file store is deleted by the last rank to leave,
    which can abort a rank still reading it ("terminate called without an active exception").
    After a body that succeeded, every rank waits for the others and the process exits
    without the interpreter's teardown: now and then a C++ thread of gloo or its store is
    still joinable when static destructors run, which aborts the process (SIGABRT) after its
    results were written. A body that raises still fails the spawn.
    """
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        yield
        dist.barrier()  # no rank tears down while another still communicates
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
