"""Property-based fuzz of the OpenAPI schema (hypothesis): no request gets a 5xx.

Every operation in ``/openapi.json`` is called with path parameters and JSON bodies drawn from
its schema (a small JSON-Schema-to-strategy translation: ``$ref``, ``anyOf``, objects, arrays,
strings, numbers with their bounds), mixed with arbitrary JSON values, wrong types, extra
fields, NaN and infinity, and hostile strings for ids and names. Every answer must be below 500
and every 4xx must be the service's error body.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

import pytest
from app_client import wait_ready
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from service_storage import IMAGE_ID, VECTOR_ID, digit_images, png_b64

pytestmark = pytest.mark.slow

HOSTILE = st.sampled_from(
    ["..", "../..", "/etc/passwd", "..%2F..", "%00", "\x00", "a" * 300, "escape", "linked-run"]
)
MODEL_IDS = st.sampled_from([VECTOR_ID, IMAGE_ID, "broken-run", "linked-run"])
DATASETS = st.sampled_from(["blobs", "digits", "escape", "../datasets/blobs"])
IMAGE = png_b64(digit_images(1)[0])
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# values some fields are worth biasing towards, so valid requests reach the deep code
BY_NAME = {
    "model": st.sampled_from([VECTOR_ID, IMAGE_ID]) | MODEL_IDS | HOSTILE,
    "dataset": DATASETS | HOSTILE | st.text(max_size=20),
    "split": st.sampled_from(["train", "test", "val", "../train"]),
    "inputs": st.lists(
        st.lists(st.floats(-10, 10), min_size=3, max_size=3), min_size=1, max_size=10
    )
    | st.lists(st.just(IMAGE), min_size=1, max_size=10)
    | st.lists(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4) | st.text(max_size=12),
        max_size=10,
    ),
    "num_clusters": st.lists(st.integers(2, 5), min_size=1, max_size=2, unique=True)
    | st.lists(st.integers(-2, 200), max_size=3),
}


def strategy(schema: dict[str, Any], components: dict[str, Any], name: str = "", depth: int = 0):
    """Values valid for ``schema`` (roughly; bounds honoured, ``pattern`` ignored)."""
    if "$ref" in schema:
        return strategy(components[schema["$ref"].rsplit("/", 1)[-1]], components, name, depth)
    if name in BY_NAME:
        return BY_NAME[name]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([strategy(s, components, name, depth) for s in schema[key]])
    if "allOf" in schema:
        return strategy(schema["allOf"][0], components, name, depth)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {
                k: strategy(v, components, k, depth + 1)
                for k, v in properties.items()
                if k in required
            },
            optional={
                k: strategy(v, components, k, depth + 1)
                for k, v in properties.items()
                if k not in required
            },
        )
    if kind == "array":
        items = strategy(schema.get("items", {}), components, "", depth + 1)
        return st.lists(
            items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 6), 6)
        )
    if kind == "string":
        return st.text(max_size=30)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**40)), schema.get("maximum", 2**40))
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1e6))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 1e6))
        return st.floats(low, high, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return ANY_JSON


def operations(openapi: dict[str, Any], only: str | None = None) -> list:
    return [
        (method.upper(), path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if only is None or f"{method.upper()} {path}" == only
    ]


def request_strategy(openapi: dict[str, Any], only: str | None = None):
    """``(method, path, JSON body or None)`` for the operations (or the one named ``only``)."""
    components = openapi.get("components", {}).get("schemas", {})

    @st.composite
    def draw_request(draw):
        method, path, operation = draw(st.sampled_from(operations(openapi, only)))
        for parameter in operation.get("parameters", ()):
            if parameter["in"] == "path":
                name = parameter["name"]
                value = draw((MODEL_IDS if name == "model_id" else st.text(max_size=40)) | HOSTILE)
                path = path.replace("{" + name + "}", quote(value, safe="") or "x")
        body = None
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            valid = strategy(content["application/json"]["schema"], components)
            body = draw(
                valid  # valid-ish, twice as likely
                | valid
                | valid.map(lambda b: {**b, "unknown": 1})  # an extra field
                | st.tuples(valid, st.sampled_from(sorted(BY_NAME)), ANY_JSON).map(
                    lambda t: {**t[0], t[1]: t[2]}  # one field of any JSON type
                )
                | ANY_JSON  # anything at all
            )
        return method, path, body

    return draw_request()


@pytest.fixture(scope="module")
def fuzz_client(make_client):
    # small limits, so fuzzed jobs stay cheap and the queue limit is reached too
    with make_client(nemd_max_pending=2, max_items=8, nemd_max_inputs=64) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def openapi(fuzz_client) -> dict[str, Any]:
    return fuzz_client.get("/openapi.json").json()


def send(client, request, seen: set) -> None:
    method, path, body = request
    content = None
    if body is not None:
        content = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity included
    response = client.request(
        method, path, content=content, headers={"content-type": "application/json"}
    )
    seen.add((method, path.split("/")[1], response.status_code))
    assert response.status_code < 500, (method, path, body, response.text)
    if 400 <= response.status_code < 500:
        error = response.json()
        assert error["error"] and isinstance(error["message"], str) and "field" in error


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples every run: a failure here is reproducible
)


def test_openapi_lists_every_route(openapi):
    assert {
        "/healthz",
        "/readyz",
        "/models",
        "/models/{model_id}/nemd",
        "/datasets",
        "/embed",
        "/nemd",
        "/nemd/{job_id}",
        "/nemd/{job_id}/plot.png",
        "/metrics",
    } <= set(openapi["paths"])


def test_fuzzed_requests_to_every_route_never_get_a_5xx(fuzz_client, openapi):
    seen: set = set()

    @settings(FUZZ, max_examples=150)
    @given(request_strategy(openapi))
    def check(request):
        send(fuzz_client, request, seen)

    check()
    assert {200, 404, 422} <= {status for *_, status in seen}


def test_fuzzed_embed_bodies_never_get_a_5xx(fuzz_client, openapi):
    seen: set = set()

    @settings(FUZZ, max_examples=400)
    @given(request_strategy(openapi, "POST /embed"))
    @example(("POST", "/embed", {"model": VECTOR_ID, "inputs": [[0.5, 1.0, -1.0]]}))
    def check(request):
        send(fuzz_client, request, seen)

    check()
    assert {("POST", "embed", status) for status in (200, 404, 422)} <= seen


def test_fuzzed_nemd_bodies_never_get_a_5xx(fuzz_client, openapi):
    seen: set = set()

    @settings(FUZZ, max_examples=150)
    @given(request_strategy(openapi, "POST /nemd"))
    @example(("POST", "/nemd", {"model": VECTOR_ID, "dataset": "blobs", "num_clusters": [3]}))
    @example(("POST", "/nemd", {"model": IMAGE_ID, "inputs": [IMAGE] * 4, "num_clusters": [2]}))
    def check(request):
        send(fuzz_client, request, seen)

    check()
    assert {("POST", "nemd", status) for status in (202, 404, 422)} <= seen


def test_json_with_nan_is_not_a_crash(fuzz_client):
    for value in (math.nan, math.inf):
        body = json.dumps({"model": VECTOR_ID, "inputs": [[value, 0, 0]]})
        response = fuzz_client.post(
            "/embed", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
