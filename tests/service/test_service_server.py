"""The real server: ``python -m service``'s main under uvicorn on a free local port, over HTTP.

The server process also reports, when it exits, every module it imported while serving
``/embed`` and ``/nemd``: none may be Ray's or the trainer's (``service/`` reads models only
through ``pauc_ray.export``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from service_storage import IMAGE_ID, VECTOR_ID, digit_images, encode, png_b64

pytestmark = pytest.mark.slow

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


@pytest.fixture
def server(storage_root, tmp_path):
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAUC_SERVICE_MAX_WAIT_MS": "1"}
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


def test_embed_and_nemd_over_http(server):
    client, process, log = server
    assert client.get("/healthz").json() == {"status": "ok"}
    vectors = client.post("/embed", json={"model": VECTOR_ID, "inputs": [[1, 2, 3]] * 4})
    assert vectors.status_code == 200 and vectors.json()["count"] == 4
    images = digit_images(3)
    as_json = client.post(
        "/embed", json={"model": IMAGE_ID, "inputs": [png_b64(i) for i in images]}
    )
    uploads = client.post(
        "/embed",
        data={"model": IMAGE_ID},
        files=[
            ("files", (f"{i}.png", encode(im, "PNG"), "image/png")) for i, im in enumerate(images)
        ],
    )
    assert as_json.status_code == uploads.status_code == 200
    assert as_json.json()["embeddings"] == uploads.json()["embeddings"]
    bad = client.post("/embed", json={"model": VECTOR_ID, "inputs": [[1, 2]]})
    assert bad.status_code == 422 and bad.json()["field"] == "inputs[0]"

    started = client.post(
        "/nemd", json={"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [4]}
    )
    assert started.status_code == 202
    job_url = started.headers["location"]
    deadline = time.monotonic() + 60
    while (body := client.get(job_url).json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    assert body["status"] == "done" and body["reports"][0]["num_clusters"] == 4
    plot = client.get(body["plot"])
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
    assert 'method="POST",route="/embed",status="2xx"' in client.get("/metrics").text

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0  # a clean shutdown
    with pytest.raises(httpx.TransportError):
        client.get("/healthz")
    assert "FORBIDDEN-IMPORTS:\n" in log.read_text()  # none
    assert "Uvicorn running on" in log.read_text()
