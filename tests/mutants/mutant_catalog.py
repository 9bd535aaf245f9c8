"""Seeded bugs: each mutant reintroduces one bug the user fears into the reference backend.

A mutant is a small patch applied at start-up by ``tests/mutants/launch.py`` (in the
backend server process and in every CLI process), never a switch in ``support/``.
Each names the scenario that must kill it and the step that must be the one to fail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Kill:
    """A scenario that must fail against the mutant, at a step containing ``step``."""

    scenario: str
    step: str


@dataclass(frozen=True)
class Mutant:
    """One seeded bug.

    Args:
        name: identifier (``python tests/mutants/launch.py NAME ...``).
        bug: the bug, in the user's words.
        tags: the bug class: the scenarios ``make prove`` runs it against.
        kills: the scenarios that must kill it (pytest checks these).
        patch: applies the bug inside the process.
    """

    name: str
    bug: str
    tags: str
    kills: tuple[Kill, ...]
    patch: Callable[[], None]


# ----------------------------------------------------------------------------- patches


def _validation_skipped_on_reuse() -> None:
    from support.backend import pool
    original = pool.ConnectionPool.validate

    async def validate(self, conn):
        if conn.handoffs > 0:  # "it was fine a moment ago"
            return pool.ValidationResult(True)
        return await original(self, conn)
    pool.ConnectionPool.validate = validate


def _validation_without_timeout() -> None:
    from support.backend import pool

    async def validate(self, conn):
        if not conn.is_connected():
            return pool.ValidationResult(False, "not connected")
        await conn.ib.reqCurrentTimeAsync()  # no bound: waits forever on a silent gateway
        conn.last_validated_mono, conn.last_validation_ok = time.monotonic(), True
        self.record_outcome(True)
        return pool.ValidationResult(True)
    pool.ConnectionPool.validate = validate


def _validation_by_cached_value() -> None:
    from support.backend import pool

    async def validate(self, conn):
        ok = conn.is_connected() and bool(conn.ib.managedAccounts())  # never touches the wire
        conn.last_validated_mono, conn.last_validation_ok = time.monotonic(), ok
        self.record_outcome(ok, "" if ok else "not connected")
        return pool.ValidationResult(ok, "" if ok else "not connected")
    pool.ConnectionPool.validate = validate


def _unawaited_coroutine_in_cli() -> None:
    from support.backend import cli
    original = cli.ib_test

    async def acquire_ib_connection():
        return None

    def ib_test(api, symbol, verbose):
        acquire_ib_connection()  # the seed's bug: a coroutine called, never awaited
        return original(api, symbol, verbose)
    cli.ib_test = ib_test


def _no_326_fallback() -> None:
    from support.backend import pool
    original = pool.connect_ib

    async def connect_ib(*args, **kwargs):
        try:
            return await original(*args, **kwargs)
        except pool.ClientIdInUse as exc:
            raise ConnectionError(f"IB refused the client ID: {exc}") from None
    pool.connect_ib = connect_ib


def _same_id_retried_on_326() -> None:
    from support.backend import pool
    original = pool.ConnectionPool._next_client_id

    def _next_client_id(self, tried):
        return original(self, set())  # forgets which IDs IB just refused
    pool.ConnectionPool._next_client_id = _next_client_id


def _no_idle_gc() -> None:
    from support.backend import pool
    pool.ConnectionPool.collect_idle = lambda self: 0


def _gc_closes_in_use() -> None:
    from support.backend import pool

    def collect_idle(self):
        now = time.monotonic()
        expired = [c for c in self._connections.values() if now - c.last_used_mono > self.settings.max_idle_s]
        for conn in expired:
            self._discard(conn, "idle")
        return len(expired)
    pool.ConnectionPool.collect_idle = collect_idle


def _leak_on_release() -> None:
    from support.backend import pool

    def release(self, conn):
        conn.in_use = False
        self._connections.pop(conn.serial, None)  # no longer pooled, never closed: the socket leaks
        self.__dict__.setdefault("_returned", []).append(conn)  # kept "for later", never used again
        self._notify()
    pool.ConnectionPool.release = release


def _constant_score() -> None:
    from support.backend import resilience
    resilience.compute_score = lambda p1, p2, p3: 100.0


def _cli_success_without_asking() -> None:
    from support.backend import cli

    def ib_test(api, symbol, verbose):
        cli.out("IB connection test passed")
        return 0
    cli.ib_test = ib_test


def _no_reconnect_after_restart() -> None:
    from support.backend import pool
    original_open, original_lost = pool.ConnectionPool._open, pool.ConnectionPool._on_gateway_disconnect

    def on_disconnect(self, conn):
        self.gave_up = True
        original_lost(self, conn)

    async def _open(self):
        if getattr(self, "gave_up", False):
            raise pool.GatewayUnavailable("IB Gateway went away; restart the backend to reconnect")
        return await original_open(self)
    pool.ConnectionPool._on_gateway_disconnect = on_disconnect
    pool.ConnectionPool._open = _open


def _connection_handed_to_two_callers() -> None:
    from support.backend import pool

    def _pick_idle(self):
        candidates = [c for c in self._connections.values() if not c.closed]
        return min(candidates, key=lambda c: c.client_id) if candidates else None  # busy ones too
    pool.ConnectionPool._pick_idle = _pick_idle


def _blocking_call_in_endpoint() -> None:
    from support.backend import service
    original = service.Backend.discover

    async def discover(self, symbol, force_refresh=False):
        time.sleep(1.0)  # a synchronous IB call inside an async handler: the event loop stops
        return await original(self, symbol, force_refresh)
    service.Backend.discover = discover


MUTANTS: tuple[Mutant, ...] = (
    Mutant("validation_skipped_on_reuse", "validation skipped when a pooled connection is reused", "@phase1",
           (Kill("A reused connection is validated again", "validated with a server-time request"),),
           _validation_skipped_on_reuse),
    Mutant("validation_without_timeout", "validation without a timeout", "@phase1 or @silent",
           (Kill("A connection whose validation is never answered carries no request", "fails within the silent"),),
           _validation_without_timeout),
    Mutant("validation_by_cached_value", "reqCurrentTime replaced by a cached managedAccounts() check",
           "@phase1 or @silent",
           (Kill("Each request is preceded by a validation round-trip on its connection",
                 "validated with a server-time request"),),
           _validation_by_cached_value),
    Mutant("unawaited_coroutine_in_cli", "an un-awaited coroutine on a CLI path", "@cli",
           (Kill('"ib test" passes against a healthy gateway', "no warning, coroutine complaint"),),
           _unawaited_coroutine_in_cli),
    Mutant("no_326_fallback", "no fallback to the next client ID on error 326", "@client_ids",
           (Kill("Client IDs already taken by someone else are skipped in order -- @1.1 ", "the request succeeds"),),
           _no_326_fallback),
    Mutant("same_id_retried_on_326", "326 detected but the same client ID retried", "@client_ids",
           (Kill("Client IDs already taken by someone else are skipped in order -- @1.1 ", "the request succeeds"),),
           _same_id_retried_on_326),
    Mutant("no_idle_gc", "idle connections never collected", "@gc",
           (Kill("An idle connection is closed after the idle timeout", "sees every backend connection close"),),
           _no_idle_gc),
    Mutant("gc_closes_in_use", "garbage collection also closes connections in use", "@gc",
           (Kill("A connection in use is never collected, however long the request takes", "data load succeeds"),),
           _gc_closes_in_use),
    Mutant("leak_on_release", "connections leaked on release (the pool grows)", "@pool or @gc or @leaks",
           (Kill("Rapid create and destroy cycles", "never saw more backend connections at once"),),
           _leak_on_release),
    Mutant("constant_score", "a constant resilience score", "@score",
           (Kill("A silent gateway drives the score below 75", "falls below 75"),),
           _constant_score),
    Mutant("cli_success_without_asking", "CLI ib test prints success without asking IB", "@cli",
           (Kill('"ib test" fails when the gateway suffers silence after the handshake -- @1.1 ',
                 "fails with a clear message"),),
           _cli_success_without_asking),
    Mutant("no_reconnect_after_restart", "no reconnect after a gateway restart", "@recovery or @score",
           (Kill("The gateway restarts", "discover a symbol again within the recovery bound"),),
           _no_reconnect_after_restart),
    Mutant("connection_handed_to_two_callers", "one connection handed to two concurrent callers", "@phase1 or @pool",
           (Kill("Concurrent requests never share a connection", "no connection carried two requests"),),
           _connection_handed_to_two_callers),
    Mutant("blocking_call_in_endpoint", "an endpoint that blocks the event loop (sync IB call in an async handler)",
           "@api",
           (Kill("Concurrent health, status, discovery and data requests", "slowest 5 percent"),),
           _blocking_call_in_endpoint),
)

BY_NAME = {m.name: m for m in MUTANTS}
