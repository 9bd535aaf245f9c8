"""Bad input never takes the simulator down: fuzzed framing, hostile sockets, floods, slow readers."""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct

import ib_insync
from gateway_helpers import api_handshake, bounded, ib_session, raw_socket, read_until_closed, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibtargets.common.wire import (
    API_PREFIX,
    FrameDecoder,
    Hello,
    ProtocolError,
    decode_fields,
    encode_fields,
    encode_hello,
    frame,
    parse_hello,
)
from ibtargets.gateway import ThreadedGateway
from support.waiting import Bound, eventually

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_client_ids = itertools.count(1000)


def _still_serves(gateway: ThreadedGateway) -> None:
    """A real ib_insync client connects and gets an answer."""
    async def body() -> None:
        async with ib_session(ib_insync, gateway.port, client_id=next(_client_ids)) as ib:
            await bounded(ib.reqCurrentTimeAsync())
    run(body(), 15)


def _bad_inputs(gateway: ThreadedGateway) -> list[str]:
    return [e["reason"] for e in gateway.history() if e["kind"] == "bad_input"]


def _handshake_answer(port: int) -> bytes:
    """Send a hello on a raw socket and return the first complete frame the gateway answers."""
    with raw_socket(port) as sock:
        sock.sendall(encode_hello(157, 176))
        decoder = FrameDecoder()
        while True:
            chunk = sock.recv(4096)
            assert chunk, "gateway closed instead of answering the hello"
            frames = decoder.feed(chunk)
            if frames:
                return frames[0]


# --------------------------------------------------------------------------- the parser on its own


@given(payloads=st.lists(st.binary(max_size=300), max_size=8), cuts=st.lists(st.integers(0, 3000), max_size=10))
def test_frame_decoder_is_independent_of_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    decoder = FrameDecoder()
    got: list[bytes] = []
    start = 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts) + [len(stream)]:
        got += decoder.feed(stream[start:cut])
        start = cut
    assert got == payloads and decoder.buffered_bytes == 0


@given(data=st.binary(max_size=2000), expect_prefix=st.booleans())
def test_frame_decoder_raises_only_protocol_errors(data: bytes, expect_prefix: bool) -> None:
    decoder = FrameDecoder(max_frame_bytes=1024, expect_prefix=expect_prefix)
    try:
        for payload in decoder.feed(data):
            try:
                decode_fields(payload)
            except ProtocolError:
                pass
    except ProtocolError:
        pass


@given(data=st.binary(max_size=200))
def test_parse_hello_accepts_or_raises_protocol_error(data: bytes) -> None:
    try:
        assert isinstance(parse_hello(data), Hello)
    except ProtocolError:
        pass


@given(low=st.integers(0, 999), high=st.integers(0, 999))
def test_parse_hello_round_trip(low: int, high: int) -> None:
    payload = encode_hello(low, high)[len(API_PREFIX) + 4:]
    if low <= high:
        assert parse_hello(payload) == Hello(low, high)
    else:
        try:
            parse_hello(payload)
            raise AssertionError("an empty range was accepted")
        except ProtocolError:
            pass


@given(fields=st.lists(st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=["Cs"])),
                       max_size=10))
def test_fields_round_trip(fields: list[str]) -> None:
    encoded = encode_fields(*fields)
    (payload,) = FrameDecoder().feed(encoded)
    assert decode_fields(payload) == fields


# --------------------------------------------------------------------------- hostile sockets


def test_fuzzed_byte_streams_against_the_running_server(make_gateway) -> None:
    gateway = make_gateway(handshake_timeout_s=2.0)

    @FUZZ
    @given(after_hello=st.booleans(), data=st.binary(min_size=1, max_size=512))
    def attack(after_hello: bool, data: bytes) -> None:
        with raw_socket(gateway.port) as sock, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if after_hello:
                api_handshake(sock, next(_client_ids))
            sock.sendall(data)
        assert _handshake_answer(gateway.port).startswith(b"176\0")

    attack()
    _still_serves(gateway)
    assert not [r for r in _bad_inputs(gateway) if r.startswith("internal error")]


