"""The real server: ``python -m service``'s main under uvicorn on a free local port, over HTTP.

The server process also reports, when it exits, every module it imported while serving
``/embed`` and ``/nemd``: none may be Ray's or the trainer's (``service/`` reads models only
through ``pauc_ray.export``).
"""

from __future__ import annotations

import signal
import socket
import time

import httpx
import pytest
from live_server import serving
from service_storage import IMAGE_ID, VECTOR_ID, digit_images, encode, png_b64

pytestmark = pytest.mark.slow


@pytest.fixture
def server(storage_root, tmp_path):
    with serving(storage_root, tmp_path) as started:
        yield started


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


def _raw(port: int, data: bytes, wait: float = 0.0, close_early: bool = False) -> bytes:
    """Sends raw bytes; returns what the server answers (b"" when the socket was closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if close_early:
            return b""
        time.sleep(wait)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def test_slow_bodies_big_headers_and_disconnects(server):
    client, _process, log = server
    port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
    head = b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    # a body that stops arriving: 408 after --body-timeout-s, the JSON error shape
    slow = _raw(port, head + b'Content-Length: 100\r\n\r\n{"model": ', wait=2.5)
    assert slow.startswith(b"HTTP/1.1 408"), slow[:200]
    assert b'"field":"body"' in slow and b"not received within 1 s" in slow
    # headers past --max-header-bytes: refused by the server before the app sees them
    huge = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 431"), huge[:200]
    assert b'"field":"headers"' in huge
    # clients that leave mid-body: not a server error, not a 5xx in the metrics
    for _ in range(3):
        _raw(port, head + b'Content-Length: 1000\r\n\r\n{"model"', close_early=True)
    time.sleep(1.0)
    assert client.get("/healthz").status_code == 200  # still serving
    metrics = client.get("/metrics").text
    assert 'route="/embed",status="5xx"' not in metrics
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text[-3000:]


def _metric_value(text: str, sample: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample)]
    assert len(values) == 1, (sample, text)
    return values[0]


FRESH = {"Connection": "close"}  # a new connection: the kernel hands it to either process


def _embeddings_alike(client) -> None:
    images = [png_b64(i) for i in digit_images(2)]
    answers = [
        client.post("/embed", json={"model": IMAGE_ID, "inputs": images}, headers=FRESH)
        for _ in range(12)
    ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert all(a.json()["embeddings"] == answers[0].json()["embeddings"] for a in answers)


def _one_exposition(client, metrics_dir) -> None:
    """Every scrape, whichever process answers, counts both processes' requests."""
    pids = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("*.db")}
    assert len(pids) == 2, sorted(metrics_dir.iterdir())  # both processes write there
    # a request is counted just after its response is sent: let the last one land
    done = 'pauc_http_requests_total{method="POST",route="/embed",status="2xx"}'
    deadline = time.monotonic() + 10
    while _metric_value(client.get("/metrics", headers=FRESH).text, done) < 12:
        assert time.monotonic() < deadline, "the requests were not all counted"
        time.sleep(0.05)
    for _ in range(6):
        text = client.get("/metrics", headers=FRESH).text
        assert _metric_value(text, done) == 12
        assert _metric_value(text, "pauc_embed_batch_size_sum") == 24  # inputs, summed
        assert _metric_value(text, "pauc_models_loaded") == 2  # the largest, not a sum
        assert _metric_value(text, "pauc_ready") == 2  # ready processes


def _nemd_job_anywhere(client, jobs_dir) -> None:
    """A job posted to one process is polled, fetched and refused a cancel through new
    connections (either process answers each): never a 404 (service/jobs.py)."""
    job = {"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [4]}
    started = client.post("/nemd", json=job, headers=FRESH)
    assert started.status_code == 202
    url = started.headers["location"]
    deadline = time.monotonic() + 60
    while True:
        polled = client.get(url, headers=FRESH)
        assert polled.status_code == 200, polled.text
        if polled.json()["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    body = polled.json()
    assert body["status"] == "done" and body["reports"][0]["num_clusters"] == 4
    assert all(client.get(url, headers=FRESH).json() == body for _ in range(8))
    plots = [client.get(body["plot"], headers=FRESH) for _ in range(8)]
    assert all(p.status_code == 200 and p.content == plots[0].content for p in plots)
    assert client.delete(url, headers=FRESH).status_code == 409  # finished, in either process
    assert (jobs_dir / f"{body['id']}.json").is_file()


def test_two_uvicorn_worker_processes_answer_as_one_server(storage_root, tmp_path):
    """``--workers 2``: the same embeddings from either process, one ``/metrics`` over both
    (prometheus_client's multiprocess mode), NEMD jobs any process answers for, and the
    server's folders for both removed when it stops."""
    scratch = tmp_path / "tmp"  # the server's temporary folders go here
    scratch.mkdir()
    server = serving(storage_root, tmp_path, "--workers", "2", env={"TMPDIR": str(scratch)})
    with server as (client, process, log):
        # /readyz said ready (serving() waited for it): both processes are
        assert client.get("/readyz", headers=FRESH).json()["processes"] == {"ready": 2, "of": 2}
        _embeddings_alike(client)
        (metrics_dir,) = scratch.glob("pauc-metrics-*")
        _one_exposition(client, metrics_dir)
        (jobs_dir,) = scratch.glob("pauc-jobs-*")
        _nemd_job_anywhere(client, jobs_dir)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    text = log.read_text()
    assert text.count("Started server process") == 2, text  # one line per worker process
    assert not list(scratch.glob("pauc-*"))  # both folders removed with the server
