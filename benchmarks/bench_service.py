"""``POST /embed`` (and ``/v1/embeddings``) over loopback vs the model's in-process forward.

    .venv/bin/python benchmarks/bench_service.py [--seconds 30] [--clients 32] [--items 1]
        [--modes uvicorn:1 uvicorn:2 serve:1 serve:2] [--routes /embed /v1/embeddings] [--floor]

1. In-process: the served model (loaded through the service's registry, so the same
   ``EvalTransform`` + encoder + L2 normalisation) on batches of ``--max-batch`` decoded
   digits, inputs/s.
2. ``python -m service`` in a subprocess with micro-batching (``--max-batch``,
   ``--max-wait-ms``), ``--clients`` concurrent keep-alive connections each sending
   ``--items`` base64 PNG digits per request for ``--seconds`` (after a warm-up): inputs/s,
   requests/s, p50/p99 latency, mean micro-batch (from ``/metrics``); the ratio to (1) (goal
   >= 0.7).
3. The same with ``--max-batch 1``: batch-size-1 serving. The gain of (2) over (3).

With ``--floor``, each mode's stack is also loaded with ``noop_service.py`` (the same FastAPI
request path and JSON parsing, no image decoding, no model): the requests/s that stack allows
on this machine with nothing to compute, the ceiling of (2) at one image per request.

(2) runs once per route of ``--routes``: ``/embed`` (the service's own request shape) and/or
``/v1/embeddings`` (OpenAI's: ``{"model", "input": [base64 images]}``), the same images.

The load generator is a minimal asyncio HTTP/1.1 client (pre-encoded request, Content-Length
responses), so the client costs little of the machine's CPU. Without ``--models`` the model is
a freshly initialised ResNet-18 (small-image stem) on 1x8x8 digits, embedding 128: the default
training job's encoder, exported with ``pauc_ray.export.export_model``. Both sides use
``--torch-threads`` threads. Never run from the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pauc_ray.data.augment import AugmentConfig
from pauc_ray.export import export_model
from pauc_ray.model.backbones import EncoderSpec, build_encoder
from service.registry import ModelRegistry

MODEL_ID = "bench-digits-resnet18"


def digits_uint8() -> np.ndarray:
    """(1797, 8, 8) uint8: scikit-learn's digits (0..16) scaled to 0..255."""
    from sklearn.datasets import load_digits

    return np.round(load_digits().images * (255 / 16)).astype(np.uint8)


def build_root(directory: Path) -> Path:
    spec = EncoderSpec("resnet18", "image", (1, 8, 8), 128, 2)
    torch.manual_seed(0)
    meta = {
        "method": "random-init",
        "dataset": "digits",
        "dataset_info": {"kind": "image", "channels": 1, "height": 8, "width": 8},
        "epoch": 0,
        "metrics": {},
        "preprocessing": {"augment": json.loads(json.dumps(dataclasses.asdict(AugmentConfig())))},
    }
    export_model(directory / MODEL_ID / "export", build_encoder(spec).state_dict(), spec, meta)
    return directory


