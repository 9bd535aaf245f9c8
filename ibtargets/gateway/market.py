"""Deterministic synthetic market history: bars for reqHistoricalData and head timestamps.

Prices are a smooth function of (symbol, time) plus hash noise seeded by symbol and bar time, so the
same request always yields the same bars and overlapping requests agree on the bars they share.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from ibtargets.gateway.instruments import Instrument

UTC = dt.UTC
DAY_S = 86_400

#: IB's valid barSizeSetting values (strict, like TWS) → seconds (week/month nominal).
BAR_SIZES: dict[str, int] = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30,
    "1 min": 60, "2 mins": 120, "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900,
    "20 mins": 1200, "30 mins": 1800, "1 hour": 3600, "2 hours": 7200, "3 hours": 10800,
    "4 hours": 14400, "8 hours": 28800, "1 day": DAY_S, "1 week": 7 * DAY_S, "1 month": 30 * DAY_S,
}
WHAT_TO_SHOW = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST", "HISTORICAL_VOLATILITY",
                "OPTION_IMPLIED_VOLATILITY", "FEE_RATE", "SCHEDULE")
_TRADED = ("TRADES", "ADJUSTED_LAST")
_DURATION_RE = re.compile(r"^(\d{1,6}) ([SDWMY])$")
_END_RE = re.compile(r"^(\d{8})(?:[ -]{1,2}(\d{2}):(\d{2}):(\d{2}))?(?: (\S+))?$")
_MASK64 = (1 << 64) - 1


class HistoricalError(Exception):
    """A request TWS would refuse: ``code`` and ``text`` go into the error message."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar as the wire texts."""

    date: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    wap: str
    count: str

    def fields(self) -> tuple[str, ...]:
        """The eight fields of a historicalData row."""
        return (self.date, self.open, self.high, self.low, self.close, self.volume, self.wap, self.count)


@dataclass(frozen=True)
class HistoryQuery:
    """The parameters of a reqHistoricalData that shape the bars."""

    end_date_time: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int


def bar_seconds(bar_size: str) -> int:
    """Seconds of a barSizeSetting.

    Raises:
        HistoricalError: 321 for a size TWS does not accept.
    """
    try:
        return BAR_SIZES[bar_size.strip()]
    except KeyError:
        raise HistoricalError(321, f"Error validating request.-'bP' : cause - Historical data bar size "
                                   f"setting is invalid: {bar_size!r}") from None


def parse_end(text: str, now: dt.datetime, default_zone: str) -> dt.datetime:
    """endDateTime → an aware UTC time ("" = now; ``YYYYMMDD-HH:MM:SS`` is UTC; no zone = TWS zone).

    Raises:
        HistoricalError: 321 when the text is not an IB date/time.
    """
    text = text.strip()
    if not text:
        return now
    match = _END_RE.match(text)
    invalid = HistoricalError(321, f"Error validating request.-'bP' : cause - End date/time {text!r} is invalid")
    if not match:
        raise invalid
    day, hh, mm, ss, zone_name = match.groups()
    if zone_name:
        zone: dt.tzinfo = UTC if zone_name.upper() in ("UTC", "GMT") else _zone(zone_name, invalid)
    elif "-" in text:
        zone = UTC
    else:
        zone = _zone(default_zone, invalid)
    try:
        local = dt.datetime.strptime(day, "%Y%m%d").replace(
            hour=int(hh or 23), minute=int(mm or 59), second=int(ss or 59), tzinfo=zone)
    except ValueError:
        raise invalid from None
    return local.astimezone(UTC)


def _zone(name: str, error: HistoricalError) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except Exception:
        raise error from None


def parse_duration(text: str) -> tuple[int, str]:
    """durationStr → (count, unit letter).

    Raises:
        HistoricalError: 321 for anything but ``<n> S|D|W|M|Y`` with n ≥ 1.
    """
    match = _DURATION_RE.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise HistoricalError(321, f"Error validating request.-'bP' : cause - Historical data duration "
                                   f"{text!r} is invalid")
    return int(match.group(1)), match.group(2)


# --------------------------------------------------------------------------- prices


