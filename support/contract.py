"""The KTRDR API contract (docs/contract.md) as data and as typed values.

Endpoint names in the user's words and the shapes their answers must have (:data:`SHAPES`, for the shape
claims); and each answer a claim reads, parsed once into a typed value (:class:`ResilienceReport`,
:class:`IbStatus`, :class:`IbConfig`, :class:`IbHealth`, :class:`Discovery`, :class:`DataLoad`,
:class:`Operation`, :class:`Cleanup`). A field the contract names but the answer lacks is ``None`` in the value;
a claim that needs it calls :func:`needed`, which fails the claim naming the field. Nothing else in the suite
reads the contract's field names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from support.drivers.api import ApiDriver, ApiResponse
from support.verdict import ClaimFailed, NotProvided

T = TypeVar("T")

#: Possible overall scores: sums of 35 / 30 / 35 (+5), capped at 100.
ALLOWED_SCORES = (0.0, 30.0, 35.0, 40.0, 65.0, 70.0, 75.0, 100.0)
#: The states an operation ends in.
FINISHED = ("completed", "failed", "cancelled")
PHASES = ("phase_1_systematic_validation", "phase_2_garbage_collection", "phase_3_client_id_preference")

#: The user's name for an endpoint → how to call it.
ENDPOINTS: dict[str, Callable[[ApiDriver], ApiResponse]] = {
    "the service health": ApiDriver.health,
    "the IB status": ApiDriver.ib_status,
    "the IB health": ApiDriver.ib_health,
    "the resilience report": ApiDriver.resilience,
    "the IB configuration": ApiDriver.ib_config,
    "the discovered symbols": ApiDriver.discovered,
}

def read(endpoint: str, api: ApiDriver) -> ApiResponse:
    """Call the endpoint the user names ("the IB status").

    Raises:
        KeyError: no endpoint of that name (the message lists them): a suite bug, not a failed claim.
    """
    if endpoint not in ENDPOINTS:
        raise KeyError(f"unknown endpoint name {endpoint!r}; known: {', '.join(ENDPOINTS)}")
    return ENDPOINTS[endpoint](api)


#: HTTP statuses a well-formed answer may have (an unhealthy IB is a 503 carrying the health object).
STATUSES: dict[str, tuple[int, ...]] = {"the IB health": (200, 503)}

_NUMBER = (int, float)
_OPT_STR = (str, type(None))
_OPT_NUM = (int, float, type(None))

#: Required keys and their JSON types, per endpoint (nested dicts are checked recursively).
SHAPES: dict[str, dict[str, Any]] = {
    "the service health": {"status": str, "version": str},
    "the IB status": {
        "connection": {"connected": bool, "host": str, "port": int, "client_id": (int, type(None)),
                       "connection_time": _OPT_STR},
        "connection_metrics": {"total_connections": int, "failed_connections": int,
                               "last_connect_time": _OPT_STR, "last_disconnect_time": _OPT_STR,
                               "uptime_seconds": _OPT_NUM},
        "data_metrics": {"total_requests": int, "successful_requests": int, "failed_requests": int,
                         "total_bars_fetched": int, "success_rate": _NUMBER},
        "ib_available": bool,
    },
    "the IB health": {"healthy": bool, "connection_ok": bool, "data_fetching_ok": bool,
                      "last_successful_request": _OPT_STR, "error_message": _OPT_STR},
    "the resilience report": {
        "phase_1_systematic_validation": {"status": str, "validation_enabled": bool,
                                          "validation_method_exists": bool, "pool_running": bool,
                                          "description": str},
        "phase_2_garbage_collection": {"status": str, "max_idle_time_seconds": _NUMBER,
                                       "idle_connections_count": int, "active_connections_count": int,
                                       "connections_ready_for_cleanup": int,
                                       "health_check_interval": _NUMBER, "description": str},
        "phase_3_client_id_preference": {"status": str, "client_ids_in_use": list, "using_client_id_1": bool,
                                         "lowest_client_id_used": (int, type(None)),
                                         "sequential_preference_detected": bool,
                                         "total_active_connections": int, "description": str},
        "overall_resilience_score": _NUMBER,
        "connection_pool_health": {"total_connections": int, "healthy_connections": int,
                                   "active_connections": int, "pool_uptime_seconds": _NUMBER},
        "timestamp": str,
    },
    "the IB configuration": {"host": str, "port": int, "client_id_range": {"min": int, "max": int},
                             "timeout": _NUMBER, "readonly": bool,
                             "rate_limit": {"max_requests": int, "period_seconds": _NUMBER,
                                            "pacing_delay": _NUMBER}},
    "the discovered symbols": {"symbols": list, "total_count": int, "instrument_types": dict,
                               "cache_stats": dict},
}


def shape_errors(value: Any, shape: dict[str, Any], where: str = "data") -> list[str]:
    """Every way ``value`` departs from ``shape`` (missing keys, wrong types)."""
    if not isinstance(value, dict):
        return [f"{where} is {type(value).__name__}, expected an object"]
    errors = []
    for key, expected in shape.items():
        path = f"{where}.{key}"
        if key not in value:
            errors.append(f"{path} is missing")
        elif isinstance(expected, dict):
            errors += shape_errors(value[key], expected, path)
        elif isinstance(value[key], bool) and expected in (int, _NUMBER, _OPT_NUM):
            errors.append(f"{path} is a bool, expected a number")
        elif not isinstance(value[key], expected):
            errors.append(f"{path} is {type(value[key]).__name__}: {value[key]!r:.60}")
    return errors


def envelope_errors(response: ApiResponse, endpoint: str) -> list[str]:
    """How an answer departs from the contract for ``endpoint`` (envelope included)."""
    shape = SHAPES[endpoint]
    if endpoint == "the service health":
        return shape_errors(response.body, shape, "body")
    body = response.body
    if not isinstance(body, dict) or not {"success", "data", "error"} <= set(body):
        return [f"no success/data/error envelope: {response.describe()}"]
    return shape_errors(body["data"], shape)


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO 8601 timestamp (naive if it names no offset).

    Raises:
        ValueError: not ISO 8601.
    """
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# ------------------------------------------------------------------------------------------- typed answers

