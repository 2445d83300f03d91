"""The app through FastAPI's test client: health, models, datasets, metrics, traversal, errors."""

from __future__ import annotations

import threading
from urllib.parse import quote

import pytest
from app_client import wait_ready
from service_storage import BROKEN_ID, EMBEDDING_DIM, FEATURE_DIM, IMAGE_ID, VECTOR_ID

from service.registry import ModelRegistry


def assert_error(response, status: int, field: str | None, says: str = "") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field", "message", "errors"}
    assert body["field"] == field and says in body["message"]
    return body


def assert_body_limit(client, route: str) -> None:
    """A body over the 64 KiB limit gets 413 on ``route``: declared (Content-Length) and
    streamed without one (counted while it arrives)."""
    big = {"model": VECTOR_ID, "inputs": [[1.0, 2.0, 3.0]] * 5000}  # > 64 KiB
    assert_error(client.post(route, json=big), 413, "body", "at most 65536")

    def chunks():
        yield b'{"model": "vec-run", "inputs": ['
        for _ in range(5000):
            yield b"[1.0, 2.0, 3.0],"
        yield b"[1, 2, 3]]}"

    response = client.post(route, content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "body", "more than 65536 bytes")


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "models": 2, "failed": [BROKEN_ID], "error": None}


def test_ready_waits_for_the_models(make_client, monkeypatch):
    release = threading.Event()
    load_all = ModelRegistry.load_all

    def slow_load(self):
        release.wait(30)
        load_all(self)

    monkeypatch.setattr(ModelRegistry, "load_all", slow_load)
    with make_client() as client:
        assert client.get("/healthz").status_code == 200  # up before the models
        loading = client.get("/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert_error(client.get("/models"), 503, None, "still loading")
        embed = client.post("/embed", json={"model": VECTOR_ID, "inputs": [[0, 0, 1]]})
        assert_error(embed, 503, None, "still loading")
        release.set()
        wait_ready(client)
        assert client.get("/models").status_code == 200


def test_models(client, storage_root):
    models = {m["id"]: m for m in client.get("/models").json()}
    assert sorted(models) == [IMAGE_ID, VECTOR_ID]
    image = models[IMAGE_ID]
    assert image["input_kind"] == "image" and image["input_shape"] == [1, 8, 8]
    assert image["embedding_dim"] == FEATURE_DIM and image["projection_dim"] == EMBEDDING_DIM
    assert image["method"] == "pauc" and image["epoch"] == 3
    assert image["dataset"] == "digits" and image["metrics"]["knn_top1"] == 0.5
    assert models[VECTOR_ID]["input_shape"] == [3] and models[VECTOR_ID]["has_nemd_report"]
    assert str(storage_root) not in client.get("/models").text


def test_stored_nemd_report_is_served_as_written(client, storage_root):
    response = client.get(f"/models/{IMAGE_ID}/nemd")
    assert response.status_code == 200
    assert response.content == (storage_root / IMAGE_ID / "nemd_report.json").read_bytes()
    assert response.json()["num_clusters"] == 3


def test_model_without_a_report(client, storage_root):
    path = storage_root / VECTOR_ID / "nemd_report.json"
    saved = path.read_bytes()
    path.unlink()
    try:
        assert_error(client.get(f"/models/{VECTOR_ID}/nemd"), 404, "model_id", "no nemd_report")
    finally:
        path.write_bytes(saved)


@pytest.mark.parametrize(
    "model_id",
    [
        "nope",
        BROKEN_ID,
        "linked-run",  # a symbolic link to a run outside ROOT
        f"../{VECTOR_ID}",
        f"sweep/../{VECTOR_ID}",
        "..%2F..%2Fetc",
        "%2Fetc",
        "/etc/passwd",
        "....//....//etc",
        "datasets/blobs",
    ],
)
def test_traversal_and_unknown_models_are_404(client, model_id):
    # encoded as one path segment, so the client cannot normalise the dots away
    response = client.get(f"/models/{quote(model_id, safe='')}/nemd")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    embed = client.post("/embed", json={"model": model_id, "inputs": [[0, 0, 1]]})
    assert_error(embed, 404, "model", "unknown model")


def test_datasets(client):
    names = [entry["name"] for entry in client.get("/datasets").json()]
    assert names == ["blobs", "digits"]  # not "escape", which links outside ROOT


def test_unknown_routes_and_methods(client):
    assert_error(client.get("/nothing/here"), 404, None, "no route /nothing/here")
    assert_error(client.delete("/models"), 405, None, "DELETE not allowed")


def test_metrics_count_requests_by_route_and_status(client):
    def count(line_start: str) -> float:
        lines = client.get("/metrics").text.splitlines()
        return next((float(ln.split()[-1]) for ln in lines if ln.startswith(line_start)), 0.0)

    ok = 'pauc_http_requests_total{method="POST",route="/embed",status="2xx"}'
    bad = 'pauc_http_requests_total{method="POST",route="/embed",status="4xx"}'
    route = "/models/{model_id:path}/nemd"  # the template, not the id
    missing = f'pauc_http_requests_total{{method="GET",route="{route}",status="4xx"}}'
    before = {key: count(key) for key in (ok, bad, missing)}
    client.get("/healthz")
    client.post("/embed", json={"model": VECTOR_ID, "inputs": [[0, 0, 1]]})
    client.post("/embed", json={"model": VECTOR_ID, "inputs": []})
    client.get("/models/x/y/nemd")
    assert {key: count(key) - before[key] for key in before} == {ok: 1, bad: 1, missing: 1}
    lines = client.get("/metrics").text.splitlines()
    assert any(
        line.startswith('pauc_http_request_duration_seconds_bucket{le="0.001",route="/embed"')
        for line in lines
    )
    assert any(line.startswith("pauc_embed_batch_size_count ") for line in lines)
    assert any(line.startswith("pauc_embed_queue_seconds_count ") for line in lines)
    assert any(line.startswith(f'pauc_embed_inputs_total{{model="{VECTOR_ID}"}}') for line in lines)
    assert "pauc_nemd_jobs_running 0.0" in lines and "pauc_models_loaded 2.0" in lines
    assert "pauc_http_requests_in_flight 1.0" in lines  # this /metrics request itself


def test_metric_labels_stay_bounded_whatever_a_client_sends(client):
    import re

    from service.metrics import METHODS

    for i in range(30):
        client.get(f"/no/such/route/{i}")
        client.request("BREW", f"/models/{i}")
        client.get(f"/models/unknown-{i}/nemd")
        client.post("/embed", json={"model": f"unknown-{i}", "inputs": [[0, 0, 1]]})
    lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith("pauc_")]
    assert not any("unknown-" in ln or "/no/such" in ln or "BREW" in ln for ln in lines)
    paths = client.get("/openapi.json").json()["paths"]  # OpenAPI drops the ":path" converter
    templates = {p.replace("{model_id}", "{model_id:path}") for p in paths} | set(paths)
    templates |= {"/openapi.json", "unmatched"}
    for line in lines:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.partition(" ")[0]))
        assert labels.get("route", "unmatched") in templates, line
        assert labels.get("method", "GET") in METHODS | {"other"}, line
        assert labels.get("status", "2xx") in {"2xx", "3xx", "4xx", "5xx"}, line
    assert any('method="other"' in ln for ln in lines)

    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=")


def test_request_ids_are_echoed_generated_and_logged(client, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="service.access")
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/models", headers={"X-Request-ID": "has spaces\tand tabs"})
    new = made.headers["x-request-id"]
    assert new != "has spaces\tand tabs" and len(new) == 32  # refused, a fresh one instead
    assert client.get("/nothing").headers["x-request-id"] not in (new, "abc-123")
    lines = [r.getMessage() for r in caplog.records if r.name == "service.access"]
    assert any(line.startswith("abc-123 GET /healthz 200 ") for line in lines)
    assert any(line.startswith(f"{new} GET /models 200 ") for line in lines)
