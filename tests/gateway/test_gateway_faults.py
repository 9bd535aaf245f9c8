"""Every gateway fault has its effect on a real ib_insync client, and heals."""

from __future__ import annotations

import asyncio
import threading
import time

import ib_insync
import pytest
import requests
from gateway_helpers import ErrorLog, IbapiApp, bounded, ib_session, run, until

from ibtargets.common.control_client import ControlClient, ControlError
from ibtargets.common.faults import (
    ConnectivityLost,
    Delay,
    DropClients,
    IgnoreStartApi,
    NoHandshake,
    PushError,
    Restart,
    Silent,
    Unanswered,
)
from ibtargets.gateway import ThreadedGateway
from support.waiting import Bound, eventually

AAPL = ib_insync.Stock("AAPL", "SMART", "USD")
SILENCE_S = 1.0


def _events(gateway: ThreadedGateway, kind: str, **match) -> list[dict]:
    return [e for e in gateway.history() if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


async def _is_silent(ib: ib_insync.IB) -> bool:
    try:
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), SILENCE_S)
    except TimeoutError:
        return True
    return False


def test_no_handshake_over_http_times_out_the_connect_then_heals(gateway: ThreadedGateway) -> None:
    response = requests.post(f"{gateway.control_url}/faults", json={"kind": "no_handshake"}, timeout=5)
    assert response.status_code == 201 and response.json()["name"] == "no_handshake"

    async def body() -> None:
        ib = ib_insync.IB()
        with pytest.raises(asyncio.TimeoutError):
            await ib.connectAsync("127.0.0.1", gateway.port, clientId=1, timeout=1.0)
        ib.disconnect()
        assert _events(gateway, "handshake") == []
        assert requests.delete(f"{gateway.control_url}/faults/no_handshake", timeout=5,
                               headers={"Content-Type": "application/json"}).status_code == 204
        async with ib_session(ib_insync, gateway.port, client_id=2) as healed:
            await bounded(healed.reqCurrentTimeAsync())

    run(body())
    assert requests.get(f"{gateway.control_url}/faults", timeout=5).json() == {"faults": []}


def test_a_held_handshake_is_answered_when_the_fault_heals(gateway: ThreadedGateway) -> None:
    gateway.apply(NoHandshake())
    app = IbapiApp()  # ibapi waits for the handshake forever, like a client behind TWS's accept dialog
    connected = threading.Event()

    def connect() -> None:
        app.connect("127.0.0.1", gateway.port, 31)
        connected.set()

    threading.Thread(target=connect, name="ibapi-connect", daemon=True).start()
    try:
        eventually(lambda: _events(gateway, "connect"), Bound.exactly(5), "the gateway accepted the socket")
        assert not connected.is_set()
        gateway.heal("no_handshake")
        assert connected.wait(5), "ibapi connect() returned after the heal"
        assert app.isConnected()
    finally:
        app.disconnect()


def test_ignore_start_api_with_control_client(gateway: ThreadedGateway, control: ControlClient) -> None:
    async def body() -> None:
        with control.fault(IgnoreStartApi()):
            ib = ib_insync.IB()
            with pytest.raises(asyncio.TimeoutError):
                await ib.connectAsync("127.0.0.1", gateway.port, clientId=3, timeout=1.0)
            ib.disconnect()
        async with ib_session(ib_insync, gateway.port, client_id=3) as healed:
            await bounded(healed.reqCurrentTimeAsync())

    run(body())
    ignored = _events(gateway, "request", type="startApi", answered=False)
    assert len(ignored) == 1 and ignored[0]["fault"] == "ignore_start_api"


def test_unanswered_current_time_is_the_silent_connection(gateway: ThreadedGateway, control: ControlClient) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=4) as ib:
            control.apply(Unanswered(request_types=("reqCurrentTime",)))
            assert await _is_silent(ib)
            assert ib.isConnected()
            details = await bounded(ib.reqContractDetailsAsync(AAPL))  # other requests still answered
            assert len(details) == 1
            control.heal("unanswered")
            await bounded(ib.reqCurrentTimeAsync())

    run(body())
    swallowed = _events(gateway, "request", type="reqCurrentTime", answered=False)
    assert len(swallowed) == 1 and swallowed[0]["fault"] == "unanswered"
    assert len(_events(gateway, "response", type="reqCurrentTime")) == 1


def test_unanswered_scoped_to_one_client_id(gateway: ThreadedGateway) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=41) as silent, \
                ib_session(ib_insync, gateway.port, client_id=42) as other:
            gateway.apply(Unanswered(client_id=41))
            assert await _is_silent(silent)
            await bounded(other.reqCurrentTimeAsync())

    run(body())


def test_delay_makes_answers_late_and_heals(gateway: ThreadedGateway, control: ControlClient) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=5) as ib:
            control.apply(Delay(latency_ms=400, request_types=("reqCurrentTime",)))
            started = time.monotonic()
            await bounded(ib.reqCurrentTimeAsync())
            assert time.monotonic() - started >= 0.4
            control.heal("delay")
            await bounded(ib.reqCurrentTimeAsync())

    run(body())
    delays = [e["delay_ms"] for e in _events(gateway, "request", type="reqCurrentTime")]
    assert delays == [400, 0]