def test_fuzzed_messages_after_start_api(make_gateway) -> None:
    gateway = make_gateway(pacing_enabled=False)
    field = st.one_of(st.sampled_from(["", "0", "-1", "1", "AAPL", "STK", "SMART", "USD", "1 D", "1 day",
                                       "TRADES", "99999999999999999999"]), st.text(max_size=12))

    @FUZZ
    @given(messages=st.lists(st.tuples(st.sampled_from([1, 5, 6, 7, 8, 9, 20, 25, 49, 61, 62, 76, 87, 90, 99,
                                                        71, 12345]),
                                       st.lists(field, max_size=25)), min_size=1, max_size=5))
    def attack(messages: list[tuple[int, list[str]]]) -> None:
        with raw_socket(gateway.port) as sock, contextlib.suppress(BrokenPipeError, ConnectionResetError):
            api_handshake(sock, next(_client_ids))
            for msg_id, fields in messages:
                sock.sendall(encode_fields(msg_id, *fields))
        assert _handshake_answer(gateway.port).startswith(b"176\0")

    attack()
    _still_serves(gateway)
    assert not [r for r in _bad_inputs(gateway) if r.startswith("internal error")]


def test_garbage_instead_of_the_api_opener(gateway: ThreadedGateway) -> None:
    with raw_socket(gateway.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(sock) == b""
    assert any("API" in r for r in _bad_inputs(gateway))
    _still_serves(gateway)


def test_length_prefix_over_16_mb(gateway: ThreadedGateway) -> None:
    with raw_socket(gateway.port) as sock:
        api_handshake(sock, 71)
        sock.sendall(struct.pack(">I", 16 * 1024 * 1024 + 1) + b"x" * 100)
        read_until_closed(sock)
    assert any("exceeds" in r for r in _bad_inputs(gateway))
    _still_serves(gateway)


def test_non_utf8_frame(gateway: ThreadedGateway) -> None:
    with raw_socket(gateway.port) as sock:
        api_handshake(sock, 72)
        sock.sendall(frame(b"49\x00\xff\xfe\x00"))
        read_until_closed(sock)
    assert any("UTF-8" in r for r in _bad_inputs(gateway))
    _still_serves(gateway)


def test_truncated_frames(gateway: ThreadedGateway) -> None:
    with raw_socket(gateway.port) as sock:  # a frame cut short, then the client goes away
        api_handshake(sock, 73)
        sock.sendall(struct.pack(">I", 50) + b"49\x001\x00")
    with raw_socket(gateway.port) as sock:  # a hello cut inside its length prefix
        sock.sendall(API_PREFIX + b"\x00\x00")
    eventually(lambda: sum(c["state"] == "closed" for c in gateway.connections()) == 2, Bound.exactly(5),
               "both truncated sockets closed")
    _still_serves(gateway)


def test_half_handshake_then_stall_is_bounded(make_gateway) -> None:
    gateway = make_gateway(handshake_timeout_s=0.5)
    with raw_socket(gateway.port) as sock:
        sock.sendall(API_PREFIX + struct.pack(">I", 9) + b"v157")
        assert read_until_closed(sock, within_s=5) == b""  # closed by the gateway, not by our timeout
    assert any("no complete hello" in r for r in _bad_inputs(gateway))
    _still_serves(gateway)


def test_connection_flood(make_gateway) -> None:
    gateway = make_gateway(max_connections=60, handshake_timeout_s=3.0)
    flood: list[socket.socket] = []
    try:
        for _ in range(100):
            flood.append(raw_socket(gateway.port))
        def refused() -> int:
            return sum(c["close_reason"] == "max connections" for c in gateway.connections())
        eventually(lambda: refused() == 40, Bound.exactly(5), "the 40 sockets beyond max_connections refused")
        eventually(lambda: not [c for c in gateway.connections() if c["state"] == "handshaking"], Bound.exactly(10),
                   "idle flood sockets closed by the handshake timeout")
        _still_serves(gateway)
    finally:
        for sock in flood:
            sock.close()


def test_clients_keep_working_during_a_flood(gateway: ThreadedGateway) -> None:
    flood = [raw_socket(gateway.port) for _ in range(100)]
    try:
        for sock in flood[::2]:
            sock.sendall(b"\x00garbage")
        _still_serves(gateway)
    finally:
        for sock in flood:
            sock.close()


def test_a_client_that_never_reads_is_dropped(make_gateway) -> None:
    gateway = make_gateway(max_outgoing_bytes=64 * 1024, pacing_enabled=False)
    with raw_socket(gateway.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        api_handshake(sock, 74)
        request = ["0", "AAPL", "STK", "", "0", "", "", "SMART", "", "USD", "", "", "0", "", "1 min", "20 D",
                   "0", "TRADES", "1", "0", ""]
        for req_id in range(1, 40):
            sock.sendall(encode_fields(20, req_id, *request))
        eventually(lambda: [c for c in gateway.connections() if (c["close_reason"] or "").startswith("slow")],
                   Bound.exactly(10), "the slow consumer dropped")
    _still_serves(gateway)