class ContractError(NotProvided):
    """An answer lacks a field a claim needs (the message names the field and quotes the answer; ``field_path``
    names it alone)."""

    def __init__(self, message: str, field_path: str = ""):
        super().__init__(message)
        self.field_path = field_path


def needed(value: T | None, field_path: str, response: ApiResponse) -> T:
    """``value`` when the answer had it; else fail the claim as not provided, naming ``field_path``."""
    if value is None:
        if response.ok:
            raise ContractError(f"contract: not provided: {response.method} {response.path} answers without "
                                f"{field_path}: {response.describe()}", field_path)
        raise ClaimFailed(f"no {field_path} in {response.describe()}")   # a failed answer lacks it for that reason
    return value


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ResilienceReport:
    """``GET /ib/resilience``: the score, each phase's status, and the facts the phases state."""

    score: float | None
    phase_status: dict[str, str | None]
    max_idle_s: float | None
    health_interval_s: float | None
    client_ids_in_use: tuple[int, ...] | None
    pool_total: int | None
    pool_healthy: int | None
    timestamp: str | None
    phase_3: dict[str, Any]

    @classmethod
    def of(cls, response: ApiResponse) -> ResilienceReport:
        data = _object(response.data)
        phase_2, phase_3 = _object(data.get(PHASES[1])), _object(data.get(PHASES[2]))
        in_use = phase_3.get("client_ids_in_use")
        pool = _object(data.get("connection_pool_health"))
        return cls(score=_number(data.get("overall_resilience_score")),
                   phase_status={phase: _text(_object(data.get(phase)).get("status")) for phase in PHASES},
                   max_idle_s=_number(phase_2.get("max_idle_time_seconds")),
                   health_interval_s=_number(phase_2.get("health_check_interval")),
                   client_ids_in_use=tuple(i for i in in_use if _integer(i) is not None)
                   if isinstance(in_use, list) else None,
                   pool_total=_integer(pool.get("total_connections")),
                   pool_healthy=_integer(pool.get("healthy_connections")),
                   timestamp=_text(data.get("timestamp")), phase_3=phase_3)

    @property
    def pool(self) -> str:
        """The pool health, for messages."""
        return f"{self.pool_healthy} healthy of {self.pool_total}"


