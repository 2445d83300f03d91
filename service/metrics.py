"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

No client library: the few metric types needed are short, and each app gets its own
:class:`ServiceMetrics` (no process-global registry that tests or two apps would share).
Updates take a lock, because NEMD jobs report from worker threads.

Exposed (``GET /metrics``):

- ``pauc_http_requests_total{route,method,status}``: requests by route template (so model ids
  in paths do not explode the label set; ``unmatched`` for unknown paths).
- ``pauc_http_request_duration_seconds{route}``: latency histogram, seconds.
- ``pauc_embed_batch_size``: histogram of inputs per model forward (micro-batches).
- ``pauc_embed_inputs_total{model}``: inputs embedded.
- ``pauc_embed_forward_seconds_total``: time spent in model forwards (its rate is the share of
  the forward thread that is busy: near 1 means the model, not HTTP, limits throughput).
- ``pauc_nemd_jobs_running``, ``pauc_nemd_jobs_queued``: gauges.
- ``pauc_nemd_jobs_total{status}``: finished jobs, ``done`` or ``failed``.
- ``pauc_models_loaded``: gauge.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Histogram", "ServiceMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: Sequence[str]) -> tuple[str, ...]:
        if len(labels) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {labels}")
        return tuple(str(v) for v in labels)

    def _header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        lines = self._header()
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def dec(self, *labels: str, amount: float = 1.0) -> None:
        self.inc(*labels, amount=-amount)

    def render(self) -> list[str]:
        if not self._values and not self.label_names:
            self.set(0.0)
        return super().render()


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(buckets))
        # per label set: counts per bucket (not cumulative) + overflow, sum
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = {}

    def observe(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        index = bisect.bisect_left(self.buckets, value)  # buckets are upper bounds, inclusive
        with self._lock:
            counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
            counts[index] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, *labels: str) -> int:
        return sum(self._counts.get(self._key(labels), []))

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v), self._sums[k]) for k, v in self._counts.items())
        lines = self._header()
        for key, counts, total in items:
            cumulative = 0
            for bound, n in zip((*self.buckets, math.inf), counts):
                cumulative += n
                le = _labels(self.label_names, key, f'le="{_number(bound)}"')
                lines.append(f"{self.name}_bucket{le} {cumulative}")
            labels = _labels(self.label_names, key)
            lines.append(f"{self.name}_sum{labels} {_number(total)}")
            lines.append(f"{self.name}_count{labels} {cumulative}")
        return lines


class ServiceMetrics:
    """The metrics of one app."""

    def __init__(self) -> None:
        self.requests = Counter(
            "pauc_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ("route", "method", "status"),
        )
        self.latency = Histogram(
            "pauc_http_request_duration_seconds",
            "HTTP request latency in seconds, by route template.",
            LATENCY_BUCKETS,
            ("route",),
        )
        self.batch_size = Histogram(
            "pauc_embed_batch_size", "Inputs per model forward (micro-batch size).", BATCH_BUCKETS
        )
        self.embedded = Counter("pauc_embed_inputs_total", "Inputs embedded, by model.", ("model",))
        self.forward_seconds = Counter(
            "pauc_embed_forward_seconds_total", "Seconds spent in /embed model forwards."
        )
        self.jobs_running = Gauge("pauc_nemd_jobs_running", "NEMD jobs running now.")
        self.jobs_queued = Gauge("pauc_nemd_jobs_queued", "NEMD jobs waiting for a worker.")
        self.jobs_finished = Counter(
            "pauc_nemd_jobs_total", "NEMD jobs finished, by final status.", ("status",)
        )
        self.models_loaded = Gauge("pauc_models_loaded", "Models loaded and served.")

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.forward_seconds.inc(amount=seconds)

    def render(self) -> str:
        lines: list[str] = []
        for metric in (
            self.requests,
            self.latency,
            self.batch_size,
            self.embedded,
            self.forward_seconds,
            self.jobs_running,
            self.jobs_queued,
            self.jobs_finished,
            self.models_loaded,
        ):
            lines += metric.render()
        return "\n".join(lines) + "\n"
