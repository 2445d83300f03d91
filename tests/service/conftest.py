"""Fixtures of the service tests: one storage ROOT per session, apps over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from app_client import wait_ready
from fastapi.testclient import TestClient
from service_storage import build_storage

from service.app import create_app
from service.settings import ServiceSettings, settings_from


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine a second OpenMP thread stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def storage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_storage(tmp_path_factory.mktemp("storage"))


@pytest.fixture(scope="session")
def make_client(storage_root: Path) -> Callable[..., TestClient]:
    """``make_client(**settings)``: a started TestClient (use it as a context manager)."""

    def make(**overrides) -> TestClient:
        settings = settings_from(models=storage_root, **overrides)
        return TestClient(create_app(settings), raise_server_exceptions=False)

    return make


@pytest.fixture(scope="module")
def client(storage_root: Path) -> Iterator[TestClient]:
    """A ready app with small limits (16 items, 64 KiB bodies) and no API key."""
    settings: ServiceSettings = settings_from(
        models=storage_root, max_items=16, max_body_bytes=64 * 1024, nemd_max_inputs=400
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture(scope="module")
def registry(storage_root: Path):
    """Every model under the test ROOT, loaded (the reference the routes are compared with)."""
    from service.registry import ModelRegistry

    models = ModelRegistry(storage_root, 4)
    models.load_all()
    return models
