"""Fixtures of the backend tests: fault proxy and backend processes (simulators: tests/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backend_helpers import BackendProcess

from ibtargets.gateway import ThreadedGateway
from ibtargets.proxy import ThreadedProxy

#: Every backend test is bounded even if it forgets to be.
DEFAULT_TEST_TIMEOUT_S = 90


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/backend/" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


@pytest.fixture(autouse=True)
def _quiet_client_libraries(caplog: pytest.LogCaptureFixture) -> None:
    """ib_insync logs every IB error at ERROR; keep captured logs at WARNING and up."""
    caplog.set_level(logging.WARNING)


@pytest.fixture
def proxy(gateway: ThreadedGateway) -> Iterator[ThreadedProxy]:
    """A fault proxy in front of ``gateway``."""
    with ThreadedProxy("127.0.0.1", gateway.port) as the_proxy:
        yield the_proxy


@pytest.fixture
def make_backend(tmp_path: Path) -> Iterator[Callable[..., BackendProcess]]:
    """Factory: ``make_backend(ib_port, **env)`` starts ``refbackend serve``; each is stopped after the test."""
    started: list[BackendProcess] = []

    def make(ib_port: int, argv: list[str] | None = None, **env: str) -> BackendProcess:
        log_dir = tmp_path / f"backend-{len(started) + 1}"
        backend = BackendProcess(ib_port, log_dir, env, argv)
        started.append(backend)
        return backend.start()

    yield make
    for backend in started:
        backend.stop()


@pytest.fixture
def backend(make_backend: Callable[..., BackendProcess], gateway: ThreadedGateway) -> BackendProcess:
    """A backend connected straight to ``gateway``."""
    return make_backend(gateway.port)


@pytest.fixture
def proxied_backend(make_backend: Callable[..., BackendProcess], proxy: ThreadedProxy) -> BackendProcess:
    """A backend whose IB connections go through ``proxy``."""
    return make_backend(proxy.port)
