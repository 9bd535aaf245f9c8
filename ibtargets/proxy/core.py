"""The fault proxy: listener, upstream address, active transport faults, connection list and history."""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Any

from ibtargets.common.control import is_loopback_host
from ibtargets.common.control_server import ControlServer, HttpError, Request, Response, check_control_bind
from ibtargets.common.events import History
from ibtargets.common.faults import PROXY, Fault, FaultError
from ibtargets.common.wire import MAX_FRAME_BYTES
from ibtargets.proxy.pair import CLIENT, Pair, SideProtocol
from ibtargets.proxy.pair import PROXY as PROXY_SIDE
from ibtargets.proxy.shaping import Shaping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxyConfig:
    """Settings of one proxy.

    Args:
        upstream_host: where connections are forwarded (the gateway, simulated or real).
        upstream_port: its port.
        upstream_connect_timeout_s: bound on each upstream connect; past it the client is closed.
        max_frame_bytes: a frame announcing more is a framing error (observation stops).
        max_queue_bytes: shaped bytes held per direction before the source stops being read.
        max_closed_connections: closed connections kept for ``GET /connections``.
        history_max_events: size of the history ring.
        stop_timeout_s: grace for sockets to close on :meth:`FaultProxy.stop` before they are aborted.
        allow_remote_upstream: let :meth:`FaultProxy.set_upstream` (``PUT /upstream``) point at a host
            that is not loopback; the upstream given at start may be anywhere.
    """

    upstream_host: str = "127.0.0.1"
    upstream_port: int = 4002
    upstream_connect_timeout_s: float = 5.0
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_queue_bytes: int = 1024 * 1024
    max_closed_connections: int = 1000
    history_max_events: int = 100_000
    stop_timeout_s: float = 2.0
    allow_remote_upstream: bool = False


