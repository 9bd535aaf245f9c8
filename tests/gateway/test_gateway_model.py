"""The simulator's market model on its own: sessions, durations, bar labels, contract matching."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from ibtargets.gateway.instruments import ContractQuery, all_instruments, es_futures, match
from ibtargets.gateway.market import HistoricalError, HistoryQuery, historical_bars, parse_end

UTC = dt.UTC
CENTRAL = zoneinfo.ZoneInfo("US/Central")
TODAY = dt.date(2024, 1, 3)
NOW = dt.datetime(2024, 2, 1, 12, tzinfo=UTC)


def _instrument(**query: object):
    (inst,) = match(ContractQuery(**query), all_instruments(TODAY))  # type: ignore[arg-type]
    return inst


def _bars(inst, end: str, duration: str, size: str, rth: bool = True, what: str = "TRADES", fmt: int = 1,
          max_bars: int = 50_000):
    return historical_bars(inst, HistoryQuery(end, size, duration, rth, what, fmt), NOW, "US/Eastern", max_bars)[0]


def test_contract_matching() -> None:
    instruments = all_instruments(TODAY)
    assert [i.conId for i in match(ContractQuery(symbol="aapl", secType="STK"), instruments)] == [265598]
    assert match(ContractQuery(conId=272093), instruments)[0].symbol == "MSFT"
    assert match(ContractQuery(symbol="AAPL", currency="EUR"), instruments) == []
    assert match(ContractQuery(symbol="AAPL", exchange="NASDAQ"), instruments)[0].exchange == "NASDAQ"
    assert match(ContractQuery(symbol="AAPL", exchange="IDEALPRO"), instruments) == []
    assert [i.localSymbol for i in match(ContractQuery(symbol="EUR", secType="CASH", currency="USD"),
                                         instruments)] == ["EUR.USD"]
    assert len(match(ContractQuery(symbol="ES", secType="FUT"), instruments)) == 4
    (march,) = match(ContractQuery(symbol="ES", secType="FUT", lastTradeDateOrContractMonth="202403"), instruments)
    assert march.lastTradeDateOrContractMonth == "20240315" and march.localSymbol == "ESH4"


def test_es_futures_roll_with_the_date() -> None:
    assert [f.contractMonth for f in es_futures(dt.date(2024, 3, 15))] == ["202403", "202406", "202409", "202412"]
    assert [f.contractMonth for f in es_futures(dt.date(2024, 3, 16))][0] == "202406"


def test_end_date_time_forms() -> None:
    assert parse_end("", NOW, "US/Eastern") == NOW
    assert parse_end("20240103 16:00:00 UTC", NOW, "US/Eastern") == dt.datetime(2024, 1, 3, 16, tzinfo=UTC)
    assert parse_end("20240103-16:00:00", NOW, "US/Eastern") == dt.datetime(2024, 1, 3, 16, tzinfo=UTC)
    assert parse_end("20240103 11:00:00", NOW, "US/Eastern") == dt.datetime(2024, 1, 3, 16, tzinfo=UTC)
    assert parse_end("20240103 10:00:00 US/Central", NOW, "US/Eastern") == dt.datetime(2024, 1, 3, 16, tzinfo=UTC)
    for bad in ("yesterday", "20241301 00:00:00", "20240103 10:00:00 Mars/Base"):
        with pytest.raises(HistoricalError) as error:
            parse_end(bad, NOW, "US/Eastern")
        assert error.value.code == 321


def test_future_sessions_cross_midnight() -> None:
    es = _instrument(symbol="ES", secType="FUT", lastTradeDateOrContractMonth="202403")
    eth = _bars(es, "20240103 22:00:00 UTC", "1 D", "1 hour", rth=False)  # Wed 16:00 US/Central
    assert eth[0].date == "20240102 17:00:00 US/Central" and eth[-1].date == "20240103 15:00:00 US/Central"
    assert len(eth) == 23  # 17:00 → 16:00, the daily maintenance break 16:00–17:00 excluded
    evening = _bars(es, "20240104 00:00:00 UTC", "1 D", "1 hour", rth=False)  # Wed 18:00: Thursday's session
    assert [b.date for b in evening] == ["20240103 17:00:00 US/Central"]
    rth = _bars(es, "20240104 00:00:00 UTC", "1 D", "1 hour", rth=True)
    assert [b.date[9:14] for b in rth] == ["08:30", "09:00", "10:00", "11:00", "12:00", "13:00", "14:00"]


def test_weekly_and_monthly_bars_are_labelled_by_their_first_trading_day() -> None:
    aapl = _instrument(symbol="AAPL")
    weekly = _bars(aapl, "20240131 23:00:00 UTC", "1 M", "1 week")
    assert [b.date for b in weekly] == \
        ["20240101", "20240108", "20240115", "20240122", "20240129"]  # no holidays in the model
    monthly = _bars(aapl, "20240131 23:00:00 UTC", "1 Y", "1 month")
    assert len(monthly) == 12 and monthly[0].date == "20230201" and monthly[-1].date == "20240101"


def test_what_to_show_shapes_prices_and_volumes() -> None:
    aapl = _instrument(symbol="AAPL")
    trades, bid, ask = (_bars(aapl, "20240103 21:00:00 UTC", "1 D", "1 hour", what=w)
                        for w in ("TRADES", "BID", "ASK"))
    assert all(float(b.open) < float(a.open) for b, a in zip(bid, ask, strict=False))
    assert all(int(t.volume) > 0 for t in trades) and all(b.volume == "-1" for b in bid)
    assert all("." in t.open and len(t.open.split(".")[1]) == 2 for t in trades)  # rounded to the cent
    eurusd = _instrument(symbol="EUR", currency="USD")
    assert len(_bars(eurusd, "20240103 21:00:00 UTC", "1 D", "1 hour", what="MIDPOINT")[0].close.split(".")[1]) == 5


def test_limits_and_refusals() -> None:
    aapl = _instrument(symbol="AAPL")
    with pytest.raises(HistoricalError, match="Time length exceed max"):
        _bars(aapl, "20240103 21:00:00 UTC", "5 D", "1 min", max_bars=1000)
    with pytest.raises(HistoricalError, match="whatToShow"):
        _bars(aapl, "20240103 21:00:00 UTC", "1 D", "1 hour", what="PRICES")
    with pytest.raises(HistoricalError, match="returned no data"):
        _bars(aapl, "20240106 12:00:00 UTC", "3600 S", "1 min")  # a Saturday hour
    epoch = _bars(aapl, "20240103 21:00:00 UTC", "1 D", "1 hour", fmt=2)
    assert epoch[0].date == str(int(dt.datetime(2024, 1, 3, 14, 30, tzinfo=UTC).timestamp()))


def test_volume_follows_trading_time() -> None:
    aapl = _instrument(symbol="AAPL")
    daily = _bars(aapl, "20240131 23:00:00 UTC", "1 M", "1 day")
    monthly = _bars(aapl, "20240131 23:00:00 UTC", "1 M", "1 month")
    mean_daily = sum(int(b.volume) for b in daily) / len(daily)
    assert 10 * mean_daily < int(monthly[-1].volume) < 35 * mean_daily  # ~23 trading days in January
