"""Graceful shutdown closes every IB connection within 2 s; the server can be started after a test patch."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

import pytest
from backend_helpers import BackendProcess, open_connections

from ibtargets.common.faults import Delay
from ibtargets.gateway import ThreadedGateway
from support.waiting import Bound, eventually

CLOSE_WITHIN_S = 2.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_closes_every_ib_connection_within_2_s(make_backend: Callable[..., BackendProcess],
                                                        gateway: ThreadedGateway, signum: int) -> None:
    backend = make_backend(gateway.port)
    api = backend.api
    for symbol in ("AAPL", "MSFT"):
        assert api.post("/ib/symbols/discover", json={"symbol": symbol}).status == 200
    gateway.apply(Delay(latency_ms=30000, request_types=("reqHistoricalData",)))
    started = api.post("/data/load", params={"async_mode": "true"}, json={"symbol": "AAPL", "mode": "tail"})
    op_id = started.data["operation_id"]
    eventually(lambda: api.get(f"/operations/{op_id}").data["progress"].get("ib_requests_made"),
               within=Bound.exactly(10), describe="a load holding a connection")
    assert open_connections(gateway), "connections to close"
    signalled = time.monotonic()
    backend.process.signal(signum)
    eventually(lambda: not open_connections(gateway), within=Bound.exactly(5.0), describe="every IB connection closed")
    last_close = max(c["disconnected_mono"] for c in gateway.connections())
    assert last_close - signalled <= CLOSE_WITHIN_S, f"closed {last_close - signalled:.2f} s after the signal"
    eventually(lambda: not backend.process.running(), within=Bound.exactly(5.0), describe="the server exits")
    assert backend.process.proc.returncode == 0
    log = backend.log()
    assert "Traceback" not in log and "RuntimeWarning" not in log and "never retrieved" not in log, log[-3000:]


def test_a_test_side_patch_applied_before_start_takes_effect(make_backend: Callable[..., BackendProcess],
                                                             gateway: ThreadedGateway) -> None:
    code = ("import ibtargets.refbackend.resilience as r; r.compute_score = lambda *phases: 42.0; "
            "from ibtargets.refbackend.cli import main; raise SystemExit(main(['serve', '--port', '0']))")
    backend = make_backend(gateway.port, argv=[sys.executable, "-c", code])
    assert backend.api.score() == 42.0
