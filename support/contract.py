"""The KTRDR API contract as data: endpoint names in the user's words and the shapes they must have."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from support.drivers.api import ApiDriver, ApiResponse

#: Possible overall scores: sums of 35 / 30 / 35 (+5), capped at 100.
ALLOWED_SCORES = (0.0, 30.0, 35.0, 40.0, 65.0, 70.0, 75.0, 100.0)
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


def score(response: ApiResponse) -> float:
    """The overall resilience score of a resilience report.

    Raises:
        AssertionError: the answer carries no score.
    """
    data = response.data
    assert isinstance(data, dict) and isinstance(data.get("overall_resilience_score"), (int, float)), \
        f"no resilience score in {response.describe()}"
    return float(data["overall_resilience_score"])


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO 8601 timestamp (naive if it names no offset).

    Raises:
        ValueError: not ISO 8601.
    """
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
