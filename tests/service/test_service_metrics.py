"""service.metrics: prometheus_client's exposition with the right counts and bounded labels."""

from __future__ import annotations

import pytest
from prometheus_client import parser

from service.metrics import ServiceMetrics, method_label, status_label


def families(text: str) -> dict:
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def samples(family, name: str) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


def test_exposition_parses_and_counts():
    metrics = ServiceMetrics()
    metrics.observe_request("/embed", "POST", 200, 0.0005)
    metrics.observe_request("/embed", "POST", 201, 0.003)
    metrics.observe_request("/embed", "POST", 422, 0.003)
    metrics.observe_request("/embed", "POST", 500, 20.0)
    for size in (1, 8, 64, 5000):
        metrics.batch_size.observe(size)
    metrics.jobs_running.inc()
    metrics.models_loaded.set(2)
    parsed = families(metrics.render().decode())
    requests = samples(parsed["pauc_http_requests"], "pauc_http_requests_total")
    assert requests[(("method", "POST"), ("route", "/embed"), ("status", "2xx"))] == 2
    assert requests[(("method", "POST"), ("route", "/embed"), ("status", "4xx"))] == 1
    assert requests[(("method", "POST"), ("route", "/embed"), ("status", "5xx"))] == 1
    latency = parsed["pauc_http_request_duration_seconds"]
    buckets = samples(latency, "pauc_http_request_duration_seconds_bucket")
    assert buckets[(("le", "0.001"), ("route", "/embed"))] == 1
    assert buckets[(("le", "0.005"), ("route", "/embed"))] == 3
    assert buckets[(("le", "10.0"), ("route", "/embed"))] == 3
    assert buckets[(("le", "+Inf"), ("route", "/embed"))] == 4
    total = samples(latency, "pauc_http_request_duration_seconds_sum")
    assert total[(("route", "/embed"),)] == pytest.approx(20.0065)
    batch = samples(parsed["pauc_embed_batch_size"], "pauc_embed_batch_size_bucket")
    assert batch[(("le", "1.0"),)] == 1 and batch[(("le", "64.0"),)] == 3
    assert batch[(("le", "+Inf"),)] == 4
    assert samples(parsed["pauc_nemd_jobs_running"], "pauc_nemd_jobs_running")[()] == 1
    assert samples(parsed["pauc_nemd_jobs_queued"], "pauc_nemd_jobs_queued")[()] == 0
    assert samples(parsed["pauc_models_loaded"], "pauc_models_loaded")[()] == 2


def test_labels_are_bounded():
    assert {method_label(m) for m in ("GET", "POST", "BREW", "get", "X" * 1000)} == {
        "GET",
        "POST",
        "other",
    }
    assert [status_label(s) for s in (200, 204, 301, 404, 422, 500, 503, 0, 999)] == [
        "2xx", "2xx", "3xx", "4xx", "4xx", "5xx", "5xx", "5xx", "5xx",
    ]  # fmt: skip


def test_two_apps_do_not_share_a_registry():
    first, second = ServiceMetrics(), ServiceMetrics()
    first.observe_request("/healthz", "GET", 200, 0.001)
    assert b"pauc_http_requests_total{" in first.render()
    assert b"pauc_http_requests_total{" not in second.render()
