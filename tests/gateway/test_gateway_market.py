"""Historical bars honour duration, bar size, endDateTime and useRTH, deterministically; cancels follow IB."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import zoneinfo

import ib_insync
import pytest
from gateway_helpers import ErrorLog, bounded, ib_session, run, until

from ibtargets.common.faults import Delay
from ibtargets.gateway import ThreadedGateway

EASTERN = zoneinfo.ZoneInfo("US/Eastern")
AAPL = ib_insync.Stock("AAPL", "SMART", "USD")
#: Thursday 2024-01-04 01:00 US/Eastern: the last complete trading day is Wednesday 2024-01-03.
AFTER_WEDNESDAY = "20240104 06:00:00 UTC"


@pytest.fixture
def unpaced(make_gateway) -> ThreadedGateway:
    """A simulator without pacing, so one test may repeat a request."""
    return make_gateway(pacing_enabled=False)


def _bars(gateway: ThreadedGateway, *requests: tuple, client_id: int = 1) -> list[list]:
    """Run historical requests ``(contract, end, duration, bar size, whatToShow, useRTH[, formatDate])``."""
    async def body() -> list[list]:
        async with ib_session(ib_insync, gateway.port, client_id=client_id) as ib:
            out = []
            for contract, end, duration, size, what, rth, *fmt in requests:
                out.append(list(await bounded(ib.reqHistoricalDataAsync(
                    contract, end, duration, size, what, rth, formatDate=fmt[0] if fmt else 1))))
            return out
    return run(body())


def test_rth_and_extended_hours_for_one_day_of_hourly_bars(unpaced: ThreadedGateway) -> None:
    rth, eth = _bars(unpaced, (AAPL, AFTER_WEDNESDAY, "1 D", "1 hour", "TRADES", True),
                     (AAPL, AFTER_WEDNESDAY, "1 D", "1 hour", "TRADES", False))
    assert [b.date.astimezone(EASTERN).strftime("%H:%M") for b in rth] == \
        ["09:30", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"]
    assert {b.date.astimezone(EASTERN).date() for b in rth} == {dt.date(2024, 1, 3)}
    assert [b.date.astimezone(EASTERN).hour for b in eth] == list(range(4, 20))


def test_durations_and_bar_sizes(unpaced: ThreadedGateway) -> None:
    two_days, week, half_hour, weekend = _bars(
        unpaced,
        (AAPL, AFTER_WEDNESDAY, "2 D", "1 day", "TRADES", True),
        (AAPL, AFTER_WEDNESDAY, "1 W", "1 day", "TRADES", True),
        (AAPL, "20240103 15:00:00 US/Eastern", "1800 S", "5 mins", "TRADES", True),
        (AAPL, "20240107 12:00:00 US/Eastern", "1 D", "1 day", "TRADES", True))
    assert [b.date for b in two_days] == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    assert [b.date for b in week] == [dt.date(2023, 12, 28), dt.date(2023, 12, 29), dt.date(2024, 1, 1),
                                      dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    assert [b.date.astimezone(EASTERN).strftime("%H:%M") for b in half_hour] == \
        ["14:30", "14:35", "14:40", "14:45", "14:50", "14:55"]
    assert [b.date for b in weekend] == [dt.date(2024, 1, 5)]  # a Sunday end → Friday's bar


def test_end_date_time_bounds_every_bar(unpaced: ThreadedGateway) -> None:
    end = dt.datetime(2024, 1, 3, 12, 10, tzinfo=EASTERN)
    (bars,) = _bars(unpaced, (AAPL, end, "1 D", "15 mins", "TRADES", True))
    assert bars[0].date == dt.datetime(2024, 1, 3, 9, 30, tzinfo=EASTERN)
    assert bars[-1].date == dt.datetime(2024, 1, 3, 12, 0, tzinfo=EASTERN)
    assert all(b.date < end for b in bars)


def test_same_request_same_bars_and_overlaps_agree(unpaced: ThreadedGateway) -> None:
    first, again, longer, epoch = _bars(
        unpaced,
        (AAPL, AFTER_WEDNESDAY, "2 D", "30 mins", "TRADES", False),
        (AAPL, AFTER_WEDNESDAY, "2 D", "30 mins", "TRADES", False),
        (AAPL, AFTER_WEDNESDAY, "5 D", "30 mins", "TRADES", False),
        (AAPL, AFTER_WEDNESDAY, "2 D", "30 mins", "TRADES", False, 2))
    assert first == again
    assert longer[-len(first):] == first
    assert [(b.date, b.open, b.close) for b in epoch] == [(b.date, b.open, b.close) for b in first]
    assert len({b.close for b in first}) > len(first) // 2  # prices move


def test_forex_midpoint_trades_around_the_clock(unpaced: ThreadedGateway) -> None:
    (bars,) = _bars(unpaced, (ib_insync.Forex("EURUSD"), AFTER_WEDNESDAY, "1 D", "1 hour", "MIDPOINT", True))
    assert bars[0].date == dt.datetime(2024, 1, 3, 17, 15, tzinfo=EASTERN)
    assert bars[-1].date == dt.datetime(2024, 1, 4, 0, 0, tzinfo=EASTERN)
    assert all(b.volume == -1 for b in bars) and 0.5 < bars[0].close < 2


def test_invalid_requests_get_ib_errors(unpaced: ThreadedGateway) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, unpaced.port, client_id=2) as ib:
            errors = ErrorLog(ib)
            cases = [(AAPL, "1 D", "1 hours", 321), (AAPL, "2 X", "1 day", 321),
                     (ib_insync.Stock("NOSUCH", "SMART", "USD"), "1 D", "1 day", 200)]
            for contract, duration, size, code in cases:
                bars = await bounded(ib.reqHistoricalDataAsync(contract, AFTER_WEDNESDAY, duration, size,
                                                                "TRADES", True))
                assert list(bars) == []
                assert errors.codes()[-1] == code
            before_listing = await bounded(ib.reqHistoricalDataAsync(AAPL, "19700105 12:00:00 UTC", "1 D",
                                                                      "1 day", "TRADES", True))
            assert list(before_listing) == [] and errors.codes()[-1] == 162

    run(body())


def test_cancel_of_an_active_query_gets_162_and_no_late_answer(unpaced: ThreadedGateway) -> None:
    unpaced.apply(Delay(latency_ms=1500, request_types=("reqHistoricalData",)))

    async def body() -> None:
        async with ib_session(ib_insync, unpaced.port, client_id=3) as ib:
            errors = ErrorLog(ib)
            bars = await ib.reqHistoricalDataAsync(AAPL, AFTER_WEDNESDAY, "1 D", "1 day", "TRADES", True,
                                                   timeout=0.3)  # ib_insync cancels after its timeout
            assert list(bars) == []
            await until(lambda: 162 in errors.codes(), 5, "162 'query cancelled'")
            assert "cancelled" in errors.entries[-1][2]
            (request,) = [e for e in unpaced.history() if e["kind"] == "request" and e["type"] == "reqHistoricalData"]
            await until(lambda: time.monotonic() > request["mono"] + 1.6, 5, "the delayed answer's time passed")
            await bounded(ib.reqCurrentTimeAsync())

    run(body())
    answered = [e for e in unpaced.history() if e["kind"] == "response" and e["type"] == "reqHistoricalData"]
    assert answered == []


def test_cancel_of_a_finished_query_gets_366_and_live_query_162(unpaced: ThreadedGateway) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, unpaced.port, client_id=4) as ib:
            errors = ErrorLog(ib)
            await bounded(ib.reqHistoricalDataAsync(AAPL, "", "1 D", "1 day", "TRADES", True))
            finished = max(e["req_id"] for e in unpaced.history() if e["kind"] == "request"
                           and e["type"] == "reqHistoricalData")
            ib.client.cancelHistoricalData(finished)
            await until(lambda: 366 in errors.codes(), 5, "366 for a finished query")
            live = await bounded(ib.reqHistoricalDataAsync(AAPL, "", "1 D", "1 hour", "TRADES", True,
                                                            keepUpToDate=True))
            ib.cancelHistoricalData(live)
            await until(lambda: 162 in errors.codes(), 5, "162 for the live query")

    run(body())


def test_head_timestamp_formats_agree(gateway: ThreadedGateway) -> None:
    async def body() -> tuple:
        async with ib_session(ib_insync, gateway.port, client_id=5) as ib:
            as_text = await bounded(ib.reqHeadTimeStampAsync(AAPL, "TRADES", True, 1))
            as_epoch = await bounded(ib.reqHeadTimeStampAsync(AAPL, "TRADES", True, 2))
            errors = ErrorLog(ib)
            unknown = await bounded(ib.reqHeadTimeStampAsync(ib_insync.Stock("NOSUCH", "SMART", "USD"),
                                                             "TRADES", True, 1))
            assert not isinstance(unknown, dt.datetime)
            return as_text, as_epoch, errors.codes()

    as_text, as_epoch, codes = run(body())
    assert as_text.replace(tzinfo=dt.UTC) == as_epoch
    assert 200 in codes


def test_a_large_request_does_not_hold_up_other_clients(unpaced: ThreadedGateway) -> None:
    async def body() -> None:
        async with ib_session(ib_insync, unpaced.port, client_id=6) as big, \
                ib_session(ib_insync, unpaced.port, client_id=7) as small:
            large = asyncio.ensure_future(big.reqHistoricalDataAsync(AAPL, "", "40 D", "1 min", "TRADES", False))
            await until(lambda: [e for e in unpaced.history() if e["kind"] == "request"
                                 and e["type"] == "reqHistoricalData"], 5, "the large request arrived")
            await bounded(small.reqCurrentTimeAsync())
            assert len(await bounded(large, 30)) > 30_000

    run(body())
    answers = [e["type"] for e in unpaced.history() if e["kind"] == "response"
               and e["type"] in ("reqHistoricalData", "reqCurrentTime")]
    assert answers == ["reqCurrentTime", "reqHistoricalData"]
