"""The one prepared GPU check (issue 13): every GPU path of the product measured in one run of
at most 8 minutes, printed as one table.

    bash benchmarks/gpu_check.sh [--out DIR]         # on a machine with an NVIDIA GPU
    bash benchmarks/gpu_check.sh --cpu-dry-run       # every part on the CPU at a tiny size

Parts, each in its own process with its own time limit (a part that fails or lacks a package
is a row saying so; the others still run):

1. ``precision``: a PAUC step of ResNet-50 at 224 px, batch 128, in fp32 / bf16 / fp16, with
   and without channels_last (``bench_precision.py``): images/s and peak memory.
2. ``kmeans``: faiss k-means of 1,000,000 x 128 into 10,000 clusters on the GPU against faiss
   on the CPU, same data and initial centroids; time per Lloyd iteration (the CPU runs fewer
   iterations: one takes tens of seconds there).
3. ``nemd``: the NEMD report (batched Sinkhorn) of the same embeddings on the GPU and the CPU.
4. ``train``: ``python -m pauc_ray.train`` on digits for 2 epochs with ``--precision bf16``
   on the GPU (one worker).
5. ``service``: the service's ``/embed`` on the GPU (``--device auto``) through FastAPI's
   test client, batches of 64 images: images/s against the in-process forward.

Never downloads weights or data (random weights, synthetic data, scikit-learn's bundled
digits). Writes ``DIR/gpu_check.json`` and ``DIR/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# full size on a GPU, tiny on the CPU dry run; every part's time limit in seconds
SIZES = {
    "gpu": {
        "precision": {
            "backbone": "resnet50",
            "size": 224,
            "channels": 3,
            "batch": 128,
            "steps": 20,
        },
        "kmeans": {"n": 1_000_000, "d": 128, "k": 10_000, "gpu_niter": 10, "cpu_niter": 1},
        "nemd": {"k": 100, "points": 200, "d": 128},
        "train": {"epochs": 2},
        "service": {"requests": 200, "batch": 64},
        "limits": {"precision": 150, "kmeans": 150, "nemd": 60, "train": 150, "service": 60},
    },
    "cpu": {
        "precision": {"backbone": "convnet", "size": 16, "channels": 1, "batch": 8, "steps": 2},
        "kmeans": {"n": 5_000, "d": 32, "k": 50, "gpu_niter": 3, "cpu_niter": 3},
        "nemd": {"k": 5, "points": 40, "d": 16},
        "train": {"epochs": 1},
        "service": {"requests": 5, "batch": 8},
        "limits": {"precision": 120, "kmeans": 60, "nemd": 60, "train": 240, "service": 60},
    },
}
PARTS = ("precision", "kmeans", "nemd", "train", "service")


def _device(dry_run: bool) -> str:
    return "cpu" if dry_run else "cuda"


def part_precision(size: dict, dry_run: bool, work: Path) -> dict:
    sys.path.insert(0, str(HERE))
    import bench_precision

    out = work / "precision.json"
    bench_precision.main(
        [
            "--backbone", size["backbone"], "--size", str(size["size"]),
            "--channels", str(size["channels"]), "--batch", str(size["batch"]),
            "--steps", str(size["steps"]), "--device", _device(dry_run),
            "--channels-last", "both", "--compile", "off", "--json", str(out),
        ]
    )  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    ok = [r for r in rows if r["error"] is None]
    base = next((r for r in ok if r["precision"] == "fp32" and not r["channels_last"]), None)
    best = max(ok, key=lambda r: r["images_per_s"]) if ok else None
    summary = "; ".join(
        f"{r['precision']}{'+CL' if r['channels_last'] else ''} {r['images_per_s']:.0f} img/s"
        + (f" {r['peak_memory_gib']:.1f} GiB" if r.get("peak_memory_gib") is not None else "")
        if r["error"] is None
        else f"{r['precision']}{'+CL' if r['channels_last'] else ''} failed"
        for r in rows
    )
    ratio = best["images_per_s"] / base["images_per_s"] if base and best else None
    bf16 = next((r for r in ok if r["precision"] == "bf16" and not r["channels_last"]), None)
    return {
        "summary": summary,
        "best_vs_fp32": ratio,
        "bf16_vs_fp32": bf16["images_per_s"] / base["images_per_s"] if bf16 and base else None,
        "goal": "bf16 >= 1.8x fp32 images/s (ResNet-50, 224 px)",
        "rows": rows,
    }


def part_kmeans(size: dict, dry_run: bool, work: Path) -> dict:
    import faiss
    import numpy as np

    rng = np.random.default_rng(0)
    n, d, k = size["n"], size["d"], size["k"]
    centers = rng.standard_normal((k, d), dtype=np.float32)
    x = centers[rng.integers(0, k, n)] + 0.5 * rng.standard_normal((n, d), dtype=np.float32)
    init = x[rng.choice(n, k, replace=False)].copy()
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not dry_run and gpus == 0:
        raise RuntimeError("faiss sees no GPU: install the gpu extra (faiss-gpu)")

    def per_iteration(use_gpu: bool, niter: int) -> tuple[float, float]:
        km = faiss.Kmeans(d, k, niter=niter, gpu=use_gpu, seed=0, verbose=False)
        km.cp.min_points_per_centroid = 1
        km.cp.max_points_per_centroid = max(1, n // k + 1)  # no subsampling: every point
        start = time.perf_counter()
        km.train(x, init_centroids=init)
        return (time.perf_counter() - start) / niter, float(km.obj[-1])

    cpu_s, cpu_obj = per_iteration(False, size["cpu_niter"])
    out = {"n": n, "d": d, "k": k, "cpu_seconds_per_iter": cpu_s, "faiss_gpus": gpus}
    if gpus:
        gpu_s, _ = per_iteration(True, size["gpu_niter"])
        out.update(gpu_seconds_per_iter=gpu_s, gpu_vs_cpu=cpu_s / gpu_s)
        out["summary"] = (
            f"{n:,}x{d} -> {k:,}: GPU {gpu_s:.3f} s/iter, CPU {cpu_s:.2f} s/iter, "
            f"{cpu_s / gpu_s:.1f}x"
        )
    else:
        out["summary"] = f"{n:,}x{d} -> {k:,}: CPU {cpu_s:.3f} s/iter (no GPU index: dry run)"
    out["goal"] = "faiss GPU k-means >= 20x faiss CPU"
    out["cpu_objective"] = cpu_obj
    return out


def part_nemd(size: dict, dry_run: bool, work: Path) -> dict:
    import torch

    from pauc_ray.config import NEMDConfig
    from pauc_ray.nemd.report import nemd_report
    from pauc_ray.nemd.synthetic import sphere_clusters

    x, labels = sphere_clusters(size["k"], size["points"], size["d"], seed=0)
    config = NEMDConfig(max_points=size["points"])
    times = {}
    for device in ("cpu", _device(dry_run)):
        nemd_report(x, labels, config, device=device)  # warm-up (CUDA context, kernels)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        report = nemd_report(x, labels, config, device=device)
        times[device] = time.perf_counter() - start
    fast = times.get("cuda", times["cpu"])
    return {
        "summary": f"K {size['k']}, {size['points']} points each: "
        + ", ".join(f"{dev} {t:.2f} s" for dev, t in times.items())
        + (f", {times['cpu'] / fast:.1f}x" if "cuda" in times else ""),
        "seconds": times,
        "nemd": report.nemd,
    }


def train_command(size: dict, dry_run: bool, work: Path) -> list[str]:
    """The train part's ``python -m pauc_ray.train`` command line."""
    return [
        sys.executable, "-m", "pauc_ray.train", "--dataset", "digits",
        "--data-dir", str(work / "data"), "--storage", str(work / "runs"), "--name", "gpu-check",
        "--epochs", str(size["epochs"]), "--precision", "bf16", "--workers", "1",
        "--loss.warmup-epochs", "0", "--use-gpu", "false" if dry_run else "true",
    ]  # fmt: skip


