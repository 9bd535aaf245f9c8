"""The Toxiproxy-style JSON control API shared by the gateway simulator and the fault proxy.

Server side: :class:`ControlServer`, a tiny asyncio HTTP/1.1 server (one request per
connection, bounded reads) routing to a :class:`FaultTarget`. Client side:
:class:`ControlClient`, a blocking ``requests`` wrapper used by tests and the suite.

Routes (every body is JSON):

=======  ======================  =================================================
GET      /health                 ``{"status": "ok", "role": ...}``
GET      /faults                 ``{"faults": [fault, ...]}``
POST     /faults                 apply ``fault`` → 201 ``fault`` (replaces same name)
DELETE   /faults/{name}          heal → 204 (also when not active)
POST     /reset                  heal every fault → 204
GET      /connections            ``{"connections": [connection, ...]}``
GET      /history?since=N        ``{"events": [event, ...], "last_seq": N}``
=======  ======================  =================================================

A fault is ``{"name", "kind", "client_id", "attributes"}`` (see :mod:`support.faults`).
Errors are ``{"error": message}`` with 400 (bad input), 404 or 405.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import requests

from .faults import Fault, FaultError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
READ_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


Response = tuple[int, Any]
Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]


class HttpError(Exception):
    """Turned into an ``{"error": ...}`` response with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class FaultTarget(Protocol):
    """What the gateway and the proxy expose to their control API."""

    plane: str

    def active_faults(self) -> list[Fault]: ...
    async def apply(self, fault: Fault) -> None: ...
    async def heal(self, name: str) -> None: ...
    async def reset(self) -> None: ...
    def connections(self) -> list[dict[str, Any]]: ...
    def history_since(self, seq: int) -> tuple[list[dict[str, Any]], int]: ...


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 413: "Payload Too Large",
            500: "Internal Server Error"}


