"""Time of one loss step (forward + backward w.r.t. q) for moco, pcl and pauc.

Shapes of the paper's ImageNet-100 setting with PCL's queue: batch 256, d = 128, a queue of
16384 keys, r = 16384 negative prototypes, M = 3 clusterings with K = (2500, 5000, 10000).
The goal is PAUC / PCL <= 1.10: the three prototype terms act on at most B batch prototypes
per clustering, so they should cost little next to the B x K prototype logits.

Usage:
    python benchmarks/bench_losses.py [--device cpu|cuda] [--repeats 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pauc_ray.config import LossConfig
from pauc_ray.losses import PrototypeSet, pauc_loss

METHODS = ("moco", "pcl", "pauc")


def _inputs(device, batch, dim, queue_size, num_clusters, seed):
    g = torch.Generator().manual_seed(seed)

    def unit(rows):
        return F.normalize(torch.randn(rows, dim, generator=g), dim=1).to(device)

    q = unit(batch).requires_grad_()
    k, queue = unit(batch), unit(queue_size)
    sets = []
    for size in num_clusters:
        phi = 0.1 + 0.2 * torch.rand(size, generator=g)
        sets.append(
            PrototypeSet(
                prototypes=unit(size),
                concentration=(phi * (0.2 / phi.mean())).to(device),  # mean tau, as PCL
                assignment=torch.randint(0, size, (batch,), generator=g).to(device),
            )
        )
    return q, k, queue, sets


def run(
    device: str = "cpu",
    repeats: int = 20,
    warmup: int = 3,
    batch: int = 256,
    dim: int = 128,
    queue_size: int = 16384,
    num_negatives: int = 16384,
    num_clusters: tuple[int, ...] = (2500, 5000, 10000),
    seed: int = 0,
) -> dict:
    """Median milliseconds per loss step of each method, and the PAUC / PCL ratio.

    Methods are timed round-robin within each repeat so that load from other processes on a
    shared machine hits all three alike.

    Returns:
        ``{"device", "threads", "shapes", "ms": {method: median}, "ms_all": {method: [...]},
        "pauc_over_pcl", "pauc_over_pcl_min"}``.
    """
    config = LossConfig(num_negative_prototypes=num_negatives)
    q, k, queue, sets = _inputs(device, batch, dim, queue_size, num_clusters, seed)
    generator = torch.Generator().manual_seed(seed)

    def step(method):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        out = pauc_loss(q, k, queue, sets, method=method, config=config, generator=generator)
        out.total.backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        q.grad = None
        return 1000.0 * (time.perf_counter() - start), 1000.0 * (time.process_time() - cpu_start)

    for _ in range(warmup):
        for method in METHODS:
            step(method)
    times = {method: [] for method in METHODS}
    cpu_times = {method: [] for method in METHODS}
    for _ in range(repeats):
        for method in METHODS:
            wall, cpu = step(method)
            times[method].append(wall)
            cpu_times[method].append(cpu)
    medians = {method: statistics.median(values) for method, values in times.items()}
    cpu_medians = {method: statistics.median(values) for method, values in cpu_times.items()}
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "shapes": {
            "batch": batch,
            "dim": dim,
            "queue": queue_size,
            "num_negative_prototypes": num_negatives,
            "num_clusters": num_clusters,
        },
        "ms": medians,
        "ms_all": times,
        "pauc_over_pcl": medians["pauc"] / medians["pcl"],
        # The fastest repeat is the least disturbed by other processes on a shared machine.
        "pauc_over_pcl_min": min(times["pauc"]) / min(times["pcl"]),
        # CPU time of this process: with one thread, what the step costs whatever else runs
        # (time spent descheduled is not counted); with more threads it adds their spinning.
        "cpu_ms": cpu_medians,
        "cpu_ms_all": cpu_times,
        "pauc_over_pcl_cpu": cpu_medians["pauc"] / cpu_medians["pcl"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: the environment's)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = run(device=args.device, repeats=args.repeats)
    shapes = result["shapes"]
    print(
        f"device={result['device']} threads={result['threads']} batch={shapes['batch']} "
        f"d={shapes['dim']} queue={shapes['queue']} r={shapes['num_negative_prototypes']} "
        f"K={shapes['num_clusters']}"
    )
    print(f"{'method':<8}{'median ms':>12}{'min ms':>10}{'max ms':>10}{'CPU ms':>10}")
    for method in METHODS:
        values = result["ms_all"][method]
        print(
            f"{method:<8}{result['ms'][method]:>12.2f}{min(values):>10.2f}{max(values):>10.2f}"
            f"{result['cpu_ms'][method]:>10.2f}"
        )
    print(
        f"PAUC / PCL = {result['pauc_over_pcl']:.3f} on medians, "
        f"{result['pauc_over_pcl_min']:.3f} on minima, {result['pauc_over_pcl_cpu']:.3f} in "
        "CPU time (goal <= 1.10)"
    )


if __name__ == "__main__":
    main()
