"""One PAUC training step per setting: precision (fp32, bf16, fp16: autocast around the
encoders) x memory format (contiguous, channels_last) x ``torch.compile`` (off, on), same model
and batch. Prints one table: median step time, images/s, the ratio to eager fp32 contiguous,
peak GPU memory, and whether the loss stayed finite.

    .venv/bin/python benchmarks/bench_precision.py [--backbone convnet] [--size 28]
        [--channels 1] [--batch 128] [--steps 20] [--device cpu|cuda]
        [--precisions fp32 bf16 fp16] [--channels-last both|on|off] [--compile both|on|off]
        [--json OUT.json]

On a CPU without bf16 units autocast can be slower than fp32 (it converts every weight each
step); the point of the table is to say which wins where it ran. A setting that fails (fp16
on a CPU without fp16 kernels, compile without a compiler) is a row with its error, not a
crash. Never run from the tests (``benchmarks/gpu_check.sh --cpu-dry-run`` runs it tiny).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch
import torch.nn.functional as F

from pauc_ray.config import LossConfig
from pauc_ray.losses import PrototypeSet
from pauc_ray.model.acceleration import compile_encoders, to_channels_last
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from pauc_ray.model.moco import MoCo
from pauc_ray.step import PRECISIONS, train_step

WARMUP_STEPS = 3  # allocator, autocast caches, and compilation of the first shapes


def measure(args, precision: str, channels_last: bool, compiled: bool) -> dict:
    device = torch.device(args.device)
    row = {"precision": precision, "channels_last": channels_last, "compile": compiled}
    spec = EncoderSpec(args.backbone, "image", (args.channels, args.size, args.size))
    model = MoCo(build_encoder(spec, seed=0), queue_size=4096, momentum=0.99, bn_groups=2)
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compiled:
        compile_encoders(model.encoder_q, model.encoder_k)
    optimizer = torch.optim.SGD(model.encoder_q.parameters(), lr=0.03, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(args.batch, args.channels, args.size, args.size, generator=g).to(device)
    x_k = x.flip(-1)
    if channels_last:
        x, x_k = to_channels_last(x), to_channels_last(x_k)
    k = 80
    sets = [
        PrototypeSet(
            F.normalize(torch.randn(k, 128, generator=g), dim=1).to(device),
            torch.full((k,), 0.1, device=device),
            torch.randint(0, k, (args.batch,), generator=g).to(device),
        )
    ]
    config = LossConfig(warmup_epochs=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, first = [], None
    try:
        for step in range(args.steps + WARMUP_STEPS):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = train_step(
                model, x, x_k, optimizer, sets, method="pauc", loss_config=config,
                warmup=False, generator=g, precision=precision, scaler=scaler,
            )  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            first = elapsed if first is None else first
            if step >= WARMUP_STEPS:
                times.append(elapsed)
    except Exception as exc:  # a setting this device cannot run is a row, not a crash
        return {**row, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"}
    median = statistics.median(times)
    return {
        **row,
        "step_ms": 1e3 * median,
        "first_step_s": first,
        "images_per_s": args.batch / median,
        "peak_memory_gib": (
            torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        ),
        "loss_finite": bool(torch.isfinite(out.total)),
        "error": None,
    }


def _choices(value: str) -> list[bool]:
    return {"both": [False, True], "on": [True], "off": [False]}[value]


def format_table(rows: list[dict], title: str) -> str:
    base = next(
        (r for r in rows if r["error"] is None and r["precision"] == "fp32"
         and not r["channels_last"] and not r["compile"]),
        None,
    )  # fmt: skip
    lines = [
        title,
        "| precision | channels_last | compile | step (ms) | images/s | vs fp32 eager "
        "| first step (s) | peak GPU memory (GiB) | loss finite |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        head = f"| {r['precision']} | {r['channels_last']} | {r['compile']} "
        if r["error"] is not None:
            lines.append(head + f"| failed: {r['error']} | | | | | |")
            continue
        ratio = f"{r['images_per_s'] / base['images_per_s']:.2f}x" if base else "-"
        memory = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        lines.append(
            head + f"| {r['step_ms']:.1f} | {r['images_per_s']:.0f} | {ratio} "
            f"| {r['first_step_s']:.1f} | {memory} | {r['loss_finite']} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="convnet")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--channels-last", choices=("both", "on", "off"), default="both")
    parser.add_argument("--compile", choices=("both", "on", "off"), default="off")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: default")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [
        measure(args, precision, channels_last, compiled)
        for compiled, channels_last, precision in itertools.product(
            _choices(args.compile), _choices(args.channels_last), args.precisions
        )
    ]
    title = (
        f"PAUC step, {args.backbone} {args.channels}x{args.size}x{args.size}, batch "
        f"{args.batch}, {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}), "
        f"{torch.get_num_threads()} threads, median of {args.steps} steps"
    )
    print(format_table(rows, title))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"title": title, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