class ControlServer:
    """JSON-over-HTTP control endpoint bound to loopback by default.

    Args:
        target: the gateway or proxy whose faults, connections and history are served.
        role: reported by ``GET /health``.
        extra_routes: further ``(method, regex) → handler`` routes a role adds.
    """

    def __init__(self, target: FaultTarget, role: str,
                 extra_routes: dict[tuple[str, str], Handler] | None = None):
        self.target = target
        self.role = role
        self._server: asyncio.base_events.Server | None = None
        routes: dict[tuple[str, str], Handler] = {
            ("GET", r"/health"): self._health,
            ("GET", r"/faults"): self._list_faults,
            ("POST", r"/faults"): self._apply,
            ("DELETE", r"/faults/(?P<name>[^/]+)"): self._heal,
            ("POST", r"/reset"): self._reset,
            ("GET", r"/connections"): self._connections,
            ("GET", r"/history"): self._history,
        }
        routes.update(extra_routes or {})
        self._routes = [(method, re.compile(pattern + r"/?$"), handler)
                        for (method, pattern), handler in routes.items()]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; return the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # ------------------------------------------------------------------ routes

    async def _health(self, request: Request, params: dict[str, str]) -> Response:
        return 200, {"status": "ok", "role": self.role}

    async def _list_faults(self, request: Request, params: dict[str, str]) -> Response:
        return 200, {"faults": [f.to_json() for f in self.target.active_faults()]}

    async def _apply(self, request: Request, params: dict[str, str]) -> Response:
        try:
            fault = Fault.from_json(self.target.plane, request.body)
        except FaultError as exc:
            raise HttpError(400, str(exc)) from None
        await self.target.apply(fault)
        return 201, fault.to_json()

    async def _heal(self, request: Request, params: dict[str, str]) -> Response:
        await self.target.heal(unquote(params["name"]))
        return 204, None

    async def _reset(self, request: Request, params: dict[str, str]) -> Response:
        await self.target.reset()
        return 204, None

    async def _connections(self, request: Request, params: dict[str, str]) -> Response:
        return 200, {"connections": self.target.connections()}

    async def _history(self, request: Request, params: dict[str, str]) -> Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise HttpError(400, "since must be an integer") from None
        events, last_seq = self.target.history_since(since)
        return 200, {"events": events, "last_seq": last_seq}

    # ------------------------------------------------------------------ HTTP

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, payload = 500, {"error": "internal error"}
        try:
            request = await asyncio.wait_for(self._read(reader), READ_TIMEOUT_S)
            status, payload = await self._dispatch(request)
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except asyncio.TimeoutError:
            status, payload = 408, {"error": "request not received in time"}
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            return
        except Exception:  # a bug in a handler must not take the server down
            log.exception("control request failed")
        body = b"" if payload is None else json.dumps(payload).encode()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        with contextlib.suppress(Exception):
            writer.write(head + body)
            await asyncio.wait_for(writer.drain(), READ_TIMEOUT_S)
        writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> Request:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(413, "headers too large") from None
        if len(head) > MAX_HEADER_BYTES:
            raise HttpError(413, "headers too large")
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            raise HttpError(400, "malformed request line") from None
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise HttpError(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise HttpError(413, "body too large")
        raw = await reader.readexactly(length) if length else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise HttpError(400, f"body is not JSON: {exc}") from None
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return Request(method.upper(), parts.path, query, body)

    async def _dispatch(self, request: Request) -> Response:
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match:
                allowed = True
                if method == request.method:
                    return await handler(request, match.groupdict())
        if allowed:
            raise HttpError(405, f"{request.method} not allowed on {request.path}")
        raise HttpError(404, f"no route {request.path}")


@contextlib.contextmanager
def scoped_fault(target: Any, fault: Fault) -> Iterator[Fault]:
    """Apply ``fault`` through ``target`` (anything with blocking ``apply``/``heal``) for a ``with`` block.

    Healed in ``finally``; one-shot faults have nothing to heal.
    """
    target.apply(fault)
    try:
        yield fault
    finally:
        if not fault.one_shot:
            target.heal(fault)


class ControlError(RuntimeError):
    """The control API refused a call or could not be reached."""


class ControlClient:
    """Blocking client of a gateway's or proxy's control API.

    Args:
        base_url: e.g. ``http://127.0.0.1:7498``.
        timeout_s: bound on every call.
    """

    def __init__(self, base_url: str, timeout_s: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self._session.request(method, self.base_url + path, json=body,
                                             timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise ControlError(f"{method} {self.base_url}{path} failed: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ControlError(f"{method} {path} → {response.status_code}: {message}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return self._call("GET", "/health")

    def apply(self, fault: Fault) -> dict[str, Any]:
        """Apply (or replace) a fault."""
        return self._call("POST", "/faults", fault.to_json())

    def heal(self, fault: Fault | str) -> None:
        """Heal a fault by value or name (no-op if not active)."""
        name = fault if isinstance(fault, str) else fault.name
        self._call("DELETE", f"/faults/{name}")

    def reset(self) -> None:
        """Heal every fault."""
        self._call("POST", "/reset")

    def faults(self) -> list[dict[str, Any]]:
        """The active faults."""
        return self._call("GET", "/faults")["faults"]

    def connections(self) -> list[dict[str, Any]]:
        """Every connection the target has seen (open and closed)."""
        return self._call("GET", "/connections")["connections"]

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        """Events after sequence number ``since``."""
        return self._call("GET", f"/history?since={since}")["events"]

    def last_seq(self) -> int:
        """Sequence number of the newest event (a bookmark for :meth:`history`)."""
        return self._call("GET", "/history?since=999999999999")["last_seq"]

    def listen_address(self) -> tuple[str, int]:
        """``GET /listen``: where the proxy accepts clients (proxy only)."""
        answer = self._call("GET", "/listen")
        return str(answer["host"]), int(answer["port"])

    def config(self) -> dict[str, Any]:
        """``GET /config``: the target's rules (simulator only)."""
        return self._call("GET", "/config")

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """``PUT /config`` with the rules to change; returns the rules now in force."""
        return self._call("PUT", "/config", changes)

    def fault(self, fault: Fault) -> contextlib.AbstractContextManager[Fault]:
        """Apply ``fault`` for the duration of a ``with`` block; heal it in ``finally``."""
        return scoped_fault(self, fault)

    def close(self) -> None:
        """Release the HTTP session."""
        self._session.close()
