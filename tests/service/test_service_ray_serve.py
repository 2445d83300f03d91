"""service.ray_serve: Serve's batching counting inputs, and the app deployed on the shared
local Ray cluster answering like the uvicorn mode."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from service_storage import BROKEN_ID, IMAGE_ID, VECTOR_ID, digit_images, png_b64

from service.ray_serve import (
    APP_NAME,
    build_application,
    deployment_options,
    replica_settings,
)
from service.settings import settings_from


def test_deployment_options_fixed_or_autoscaling(tmp_path):
    fixed = deployment_options(settings_from(models=tmp_path, replicas="2"))
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed
    scaled = deployment_options(
        settings_from(models=tmp_path, replicas="1:4", gpus_per_replica=1, cpus_per_replica=2)
    )
    assert scaled["autoscaling_config"]["min_replicas"] == 1
    assert scaled["autoscaling_config"]["max_replicas"] == 4
    assert scaled["ray_actor_options"] == {"num_cpus": 2.0, "num_gpus": 1.0}


def test_replicas_share_nemd_jobs_when_there_may_be_several(tmp_path):
    one = settings_from(models=tmp_path, replicas="1")
    assert replica_settings(one).nemd_jobs_dir is None  # one replica keeps its jobs in memory
    for replicas in ("2", "1:4"):
        shared = replica_settings(settings_from(models=tmp_path, replicas=replicas, port=8123))
        assert shared.nemd_jobs_dir == Path(tempfile.gettempdir()) / "pauc-service-nemd-jobs-8123"
    named = settings_from(models=tmp_path, replicas="2", nemd_jobs_dir=tmp_path / "jobs")
    assert replica_settings(named).nemd_jobs_dir == tmp_path / "jobs"


STOPPER = """
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's background job inherits it
from service.ray_serve import wait_for_stop_signal
# "waiting" only once the handlers are in: a signal sent earlier would be ignored (SIGINT here)
# or kill the child (SIGTERM), which made this test fail on a busy machine
signum = wait_for_stop_signal(on_ready=lambda: print("waiting", flush=True))
print(signal.Signals(signum).name, flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_mode_stops_on_sigint_even_if_inherited_ignored_and_on_sigterm(signum):
    child = subprocess.Popen([sys.executable, "-c", STOPPER], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "waiting"
        child.send_signal(signum)
        out, _ = child.communicate(timeout=20)
    finally:
        child.kill()
    assert child.returncode == 0 and out.strip() == signal.Signals(signum).name


@pytest.mark.parametrize("replicas", ["0", "3:2", "x"])
def test_bad_replica_ranges_are_named(tmp_path, replicas):
    from service.settings import SettingsError

    with pytest.raises(SettingsError, match="replicas"):
        settings_from(models=tmp_path, replicas=replicas)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _batch_histogram(port: int) -> tuple[float, float, float]:
    """(count, sum, count at most 8) of the replica's ``pauc_embed_batch_size`` histogram."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("pauc_embed_batch_size"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return (
        values.get("pauc_embed_batch_size_count", 0.0),
        values.get("pauc_embed_batch_size_sum", 0.0),
        values.get('pauc_embed_batch_size_bucket{le="8.0"}', 0.0),
    )


def _request(port: int, path: str, body: dict | None = None, headers: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.ray
@pytest.mark.slow
def test_serve_deployment_embeds_like_the_uvicorn_app(ray_cluster, storage_root, make_client):
    from ray import serve

    images = [png_b64(i) for i in digit_images(5)]
    vectors = [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]]
    with make_client() as client:
        from app_client import wait_ready

        wait_ready(client)
        want_images = client.post("/embed", json={"model": IMAGE_ID, "inputs": images}).json()
        want_vectors = client.post("/embed", json={"model": VECTOR_ID, "inputs": vectors}).json()
        want_models = {m["id"]: m for m in client.get("/models").json()}

    port = _free_port()
    settings = settings_from(
        models=storage_root,
        ray_serve=True,
        cpus_per_replica=0.5,
        max_models_per_replica=1,
        max_batch=8,
        max_wait_ms=300,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_application(settings), name=APP_NAME, route_prefix="/")
        deadline = time.monotonic() + 60
        while _request(port, "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, ready = _request(port, "/readyz")
        assert status == 200 and ready["models"] == 3  # found, not loaded: the broken one too
        assert ready["failed"] == []
        # lazily loaded, one model per replica: the second request evicts the first model
        status, got = _request(port, "/embed", {"model": IMAGE_ID, "inputs": images})
        assert status == 200, got
        np.testing.assert_allclose(got["embeddings"], want_images["embeddings"], atol=1e-5)
        status, got = _request(
            port,
            "/embed",
            {"model": VECTOR_ID, "inputs": vectors},
            headers={"serve_multiplexed_model_id": VECTOR_ID},  # Serve's routing header
        )
        assert status == 200, got
        np.testing.assert_allclose(got["embeddings"], want_vectors["embeddings"], atol=1e-5)
        status, again = _request(port, "/embed", {"model": IMAGE_ID, "inputs": images})
        np.testing.assert_allclose(again["embeddings"], want_images["embeddings"], atol=1e-5)
        # the same errors as under uvicorn
        status, error = _request(port, "/embed", {"model": BROKEN_ID, "inputs": vectors})
        assert (
            status == 404
            and error["field"] == "model"
            and "could not be loaded" in (error["message"])
        )
        # GET /models from model.json, without loading weights: the same entries
        status, listed = _request(port, "/models")
        assert status == 200
        served = {m["id"]: m for m in listed}
        assert set(served) == set(want_models)  # the broken one, found on use, is not
        for model_id, entry in want_models.items():
            assert served[model_id] == entry
        assert _request(port, "/readyz")[1]["failed"] == [BROKEN_ID]
        status, error = _request(port, "/embed", {"model": "nope", "inputs": vectors})
        assert status == 404 and error["error"]
        # Serve's @serve.batch batches inputs, not requests: 4 concurrent requests of 3
        # inputs with max_batch 8 share forwards of at most 8 inputs (counting requests
        # would have made one forward of 12)
        before = _batch_histogram(port)
        three = [[0.1 * i, 0.2, 0.3] for i in range(3)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(
                pool.map(
                    lambda _: _request(port, "/embed", {"model": VECTOR_ID, "inputs": three}),
                    range(4),
                )
            )
        assert all(status == 200 and len(got["embeddings"]) == 3 for status, got in answers)
        after = _batch_histogram(port)
        forwards, inputs, small = (a - b for a, b in zip(after, before))
        assert inputs == 12 and forwards < 4, (forwards, inputs)  # requests shared forwards
        assert small == forwards  # every forward held at most max_batch = 8 inputs
    finally:
        serve.shutdown()
