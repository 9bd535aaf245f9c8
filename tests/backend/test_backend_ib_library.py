"""The reference backend on either IB client library (IB_RESILIENCE_IB_LIBRARY: ib_insync or ib_async)."""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Callable, Iterator

import pytest
from backend_helpers import HOST, BackendProcess, events, open_connections, past_weekday_utc

from ibtargets.common.ibclient import ENV_VAR, LIBRARIES
from ibtargets.gateway import ThreadedGateway
from support.drivers.ib import IbDriver
from support.waiting import Bound, eventually


@pytest.fixture
def driver(gateway: ThreadedGateway) -> Iterator[IbDriver]:
    """The suite's own IB driver on ``gateway`` (someone else's client IDs, and the bars oracle)."""
    the_driver = IbDriver(HOST, gateway.port)
    yield the_driver
    the_driver.close()


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_backend_keeps_its_contract_on_either_library(library: str, make_backend: Callable[..., BackendProcess],
                                                          gateway: ThreadedGateway, driver: IbDriver) -> None:
    driver.squat(1)  # the preferred ID is taken: 326 must move the backend to ID 2 at once
    backend = make_backend(gateway.port, **{ENV_VAR: library})
    api = backend.api
    phase = api.get("/ib/resilience").data["phase_3_client_id_preference"]
    assert phase["client_ids_in_use"] == [2] and phase["client_ids_refused_326"] == [1], phase
    assert [e["client_id"] for e in events(gateway, "error_sent", code=326)] == [1]
    health = api.get("/ib/health")
    assert health.status == 200 and health.data["healthy"] is True, health.body
    assert api.post("/ib/symbols/discover", json={"symbol": "AAPL"}).data["symbol_info"]["instrument_type"] == "stock"
    unknown = api.post("/ib/symbols/discover", json={"symbol": "XXXX"})  # IB error 200: a RequestError
    assert unknown.status == 200 and unknown.data["symbol_info"] is None, unknown.body
    end = past_weekday_utc(20)
    load = api.post("/data/load", json={"symbol": "MSFT", "timeframe": "1h", "mode": "full",
                                        "start_date": (end - dt.timedelta(hours=20)).isoformat(),
                                        "end_date": end.isoformat()})
    assert load.status == 200 and load.data["status"] == "success" and load.data["ib_requests_made"] == 1, load.body
    gateway.update_config(pacing_enabled=False)  # the oracle asks the same bars again at once
    served = driver.historical_bars(900, "MSFT", "72000 S", "1 hour", end=end.strftime("%Y%m%d %H:%M:%S UTC"),
                                    use_rth=False)
    cached = api.get("/data/MSFT/1h").data
    assert served and [tuple(row) for row in cached["ohlcv"]] == [(b.open, b.high, b.low, b.close, b.volume)
                                                                  for b in served]
    assert open_connections(gateway)
    backend.process.signal(signal.SIGTERM)
    eventually(lambda: not [c for c in open_connections(gateway) if c["client_id"] == 2], within=Bound.exactly(5.0),
               describe="the backend's IB connection closed on SIGTERM")
    eventually(lambda: not backend.process.running(), within=Bound.exactly(5.0), describe="the server exits")
    assert backend.process.proc.returncode == 0
    log = backend.log()
    assert f"IB client library: {library} " in log, log[-3000:]
    assert "Traceback" not in log and "RuntimeWarning" not in log and "never retrieved" not in log, log[-3000:]
