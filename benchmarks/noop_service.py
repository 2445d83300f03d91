"""A server that does everything ``python -m service`` does for a request except the work: the
floor of each serving stack on this machine, for ``bench_service.py --floor``.

    .venv/bin/python benchmarks/noop_service.py --port 8000 --stack uvicorn --count 2
    .venv/bin/python benchmarks/noop_service.py --port 8000 --stack serve --count 1

The app is FastAPI, as the service's: ``POST /embed`` and ``POST /v1/embeddings`` read the
body, parse its JSON and answer a small JSON without decoding an image or running a model;
``GET /readyz`` answers 200. Served by uvicorn with ``--count`` worker processes, or by Ray Serve
(``@serve.ingress``, ``--count`` replicas of one CPU each, the service's deployment shape),
so the requests/s it reaches under ``bench_service.py``'s load is what the HTTP stack alone
allows here: the most the real service could do with a free model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

from service.ray_serve import wait_for_stop_signal

app = FastAPI()
ANSWER = json.dumps({"model": "noop", "count": 1, "embeddings": [[0.0] * 8]}).encode()


@app.post("/embed")
@app.post("/v1/embeddings")
async def embed(request: Request) -> Response:
    body = json.loads(await request.body())
    if not isinstance(body, dict):
        return Response(status_code=422)
    return Response(ANSWER, media_type="application/json")


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


def serve_with_ray(port: int, replicas: int) -> None:
    import ray
    from ray import serve

    from pauc_ray.train.driver import init_ray

    @serve.deployment(
        num_replicas=replicas, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=128
    )
    @serve.ingress(app)
    class Noop:
        pass

    init_ray(verbose=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Noop.bind(), name="noop", route_prefix="/", blocking=False)
    try:
        wait_for_stop_signal()  # as the service's Serve mode stops
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stack", choices=["uvicorn", "serve"], required=True)
    parser.add_argument("--count", type=int, default=1, help="worker processes or replicas")
    args = parser.parse_args()
    if args.stack == "serve":
        serve_with_ray(args.port, args.count)
        return 0
    import uvicorn

    uvicorn.run(
        "noop_service:app",
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=args.port,
        workers=args.count,
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
