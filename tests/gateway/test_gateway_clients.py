"""The three real IB client libraries connect to the simulator and get IB's answers and reactions."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import ib_async
import ib_insync
import pytest
from gateway_helpers import ErrorLog, IbapiApp, bounded, ib_session, run, stock, until

from ibtargets.gateway import ThreadedGateway
from support.waiting import Bound, eventually

#: Long enough that a slow machine still retries within it.
RELEASE_DELAY_S = 1.5
LIBS = [pytest.param(ib_insync, id="ib_insync"), pytest.param(ib_async, id="ib_async")]


def _by_kind(gateway: ThreadedGateway, kind: str) -> list[dict]:
    return [e for e in gateway.history() if e["kind"] == kind]


@pytest.mark.parametrize("lib", LIBS)
def test_asyncio_client_runs_every_basic_request(gateway: ThreadedGateway, lib) -> None:
    async def body() -> None:
        async with ib_session(lib, gateway.port, client_id=11) as ib:
            errors = ErrorLog(ib)
            assert ib.managedAccounts() == [gateway.config.account]

            server_time = await bounded(ib.reqCurrentTimeAsync())
            assert abs(server_time.timestamp() - time.time()) < 5

            details = await bounded(ib.reqContractDetailsAsync(lib.Stock("AAPL", "SMART", "USD")))
            assert [d.contract.conId for d in details] == [265598]
            assert details[0].longName == "APPLE INC" and details[0].contract.primaryExchange == "NASDAQ"
            forex = await bounded(ib.reqContractDetailsAsync(lib.Forex("EURUSD")))
            assert forex[0].contract.localSymbol == "EUR.USD"

            unknown = await bounded(ib.reqContractDetailsAsync(lib.Stock("NOSUCH", "SMART", "USD")))
            assert unknown == [] or unknown == [None]
            assert 200 in errors.codes()

            bars = await bounded(ib.reqHistoricalDataAsync(
                lib.Stock("MSFT", "SMART", "USD"), endDateTime="", durationStr="3 D", barSizeSetting="1 day",
                whatToShow="TRADES", useRTH=True))
            assert len(bars) == 3
            assert all(bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
                       for bar in bars)
            assert all(bar.volume > 0 and bar.volume == int(bar.volume) for bar in bars)
            assert [b.date for b in bars] == sorted(b.date for b in bars)

            head = await bounded(ib.reqHeadTimeStampAsync(lib.Stock("AAPL", "SMART", "USD"), "TRADES", True, 1))
            assert head.replace(tzinfo=None) == dt.datetime(1980, 12, 12, 14, 30)

    run(body())
    (connection,) = eventually(lambda: [c for c in gateway.connections() if c["state"] == "closed"], Bound.exactly(5),
                               "the gateway saw the client disconnect")
    assert connection["version"] == 176 and connection["client_id"] == 11
    assert connection["state"] == "closed" and connection["close_reason"] == "client closed"
    unknown_req = [e for e in _by_kind(gateway, "error_sent") if e["code"] == 200]
    assert len(unknown_req) == 1


def test_ibapi_negotiates_157_and_runs_every_basic_request(gateway: ThreadedGateway) -> None:
    app = IbapiApp()
    app.start(gateway.port, client_id=21)
    try:
        app.wait(lambda e: e[0] == "nextValidId", "nextValidId")
        assert app.kinds("managedAccounts") == [("managedAccounts", gateway.config.account)]
        farm_codes = [e[2] for e in app.kinds("error")]
        assert 2104 in farm_codes and 2106 in farm_codes  # 5-field errors parsed by ibapi at 157

        app.reqCurrentTime()
        (_, server_time) = app.wait(lambda e: e[0] == "currentTime", "currentTime")
        assert abs(server_time - time.time()) < 5

        app.reqContractDetails(5, stock("IBM"))
        app.reqContractDetails(6, stock("NOSUCH"))
        app.wait(lambda e: e[0] == "contractDetailsEnd" and e[1] == 5, "contractDetailsEnd 5")
        app.wait(lambda e: e[0] == "error" and e[1] == 6 and e[2] == 200, "error 200 for reqId 6")
        (_, _, details) = app.kinds("contractDetails")[0]
        assert details.contract.conId == 8314 and details.contract.primaryExchange == "NYSE"
        assert details.longName == "INTL BUSINESS MACHINES CORP" and details.mdSizeMultiplier == 1

        app.reqHistoricalData(7, stock("SPY"), "", "2 D", "1 hour", "TRADES", 1, 1, False, [])
        app.wait(lambda e: e[0] == "historicalDataEnd" and e[1] == 7, "historicalDataEnd 7")
        bars = [e[2] for e in app.kinds("historicalData") if e[1] == 7]
        assert 8 <= len(bars) <= 14  # one full RTH day (7 hourly bars) + part or all of another
        assert all(isinstance(bar.volume, int) and bar.volume > 0 for bar in bars)

        app.reqHeadTimeStamp(8, stock("AAPL"), "TRADES", 1, 1)
        (_, _, head) = app.wait(lambda e: e[0] == "headTimestamp", "headTimestamp")
        assert head == "19801212-14:30:00"
    finally:
        app.stop()
    assert [e[1] for e in app.kinds("contractDetailsEnd")] == [5]  # no end marker after error 200
    (connection,) = gateway.connections()
    assert connection["version"] == 157


@pytest.mark.parametrize("lib", LIBS)
def test_duplicate_client_id_gets_326_and_is_closed(gateway: ThreadedGateway, lib) -> None:
    async def body() -> None:
        async with ib_session(lib, gateway.port, client_id=7) as first:
            second = lib.IB()
            errors = ErrorLog(second)
            with pytest.raises((asyncio.TimeoutError, ConnectionError)):
                await second.connectAsync("127.0.0.1", gateway.port, clientId=7, timeout=1.5)
            second.disconnect()
            assert 326 in errors.codes()
            assert first.isConnected()
            await bounded(first.reqCurrentTimeAsync())

    run(body())
    rejected = [c for c in gateway.connections() if c["state"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["close_reason"] == "duplicate client id"
    assert [e["code"] for e in _by_kind(gateway, "reject")] == [326]


def test_duplicate_client_id_ibapi_sees_326_then_connection_closed(gateway: ThreadedGateway) -> None:
    first, second = IbapiApp(), IbapiApp()
    first.start(gateway.port, client_id=9)
    try:
        first.wait(lambda e: e[0] == "nextValidId", "first client's nextValidId")
        second.start(gateway.port, client_id=9)
        second.wait(lambda e: e[0] == "error" and e[2] == 326, "error 326 on the second client")
        second.wait(lambda e: e[0] == "connectionClosed", "second client closed")
        assert second.kinds("nextValidId") == []
        first.reqCurrentTime()
        first.wait(lambda e: e[0] == "currentTime", "first client still served")
    finally:
        second.stop()
        first.stop()


def test_33rd_client_is_refused_and_a_freed_slot_is_reused(gateway: ThreadedGateway) -> None:
    async def body() -> None:
        clients = [ib_insync.IB() for _ in range(32)]
        try:
            await asyncio.gather(*(ib.connectAsync("127.0.0.1", gateway.port, clientId=100 + i, timeout=10)
                                   for i, ib in enumerate(clients)))
            assert all(ib.isConnected() for ib in clients)
            extra = ib_insync.IB()
            with pytest.raises((asyncio.TimeoutError, ConnectionError)):
                await extra.connectAsync("127.0.0.1", gateway.port, clientId=200, timeout=1.0)
            extra.disconnect()
            assert all(ib.isConnected() for ib in clients)
            clients[0].disconnect()
            await until(lambda: sum(c["state"] == "open" for c in gateway.connections()) == 31, 5,
                        "the gateway saw the first client leave")
            async with ib_session(ib_insync, gateway.port, client_id=201) as late:
                assert late.isConnected()
        finally:
            for ib in clients:
                ib.disconnect()

    run(body())
    rejects = _by_kind(gateway, "reject")
    assert [(e["client_id"], e["code"]) for e in rejects] == [(200, "max-clients")]


def test_client_id_stays_in_use_for_the_release_delay(make_gateway) -> None:
    gateway = make_gateway(id_release_delay_s=RELEASE_DELAY_S)

    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=5):
            pass
        retry = ib_insync.IB()
        errors = ErrorLog(retry)
        with pytest.raises((asyncio.TimeoutError, ConnectionError)):
            await retry.connectAsync("127.0.0.1", gateway.port, clientId=5, timeout=0.5)
        retry.disconnect()
        assert 326 in errors.codes()
        await until(lambda: time.monotonic() > _by_kind(gateway, "disconnect")[0]["mono"] + RELEASE_DELAY_S, 5,
                    "release delay elapsed")
        async with ib_session(ib_insync, gateway.port, client_id=5) as again:
            assert again.isConnected()

    run(body())


def test_version_is_negotiated_per_connection(make_gateway) -> None:
    gateway = make_gateway(server_version_max=178)

    async def body() -> None:
        async with ib_session(ib_async, gateway.port, client_id=31) as newer, \
                ib_session(ib_insync, gateway.port, client_id=32) as older:
            for lib, ib in ((ib_async, newer), (ib_insync, older)):
                await bounded(ib.reqCurrentTimeAsync())
                details = await bounded(ib.reqContractDetailsAsync(lib.Stock("SPY", "SMART", "USD")))
                assert details[0].stockType == "ETF"

    run(body())
    versions = {c["client_id"]: c["version"] for c in gateway.connections()}
    assert versions == {31: 178, 32: 176}


def test_a_client_without_a_common_version_is_refused(make_gateway) -> None:
    gateway = make_gateway(server_version_max=150)

    async def body() -> None:
        ib = ib_insync.IB()
        with pytest.raises((asyncio.TimeoutError, ConnectionError)):
            await ib.connectAsync("127.0.0.1", gateway.port, clientId=33, timeout=1.0)
        ib.disconnect()

    run(body())
    bad = [e["reason"] for e in gateway.history() if e["kind"] == "bad_input"]
    assert len(bad) == 1 and bad[0].startswith("no common version")
