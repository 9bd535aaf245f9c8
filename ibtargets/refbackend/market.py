"""IB data requests: contract discovery, historical bars in IB-sized chunks, pacing and rate limits."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import time
from dataclasses import dataclass

from ibtargets.common.ibclient import IB, Contract, ContractDetails, Forex, Index, RequestError, Stock
from ibtargets.refbackend.errors import InvalidInput, PacingViolation, RequestTimeout
from ibtargets.refbackend.store import Bar

#: IB error codes this module reacts to.
NO_SECURITY_DEFINITION = 200
HMDS_ERROR = 162

SEC_TYPE_TO_INSTRUMENT = {"STK": "stock", "CASH": "forex", "FUT": "future", "OPT": "option", "IND": "index"}

BAR_SIZES = {"1m": "1 min", "5m": "5 mins", "15m": "15 mins", "30m": "30 mins", "1h": "1 hour",
             "2h": "2 hours", "4h": "4 hours", "1d": "1 day", "1w": "1 week", "1M": "1 month"}

#: Length of one bar (a month counted as 31 days: only used to decide whether a bar touches a range).
BAR_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
               "1d": 86400, "1w": 7 * 86400, "1M": 31 * 86400}

#: Longest span asked in one request for each bar size, within IB's "step size" table and in units IB
#: counts in calendar time (seconds up to a day, then whole weeks; IB's "D" counts trading days).
MAX_CHUNK = {"1m": dt.timedelta(days=1), "5m": dt.timedelta(days=7), "15m": dt.timedelta(days=7),
             "30m": dt.timedelta(days=28), "1h": dt.timedelta(days=28), "2h": dt.timedelta(days=28),
             "4h": dt.timedelta(days=28), "1d": dt.timedelta(days=364), "1w": dt.timedelta(days=364),
             "1M": dt.timedelta(days=364)}

#: How far back a load reaches when no start date is given and nothing is cached.
DEFAULT_LOOKBACK = {"1m": dt.timedelta(days=1), "5m": dt.timedelta(days=5), "15m": dt.timedelta(days=10),
                    "30m": dt.timedelta(days=20), "1h": dt.timedelta(days=30), "2h": dt.timedelta(days=60),
                    "4h": dt.timedelta(days=90), "1d": dt.timedelta(days=365), "1w": dt.timedelta(days=3 * 365),
                    "1M": dt.timedelta(days=5 * 365)}

#: A load is refused beyond this many chunks (a bound on any one request's work).
MAX_CHUNKS_PER_LOAD = 200

FOREX_CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "HKD",
                    "SGD", "MXN", "CNH", "ZAR", "PLN", "CZK", "HUF", "ILS", "TRY", "KRW"}


class Paced(Exception):
    """IB answered error 162 "pacing violation" (internal: the caller backs off and retries)."""


def candidate_contracts(symbol: str) -> list[Contract]:
    """Contracts to try for a bare symbol: a forex pair first for ``EURUSD``-like names, then a US
    stock, then an index on any exchange."""
    compact = symbol.replace(".", "").replace("/", "")
    stock_then_index = [Stock(symbol, "SMART", "USD"), Index(symbol, "", "USD")]
    if len(compact) == 6 and compact[:3] in FOREX_CURRENCIES and compact[3:] in FOREX_CURRENCIES:
        return [Forex(compact), *stock_then_index]
    return stock_then_index


async def contract_details(ib: IB, contract: Contract, timeout_s: float) -> list[ContractDetails]:
    """``reqContractDetails`` bounded by ``timeout_s``; an unknown contract (error 200) gives ``[]``.

    Raises:
        RequestTimeout: no answer in time.
        RequestError: IB answered another error.
    """
    try:
        return list(await asyncio.wait_for(ib.reqContractDetailsAsync(contract), timeout_s))
    except TimeoutError:
        raise RequestTimeout(f"IB did not answer reqContractDetails for {contract.symbol} within "
                             f"{timeout_s:.1f} s") from None
    except RequestError as exc:
        if exc.code == NO_SECURITY_DEFINITION:
            return []
        raise


def what_to_show(contract: Contract) -> str:
    """Forex has no trades; everything else is asked for TRADES."""
    return "MIDPOINT" if contract.secType == "CASH" else "TRADES"


def duration_str(span: dt.timedelta, timeframe: str) -> str:
    """IB's ``durationStr`` covering ``span``: seconds up to a day for intraday bars, else whole weeks."""
    seconds = max(1, math.ceil(span.total_seconds()))
    if timeframe.endswith(("m", "h")) and seconds <= 86400:
        return f"{seconds} S"
    return f"{max(1, math.ceil(seconds / 604800))} W"


