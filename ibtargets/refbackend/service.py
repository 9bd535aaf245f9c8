"""The backend's behaviour behind each endpoint: health, status, config, discovery, data loads."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ibtargets.common.events import wall_iso
from ibtargets.common.ibclient import Contract, RequestError
from ibtargets.refbackend import market
from ibtargets.refbackend.errors import (
    BackendError,
    DataNotFound,
    GatewayUnavailable,
    IBRequestError,
    InvalidInput,
    NotFound,
    OperationCancelled,
    PacingViolation,
)
from ibtargets.refbackend.operations import Operation, OperationManager
from ibtargets.refbackend.pool import ConnectionPool, wall_now
from ibtargets.refbackend.resilience import resilience_report
from ibtargets.refbackend.settings import Settings
from ibtargets.refbackend.store import Bar, BarStore, check_timeframe, normalize_symbol

log = logging.getLogger(__name__)

MODES = ("local", "tail", "backfill", "full")
#: A symbol lookup answers within the contract's 5 s API bound: its contract-details requests get what is left of
#: this (from the lookup's start), never the 10 s data-request bound (found by the nemesis: a discovery validated
#: just before the gateway stopped answering waited 10 s for its contract details).
LOOKUP_BUDGET_S = 4.5


class SymbolNotFound(NotFound):
    """IB has no security definition for the symbol (error 200)."""

    code = "SYMBOL-NOT-FOUND"


def iso(epoch_s: float | None) -> str | None:
    """ISO 8601 UTC text, or None."""
    return None if epoch_s is None else wall_iso(epoch_s)


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A timezone-aware UTC datetime (naive values are taken as UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def parse_moment(text: str | None, name: str, end_of_day: bool = False) -> dt.datetime | None:
    """An ISO 8601 date or date-time as UTC; a bare date is its first second, or its last with ``end_of_day``.

    Raises:
        InvalidInput: not ISO 8601.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            clock = dt.time(23, 59, 59) if end_of_day else dt.time(0, 0)
            return dt.datetime.combine(day, clock, tzinfo=dt.UTC)
        return as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInput(f"{name} {text!r} is not an ISO 8601 date (YYYY-MM-DD) or date-time") from None


def bar_moment(date_text: str) -> dt.datetime:
    """The UTC datetime of a cached bar's date."""
    moment = as_utc(dt.datetime.fromisoformat(date_text))
    assert moment is not None
    return moment


@dataclass
class SymbolRecord:
    """A symbol IB confirmed, with the contract to ask it for bars."""

    symbol: str
    instrument_type: str
    exchange: str
    currency: str
    description: str
    contract: Contract
    discovered_at: str = field(default_factory=wall_iso)
    last_validated: str = field(default_factory=wall_iso)
    validation_count: int = 1
    is_active: bool = True

    def info(self) -> dict[str, Any]:
        """The contract's ``SymbolInfo``."""
        return {"symbol": self.symbol, "instrument_type": self.instrument_type, "exchange": self.exchange,
                "currency": self.currency, "description": self.description, "discovered_at": self.discovered_at,
                "last_validated": self.last_validated, "validation_count": self.validation_count,
                "is_active": self.is_active}


