"""NEMD jobs: queued, run in a thread pool off the event loop, kept for a while for polling.

A job goes ``queued -> running -> done | failed | cancelled``. The pool has ``nemd_workers``
threads;
embedding, faiss k-means and the Sinkhorn solver spend their time in native code that releases
the GIL, so ``/embed`` stays responsive while a job runs. At most ``nemd_max_pending`` jobs
are queued or running (``POST /nemd`` answers 429 beyond that) and the last
``nemd_keep_jobs`` finished ones are kept. Jobs live in memory: a restart forgets them.

A job stops early, and says so in ``error``, when it is cancelled (``DELETE /nemd/{id}``) or runs
past ``nemd_time_limit_s``: its work calls :meth:`NemdJob.check` between stages (each chunk of
the embedding, the clustering, each clustering's NEMD), so it stops at the next stage boundary;
a stage in native code (one faiss k-means call, one clustering's Sinkhorn) runs to its end, which
the up-front cost limits of ``POST /nemd`` keep short.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from service.errors import ApiError
from service.metrics import ServiceMetrics

__all__ = ["JOB_ID_PATTERN", "JobStore", "NemdJob"]

logger = logging.getLogger(__name__)

JOB_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)

# What a job runs: called with the job's check (raises JobStopped when the job must stop);
# returns (result dict, plot PNG bytes).
Work = Callable[[Callable[[], None]], tuple[dict[str, Any], bytes]]


class JobStopped(Exception):
    """Raised inside a job's work by :meth:`NemdJob.check`: cancelled or out of time."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass
class NemdJob:
    """One NEMD job; ``status`` and the results are written by its worker thread."""

    id: str
    model: str
    source: dict[str, Any]
    settings: dict[str, Any]
    status: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    plot_png: bytes | None = field(default=None, repr=False)
    time_limit_s: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event, repr=False)

    def check(self) -> None:
        """Raises :class:`JobStopped` when the job was cancelled or is past its time limit."""
        if self.cancel_requested.is_set():
            raise JobStopped(CANCELLED, "cancelled by DELETE /nemd/{id}")
        if (
            self.time_limit_s is not None
            and self.started is not None
            and time.time() - self.started > self.time_limit_s
        ):
            raise JobStopped(
                FAILED,
                f"stopped after {time.time() - self.started:.1f} s: past the time limit of "
                f"{self.time_limit_s:g} s (--nemd-time-limit-s)",
            )

    def view(self) -> dict[str, Any]:
        """The body of ``GET /nemd/{id}``."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "model": self.model,
            "source": self.source,
            "settings": self.settings,
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "seconds": None
            if self.started is None or self.finished is None
            else round(self.finished - self.started, 3),
            "error": self.error,
        }
        if self.status == DONE and self.result is not None:
            out.update(self.result)
            out["plot"] = f"/nemd/{self.id}/plot.png"
        return out


class JobStore:
    """The jobs of one app and the pool that runs them."""

    def __init__(
        self,
        workers: int,
        max_pending: int,
        keep: int,
        metrics: ServiceMetrics,
        time_limit_s: float | None = None,
    ):
        self.time_limit_s = time_limit_s
        self.workers = workers
        self.max_pending = max_pending
        self.keep = keep
        self.metrics = metrics
        self._jobs: dict[str, NemdJob] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="nemd-job")

    def shutdown(self) -> None:
        """Drops queued jobs; a running one finishes in its thread (it cannot be interrupted)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def get(self, job_id: str) -> NemdJob | None:
        if not JOB_ID_PATTERN.fullmatch(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def pending(self) -> int:
        with self._lock:
            return sum(job.status in (QUEUED, RUNNING) for job in self._jobs.values())

    def submit(
        self, model: str, source: dict[str, Any], settings: dict[str, Any], work: Work
    ) -> NemdJob:
        """Queues ``work``; ``ApiError(429)`` when ``max_pending`` jobs are unfinished."""
        if self._executor is None:
            raise ApiError(503, "the service is not started", headers={"Retry-After": "1"})
        job = NemdJob(
            id=uuid.uuid4().hex,
            model=model,
            source=source,
            settings=settings,
            time_limit_s=self.time_limit_s,
        )
        with self._lock:
            unfinished = sum(j.status in (QUEUED, RUNNING) for j in self._jobs.values())
            if unfinished >= self.max_pending:
                raise ApiError(
                    429,
                    f"{unfinished} NEMD jobs are queued or running (at most {self.max_pending});"
                    " poll them and retry later",
                    headers={"Retry-After": "5"},
                )
            self._jobs[job.id] = job
            self._evict()
        self.metrics.jobs_queued.inc()
        self._executor.submit(self._run, job, work)
        logger.info("NEMD job %s queued for model %s (%s)", job.id, model, source)
        return job

    def cancel(self, job: NemdJob) -> NemdJob:
        """Asks ``job`` to stop: a queued job is cancelled at once, a running one at its next
        stage boundary; a finished job is left as it is."""
        job.cancel_requested.set()
        logger.info("NEMD job %s: cancel requested (%s)", job.id, job.status)
        return job

    def _evict(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in FINISHED]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]

    def _run(self, job: NemdJob, work: Work) -> None:
        self.metrics.jobs_queued.dec()
        self.metrics.jobs_running.inc()
        job.started = time.time()
        job.status = RUNNING
        status = FAILED
        try:
            job.check()  # cancelled while it was queued
            job.result, job.plot_png = work(job.check)
            status = DONE
        except JobStopped as stop:
            status, job.error = stop.status, str(stop)
            logger.info("NEMD job %s %s: %s", job.id, stop.status, stop)
        except Exception as exc:  # recorded in the job and logged: a job never takes the server
            job.error = " ".join(str(exc).split()) or type(exc).__name__
            logger.warning("NEMD job %s failed: %s", job.id, job.error, exc_info=True)
        finally:
            job.finished = time.time()
            job.status = status  # last, so a reader that sees "done" sees everything else
            self.metrics.jobs_running.dec()
            self.metrics.jobs_finished.labels(status).inc()
            with self._lock:
                self._evict()
        logger.info("NEMD job %s %s in %.2fs", job.id, status, job.finished - job.started)
