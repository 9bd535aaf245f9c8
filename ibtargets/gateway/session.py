"""One client socket of the simulated gateway: framing, handshake, startApi and request dispatch."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING, Any

from ibtargets.common.events import wall_iso
from ibtargets.common.wire import OUTGOING, FrameDecoder, ProtocolError, decode_fields, message_id, parse_hello
from ibtargets.gateway.messages import encode_handshake
from ibtargets.gateway.responder import REQUESTS, Answer, Deferred, RequestSpec

if TYPE_CHECKING:
    from ibtargets.gateway.gateway import Gateway

log = logging.getLogger(__name__)

START_API = 71
HISTORICAL_DATA = 20
#: Active historical queries remembered per socket (for cancel semantics); the oldest are forgotten.
MAX_QUERIES = 1000


class Session(asyncio.Protocol):
    """The server side of one TCP connection.

    Everything runs synchronously in the event loop's callbacks: no await, so nothing here can
    block the loop, and writes go to the transport's buffer, bounded by ``max_outgoing_bytes``.

    Args:
        gateway: the owning gateway (config, faults, history, client-ID registry).
        conn_id: a number unique within the gateway's lifetime.
    """

    def __init__(self, gateway: Gateway, conn_id: int):
        self.gateway = gateway
        self.conn_id = conn_id
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.decoder = FrameDecoder(gateway.config.max_frame_bytes, expect_prefix=True)
        self.version = 0
        self.client_max_version = 0
        self.client_id: int | None = None
        self.state = "handshaking"
        self.hello_received = False
        self.handshake_held = False
        self.next_order_id = gateway.config.next_valid_id
        #: Connectivity-lost state pushed to this client, and the code that restores it.
        self.lost = False
        self.restored_code = 1102
        self.connected_mono = time.monotonic()
        self.connected_at = wall_iso()
        self.disconnected_mono: float | None = None
        self.disconnected_at: str | None = None
        self.close_reason: str | None = None
        self.closed = False
        self._queries: collections.OrderedDict[int, asyncio.TimerHandle | None] = collections.OrderedDict()
        self._negotiated = 0
        self._read_mono = 0.0
        self._handshake_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if not self.gateway.admit(self):
            return
        loop = asyncio.get_running_loop()
        self._handshake_timer = loop.call_later(self.gateway.config.handshake_timeout_s, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        # Every request of one read arrived together: a client sent them all before any answer of this read
        # reached it (the history's ``read_mono``; two callers validating one connection at once show here).
        self._read_mono = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as exc:
            self.fail(str(exc))
            return
        try:
            for payload in frames:
                if self.closed or self.transport is None or self.transport.is_closing():
                    return
                if not self.hello_received:
                    self._on_hello(payload)
                elif self.version:  # frames before the handshake reply are ignored, as a real TWS would
                    self._on_message(payload)
        except ProtocolError as exc:
            self.fail(str(exc))
        except Exception as exc:  # a simulator bug must cost one socket, never the server
            log.exception("gateway: conn %d: internal error", self.conn_id)
            self.fail(f"internal error: {exc!r}")

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        for timer in self._queries.values():
            if timer is not None:
                timer.cancel()
        if self.close_reason is None:
            self.close_reason = "client closed" if exc is None else f"connection error: {exc}"
        self.disconnected_mono = time.monotonic()
        self.disconnected_at = wall_iso()
        if self.state in ("handshaking", "open"):
            self.state = "closed"
        self.gateway.forget(self)

    # ------------------------------------------------------------------ writing and closing

    def write(self, data: bytes) -> bool:
        """Queue ``data``; drop the client if its unread output exceeds the bound."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.gateway.config.max_outgoing_bytes:
            self.close("slow consumer: unread output over max_outgoing_bytes", abort=True)
            return False
        return True

    def close(self, reason: str, abort: bool = False) -> None:
        """Close the socket (``abort``: at once, dropping unsent output) and remember why."""
        if self.close_reason is None:
            self.close_reason = reason
        if self.transport is not None and not self.closed:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def fail(self, reason: str) -> None:
        """Bad input: log it, record it, close this socket; every other client carries on."""
        log.warning("gateway: closing conn %d from %s: %s", self.conn_id, self.peer, reason)
        self.gateway.history.record("bad_input", conn_id=self.conn_id, reason=reason)
        self.close(f"bad input: {reason}", abort=True)

    def _handshake_expired(self) -> None:
        self._handshake_timer = None
        if not self.hello_received and not self.closed:
            self.fail(f"no complete hello within {self.gateway.config.handshake_timeout_s:g} s")

    # ------------------------------------------------------------------ handshake

    def _on_hello(self, payload: bytes) -> None:
        hello = parse_hello(payload)
        self.hello_received = True
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.client_max_version = hello.max_version
        negotiated = min(self.gateway.config.server_version_max, hello.max_version)
        if negotiated < hello.min_version:
            raise ProtocolError(f"no common version: client v{hello.min_version}..{hello.max_version}, "
                                f"server up to {self.gateway.config.server_version_max}")
        self._negotiated = negotiated
        if self.gateway.holding_handshakes:
            self.handshake_held = True
            return
        self.send_handshake()

    def send_handshake(self) -> None:
        """Reply to the hello in one write (ibapi 9.81 drops anything glued to or split from it)."""
        self.handshake_held = False
        self.version = self._negotiated
        self.write(encode_handshake(self.version, self.gateway.config.time_zone))
        self.gateway.history.record("handshake", conn_id=self.conn_id, version=self.version,
                                    client_max_version=self.client_max_version)

    # ------------------------------------------------------------------ messages

    def _on_message(self, payload: bytes) -> None:
        fields = decode_fields(payload)
        msg_id = message_id(fields)
        if msg_id is None:
            raise ProtocolError(f"message without a numeric id: {fields[:1]!r}")
        if msg_id == START_API:
            if self.client_id is None and self.state == "handshaking":
                try:
                    client_id = int(fields[2])
                except (IndexError, ValueError):
                    raise ProtocolError("startApi without an integer client ID") from None
                self.gateway.start_api(self, client_id)
            return
        request_type = OUTGOING.get(msg_id, f"msg{msg_id}")
        spec = REQUESTS.get(msg_id)
        try:
            req_id = spec.req_id(fields) if spec is not None else None
        except (IndexError, ValueError):
            raise ProtocolError(f"malformed {request_type}: {len(fields)} fields") from None
        if self.state != "open":
            self._record(request_type, msg_id, req_id, answered=False, reason="before startApi")
            return
        gateway = self.gateway
        swallowing = gateway.swallowing_fault(self, request_type) if gateway.has_faults else None
        if swallowing is not None:
            self._record(request_type, msg_id, req_id, answered=False, fault=swallowing)
            if msg_id == HISTORICAL_DATA and req_id is not None:
                self._remember_query(req_id, None)  # TWS still holds it: a cancel gets 162
            return
        if spec is None:
            self._record(request_type, msg_id, req_id, answered=False, reason="unsupported")
            return
        delay_s, delay_fault = gateway.delay_for(self, request_type) if gateway.has_faults else (0.0, None)
        self._record(request_type, msg_id, req_id, answered=True, delay_ms=round(delay_s * 1000),
                     fault=delay_fault)
        if delay_s > 0:
            loop = asyncio.get_running_loop()
            # Delayed answers of a closed socket fire as no-ops (``closed``); historical ones are cancellable.
            timer = loop.call_later(delay_s, self._answer_later, spec, fields, request_type, req_id)
            if spec.keeps_query and req_id is not None:
                self._remember_query(req_id, timer)
        else:
            if spec.keeps_query and req_id is not None:
                self._remember_query(req_id, None)
            self._answer(spec, fields, request_type, req_id)

    def _record(self, request_type: str, msg_id: int, req_id: int | None, answered: bool,
                delay_ms: int = 0, fault: str | None = None, reason: str | None = None) -> None:
        extra = {"reason": reason} if reason else {}
        self.gateway.history.record("request", conn_id=self.conn_id, client_id=self.client_id,
                                    type=request_type, msg_id=msg_id, req_id=req_id, answered=answered,
                                    delay_ms=delay_ms, fault=fault, read_mono=self._read_mono, **extra)

    def _answer_later(self, spec: RequestSpec, fields: list[str], request_type: str, req_id: int | None) -> None:
        if self.closed:
            return
        if spec.keeps_query and req_id is not None and req_id not in self._queries:
            return  # cancelled while delayed: TWS sends nothing more
        try:
            self._answer(spec, fields, request_type, req_id)
        except (ProtocolError, IndexError, ValueError) as exc:
            self.fail(f"malformed {request_type}: {exc}")

    def _answer(self, spec: RequestSpec, fields: list[str], request_type: str, req_id: int | None) -> None:
        try:
            answer = spec.answer(self, fields, req_id)
        except (IndexError, ValueError) as exc:
            raise ProtocolError(f"malformed {request_type}: {exc}") from None
        if isinstance(answer, Deferred):
            self.gateway.build_off_loop(self, answer, request_type, req_id)
        elif answer is not None:
            self.deliver(answer, request_type, req_id)

    def deliver_built(self, deferred: Deferred, answer: Answer, request_type: str, req_id: int | None) -> None:
        """Write an answer built off the loop, unless the socket closed or the query was cancelled meanwhile."""
        if self.closed or (req_id is not None and req_id not in self._queries):
            return
        if req_id is not None and (deferred.ends_query or answer.error_code is not None):
            self.end_query(req_id)
        self.deliver(answer, request_type, req_id)

    def deliver(self, answer: Answer, request_type: str, req_id: int | None) -> None:
        """Write one answer and record it (``response``, plus ``error_sent`` for an error)."""
        if not self.write(answer.data):
            return
        history = self.gateway.history
        history.record("response", conn_id=self.conn_id, client_id=self.client_id, type=request_type,
                       req_id=req_id)
        if answer.error_code is not None:
            history.record("error_sent", conn_id=self.conn_id, client_id=self.client_id,
                           code=answer.error_code, req_id=req_id)

    # ------------------------------------------------------------------ historical queries

    def _remember_query(self, req_id: int, timer: asyncio.TimerHandle | None) -> None:
        self._queries[req_id] = timer
        while len(self._queries) > MAX_QUERIES:
            self._queries.popitem(last=False)

    def end_query(self, req_id: int) -> bool:
        """Forget an active historical query (answered or cancelled); True if it was active."""
        if req_id not in self._queries:
            return False
        timer = self._queries.pop(req_id)
        if timer is not None:
            timer.cancel()
        return True

    # ------------------------------------------------------------------ views

    def describe(self) -> dict[str, Any]:
        """The control-API view of this connection."""
        return {"conn_id": self.conn_id, "peer": self.peer, "client_id": self.client_id,
                "version": self.version or None, "state": self.state,
                "connected_at": self.connected_at, "connected_mono": self.connected_mono,
                "disconnected_at": self.disconnected_at, "disconnected_mono": self.disconnected_mono,
                "close_reason": self.close_reason}
