"""Shared pytest configuration: every test's servers bind loopback and are stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ibtargets.gateway import GatewayConfig, ThreadedGateway


@pytest.fixture
def make_gateway() -> Iterator[Callable[..., ThreadedGateway]]:
    """Factory: ``make_gateway(**config)`` starts a gateway simulator; every one is stopped after the test."""
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
    """A gateway simulator with the default rules."""
    return make_gateway()