def check_address(host: object, port: object) -> tuple[str, int]:
    """Validate a host and port; return them typed.

    Raises:
        ValueError: empty host or port outside 0..65535.
    """
    if not isinstance(host, str) or not host:
        raise ValueError("host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError("port must be an integer in 0..65535")
    return host, port


class FaultProxy:
    """TWS-aware TCP proxy with transport faults; implements :class:`ibtargets.common.control_server.FaultTarget`
    and, for the faults' own actions, :class:`ibtargets.common.faults.ProxyActions`.

    What a fault does is its type's: the proxy asks each active fault (``refuses_new``, ``swallows_new``,
    ``dropped_answers()``, ``shapes()``) and lets it act once when applied (``on_apply``).

    Args:
        config: settings, including the initial upstream.
    """

    plane = PROXY

    def __init__(self, config: ProxyConfig | None = None):
        self.config = config or ProxyConfig()
        self.history = History(self.config.history_max_events)
        self.upstream = check_address(self.config.upstream_host, self.config.upstream_port)
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.control_port: int | None = None
        self._faults: dict[str, Fault] = {}
        self._live: dict[int, Pair] = {}
        self._closed: collections.deque[Pair] = collections.deque(maxlen=self.config.max_closed_connections)
        self._next_conn_id = 0
        self._listener: asyncio.base_events.Server | None = None
        self._control: ControlServer | None = None
        self._swallowing = False
        self._all_finished: asyncio.Event | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self, listen_host: str = "127.0.0.1", listen_port: int = 0,
                    control_port: int | None = 0, control_host: str = "127.0.0.1",
                    control_token: str | None = None) -> None:
        """Listen for clients and (unless ``control_port`` is None) serve the control API.

        Args:
            listen_host: address of the proxy's listener (loopback by default).
            listen_port: its port, 0 = a free one (see :attr:`port`).
            control_port: control API port, 0 = a free one (see :attr:`control_port`).
            control_host: address of the control API (loopback by default; anything else needs a token).
            control_token: when set, every control request needs ``Authorization: Bearer <token>``.

        Raises:
            ControlBindError: a non-loopback ``control_host`` without a token (nothing is started).
            OSError: a port could not be bound.
        """
        self.host, _ = check_address(listen_host, listen_port)
        if control_port is not None:
            check_control_bind(control_host, control_token)
        self._all_finished = asyncio.Event()
        self._all_finished.set()
        self._listener = await asyncio.get_running_loop().create_server(
            self._new_client, listen_host, listen_port)
        self.port = self._listener.sockets[0].getsockname()[1]
        if control_port is not None:
            self._control = ControlServer(self, "proxy", extra_routes={
                ("PUT", r"/upstream"): self._put_upstream,
                ("GET", r"/upstream"): self._get_upstream,
                ("GET", r"/listen"): self._get_listen,
            }, token=control_token)
            self.control_port = await self._control.start(control_host, control_port)
        self.history.record("proxy_started", host=self.host, port=self.port,
                            upstream=f"{self.upstream[0]}:{self.upstream[1]}")

    async def stop(self) -> None:
        """Stop listening, close every connection (abort those still open after the grace)."""
        self._stopping = True
        if self._control is not None:
            await self._control.stop()
            self._control = None
        self._close_listener()
        for pair in list(self._live.values()):
            pair.shutdown(PROXY_SIDE, "proxy stopping")
        if self._live and self._all_finished is not None:
            self._all_finished.clear()
            try:
                await asyncio.wait_for(self._all_finished.wait(), self.config.stop_timeout_s)
            except TimeoutError:
                pass
        for pair in list(self._live.values()):
            pair.abort()
        self._live.clear()
        await asyncio.sleep(0)  # let cancelled flushers and connects finish before the loop may stop

    def set_upstream(self, host: str, port: int) -> None:
        """Forward connections accepted from now on to ``host:port`` (open ones stay where they are).

        Raises:
            ValueError: bad host or port, or a host that is not loopback while ``allow_remote_upstream`` is off.
        """
        host, port = check_address(host, port)
        if not self.config.allow_remote_upstream and not is_loopback_host(host):
            raise ValueError(f"upstream host {host!r} is not loopback; only a proxy started with "
                             "--allow-remote-upstream forwards elsewhere")
        self.upstream = (host, port)
        self.history.record("upstream_changed", host=host, port=port)

    # ------------------------------------------------------------------ pairs

    def _new_client(self) -> SideProtocol:
        self._next_conn_id += 1
        pair = Pair(self, self._next_conn_id)
        self._live[pair.conn_id] = pair
        if self._all_finished is not None:
            self._all_finished.clear()
        return SideProtocol(pair, CLIENT)

    def accepted(self, pair: Pair) -> None:
        """A client socket is up: hole it (blackhole) or connect it upstream."""
        if self._stopping:
            pair.shutdown(PROXY_SIDE, "proxy stopping")
            return
        self.refresh(pair)
        if self._swallowing:
            pair.hole()
        else:
            pair.start_upstream()

    def pair_closed(self, pair: Pair) -> None:
        """A pair has shut down (its sockets may still be flushing)."""
        self._closed.append(pair)

    def pair_finished(self, pair: Pair) -> None:
        """Every socket of a pair is gone."""
        self._live.pop(pair.conn_id, None)
        if not self._live and self._all_finished is not None:
            self._all_finished.set()

    def refresh(self, pair: Pair) -> None:
        """Recompute the faults acting on ``pair`` (after a fault change or its startApi)."""
        silent: frozenset[str] | None = None
        shaping: dict[str, dict[str, Any]] = {"upstream": {}, "downstream": {}}
        for fault in self._faults.values():
            if not fault.applies_to(pair.client_id):
                continue
            dropped = fault.dropped_answers()
            if dropped is not None:
                silent = (silent or frozenset()) | dropped
            if fault.shaping_slot:
                for direction in shaping:
                    if fault.shapes(direction):
                        shaping[direction][fault.shaping_slot] = fault
        pair.set_policy(silent, Shaping(**shaping["upstream"]), Shaping(**shaping["downstream"]))

    # ------------------------------------------------------------------ FaultTarget

    def active_faults(self) -> list[Fault]:
        """The faults in force, in the order they were applied."""
        return list(self._faults.values())

    async def apply(self, fault: Fault) -> None:
        """Apply ``fault`` (replacing an active one of the same name).

        Raises:
            FaultError: not a proxy-plane fault.
            OSError: the listener could not be reopened while replacing a ``refuse``.
        """
        if fault.plane != PROXY:
            raise FaultError(f"{fault.kind} is a {fault.plane} fault, not a proxy fault")
        self._faults.pop(fault.name, None)
        self.history.record("fault_applied", fault=fault.to_json())
        if not fault.one_shot:
            self._faults[fault.name] = fault
        await fault.on_apply(self)
        await self._sync()

    async def heal(self, name: str) -> None:
        """Heal the fault called ``name``; a no-op when none is active.

        Raises:
            OSError: the listener could not be reopened after ``refuse``.
        """
        fault = self._faults.pop(name, None)
        if fault is None:
            return
        self.history.record("fault_healed", fault=fault.to_json())
        await self._sync()

    async def reset(self) -> None:
        """Heal every fault."""
        for name in list(self._faults):
            await self.heal(name)

    def connections(self) -> list[dict[str, Any]]:
        """Every open connection and the most recent closed ones, oldest first."""
        pairs = {pair.conn_id: pair for pair in self._closed}
        pairs.update(self._live)
        return [pairs[conn_id].describe() for conn_id in sorted(pairs)]

    def history_since(self, seq: int) -> tuple[list[dict[str, Any]], int]:
        """Events after ``seq`` and the newest sequence number."""
        return self.history.since(seq), self.history.last_seq

    # ------------------------------------------------------------------ fault effects

    def close_connections(self, fault: Fault, reason: str, reset: bool) -> None:
        """Close every open connection ``fault`` applies to (a fault's action, :class:`ProxyActions`)."""
        for pair in list(self._live.values()):
            if not pair.closing and fault.applies_to(pair.client_id):
                pair.shutdown(PROXY_SIDE, reason, reset=reset)

    async def _sync(self) -> None:
        refusing = any(f.refuses_new for f in self._faults.values())
        if refusing:
            self._close_listener()
        elif self._listener is None and not self._stopping and self.port is not None:
            self._listener = await asyncio.get_running_loop().create_server(
                self._new_client, self.host, self.port)
        # Like refusing, swallowing (blackhole) acts at accept time: open connections are not touched.
        self._swallowing = any(f.swallows_new for f in self._faults.values())
        for pair in self._live.values():
            self.refresh(pair)

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()  # listening socket closed now: new connects are refused
            self._listener = None

    # ------------------------------------------------------------------ extra control routes

    async def _put_upstream(self, request: Request, params: dict[str, str]) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        try:
            self.set_upstream(body.get("host"), body.get("port"))  # type: ignore[arg-type]
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return 200, {"host": self.upstream[0], "port": self.upstream[1]}

    async def _get_upstream(self, request: Request, params: dict[str, str]) -> Response:
        return 200, {"host": self.upstream[0], "port": self.upstream[1]}

    async def _get_listen(self, request: Request, params: dict[str, str]) -> Response:
        """Where clients (the backend) connect: the suite learns the backend's IB address from here."""
        return 200, {"host": self.host, "port": self.port}
