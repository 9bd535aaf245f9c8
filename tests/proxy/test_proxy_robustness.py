"""Misbehaving peers, dead upstreams and floods: only the pair concerned suffers, and nothing grows unbounded."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from proxy_fakes import Echo, FakeGateway

from ibtargets.common.faults import Bandwidth, Blackhole, Latency, Reset, Silent, Slicer
from ibtargets.common.wire import encode_fields, encode_hello
from ibtargets.proxy import ProxyConfig, ThreadedProxy
from support.waiting import Bound, eventually

pytestmark = pytest.mark.timeout(60)
HELLO = encode_hello(157, 176)


def events(proxy: ThreadedProxy, kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in proxy.history() if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def read_until_closed(sock: socket.socket, within_s: float = 5.0) -> bytes:
    """Everything the peer sends until it closes (socket timeout bounds each read)."""
    sock.settimeout(within_s)
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def read_exactly(sock: socket.socket, size: int, within_s: float = 5.0) -> list[bytes]:
    """``size`` bytes, as the list of pieces each recv() returned."""
    sock.settimeout(within_s)
    pieces, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        assert chunk, f"closed after {got} of {size} bytes"
        pieces.append(chunk)
        got += len(chunk)
    return pieces


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_upstream_down_closes_the_client_promptly(make_proxy: Callable[..., ThreadedProxy], raw_socket):
    proxy = make_proxy(free_port())
    sock = raw_socket(proxy.port)
    sock.sendall(HELLO)
    started = time.monotonic()
    try:
        assert read_until_closed(sock, within_s=2.0) == b""
    except ConnectionResetError:
        pass  # closed with the hello still unread: Linux answers with RST, as a closed gateway port would
    assert time.monotonic() - started < 2.0
    [failed] = events(proxy, "upstream_failed")
    assert "refused" in failed["error"] or "failed" in failed["error"]
    assert events(proxy, "disconnect", side="upstream")
    assert [c["state"] for c in proxy.connections()] == ["closed"]


def test_gateway_going_away_closes_its_clients(fake_gateway: FakeGateway, make_proxy, connect_ib):
    proxy = make_proxy(fake_gateway.port)
    ib = connect_ib(proxy.port)
    fired: list[float] = []
    ib.disconnectedEvent += lambda: fired.append(time.monotonic())
    fake_gateway.stop()

    def closed() -> bool:
        try:
            ib.sleep(0.02)
        except ConnectionError:
            pass
        return bool(fired)
    eventually(closed, Bound.exactly(5), "the client's connection closed after the gateway went away")
    eventually(lambda: all(c["state"] == "closed" for c in proxy.connections()), Bound.exactly(5), "no half-open pair")


def test_garbage_from_a_client_closes_only_that_pair(fake_gateway: FakeGateway, make_proxy, connect_ib,
                                                     raw_socket):
    proxy = make_proxy(fake_gateway.port)
    ib = connect_ib(proxy.port)
    sock = raw_socket(proxy.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_until_closed(sock) == b"", "the gateway refused the garbage: the proxy closed that client"
    [bad] = events(proxy, "bad_input", side="client")
    assert "API" in bad["reason"]
    eventually(lambda: fake_gateway.closed_by_bad_input == 1, Bound.exactly(5), "the garbage reached the gateway unchanged")
    assert ib.isConnected() and ib.reqCurrentTime() is not None


def test_garbage_from_the_gateway_is_forwarded_raw_and_spares_other_pairs(fake_gateway: FakeGateway,
                                                                          make_proxy, connect_ib, raw_socket):
    fake_gateway.garbage_client_ids = {77}
    proxy = make_proxy(fake_gateway.port)
    ib = connect_ib(proxy.port)
    sock = raw_socket(proxy.port)
    sock.sendall(HELLO + encode_fields(71, 2, 77, ""))
    handshake = encode_fields(176, "20240102 10:00:00 EST")
    garbage = b"\xff\xff\xff\xffnot tws at all"
    assert b"".join(read_exactly(sock, len(handshake) + len(garbage))) == handshake + garbage
    eventually(lambda: events(proxy, "bad_input", side="upstream"), Bound.exactly(5), "bad_input recorded for the gateway side")
    assert ib.reqCurrentTime() is not None


def test_garbage_from_the_gateway_while_silent_closes_that_pair(fake_gateway: FakeGateway, make_proxy,
                                                                connect_ib, raw_socket):
    fake_gateway.garbage_client_ids = {78}
    proxy = make_proxy(fake_gateway.port)
    ib = connect_ib(proxy.port)
    proxy.apply(Silent(client_id=78))
    sock = raw_socket(proxy.port)
    sock.sendall(HELLO + encode_fields(71, 2, 78, ""))
    received = read_until_closed(sock)
    assert received == encode_fields(176, "20240102 10:00:00 EST"), "only the handshake passed"
    assert events(proxy, "disconnect", side="proxy", client_id=78)
    assert ib.reqCurrentTime() is not None


def test_reset_sends_rst(echo: Echo, make_proxy, raw_socket):
    proxy = make_proxy(echo.port)
    sock = raw_socket(proxy.port)
    sock.sendall(b"ping")
    assert b"".join(read_exactly(sock, 4)) == b"ping"
    proxy.apply(Reset())
    with pytest.raises(ConnectionResetError):
        read_until_closed(sock)


def test_bandwidth_paces_bytes(echo: Echo, make_proxy, raw_socket):
    proxy = make_proxy(echo.port)
    payload = bytes(range(256)) * 80  # 20 480 bytes
    proxy.apply(Bandwidth(rate_kbps=40, direction="downstream"))
    sock = raw_socket(proxy.port)
    started = time.monotonic()
    sock.sendall(payload)
    received = b"".join(read_exactly(sock, len(payload)))
    elapsed_s = time.monotonic() - started
    assert received == payload
    assert elapsed_s >= len(payload) / 40_000 * 0.9, f"{len(payload)} bytes at 40 kB/s took only {elapsed_s:.3f} s"


def test_slicer_delivers_the_same_bytes_in_small_pieces(echo: Echo, make_proxy, raw_socket):
    proxy = make_proxy(echo.port)
    proxy.apply(Slicer(max_chunk_bytes=4, delay_us=3000, direction="downstream"))
    sock = raw_socket(proxy.port)
    payload = encode_fields(17, 5, "20240102", "20240103", 1, "20240102", 1.0, 2.0, 0.5, 1.5, 100, 1.2, 3)
    sock.sendall(payload)
    pieces = read_exactly(sock, len(payload))
    assert b"".join(pieces) == payload
    # 3 ms apart, slices rarely coalesce; a busy machine may merge a few, never most of them.
    assert len(pieces) >= len(payload) // 4 // 3, [len(p) for p in pieces]


def test_a_client_that_stops_reading_cannot_grow_the_proxy(echo: Echo, make_proxy, raw_socket):
    config = ProxyConfig(max_queue_bytes=256 * 1024)
    proxy = make_proxy(echo.port, config=config)
    proxy.apply(Latency(latency_ms=10, direction="downstream"))  # exercise the timed queue too
    sock = raw_socket(proxy.port)
    sock.setblocking(False)
    chunk, sent = b"x" * 65536, 0
    deadline = time.monotonic() + 10.0
    stalled_since = None
    while time.monotonic() < deadline:  # push until every buffer on the way is full
        try:
            sent += sock.send(chunk)
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:
                break
            time.sleep(0.01)  # pacing the send loop (the kernel reports progress, not an event)
    [pair] = proxy.proxy._live.values()
    held = pair.down.queued_bytes + pair.transports["client"].get_write_buffer_size() + \
        pair.up.queued_bytes + pair.transports["upstream"].get_write_buffer_size()
    assert sent > 4 * 1024 * 1024 or held < sent, "the sender was never held back"
    assert held <= 2 * config.max_queue_bytes + 4 * 256 * 1024, f"proxy holds {held} bytes of {sent} sent"


def test_a_blackholed_connection_swallows_everything_for_good(echo: Echo, make_proxy, raw_socket):
    proxy = make_proxy(echo.port)
    with proxy.fault(Blackhole()):
        sock = raw_socket(proxy.port)
        sock.sendall(b"ping")
        eventually(lambda: [c for c in proxy.connections() if c["state"] == "blackholed"], Bound.exactly(5),
                   "the new connection listed as blackholed")
    sock.sendall(b"pong")  # healing does not revive a stream whose first bytes are gone
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        sock.recv(16)
    assert not events(proxy, "upstream_connected")
    opened = raw_socket(proxy.port)
    opened.sendall(b"ping")
    assert b"".join(read_exactly(opened, 4)) == b"ping", "new connections are forwarded again"
