"""Helpers for in-process app clients (a uniquely named module: ``conftest`` is not importable
by name once more than one test folder has one)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient


def wait_ready(client: TestClient, timeout: float = 60.0) -> None:
    """Poll ``/readyz`` until the app has loaded its models."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("the app did not become ready")