def _mix(value: int) -> int:
    """splitmix64: a fast, well-spread integer hash (cheaper than a cryptographic one per bar)."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _seed(symbol: str) -> int:
    seed = 0
    for char in symbol.encode():
        seed = _mix(seed ^ char)
    return seed


_VOLATILITY = ("HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY", "FEE_RATE")
_TWO_PI = 2 * math.pi
_BITS21 = (1 << 21) - 1


class BarMaker:
    """Builds the bars of one request: prices are a smooth wave in time plus hash noise seeded by
    (symbol, whatToShow, time), rounded to the tick. Everything per request is computed once.

    Args:
        inst: the instrument.
        what_to_show: TRADES, MIDPOINT, BID, ASK, …
    """

    def __init__(self, inst: Instrument, what_to_show: str):
        self.seed = _seed(inst.localSymbol + "|" + what_to_show)
        phase = (self.seed % 1000) / 1000 * _TWO_PI
        self.phases = (phase, 2 * phase, 3 * phase)
        self.base = inst.base_price
        self.base_volume = inst.base_volume if what_to_show in _TRADED else 0
        self.shift = {"BID": -inst.minTick, "ASK": inst.minTick, "BID_ASK": inst.minTick}.get(what_to_show, 0.0)
        self.scale = 0.25 / inst.base_price if what_to_show in _VOLATILITY else 1.0
        self.tick = 0.0001 if what_to_show in _VOLATILITY else inst.minTick
        decimals = max(0, -math.floor(math.log10(self.tick))) if self.tick < 1 else 0
        if self.tick < 1 and round(self.tick * 10 ** decimals) != self.tick * 10 ** decimals:
            decimals += 1
        self.decimals = decimals

    def price(self, t: int) -> float:
        """The synthetic price at epoch second ``t`` (before shift, scale and rounding)."""
        p1, p2, p3 = self.phases
        wave = (0.12 * math.sin(_TWO_PI * t / (97 * DAY_S) + p1)
                + 0.04 * math.sin(_TWO_PI * t / (11 * DAY_S) + p2)
                + 0.01 * math.sin(_TWO_PI * t / (0.9 * DAY_S) + p3))
        noise = _mix(self.seed ^ (t * 0x2545F4914F6CDD1D & _MASK64)) / 2.0 ** 64
        return self.base * math.exp(wave) * (1 + 0.001 * (2 * noise - 1))

    def _text(self, value: float, rounding: Callable[[float], float]) -> str:
        return f"{rounding(value / self.tick) * self.tick:.{self.decimals}f}"

    def bar(self, t0: int, t1: int, label: str, trading_s: int = 0) -> Bar:
        """One bar spanning epoch seconds [t0, t1), labelled ``label``.

        Args:
            trading_s: seconds of trading inside the bar (volume scales with it); default the whole span.
        """
        span_s = max(1, t1 - t0)
        trading_s = trading_s or span_s
        o, c = self.price(t0), self.price(t1)
        # One hash gives the three per-bar draws (high, low, volume) as 21-bit fractions.
        draws = _mix(self.seed ^ (t0 * 0x9E3779B97F4A7C15 & _MASK64) ^ span_s)
        amp = min(0.03, 0.002 * math.sqrt(span_s / 300))
        hi = max(o, c) * (1 + amp * (draws & _BITS21) / _BITS21)
        lo = min(o, c) * (1 - amp * ((draws >> 21) & _BITS21) / _BITS21)
        o, c, hi, lo = ((x + self.shift) * self.scale for x in (o, c, hi, lo))
        if self.base_volume:
            volume = int(self.base_volume * trading_s / 23_400 * (0.5 + ((draws >> 42) & _BITS21) / _BITS21))
            wap = (hi + lo + c) / 3
            volume_text, wap_text, count_text = str(volume), f"{wap:.{self.decimals + 2}f}", str(volume // 150 + 1)
        else:
            volume_text = wap_text = count_text = "-1"
        near = self._text
        return Bar(label, near(o, round), near(hi, _ceil), near(lo, _floor), near(c, round), volume_text, wap_text,
                   count_text)


def _ceil(steps: float) -> float:
    return math.ceil(steps - 1e-9)


def _floor(steps: float) -> float:
    return math.floor(steps + 1e-9)


# --------------------------------------------------------------------------- calendars


def trading_day_of(inst: Instrument, t: dt.datetime, use_rth: bool) -> dt.date:
    """The trading day whose session contains ``t``, else the last one that opened before ``t``."""
    day = t.astimezone(inst.zone).date() + dt.timedelta(days=1)
    for _ in range(12):
        session = inst.session(day, use_rth)
        if session is not None and session[0] <= t:
            return day
        day -= dt.timedelta(days=1)
    return day


def previous_trading_day(inst: Instrument, day: dt.date) -> dt.date:
    """The weekday before ``day``."""
    day -= dt.timedelta(days=1)
    while inst.session(day, False) is None:
        day -= dt.timedelta(days=1)
    return day


def _minus_months(t: dt.datetime, months: int) -> dt.datetime:
    month_index = t.year * 12 + t.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(t.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31,
                      30, 31, 31, 30, 31, 30, 31][month])
    return t.replace(year=year, month=month + 1, day=day)


def window_start(inst: Instrument, end: dt.datetime, duration: str, use_rth: bool) -> dt.datetime:
    """Start of the period a durationStr covers, counted back from ``end``.

    ``D`` counts trading days (the current, possibly partial, day included); ``S`` seconds; ``W``
    weeks, ``M`` months and ``Y`` years are calendar spans.
    """
    count, unit = parse_duration(duration)
    if unit == "S":
        return end - dt.timedelta(seconds=count)
    if unit == "D":
        day = trading_day_of(inst, end, use_rth)
        for _ in range(count - 1):
            day = previous_trading_day(inst, day)
        session = inst.session(day, use_rth)
        assert session is not None
        return session[0]
    if unit == "W":
        return end - dt.timedelta(weeks=count)
    return _minus_months(end, count * (12 if unit == "Y" else 1))


def _date_label(inst: Instrument, t: dt.datetime, format_date: int) -> str:
    if format_date == 2:
        return str(int(t.timestamp()))
    return f"{t.astimezone(inst.zone):%Y%m%d %H:%M:%S} {inst.timeZoneId}"


def historical_bars(inst: Instrument, query: HistoryQuery, now: dt.datetime, tws_zone: str,
                    max_bars: int) -> tuple[list[Bar], str, str]:
    """The bars a historical request yields, with the start and end texts of the historicalData frame.

    Raises:
        HistoricalError: 321 (invalid parameters), 162 (no data, or more than ``max_bars`` bars).
    """
    bar_s = bar_seconds(query.bar_size)
    if query.what_to_show not in WHAT_TO_SHOW:
        raise HistoricalError(321, f"Error validating request.-'bP' : cause - whatToShow "
                                   f"{query.what_to_show!r} is invalid")
    end = min(parse_end(query.end_date_time, now, tws_zone), now)
    start = max(window_start(inst, end, query.duration, query.use_rth), inst.head_utc)
    maker = BarMaker(inst, query.what_to_show)
    bars: list[Bar] = []
    if bar_s >= DAY_S:
        _period_bars(inst, maker, query, bar_s, start, end, bars, max_bars)
    else:
        _intraday_bars(inst, maker, query, bar_s, start, end, bars, max_bars)
    if not bars:
        raise HistoricalError(162, "Historical Market Data Service error message:HMDS query returned no "
                                   f"data: {inst.localSymbol}@{inst.exchange} {query.what_to_show.title()}")
    return bars, _date_label(inst, start, 1), _date_label(inst, end, 1)


def _too_many(max_bars: int) -> HistoricalError:
    return HistoricalError(162, "Historical Market Data Service error message:Time length exceed max. "
                                f"(more than {max_bars} bars)")


def _intraday_bars(inst: Instrument, maker: BarMaker, query: HistoryQuery, bar_s: int, start: dt.datetime,
                   end: dt.datetime, out: list[Bar], max_bars: int) -> None:
    day = trading_day_of(inst, start, query.use_rth)
    last_day = trading_day_of(inst, end, query.use_rth)
    start_s, end_s = start.timestamp(), end.timestamp()
    while day <= last_day:
        session = inst.session(day, query.use_rth)
        if session is not None:
            open_s, close_s = int(session[0].timestamp()), int(session[1].timestamp())
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=inst.zone)
            midnight_s = int(midnight.timestamp())
            # Markets are closed when clocks change (Sunday 02:00), so one UTC offset holds per session.
            offset_s = int(session[0].astimezone(inst.zone).utcoffset().total_seconds())  # type: ignore[union-attr]
            # Bars align to clock multiples of the bar size from local midnight; the first starts at the open.
            t = open_s
            while t < close_s and t < end_s:
                following = midnight_s + ((t - midnight_s) // bar_s + 1) * bar_s
                t1 = min(following, close_s)
                if t >= start_s:
                    if len(out) >= max_bars:
                        raise _too_many(max_bars)
                    if query.format_date == 2:
                        label = str(t)
                    else:
                        label = f"{dt.datetime.fromtimestamp(t + offset_s, UTC):%Y%m%d %H:%M:%S} {inst.timeZoneId}"
                    out.append(maker.bar(t, t1, label))
                t = t1
        day += dt.timedelta(days=1)


def _period_bars(inst: Instrument, maker: BarMaker, query: HistoryQuery, bar_s: int, start: dt.datetime,
                 end: dt.datetime, out: list[Bar], max_bars: int) -> None:
    """Daily, weekly or monthly bars, labelled ``YYYYMMDD`` by their first trading day."""
    day = trading_day_of(inst, start, query.use_rth)
    last_day = trading_day_of(inst, end, query.use_rth)
    groups: dict[tuple[int, int], list[tuple[dt.date, int, int]]] = {}
    while day <= last_day:
        session = inst.session(day, query.use_rth)
        if session is not None and session[1] > start and session[0] < end:
            if bar_s == DAY_S:
                key = (day.toordinal(), 0)
            elif bar_s == 7 * DAY_S:
                key = day.isocalendar()[:2]
            else:
                key = (day.year, day.month)
            groups.setdefault(key, []).append((day, int(session[0].timestamp()), int(session[1].timestamp())))
        day += dt.timedelta(days=1)
    if len(groups) > max_bars:
        raise _too_many(max_bars)
    for days in groups.values():
        first_day, t0, _ = days[0]
        out.append(maker.bar(t0, days[-1][2], f"{first_day:%Y%m%d}", trading_s=sum(c - o for _, o, c in days)))


def head_timestamp(inst: Instrument, format_date: int) -> str:
    """The earliest data point: ``YYYYMMDD-HH:MM:SS`` (UTC) or epoch seconds with formatDate 2."""
    if format_date == 2:
        return str(int(inst.head_utc.timestamp()))
    return f"{inst.head_utc:%Y%m%d-%H:%M:%S}"