@dataclass
class DataMetrics:
    """Counts of IB data requests (contract details, historical bars, health round-trips)."""

    total_requests: int = 0
    successful_requests: int = 0
    failed_requests: int = 0
    total_bars_fetched: int = 0
    last_success_wall: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``data_metrics`` of ``/ib/status`` (``success_rate`` is a fraction, 0 with no requests)."""
        rate = self.successful_requests / self.total_requests if self.total_requests else 0.0
        return {"total_requests": self.total_requests, "successful_requests": self.successful_requests,
                "failed_requests": self.failed_requests, "total_bars_fetched": self.total_bars_fetched,
                "success_rate": round(rate, 4)}


@dataclass(frozen=True)
class LoadRequest:
    """A validated ``POST /data/load`` body (a bare ``end_date`` includes that whole day, in UTC)."""

    symbol: str
    timeframe: str
    mode: str = "local"
    start_date: str | None = None
    end_date: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbol", normalize_symbol(self.symbol))
        check_timeframe(self.timeframe)
        if self.mode not in MODES:
            raise InvalidInput(f"invalid mode {self.mode!r}: one of {', '.join(MODES)}")
        if self.start and self.end and self.start >= self.end:
            raise InvalidInput(f"start_date {self.start.isoformat()} must be before end_date {self.end.isoformat()}")

    @property
    def start(self) -> dt.datetime | None:
        """The first moment asked for (UTC)."""
        return parse_moment(self.start_date, "start_date")

    @property
    def end(self) -> dt.datetime | None:
        """The last moment asked for (UTC)."""
        return parse_moment(self.end_date, "end_date", end_of_day=True)


class Backend:
    """Owns the pool, the bar cache, the symbol cache and the operations of one server.

    Args:
        settings: the server's settings.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pool = ConnectionPool(settings)
        self.store = BarStore(settings.data_dir)
        self.operations = OperationManager()
        self.limiter = market.RateLimiter(settings.rate_max_requests, settings.rate_period_s,
                                          settings.pacing_delay_s, max_wait_s=settings.request_timeout_s)
        self.data_metrics = DataMetrics()
        self.symbols: dict[str, SymbolRecord] = {}
        self.cache_stats = {"cache_hits": 0, "cache_misses": 0, "ib_lookups": 0, "not_found": 0}
        self._series_locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def start(self) -> None:
        """Start the pool's health loop."""
        await self.pool.start()

    async def stop(self) -> int:
        """Cancel running operations and close every IB connection; return how many were closed."""
        closed = await self.pool.close()
        await self.operations.shutdown()
        return closed

    # ------------------------------------------------------------------ IB bookkeeping

    @contextlib.asynccontextmanager
    async def _ib_call(self, what: str) -> AsyncIterator[None]:
        """Count one IB data request and turn low-level failures into IB- errors."""
        self.data_metrics.total_requests += 1
        try:
            yield
        except BaseException as exc:
            self.data_metrics.failed_requests += 1
            if isinstance(exc, (ConnectionError, OSError)):
                raise GatewayUnavailable(f"IB connection lost during {what}: {exc}") from None
            if isinstance(exc, RequestError):
                raise IBRequestError(f"IB answered {what} with error {exc.code}: {exc.message}",
                                     {"ib_error_code": exc.code}) from None
            raise
        self.data_metrics.successful_requests += 1
        self.data_metrics.last_success_wall = wall_now()

    # ------------------------------------------------------------------ IB endpoints

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """A real probe: a validated connection, then ``reqCurrentTime`` on it, all within the probe bound."""
        state = {"connection_ok": False, "data_fetching_ok": False}
        error: str | None = None

        async def probe() -> None:
            async with self.pool.connection() as conn:
                state["connection_ok"] = True
                async with self._ib_call("reqCurrentTime"):
                    await asyncio.wait_for(conn.ib.reqCurrentTimeAsync(), self.settings.validation_timeout_s)
                state["data_fetching_ok"] = True

        try:
            await asyncio.wait_for(probe(), self.settings.probe_timeout_s)
        except TimeoutError:
            error = (f"IB did not answer within {self.settings.probe_timeout_s:.1f} s"
                     if not state["connection_ok"] else
                     f"IB did not answer reqCurrentTime within {self.settings.validation_timeout_s:.1f} s")
        except BackendError as exc:
            error = exc.message
        if error:
            self.pool.record_outcome(False, f"health probe: {error}")
        healthy = state["connection_ok"] and state["data_fetching_ok"]
        return healthy, {"healthy": healthy, "connection_ok": state["connection_ok"],
                         "data_fetching_ok": state["data_fetching_ok"],
                         "last_successful_request": iso(self.data_metrics.last_success_wall),
                         "error_message": error}

    def status(self) -> dict[str, Any]:
        """``/ib/status``: the pool as it is now, and the counters since start."""
        live = [c for c in self.pool.connections() if c.is_connected()]
        oldest = min(live, key=lambda c: c.created_mono) if live else None
        lowest = live[0] if live else None
        m = self.pool.metrics
        return {
            "connection": {"connected": bool(live), "host": self.pool.host, "port": self.pool.port,
                           "client_id": lowest.client_id if lowest else None,
                           "connection_time": iso(oldest.created_wall) if oldest else None},
            "connection_metrics": {"total_connections": m.total_connections,
                                   "failed_connections": m.failed_connections,
                                   "last_connect_time": iso(m.last_connect_wall),
                                   "last_disconnect_time": iso(m.last_disconnect_wall),
                                   "uptime_seconds": round(time.monotonic() - oldest.created_mono, 3)
                                   if oldest else 0.0},
            "data_metrics": self.data_metrics.to_json(),
            "ib_available": bool(live) and self.pool.last_outcome_ok(),
            "pool": {**self.pool.stats(), "handoffs": m.handoffs, "validations_passed": m.validations_ok,
                     "validations_failed": m.validations_failed, "closed_connections": m.closed_connections},
        }

    async def resilience(self) -> dict[str, Any]:
        """``/ib/resilience`` (see :mod:`.resilience`)."""
        return await resilience_report(self.pool)

    def config(self) -> dict[str, Any]:
        """``/ib/config``: the values the pool uses now."""
        s = self.settings
        return {"host": self.pool.host, "port": self.pool.port,
                "client_id_range": {"min": self.pool.client_id_min, "max": self.pool.client_id_max},
                "timeout": s.connect_timeout_s, "readonly": s.readonly,
                "rate_limit": {"max_requests": s.rate_max_requests, "period_seconds": s.rate_period_s,
                               "pacing_delay": s.pacing_delay_s},
                "pool": {"max_connections": s.pool_size, "validation_timeout_seconds": s.validation_timeout_s,
                         "max_idle_time_seconds": s.max_idle_s, "health_check_interval": s.health_interval_s,
                         "acquire_timeout_seconds": s.acquire_timeout_s}}

    def update_config(self, host: str | None, port: int | None, client_id: int | None) -> dict[str, Any]:
        """Point new connections at a new host/port/first client ID; retire the old connections."""
        previous = self.config()
        changed = ((host is not None and host != self.pool.host) or (port is not None and port != self.pool.port)
                   or (client_id is not None and client_id != self.pool.client_id_min))
        if changed:
            self.pool.reconfigure(host=host, port=port, client_id_min=client_id)
        return {"previous_config": previous, "new_config": self.config(), "reconnect_required": changed}

    def cleanup(self, force: bool = False) -> dict[str, Any]:
        """Close every pooled connection (in-use ones on release, or now with ``force``)."""
        before = self.pool.stats()
        closed = self.pool.cleanup(force=force)
        after = self.pool.stats()
        pending = after["active_connections"]
        message = f"closed {closed} IB connection(s)"
        if pending:
            message += f"; {pending} in use will close when released"
        return {"success": True, "message": message, "connections_closed": closed,
                "pool_stats_before": before, "pool_stats_after": after}

    # ------------------------------------------------------------------ symbols

    async def discover(self, symbol: str, force_refresh: bool = False) -> dict[str, Any]:
        """Symbol info from the cache, or from IB (``reqContractDetails``) when absent or forced."""
        started = time.monotonic()
        symbol = normalize_symbol(symbol)
        record = self.symbols.get(symbol)
        if record is not None and record.is_active and not force_refresh:
            self.cache_stats["cache_hits"] += 1
            return {"symbol_info": record.info(), "cached": True,
                    "discovery_time_ms": round((time.monotonic() - started) * 1000, 3)}
        self.cache_stats["cache_misses"] += 1
        record = await self._lookup(symbol)
        return {"symbol_info": record.info() if record else None, "cached": False,
                "discovery_time_ms": round((time.monotonic() - started) * 1000, 3)}

    async def _lookup(self, symbol: str) -> SymbolRecord | None:
        """Ask IB for each candidate contract on one validated connection; record what it confirms."""
        self.cache_stats["ib_lookups"] += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOOKUP_BUDGET_S
        async with self.pool.connection() as conn:
            for contract in market.candidate_contracts(symbol):
                timeout_s = min(self.settings.request_timeout_s, max(0.1, deadline - loop.time()))
                async with self._ib_call("reqContractDetails"):
                    details = await market.contract_details(conn.ib, contract, timeout_s)
                if details:
                    return self._remember(symbol, details[0])
        self.cache_stats["not_found"] += 1
        known = self.symbols.get(symbol)
        if known is not None:
            known.is_active = False
        return None

    def _remember(self, symbol: str, details: Any) -> SymbolRecord:
        contract = details.contract
        previous = self.symbols.get(symbol)
        record = SymbolRecord(
            symbol=symbol, instrument_type=market.SEC_TYPE_TO_INSTRUMENT.get(contract.secType, contract.secType.lower()),
            exchange=contract.primaryExchange or contract.exchange, currency=contract.currency,
            description=details.longName or symbol, contract=contract)
        if previous is not None:
            record.discovered_at = previous.discovered_at
            record.validation_count = previous.validation_count + 1
        self.symbols[symbol] = record
        return record

    def discovered(self, instrument_type: str | None = None) -> dict[str, Any]:
        """``/ib/symbols/discovered``."""
        records = sorted(self.symbols.values(), key=lambda r: r.symbol)
        counts: dict[str, int] = {}
        for r in records:
            counts[r.instrument_type] = counts.get(r.instrument_type, 0) + 1
        if instrument_type:
            records = [r for r in records if r.instrument_type == instrument_type]
        return {"symbols": [r.info() for r in records], "total_count": len(records), "instrument_types": counts,
                "cache_stats": {**self.cache_stats, "cached_symbols": len(self.symbols)}}

    async def _contract_for(self, symbol: str) -> Contract:
        record = self.symbols.get(symbol)
        if record is None or not record.is_active:
            record = await self._lookup(symbol)
        if record is None:
            raise SymbolNotFound(f"IB has no security definition for {symbol}")
        return record.contract

    def symbol_list(self) -> list[dict[str, Any]]:
        """``/symbols``: discovered symbols and cached series."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.symbols.values():
            out[r.symbol] = {"symbol": r.symbol, "name": r.description, "instrument_type": r.instrument_type,
                             "exchange": r.exchange, "currency": r.currency, "available_timeframes": []}
        for symbol, timeframe in self.store.cached_series():
            entry = out.setdefault(symbol, {"symbol": symbol, "name": symbol, "instrument_type": None,
                                            "exchange": None, "currency": None, "available_timeframes": []})
            entry["available_timeframes"].append(timeframe)
        return [out[k] for k in sorted(out)]

    # ------------------------------------------------------------------ data

    def start_load(self, request: LoadRequest) -> Operation:
        """Start a load as an operation (the sync endpoint awaits its task)."""
        metadata = {"symbol": request.symbol, "timeframe": request.timeframe, "mode": request.mode,
                    "start_date": request.start.isoformat() if request.start else None,
                    "end_date": request.end.isoformat() if request.end else None}
        return self.operations.start("data_load", metadata, lambda op: self._load(request, op))

    async def _load(self, request: LoadRequest, op: Operation) -> dict[str, Any]:
        """Run a load, keeping ``op.result`` true to what was fetched at every moment."""
        result: dict[str, Any] = {"status": "failed", "operation_id": op.operation_id, "fetched_bars": 0,
                                  "cached_before": 0, "merged_file": None, "gaps_analyzed": 0,
                                  "segments_fetched": 0, "ib_requests_made": 0, "execution_time_seconds": 0.0,
                                  "error_message": None}
        op.result = result
        started = time.monotonic()
        try:
            await self._load_into(request, op, result)
        except asyncio.CancelledError:
            result["status"] = "partial" if result["segments_fetched"] else "failed"
            result["error_message"] = "cancelled by request"
            raise
        except BackendError as exc:
            op.error = exc
            result["status"] = "partial" if result["segments_fetched"] else "failed"
            result["error_message"] = exc.message
        finally:
            result["execution_time_seconds"] = round(time.monotonic() - started, 3)
        return result

    async def _load_into(self, request: LoadRequest, op: Operation, result: dict[str, Any]) -> None:
        symbol, timeframe = request.symbol, request.timeframe
        cached = await asyncio.to_thread(self.store.read, symbol, timeframe)
        result["cached_before"] = len(cached or [])
        result["merged_file"] = str(self.store.path(symbol, timeframe))
        if request.mode == "local":
            if cached is None:
                raise DataNotFound(f"no local data for {symbol} {timeframe}; load it with mode tail or full")
            result["status"] = "success"
            return
        ranges = self._plan_ranges(request, cached)
        result["gaps_analyzed"] = len(ranges)
        chunks = [c for start, end in ranges for c in market.plan_chunks(start, end, timeframe)]
        op.progress.update(percentage=0.0, current_step="resolving contract", segments_total=len(chunks),
                           segments_done=0, bars_fetched=0, ib_requests_made=0)
        if not chunks:
            result["status"] = "success"
            return
        contract = await self._contract_for(symbol)
        got: set[str] = set()  # chunks may overlap by a bar: count each bar once
        first, last = chunks[0][0], chunks[-1][1]
        for index, (start, end) in enumerate(chunks, 1):
            op.progress["current_step"] = (f"segment {index}/{len(chunks)}: {start.isoformat()} .. "
                                           f"{end.isoformat()}")
            served = await self._fetch_segment(contract, timeframe, start, end, result, op)
            # IB rounds durations up; keep the bars that overlap the range asked for.
            bars = [b for b in served if market.bar_overlaps(bar_moment(b.date), timeframe, first, last)]
            if bars:
                await self._merge(symbol, timeframe, bars)
            new = {b.date for b in bars} - got
            got |= new
            result["fetched_bars"] = len(got)
            result["segments_fetched"] += 1
            self.data_metrics.total_bars_fetched += len(new)
            op.progress.update(percentage=round(100.0 * index / len(chunks), 1), segments_done=index,
                               bars_fetched=result["fetched_bars"])
        result["status"] = "success"

    def _plan_ranges(self, request: LoadRequest, cached: list[Bar] | None) -> list[tuple[dt.datetime, dt.datetime]]:
        """The time ranges a mode needs from IB, given what is cached."""
        now = dt.datetime.now(dt.UTC)
        end = min(request.end or now, now)
        lookback = market.DEFAULT_LOOKBACK[request.timeframe]
        first = bar_moment(cached[0].date) if cached else None
        last = bar_moment(cached[-1].date) if cached else None
        if request.mode == "full":
            start = request.start or end - lookback
        elif request.mode == "tail":
            start = request.start or last or end - lookback
        else:  # backfill: everything before the first cached bar
            end = min(end, first) if first else end
            start = request.start or end - lookback
        return [(start, end)] if start < end else []

    async def _fetch_segment(self, contract: Contract, timeframe: str, start: dt.datetime, end: dt.datetime,
                             result: dict[str, Any], op: Operation) -> list[Bar]:
        """One chunk from IB on a freshly validated connection, retrying pacing errors with backoff."""
        backoff_s = self.settings.pacing_backoff_s
        last_error = ""
        for attempt in range(self.settings.pacing_retries + 1):
            await self.limiter.slot()
            async with self.pool.connection() as conn:
                result["ib_requests_made"] += 1
                op.progress["ib_requests_made"] = result["ib_requests_made"]
                try:
                    async with self._ib_call("reqHistoricalData"):
                        return await market.historical_bars(conn.ib, contract, end, end - start, timeframe,
                                                            self.settings.request_timeout_s)
                except market.Paced as exc:
                    last_error = str(exc)
            if attempt < self.settings.pacing_retries:
                op.progress["current_step"] = f"IB pacing violation; retrying in {backoff_s:g} s"
                await asyncio.sleep(backoff_s)  # IB's pacing rule: the wait is the remedy
                backoff_s *= 2
        raise PacingViolation(f"IB pacing violation persisted after {self.settings.pacing_retries} retries: "
                              f"{last_error}")

    async def _merge(self, symbol: str, timeframe: str, bars: list[Bar]) -> None:
        lock = self._series_locks.setdefault((symbol, timeframe), asyncio.Lock())
        async with lock:
            await asyncio.to_thread(self.store.merge, symbol, timeframe, bars)

    async def bars(self, symbol: str, timeframe: str, start_date: str | None = None,
                   end_date: str | None = None) -> dict[str, Any]:
        """``/data/{symbol}/{timeframe}``: cached bars, optionally between two dates (ISO 8601)."""
        symbol, timeframe = normalize_symbol(symbol), check_timeframe(timeframe)
        start = parse_moment(start_date, "start_date")
        end = parse_moment(end_date, "end_date", end_of_day=True)
        cached = await asyncio.to_thread(self.store.read, symbol, timeframe)
        if cached is None:
            raise DataNotFound(f"no cached data for {symbol} {timeframe}")
        rows = [b for b in cached if (start is None or bar_moment(b.date) >= start)
                and (end is None or bar_moment(b.date) <= end)]
        return {"dates": [b.date for b in rows], "ohlcv": [b.ohlcv() for b in rows],
                "metadata": {"symbol": symbol, "timeframe": timeframe, "start": rows[0].date if rows else None,
                             "end": rows[-1].date if rows else None, "points": len(rows)}}


def load_error_status(op: Operation) -> BackendError | None:
    """The error a finished sync load should answer with (None: it succeeded, perhaps partly)."""
    if op.status == "cancelled":
        return OperationCancelled(f"operation {op.operation_id} was cancelled")
    if op.result is None or op.result.get("status") != "failed":
        return None
    if isinstance(op.error, BackendError):
        return op.error
    return BackendError(op.error_message or "load failed")
