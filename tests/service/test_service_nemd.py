"""POST /nemd, GET /nemd/{id}, GET /nemd/{id}/plot.png through the test client."""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

import numpy as np
import pytest
from service_storage import IMAGE_ID, VECTOR_ID, digit_images, png_b64
from test_service_app import assert_body_limit, assert_error

import service.routes.nemd as nemd_route
from pauc_ray.config import NEMDConfig
from pauc_ray.nemd import nemd_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def finished(client, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/nemd/{job_id}").json()
        if body["status"] in ("done", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def cli_fields() -> set[str]:
    x = np.random.default_rng(0).normal(size=(20, 4))
    return set(nemd_report(x, np.repeat([0, 1], 10), NEMDConfig(), device="cpu").to_dict())


def test_nemd_on_a_registered_dataset(client):
    response = client.post(
        "/nemd",
        json={"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [4, 8], "seed": 1},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ("queued", "running")
    assert accepted["url"] == f"/nemd/{accepted['id']}" == response.headers["location"]
    body = finished(client, accepted["id"])
    assert body["status"] == "done", body["error"]
    assert body["source"] == {
        "kind": "dataset",
        "dataset": "blobs",
        "split": "train",
        "rows": 128,
        "rows_total": 128,
    }
    assert body["settings"]["num_clusters"] == [4, 8] and body["num_points"] == 128
    reports = body["reports"]
    assert [r["num_clusters"] for r in reports] == [4, 8]
    for report in reports:
        assert set(report) == cli_fields() | {"num_clusters"}
        assert report["seed"] == 1 and report["matrix"] is None
        assert 0 < report["nemd_nn"] <= report["nemd"] <= 2
    plot = client.get(body["plot"])
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert plot.content.startswith(PNG_SIGNATURE)


def test_nemd_on_inputs_with_the_matrix(client):
    images = [png_b64(im) for im in digit_images(30, seed=3)]
    response = client.post(
        "/nemd",
        json={"model": IMAGE_ID, "inputs": images, "num_clusters": [3], "matrix": True},
    )
    assert response.status_code == 202, response.text
    body = finished(client, response.json()["id"])
    assert body["status"] == "done" and body["source"] == {"kind": "inputs", "count": 30}
    matrix = np.array(body["reports"][0]["matrix"], dtype=float)
    assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T)


def test_nemd_on_a_dataset_split_and_image_model(client):
    response = client.post(
        "/nemd", json={"model": IMAGE_ID, "dataset": "digits", "split": "test", "num_clusters": [5]}
    )
    body = finished(client, response.json()["id"])
    assert body["status"] == "done" and body["source"]["split"] == "test"


@pytest.mark.parametrize(
    ("payload", "status", "field", "says"),
    [
        ({"model": VECTOR_ID}, 422, "inputs", "exactly one of inputs and dataset"),
        (
            {"model": VECTOR_ID, "dataset": "blobs", "inputs": [[1, 2, 3]]},
            422,
            "inputs",
            "exactly one",
        ),
        ({"model": "nope", "dataset": "blobs"}, 404, "model", "unknown model"),
        ({"model": VECTOR_ID, "dataset": "nope"}, 404, "dataset", "unknown dataset 'nope'"),
        ({"model": VECTOR_ID, "dataset": "escape"}, 404, "dataset", "unknown dataset"),
        ({"model": VECTOR_ID, "dataset": "../outside"}, 404, "dataset", "unknown dataset"),
        ({"model": VECTOR_ID, "dataset": "/etc"}, 404, "dataset", "unknown dataset"),
        ({"model": VECTOR_ID, "dataset": "digits"}, 422, "dataset", "holds images"),
        ({"model": VECTOR_ID, "dataset": "blobs", "split": "val"}, 422, "split", "has splits"),
        ({"model": VECTOR_ID, "dataset": "blobs", "split": "../x"}, 422, "split", "pattern"),
        (
            {"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [500]},
            422,
            "num_clusters",
            "K=500 needs at least 500 points",
        ),
        (
            {"model": VECTOR_ID, "inputs": [[1, 2, 3]] * 3, "num_clusters": [4]},
            422,
            "num_clusters",
            "K=4 needs at least 4 points, got 3",
        ),
        ({"model": VECTOR_ID, "dataset": "blobs", "num_clusters": []}, 422, "num_clusters", ""),
        ({"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [1]}, 422, "num_clusters[0]", ""),
        (
            {"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [4, 4]},
            422,
            "num_clusters",
            "distinct",
        ),
        ({"model": VECTOR_ID, "dataset": "blobs", "epsilon": -1}, 422, "epsilon", ""),
        ({"model": VECTOR_ID, "dataset": "blobs", "epsilon": "0.1"}, 422, "epsilon", ""),
        ({"model": VECTOR_ID, "dataset": "blobs", "max_points": 0}, 422, "max_points", ""),
        ({"model": VECTOR_ID, "dataset": "blobs", "seed": -1}, 422, "seed", ""),
        ({"model": VECTOR_ID, "dataset": "blobs", "num_cluster": [4]}, 422, "num_cluster", ""),
        ({"model": VECTOR_ID, "inputs": [[1, 2, 3], [1, 2]]}, 422, "inputs[1]", "length 2"),
        ({"model": VECTOR_ID, "inputs": []}, 422, "inputs", "empty list"),
        ({"model": VECTOR_ID, "inputs": [[1, 2, 3]] * 401}, 422, "inputs", "at most 400"),
    ],
)
def test_bad_nemd_requests_are_named(client, payload, status, field, says):
    assert_error(client.post("/nemd", json=payload), status, field, says)


@pytest.mark.parametrize("token", ["NaN", "Infinity"])
def test_nan_settings(client, token):
    body = f'{{"model": "{VECTOR_ID}", "dataset": "blobs", "epsilon": {token}}}'
    response = client.post("/nemd", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "epsilon", "finite")


def test_malformed_json(client):
    response = client.post(
        "/nemd", content=b'{"model": ', headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "body", "not valid JSON")


@pytest.mark.parametrize("job_id", ["0" * 32, "nope", "ZZ" * 16, "...", "%2e%2e"])
def test_unknown_jobs(client, job_id):
    assert_error(client.get(f"/nemd/{quote(job_id, safe='')}"), 404, "job_id", "unknown job")
    plot = client.get(f"/nemd/{quote(job_id, safe='')}/plot.png")
    assert_error(plot, 404, "job_id", "unknown job")


def test_job_ids_with_slashes_match_no_route(client):
    for path in ("/nemd/../../etc/passwd", "/nemd/..%2F..%2Fetc%2Fpasswd", "/nemd/a/b/plot.png"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_a_job_that_fails_says_why(client):
    same = [[1.0, 1.0, 1.0]] * 10  # every point in one prototype: NEMD needs two
    response = client.post("/nemd", json={"model": VECTOR_ID, "inputs": same, "num_clusters": [2]})
    body = finished(client, response.json()["id"])
    assert body["status"] == "failed" and "prototype" in body["error"]
    assert_error(client.get(f"/nemd/{body['id']}/plot.png"), 409, "job_id", "it failed")


def test_jobs_run_off_the_event_loop_and_are_bounded(make_client, monkeypatch):
    release = threading.Event()
    started = threading.Event()

    def blocked(*args, **kwargs):
        started.set()
        release.wait(30)
        return {"reports": []}, PNG_SIGNATURE

    monkeypatch.setattr(nemd_route, "run_nemd", blocked)
    with make_client(nemd_max_pending=2) as client:
        from app_client import wait_ready

        wait_ready(client)
        request = {"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [4]}
        first = client.post("/nemd", json=request).json()["id"]
        second = client.post("/nemd", json=request).json()["id"]
        assert started.wait(10)
        assert_error(client.post("/nemd", json=request), 429, None, "at most 2")
        assert client.get(f"/nemd/{second}").json()["status"] == "queued"
        # the job thread is blocked, yet /embed answers: NEMD runs off the event loop
        start = time.perf_counter()
        embed = client.post("/embed", json={"model": VECTOR_ID, "inputs": [[1, 2, 3]]})
        assert embed.status_code == 200 and time.perf_counter() - start < 5
        assert "pauc_nemd_jobs_running 1" in client.get("/metrics").text
        assert_error(client.get(f"/nemd/{first}/plot.png"), 409, "job_id", "it is running")
        release.set()
        assert finished(client, first)["status"] == "done"
        assert finished(client, second)["status"] == "done"
        assert client.get(f"/nemd/{first}/plot.png").content == PNG_SIGNATURE


def test_nemd_body_too_large(client):
    assert_body_limit(client, "/nemd")


def test_a_jobs_cost_is_bounded_before_it_is_queued(make_client):
    limits = {"nemd_max_clusters": 6, "nemd_max_matrix": 4, "nemd_max_work": 1000}
    with make_client(**limits) as client:
        from app_client import wait_ready

        wait_ready(client)
        base = {"model": VECTOR_ID, "dataset": "blobs"}
        too_many = client.post("/nemd", json={**base, "num_clusters": [8]})
        assert_error(too_many, 422, "num_clusters", "K=8, at most 6")
        matrix = client.post("/nemd", json={**base, "num_clusters": [5], "matrix": True})
        assert_error(matrix, 422, "matrix", "at most K=4 with matrix: true")
        # 3 pairs of K=3 with every point of a prototype: 3 * rows^2 point pairs
        heavy = client.post("/nemd", json={**base, "num_clusters": [3], "max_points": None})
        assert_error(heavy, 422, "max_pairs", "point pairs, more than the 1e+03 allowed")
        light = client.post("/nemd", json={**base, "num_clusters": [3], "max_points": 10})
        assert light.status_code == 202  # 3 * 10^2 = 300: within the limit
        assert finished(client, light.json()["id"])["status"] == "done"


def test_work_counts_pairs_times_points_squared():
    assert nemd_route.job_work([4], None, None, rows=10) == 6 * 100
    assert nemd_route.job_work([4, 10], 5, 3, rows=10) == 5 * 9 + 5 * 9
    assert nemd_route.job_work([100], 10, 500, rows=200) == 10 * 200**2


def test_a_running_job_can_be_cancelled(make_client, monkeypatch):
    started = threading.Event()

    def slow(served, load, settings, check=lambda: None, forward=None):
        started.set()
        while True:
            check()
            time.sleep(0.01)

    monkeypatch.setattr(nemd_route, "run_nemd", slow)
    with make_client() as client:
        from app_client import wait_ready

        wait_ready(client)
        job = client.post("/nemd", json={"model": VECTOR_ID, "dataset": "blobs"}).json()["id"]
        assert started.wait(10)
        cancel = client.delete(f"/nemd/{job}")
        assert cancel.status_code == 202 and cancel.json()["id"] == job
        body = finished(client, job)
        assert body["status"] == "cancelled" and "cancelled" in body["error"]
        assert_error(client.delete(f"/nemd/{job}"), 409, "job_id", "already cancelled")
        assert_error(client.delete(f"/nemd/{'0' * 32}"), 404, "job_id", "unknown job")
        assert_error(client.get(f"/nemd/{job}/plot.png"), 409, "job_id", "it is cancelled")
