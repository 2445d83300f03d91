"""gather_rows against the obvious single-process reference, in two gloo processes."""

from __future__ import annotations

import pytest
import torch
from gloo_processes import free_port, gloo_process

from pauc_ray.collectives import allreduce_one_at_a_time, gather_rows, world_size

WORLD = 2


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's rows (WORLD*3, 4) and every rank's weights (WORLD, WORLD*3, 4)."""
    g = torch.Generator().manual_seed(7)
    return torch.randn(WORLD * 3, 4, generator=g), torch.randn(WORLD, WORLD * 3, 4, generator=g)


def _worker(rank: int, tmp_dir: str, port: int) -> None:
    with gloo_process(rank, WORLD, port):
        x, weights = _inputs()
        mine = x[rank * 3 : (rank + 1) * 3].clone().requires_grad_()
        gathered = gather_rows(mine)
        # a different loss on every rank, each a function of the whole gathered batch
        (weights[rank] * gathered**2).sum().backward()
        plain = gather_rows(mine.detach() + rank)  # the path without gradient
        # DDP with the hook against DDP's own: the same averaged gradients. Two buckets
        # (bucket_cap_mb tiny), so the hook runs more than once per backward.
        ddp_grads = []
        for hook in (None, allreduce_one_at_a_time):
            torch.manual_seed(0)
            net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
            ddp = torch.nn.parallel.DistributedDataParallel(net, bucket_cap_mb=1e-4)
            if hook is not None:
                ddp.register_comm_hook(None, hook)
            for _ in range(2):  # the second step runs on DDP's rebuilt buckets
                ddp.zero_grad()
                (ddp(x[rank * 3 : (rank + 1) * 3]) ** 2).sum().backward()
            ddp_grads.append([p.grad.clone() for p in net.parameters()])
        torch.save(
            {
                "gathered": gathered.detach(),
                "grad": mine.grad,
                "plain": plain,
                "world": world_size(),
                "ddp": ddp_grads,
            },
            f"{tmp_dir}/rank{rank}.pt",
        )


def test_one_process_gets_its_own_rows_back():
    x = torch.randn(3, 4, requires_grad=True)
    assert world_size() == 1 and gather_rows(x) is x


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_processes_gather_in_rank_order_sum_gradients_and_average_ddp_buckets(tmp_path):
    torch.multiprocessing.spawn(_worker, args=(str(tmp_path), free_port()), nprocs=WORLD)
    x, weights = _inputs()
    # reference: the sum over ranks of each rank's loss, differentiated in one process
    x_ref = x.clone().requires_grad_()
    sum((weights[r] * x_ref**2).sum() for r in range(WORLD)).backward()
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["world"] == WORLD
        torch.testing.assert_close(result["gathered"], x)
        torch.testing.assert_close(result["grad"], x_ref.grad[rank * 3 : (rank + 1) * 3])
        expected_plain = torch.cat([x[r * 3 : (r + 1) * 3] + r for r in range(WORLD)])
        torch.testing.assert_close(result["plain"], expected_plain)
        default, hooked = result["ddp"]
        for a, b in zip(default, hooked, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    # and both are the average over the ranks' losses
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    (net(x) ** 2).sum().div(WORLD).backward()
    for a, b in zip(result["ddp"][1], net.parameters(), strict=True):
        torch.testing.assert_close(a, b.grad)
