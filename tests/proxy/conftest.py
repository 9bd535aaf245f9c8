"""Fixtures of the fault-proxy tests: upstream gateways (the simulator, or a byte-level fake), taps, proxies, clients."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from ib_insync import IB
from proxy_fakes import CONNECT_TIMEOUT_S, REQUEST_TIMEOUT_S, Echo, FakeGateway, LoopThread, Tap

from ibtargets.proxy import ThreadedProxy

T = TypeVar("T")
#: Client IDs are never reused within a run: the simulator may keep a closed ID "in use" for a while.
_client_ids = itertools.count(101)


def simulator_class():
    """``ibtargets.gateway.ThreadedGateway`` when the simulator is available, else None."""
    try:
        from ibtargets.gateway import ThreadedGateway
    except Exception:  # not written yet, or half-written: fall back to the fake
        return None
    return ThreadedGateway


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def stop_later() -> Iterator[Callable[[T], T]]:
    """``stop_later(server)`` returns ``server`` and stops it at teardown (newest first), even on failure."""
    started: list = []

    def track(server: T) -> T:
        started.append(server)
        return server

    yield track
    for server in reversed(started):
        server.stop()


@pytest.fixture
def fake_gateway(loop_thread: LoopThread, stop_later) -> FakeGateway:
    return stop_later(FakeGateway(loop_thread).start())


@pytest.fixture
def echo(loop_thread: LoopThread, stop_later) -> Echo:
    return stop_later(Echo(loop_thread).start())


@pytest.fixture(scope="session")
def simulator() -> Iterator[object | None]:
    cls = simulator_class()
    if cls is None:
        yield None
        return
    with cls() as gateway:
        yield gateway


@pytest.fixture
def upstream_port(simulator: object | None, request: pytest.FixtureRequest) -> int:
    """The gateway the ib_insync tests talk to: the simulator if present, else the fake."""
    if simulator is not None:
        return simulator.port  # type: ignore[attr-defined]
    return request.getfixturevalue("fake_gateway").port


@pytest.fixture
def make_proxy(stop_later) -> Callable[..., ThreadedProxy]:
    """``make_proxy(upstream_port, **ThreadedProxy kwargs)``: a started proxy."""
    return lambda upstream_port, **kwargs: stop_later(ThreadedProxy("127.0.0.1", upstream_port, **kwargs).start())


@pytest.fixture
def proxy(make_proxy: Callable[..., ThreadedProxy], upstream_port: int) -> ThreadedProxy:
    return make_proxy(upstream_port)


@pytest.fixture
def make_tap(loop_thread: LoopThread, stop_later) -> Callable[[int], Tap]:
    """``make_tap(port)``: a started recording relay to ``port``."""
    return lambda port: stop_later(Tap(loop_thread, port).start())


@pytest.fixture
def ib_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop for ib_insync's blocking API (an earlier asyncio.run() may have unset the main one)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.run_until_complete(asyncio.sleep(0))  # let ib_insync's closing sockets finish
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def connect_ib(ib_loop: asyncio.AbstractEventLoop) -> Iterator[Callable[..., IB]]:
    """``connect_ib(port, client_id=None, timeout_s=...)``: a connected ib_insync IB, disconnected afterwards."""
    clients: list[IB] = []
    logging.getLogger("ib_insync").setLevel(logging.CRITICAL)  # expected timeouts are not noise to print

    def connect(port: int, client_id: int | None = None, timeout_s: float = CONNECT_TIMEOUT_S) -> IB:
        ib = IB()
        ib.RequestTimeout = REQUEST_TIMEOUT_S
        clients.append(ib)
        ib.connect("127.0.0.1", port, clientId=client_id if client_id is not None else next(_client_ids),
                   timeout=timeout_s)
        return ib

    yield connect
    for ib in clients:
        ib.disconnect()


@pytest.fixture
def client_id() -> Callable[[], int]:
    """A fresh client ID each call."""
    return lambda: next(_client_ids)


@pytest.fixture
def raw_socket() -> Iterator[Callable[[int], socket.socket]]:
    """``raw_socket(port)``: a connected blocking socket with a 5 s timeout, closed afterwards."""
    sockets: list[socket.socket] = []

    def connect(port: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        sockets.append(sock)
        return sock

    yield connect
    for sock in sockets:
        sock.close()