def part_train(size: dict, dry_run: bool, work: Path) -> dict:
    storage = work / "runs"
    command = train_command(size, dry_run, work)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {result.stderr.strip()[-400:]}")
    summary = json.loads((storage / "gpu-check" / "summary.json").read_text())
    history = json.loads((storage / "gpu-check" / "history.json").read_text())
    return {
        "summary": f"{summary['epochs_completed']} epoch(s) bf16 in {wall:.0f} s wall, "
        f"kNN {summary.get('knn_top1') or 0:.2f} % (raw {summary.get('raw_knn_top1') or 0:.2f} "
        f"%, random init {summary.get('random_init_knn_top1') or 0:.2f} %), "
        f"{history[-1]['samples_per_second']:.0f} samples/s",
        "wall_seconds": wall,
        "precision": history[-1]["precision"],
        "knn_top1": summary.get("knn_top1"),
    }


def part_service(size: dict, dry_run: bool, work: Path) -> dict:
    import base64
    import io

    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    sys.path.insert(0, str(HERE))
    from bench_service import MODEL_ID, build_root, digits_uint8

    from service.app import create_app
    from service.settings import ServiceSettings

    root = build_root(work / "models")
    device = _device(dry_run)
    settings = ServiceSettings(models=root, device=device, max_batch=size["batch"])
    images = digits_uint8()[: size["batch"]]

    def png(image: np.ndarray) -> str:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode()

    body = {"model": MODEL_ID, "inputs": [png(i) for i in images]}
    with TestClient(create_app(settings)) as client:
        for _ in range(200):  # models load in the background
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.1)
        first = client.post("/embed", json=body)
        if first.status_code != 200:
            raise RuntimeError(f"/embed answered {first.status_code}: {first.text[:200]}")
        served = client.app.state.service.registry.get(MODEL_ID)
        start = time.perf_counter()
        for _ in range(size["requests"]):
            client.post("/embed", json=body).raise_for_status()
        http_rate = size["requests"] * len(images) / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(size["requests"]):
            served.embed(images[:, None])
        direct_rate = size["requests"] * len(images) / (time.perf_counter() - start)
    return {
        "summary": f"/embed on {served.device}: {http_rate:.0f} images/s over HTTP, "
        f"{direct_rate:.0f} in-process ({http_rate / direct_rate:.2f})",
        "device": str(served.device),
        "http_images_per_s": http_rate,
        "in_process_images_per_s": direct_rate,
    }