@dataclass(frozen=True)
class IbStatus:
    """``GET /ib/status``: the connection the backend says it has."""

    connected: bool | None
    host: str | None
    port: int | None
    client_id: int | None
    connection: dict[str, Any]

    @classmethod
    def of(cls, response: ApiResponse) -> IbStatus:
        connection = _object(_object(response.data).get("connection"))
        connected = connection.get("connected")
        return cls(connected=connected if isinstance(connected, bool) else None, host=_text(connection.get("host")),
                   port=_integer(connection.get("port")), client_id=_integer(connection.get("client_id")),
                   connection=connection)


@dataclass(frozen=True)
class IbConfig:
    """``GET /ib/config``: where the backend connects and which client IDs it may use."""

    host: str | None
    port: int | None
    client_id_min: int | None
    client_id_max: int | None

    @classmethod
    def of(cls, response: ApiResponse) -> IbConfig:
        data = _object(response.data)
        id_range = _object(data.get("client_id_range"))
        return cls(host=_text(data.get("host")), port=_integer(data.get("port")),
                   client_id_min=_integer(id_range.get("min")), client_id_max=_integer(id_range.get("max")))

    @property
    def client_id_range(self) -> str:
        """The range, for messages."""
        return f"{self.client_id_min}..{self.client_id_max}"


@dataclass(frozen=True)
class IbHealth:
    """``GET /ib/health``: healthy or not (a 503 carries the same object)."""

    healthy: bool | None

    @classmethod
    def of(cls, response: ApiResponse) -> IbHealth:
        healthy = _object(response.data).get("healthy")
        return cls(healthy=healthy if isinstance(healthy, bool) else None)


@dataclass(frozen=True)
class Discovery:
    """``POST /ib/symbols/discover``: the symbol's details, or none when IB does not know it."""

    symbol_info: dict[str, Any] | None

    @classmethod
    def of(cls, response: ApiResponse) -> Discovery:
        info = _object(response.data).get("symbol_info")
        return cls(symbol_info=info if isinstance(info, dict) and info else None)


@dataclass(frozen=True)
class DataLoad:
    """``POST /data/load``: a synchronous load's outcome, or an asynchronous load's operation."""

    status: str | None
    fetched_bars: int | None
    ib_requests_made: int | None
    error_message: str | None
    operation_id: str | None

    @classmethod
    def of(cls, response: ApiResponse) -> DataLoad:
        data = _object(response.data)
        return cls(status=_text(data.get("status")), fetched_bars=_integer(data.get("fetched_bars")),
                   ib_requests_made=_integer(data.get("ib_requests_made")),
                   error_message=_text(data.get("error_message")) or response.error_message or None,
                   operation_id=_text(data.get("operation_id")) or None)

    @property
    def succeeded(self) -> bool:
        """The load says it succeeded."""
        return self.status == "success"


@dataclass(frozen=True)
class Operation:
    """``GET /operations/{id}``: its state, its progress and, once finished, what it fetched."""

    status: str | None
    percentage: float
    fetched_bars: int
    symbol: str | None
    timeframe: str | None

    @classmethod
    def of(cls, response: ApiResponse) -> Operation:
        data = _object(response.data)
        summary = _object(data.get("result_summary"))
        progress = _object(data.get("progress"))
        percentage = progress.get("percentage")
        try:
            percent = float(percentage or 0)
        except (TypeError, ValueError):
            percent = 0.0
        return cls(status=_text(data.get("status")), percentage=percent,
                   fetched_bars=_integer(summary.get("fetched_bars")) or 0,
                   symbol=_text(summary.get("symbol")) or None, timeframe=_text(summary.get("timeframe")) or None)


@dataclass(frozen=True)
class Cleanup:
    """``POST /ib/cleanup``: how many connections the backend says it closed."""

    connections_closed: int | None

    @classmethod
    def of(cls, response: ApiResponse) -> Cleanup:
        return cls(connections_closed=_integer(_object(response.data).get("connections_closed")))
