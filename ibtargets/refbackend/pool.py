"""Connection pool: validated handoffs, client-ID preference with 326 fallback, idle GC, bounded waits.

Everything runs on the server's one asyncio event loop, so the pool's state is changed
only between awaits and needs no lock. Each rule lives in one small method so that a
test can replace exactly one of them:

====================================  =================================================
``ConnectionPool.validate``           ``isConnected()`` + ``reqCurrentTime`` under the validation timeout
``ConnectionPool._checkout``          an idle connection is marked in use before anyone else can take it
``ConnectionPool._next_client_id``    lowest free ID of the range not yet tried in this round
``connect_ib``                        one connect; error 326 from ``errorEvent`` aborts it at once
``ConnectionPool.release``            back to idle (or closed when dead / retired)
``ConnectionPool.collect_idle``       close idle connections older than ``max_idle_s``
``ConnectionPool.remove_dead``        drop connections whose socket the gateway closed
``ConnectionPool.run_health_check``   one pass of the health / GC loop
====================================  =================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ibtargets.common import ibclient
from ibtargets.common.ibclient import IB
from ibtargets.refbackend.errors import (
    ClientIdInUse,
    ClientIdsExhausted,
    GatewaySilent,
    GatewayUnavailable,
    IBError,
    PoolClosed,
    PoolExhausted,
)
from ibtargets.refbackend.settings import Settings

log = logging.getLogger(__name__)

#: IB error code: "Unable to connect as the client id is already in use."
CLIENT_ID_IN_USE = 326
#: What an acquire keeps of its budget (``acquire_timeout_s``) for the request itself once it has a connection: a
#: replacement connect after a slow failed validation gets only what is left before that (found by the nemesis:
#: a reset 2.2 s into a validation on a silent gateway, then a full 3 s connect, answered a discovery in 5.2 s).
REQUEST_MARGIN_S = 1.0


def wall_now() -> float:
    """Epoch seconds (for ISO timestamps); monotonic time is used for every duration."""
    return time.time()


def _settle(task: asyncio.Future[Any]) -> None:
    """Cancel a task we no longer need and mark its outcome as retrieved (no "never retrieved" log)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


