"""The optional API key (PAUC_API_KEY): every route but the health checks needs it."""

from __future__ import annotations

import pytest
from app_client import wait_ready
from service_storage import VECTOR_ID
from test_service_app import assert_error

KEY = "correct horse battery staple"


@pytest.fixture(scope="module")
def keyed(make_client):
    with make_client(api_key=KEY) as client:
        wait_ready(client)  # /readyz needs no key
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/models"),
        ("GET", f"/models/{VECTOR_ID}/nemd"),
        ("GET", "/datasets"),
        ("POST", "/embed"),
        ("POST", "/nemd"),
        ("GET", "/nemd/" + "0" * 32),
        ("GET", "/nemd/" + "0" * 32 + "/plot.png"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/no/such/route"),
    ],
)
def test_every_other_route_needs_the_key(keyed, method, path):
    missing = keyed.request(method, path)
    body = assert_error(missing, 401, "x-api-key", "missing API key")
    assert body["error"] == "unauthorized" and missing.headers["www-authenticate"] == "Bearer"
    wrong = keyed.request(method, path, headers={"X-API-Key": KEY + "x"})
    assert_error(wrong, 401, "x-api-key", "wrong API key")
    bearer_wrong = keyed.request(method, path, headers={"Authorization": "Bearer nope"})
    assert bearer_wrong.status_code == 401


def test_health_checks_need_no_key(keyed):
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200


def test_the_key_opens_every_route(keyed):
    request = {"model": VECTOR_ID, "inputs": [[1, 2, 3]]}
    with_header = keyed.post("/embed", json=request, headers={"X-API-Key": KEY})
    assert with_header.status_code == 200
    bearer = keyed.post("/embed", json=request, headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 200
    assert keyed.get("/models", headers={"X-API-Key": KEY}).status_code == 200
    metrics = keyed.get("/metrics", headers={"X-API-Key": KEY}).text
    # refused requests are counted too, under the route they asked for or "unmatched"
    assert 'method="GET",route="unmatched",status="4xx"' in metrics


def test_a_key_may_be_any_utf8_text(make_client):
    key = "clé secrète 🔑 ключ"
    with make_client(api_key=key) as client:
        wait_ready(client)
        raw = key.encode("utf-8")  # what a client puts on the wire
        assert client.get("/models", headers={"X-API-Key": raw}).status_code == 200
        bearer = b"Bearer " + raw
        assert client.get("/models", headers={"Authorization": bearer}).status_code == 200
        wrong = (key + "!").encode("utf-8")
        assert client.get("/models", headers={"X-API-Key": wrong}).status_code == 401
        assert client.get("/models", headers={"X-API-Key": b"cl\xe9"}).status_code == 401


@pytest.mark.parametrize("key", [" padded", "padded ", "line\nbreak", "tab\there", "nul\x00"])
def test_keys_no_client_can_send_are_refused_at_start(storage_root, key):
    from service.settings import SettingsError, settings_from

    with pytest.raises(SettingsError, match="PAUC_API_KEY has leading or trailing spaces"):
        settings_from(models=storage_root, api_key=key)


def test_the_schema_declares_the_key(keyed):
    schema = keyed.get("/openapi.json", headers={"X-API-Key": KEY}).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"] == {"type": "http", "scheme": "bearer"}
    assert schema["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    assert "security" not in schema["paths"]["/embed"]["post"]  # the global requirement holds
