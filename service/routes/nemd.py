"""``POST /nemd`` (start a job, 202), ``GET /nemd/{id}`` (status, report), ``DELETE
/nemd/{id}`` (cancel), ``GET /nemd/{id}/plot.png`` (the figure). Everything a request can get
wrong is checked here, before the job is queued, so a job fails only on what cannot be known in
advance (e.g. all points falling into one prototype). Its cost is bounded up front: K per
clustering, the K x K matrix, and the point pairs its Sinkhorn compares (:func:`job_work`).
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.errors import ApiError
from service.inputs import parse_items
from service.jobs import DONE, FAILED, FINISHED
from service.nemd_job import NemdSettings, run_nemd
from service.registry import ServedModel
from service.routes.embed import INLINE_ITEMS
from service.schemas import ErrorBody, NemdAccepted, NemdRequest
from service.state import ServiceState, StateDep

router = APIRouter(tags=["nemd"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 404, 409, 413, 422, 429, 503)
}


def _check_enough(points: int, num_clusters: list[int], what: str) -> None:
    k = max(num_clusters)
    if points < k:
        raise ApiError(
            422, f"num_clusters: K={k} needs at least {k} points, {what} {points}", "num_clusters"
        )


def job_work(num_clusters: list[int], max_pairs: int | None, max_points: int | None, rows: int):
    """The point pairs a job's Sinkhorn compares at most: per clustering, the prototype pairs
    evaluated times the points kept per prototype, squared (every point of a prototype is
    compared with every point of the other's)."""
    total = 0.0
    for k in num_clusters:
        pairs = k * (k - 1) / 2 if max_pairs is None else min(max_pairs, k * (k - 1) / 2)
        points = rows if max_points is None else min(max_points, rows)
        total += pairs * float(points) ** 2
    return total


def _check_cost(body: NemdRequest, rows: int, state: ServiceState) -> None:
    settings = state.settings
    k = max(body.num_clusters)
    if k > settings.nemd_max_clusters:
        raise ApiError(
            422,
            f"num_clusters: K={k}, at most {settings.nemd_max_clusters} (--nemd-max-clusters)",
            "num_clusters",
        )
    if body.matrix and k > settings.nemd_max_matrix:
        raise ApiError(
            422,
            f"matrix: a {k} x {k} matrix is too large to return; at most K="
            f"{settings.nemd_max_matrix} with matrix: true (--nemd-max-matrix)",
            "matrix",
        )
    work = job_work(body.num_clusters, body.max_pairs, body.max_points, rows)
    if work > settings.nemd_max_work:
        raise ApiError(
            422,
            f"max_pairs: the job would compare up to {work:.3g} point pairs, more than the "
            f"{settings.nemd_max_work:.3g} allowed (--nemd-max-work); lower max_pairs or "
            "max_points, or use fewer clusterings",
            "max_pairs",
        )


async def _from_inputs(body: NemdRequest, served: ServedModel, state: ServiceState):
    args = (body.inputs, served.input_kind, served.input_shape, state.settings.nemd_max_inputs)
    if len(body.inputs or ()) > INLINE_ITEMS:
        inputs: np.ndarray = await asyncio.to_thread(parse_items, *args)
    else:
        inputs = parse_items(*args)
    _check_enough(len(inputs), body.num_clusters, "got")
    _check_cost(body, len(inputs), state)
    return {"kind": "inputs", "count": len(inputs)}, lambda: inputs


async def _from_dataset(body: NemdRequest, served: ServedModel, state: ServiceState):
    name = body.dataset or ""
    info = await asyncio.to_thread(state.datasets.info, name)
    if info is None:
        shown = name if len(name) <= 100 else name[:100] + "..."
        raise ApiError(404, f"dataset: unknown dataset {shown!r} (see GET /datasets)", "dataset")
    if body.split not in info.counts:
        raise ApiError(
            422,
            f"split: dataset {name!r} has splits {sorted(info.counts)}, not {body.split!r}",
            "split",
        )
    if info.kind != served.input_kind or tuple(info.sample_shape) != served.input_shape:
        raise ApiError(
            422,
            f"dataset: {name!r} holds {info.kind}s of shape {list(info.sample_shape)}, but model "
            f"{served.id!r} takes {served.input_kind}s of shape {list(served.input_shape)}",
            "dataset",
        )
    total = info.counts[body.split]
    rows = min(total, state.settings.nemd_max_rows)
    _check_enough(rows, body.num_clusters, f"split {body.split!r} has")
    _check_cost(body, rows, state)
    source = {"kind": "dataset", "dataset": name, "split": body.split, "rows": rows}
    source["rows_total"] = total

    def load() -> np.ndarray:
        return state.datasets.load(name, body.split, rows, body.seed)[0]

    return source, load


@router.post("/nemd", status_code=202, response_model=NemdAccepted, responses=_ERRORS)
async def start_nemd(body: NemdRequest, state: StateDep, response: Response) -> dict[str, str]:
    """Starts a NEMD job on ``inputs`` or on a registered ``dataset`` (exactly one of them):
    embed, k-means into each K of ``num_clusters``, NEMD (Eq. 3) of each clustering."""
    served = await state.model(body.model)
    if (body.inputs is None) == (body.dataset is None):
        raise ApiError(422, "inputs: give exactly one of inputs and dataset", "inputs")
    if body.inputs is not None:
        source, load = await _from_inputs(body, served, state)
    else:
        source, load = await _from_dataset(body, served, state)
    settings = NemdSettings(
        num_clusters=tuple(body.num_clusters),
        epsilon=body.epsilon,
        max_points=body.max_points,
        max_pairs=body.max_pairs,
        seed=body.seed,
        matrix=body.matrix,
    )
    work = functools.partial(run_nemd, served, load, settings)
    job = state.jobs.submit(served.id, source, settings.to_dict(), work)
    url = f"/nemd/{job.id}"
    response.headers["Location"] = url
    return {"id": job.id, "status": job.status, "url": url}


def _job(state: ServiceState, job_id: str):
    job = state.jobs.get(job_id)
    if job is None:
        shown = job_id if len(job_id) <= 100 else job_id[:100] + "..."
        raise ApiError(404, f"job_id: unknown job {shown!r}", "job_id")
    return job


@router.get("/nemd/{job_id}", responses=_ERRORS)
async def get_nemd(job_id: str, state: StateDep) -> Response:
    """Status (``queued``, ``running``, ``done``, ``failed``); when done, the reports: one per
    K, with the CLI's fields plus ``num_clusters``."""
    view = _job(state, job_id).view()
    if view["status"] != "done":
        return JSONResponse(view)
    # a finished job's reports can hold K x K matrices (megabytes of JSON): serialised in a
    # thread, so the event loop keeps serving other requests meanwhile
    body = await asyncio.to_thread(json.dumps, view)
    return Response(body, media_type="application/json")


@router.delete("/nemd/{job_id}", status_code=202, responses=_ERRORS)
async def cancel_nemd(job_id: str, state: StateDep) -> dict[str, Any]:
    """Cancels a job: a queued one at once, a running one at its next stage (poll it until its
    status is ``cancelled``); a finished job is a 409."""
    job = _job(state, job_id)
    if job.status in FINISHED:
        raise ApiError(409, f"job_id: job {job.id} already {job.status}", "job_id")
    return state.jobs.cancel(job).view()


@router.get(
    "/nemd/{job_id}/plot.png",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"image/png": {}}}},
)
async def get_nemd_plot(job_id: str, state: StateDep) -> Response:
    """The job's figure: PCA of the embeddings by prototype and the W1 matrix, per K."""
    job = _job(state, job_id)
    if job.status != DONE or job.plot_png is None:
        detail = f"it failed: {job.error}" if job.status == FAILED else f"it is {job.status}"
        raise ApiError(409, f"job_id: job {job.id} has no plot, {detail}", "job_id")
    return Response(job.plot_png, media_type="image/png")
