"""HTTP driver for the system's API (the KTRDR contract, prefix ``/api/v1``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from support.verdict import NotProvided

PREFIX = "/api/v1"
#: What a FastAPI/Starlette server answers for a route it does not have (its default body, no envelope).
NO_ROUTE = ({"detail": "Not Found"}, {"detail": "Method Not Allowed"})
#: The framework's words for a missing route, when a backend wraps them in its envelope.
NO_ROUTE_MESSAGES = ("Not Found", "Method Not Allowed")
#: The contract's endpoints whose path names no resource: a 404 or 405 there can only mean the route is missing.
FIXED_PATHS = frozenset({"/health", "/ib/status", "/ib/health", "/ib/resilience", "/ib/config", "/ib/cleanup",
                         "/ib/symbols/discovered", "/data/load", "/symbols"})


class RouteMissing(NotProvided):
    """The API has no such route: the contract's endpoint is not provided (a 404 or 405 with the framework's
    default body, not an answer of the backend's own). ``method`` and ``path`` (below ``/api/v1``) name it."""

    def __init__(self, message: str, method: str = "", path: str = ""):
        super().__init__(message)
        self.method, self.path = method, path


@dataclass(frozen=True)
class ApiResponse:
    """One exchange with the API, as seen by the client.

    ``status`` is None when no HTTP answer came (refused, reset, or ``timed_out``).
    """

    method: str
    path: str
    request_body: Any
    status: int | None
    body: Any
    elapsed_s: float
    started_mono: float
    error: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """HTTP 2xx with ``success`` not false."""
        if self.status is None or not 200 <= self.status < 300:
            return False
        return not (isinstance(self.body, dict) and self.body.get("success") is False)

    @property
    def data(self) -> Any:
        """The envelope's ``data`` (None when absent)."""
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def error_code(self) -> str:
        """The envelope's ``error.code`` ('' when absent)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("code") or "")
        return ""

    @property
    def error_message(self) -> str:
        """The envelope's ``error.message``, or the transport error."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return str(self.body["error"].get("message") or "")
        return self.error

    @property
    def route_missing(self) -> bool:
        """The server has no such route: a 404/405 with the framework's default body or words, or on an endpoint
        whose path names no resource (an unknown symbol's 404 with a message of its own is an answer)."""
        return self.status in (404, 405) and (self.body in NO_ROUTE or self.path in FIXED_PATHS
                                               or self.error_message in NO_ROUTE_MESSAGES)

    @property
    def finished_mono(self) -> float:
        """Monotonic time the answer (or failure) arrived."""
        return self.started_mono + self.elapsed_s

    def describe(self) -> str:
        """One line for failure messages."""
        outcome = f"HTTP {self.status}" if self.status is not None else (self.error or "no answer")
        body = json.dumps(self.body)[:400] if self.body is not None else ""
        return f"{self.method} {self.path} → {outcome} in {self.elapsed_s:.2f} s {body}"


