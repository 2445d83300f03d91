"""Image-folder conversion rate (images/s) of ``python -m pauc_ray.data prepare`` with 1 and 2
Ray workers, and in one process without Ray for reference.

    .venv/bin/python benchmarks/bench_prepare.py [--images 6000] [--size 96] [--image-size 64]
        [--workers 0 1 2] [--repeats 2] [--out DIR]

Builds a class-folder tree of ``--images`` JPEGs (``--size`` pixels square; Fashion-MNIST
pictures scaled up when the Debian package is installed, else smooth random ones), then
prepares it with ``--image-size`` (so every image is decoded, resized and re-encoded, the
work a real photo folder needs) once per worker count and repeat, into a fresh local folder.
The Ray cluster is started once, before the timings (``ray.init`` with the machine's CPUs), so
its start-up is not counted; each timing is the whole ``prepare`` call (listing, tasks,
writing, ``dataset.json``). Prints one JSON line per timing and a summary; never run from the
tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pauc_ray.data.sources import FASHION_MNIST_DIR, PrepareConfig, prepare  # noqa: E402


def _pictures(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) uint8 pictures and their labels."""
    from pauc_ray.data.idx import find_idx_file, read_idx

    try:
        images = read_idx(find_idx_file(FASHION_MNIST_DIR, "train-images-idx3-ubyte"), n)
        labels = read_idx(find_idx_file(FASHION_MNIST_DIR, "train-labels-idx1-ubyte"), n)
    except (OSError, ValueError):  # not installed: smooth random pictures, 10 classes
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (n, 7, 7), dtype=np.uint8).repeat(4, 1).repeat(4, 2)
        labels = rng.integers(0, 10, n)
    scaled = [
        np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
        for im in images
    ]
    return np.stack(scaled), np.asarray(labels)


def build_folder(root: Path, n: int, size: int) -> Path:
    images, labels = _pictures(n, size)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"class{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).convert("RGB").save(folder / f"{i:06d}.jpg", quality=90)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--size", type=int, default=96, help="side of the source JPEGs")
    parser.add_argument("--image-size", type=int, default=64, help="side they are brought to")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.out or tempfile.mkdtemp(prefix="pauc-bench-prepare-"))
    folder = work / "folder"
    if not folder.is_dir():
        started = time.perf_counter()
        build_folder(folder, args.images, args.size)
        print(f"built {args.images} JPEGs in {time.perf_counter() - started:.1f} s", flush=True)
    import ray

    if any(w > 0 for w in args.workers) and not ray.is_initialized():
        ray.init(num_cpus=os.cpu_count(), logging_level=logging.WARNING, log_to_driver=False)
    rates: dict[int, list[float]] = {w: [] for w in args.workers}
    for repeat in range(args.repeats):
        for workers in args.workers:
            out = work / f"out-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            config = PrepareConfig(
                image_size=args.image_size, channels=3, workers=workers, progress=False
            )
            started = time.perf_counter()
            info = prepare(f"imagefolder:{folder}", out, config)
            seconds = time.perf_counter() - started
            images = sum(info.counts.values())
            rates[workers].append(images / seconds)
            print(json.dumps({"workers": workers, "repeat": repeat, "images": images,
                              "seconds": round(seconds, 2),
                              "images_per_s": round(images / seconds, 1)}), flush=True)  # fmt: skip
    summary = {
        "cpus": os.cpu_count(),
        "images": args.images,
        "source_size": args.size,
        "image_size": args.image_size,
        "best_images_per_s": {w: round(max(r), 1) for w, r in rates.items()},
    }
    if 1 in rates and 2 in rates:
        summary["speedup_2_vs_1"] = round(max(rates[2]) / max(rates[1]), 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
