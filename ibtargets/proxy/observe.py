"""What the proxy understands of TWS traffic: each message's type and reqId, and which request an answer belongs to."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from ibtargets.common.wire import FrameDecoder, ProtocolError, message_name, parse_hello

#: out-id → index of the field holding the reqId (orderId for orders). Layouts of shared/ib-protocol.md §7,
#: identical at versions 157 and 176 for these messages.
REQUEST_ID_FIELD: dict[int, int] = {
    1: 2, 2: 2, 3: 1, 4: 2, 7: 2, 9: 2, 10: 2, 11: 2, 20: 1, 25: 2, 50: 2, 51: 2, 62: 2, 63: 2,
    74: 2, 75: 2, 76: 2, 77: 2, 79: 1, 81: 1, 83: 1, 84: 1, 87: 1, 89: 1, 90: 1, 92: 1, 93: 1,
    94: 1, 95: 1, 97: 1, 98: 1, 100: 1, 104: 1,
}
#: Cancels carry a reqId but open nothing that will be answered.
CANCEL_IDS = frozenset({2, 4, 11, 25, 51, 63, 75, 77, 89, 90, 93, 95, 98})

#: in-id → index of the reqId field (contractData moves with the version, see :func:`response_req_id_field`).
RESPONSE_ID_FIELD: dict[int, int] = {
    1: 2, 2: 2, 3: 1, 4: 2, 5: 1, 11: 1, 17: 1, 45: 2, 46: 2, 50: 2, 52: 2, 55: 2, 57: 2, 58: 2,
    63: 2, 64: 2, 73: 2, 74: 2, 81: 1, 88: 1, 90: 1, 94: 1,
}
#: Answers without a reqId → the request types they can answer (the most recently sent one wins).
ANSWER_TYPES: dict[int, tuple[str, ...]] = {
    49: ("reqCurrentTime",),
    9: ("startApi", "reqIds"),
    15: ("startApi", "reqManagedAccts"),
    53: ("reqOpenOrders", "reqAllOpenOrders", "reqAutoOpenOrders"),
    61: ("reqPositions",), 62: ("reqPositions",),
    6: ("reqAccountUpdates",), 7: ("reqAccountUpdates",), 8: ("reqAccountUpdates",),
    54: ("reqAccountUpdates",),
    101: ("reqCompletedOrders",), 102: ("reqCompletedOrders",),
}
ERROR_ID = 4
START_API_ID = 71
#: From this server version on, contractData (in-id 10) has no version field.
CONTRACT_DATA_NO_VERSION = 164
#: reqIds remembered per connection (ib_insync never reuses one on a connection).
MAX_TRACKED_REQUESTS = 4096


def response_req_id_field(msg_id: int, version: int | None) -> int | None:
    """Index of the reqId field of an incoming message at a negotiated version."""
    if msg_id == 10:
        return 1 if (version or 0) >= CONTRACT_DATA_NO_VERSION else 2
    return RESPONSE_ID_FIELD.get(msg_id)


def _head_fields(payload: bytes, count: int) -> list[bytes]:
    # Only the first fields matter; splitting the head avoids decoding large frames (historical data).
    return payload.split(b"\0", count)[:count]


def _int_field(fields: list[bytes], index: int | None) -> int | None:
    if index is None or index >= len(fields):
        return None
    try:
        return int(fields[index])
    except ValueError:
        return None


class StreamError(ProtocolError):
    """A stream stopped being TWS framing; ``parsed`` holds what was complete before the bad bytes."""

    def __init__(self, message: str, parsed: list[Any]):
        super().__init__(message)
        self.parsed = parsed


@dataclass(frozen=True)
class ClientMessage:
    """One client → gateway message after the hello."""

    msg_id: int | None
    type: str
    req_id: int | None
    client_id: int | None = None  # startApi only


@dataclass(frozen=True)
class ServerMessage:
    """One gateway → client message after the handshake reply."""

    msg_id: int | None
    type: str
    req_id: int | None
    answers: str | None  # the request type this answers; None = unsolicited
    error_code: int | None = None


@dataclass(frozen=True)
class Handshake:
    """The gateway's handshake reply: the negotiated version."""

    version: int | None


