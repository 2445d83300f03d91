"""Prometheus metrics of one app, through ``prometheus_client``.

Each app gets its own :class:`ServiceMetrics` with its own ``CollectorRegistry`` (no
process-global registry that tests or two apps would share).

With several uvicorn worker processes (``--workers N``) each process counts its own requests,
and a scrape reaches one process at random. There ``python -m service`` turns on
``prometheus_client``'s multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a fresh directory
for the server's lifetime, set before the workers start): every process writes its values to
files there, and ``GET /metrics`` on any process renders them all through
``MultiProcessCollector``: counters and histograms summed over the processes, the in-flight
and NEMD job gauges summed over the live ones (``livesum``), models loaded the largest
(``livemax``, every process loads the same models). A process leaving cleanly removes its
live gauges (:meth:`ServiceMetrics.close`). Every label value is bounded
whatever a client sends: routes are the matched route's template (``unmatched`` otherwise),
methods are the HTTP methods the app serves (``other`` otherwise), statuses are classes
(``2xx`` ... ``5xx``), models are ids of loaded models only.

Exposed (``GET /metrics``):

- ``pauc_http_requests_total{route,method,status}``: requests.
- ``pauc_http_request_duration_seconds{route}``: latency histogram, seconds.
- ``pauc_http_requests_in_flight``: requests being handled now.
- ``pauc_embed_batch_size``: histogram of inputs per model forward (micro-batches).
- ``pauc_embed_queue_seconds``: histogram of how long an input waited for its forward.
- ``pauc_embed_inputs_total{model}``: inputs embedded.
- ``pauc_embed_forward_seconds_total``: time spent in model forwards (its rate is the share of
  the forward thread that is busy: near 1 means the model, not HTTP, limits throughput).
- ``pauc_nemd_jobs_running``, ``pauc_nemd_jobs_queued``: gauges.
- ``pauc_nemd_jobs_total{status}``: finished jobs, ``done``, ``failed`` or ``cancelled``.
- ``pauc_models_loaded``: gauge.
- ``pauc_ready``: 1 when this process has loaded its models; with worker processes, how many
  have (``GET /readyz`` waits for all of them).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = [
    "CONTENT_TYPE",
    "METHODS",
    "MULTIPROCESS_ENV",
    "ServiceMetrics",
    "method_label",
    "multiprocess_dir",
    "status_label",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
# prometheus_client reads it when it is imported: set it before the worker processes start
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory of ``prometheus_client``'s multiprocess mode, when it is on."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def method_label(method: str) -> str:
    """The method as a label: one of :data:`METHODS`, else ``other``."""
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    """``2xx``, ``3xx``, ``4xx`` or ``5xx`` (``5xx`` for anything out of range)."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "5xx"


class ServiceMetrics:
    """The metrics of one app, registered in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "pauc_http_requests",
            "HTTP requests by route template, method and status class.",
            ("route", "method", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "pauc_http_request_duration_seconds",
            "HTTP request latency in seconds, by route template.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "pauc_http_requests_in_flight",
            "HTTP requests being handled now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.batch_size = Histogram(
            "pauc_embed_batch_size",
            "Inputs per model forward (micro-batch size).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "pauc_embed_queue_seconds",
            "Seconds an /embed input waited for its model forward.",
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.embedded = Counter(
            "pauc_embed_inputs", "Inputs embedded, by model.", ("model",), registry=r
        )
        self.forward_seconds = Counter(
            "pauc_embed_forward_seconds", "Seconds spent in /embed model forwards.", registry=r
        )
        self.jobs_running = Gauge(
            "pauc_nemd_jobs_running",
            "NEMD jobs running now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.jobs_queued = Gauge(
            "pauc_nemd_jobs_queued",
            "NEMD jobs waiting for a worker.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.jobs_finished = Counter(
            "pauc_nemd_jobs", "NEMD jobs finished, by final status.", ("status",), registry=r
        )
        self.models_loaded = Gauge(
            "pauc_models_loaded",
            "Models loaded and served.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.ready = Gauge(
            "pauc_ready",
            "1 when this process's models are loaded; with worker processes, how many are.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method_label(method), status_label(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.forward_seconds.inc(seconds)

    def render(self) -> bytes:
        """The exposition in Prometheus's text format: this app's registry, or every worker
        process's values in multiprocess mode."""
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()  # a fresh one per scrape, as prometheus_client asks
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry)

    def processes_ready(self) -> int | None:
        """In multiprocess mode, how many worker processes are ready; else ``None``."""
        path = multiprocess_dir()
        if path is None:
            return None
        for family in multiprocess.MultiProcessCollector(None, path=path).collect():
            if family.name == "pauc_ready":
                return int(sum(sample.value for sample in family.samples))
        return 0

    def close(self) -> None:
        """In multiprocess mode, drops this process's live gauges (a leaving worker)."""
        path = multiprocess_dir()
        if path is not None:
            multiprocess.mark_process_dead(os.getpid(), path)