def png_b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def in_process(root: Path, model_id: str, images: np.ndarray, batch: int, seconds: float) -> dict:
    registry = ModelRegistry(root, 4)
    registry.load_all()
    served = registry.get(model_id)
    inputs = images[:, None]
    served.embed(inputs[:batch])  # warm-up
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = inputs[i : i + batch]
        if len(chunk) < batch:
            i, chunk = 0, inputs[:batch]
        served.embed(chunk)
        done += len(chunk)
        i += batch
    elapsed = time.perf_counter() - start
    return {"inputs_per_second": done / elapsed, "batch": batch, "seconds": elapsed}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _http(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        raise ConnectionError(f"no HTTP response to GET {path}")
    return int(head.split(b" ")[1]), body


async def _client(port: int, request: bytes, stop: float, warm: float, out: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (now := time.perf_counter()) < stop:
            writer.write(request)
            status = int((await reader.readline()).split(b" ")[1])
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            done = time.perf_counter()
            if status != 200:
                errors.append(status)
            elif now >= warm:
                out.append((done, done - now))
    finally:
        writer.close()


def connections_per_process(server_pid: int, port: int) -> dict[int, int]:
    """Established connections to ``port`` held by each child of ``server_pid`` (uvicorn's
    worker processes): how the kernel spread the clients' keep-alive connections. Linux only
    (``/proc``); empty where it cannot be read."""
    try:
        children = [  # the spawned workers, not multiprocessing's resource tracker
            int(pid)
            for pid in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        established: set[int] = set()  # socket inodes of connections to the server's port
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    established.add(int(fields[9]))
        counts = {}
        for pid in children:
            sockets = 0
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and int(target[8:-1]) in established:
                    sockets += 1
            counts[pid] = sockets
        return counts
    except OSError:
        return {}


async def load(
    port: int,
    body: bytes,
    clients: int,
    seconds: float,
    warmup: float,
    route: str = "/embed",
    midway: Callable[[], object] | None = None,
) -> dict:
    """``clients`` keep-alive connections posting ``body`` to ``route``; ``midway()`` is
    called once half-way through the measured time and its answer returned as ``midway``."""
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    start, cpu_start = time.perf_counter(), time.process_time()
    warm, stop = start + warmup, start + warmup + seconds
    done: list[tuple[float, float]] = []
    errors: list[int] = []
    observed: list[object] = []

    async def observe() -> None:
        await asyncio.sleep(warmup + seconds / 2)
        observed.append(midway())

    await asyncio.gather(
        *(_client(port, head + body, stop, warm, done, errors) for _ in range(clients)),
        *([observe()] if midway else []),
    )
    # the load generator shares this machine's cores with the server: what it took of them
    client_cores = (time.process_time() - cpu_start) / (time.perf_counter() - start)
    latencies = np.array([latency for _, latency in done])
    window = max(t for t, _ in done) - warm if done else seconds
    return {
        "requests": len(done),
        "errors": len(errors),
        "requests_per_second": len(done) / window,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "client_cpu_cores": client_cores,
        "midway": observed[0] if observed else None,
    }


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return float("nan")


def stop_server(server: subprocess.Popen, grace_s: float = 90.0) -> None:
    """SIGINT (a clean shutdown), then SIGKILL to the server's process group after
    ``grace_s`` (logged), so one slow shutdown does not end the benchmark."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        print(f"server {server.pid} still up {grace_s:.0f} s after SIGINT: killed", flush=True)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def serve_and_load(
    root: Path,
    args: argparse.Namespace,
    max_batch: int,
    body: bytes,
    mode: str = "uvicorn:1",
    route: str = "/embed",
    floor: bool = False,
) -> dict:
    """Starts ``python -m service`` in ``mode`` (``uvicorn:N`` worker processes or ``serve:N``
    Ray Serve replicas) and loads it; with ``floor``, ``noop_service.py`` in the same stack
    instead (the same HTTP path, no decoding, no model)."""
    kind, _, count = mode.partition(":")
    if kind not in ("uvicorn", "serve") or not count.isdigit():
        raise ValueError(f"mode must be uvicorn:N or serve:N, got {mode!r}")
    extra = (
        ["--workers", count]
        if kind == "uvicorn"
        else ["--ray-serve", "--replicas", count, "--cpus-per-replica", str(args.cpus_per_replica)]
    )
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.torch_threads)}
    if kind == "serve":  # a private local Ray for the measurement, unless one is named
        env.setdefault("RAY_ADDRESS", "local")
    command = [
        sys.executable,
        "-m",
        "service",
        "--models",
        str(root),
        "--port",
        str(port),
        "--max-batch",
        str(max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--torch-threads",
        str(args.torch_threads),
        "--switch-interval-ms",
        str(args.switch_interval_ms),
        "--max-items",
        str(max(args.items, 256)),
        "--no-access-log",
        "--log-level",
        "warning",
        *extra,
    ]
    if floor:
        command = [
            sys.executable,
            str(Path(__file__).with_name("noop_service.py")),
            "--port",
            str(port),
            "--stack",
            kind,
            "--count",
            count,
        ]
    # its own process group: a server that does not stop in time is killed with what it
    # started (Serve's shutdown once took over a minute after a 30 s run)
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        # /readyz is ready once every uvicorn worker process is (service/routes/health.py)
        while True:
            try:
                if asyncio.run(_http(port, "/readyz"))[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        split = None
        if kind == "uvicorn" and int(count) > 1:  # how the kernel spread the connections

            def split() -> list[int]:
                return sorted(connections_per_process(server.pid, port).values(), reverse=True)

        result = asyncio.run(
            load(port, body, args.clients, args.seconds, args.warmup, route, midway=split)
        )
        result["connections_per_process"] = result.pop("midway")
        # uvicorn: all processes' metrics (multiprocess mode); Serve: the answering replica's
        metrics = "" if floor else asyncio.run(_http(port, "/metrics"))[1].decode()
        batches = _metric(metrics, "pauc_embed_batch_size_count")
        total = _metric(metrics, "pauc_embed_batch_size_sum")
        result["mean_batch"] = total / batches if batches else float("nan")
        # the share of the run the forward threads were busy (warm-up included), per process
        busy = _metric(metrics, "pauc_embed_forward_seconds_total")
        processes = int(count) if kind == "uvicorn" else 1
        result["forward_busy"] = busy / (args.seconds + args.warmup) / processes
    finally:
        stop_server(server)
    result["inputs_per_second"] = result["requests_per_second"] * args.items
    result["max_batch"] = max_batch
    result["mode"] = mode
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="a storage ROOT (default: a fresh export)")
    parser.add_argument("--model", default=MODEL_ID, help="model id under --models")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per setting")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--items", type=int, default=1, help="images per request")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--switch-interval-ms", type=float, default=0.5, help="server's GIL")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["uvicorn:1"],
        help="uvicorn:N (N worker processes) and/or serve:N (N Ray Serve replicas), each "
        "measured with micro-batching; batch-size-1 serving is measured for uvicorn:1",
    )
    parser.add_argument("--cpus-per-replica", type=float, default=1.0, help="serve:N modes")
    parser.add_argument(
        "--routes",
        nargs="+",
        default=["/embed"],
        choices=["/embed", "/v1/embeddings"],
        help="the routes each micro-batching mode is measured on",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also load noop_service.py in each mode's stack (same HTTP path and JSON, no "
        "image decoding, no model): the most requests/s the stack allows here",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    images = digits_uint8()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.models or build_root(Path(tmp))
        model = args.model if args.models else MODEL_ID
        results: dict = {
            "machine": {
                "cpu_count": os.cpu_count(),
                "load_average_1min_at_start": os.getloadavg()[0],
                "python": platform.python_version(),
                "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            },
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        }
        # the machine is shared: the baseline is taken before and after, and averaged
        base_seconds = max(args.seconds / 3, 5.0)
        before = in_process(root, model, images, args.max_batch, base_seconds)
        payload = [png_b64(images[i % len(images)]) for i in range(args.items)]
        bodies = {
            "/embed": json.dumps({"model": model, "inputs": payload}).encode(),
            "/v1/embeddings": json.dumps({"model": model, "input": payload}).encode(),
        }
        settings = [
            (f"micro_batching {m}" + ("" if r == "/embed" else f" {r}"), args.max_batch, m, r)
            for m in args.modes
            for r in args.routes
        ]
        if "uvicorn:1" in args.modes:
            settings.append(("batch_size_1 uvicorn:1", 1, "uvicorn:1", "/embed"))
        if args.floor:
            settings += [(f"floor {m}", args.max_batch, m, "/embed") for m in args.modes]
        names = []
        for name, max_batch, mode, route in settings:
            floor = name.startswith("floor")
            results[name] = serve_and_load(
                root, args, max_batch, bodies[route], mode, route, floor=floor
            )
            results[name]["route"] = route
            names.append(name)
        after = in_process(root, model, images, args.max_batch, base_seconds)
        rate = (before["inputs_per_second"] + after["inputs_per_second"]) / 2
        results["in_process"] = {"before": before, "after": after, "inputs_per_second": rate}
        print(
            f"in-process forward, batch {args.max_batch}, {args.torch_threads} torch thread(s): "
            f"{rate:.0f} inputs/s (before {before['inputs_per_second']:.0f}, "
            f"after {after['inputs_per_second']:.0f})"
        )
        for name in names:
            r = results[name]
            max_batch = r["max_batch"]
            ratio = r["inputs_per_second"] / rate
            r["ratio_to_in_process"] = ratio
            print(
                f"HTTP {r['route']} {name.removesuffix(' ' + r['route'])} (max batch "
                f"{max_batch}), {args.clients} clients x "
                f"{args.items} image(s)/request, {args.seconds:.0f} s: "
                f"{r['inputs_per_second']:.0f} inputs/s ({r['requests_per_second']:.0f} req/s), "
                f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, mean batch "
                f"{r['mean_batch']:.1f}, forward busy {r['forward_busy']:.0%}, errors "
                f"{r['errors']}, load generator {r['client_cpu_cores']:.2f} cores"
                + (
                    f", connections per process {r['connections_per_process']}"
                    if r.get("connections_per_process")
                    else ""
                )
                + "; "
                f"/ in-process = {ratio:.2f}"
                + (" (goal >= 0.7)" if name.startswith("micro_batching") else "")
            )
        if "batch_size_1 uvicorn:1" in results:
            gain = (
                results["micro_batching uvicorn:1"]["inputs_per_second"]
                / results["batch_size_1 uvicorn:1"]["inputs_per_second"]
            )
            results["micro_batching_gain"] = gain
            print(f"micro-batching vs batch-size-1 serving (uvicorn:1): {gain:.2f}x throughput")
        results["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
        print(
            f"load average (1 min) at start / end: "
            f"{results['machine']['load_average_1min_at_start']:.1f} / "
            f"{results['machine']['load_average_1min_at_end']:.1f}"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
