"""TWS API socket framing shared by the gateway simulator and the fault proxy.

The wire format (see ``shared/ib-protocol.md`` §1): the client opens with the raw
bytes ``API\\0`` followed by one length-prefixed frame holding ``v<min>..<max>``;
every later message in both directions is a 4-byte big-endian length followed by
NUL-terminated text fields. Parsing is by bytes, never by ``recv()`` boundaries.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

API_PREFIX = b"API\0"
HEADER_BYTES = 4
#: Frames above this size are refused (IB's own clients reject > 0xFFFFFF).
MAX_FRAME_BYTES = 16 * 1024 * 1024

_HELLO_RE = re.compile(r"^v(\d+)\.\.(\d+)(?: (.*))?$")


class ProtocolError(ValueError):
    """The peer sent bytes that are not the TWS API protocol."""

    #: Payloads of the complete frames that :meth:`FrameDecoder.feed` decoded before the error.
    frames: list[bytes] = []

class FrameTooLarge(ProtocolError):
    """A length prefix announced a frame above :data:`MAX_FRAME_BYTES`."""


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its 4-byte big-endian length."""
    return struct.pack(">I", len(payload)) + payload


def encode_fields(*fields: object) -> bytes:
    """Encode fields as one framed message (each field NUL-terminated).

    ``None`` becomes an empty field, bools ``1``/``0``, everything else ``str()``.
    """
    parts = []
    for value in fields:
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = str(value)
        parts.append(text.encode("utf-8") + b"\0")
    return frame(b"".join(parts))


def decode_fields(payload: bytes) -> list[str]:
    """Split a frame payload into text fields (the trailing empty element dropped).

    Raises:
        ProtocolError: the payload is not valid UTF-8.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"frame is not UTF-8: {exc}") from None
    fields = text.split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


class FrameDecoder:
    """Incremental decoder: feed bytes in any chunking, get complete frames out.

    Args:
        max_frame_bytes: frames announcing more than this raise :class:`FrameTooLarge`.
        expect_prefix: require the raw ``API\\0`` opener first (client → server stream).
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES, expect_prefix: bool = False):
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._need_prefix = expect_prefix

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    @property
    def prefix_pending(self) -> bool:
        """True until the ``API\\0`` opener has been seen (if one is expected)."""
        return self._need_prefix

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the payloads of every frame now complete.

        Raises:
            ProtocolError: the stream does not start with ``API\\0`` when required.
            FrameTooLarge: a length prefix exceeds the limit.
        """
        self._buffer += data
        frames: list[bytes] = []
        if self._need_prefix:
            have = bytes(self._buffer[: len(API_PREFIX)])
            if not API_PREFIX.startswith(have):
                raise ProtocolError(f"expected 'API\\0' opener, got {have!r}")
            if len(self._buffer) < len(API_PREFIX):
                return frames
            del self._buffer[: len(API_PREFIX)]
            self._need_prefix = False
        while len(self._buffer) >= HEADER_BYTES:
            (size,) = struct.unpack_from(">I", self._buffer)
            if size > self.max_frame_bytes:
                error = FrameTooLarge(f"frame of {size} bytes exceeds {self.max_frame_bytes}")
                error.frames = frames  # still valid: a proxy forwards them before giving up
                raise error
            end = HEADER_BYTES + size
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[HEADER_BYTES:end]))
            del self._buffer[:end]
        return frames


@dataclass(frozen=True)
class Hello:
    """The client's version range (and optional connect options)."""

    min_version: int
    max_version: int
    options: str = ""


def parse_hello(payload: bytes) -> Hello:
    """Parse the first framed client message, ``v<min>..<max>[ <options>]``.

    Raises:
        ProtocolError: the payload is not a version range.
    """
    try:
        text = payload.decode("ascii").rstrip("\0")
    except UnicodeDecodeError:
        raise ProtocolError("hello is not ASCII") from None
    match = _HELLO_RE.match(text)
    if not match:
        raise ProtocolError(f"malformed hello {text[:40]!r}")
    low, high = int(match.group(1)), int(match.group(2))
    if low > high:
        raise ProtocolError(f"empty version range {text!r}")
    return Hello(low, high, match.group(3) or "")


def encode_hello(min_version: int, max_version: int, options: str = "") -> bytes:
    """The bytes a client sends first: ``API\\0`` + framed version range."""
    text = f"v{min_version}..{max_version}" + (f" {options}" if options else "")
    return API_PREFIX + frame(text.encode("ascii"))


# Message ids are per direction (shared/ib-protocol.md §7).
OUTGOING: dict[int, str] = {
    1: "reqMktData", 2: "cancelMktData", 3: "placeOrder", 4: "cancelOrder",
    5: "reqOpenOrders", 6: "reqAccountUpdates", 7: "reqExecutions", 8: "reqIds",
    9: "reqContractDetails", 10: "reqMktDepth", 11: "cancelMktDepth",
    12: "reqNewsBulletins", 13: "cancelNewsBulletins", 14: "setServerLogLevel",
    15: "reqAutoOpenOrders", 16: "reqAllOpenOrders", 17: "reqManagedAccts",
    20: "reqHistoricalData", 25: "cancelHistoricalData", 49: "reqCurrentTime",
    50: "reqRealTimeBars", 51: "cancelRealTimeBars", 59: "reqMarketDataType",
    61: "reqPositions", 62: "reqAccountSummary", 63: "cancelAccountSummary",
    64: "cancelPositions", 71: "startApi", 76: "reqAccountUpdatesMulti",
    77: "cancelAccountUpdatesMulti", 87: "reqHeadTimeStamp", 90: "cancelHeadTimeStamp",
    92: "reqPnL", 93: "cancelPnL", 99: "reqCompletedOrders",
}
INCOMING: dict[int, str] = {
    1: "tickPrice", 2: "tickSize", 3: "orderStatus", 4: "error", 5: "openOrder",
    6: "updateAccountValue", 7: "updatePortfolio", 8: "updateAccountTime",
    9: "nextValidId", 10: "contractData", 11: "execDetails", 15: "managedAccounts",
    17: "historicalData", 45: "tickGeneric", 46: "tickString", 49: "currentTime",
    50: "realtimeBar", 52: "contractDataEnd", 53: "openOrderEnd",
    54: "accountDownloadEnd", 55: "execDetailsEnd", 57: "tickSnapshotEnd",
    58: "marketDataType", 59: "commissionReport", 61: "position", 62: "positionEnd",
    63: "accountSummary", 64: "accountSummaryEnd", 73: "accountUpdateMulti",
    74: "accountUpdateMultiEnd", 81: "tickReqParams", 88: "headTimestamp",
    90: "historicalDataUpdate", 94: "pnl", 101: "completedOrder", 102: "completedOrdersEnd",
}
#: Reverse lookup: request type name → outgoing message id.
REQUEST_IDS: dict[str, int] = {name: msg_id for msg_id, name in OUTGOING.items()}


def message_name(msg_id: int, outgoing: bool) -> str:
    """Human name of a message id in one direction (``msg<id>`` when unknown)."""
    table = OUTGOING if outgoing else INCOMING
    return table.get(msg_id, f"msg{msg_id}")


def message_id(fields: list[str]) -> int | None:
    """The numeric message id of a decoded message, or None if it has none."""
    if not fields:
        return None
    try:
        return int(fields[0])
    except ValueError:
        return None
