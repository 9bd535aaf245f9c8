"""IB driver: the suite's own IB clients (probes, client-ID squatters), on one loop in one thread.

The client library (ib_insync or ib_async) is the one :mod:`ibtargets.common.ibclient` names when a client is made
(the ``ib_library`` setting), never when this module is imported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ibtargets.common import ibclient
from ibtargets.common.accounts import is_paper_account
from ibtargets.common.loop_thread import LoopThread

if TYPE_CHECKING:
    from ibtargets.common.ibclient import IB, Contract

T = TypeVar("T")

#: Paper accounts start with D (DU individual, DF advisor); anything else is live money.


class LiveAccountError(RuntimeError):
    """The gateway is logged in to a live (non-paper) account: the suite must not run."""


@dataclass(frozen=True)
class IbProbe:
    """Outcome of one connect + reqCurrentTime, as a client sees it."""

    client_id: int
    connected: bool
    server_time: dt.datetime | None
    accounts: tuple[str, ...]
    elapsed_s: float
    error: str = ""
    server_version: int = 0      # the TWS API version the gateway negotiated (0 when not connected)


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar as IB served it."""

    date: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class IbDriver:
    """Runs IB clients (:mod:`ibtargets.common.ibclient`) on a private event loop in a daemon thread.

    Args:
        host, port: the gateway (real or simulated), not the backend.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._loops = LoopThread("ib-driver").start()  # the IB library looks its loop up per thread
        self._held: dict[int, IB] = {}
        #: Local ports of the suite's own IB connections (so history can leave them out), and when each was opened:
        #: a port the OS hands to the backend later is the backend's (history matches port and time).
        self.own_ports: set[int] = set()
        self.own_connects: list[tuple[int, float]] = []

    async def _connect(self, ib: IB, client_id: int, timeout_s: float) -> None:
        """Connect read-only, remembering the local port whatever the outcome."""
        task = asyncio.ensure_future(ibclient.connect(ib, self.host, self.port, client_id, timeout_s, readonly=True))
        try:
            while not task.done() and ib.client.conn.transport is None:
                await asyncio.sleep(0.005)  # yield until the TCP socket exists
            transport = ib.client.conn.transport
            if transport is not None:
                port = transport.get_extra_info("sockname")[1]
                self.own_ports.add(port)
                self.own_connects.append((port, time.monotonic()))
        finally:
            await task

    def _run(self, factory: Callable[[], Awaitable[T]], timeout_s: float) -> T:
        return self._loops.call(_bounded(factory(), timeout_s), timeout_s + 2.0)

    def probe(self, client_id: int, timeout_s: float = 5.0) -> IbProbe:
        """Connect with ``client_id``, ask the server time, disconnect."""
        async def go() -> IbProbe:
            ib = ibclient.IB()
            started = time.monotonic()
            try:
                await self._connect(ib, client_id, timeout_s)
                server_time = await asyncio.wait_for(ib.reqCurrentTimeAsync(), timeout_s)
                return IbProbe(client_id, True, server_time, tuple(ib.managedAccounts()),
                               time.monotonic() - started, server_version=ib.client.serverVersion())
            except (TimeoutError, OSError, ConnectionError) as exc:
                return IbProbe(client_id, False, None, (), time.monotonic() - started,
                               f"{exc.__class__.__name__}: {exc}")
            finally:
                ib.disconnect()
        return self._run(go, timeout_s * 2 + 1)

    def managed_accounts(self, client_id: int, timeout_s: float = 5.0) -> tuple[str, ...]:
        """The accounts the gateway is logged in to.

        Raises:
            ConnectionError: the gateway did not complete a connection.
        """
        probe = self.probe(client_id, timeout_s)
        if not probe.connected:
            raise ConnectionError(f"cannot reach IB at {self.host}:{self.port}: {probe.error}")
        return probe.accounts

    def ensure_paper_account(self, client_id: int, timeout_s: float = 5.0) -> tuple[str, ...]:
        """Return the accounts if all are paper accounts.

        Raises:
            LiveAccountError: any account is not a paper account.
        """
        accounts = self.managed_accounts(client_id, timeout_s)
        live = [a for a in accounts if not is_paper_account(a)]
        if live or not accounts:
            raise LiveAccountError(
                f"IB at {self.host}:{self.port} is logged in to {', '.join(accounts) or 'no account'}: "
                "not a paper account; the resilience suite never runs against live money")
        return accounts

    def squat(self, client_id: int, timeout_s: float = 5.0) -> None:
        """Hold a connection with ``client_id`` so that nobody else can use it (IB error 326).

        Raises:
            ConnectionError: the ID could not be taken.
        """
        async def go() -> None:
            ib = ibclient.IB()
            try:
                await self._connect(ib, client_id, timeout_s)
            except (TimeoutError, OSError) as exc:
                ib.disconnect()
                raise ConnectionError(f"could not take client ID {client_id}: {exc!r}") from None
            self._held[client_id] = ib
        self._run(go, timeout_s + 1)

    def release(self, client_id: int) -> None:
        """Give back a squatted client ID (no-op if not held)."""
        async def go() -> None:
            ib = self._held.pop(client_id, None)
            if ib is not None:
                ib.disconnect()
        self._run(go, 5.0)

    def release_all(self) -> None:
        """Give back every squatted client ID."""
        for client_id in list(self._held):
            self.release(client_id)

    @property
    def squatted(self) -> tuple[int, ...]:
        """Client IDs currently held."""
        return tuple(sorted(self._held))

    def historical_bars(self, client_id: int, symbol: str, duration: str, bar_size: str,
                        end: str = "", use_rth: bool = True, timeout_s: float = 10.0) -> list[Bar]:
        """Ask IB directly for bars (the oracle the backend's cache is compared with)."""
        async def go() -> list[Bar]:
            ib = ibclient.IB()
            try:
                await self._connect(ib, client_id, timeout_s)
                contract: Contract = ibclient.Stock(symbol, "SMART", "USD")
                bars = await ib.reqHistoricalDataAsync(
                    contract, endDateTime=end, durationStr=duration, barSizeSetting=bar_size,
                    whatToShow="TRADES", useRTH=use_rth, formatDate=2, timeout=timeout_s)
                return [Bar(str(b.date), b.open, b.high, b.low, b.close, b.volume) for b in bars]
            finally:
                ib.disconnect()
        return self._run(go, timeout_s * 2 + 1)

    def close(self) -> None:
        """Release every client and stop the loop thread."""
        try:
            self.release_all()
        finally:
            self._loops.stop(timeout_s=5.0)


async def _bounded(awaitable: Awaitable[T], timeout_s: float) -> T:
    return await asyncio.wait_for(awaitable, timeout_s)

