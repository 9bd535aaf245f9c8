"""One proxied connection: the client socket, its upstream socket, and the faults acting on both directions."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from ibtargets.common.events import wall_iso
from ibtargets.common.faults import ALL_REQUESTS
from ibtargets.common.wire import ProtocolError
from ibtargets.proxy.observe import ClientMessage, ConnectionObserver, Handshake, ServerMessage, StreamError
from ibtargets.proxy.shaping import Pipe, Shaping

if TYPE_CHECKING:
    from ibtargets.proxy.core import FaultProxy

CLIENT = "client"
UPSTREAM = "upstream"
PROXY = "proxy"
#: bad_input events recorded per connection before the proxy stops reporting them.
MAX_BAD_INPUT_EVENTS = 20
_LINGER_RST = struct.pack("ii", 1, 0)


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def rst(transport: asyncio.BaseTransport | None) -> None:
    """Close ``transport`` with a TCP RST (SO_LINGER 0) instead of a FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


class SideProtocol(asyncio.Protocol):
    """asyncio callbacks of one socket, handed to the pair with the side's name."""

    def __init__(self, pair: Pair, side: str):
        self.pair = pair
        self.side = side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.pair.transport_made(self.side, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.pair.data_received(self.side, data)

    def eof_received(self) -> bool | None:
        self.pair.shutdown(self.side, "closed by peer")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.pair.transport_lost(self.side, exc)

    def pause_writing(self) -> None:
        self.pair.flow(self.side, writable=False)

    def resume_writing(self) -> None:
        self.pair.flow(self.side, writable=True)


class Pair:
    """A client connection and its upstream connection, forwarding both ways.

    Args:
        proxy: the owner (faults, history, upstream address, config).
        conn_id: the proxy-wide connection number.
    """

    def __init__(self, proxy: FaultProxy, conn_id: int):
        self.proxy = proxy
        self.conn_id = conn_id
        self.peer = ""
        self.client_id: int | None = None
        self.version: int | None = None
        self.state = "connecting"
        self.connected_at = wall_iso()
        self.connected_mono = time.monotonic()
        self.disconnected_at: str | None = None
        self.disconnected_mono: float | None = None
        self.transports: dict[str, asyncio.Transport | None] = {CLIENT: None, UPSTREAM: None}
        config = proxy.config
        self.up = Pipe(UPSTREAM, config.max_queue_bytes,
                       lambda: self.pause(CLIENT, "queue"), lambda: self.resume(CLIENT, "queue"))
        self.down = Pipe("downstream", config.max_queue_bytes,
                         lambda: self.pause(UPSTREAM, "queue"), lambda: self.resume(UPSTREAM, "queue"))
        self.observer = ConnectionObserver(config.max_frame_bytes)
        self.observing = {CLIENT: True, UPSTREAM: True}
        #: request types whose answers are dropped (None = not silent; ``"*"`` = everything).
        self.silent_types: frozenset[str] | None = None
        self.holed = False  # accepted during a blackhole: read and discard, never connected upstream
        self._held = bytearray()  # gateway bytes of an incomplete frame kept back while silent
        self._paused: dict[str, set[str]] = {CLIENT: set(), UPSTREAM: set()}
        self._lost: set[str] = set()
        self._closing = False
        self._bad_inputs = 0
        self._connect_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ description

    @property
    def closing(self) -> bool:
        """Whether the pair is shutting down or closed."""
        return self._closing

    def describe(self) -> dict[str, Any]:
        """The control-API representation of this connection."""
        return {"conn_id": self.conn_id, "peer": self.peer, "client_id": self.client_id,
                "version": self.version, "state": self.state, "connected_at": self.connected_at,
                "connected_mono": self.connected_mono, "disconnected_at": self.disconnected_at,
                "disconnected_mono": self.disconnected_mono, "bytes_up": self.up.forwarded_bytes,
                "bytes_down": self.down.forwarded_bytes}

    def _record(self, kind: str, **fields: Any) -> None:
        self.proxy.history.record(kind, conn_id=self.conn_id, **fields)

    # ------------------------------------------------------------------ lifecycle

    def transport_made(self, side: str, transport: asyncio.Transport) -> None:
        """A socket of this pair is up."""
        self.transports[side] = transport
        if self._closing:  # e.g. the upstream connect finished after the client left
            transport.abort()
            return
        if side == CLIENT:
            self.peer = _peer(transport)
            self.down.dest = transport
            self._record("connect", peer=self.peer)
            self.proxy.accepted(self)
        else:
            self.up.dest = transport
            self.state = "open"
            self._record("upstream_connected")
        if self._paused[side]:
            transport.pause_reading()

    def start_upstream(self) -> None:
        """Connect to the proxy's current upstream; the client is not read until then."""
        self.pause(CLIENT, "connecting")
        self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.proxy.upstream
        timeout_s = self.proxy.config.upstream_connect_timeout_s
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: SideProtocol(self, UPSTREAM), host, port),
                                   timeout_s)
        except TimeoutError:
            self._upstream_failed(f"no answer from {host}:{port} within {timeout_s} s")
        except OSError as exc:
            self._upstream_failed(f"{host}:{port}: {exc.strerror or exc}")
        else:
            self.resume(CLIENT, "connecting")

    def _upstream_failed(self, error: str) -> None:
        if self._closing:
            return
        self._record("upstream_failed", error=error)
        self.shutdown(UPSTREAM, f"upstream connect failed: {error}")

    def hole(self) -> None:
        """Accepted during a blackhole: swallow what the client sends, forward nothing, for good.

        The client's hello is gone, so healing the blackhole cannot revive this stream;
        it lasts until the client gives up and closes it.
        """
        self.holed = True
        self.state = "blackholed"

    def shutdown(self, side: str, reason: str, reset: bool = False) -> None:
        """Close both sockets once (after queued bytes, unless ``reset``); record who ended it.

        Args:
            side: ``client``, ``upstream`` or ``proxy``: who ended the pair.
            reason: in words, for the history.
            reset: RST both sockets now instead of a FIN after the queued bytes.
        """
        if self._closing:
            if reset:
                for transport in self.transports.values():
                    rst(transport)
            return
        self._closing = True
        self.state = "closed"
        self.disconnected_at = wall_iso()
        self.disconnected_mono = time.monotonic()
        self._record("disconnect", client_id=self.client_id, side=side, reason=reason)
        if self._connect_task is not None and not self._connect_task.done():
            self._connect_task.cancel()
        if reset:
            self.up.cancel()
            self.down.cancel()
            for transport in self.transports.values():
                rst(transport)
        else:
            self.up.finish()
            self.down.finish()  # closes the client socket, also when no upstream was ever connected
        self.proxy.pair_closed(self)

    def abort(self) -> None:
        """Drop both sockets now (used when the proxy stops after a grace period)."""
        self.up.cancel()
        self.down.cancel()
        for transport in self.transports.values():
            if transport is not None:
                transport.abort()

    def transport_lost(self, side: str, exc: Exception | None) -> None:
        """A socket of this pair is gone."""
        self._lost.add(side)
        if not self._closing:
            self.shutdown(side, f"connection lost: {exc}" if exc else "closed by peer")
        if self.finished:
            self.proxy.pair_finished(self)

    @property
    def finished(self) -> bool:
        """Whether every socket this pair opened is closed."""
        return CLIENT in self._lost and (self.transports[UPSTREAM] is None or UPSTREAM in self._lost)

    # ------------------------------------------------------------------ flow control

    def pause(self, side: str, reason: str) -> None:
        """Stop reading ``side`` for ``reason`` (reading resumes when no reason is left)."""
        reasons = self._paused[side]
        transport = self.transports[side]
        if not reasons and transport is not None and not transport.is_closing():
            transport.pause_reading()
        reasons.add(reason)

    def resume(self, side: str, reason: str) -> None:
        """Withdraw one reason to pause ``side``."""
        reasons = self._paused[side]
        reasons.discard(reason)
        transport = self.transports[side]
        if not reasons and transport is not None and not transport.is_closing():
            transport.resume_reading()

    def flow(self, side: str, writable: bool) -> None:
        """Flow control of the socket on ``side``: stop reading the other side while it is full."""
        pipe, other = (self.down, UPSTREAM) if side == CLIENT else (self.up, CLIENT)
        pipe.set_writable(writable)
        if writable:
            self.resume(other, "backpressure")
        else:
            self.pause(other, "backpressure")

    def set_policy(self, silent_types: frozenset[str] | None, up: Shaping, down: Shaping) -> None:
        """The faults now acting on this pair."""
        self.silent_types = silent_types
        self.up.shaping = up
        self.down.shaping = down

    # ------------------------------------------------------------------ data

    def data_received(self, side: str, data: bytes) -> None:
        """Bytes from one socket: forward them (shaped), observe a copy."""
        if self._closing or self.holed:
            return
        if side == CLIENT:
            self._from_client(data)
        else:
            self._from_upstream(data)

    def _from_client(self, data: bytes) -> None:
        self.up.send(data)
        if not self.observing[CLIENT]:
            return
        try:
            messages = self.observer.feed_client(data)
        except ProtocolError as exc:
            for message in getattr(exc, "parsed", ()):
                self._client_message(message)
            self._lost_framing(CLIENT, exc)
            return
        for message in messages:
            self._client_message(message)

    def _client_message(self, message: ClientMessage) -> None:
        if message.msg_id is None:
            self._bad_input(CLIENT, "client message without a numeric message id")
            return
        if message.client_id is not None:
            self.client_id = message.client_id
            self._record("start_api", client_id=self.client_id)
            self.proxy.refresh(self)
        self._record("request", client_id=self.client_id, type=message.type,
                     msg_id=message.msg_id, req_id=message.req_id)

    def _from_upstream(self, data: bytes) -> None:
        if self.silent_types is not None:
            if self.observing[UPSTREAM]:
                self._silent_frames(data)
            else:
                self.shutdown(PROXY, "gateway stream cannot be framed, and silent needs the framing")
            return
        if self._held:  # bytes kept back while silent was on go first, in order
            self.down.send(bytes(self._held) + data)
            self._held.clear()
        else:
            self.down.send(data)
        if not self.observing[UPSTREAM]:
            return
        try:
            frames = self.observer.feed_server(data)
        except StreamError as exc:
            for _payload, parsed in exc.parsed:
                self._server_message(parsed, forwarded=True)
            self._lost_framing(UPSTREAM, exc)
            return
        for _payload, parsed in frames:
            self._server_message(parsed, forwarded=True)

    def _silent_frames(self, data: bytes) -> None:
        """Forward whole frames only, dropping the answers silent covers."""
        # Bytes of the current partial frame already forwarded before silent came on.
        sent_partial = self.observer.server_buffered_bytes - len(self._held)
        try:
            frames = self.observer.feed_server(data)
        except StreamError as exc:
            self.down.send(self._filter(exc.parsed, sent_partial))  # the good frames before the bad bytes
            self._lost_framing(UPSTREAM, exc)
            self.shutdown(PROXY, "gateway stream cannot be framed, and silent needs the framing")
            return
        if not frames:
            self._held += data
            return
        tail = self.observer.server_buffered_bytes
        self._held = bytearray(data[len(data) - tail:]) if tail else bytearray()
        self.down.send(self._filter(frames, sent_partial))

    def _filter(self, frames: list[tuple[bytes, Handshake | ServerMessage]], sent_partial: int) -> bytes:
        """The bytes of the frames silent lets through, exactly as received."""
        out = []
        for index, (payload, parsed) in enumerate(frames):
            raw = struct.pack(">I", len(payload)) + payload
            started = index == 0 and sent_partial > 0
            if started:  # part of it is already with the client: the rest must follow
                raw = raw[sent_partial:]
            forward = started or not self._drops(parsed)
            if forward:
                out.append(raw)
            self._server_message(parsed, forwarded=forward)
        return b"".join(out)

    def _drops(self, parsed: Handshake | ServerMessage) -> bool:
        silent = self.silent_types
        if silent is None or isinstance(parsed, Handshake):
            return False  # the handshake reply always passes: isConnected() stays true
        return ALL_REQUESTS in silent or (parsed.answers is not None and parsed.answers in silent)

    def _server_message(self, parsed: Handshake | ServerMessage, forwarded: bool) -> None:
        if isinstance(parsed, Handshake):
            self.version = parsed.version
            self._record("handshake", version=parsed.version)
            return
        if parsed.msg_id is None:
            self._bad_input(UPSTREAM, "gateway message without a numeric message id")
            return
        self._record("response", client_id=self.client_id, type=parsed.type, msg_id=parsed.msg_id,
                     req_id=parsed.req_id, answers=parsed.answers, forwarded=forwarded,
                     error_code=parsed.error_code)

    def _lost_framing(self, side: str, exc: Exception) -> None:
        self.observing[side] = False
        self._bad_input(side, f"{exc}; forwarding without observing from now on")

    def _bad_input(self, side: str, reason: str) -> None:
        self._bad_inputs += 1
        if self._bad_inputs <= MAX_BAD_INPUT_EVENTS:
            self._record("bad_input", side=side, reason=reason)