def bar_overlaps(bar_start: dt.datetime, timeframe: str, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether a bar beginning at ``bar_start`` covers any moment of ``[start, end]``."""
    return bar_start <= end and bar_start + dt.timedelta(seconds=BAR_SECONDS[timeframe]) > start


def plan_chunks(start: dt.datetime, end: dt.datetime, timeframe: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """Split ``[start, end]`` into pieces IB serves in one request each, newest last.

    Raises:
        InvalidInput: start is not before end, or the range needs more than :data:`MAX_CHUNKS_PER_LOAD`.
    """
    if start >= end:
        raise InvalidInput(f"start {start.isoformat()} must be before end {end.isoformat()}")
    step = MAX_CHUNK[timeframe]
    count = math.ceil((end - start) / step)
    if count > MAX_CHUNKS_PER_LOAD:
        raise InvalidInput(f"{timeframe} bars from {start.date()} to {end.date()} need {count} IB requests; "
                           f"at most {MAX_CHUNKS_PER_LOAD} per load")
    chunks = []
    cursor = start
    while cursor < end:
        chunk_end = min(cursor + step, end)
        chunks.append((cursor, chunk_end))
        cursor = chunk_end
    return chunks


def bar_from_ib(bar: object) -> Bar:
    """Our :class:`Bar` from the IB library's ``BarData`` (dates in UTC ISO 8601)."""
    date = bar.date
    if isinstance(date, dt.datetime):
        text = (date if date.tzinfo else date.replace(tzinfo=dt.UTC)).astimezone(
            dt.UTC).isoformat()
    else:
        text = date.isoformat()
    return Bar(text, float(bar.open), float(bar.high), float(bar.low),
               float(bar.close), float(bar.volume))


async def historical_bars(ib: IB, contract: Contract, end: dt.datetime, span: dt.timedelta, timeframe: str,
                          timeout_s: float) -> list[Bar]:
    """One ``reqHistoricalData`` ending at ``end`` and covering ``span``, bounded by ``timeout_s``.

    Raises:
        Paced: IB answered 162 with a pacing violation.
        RequestTimeout: no answer in time (the IB library cancels the request on the wire).
        RequestError: any other IB error (162 "no data" is an empty answer, not an error).
    """
    started = time.monotonic()
    try:
        # The library's own timeout sends cancelHistoricalData; ours is only a backstop.
        bars = await asyncio.wait_for(
            ib.reqHistoricalDataAsync(contract, endDateTime=end, durationStr=duration_str(span, timeframe),
                                      barSizeSetting=BAR_SIZES[timeframe], whatToShow=what_to_show(contract),
                                      useRTH=False, formatDate=2, timeout=timeout_s),
            timeout_s + 1.0)
    except TimeoutError:
        bars = None
    except RequestError as exc:
        if exc.code == HMDS_ERROR and "pacing" in exc.message.lower():
            raise Paced(exc.message) from None
        if exc.code == HMDS_ERROR and "no data" in exc.message.lower():
            return []
        raise
    if not bars and time.monotonic() - started >= timeout_s * 0.98:
        raise RequestTimeout(f"IB did not answer reqHistoricalData for {contract.symbol} {timeframe} "
                             f"within {timeout_s:.1f} s")
    return [bar_from_ib(b) for b in bars or []]


@dataclass
class RateLimiter:
    """IB's historical-data rule (``max_requests`` per ``period_s``) plus a pause between requests.

    Args:
        max_requests: requests allowed per window.
        period_s: the sliding window.
        pacing_delay_s: least time between two requests.
        max_wait_s: a caller never waits longer than this for a slot; beyond, it is refused.
    """

    max_requests: int
    period_s: float
    pacing_delay_s: float
    max_wait_s: float

    def __post_init__(self) -> None:
        self._sent: collections.deque[float] = collections.deque()
        self._last = -math.inf

    def _wait_needed_s(self, now: float) -> float:
        while self._sent and now - self._sent[0] >= self.period_s:
            self._sent.popleft()
        wait = max(0.0, self._last + self.pacing_delay_s - now)
        if self.max_requests and len(self._sent) >= self.max_requests:
            wait = max(wait, self._sent[0] + self.period_s - now)
        return wait

    async def slot(self) -> None:
        """Wait (bounded) until a request may be sent, then count it.

        Raises:
            PacingViolation: the window is full for longer than ``max_wait_s``.
        """
        while True:
            now = time.monotonic()
            wait = self._wait_needed_s(now)
            if wait <= 0:
                self._sent.append(now)
                self._last = now
                return
            if wait > self.max_wait_s:
                raise PacingViolation(f"historical-data rate limit reached ({self.max_requests} requests per "
                                      f"{self.period_s:g} s); next slot in {wait:.0f} s")
            await asyncio.sleep(wait)  # pacing: the wait is the point, its length is computed
