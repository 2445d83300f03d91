"""service.metrics: the hand-written exposition is valid Prometheus text with the right counts."""

from __future__ import annotations

import pytest

from service.metrics import Counter, Histogram, ServiceMetrics

parser = pytest.importorskip("prometheus_client.parser")


def families(text: str) -> dict:
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def samples(family, name: str) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


def test_exposition_parses_and_counts():
    metrics = ServiceMetrics()
    metrics.requests.inc("/embed", "POST", "200")
    metrics.requests.inc("/embed", "POST", "200")
    metrics.requests.inc("/embed", "POST", "422")
    for seconds in (0.0005, 0.003, 0.003, 20.0):
        metrics.latency.observe(seconds, "/embed")
    for size in (1, 8, 64, 5000):
        metrics.batch_size.observe(size)
    metrics.jobs_running.inc()
    metrics.models_loaded.set(2)
    parsed = families(metrics.render())
    requests = samples(parsed["pauc_http_requests"], "pauc_http_requests_total")
    ok = (("method", "POST"), ("route", "/embed"), ("status", "200"))
    assert requests[ok] == 2
    latency = parsed["pauc_http_request_duration_seconds"]
    buckets = samples(latency, "pauc_http_request_duration_seconds_bucket")
    assert buckets[(("le", "0.001"), ("route", "/embed"))] == 1
    assert buckets[(("le", "0.005"), ("route", "/embed"))] == 3
    assert buckets[(("le", "10"), ("route", "/embed"))] == 3
    assert buckets[(("le", "+Inf"), ("route", "/embed"))] == 4
    total = samples(latency, "pauc_http_request_duration_seconds_sum")
    assert total[(("route", "/embed"),)] == pytest.approx(20.0065)
    batch = samples(parsed["pauc_embed_batch_size"], "pauc_embed_batch_size_bucket")
    assert batch[(("le", "1"),)] == 1 and batch[(("le", "64"),)] == 3
    assert batch[(("le", "+Inf"),)] == 4
    assert samples(parsed["pauc_nemd_jobs_running"], "pauc_nemd_jobs_running")[()] == 1
    assert samples(parsed["pauc_nemd_jobs_queued"], "pauc_nemd_jobs_queued")[()] == 0
    assert samples(parsed["pauc_models_loaded"], "pauc_models_loaded")[()] == 2


def test_label_values_are_escaped():
    counter = Counter("c_total", "help", ("route",))
    counter.inc('a"b\\c\nd')
    text = "\n".join(counter.render()) + "\n"
    assert 'route="a\\"b\\\\c\\nd"' in text
    family = families(text)["c"]
    assert family.samples[0].labels["route"] == 'a"b\\c\nd'


def test_wrong_label_count_is_an_error():
    with pytest.raises(ValueError, match="takes labels"):
        Histogram("h", "help", (1.0,), ("route",)).observe(1.0)
