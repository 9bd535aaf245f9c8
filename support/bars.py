"""OHLCV bars from the backend's cache and from IB, normalised so they can be compared exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from support.drivers.ib import Bar, IbDriver

UTC = dt.UTC


@dataclass(frozen=True)
class NormalBar:
    """A bar keyed by its start time in UTC (dates for daily bars)."""

    key: str
    ohlcv: tuple[float, float, float, float, float]


def bar_key(value: Any, daily: bool) -> str:
    """A comparable key for a bar time given as ISO text, ``YYYYMMDD``, epoch seconds, date or datetime."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, dt.date):
        return value.isoformat()
    else:
        text = str(value).strip()
        if text.isdigit() and len(text) == 8:
            return f"{text[:4]}-{text[4:6]}-{text[6:]}"
        if text.replace(".", "", 1).isdigit():
            moment = dt.datetime.fromtimestamp(float(text), UTC)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    if daily:
        return moment.date().isoformat()
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_cache(body: dict[str, Any], daily: bool) -> list[NormalBar]:
    """Bars of a ``GET /data/{symbol}/{timeframe}`` answer."""
    dates, rows = body.get("dates") or [], body.get("ohlcv") or []
    assert len(dates) == len(rows), f"{len(dates)} dates but {len(rows)} OHLCV rows in the cache"
    return [NormalBar(bar_key(d, daily), tuple(float(x) for x in row[:5])) for d, row in zip(dates, rows, strict=False)]


def from_ib(bars: Iterable[Bar], daily: bool) -> list[NormalBar]:
    """Bars as ib_insync returned them."""
    return [NormalBar(bar_key(b.date, daily), (b.open, b.high, b.low, b.close, float(b.volume))) for b in bars]


def mismatches(cached: Sequence[NormalBar], served: Sequence[NormalBar], tolerance: float = 1e-6) -> list[str]:
    """Every cached bar that IB did not serve exactly (missing time or different values)."""
    by_key = {b.key: b for b in served}
    out = []
    for bar in cached:
        other = by_key.get(bar.key)
        if other is None:
            out.append(f"{bar.key}: cached but IB served no bar at that time")
        elif any(abs(a - b) > tolerance * max(1.0, abs(b)) for a, b in zip(bar.ohlcv, other.ohlcv, strict=False)):
            out.append(f"{bar.key}: cached {bar.ohlcv} but IB served {other.ohlcv}")
    return out


def missing(cached: Sequence[NormalBar], served: Sequence[NormalBar], first: str, last: str) -> list[str]:
    """Bars IB served inside [first, last] that the cache lacks."""
    have = {b.key for b in cached}
    return [b.key for b in served if first <= b.key <= last and b.key not in have]


#: The suite's data requests, in the user's words: timeframe, first and last day (fixed, so IB's
#: answer is reproducible), and IB's bar size.
LOADS = {
    "daily": ("1d", "2024-01-02", "2024-03-28", "1 day"),
    "hourly": ("1h", "2024-03-04", "2024-03-08", "1 hour"),
    "5-minute": ("5m", "2024-03-04", "2024-03-29", "5 mins"),
}


def load_request(kind: str) -> dict[str, str]:
    """Body fields of ``POST /data/load`` for a named load (``daily``, ``hourly``, ``5-minute``)."""
    timeframe, first, last, _ = LOADS[kind]
    return {"timeframe": timeframe, "mode": "full", "start_date": first, "end_date": last}


def oracle(ib: IbDriver, client_id: int, symbol: str, kind: str, use_rth: bool) -> list[NormalBar]:
    """What IB serves for a named load, asked directly, a week (intraday) or a year (daily) at a time."""
    timeframe, first, last, bar_size = LOADS[kind]
    daily = timeframe == "1d"
    end = dt.date.fromisoformat(last)
    start = dt.date.fromisoformat(first)
    served: list[NormalBar] = []
    while end >= start:
        span_days = 365 if daily else 7
        chunk = ib.historical_bars(client_id, symbol, "1 Y" if daily else "1 W", bar_size,
                                   end=f"{end:%Y%m%d} 23:59:59 UTC", use_rth=use_rth)
        served += from_ib(chunk, daily)
        end -= dt.timedelta(days=span_days)
    unique = {b.key: b for b in served}
    return sorted(unique.values(), key=lambda b: b.key)
