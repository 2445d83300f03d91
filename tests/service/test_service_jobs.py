"""service.jobs (queue, states, limits) and service.nemd_job (what a job computes)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from service_storage import VECTOR_ID

from pauc_ray.config import NEMDConfig
from pauc_ray.nemd import nemd_report
from service.datasets import DatasetCatalog
from service.errors import ApiError
from service.jobs import JobStore
from service.metrics import ServiceMetrics
from service.nemd_job import NemdSettings, run_nemd
from service.registry import ModelRegistry

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _sample(store, name: str, **labels) -> float:
    return store.metrics.registry.get_sample_value(name, labels) or 0.0


def wait_for(job, states=("done", "failed", "cancelled"), timeout=30.0):
    deadline = time.monotonic() + timeout
    while job.status not in states:
        assert time.monotonic() < deadline, f"job still {job.status}"
        time.sleep(0.01)
    return job


@pytest.fixture
def store():
    jobs = JobStore(workers=1, max_pending=2, keep=2, metrics=ServiceMetrics())
    jobs.start()
    yield jobs
    jobs.shutdown()


def test_a_job_runs_off_the_caller_and_reports(store):
    release = threading.Event()

    def work(check):
        release.wait(10)
        return {"reports": [1]}, PNG_SIGNATURE

    job = store.submit("m", {"kind": "inputs", "count": 3}, {"seed": 0}, work)
    wait_for(job, ("running",))
    assert _sample(store, "pauc_nemd_jobs_running") == 1 and job.view()["finished"] is None
    release.set()
    wait_for(job)
    view = job.view()
    assert view["status"] == "done" and view["reports"] == [1]
    assert view["plot"] == f"/nemd/{job.id}/plot.png" and view["seconds"] >= 0
    assert store.get(job.id) is job and _sample(store, "pauc_nemd_jobs_total", status="done") == 1
    assert _sample(store, "pauc_nemd_jobs_running") == 0


def test_a_failing_job_records_its_error(store):
    def work(check):
        raise ValueError("all points fell into\n one prototype")

    job = wait_for(store.submit("m", {}, {}, work))
    assert job.status == "failed" and job.error == "all points fell into one prototype"
    assert (
        "reports" not in job.view() and _sample(store, "pauc_nemd_jobs_total", status="failed") == 1
    )


def test_pending_jobs_are_bounded_and_old_ones_dropped(store):
    release = threading.Event()

    def work(check):
        release.wait(10)
        return {}, b""

    first, second = (store.submit("m", {}, {}, work) for _ in range(2))
    with pytest.raises(ApiError) as info:
        store.submit("m", {}, {}, work)
    assert info.value.status == 429 and "at most 2" in info.value.message
    release.set()
    wait_for(first), wait_for(second)
    later = [wait_for(store.submit("m", {}, {}, work)) for _ in range(2)]
    assert store.get(first.id) is None  # keep=2: the oldest finished jobs are gone
    assert all(store.get(job.id) is job for job in later)


def test_cancel_stops_a_running_job_at_its_next_check_and_a_queued_one_at_once(store):
    started, checks = threading.Event(), []

    def work(check):
        started.set()
        for _ in range(1000):  # stages of a long job
            checks.append(1)
            check()
            time.sleep(0.01)
        return {}, b""

    running = store.submit("m", {}, {}, work)
    queued = store.submit("m", {}, {}, work)
    assert started.wait(10)
    store.cancel(queued)
    store.cancel(running)
    assert wait_for(running).status == "cancelled" and "cancelled" in running.error
    assert wait_for(queued).status == "cancelled" and len(checks) < 1000
    assert _sample(store, "pauc_nemd_jobs_total", status="cancelled") == 2
    assert "reports" not in running.view() and running.view()["finished"] is not None


def test_a_job_past_its_time_limit_stops_and_says_so():
    jobs = JobStore(workers=1, max_pending=2, keep=2, metrics=ServiceMetrics(), time_limit_s=0.2)
    jobs.start()
    try:

        def work(check):
            while True:
                check()
                time.sleep(0.01)

        job = wait_for(jobs.submit("m", {}, {}, work))
        assert job.status == "failed" and "past the time limit of 0.2 s" in job.error
        assert 0.2 <= job.finished - job.started < 5
    finally:
        jobs.shutdown()


def test_unknown_and_malformed_ids(store):
    assert store.get("0" * 32) is None
    assert store.get("../../etc/passwd") is None


@pytest.fixture
def two_processes(tmp_path):
    """Two stores sharing one folder, as two worker processes of one server do."""
    stores = [
        JobStore(1, max_pending=2, keep=2, metrics=ServiceMetrics(), shared_dir=tmp_path / "jobs")
        for _ in range(2)
    ]
    for store in stores:
        store.start()
    yield stores
    for store in stores:
        store.shutdown()


def test_another_process_sees_a_job_through_the_shared_folder(two_processes):
    mine, other = two_processes
    release = threading.Event()

    def work(check):
        release.wait(10)
        return {"reports": [{"nemd": 0.5}]}, PNG_SIGNATURE + b"figure"

    job = mine.submit("m", {"kind": "inputs", "count": 3}, {"seed": 0}, work)
    wait_for(job, ("running",))
    seen = other.get(job.id)
    assert seen is not job and seen.status == "running" and seen.view()["model"] == "m"
    assert other.pending() == 1 and mine.pending() == 1
    release.set()
    wait_for(job)
    seen = other.get(job.id)
    assert seen.view() == job.view()  # the same answer from either process
    assert seen.plot_png == PNG_SIGNATURE + b"figure"
    assert other.get("0" * 32) is None and other.get("../" + job.id) is None


def test_a_cancel_from_another_process_stops_the_job(two_processes):
    mine, other = two_processes
    started = threading.Event()

    def work(check):
        started.set()
        while True:
            check()
            time.sleep(0.005)

    job = mine.submit("m", {}, {}, work)
    assert started.wait(10)
    other.cancel(other.get(job.id))
    assert wait_for(job).status == "cancelled" and "cancelled" in job.error
    assert other.get(job.id).status == "cancelled"


def test_limits_count_the_jobs_of_every_process(two_processes):
    mine, other = two_processes
    release = threading.Event()

    def work(check):
        release.wait(10)
        return {}, PNG_SIGNATURE

    first = mine.submit("m", {}, {}, work)
    second = other.submit("m", {}, {}, work)
    with pytest.raises(ApiError) as refused:  # two unfinished, one in each process
        mine.submit("m", {}, {}, work)
    assert refused.value.status == 429
    release.set()
    wait_for(first), wait_for(second)
    later = [wait_for(store.submit("m", {}, {}, work)) for store in (mine, other)]
    # keep=2 over both processes: the two oldest are gone from the folder and from memory
    assert mine.get(first.id) is None and other.get(second.id) is None
    assert all(store.get(job.id) is not None for store in (mine, other) for job in later)
    assert sorted(p.name for p in (mine.shared_dir).glob("*.json")) == sorted(
        f"{job.id}.json" for job in later
    )


def test_a_job_whose_process_died_reads_as_failed(two_processes, tmp_path):
    mine, other = two_processes
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    release = threading.Event()

    def work(check):
        release.wait(10)
        return {}, PNG_SIGNATURE

    job = mine.submit("m", {}, {}, work)
    wait_for(job, ("running",))
    record = mine.shared_dir / f"{job.id}.json"
    state = json.loads(record.read_text())
    state["owner"]["pid"] = gone.pid  # as if the process that runs it had exited
    record.write_text(json.dumps(state))
    seen = other.get(job.id)
    assert seen.status == "failed" and "exited" in seen.error
    assert other.pending() == 0  # it no longer holds a place
    release.set()
    wait_for(job)


def test_run_nemd_reports_like_the_cli_for_each_k(storage_root):
    registry = ModelRegistry(storage_root, 4)
    registry.load_all()
    served = registry.get(VECTOR_ID)
    inputs, _ = DatasetCatalog(storage_root).load("blobs", "train", 10_000, 0)
    settings = NemdSettings((4, 6), 0.005, 50, None, 0, matrix=False)
    result, png = run_nemd(served, lambda: inputs, settings)
    assert png.startswith(PNG_SIGNATURE)
    assert result["num_points"] == 128 and result["embedding_dim"] == served.embedding_dim
    assert [r["num_clusters"] for r in result["reports"]] == [4, 6]
    cli_fields = set(nemd_report(*_two_clusters(), NEMDConfig(), device="cpu").to_dict())
    for report in result["reports"]:
        assert set(report) == cli_fields | {"num_clusters"}
        assert report["num_prototypes"] == report["num_clusters"]
        assert report["max_points"] == 50 and report["matrix"] is None
        assert 0 < report["nemd_nn"] <= report["nemd"] <= 2
    again, _ = run_nemd(served, lambda: inputs, settings)
    assert [r["nemd"] for r in again["reports"]] == [r["nemd"] for r in result["reports"]]


def test_run_nemd_needs_enough_points(storage_root):
    registry = ModelRegistry(storage_root, 4)
    registry.load_all()
    settings = NemdSettings((10,), 0.005, None, None, 0, matrix=True)
    with pytest.raises(ValueError, match="K=10 needs at least"):
        run_nemd(registry.get(VECTOR_ID), lambda: np.zeros((5, 3), np.float32), settings)


def _two_clusters():
    x = np.random.default_rng(0).normal(size=(20, 4))
    return x, np.repeat([0, 1], 10)
