"""IB's pacing rules (error 162) and the runtime configuration routes."""

from __future__ import annotations

import ib_insync
import pytest
import requests
from gateway_helpers import ErrorLog, bounded, ib_session, run

from ibtargets.common.control_client import ControlClient
from ibtargets.gateway import ConfigError, GatewayConfig, ThreadedGateway

AAPL = ib_insync.Stock("AAPL", "SMART", "USD")
MSFT = ib_insync.Stock("MSFT", "SMART", "USD")
IBM = ib_insync.Stock("IBM", "SMART", "USD")
END = "20240104 06:00:00 UTC"


def _served(gateway: ThreadedGateway, requests_: list[tuple], client_id: int = 1) -> tuple[list[bool], list[int]]:
    """Which historical requests ``(contract, duration, bar size)`` got bars, and the error codes seen."""
    async def body() -> tuple[list[bool], list[int]]:
        async with ib_session(ib_insync, gateway.port, client_id=client_id) as ib:
            errors = ErrorLog(ib)
            served = []
            for contract, duration, size in requests_:
                bars = await bounded(ib.reqHistoricalDataAsync(contract, END, duration, size, "TRADES", True))
                served.append(len(bars) > 0)
            return served, errors.codes()
    return run(body())


def _violations(gateway: ThreadedGateway) -> list[str]:
    return [e["rule"] for e in gateway.history() if e["kind"] == "pacing_violation"]


def test_identical_request_within_15_s_is_a_pacing_violation(gateway: ThreadedGateway) -> None:
    served, codes = _served(gateway, [(AAPL, "1 D", "1 hour"), (AAPL, "1 D", "1 hour")])
    assert served == [True, False] and codes == [162]
    assert _violations(gateway) == ["identical request within 15 s"]
    ControlClient(gateway.control_url).reset()  # a new scenario starts with a clean pacing history
    served, _ = _served(gateway, [(AAPL, "1 D", "1 hour")], client_id=2)
    assert served == [True]


def test_same_contract_rule(make_gateway) -> None:
    gateway = make_gateway(same_contract_max=3)
    served, codes = _served(gateway, [(AAPL, "1 D", "1 hour"), (AAPL, "2 D", "1 hour"), (AAPL, "3 D", "1 hour"),
                                      (MSFT, "1 D", "1 hour")])
    assert served == [True, True, False, True] and codes == [162]
    assert _violations(gateway) == ["3 requests for one contract within 2 s"]


def test_window_rule(make_gateway) -> None:
    gateway = make_gateway(window_max=2)
    served, _ = _served(gateway, [(AAPL, "1 D", "1 hour"), (MSFT, "1 D", "1 hour"), (IBM, "1 D", "1 hour")])
    assert served == [True, True, False]
    assert _violations(gateway) == ["more than 2 requests within 600 s"]


def test_pacing_limited_to_small_bars(make_gateway) -> None:
    gateway = make_gateway(pacing_max_bar_s=30)
    served, codes = _served(gateway, [(AAPL, "1 D", "1 hour"), (AAPL, "1 D", "1 hour"),
                                      (AAPL, "1 D", "30 secs"), (AAPL, "1 D", "30 secs")])
    assert served == [True, True, True, False] and codes == [162]
    assert _violations(gateway) == ["identical request within 15 s"]


def test_config_routes_read_change_and_validate(gateway: ThreadedGateway) -> None:
    url = f"{gateway.control_url}/config"
    assert requests.get(url, timeout=5).json() == GatewayConfig().to_json()
    changed = requests.put(url, json={"max_clients": 1, "identical_window_s": 1}, timeout=5)
    assert changed.status_code == 200
    assert changed.json()["max_clients"] == 1 and changed.json()["identical_window_s"] == 1.0
    for bad in ({"max_clients": 0}, {"max_clients": "2"}, {"no_such_rule": 1}, {"account": "U1234567"}, [1]):
        response = requests.put(url, json=bad, timeout=5)
        assert response.status_code == 400, bad
        assert "error" in response.json()
    assert gateway.config.max_clients == 1

    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=1):
            second = ib_insync.IB()
            with pytest.raises((TimeoutError, ConnectionError)):
                await second.connectAsync("127.0.0.1", gateway.port, clientId=2, timeout=1.0)
            second.disconnect()

    run(body())
    assert [e["code"] for e in gateway.history() if e["kind"] == "reject"] == ["max-clients"]


def test_config_refuses_a_live_account_and_bad_values() -> None:
    for bad in ({"account": "U1234567"}, {"server_version_max": 99}, {"handshake_timeout_s": 0},
                {"max_clients_action": "explode"}, {"time_zone": "Mars/Olympus"}, {"pacing_enabled": "yes"}):
        with pytest.raises(ConfigError):
            GatewayConfig(**bad)


def test_update_config_through_the_threaded_gateway(gateway: ThreadedGateway) -> None:
    assert gateway.update_config(pacing_enabled=False).pacing_enabled is False
    with pytest.raises(ConfigError):
        gateway.update_config({"window_max": -5})
    assert gateway.config.window_max == 60
