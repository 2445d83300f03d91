"""schemathesis against the live server (uvicorn in a subprocess, API key on): cases drawn
from ``/openapi.json`` for every operation, with and without the key; no answer is a 5xx,
every error has the service's JSON shape, and every 2xx is one the schema documents."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from live_server import serving

pytestmark = pytest.mark.slow

API_KEY = "schemathesis-key"


@pytest.fixture(scope="module")
def live_schema(storage_root, tmp_path_factory):
    with serving(storage_root, tmp_path_factory.mktemp("live"), env={"PAUC_API_KEY": API_KEY}) as (
        client,
        _process,
        _log,
    ):
        yield schemathesis.openapi.from_url(
            f"{client.base_url}/openapi.json", headers={"X-API-Key": API_KEY}
        )


CALLED: list[str] = []


def _check(case) -> None:
    CALLED.append(f"{case.method} {case.path}")
    keyed = case.call(headers={"X-API-Key": API_KEY}, timeout=60)
    anonymous = case.call(timeout=60)
    for response in (keyed, anonymous):
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
        if response.status_code >= 400:
            body = response.json()
            assert {"error", "field", "message", "errors"} <= set(body), body
    if case.path not in ("/healthz", "/readyz"):
        assert anonymous.status_code == 401  # every route but the health checks needs the key
    if 200 <= keyed.status_code < 300:
        documented = case.operation.definition.raw.get("responses", {})
        assert str(keyed.status_code) in documented, (case.method, case.path, keyed.status_code)


def test_no_case_finds_a_server_error_or_an_undocumented_shape(live_schema):
    """Every operation, its cases drawn by schemathesis's strategies (schemathesis's own
    pytest plugin does not run under this pytest, so hypothesis drives the strategies)."""
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert len(operations) >= 8  # embed, v1/embeddings, nemd (3), models (2), health, ...
    for operation in operations:
        run = settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same cases every run: a failure here reproduces
        )(given(case=operation.as_strategy())(_check))
        run()
    called = {label for label in CALLED}
    assert len(called) == len(operations), sorted(called)  # every operation was exercised
    assert len(CALLED) >= 5 * len(operations)
