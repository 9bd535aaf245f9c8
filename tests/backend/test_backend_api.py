"""Every endpoint of the contract against the backend as a process: shapes, codes, and real effects on IB."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import ib_insync
import pytest
from backend_helpers import HOST, BackendProcess, events, free_port, open_connections, past_weekday_utc, run

from ibtargets.common.faults import Delay, Silent
from ibtargets.gateway import ThreadedGateway
from ibtargets.proxy import ThreadedProxy
from support.waiting import Bound, eventually

ENVELOPE_KEYS = {"success", "data", "error"}
SYMBOL_INFO_KEYS = {"symbol", "instrument_type", "exchange", "currency", "description", "discovered_at",
                    "last_validated", "validation_count", "is_active"}
LOAD_KEYS = {"status", "operation_id", "fetched_bars", "cached_before", "merged_file", "gaps_analyzed",
             "segments_fetched", "ib_requests_made", "execution_time_seconds", "error_message"}
CONTRACT_BOUND_S = 5.0


def test_every_ib_endpoint_has_the_contract_shape(backend: BackendProcess) -> None:
    api = backend.api
    health = api.get("/health")
    assert health.status == 200 and set(health.body) == {"status", "version"} and health.body["status"] == "ok"
    for path in ("/ib/status", "/ib/health", "/ib/resilience", "/ib/config", "/ib/symbols/discovered", "/symbols"):
        answer = api.get(path)
        assert answer.status == 200 and set(answer.body) == ENVELOPE_KEYS, (path, answer.body)
        assert answer.body["success"] is True and answer.error_code == ""
    status = api.get("/ib/status").data
    assert set(status["connection"]) >= {"connected", "host", "port", "client_id", "connection_time"}
    assert set(status["connection_metrics"]) >= {"total_connections", "failed_connections", "last_connect_time",
                                                 "last_disconnect_time", "uptime_seconds"}
    assert set(status["data_metrics"]) >= {"total_requests", "successful_requests", "failed_requests",
                                           "total_bars_fetched", "success_rate"}
    assert "ib_available" in status
    health_data = api.get("/ib/health").data
    assert set(health_data) == {"healthy", "connection_ok", "data_fetching_ok", "last_successful_request",
                                "error_message"}
    config = api.get("/ib/config").data
    assert set(config) >= {"host", "port", "client_id_range", "timeout", "readonly", "rate_limit"}
    assert set(config["rate_limit"]) == {"max_requests", "period_seconds", "pacing_delay"}
    resilience = api.get("/ib/resilience").data
    assert set(resilience) == {"phase_1_systematic_validation", "phase_2_garbage_collection",
                               "phase_3_client_id_preference", "overall_resilience_score",
                               "connection_pool_health", "timestamp"}
    assert set(resilience["phase_1_systematic_validation"]) >= {"status", "validation_enabled",
                                                                "validation_method_exists", "pool_running",
                                                                "description"}
    assert set(resilience["phase_2_garbage_collection"]) >= {
        "status", "max_idle_time_seconds", "idle_connections_count", "active_connections_count",
        "connections_ready_for_cleanup", "health_check_interval", "description"}
    assert set(resilience["phase_3_client_id_preference"]) >= {
        "status", "client_ids_in_use", "using_client_id_1", "lowest_client_id_used",
        "sequential_preference_detected", "total_active_connections", "description"}
    assert set(resilience["connection_pool_health"]) == {"total_connections", "healthy_connections",
                                                         "active_connections", "pool_uptime_seconds"}
    assert dt.datetime.fromisoformat(resilience["timestamp"]).utcoffset() == dt.timedelta(0)
    discovered = api.get("/ib/symbols/discovered").data
    assert set(discovered) == {"symbols", "total_count", "instrument_types", "cache_stats"}


def test_status_reflects_the_real_pool(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    api = backend.api
    before = api.get("/ib/status").data
    assert before["connection"]["connected"] is False and before["connection_metrics"]["total_connections"] == 0
    assert api.post("/ib/symbols/discover", json={"symbol": "AAPL"}).status == 200
    after = api.get("/ib/status").data
    accepted = [e["client_id"] for e in events(gateway, "start_api")]
    assert after["connection"]["connected"] is True and after["ib_available"] is True
    assert after["connection"]["client_id"] == accepted[0] == 1
    assert after["connection"]["port"] == gateway.port
    assert after["connection_metrics"]["total_connections"] == len(accepted)
    asked = len(events(gateway, "request", type="reqContractDetails"))
    assert after["data_metrics"]["successful_requests"] == asked >= 1
    api.post("/ib/cleanup")
    closed = api.get("/ib/status").data
    assert closed["connection"]["connected"] is False and closed["connection_metrics"]["last_disconnect_time"]


def test_discovery_of_known_unknown_and_cached_symbols(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    api = backend.api
    first = api.post("/ib/symbols/discover", json={"symbol": "aapl"})
    assert first.status == 200 and set(first.data) == {"symbol_info", "cached", "discovery_time_ms"}
    info = first.data["symbol_info"]
    assert set(info) == SYMBOL_INFO_KEYS and first.data["cached"] is False
    assert (info["symbol"], info["instrument_type"], info["exchange"], info["currency"]) == (
        "AAPL", "stock", "NASDAQ", "USD")
    asked = len(events(gateway, "request", type="reqContractDetails"))
    cached = api.post("/ib/symbols/discover", json={"symbol": "AAPL"})
    assert cached.data["cached"] is True
    assert len(events(gateway, "request", type="reqContractDetails")) == asked, "a cache hit must not ask IB"
    forced = api.post("/ib/symbols/discover", json={"symbol": "AAPL", "force_refresh": True})
    assert forced.data["cached"] is False and forced.data["symbol_info"]["validation_count"] == 2
    assert len(events(gateway, "request", type="reqContractDetails")) == asked + 1
    unknown = api.post("/ib/symbols/discover", json={"symbol": "XXXX"})
    assert unknown.status == 200 and unknown.data["symbol_info"] is None
    assert events(gateway, "error_sent", code=200), "the unknown symbol was really asked"
    assert api.post("/ib/symbols/discover", json={"symbol": "EURUSD"}).data["symbol_info"]["instrument_type"] == "forex"
    assert api.post("/ib/symbols/discover", json={"symbol": "SPX"}).data["symbol_info"]["instrument_type"] == "index"
    listing = api.get("/ib/symbols/discovered").data
    assert listing["total_count"] == 3 and listing["instrument_types"] == {"stock": 1, "forex": 1, "index": 1}
    assert [s["symbol"] for s in api.get("/ib/symbols/discovered", params={"instrument_type": "forex"}).data[
        "symbols"]] == ["EURUSD"]
    bad = api.post("/ib/symbols/discover", json={"symbol": "../etc"})
    assert bad.status == 400 and bad.body["success"] is False and bad.error_code == "INVALID-INPUT"
    assert api.post("/ib/symbols/discover", json={}).status == 422


def test_gateway_down_answers_503_with_ib_codes_quickly(make_backend: Callable[..., BackendProcess]) -> None:
    api = make_backend(free_port()).api
    health = api.get("/ib/health")
    assert health.status == 503 and health.error_code == "IB-UNHEALTHY" and health.body["success"] is False
    assert health.data["healthy"] is False and "connect" in health.data["error_message"]
    discover = api.post("/ib/symbols/discover", json={"symbol": "AAPL"})
    assert discover.status == 503 and discover.error_code.startswith("IB-") and discover.error_message
    load = api.post("/data/load", json={"symbol": "AAPL", "timeframe": "1d", "mode": "tail"})
    assert load.status == 503 and load.error_code.startswith("IB-")
    assert load.data["status"] == "failed" and load.data["fetched_bars"] == 0 and load.data["ib_requests_made"] == 0
    for answer in (health, discover, load):
        assert answer.elapsed_s < CONTRACT_BOUND_S


def test_a_silent_gateway_fails_requests_instead_of_hanging(proxied_backend: BackendProcess,
                                                            proxy: ThreadedProxy) -> None:
    api = proxied_backend.api
    assert api.post("/ib/symbols/discover", json={"symbol": "AAPL"}).status == 200
    proxy.apply(Silent())
    discover = api.post("/ib/symbols/discover", json={"symbol": "MSFT"})
    assert discover.status == 503 and discover.error_code == "IB-SILENT", discover.body
    health = api.get("/ib/health")
    assert health.status == 503 and health.data["healthy"] is False
    assert discover.elapsed_s < CONTRACT_BOUND_S and health.elapsed_s < CONTRACT_BOUND_S


def test_config_put_sends_new_connections_to_the_new_gateway(backend: BackendProcess, gateway: ThreadedGateway,
                                                             make_gateway: Callable[..., ThreadedGateway]) -> None:
    api = backend.api
    api.post("/ib/symbols/discover", json={"symbol": "AAPL"})
    other = make_gateway()
    unchanged = api.call("PUT", "/ib/config", {})
    assert unchanged.status == 200 and unchanged.data["reconnect_required"] is False
    changed = api.call("PUT", "/ib/config", {"port": other.port, "client_id": 3})
    assert changed.status == 200 and changed.data["reconnect_required"] is True
    assert changed.data["previous_config"]["port"] == gateway.port
    assert changed.data["new_config"]["port"] == other.port and api.get("/ib/config").data["port"] == other.port
    assert api.get("/ib/config").data["client_id_range"]["min"] == 3
    assert api.post("/ib/symbols/discover", json={"symbol": "AAPL", "force_refresh": True}).status == 200
    assert [e["client_id"] for e in events(other, "start_api")] == [3]
    eventually(lambda: not open_connections(gateway), within=Bound.exactly(2.0), describe="old gateway's connection closed")
    assert api.call("PUT", "/ib/config", {"port": 0}).status == 422
    assert api.call("PUT", "/ib/config", {"port": 70000}).status == 422


def test_cleanup_closes_every_connection_and_counts_them(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    api = backend.api
    gateway.apply(Delay(latency_ms=300, request_types=("reqContractDetails",)))

    async def concurrent_discovers() -> None:
        loop = asyncio.get_running_loop()
        calls = [loop.run_in_executor(None, lambda s=s: api.post("/ib/symbols/discover",
                                                                 json={"symbol": s, "force_refresh": True}))
                 for s in ("AAPL", "MSFT", "IBM")]
        await asyncio.gather(*calls)

    run(concurrent_discovers())
    opened = len(open_connections(gateway))
    assert opened >= 2
    cleanup = api.post("/ib/cleanup")
    assert cleanup.status == 200
    data = cleanup.data
    assert set(data) == {"success", "message", "connections_closed", "pool_stats_before", "pool_stats_after"}
    assert data["connections_closed"] == opened == data["pool_stats_before"]["total_connections"]
    assert data["pool_stats_after"]["total_connections"] == 0
    eventually(lambda: not open_connections(gateway), within=Bound.exactly(2.0), describe="the gateway sees every close")


def _bars_from_gateway(port: int, end: dt.datetime, duration: str, bar_size: str) -> list[tuple]:
    """The same historical request the backend made, asked independently with ib_insync."""
    async def body() -> list[tuple]:
        ib = ib_insync.IB()
        try:
            await ib.connectAsync(HOST, port, clientId=900, timeout=4)
            bars = await ib.reqHistoricalDataAsync(ib_insync.Stock("AAPL", "SMART", "USD"), end, duration,
                                                   bar_size, "TRADES", False, formatDate=2, timeout=10)
            return [(b.open, b.high, b.low, b.close, b.volume) for b in bars]
        finally:
            ib.disconnect()
    return run(body())


def test_a_sync_load_caches_exactly_what_the_gateway_served(backend: BackendProcess,
                                                            gateway: ThreadedGateway) -> None:
    api = backend.api
    end = past_weekday_utc(20)
    start = end - dt.timedelta(hours=20)
    load = api.post("/data/load", json={"symbol": "AAPL", "timeframe": "1h", "mode": "full",
                                        "start_date": start.isoformat(), "end_date": end.isoformat()})
    assert load.status == 200 and set(load.data) == LOAD_KEYS, load.body
    result = load.data
    assert result["status"] == "success" and result["segments_fetched"] == 1
    assert result["ib_requests_made"] == len(events(gateway, "request", type="reqHistoricalData")) == 1
    cached = api.get("/data/AAPL/1h")
    assert cached.status == 200 and set(cached.data) == {"dates", "ohlcv", "metadata"}
    gateway.update_config(pacing_enabled=False)  # the same request again within 15 s is a pacing violation
    served = _bars_from_gateway(gateway.port, end, "72000 S", "1 hour")
    assert [tuple(row) for row in cached.data["ohlcv"]] == served and served
    assert result["fetched_bars"] == len(served) == cached.data["metadata"]["points"]
    assert cached.data["metadata"]["symbol"] == "AAPL" and cached.data["metadata"]["timeframe"] == "1h"
    local = api.post("/data/load", json={"symbol": "AAPL", "timeframe": "1h", "mode": "local"})
    assert local.data["status"] == "success" and local.data["ib_requests_made"] == 0
    assert local.data["cached_before"] == len(served)
    assert len(events(gateway, "request", type="reqHistoricalData", client_id=1)) == 1, "local mode must not ask IB"
    assert "AAPL" in [s["symbol"] for s in api.get("/symbols").data]


def test_a_long_range_is_chunked_into_real_requests(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).replace(microsecond=0)
    load = backend.api.post("/data/load", json={"symbol": "MSFT", "timeframe": "1d", "mode": "full",
                                                "start_date": (end - dt.timedelta(days=500)).isoformat(),
                                                "end_date": end.isoformat()})
    assert load.status == 200 and load.data["status"] == "success"
    sent = events(gateway, "request", type="reqHistoricalData")
    assert load.data["ib_requests_made"] == load.data["segments_fetched"] == len(sent) == 2
    cached = backend.api.get("/data/MSFT/1d").data
    assert load.data["fetched_bars"] == cached["metadata"]["points"], "overlapping chunks count each bar once"
    assert cached["dates"][0] >= (end - dt.timedelta(days=500)).date().isoformat(), "nothing before the range"


def test_an_async_load_is_polled_and_cancelled(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    api = backend.api
    done = api.post("/data/load", params={"async_mode": "true"}, json={"symbol": "IBM", "timeframe": "1d",
                                                                       "mode": "tail"})
    assert done.status == 200 and done.data["status"] == "started" and set(done.data) == LOAD_KEYS
    op_id = done.data["operation_id"]
    finished = eventually(lambda: (lambda d: d if d["status"] == "completed" else None)(
        api.get(f"/operations/{op_id}").data), within=Bound.exactly(10), describe="async load completed")
    assert set(finished) >= {"operation_id", "operation_type", "status", "created_at", "started_at",
                             "completed_at", "progress", "metadata", "error_message", "result_summary"}
    summary = finished["result_summary"]
    assert summary["status"] == "success" and summary["symbol"] == "IBM" and summary["mode"] == "tail"
    assert summary["fetched_bars"] == api.get("/data/IBM/1d").data["metadata"]["points"] > 0
    assert finished["progress"]["percentage"] == 100.0

    gateway.apply(Delay(latency_ms=20000, request_types=("reqHistoricalData",)))
    asked = len(events(gateway, "request", type="reqHistoricalData"))
    slow = api.post("/data/load", params={"async_mode": "true"}, json={"symbol": "SPY", "timeframe": "1d",
                                                                       "mode": "tail"}).data["operation_id"]
    eventually(lambda: len(events(gateway, "request", type="reqHistoricalData")) > asked,
               within=Bound.exactly(10), describe="the slow request reached the gateway")
    assert api.get(f"/operations/{slow}").data["status"] == "running"
    cancelled = api.call("DELETE", f"/operations/{slow}")
    assert cancelled.status == 200 and cancelled.data["status"] == "cancelled"
    assert cancelled.data["result_summary"]["fetched_bars"] == 0, "a cancelled load reports no bars it did not get"
    assert api.get("/data/SPY/1d").status == 404
    again = api.call("DELETE", f"/operations/{slow}")
    assert again.status == 409 and again.error_code == "OPERATION-NOT-CANCELLABLE"
    missing = api.get("/operations/op_nope")
    assert missing.status == 404 and missing.error_code == "OPERATION-NOT-FOUND"


def test_pacing_violations_are_retried_with_backoff(make_gateway: Callable[..., ThreadedGateway],
                                                    make_backend: Callable[..., BackendProcess]) -> None:
    gateway = make_gateway(same_contract_max=2, same_contract_window_s=1.0)
    api = make_backend(gateway.port, REFBACKEND_PACING_BACKOFF_S="0.4", REFBACKEND_PACING_RETRIES="3").api
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).replace(microsecond=0)
    load = api.post("/data/load", json={"symbol": "AAPL", "timeframe": "1d", "mode": "full",
                                        "start_date": (end - dt.timedelta(days=700)).isoformat(),
                                        "end_date": end.isoformat()})
    assert load.status == 200 and load.data["status"] == "success", load.body
    violations = events(gateway, "pacing_violation")
    sent = events(gateway, "request", type="reqHistoricalData")
    assert violations, "the strict gateway must have refused at least one request"
    assert load.data["ib_requests_made"] == len(sent) == load.data["segments_fetched"] + len(violations)


def test_an_unknown_symbol_load_is_a_clear_not_found(backend: BackendProcess) -> None:
    load = backend.api.post("/data/load", json={"symbol": "XXXX", "timeframe": "1d", "mode": "tail"})
    assert load.status == 404 and load.error_code == "SYMBOL-NOT-FOUND" and load.data["status"] == "failed"


@pytest.mark.parametrize("method, path, body, status, code", [
    ("POST", "/data/load", {"symbol": "AAPL", "timeframe": "7x"}, 422, None),
    ("POST", "/data/load", {"symbol": "AAPL", "mode": "everything"}, 422, None),
    ("POST", "/data/load", {"symbol": "AAPL", "mode": "full", "start_date": "2024-02-01",
                            "end_date": "2024-01-01"}, 400, "INVALID-INPUT"),
    ("POST", "/data/load", {"symbol": "AAPL", "mode": "local"}, 404, "DATA-NOT-FOUND"),
    ("GET", "/data/AAPL/1d", None, 404, "DATA-NOT-FOUND"),
    ("GET", "/data/AAPL/7x", None, 422, None),
    ("GET", "/no/such/route", None, 404, "NOT-FOUND"),
])
def test_bad_requests_get_clear_errors(backend: BackendProcess, method: str, path: str, body: dict | None,
                                       status: int, code: str | None) -> None:
    answer = backend.api.call(method, path, body)
    assert answer.status == status, answer.body
    if code:
        assert answer.body["success"] is False and answer.error_code == code and answer.error_message
