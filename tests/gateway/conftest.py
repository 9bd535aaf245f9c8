"""Fixtures of the gateway-simulator tests: a fresh simulator per test, its control client, bounds."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import pytest

from support.control import ControlClient
from support.gateway import GatewayConfig, ThreadedGateway

#: Every gateway test is bounded even if it forgets to be.
DEFAULT_TEST_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/gateway/" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


@pytest.fixture(autouse=True)
def _quiet_client_libraries(caplog: pytest.LogCaptureFixture) -> None:
    """The client libraries log every IB error at ERROR; keep them at WARNING+ in captured logs only."""
    caplog.set_level(logging.WARNING)


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., ThreadedGateway]]:
    """Factory: ``make_gateway(**config)`` starts a simulator; every one is stopped after the test."""
    started: list[ThreadedGateway] = []

    def make(**config: Any) -> ThreadedGateway:
        gateway = ThreadedGateway(GatewayConfig(**config)).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., ThreadedGateway]) -> ThreadedGateway:
    """A simulator with the default rules."""
    return make_gateway()


@pytest.fixture
def control(gateway: ThreadedGateway) -> Iterator[ControlClient]:
    """The control-API client of ``gateway``."""
    client = ControlClient(gateway.control_url)
    yield client
    client.close()
