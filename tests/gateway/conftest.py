"""Fixtures of the gateway-simulator tests (``gateway``/``make_gateway`` live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ibtargets.common.control_client import ControlClient
from ibtargets.gateway import ThreadedGateway

#: Every gateway test is bounded even if it forgets to be.
DEFAULT_TEST_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/gateway/" in str(item.fspath).replace("\\", "/") and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


@pytest.fixture
def control(gateway: ThreadedGateway) -> Iterator[ControlClient]:
    """The control-API client of ``gateway``."""
    client = ControlClient(gateway.control_url)
    yield client
    client.close()
