"""One PAUC training step in fp32, bf16 and fp16 (autocast around the encoders), same model and
batch: median step time and images/s per precision, and the ratio to fp32.

    .venv/bin/python benchmarks/bench_precision.py [--backbone convnet] [--size 28]
        [--batch 128] [--steps 20] [--device cpu|cuda] [--channels-last]

On a CPU without bf16 units autocast can be slower than fp32 (it converts every weight each
step); the point of the table is to say which wins here. Never run from the tests.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from pauc_ray.config import LossConfig
from pauc_ray.losses import PrototypeSet
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from pauc_ray.model.moco import MoCo
from pauc_ray.step import PRECISIONS, train_step


def measure(args, precision: str) -> dict:
    device = torch.device(args.device)
    spec = EncoderSpec(args.backbone, "image", (args.channels, args.size, args.size))
    model = MoCo(build_encoder(spec, seed=0), queue_size=4096, momentum=0.99, bn_groups=2)
    model.to(device).train()
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.03, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(args.batch, args.channels, args.size, args.size, generator=g).to(device)
    if args.channels_last:
        x = x.to(memory_format=torch.channels_last)
    k = 80
    sets = [
        PrototypeSet(
            F.normalize(torch.randn(k, 128, generator=g), dim=1).to(device),
            torch.full((k,), 0.1, device=device),
            torch.randint(0, k, (args.batch,), generator=g).to(device),
        )
    ]
    config = LossConfig(warmup_epochs=0)
    times = []
    for step in range(args.steps + 3):  # 3 warm-up steps (allocator, autocast caches)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = train_step(
            model, x, x.flip(-1), optimizer, sets, method="pauc", loss_config=config,
            warmup=False, generator=g, precision=precision, scaler=scaler,
        )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 3:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {
        "precision": precision,
        "step_ms": 1e3 * median,
        "images_per_s": args.batch / median,
        "loss_finite": bool(torch.isfinite(out.total)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="convnet")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [measure(args, p) for p in PRECISIONS]
    base = rows[0]["images_per_s"]
    print(
        f"{args.backbone} {args.channels}x{args.size}x{args.size}, batch {args.batch}, "
        f"{args.device}, channels_last={args.channels_last}, {torch.get_num_threads()} threads"
    )
    print("| precision | step (ms) | images/s | vs fp32 | loss finite |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['precision']} | {r['step_ms']:.1f} | {r['images_per_s']:.0f} "
            f"| {r['images_per_s'] / base:.2f}x | {r['loss_finite']} |"
        )


if __name__ == "__main__":
    main()
