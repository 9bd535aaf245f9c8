"""Transport faults seen by a real ib_insync client through the proxy (simulator upstream when available)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from ib_insync import IB
from proxy_fakes import CONNECT_TIMEOUT_S

from ibtargets.common.faults import Bandwidth, Blackhole, Latency, Refuse, Reset, Silent, Slicer
from ibtargets.proxy import ThreadedProxy
from support.waiting import Bound, eventually

pytestmark = pytest.mark.timeout(60)


def events(proxy: ThreadedProxy, kind: str, since: int = 0, **match: Any) -> list[dict[str, Any]]:
    """History events of ``kind`` whose fields equal ``match``."""
    return [e for e in proxy.history(since) if e["kind"] == kind
            and all(e.get(k) == v for k, v in match.items())]


def round_trip_s(ib: IB) -> float:
    started = time.monotonic()
    assert ib.reqCurrentTime() is not None
    return time.monotonic() - started


def wait_disconnected(ib: IB, fired: list[float], within_s: float = 5.0) -> None:
    def probe() -> bool:
        try:
            ib.sleep(0.02)  # lets ib_insync's loop notice the socket going away
        except ConnectionError:  # ib_insync raises "Socket disconnect" out of the sleep it interrupts
            pass
        return bool(fired)
    eventually(probe, Bound.exactly(within_s), "ib_insync's disconnectedEvent")


def on_disconnect(ib: IB) -> list[float]:
    fired: list[float] = []
    ib.disconnectedEvent += lambda: fired.append(time.monotonic())
    return fired


def test_no_fault_means_byte_identical_traffic(upstream_port: int, make_proxy: Callable[..., ThreadedProxy],
                                               make_tap, connect_ib):
    gateway_side = make_tap(upstream_port)
    proxy = make_proxy(gateway_side.port)
    client_side = make_tap(proxy.port)
    ib = connect_ib(client_side.port)
    for _ in range(3):
        ib.reqCurrentTime()
    ib.reqPositions()
    ib.disconnect()
    eventually(lambda: all(c["state"] == "closed" for c in proxy.connections()), Bound.exactly(5), "the proxied connection closed")

    def same_bytes() -> bool:
        return client_side.recorded() == gateway_side.recorded()
    eventually(same_bytes, Bound.exactly(5), "bytes seen on the client side equal bytes seen on the gateway side")
    sent, received = client_side.recorded()
    assert sent.startswith(b"API\0") and len(received) > 50
    assert len(events(proxy, "request", type="reqCurrentTime")) == 3
    assert events(proxy, "response", type="currentTime", forwarded=True)


def test_silent_times_requests_out_while_connected_and_heals(proxy: ThreadedProxy, connect_ib):
    ib = connect_ib(proxy.port)
    with proxy.fault(Silent()):
        with pytest.raises(TimeoutError):
            ib.reqCurrentTime()
        assert ib.isConnected(), "silent must keep the socket open: the seed's silent connection"
    assert ib.reqCurrentTime() is not None
    [dropped] = events(proxy, "response", forwarded=False)
    assert dropped["answers"] == "reqCurrentTime"


def test_silent_on_one_request_type_lets_other_answers_through(proxy: ThreadedProxy, connect_ib):
    ib = connect_ib(proxy.port)
    with proxy.fault(Silent(request_types=("reqCurrentTime",))):
        with pytest.raises(TimeoutError):
            ib.reqCurrentTime()
        ib.reqPositions()  # answered (positionEnd), within RequestTimeout
    assert {e["answers"] for e in events(proxy, "response", forwarded=False)} == {"reqCurrentTime"}
    assert events(proxy, "response", answers="reqPositions", forwarded=True)


def test_silent_scoped_to_one_client_id_leaves_another_working(proxy: ThreadedProxy, connect_ib, client_id):
    quiet_id, other_id = client_id(), client_id()
    quiet, other = connect_ib(proxy.port, quiet_id), connect_ib(proxy.port, other_id)
    with proxy.fault(Silent(client_id=quiet_id)):
        with pytest.raises(TimeoutError):
            quiet.reqCurrentTime()
        assert other.reqCurrentTime() is not None
        assert quiet.isConnected()
    assert {e["client_id"] for e in events(proxy, "response", forwarded=False)} == {quiet_id}


def test_silent_before_start_api_keeps_the_connect_sync_from_completing(proxy: ThreadedProxy, connect_ib):
    with proxy.fault(Silent()):
        with pytest.raises(TimeoutError):
            connect_ib(proxy.port, timeout_s=1.0)
    [handshake] = events(proxy, "handshake")
    assert handshake["version"] is not None, "the handshake reply itself passes"
    assert not events(proxy, "response", forwarded=True)


def test_latency_adds_the_measured_delay(proxy: ThreadedProxy, connect_ib):
    ib = connect_ib(proxy.port)
    base_s = statistics.median(round_trip_s(ib) for _ in range(5))
    with proxy.fault(Latency(latency_ms=250, direction="downstream")):
        one_way_s = statistics.median(round_trip_s(ib) for _ in range(3))
    with proxy.fault(Latency(latency_ms=150, direction="both")):
        both_s = statistics.median(round_trip_s(ib) for _ in range(3))
    # Lower bounds are the fault's promise; the upper ones only catch delays applied twice or more.
    assert 0.245 <= one_way_s - base_s < 0.49, (base_s, one_way_s)
    assert 0.295 <= both_s - base_s < 0.59, (base_s, both_s)


def test_reset_fires_disconnected_event(proxy: ThreadedProxy, connect_ib):
    ib = connect_ib(proxy.port)
    fired = on_disconnect(ib)
    proxy.apply(Reset())
    wait_disconnected(ib, fired)
    assert not ib.isConnected()
    assert proxy.faults() == [], "reset is one-shot"
    assert events(proxy, "disconnect", side="proxy", reason="reset fault")


def test_refuse_fails_connect_at_once_keeps_existing_and_heals(proxy: ThreadedProxy, connect_ib):
    existing = connect_ib(proxy.port)
    with proxy.fault(Refuse()):
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            connect_ib(proxy.port)
        assert time.monotonic() - started < CONNECT_TIMEOUT_S
        assert existing.reqCurrentTime() is not None
    assert connect_ib(proxy.port).reqCurrentTime() is not None


def test_refuse_without_keep_existing_drops_open_connections(proxy: ThreadedProxy, connect_ib):
    ib = connect_ib(proxy.port)
    fired = on_disconnect(ib)
    with proxy.fault(Refuse(keep_existing=False)):
        wait_disconnected(ib, fired)
    assert connect_ib(proxy.port).reqCurrentTime() is not None


def test_blackhole_makes_connect_time_out_and_spares_open_connections(proxy: ThreadedProxy, connect_ib):
    existing = connect_ib(proxy.port)
    upstream_before = len(events(proxy, "upstream_connected"))
    with proxy.fault(Blackhole()):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            connect_ib(proxy.port, timeout_s=1.0)
        assert time.monotonic() - started < 1.0 + 1.0
        assert existing.reqCurrentTime() is not None
    assert len(events(proxy, "upstream_connected")) == upstream_before, "nothing reached the gateway"
    assert connect_ib(proxy.port).reqCurrentTime() is not None


def test_bandwidth_limit_still_delivers_whole_frames(proxy: ThreadedProxy, connect_ib):
    with proxy.fault(Bandwidth(rate_kbps=4, direction="both")):
        ib = connect_ib(proxy.port)
        assert ib.reqCurrentTime() is not None


def test_slicer_splits_frames_and_ib_insync_reassembles_them(proxy: ThreadedProxy, connect_ib):
    with proxy.fault(Slicer(max_chunk_bytes=3, delay_us=100, direction="both")):
        ib = connect_ib(proxy.port)
        assert ib.reqCurrentTime() is not None
        ib.reqPositions()


def test_silent_on_contract_details_drops_its_data_end_and_errors(simulator, proxy: ThreadedProxy, connect_ib):
    if simulator is None:
        pytest.skip("needs the gateway simulator (contract details); the byte-level fake has none")
    from ib_insync import Stock
    ib = connect_ib(proxy.port)
    with proxy.fault(Silent(request_types=("reqContractDetails",))):
        with pytest.raises(TimeoutError):
            ib.reqContractDetails(Stock("AAPL", "SMART", "USD"))
        with pytest.raises(TimeoutError):
            ib.reqContractDetails(Stock("XXXX", "SMART", "USD"))  # its answer is error 200
        assert ib.reqHistoricalData(Stock("AAPL", "SMART", "USD"), "", "2 D", "1 hour", "TRADES", True)
    dropped = events(proxy, "response", forwarded=False)
    assert {e["type"] for e in dropped} >= {"contractData", "contractDataEnd", "error"}
    assert {e["answers"] for e in dropped} == {"reqContractDetails"}
    assert [e["error_code"] for e in dropped if e["type"] == "error"] == [200]
    assert ib.reqContractDetails(Stock("AAPL", "SMART", "USD"))