def test_error_push_reaches_clients_in_their_layout(gateway: ThreadedGateway, control: ControlClient) -> None:
    app = IbapiApp()  # version 157: 5-field error
    app.start(gateway.port, client_id=61)

    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=62) as ib:  # version 176: 6 fields
            errors = ErrorLog(ib)
            control.apply(PushError(code=1100))
            await until(lambda: 1100 in errors.codes(), 5, "1100 at ib_insync")
            assert (-1, 1100, "Connectivity between IB and Trader Workstation has been lost.") in errors.entries
            control.apply(PushError(code=2103, message="Market data farm connection is broken:usfarm",
                                    client_id=61))
            await bounded(ib.reqCurrentTimeAsync())  # anything pushed before this answer has arrived
            assert 2103 not in errors.codes()

    try:
        run(body())
        app.wait(lambda e: e[0] == "error" and e[2] == 1100, "1100 at ibapi")
        app.wait(lambda e: e[0] == "error" and e[2] == 2103, "scoped 2103 at ibapi")
    finally:
        app.stop()
    assert control.faults() == []  # one-shot


def test_connectivity_lost_silences_and_restores(gateway: ThreadedGateway, control: ControlClient) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=7) as ib:
            errors = ErrorLog(ib)
            control.apply(ConnectivityLost(restored_code=1102))
            await until(lambda: {1100, 2103, 2105} <= set(errors.codes()), 5, "1100 and farms broken")
            assert await _is_silent(ib)
            assert ib.isConnected()
            control.heal("connectivity_lost")
            await until(lambda: {1102, 2104, 2106} <= set(errors.codes()), 5, "1102 and farms OK")
            await bounded(ib.reqCurrentTimeAsync())

    run(body())


def test_restart_drops_refuses_then_accepts_again(gateway: ThreadedGateway, control: ControlClient) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=8) as ib:
            dropped = asyncio.Event()
            ib.disconnectedEvent += dropped.set
            control.apply(Restart(down_s=2.0))
            await bounded(dropped.wait())
            probe = ib_insync.IB()
            with pytest.raises(ConnectionRefusedError):
                await probe.connectAsync("127.0.0.1", gateway.port, clientId=9, timeout=1.0)
            probe.disconnect()

        async def connect_again() -> bool:
            again = ib_insync.IB()
            try:
                await again.connectAsync("127.0.0.1", gateway.port, clientId=10, timeout=1.0)
                return True
            except ConnectionRefusedError:
                return False
            finally:
                again.disconnect()

        deadline = time.monotonic() + 10
        while not await connect_again():
            assert time.monotonic() < deadline, "gateway accepted again within 10 s"
            await asyncio.sleep(0.1)

    run(body())
    healed = _events(gateway, "fault_healed")
    assert len(healed) == 1 and healed[0]["auto"] is True
    assert control.faults() == []
    closed = [c for c in gateway.connections() if c["client_id"] == 8]
    assert closed[0]["close_reason"] == "restart"


def test_restart_healed_early_accepts_at_once(gateway: ThreadedGateway) -> None:
    gateway.apply(Restart(down_s=60))

    async def body() -> None:
        probe = ib_insync.IB()
        with pytest.raises(ConnectionRefusedError):
            await probe.connectAsync("127.0.0.1", gateway.port, clientId=11, timeout=1.0)
        probe.disconnect()
        gateway.heal("restart")
        async with ib_session(ib_insync, gateway.port, client_id=12) as ib:
            await bounded(ib.reqCurrentTimeAsync())

    run(body())


def test_drop_clients_all_or_one(gateway: ThreadedGateway, control: ControlClient) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=13) as a, \
                ib_session(ib_insync, gateway.port, client_id=14) as b:
            control.apply(DropClients(client_id=13))
            await until(lambda: not a.isConnected(), 5, "client 13 dropped")
            await bounded(b.reqCurrentTimeAsync())
            assert b.isConnected()
            control.apply(DropClients())
            await until(lambda: not b.isConnected(), 5, "client 14 dropped")
        async with ib_session(ib_insync, gateway.port, client_id=13) as back:
            await bounded(back.reqCurrentTimeAsync())

    run(body())
    # Wait for all three closes: the last client's close reaches the gateway just after the session ends.
    closed = lambda: [(c["client_id"], c["close_reason"]) for c in gateway.connections() if c["state"] == "closed"]  # noqa: E731
    reasons = eventually(lambda: len(closed()) == 3 and closed(), Bound.exactly(5), "every client closed")
    assert reasons == [(13, "drop_clients"), (14, "drop_clients"), (13, "client closed")]


def test_apply_and_heal_are_idempotent(gateway: ThreadedGateway, control: ControlClient) -> None:
    fault = Unanswered(request_types=("reqCurrentTime",))
    control.apply(fault)
    control.apply(fault)
    assert len(control.faults()) == 1 and len(_events(gateway, "fault_applied")) == 1
    control.apply(Unanswered(request_types=("reqHistoricalData",)))  # same name: replaces
    assert control.faults()[0]["attributes"]["request_types"] == ["reqHistoricalData"]
    control.heal("unanswered")
    control.heal("unanswered")
    control.heal("never-applied")
    assert control.faults() == []
    control.apply(Delay(name="slow"))
    control.apply(IgnoreStartApi())
    control.reset()
    assert control.faults() == []
    assert len(_events(gateway, "fault_healed")) == 3


def test_control_api_refuses_bad_input(gateway: ThreadedGateway, control: ControlClient) -> None:
    url = gateway.control_url
    assert requests.post(f"{url}/faults", json={"kind": "meltdown"}, timeout=5).status_code == 400
    assert requests.post(f"{url}/faults", json={"kind": "restart", "client_id": 3}, timeout=5).status_code == 400
    assert requests.post(f"{url}/faults", json={"kind": "delay", "attributes": {"latency_ms": -1}},
                         timeout=5).status_code == 400
    assert requests.post(f"{url}/faults", data=b"\xff{", timeout=5,
                         headers={"Content-Type": "application/json"}).status_code == 400
    with pytest.raises(ControlError, match="unknown gateway fault kind"):
        control.apply(Silent())  # a proxy-plane fault
    assert control.faults() == []
    assert control.health() == {"status": "ok", "role": "gateway"}
