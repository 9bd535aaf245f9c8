"""The control API's server side: a tiny asyncio HTTP/1.1 server routing to a fault target (the gateway
simulator or the fault proxy), the bind check and the servers' shared command-line options. The routes and
access rules are in :mod:`ibtargets.common.control`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ibtargets.common.control import TOKEN_ENV, WRITE_METHODS, is_loopback_host, token_from_env, valid_token
from ibtargets.common.faults import Fault, FaultError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
READ_TIMEOUT_S = 5.0
class ControlBindError(ValueError):
    """The control API would be reachable from other machines without a token."""


def check_control_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback control address without a token.

    Raises:
        ControlBindError: ``host`` is not loopback and ``token`` is empty, or the token is malformed.
    """
    if token and not valid_token(token):
        raise ControlBindError("the control token must be visible ASCII without spaces")
    if not is_loopback_host(host) and not token:
        raise ControlBindError(f"the control API on {host or '*'!r} would be reachable from other machines: "
                               f"set --control-token TOKEN (or {TOKEN_ENV}), or keep --control-host on loopback")


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request (header names lower-case)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Response = tuple[int, Any]
Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]


class HttpError(Exception):
    """Turned into an ``{"error": ...}`` response with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class FaultTarget(Protocol):
    """What the gateway and the proxy expose to their control API."""

    plane: str

    def active_faults(self) -> list[Fault]: ...
    async def apply(self, fault: Fault) -> None: ...
    async def heal(self, name: str) -> None: ...
    async def reset(self) -> None: ...
    def connections(self) -> list[dict[str, Any]]: ...
    def history_since(self, seq: int) -> tuple[list[dict[str, Any]], int]: ...


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            413: "Payload Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error"}


class ControlServer:
    """JSON-over-HTTP control endpoint bound to loopback by default.

    Args:
        target: the gateway or proxy whose faults, connections and history are served.
        role: reported by ``GET /health``.
        extra_routes: further ``(method, regex) → handler`` routes a role adds.
        token: when set, every request must carry ``Authorization: Bearer <token>`` (401 otherwise);
            required to listen on anything but loopback.
    """

    def __init__(self, target: FaultTarget, role: str,
                 extra_routes: dict[tuple[str, str], Handler] | None = None, token: str | None = None):
        self.target = target
        self.role = role
        self._token = token or None
        self._loopback_only = True
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
        """Listen; return the bound port.

        Raises:
            ControlBindError: ``host`` is not loopback and there is no token.
        """
        check_control_bind(host, self._token)
        self._loopback_only = is_loopback_host(host)
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
        extra_headers: dict[str, str] = {}
        try:
            request = await asyncio.wait_for(self._read(reader), READ_TIMEOUT_S)
            self._guard(request)
            status, payload = await self._dispatch(self._with_json_body(request))
        except HttpError as exc:
            status, payload, extra_headers = exc.status, {"error": str(exc)}, exc.headers
        except TimeoutError:
            status, payload = 408, {"error": "request not received in time"}
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            return
        except Exception:  # a bug in a handler must not take the server down
            log.exception("control request failed")
        body = b"" if payload is None else json.dumps(payload).encode()
        extra = "".join(f"{key}: {value}\r\n" for key, value in extra_headers.items())
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}"
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
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return Request(method.upper(), parts.path, query, raw, headers)

    def _guard(self, request: Request) -> None:
        """Refuse what a web page or another machine could send: before routing, before the body is read.

        Raises:
            HttpError: 403 for a non-loopback ``Origin`` (or ``Host`` on a loopback server), 401 for a
                missing or wrong token, 415 for a write that is not ``application/json``.
        """
        origin = request.headers.get("origin")
        if origin is not None and not is_loopback_host(_hostname(origin)):
            raise HttpError(403, f"requests from web pages of {origin!r} are refused (Origin is not loopback)")
        host = request.headers.get("host")
        if self._loopback_only and host is not None and not is_loopback_host(_hostname("//" + host)):
            raise HttpError(403, f"Host {host!r} is not loopback (this control API listens on loopback only)")
        if self._token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token.encode()):
                raise HttpError(401, "missing or wrong control token (send Authorization: Bearer TOKEN)",
                                {"WWW-Authenticate": 'Bearer realm="ib-resilience control"'})
        if request.method in WRITE_METHODS:
            media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media_type != "application/json":
                raise HttpError(415, f"{request.method} needs Content-Type: application/json "
                                     f"(got {media_type or 'none'!r})")

    @staticmethod
    def _with_json_body(request: Request) -> Request:
        raw = request.body
        if not raw:
            return dataclasses.replace(request, body=None)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from None
        return dataclasses.replace(request, body=body)

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


# ---------------------------------------------------------------------- command-line options


class OneLineArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose errors are one line on stderr (``prog: message``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {' '.join(message.split())}\n")


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0..65535 (0 = a free one).

    Raises:
        argparse.ArgumentTypeError: not an integer in range.
    """
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (an integer in 0..65535)")
    return port


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """``--control-host``, ``--control-port`` and ``--control-token``, shared by the gateway and the proxy."""
    parser.add_argument("--control-host", default="127.0.0.1", metavar="HOST",
                        help="control API address (default 127.0.0.1; anything but loopback needs a token)")
    parser.add_argument("--control-port", type=port_number, default=0, metavar="PORT",
                        help="control API port; 0 picks a free one (default 0)")
    parser.add_argument("--control-token", default=None, metavar="TOKEN",
                        help=f"require 'Authorization: Bearer TOKEN' on every control request (default: "
                             f"${TOKEN_ENV}; prefer the variable, argv is visible to other users)")


def control_token(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The token in force (``--control-token``, else :data:`TOKEN_ENV`); a refused bind is a parser error."""
    token = args.control_token if args.control_token is not None else token_from_env()
    token = token or None
    try:
        check_control_bind(args.control_host, token)
    except ControlBindError as exc:
        parser.error(str(exc))
    return token


def _hostname(url: str) -> str | None:
    """The host of a URL (``//host:port`` for a bare Host header); None when unparseable."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


