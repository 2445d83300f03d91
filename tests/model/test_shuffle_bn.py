"""MoCo's shuffle-BN across workers and SyncBatchNorm, in two gloo processes."""

from __future__ import annotations

import pytest
import torch
from gloo_processes import free_port, gloo_process
from torch import nn

from pauc_ray.model.moco import MoCo

pytestmark = pytest.mark.slow
WORLD, B, DIM = 2, 6, 4


class Probe(nn.Module):
    """Linear -> BatchNorm1d (batch statistics in training) -> Linear: a key depends on the
    batch it is normalised with."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Linear(8, DIM))
        self.embedding_dim = DIM

    def forward(self, x):
        return self.net(x)


def _worker(rank: int, tmp_dir: str, port: int) -> None:
    with gloo_process(rank, WORLD, port):
        x = torch.load(f"{tmp_dir}/inputs.pt")
        torch.manual_seed(0)
        model = MoCo(Probe(), queue_size=0, momentum=0.9)
        model.train()
        mine = x[rank * B : (rank + 1) * B]
        torch.manual_seed(123)  # rank 0's permutation (broadcast to the other rank)
        _, shuffled = model(mine, mine, shuffle_across_workers=True)
        _, local = model(mine, mine)  # ghost BatchNorm of one group: this worker's batch
        synced = nn.SyncBatchNorm.convert_sync_batchnorm(Probe())
        synced.load_state_dict(model.encoder_k.state_dict())
        try:
            sync_out = synced.train()(mine)
        except (RuntimeError, ValueError) as exc:  # no CPU kernel in this torch build
            sync_out = str(exc)
        torch.save(
            {"shuffled": shuffled, "local": local, "sync": sync_out}, f"{tmp_dir}/rank{rank}.pt"
        )


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_keys_are_normalised_with_another_workers_samples(tmp_path):
    x = torch.randn(WORLD * B, 3, generator=torch.Generator().manual_seed(5))
    torch.save(x, tmp_path / "inputs.pt")
    torch.multiprocessing.spawn(_worker, args=(str(tmp_path), free_port()), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    # the slow obvious reference: the same permutation of the global batch, cut into the
    # workers' shares, each share through the key encoder alone, then put back in order
    torch.manual_seed(0)
    reference = MoCo(Probe(), queue_size=0, momentum=0.9).encoder_k.train()
    torch.manual_seed(123)
    permutation = torch.randperm(WORLD * B)
    with torch.no_grad():
        out = torch.cat([reference(x[permutation[r * B : (r + 1) * B]]) for r in range(WORLD)])
        want = torch.nn.functional.normalize(out[torch.argsort(permutation)], dim=1)
    got = torch.cat([r["shuffled"] for r in ranks])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # and the shares did mix: a worker's keys differ from its own-batch normalisation
    mixed = [set(permutation[r * B : (r + 1) * B].tolist()) for r in range(WORLD)]
    assert any(share != set(range(r * B, (r + 1) * B)) for r, share in enumerate(mixed))
    assert not torch.allclose(got, torch.cat([r["local"] for r in ranks]))

    # SyncBatchNorm: statistics over both workers' rows, i.e. plain BatchNorm of the global
    # batch; where this torch has no CPU kernel for it, it says so (a GPU-only choice)
    sync = [r["sync"] for r in ranks]
    if isinstance(sync[0], str):
        assert "cuda" in sync[0].lower() or "gpu" in sync[0].lower(), sync[0]
    else:
        with torch.no_grad():
            want_sync = reference(x)  # the same weights, one batch of every row
        torch.testing.assert_close(torch.cat(sync), want_sync, rtol=1e-4, atol=1e-5)


def test_sync_batch_norm_converts_the_encoders():
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(Probe())
    assert isinstance(converted.net[1], nn.SyncBatchNorm)
    original = Probe()
    converted.load_state_dict(original.state_dict())  # the same parameters and buffers