async def connect_ib(host: str, port: int, client_id: int, timeout_s: float, readonly: bool = True) -> IB:
    """Open one IB connection (ib_insync or ib_async: :mod:`ibtargets.common.ibclient`), bounded by ``timeout_s`` as a whole.

    Error 326 is taken from the library's ``errorEvent`` (its code, not its text) and
    aborts the attempt at once instead of waiting for the library's own timeout.

    Args:
        host: gateway host.
        port: gateway API port.
        client_id: the client ID to present in ``startApi``.
        timeout_s: bound on the TCP connect, the API handshake and the library's sync requests.
        readonly: skip the order synchronisation at connect.

    Raises:
        ClientIdInUse: the gateway answered 326.
        ConnectionError, OSError: refused, reset or closed during the handshake.
        asyncio.TimeoutError: nothing completed within ``timeout_s``.
    """
    loop = asyncio.get_running_loop()
    ib = IB()
    refused: asyncio.Future[str] = loop.create_future()
    closed: asyncio.Future[str] = loop.create_future()

    def on_error(req_id: int, code: int, message: str, contract: object) -> None:
        if code == CLIENT_ID_IN_USE and not refused.done():
            refused.set_result(message)

    def on_api_error(message: str) -> None:
        if not closed.done():
            closed.set_result(message)

    ib.errorEvent += on_error
    ib.client.apiError += on_api_error
    connecting = asyncio.ensure_future(ibclient.connect(ib, host, port, client_id, timeout_s, readonly))
    try:
        done, _ = await asyncio.wait({connecting, refused, closed}, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if refused.done():
            raise ClientIdInUse(client_id, refused.result())
        if connecting in done:
            connecting.result()
        elif closed.done():
            raise ConnectionError(f"the gateway closed the connection during the handshake ({closed.result()})")
        else:
            raise TimeoutError(f"no API handshake within {timeout_s:.1f} s")
    except BaseException:
        _settle(connecting)
        ib.client.disconnect()
        raise
    finally:
        ib.errorEvent -= on_error
        ib.client.apiError -= on_api_error
        for future in (refused, closed):
            _settle(future)
    # From here on an IB error answer ends a request with RequestError carrying the code.
    ib.RaiseRequestErrors = True
    return ib


@dataclass(eq=False)
class PooledConnection:
    """One IB connection owned by the pool."""

    ib: IB
    client_id: int
    serial: int
    host: str
    port: int
    generation: int
    created_mono: float
    created_wall: float
    last_used_mono: float
    in_use: bool = True
    retired: bool = False
    closed: bool = False
    handoffs: int = 0
    last_validated_mono: float | None = None
    last_validation_ok: bool | None = None
    #: Every lower ID of the range was unavailable (ours, being connected, or refused) when this one was chosen.
    preference_kept: bool = False

    def is_connected(self) -> bool:
        """Whether the IB client still has a ready API connection."""
        return self.ib.isConnected()

    def describe(self, now_mono: float) -> dict[str, Any]:
        """A JSON-ready summary for status endpoints."""
        return {"client_id": self.client_id, "in_use": self.in_use, "connected": self.is_connected(),
                "idle_seconds": 0.0 if self.in_use else round(now_mono - self.last_used_mono, 3),
                "handoffs": self.handoffs, "host": self.host, "port": self.port}


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of one validation round-trip."""

    ok: bool
    reason: str = ""
    timed_out: bool = False
    elapsed_ms: float = 0.0


@dataclass
class PoolMetrics:
    """Counters and the live evidence the status and resilience endpoints report."""

    started_mono: float = field(default_factory=time.monotonic)
    total_connections: int = 0
    failed_connections: int = 0
    closed_connections: int = 0
    last_connect_wall: float | None = None
    last_disconnect_wall: float | None = None
    handoffs: int = 0
    validations_ok: int = 0
    validations_failed: int = 0
    last_validation_ok_mono: float | None = None
    last_failure_mono: float | None = None
    last_failure_reason: str = ""
    last_gc_run_mono: float | None = None
    gc_runs: int = 0
    idle_closed: int = 0
    dead_removed: int = 0
    #: client ID → monotonic time the gateway last answered 326 for it.
    refused_ids: dict[int, float] = field(default_factory=dict)



class ConnectionPool:
    """At most ``pool_size`` validated IB connections, handed to one caller at a time.

    Args:
        settings: host, port, client-ID range, timeouts and sizes.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.host = settings.ib_host
        self.port = settings.ib_port
        self.client_id_min = settings.client_id_min
        self.client_id_max = settings.client_id_max
        self.generation = 0
        self.metrics = PoolMetrics()
        self._connections: dict[int, PooledConnection] = {}
        self._opening = 0
        self._connecting_ids: set[int] = set()
        self._serial = 0
        self._change: asyncio.Future[None] | None = None
        self._evidence: asyncio.Future[None] | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[ValidationResult] | None = None
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the health / garbage-collection loop (its first pass runs now)."""
        self._started = True
        self._health_task = asyncio.ensure_future(self._health_loop())

    async def close(self) -> int:
        """Stop the loop and close every connection, in use or not; return how many were closed."""
        self._closed = True
        for task in (self._health_task, self._probe_task):
            if task is not None:
                _settle(task)
        count = 0
        for conn in list(self._connections.values()):
            self._discard(conn, "pool closed")
            count += 1
        self._notify()
        return count

    @property
    def running(self) -> bool:
        """Whether the pool is started, not closed, and its health loop is alive."""
        return (self._started and not self._closed and self._health_task is not None
                and not self._health_task.done())

    # ------------------------------------------------------------------ handoff

    async def acquire(self) -> PooledConnection:
        """A connection that passed validation just now, for the caller alone.

        A connection that fails validation is closed and never handed out; a dead one is
        replaced at once; a silent one (validation timed out) fails this call.

        Raises:
            PoolExhausted: all connections stayed busy for ``acquire_timeout_s``.
            GatewaySilent: validation timed out.
            GatewayUnavailable, ClientIdsExhausted: no new connection could be opened.
        """
        deadline = asyncio.get_running_loop().time() + self.settings.acquire_timeout_s
        last_reason = "no attempt"
        for _attempt in range(self.settings.pool_size + 2):
            conn = await self._checkout(deadline)
            if conn is None:
                conn = await self._open_within(deadline - REQUEST_MARGIN_S)
            try:
                result = await self.validate(conn)
            except BaseException:
                self._discard(conn, "validation interrupted")
                raise
            if result.ok:
                conn.handoffs += 1
                self.metrics.handoffs += 1
                return conn
            last_reason = result.reason
            self._discard(conn, f"validation failed: {result.reason}")
            if result.timed_out:
                raise GatewaySilent(f"IB Gateway did not answer reqCurrentTime within "
                                    f"{self.settings.validation_timeout_s:.1f} s (client ID {conn.client_id})",
                                    {"client_id": conn.client_id, "elapsed_ms": result.elapsed_ms})
        raise GatewayUnavailable(f"no IB connection passed validation: {last_reason}")

    def release(self, conn: PooledConnection) -> None:
        """Give a connection back: idle again, or closed when dead, retired or from an old config."""
        if conn.closed:
            return
        conn.in_use = False
        conn.last_used_mono = time.monotonic()
        if conn.retired or conn.generation != self.generation or not conn.is_connected():
            self._discard(conn, "released while dead or retired")
        self._notify()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[PooledConnection]:
        """``async with pool.connection() as conn:`` acquire, then always release."""
        conn = await self.acquire()
        try:
            yield conn
        finally:
            self.release(conn)

    async def validate(self, conn: PooledConnection) -> ValidationResult:
        """``isConnected()`` plus a ``reqCurrentTime`` round-trip bounded by the validation timeout."""
        started = time.monotonic()
        if not conn.is_connected():
            result = ValidationResult(False, "not connected")
        else:
            try:
                await asyncio.wait_for(conn.ib.reqCurrentTimeAsync(), self.settings.validation_timeout_s)
                result = ValidationResult(True)
            except TimeoutError:
                result = ValidationResult(False, f"reqCurrentTime unanswered for "
                                                 f"{self.settings.validation_timeout_s:.1f} s", timed_out=True)
            except (ConnectionError, OSError) as exc:
                result = ValidationResult(False, f"connection lost: {exc}")
        now = time.monotonic()
        result = ValidationResult(result.ok, result.reason, result.timed_out, round((now - started) * 1000, 3))
        conn.last_validated_mono = now
        conn.last_validation_ok = result.ok
        if result.ok:
            self.metrics.validations_ok += 1
            self.record_outcome(True)
        else:
            self.metrics.validations_failed += 1
            self.record_outcome(False, f"validation of client ID {conn.client_id}: {result.reason}")
        return result

    async def _checkout(self, deadline: float) -> PooledConnection | None:
        """Mark an idle connection in use and return it, or reserve a slot for a new one (None).

        Raises:
            PoolExhausted: nothing became free before ``deadline``.
        """
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise PoolClosed("the connection pool is shut down")
            conn = self._pick_idle()
            if conn is not None:
                conn.in_use = True
                return conn
            if len(self._connections) + self._opening < self.settings.pool_size:
                self._opening += 1
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PoolExhausted(f"all {self.settings.pool_size} IB connections stayed busy for "
                                    f"{self.settings.acquire_timeout_s:.1f} s", self.stats())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._change_future()), remaining)

    def _pick_idle(self) -> PooledConnection | None:
        """The idle connection with the lowest client ID (so high IDs go idle and get collected)."""
        idle = [c for c in self._connections.values() if not c.in_use]
        for conn in idle:
            if conn.retired or conn.generation != self.generation:
                self._discard(conn, "configuration changed")
        idle = [c for c in idle if not c.closed]
        return min(idle, key=lambda c: c.client_id) if idle else None

    async def _open_within(self, budget_end: float) -> PooledConnection:
        """Open a connection in a reserved slot; when less than a connect timeout is left before ``budget_end``
        (a validation failed late), only within what is left: "a 3 s validation leaves 2 s for one bounded
        replacement attempt" (docs/contract.md).

        Raises:
            GatewayUnavailable: no connection within what was left.
        """
        remaining = budget_end - asyncio.get_running_loop().time()
        if remaining >= self.settings.connect_timeout_s:
            return await self._open_reserved()
        try:
            return await asyncio.wait_for(self._open_reserved(), max(0.1, remaining))
        except TimeoutError:
            self.metrics.failed_connections += 1
            reason = f"no replacement connection within the {max(0.0, remaining):.1f} s left of the acquire budget"
            self.record_outcome(False, reason)
            raise GatewayUnavailable(f"cannot connect to IB Gateway at {self.host}:{self.port}: {reason}",
                                     {"host": self.host, "port": self.port}) from None

    async def _open_reserved(self) -> PooledConnection:
        """Open a connection in a slot reserved by :meth:`_checkout`; free the slot on failure."""
        try:
            conn = await self._open()
        except BaseException:
            self._opening -= 1
            self._notify()
            raise
        self._opening -= 1
        self._connections[conn.serial] = conn
        return conn

    async def _open(self) -> PooledConnection:
        """Connect with the lowest free client ID, moving to the next one on error 326."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.connect_timeout_s
        host, port, generation = self.host, self.port, self.generation
        tried: set[int] = set()
        while True:
            client_id = self._next_client_id(tried)
            if client_id is None:
                self.metrics.failed_connections += 1
                raise ClientIdsExhausted(
                    f"no free client ID in {self.client_id_min}..{self.client_id_max} "
                    f"(tried {sorted(tried)}; in use here: {self.client_ids_in_use()})",
                    {"tried": sorted(tried)})
            unavailable = self._unavailable_ids() | tried
            tried.add(client_id)
            remaining = deadline - loop.time()
            self._connecting_ids.add(client_id)
            try:
                if remaining <= 0:
                    raise TimeoutError(f"connect budget of {self.settings.connect_timeout_s:.1f} s spent")
                ib = await connect_ib(host, port, client_id, remaining, self.settings.readonly)
            except ClientIdInUse as exc:
                self.metrics.refused_ids[client_id] = time.monotonic()
                log.info("client ID %d refused by the gateway (326): %s", client_id, exc)
                continue
            except (TimeoutError, OSError, ConnectionError) as exc:
                self.metrics.failed_connections += 1
                reason = str(exc) or type(exc).__name__
                self.record_outcome(False, f"connect to {host}:{port} failed: {reason}")
                raise GatewayUnavailable(f"cannot connect to IB Gateway at {host}:{port} "
                                         f"(client ID {client_id}): {reason}",
                                         {"host": host, "port": port, "client_id": client_id}) from None
            finally:
                self._connecting_ids.discard(client_id)
            conn = self._adopt(ib, client_id, host, port, generation)
            conn.preference_kept = all(i in unavailable for i in range(self.client_id_min, client_id))
            return conn

    def _adopt(self, ib: IB, client_id: int, host: str, port: int, generation: int) -> PooledConnection:
        """Wrap a fresh IB connection and watch for the gateway dropping it."""
        now = time.monotonic()
        self._serial += 1
        conn = PooledConnection(ib=ib, client_id=client_id, serial=self._serial, host=host, port=port,
                                generation=generation, created_mono=now, created_wall=wall_now(),
                                last_used_mono=now)
        self.metrics.refused_ids.pop(client_id, None)
        self.metrics.total_connections += 1
        self.metrics.last_connect_wall = conn.created_wall
        ib.disconnectedEvent += lambda: self._on_gateway_disconnect(conn)
        log.info("connected to %s:%d with client ID %d", host, port, client_id)
        return conn

    def _unavailable_ids(self) -> set[int]:
        """Client IDs of our open connections and of connects in progress."""
        return {c.client_id for c in self._connections.values()} | self._connecting_ids

    def _next_client_id(self, tried: set[int]) -> int | None:
        """The lowest ID of the range neither in use, being connected, nor tried in this round."""
        busy = self._unavailable_ids() | tried
        for client_id in range(self.client_id_min, self.client_id_max + 1):
            if client_id not in busy:
                return client_id
        return None

    def _on_gateway_disconnect(self, conn: PooledConnection) -> None:
        """The IB client saw the socket close without us asking: the connection is dead (removed at next check)."""
        if conn.closed:
            return
        self.metrics.last_disconnect_wall = wall_now()
        self.record_outcome(False, f"gateway closed client ID {conn.client_id}")
        log.warning("gateway closed the connection of client ID %d", conn.client_id)

    def _discard(self, conn: PooledConnection, reason: str) -> None:
        """Close a connection and forget it (idempotent)."""
        if conn.closed:
            return
        conn.closed = True
        self._connections.pop(conn.serial, None)
        was_connected = conn.is_connected()
        with contextlib.suppress(Exception):
            conn.ib.disconnectedEvent.clear()
            conn.ib.client.disconnect()
            # Fail whatever a holder still awaits on this socket instead of letting it wait out its bound.
            conn.ib.wrapper.connectionClosed()
        self.metrics.closed_connections += 1
        if was_connected:
            self.metrics.last_disconnect_wall = wall_now()
        log.info("closed client ID %d: %s", conn.client_id, reason)
        self._notify()

    def record_outcome(self, ok: bool, reason: str = "") -> None:
        """Note live evidence: a validation round-trip succeeded, or IB failed us (validation, connect,
        a connection dropped by the gateway, a failed health probe)."""
        now = time.monotonic()
        if ok:
            self.metrics.last_validation_ok_mono = now
        else:
            self.metrics.last_failure_mono, self.metrics.last_failure_reason = now, reason
        if self._evidence is not None and not self._evidence.done():
            self._evidence.set_result(None)

    def _change_future(self) -> asyncio.Future[None]:
        if self._change is None or self._change.done():
            self._change = asyncio.get_running_loop().create_future()
        return self._change

    def _notify(self) -> None:
        """Wake callers waiting for a free connection."""
        if self._change is not None and not self._change.done():
            self._change.set_result(None)

    # ------------------------------------------------------------------ health / GC

    async def _health_loop(self) -> None:
        """Run :meth:`run_health_check` now and then every ``health_interval_s``."""
        while not self._closed:
            try:
                self.run_health_check()
            except Exception:  # one bad pass must not end the loop
                log.exception("health check failed")
            await asyncio.sleep(self.settings.health_interval_s)

    def run_health_check(self) -> None:
        """One pass: remove dead connections, close long-idle ones, record that the pass ran."""
        self.remove_dead()
        self.collect_idle()
        self.metrics.last_gc_run_mono = time.monotonic()
        self.metrics.gc_runs += 1

    def collect_idle(self) -> int:
        """Close connections idle longer than ``max_idle_s``; never one in use. Return the count."""
        now = time.monotonic()
        expired = [c for c in self._connections.values()
                   if not c.in_use and now - c.last_used_mono > self.settings.max_idle_s]
        for conn in expired:
            self._discard(conn, f"idle for {now - conn.last_used_mono:.1f} s")
        self.metrics.idle_closed += len(expired)
        return len(expired)

    def remove_dead(self) -> int:
        """Close connections whose socket is gone (never one in use: its holder finds out itself)."""
        dead = [c for c in self._connections.values() if not c.in_use and not c.is_connected()]
        for conn in dead:
            self._discard(conn, "dead")
        self.metrics.dead_removed += len(dead)
        return len(dead)

    # ------------------------------------------------------------------ probes and admin

    async def probe(self) -> ValidationResult:
        """One bounded acquire/validate/release round-trip; concurrent callers share it."""
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.ensure_future(self._probe_once())
        return await asyncio.shield(self._probe_task)

    async def probe_until_evidence(self) -> None:
        """Run the shared :meth:`probe`, but return as soon as any caller records an IB outcome."""
        if self._evidence is None or self._evidence.done():
            self._evidence = asyncio.get_running_loop().create_future()
        probing = asyncio.ensure_future(self.probe())
        await asyncio.wait({probing, self._evidence}, return_when=asyncio.FIRST_COMPLETED)
        _settle(probing)  # the shared probe itself is shielded and goes on

    async def _probe_once(self) -> ValidationResult:
        started = time.monotonic()
        try:
            conn = await asyncio.wait_for(self.acquire(), self.settings.probe_timeout_s)
        except TimeoutError:
            reason = f"no validated IB connection within {self.settings.probe_timeout_s:.1f} s"
            self.record_outcome(False, reason)
            return ValidationResult(False, reason, True, (time.monotonic() - started) * 1000)
        except IBError as exc:
            return ValidationResult(False, exc.message, isinstance(exc, GatewaySilent),
                                    (time.monotonic() - started) * 1000)
        self.release(conn)
        return ValidationResult(True, "", False, (time.monotonic() - started) * 1000)

    def evidence_fresh(self) -> bool:
        """Whether the last IB outcome was a successful validation younger than ``evidence_max_age_s``."""
        m = self.metrics
        if m.last_validation_ok_mono is None:
            return False
        if m.last_failure_mono is not None and m.last_failure_mono >= m.last_validation_ok_mono:
            return False
        return time.monotonic() - m.last_validation_ok_mono <= self.settings.evidence_max_age_s

    def last_outcome_ok(self) -> bool:
        """Whether the latest IB outcome (validation, connect, drop) was a success."""
        m = self.metrics
        return m.last_validation_ok_mono is not None and (
            m.last_failure_mono is None or m.last_validation_ok_mono > m.last_failure_mono)

    def cleanup(self, force: bool = False) -> int:
        """Close every idle connection now; in-use ones close on release (or now with ``force``)."""
        closed = 0
        for conn in list(self._connections.values()):
            if conn.in_use and not force:
                conn.retired = True
                continue
            self._discard(conn, "cleanup")
            closed += 1
        return closed

    def reconfigure(self, host: str | None = None, port: int | None = None,
                    client_id_min: int | None = None) -> None:
        """Use a new address / first client ID for new connections; retire the old ones."""
        if host is not None:
            self.host = host
        if port is not None:
            self.port = port
        if client_id_min is not None:
            span = self.client_id_max - self.client_id_min
            self.client_id_min, self.client_id_max = client_id_min, client_id_min + span
        self.generation += 1
        for conn in list(self._connections.values()):
            if not conn.in_use:
                self._discard(conn, "configuration changed")

    # ------------------------------------------------------------------ views

    def connections(self) -> list[PooledConnection]:
        """The open connections, lowest client ID first."""
        return sorted(self._connections.values(), key=lambda c: c.client_id)

    def client_ids_in_use(self) -> list[int]:
        """Client IDs of the open connections (IDs the gateway accepted)."""
        return [c.client_id for c in self.connections()]

    def stats(self) -> dict[str, Any]:
        """Counts for status endpoints and error details."""
        conns = self.connections()
        active = sum(1 for c in conns if c.in_use)
        return {"total_connections": len(conns), "active_connections": active,
                "idle_connections": len(conns) - active, "opening_connections": self._opening,
                "client_ids_in_use": [c.client_id for c in conns], "max_connections": self.settings.pool_size}