class ConnectionObserver:
    """Parses copies of one connection's two byte streams; never changes a byte.

    Raises :class:`StreamError` from ``feed_*`` when a stream stops being TWS
    framing; the caller then stops observing that direction.

    Args:
        max_frame_bytes: bigger frames are a framing error.
    """

    def __init__(self, max_frame_bytes: int):
        self._client = FrameDecoder(max_frame_bytes, expect_prefix=True)
        self._server = FrameDecoder(max_frame_bytes)
        self.hello_seen = False
        self.handshake_seen = False
        self.version: int | None = None
        self.client_id: int | None = None
        self._requests: collections.OrderedDict[int, str] = collections.OrderedDict()
        self._sent_order: dict[str, int] = {}
        self._sent_count = 0

    @property
    def server_buffered_bytes(self) -> int:
        """Bytes of an incomplete gateway → client frame held by the decoder."""
        return self._server.buffered_bytes

    def feed_client(self, data: bytes) -> list[ClientMessage]:
        """Observe client → gateway bytes; return the complete messages (the hello excluded)."""
        try:
            payloads = self._client.feed(data)
        except ProtocolError as exc:
            raise StreamError(str(exc), self._client_messages(exc.frames)) from None
        return self._client_messages(payloads)

    def _client_messages(self, payloads: list[bytes]) -> list[ClientMessage]:
        out = []
        for payload in payloads:
            if not self.hello_seen:
                parse_hello(payload)  # ProtocolError: not a TWS client
                self.hello_seen = True
                continue
            out.append(self._client_message(payload))
        return out

    def feed_server(self, data: bytes) -> list[tuple[bytes, Handshake | ServerMessage]]:
        """Observe gateway → client bytes; return ``(payload, parsed)`` for each complete frame."""
        try:
            payloads = self._server.feed(data)
        except ProtocolError as exc:
            raise StreamError(str(exc), [(p, self._server_frame(p)) for p in exc.frames]) from None
        return [(payload, self._server_frame(payload)) for payload in payloads]

    def _server_frame(self, payload: bytes) -> Handshake | ServerMessage:
        if not self.handshake_seen:
            self.handshake_seen = True
            self.version = _int_field(_head_fields(payload, 2), 0)
            return Handshake(self.version)
        return self._server_message(payload)

    def _client_message(self, payload: bytes) -> ClientMessage:
        fields = _head_fields(payload, 4)
        msg_id = _int_field(fields, 0)
        if msg_id is None:
            return ClientMessage(None, "unparsed", None)
        kind = message_name(msg_id, outgoing=True)
        self._sent_count += 1
        self._sent_order[kind] = self._sent_count
        if msg_id == START_API_ID:
            self.client_id = _int_field(fields, 2)
            return ClientMessage(msg_id, kind, None, self.client_id)
        req_id = _int_field(fields, REQUEST_ID_FIELD.get(msg_id))
        if req_id is not None and msg_id not in CANCEL_IDS:
            self._requests[req_id] = kind
            if len(self._requests) > MAX_TRACKED_REQUESTS:
                self._requests.popitem(last=False)
        return ClientMessage(msg_id, kind, req_id)

    def _server_message(self, payload: bytes) -> ServerMessage:
        fields = _head_fields(payload, 5)
        msg_id = _int_field(fields, 0)
        if msg_id is None:
            return ServerMessage(None, "unparsed", None, None)
        kind = message_name(msg_id, outgoing=False)
        req_id = _int_field(fields, response_req_id_field(msg_id, self.version))
        error_code = _int_field(fields, 3) if msg_id == ERROR_ID else None
        if req_id is not None and req_id in self._requests:
            answers: str | None = self._requests[req_id]
        else:
            answers = self._latest_sent(ANSWER_TYPES.get(msg_id, ()))
        return ServerMessage(msg_id, kind, req_id, answers, error_code)

    def _latest_sent(self, candidates: tuple[str, ...]) -> str | None:
        if not candidates:
            return None
        return max(candidates, key=lambda kind: self._sent_order.get(kind, 0))


__all__ = ["ClientMessage", "ConnectionObserver", "Handshake", "ServerMessage", "StreamError"]