def run_part(name: str, dry_run: bool, work: Path) -> dict:
    """One part in this process (the child's entry point)."""
    size = SIZES["cpu" if dry_run else "gpu"][name]
    return globals()[f"part_{name}"](size, dry_run, work)


def environment() -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name()
            out["bf16"] = torch.cuda.is_bf16_supported()
    except ImportError as exc:
        out["torch"] = f"missing ({exc})"
    for package in ("faiss", "ray", "fastapi", "ot"):
        try:
            module = __import__(package)
            out[package] = getattr(module, "__version__", "present")
        except ImportError:
            out[package] = "missing"
    return out


def format_table(results: dict, env: dict, dry_run: bool) -> str:
    lines = [
        f"GPU check {time.strftime('%Y-%m-%d')}"
        + (" (CPU dry run, tiny sizes)" if dry_run else "")
        + f": {env.get('gpu', 'no GPU')}, torch {env.get('torch')}, faiss {env.get('faiss')}, "
        f"ray {env.get('ray')}",
        "",
        "| part | status | seconds | result |",
        "|---|---|---:|---|",
    ]
    for name in PARTS:
        r = results.get(name)
        if r is None:
            continue
        text = r.get("summary") or r.get("error") or ""
        lines.append(f"| {name} | {r['status']} | {r['seconds']:.0f} | {text} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="every part, tiny, on CPU")
    parser.add_argument("--out", default="gpu_check_out", help="folder for the table and JSON")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:  # child: run one part, print its JSON last
        result = run_part(args.part, args.cpu_dry_run, Path(args.work))
        print("GPU_CHECK_RESULT " + json.dumps(result, default=str))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    if not args.cpu_dry_run and not env.get("cuda"):
        print("error: torch sees no CUDA GPU; use --cpu-dry-run on a CPU", file=sys.stderr)
        return 2
    limits = SIZES["cpu" if args.cpu_dry_run else "gpu"]["limits"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for name in args.parts:
            command = [sys.executable, str(Path(__file__).resolve()), "--part", name]
            command += ["--work", str(Path(tmp) / name)]
            command += ["--cpu-dry-run"] if args.cpu_dry_run else []
            (Path(tmp) / name).mkdir()
            start = time.perf_counter()
            try:
                child = subprocess.run(
                    command, capture_output=True, text=True, timeout=limits[name], cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}"
                         + os.environ.get("PYTHONPATH", "")},
                )  # fmt: skip
                lines = [ln for ln in child.stdout.splitlines() if ln.startswith("GPU_CHECK_")]
                if child.returncode == 0 and lines:
                    result = json.loads(lines[-1].split(" ", 1)[1]) | {"status": "ok"}
                else:
                    tail = " ".join(child.stderr.strip().splitlines()[-3:])[-300:]
                    result = {"status": "failed", "error": tail or f"exit {child.returncode}"}
            except subprocess.TimeoutExpired:
                result = {"status": "failed", "error": f"over its {limits[name]} s limit"}
            result["seconds"] = time.perf_counter() - start
            results[name] = result
            print(f"{name}: {result['status']} in {result['seconds']:.0f} s", flush=True)
    table = format_table(results, env, args.cpu_dry_run)
    print(table)
    (out / "gpu_check.md").write_text(table + "\n")
    record = {"environment": env, "dry_run": args.cpu_dry_run, "results": results}
    (out / "gpu_check.json").write_text(json.dumps(record, indent=2, default=str))
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
