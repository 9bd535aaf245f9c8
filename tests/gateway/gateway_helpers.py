"""Client-side helpers of the gateway tests: bounded ib_insync/ib_async sessions, an ibapi app, raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.wrapper import EWrapper

from ibtargets.common.wire import encode_fields, encode_hello
from support.waiting import Bound, eventually

T = TypeVar("T")
HOST = "127.0.0.1"
CONNECT_TIMEOUT_S = 4.0
#: Bound on one awaited request in the tests.
REQUEST_TIMEOUT_S = 5.0
#: Bound on a whole async test body.
BODY_TIMEOUT_S = 60.0


def run(body: Awaitable[T], timeout_s: float = BODY_TIMEOUT_S) -> T:
    """Run an async test body on a fresh event loop, bounded."""
    return asyncio.run(asyncio.wait_for(body, timeout_s))  # type: ignore[arg-type]


async def bounded(awaitable: Awaitable[T], timeout_s: float = REQUEST_TIMEOUT_S) -> T:
    """Await one request with a bound."""
    return await asyncio.wait_for(awaitable, timeout_s)


@contextlib.asynccontextmanager
async def ib_session(lib: Any, port: int, client_id: int, timeout_s: float = CONNECT_TIMEOUT_S,
                     **kwargs: Any) -> AsyncIterator[Any]:
    """A connected ``lib.IB()`` (ib_insync or ib_async), unthrottled, disconnected on exit."""
    ib = lib.IB()
    ib.client.MaxRequests = 0
    try:
        await ib.connectAsync(HOST, port, clientId=client_id, timeout=timeout_s, **kwargs)
        yield ib
    finally:
        ib.disconnect()


class ErrorLog:
    """Collects ``errorEvent`` tuples (reqId, code, message) of one IB instance."""

    def __init__(self, ib: Any):
        self.entries: list[tuple[int, int, str]] = []
        ib.errorEvent += self._on_error

    def _on_error(self, req_id: int, code: int, message: str, *rest: Any) -> None:
        self.entries.append((req_id, code, message))

    def codes(self) -> list[int]:
        """Codes in arrival order."""
        return [code for _, code, _ in self.entries]


async def until(predicate: Callable[[], Any], within_s: float, describe: str) -> Any:
    """Poll ``predicate`` inside an event loop (yielding to it) until truthy; bounded."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"{describe}: not true within {within_s} s (last: {value!r})")
        await asyncio.sleep(0.01)


def stock(symbol: str) -> Contract:
    """An ibapi SMART/USD stock contract."""
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange, contract.currency = symbol, "STK", "SMART", "USD"
    return contract


class IbapiApp(EWrapper, EClient):
    """The official ibapi client with every callback of interest recorded as a tuple in ``events``."""

    def __init__(self) -> None:
        EClient.__init__(self, self)
        self.events: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def _add(self, *event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def start(self, port: int, client_id: int, within_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect (bounded: ibapi's own connect has no timeout) and start the reader thread."""
        done = threading.Event()

        def connect() -> None:
            try:
                self.connect(HOST, port, client_id)
            finally:
                done.set()

        threading.Thread(target=connect, name="ibapi-connect", daemon=True).start()
        if not done.wait(within_s):
            self.disconnect()
            raise TimeoutError(f"ibapi connect did not return within {within_s} s")
        self._reader = threading.Thread(target=self.run, name="ibapi-reader", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        """Disconnect and join the reader thread (bounded)."""
        self.disconnect()
        if self._reader is not None:
            self._reader.join(5.0)

    def wait(self, predicate: Callable[[tuple[Any, ...]], bool], describe: str,
             within_s: float = REQUEST_TIMEOUT_S) -> tuple[Any, ...]:
        """The first recorded event matching ``predicate``, waiting for it with a bound."""
        def probe() -> tuple[Any, ...] | None:
            with self._lock:
                return next((e for e in self.events if predicate(e)), None)
        return eventually(probe, Bound.exactly(within_s), describe)

    def kinds(self, kind: str) -> list[tuple[Any, ...]]:
        """Every recorded event of one kind."""
        with self._lock:
            return [e for e in self.events if e[0] == kind]

    # --- EWrapper callbacks
    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803 - ibapi names
        self._add("nextValidId", orderId)

    def managedAccounts(self, accountsList: str) -> None:  # noqa: N802, N803
        self._add("managedAccounts", accountsList)

    def currentTime(self, time: int) -> None:  # noqa: N802
        self._add("currentTime", time)

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:  # noqa: N803
        self._add("error", reqId, errorCode, errorString)

    def connectionClosed(self) -> None:  # noqa: N802
        self._add("connectionClosed")

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:  # noqa: N802, N803
        self._add("contractDetails", reqId, contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._add("contractDetailsEnd", reqId)

    def historicalData(self, reqId: int, bar: Any) -> None:  # noqa: N802, N803
        self._add("historicalData", reqId, bar)

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:  # noqa: N802, N803
        self._add("historicalDataEnd", reqId, start, end)

    def headTimestamp(self, reqId: int, headTimestamp: str) -> None:  # noqa: N802, N803
        self._add("headTimestamp", reqId, headTimestamp)


# --------------------------------------------------------------------------- raw sockets


def raw_socket(port: int, timeout_s: float = 5.0) -> socket.socket:
    """A plain TCP connection to the gateway with a bound on every operation."""
    return socket.create_connection((HOST, port), timeout=timeout_s)


def read_until_closed(sock: socket.socket, within_s: float = 5.0, limit_bytes: int = 1 << 20) -> bytes:
    """Read until the peer closes (returns what was read); raises ``socket.timeout`` past the bound."""
    sock.settimeout(within_s)
    chunks = []
    total = 0
    while total < limit_bytes:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def api_handshake(sock: socket.socket, client_id: int, max_version: int = 176) -> None:
    """Send the hello and startApi as a real client would (answers are left unread)."""
    sock.sendall(encode_hello(157, max_version) + encode_fields(71, 2, client_id, ""))