@dataclass
class ApiDriver:
    """Calls the API with a bound on every request and keeps a transcript of exchanges.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        timeout_s: default bound of one request (a timeout is an observation, not an exception).
    """

    base_url: str
    timeout_s: float = 30.0
    load_timeout_s: float = 90.0      # a synchronous data load that is really receiving bars may take long
    transcript: list[ApiResponse] = field(default_factory=list)
    record: Callable[[ApiResponse], None] | None = None   # also hands every exchange to the run's history
    strict: bool = False              # raise RouteMissing when the API has no route for a request (the spec's own)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
             timeout_s: float | None = None) -> ApiResponse:
        """One request under ``PREFIX``; never raises for transport trouble."""
        url = self.base_url + PREFIX + path
        bound = timeout_s or self.timeout_s
        started = time.monotonic()
        status, payload, error, timed_out = None, None, "", False
        try:
            reply = self._session().request(method, url, json=body, params=params, timeout=bound)
            status = reply.status_code
            try:
                payload = reply.json()
            except ValueError:
                payload = reply.text[:2000]
        except requests.Timeout:
            timed_out, error = True, f"no answer within {bound:.1f} s"
        except requests.ConnectionError as exc:
            error = f"connection failed: {exc.__class__.__name__}"
        response = ApiResponse(method, path, body, status, payload, time.monotonic() - started,
                               started, error, timed_out)
        with self._lock:
            self.transcript.append(response)
        if self.record is not None:
            self.record(response)
        if self.strict and response.route_missing:
            asked = path + (f"?{urlencode(params)}" if params else "")   # a query may make the route (async_mode)
            raise RouteMissing(f"contract: not provided: the API has no {method} {PREFIX}{asked} "
                               f"(HTTP {response.status} {json.dumps(response.body)})", method, asked)
        return response

    # -------------------------------------------------------------- the contract's doors

    def health(self) -> ApiResponse:
        """``GET /health`` (no envelope)."""
        return self.call("GET", "/health")

    def ib_status(self) -> ApiResponse:
        """``GET /ib/status``."""
        return self.call("GET", "/ib/status")

    def ib_health(self) -> ApiResponse:
        """``GET /ib/health`` (503 when unhealthy)."""
        return self.call("GET", "/ib/health")

    def resilience(self) -> ApiResponse:
        """``GET /ib/resilience``."""
        return self.call("GET", "/ib/resilience")

    def ib_config(self) -> ApiResponse:
        """``GET /ib/config``."""
        return self.call("GET", "/ib/config")

    def update_ib_config(self, **changes: Any) -> ApiResponse:
        """``PUT /ib/config`` with host/port/client_id."""
        return self.call("PUT", "/ib/config", changes)

    def cleanup(self) -> ApiResponse:
        """``POST /ib/cleanup``: close every pooled connection."""
        return self.call("POST", "/ib/cleanup")

    def discover(self, symbol: str, force_refresh: bool = True) -> ApiResponse:
        """``POST /ib/symbols/discover``."""
        return self.call("POST", "/ib/symbols/discover", {"symbol": symbol, "force_refresh": force_refresh})

    def discovered(self, instrument_type: str | None = None) -> ApiResponse:
        """``GET /ib/symbols/discovered``."""
        params = {"instrument_type": instrument_type} if instrument_type else None
        return self.call("GET", "/ib/symbols/discovered", params=params)

    def load_data(self, symbol: str, timeframe: str = "1d", mode: str = "tail",
                  async_mode: bool = False, timeout_s: float | None = None, **extra: Any) -> ApiResponse:
        """``POST /data/load`` (a synchronous load may legitimately take long: ``load_timeout_s``)."""
        body = {"symbol": symbol, "timeframe": timeframe, "mode": mode, **extra}
        return self.call("POST", "/data/load", body, params={"async_mode": str(async_mode).lower()},
                         timeout_s=timeout_s or max(self.timeout_s, self.load_timeout_s))

    def operation(self, operation_id: str) -> ApiResponse:
        """``GET /operations/{id}``."""
        return self.call("GET", f"/operations/{operation_id}")

    def cancel_operation(self, operation_id: str) -> ApiResponse:
        """``DELETE /operations/{id}``."""
        return self.call("DELETE", f"/operations/{operation_id}")

    def cached_data(self, symbol: str, timeframe: str = "1d") -> ApiResponse:
        """``GET /data/{symbol}/{timeframe}``."""
        return self.call("GET", f"/data/{symbol}/{timeframe}")

    def symbols(self) -> ApiResponse:
        """``GET /symbols`` (the CLI's liveness probe)."""
        return self.call("GET", "/symbols")

    def concurrently(self, calls: list[Callable[[], ApiResponse]], max_workers: int = 20) -> list[ApiResponse]:
        """Run calls at the same time (bounded by each call's own timeout); results in order."""
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            return list(pool.map(lambda call: call(), calls))
