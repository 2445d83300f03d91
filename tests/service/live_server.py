"""The real server for the service tests: ``python -m service`` in a subprocess on a free
local port (uvicorn, as users run it)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

# `python -m service ARGS`, plus a report of forbidden imports at exit
SERVE = """
import sys
from service.__main__ import main
code = main(sys.argv[1:])
bad = sorted(m for m in sys.modules if m == "ray" or m.startswith(("ray.", "pauc_ray.train")))
print("FORBIDDEN-IMPORTS:" + ",".join(bad), flush=True)
sys.exit(code)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(storage_root, tmp_path, *extra: str, env: dict[str, str] | None = None):
    """``python -m service`` on a free local port over ``storage_root`` (flags ``extra``
    added), ready; yields ``(httpx client, process, log path)`` and stops it after."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAUC_SERVICE_MAX_WAIT_MS": "1", **(env or {})}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVE,
            "--models",
            str(storage_root),
            "--port",
            str(port),
            "--torch-threads",
            "1",
            "--no-access-log",
            "--body-timeout-s",
            "1",
            "--max-header-bytes",
            "4096",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server not ready in 120 s"
                time.sleep(0.1)
            yield client, process, tmp_path / "server.log"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
