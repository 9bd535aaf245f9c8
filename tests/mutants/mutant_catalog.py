"""Seeded bugs: each mutant reintroduces one bug the user fears into the reference backend.

A mutant is a small patch applied at start-up by ``tests/mutants/launch.py`` (in the
backend server process and in every CLI process), never a switch in ``support/``.
Each names the scenario that must kill it and the step that must be the one to fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


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
    from ibtargets.refbackend import pool
    original = pool.ConnectionPool.validate

    async def validate(self, conn):
        if conn.handoffs > 0:  # "it was fine a moment ago"
            return pool.ValidationResult(True)
        return await original(self, conn)
    pool.ConnectionPool.validate = validate


def _validation_without_timeout() -> None:
    from ibtargets.refbackend import pool

    async def validate(self, conn):
        if not conn.is_connected():
            return pool.ValidationResult(False, "not connected")
        await conn.ib.reqCurrentTimeAsync()  # no bound: waits forever on a silent gateway
        conn.last_validated_mono, conn.last_validation_ok = time.monotonic(), True
        self.record_outcome(True)
        return pool.ValidationResult(True)
    pool.ConnectionPool.validate = validate


def _validation_by_cached_value() -> None:
    from ibtargets.refbackend import pool

    async def validate(self, conn):
        ok = conn.is_connected() and bool(conn.ib.managedAccounts())  # never touches the wire
        conn.last_validated_mono, conn.last_validation_ok = time.monotonic(), ok
        self.record_outcome(ok, "" if ok else "not connected")
        return pool.ValidationResult(ok, "" if ok else "not connected")
    pool.ConnectionPool.validate = validate


def _unawaited_coroutine_in_cli() -> None:
    from ibtargets.refbackend import cli
    original = cli._api

    async def acquire_ib_connection():
        return None

    def _api(*args, **kwargs):
        acquire_ib_connection()  # the seed's bug: a coroutine called on every CLI path, never awaited
        return original(*args, **kwargs)
    cli._api = _api


def _no_326_fallback() -> None:
    from ibtargets.refbackend import pool
    original = pool.connect_ib

    async def connect_ib(*args, **kwargs):
        try:
            return await original(*args, **kwargs)
        except pool.ClientIdInUse as exc:
            raise ConnectionError(f"IB refused the client ID: {exc}") from None
    pool.connect_ib = connect_ib


def _same_id_retried_on_326() -> None:
    from ibtargets.refbackend import pool
    original = pool.ConnectionPool._next_client_id

    def _next_client_id(self, tried):
        return original(self, set())  # forgets which IDs IB just refused
    pool.ConnectionPool._next_client_id = _next_client_id


def _no_idle_gc() -> None:
    from ibtargets.refbackend import pool
    pool.ConnectionPool.collect_idle = lambda self: 0


def _gc_closes_in_use() -> None:
    from ibtargets.refbackend import pool

    def collect_idle(self):
        now = time.monotonic()
        expired = [c for c in self._connections.values() if now - c.last_used_mono > self.settings.max_idle_s]
        for conn in expired:
            self._discard(conn, "idle")
        return len(expired)
    pool.ConnectionPool.collect_idle = collect_idle


def _leak_on_release() -> None:
    from ibtargets.refbackend import pool

    def release(self, conn):
        conn.in_use = False
        self._connections.pop(conn.serial, None)  # no longer pooled, never closed: the socket leaks
        self.__dict__.setdefault("_returned", []).append(conn)  # kept "for later", never used again
        self._notify()
    pool.ConnectionPool.release = release


def _constant_score() -> None:
    from ibtargets.refbackend import resilience
    resilience.compute_score = lambda p1, p2, p3: 100.0


def _cli_success_without_asking() -> None:
    from ibtargets.refbackend import cli

    def ib_test(api, symbol, verbose):
        cli.out("IB connection test passed")
        return 0
    cli.ib_test = ib_test


def _no_reconnect_after_restart() -> None:
    from ibtargets.refbackend import pool
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
    from ibtargets.refbackend import pool

    def _pick_idle(self):
        candidates = [c for c in self._connections.values() if not c.closed]
        return min(candidates, key=lambda c: c.client_id) if candidates else None  # busy ones too
    pool.ConnectionPool._pick_idle = _pick_idle


def _blocking_call_in_endpoint() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.discover

    async def discover(self, symbol, force_refresh=False):
        time.sleep(1.0)  # a synchronous IB call inside an async handler: the event loop stops
        return await original(self, symbol, force_refresh)
    service.Backend.discover = discover


# ----------------------------------------------------------------------------- more bugs, one per remaining claim


def _validation_timeout_too_short() -> None:
    import dataclasses

    from ibtargets.refbackend import pool
    original = pool.ConnectionPool.__init__

    def __init__(self, settings):
        original(self, dataclasses.replace(settings, validation_timeout_s=0.5))  # "IB answers in ms anyway"
    pool.ConnectionPool.__init__ = __init__


def _naive_local_timestamp() -> None:
    import datetime

    from ibtargets.refbackend import resilience
    resilience.wall_iso = lambda: datetime.datetime.now().isoformat()  # local, no zone


def _unknown_symbol_is_500() -> None:
    from ibtargets.refbackend import service
    original = service.Backend._lookup

    async def _lookup(self, symbol):
        record = await original(self, symbol)
        if record is None:
            raise RuntimeError(f"no contract for {symbol}")  # unhandled: HTTP 500
        return record
    service.Backend._lookup = _lookup


def _ctrl_c_leaves_operation_running() -> None:
    from ibtargets.refbackend import cli

    def _cancel(api, op_id, why, exit_code=130):
        cli.err(f"{why.capitalize()}.")  # the operation goes on in the backend
        return exit_code
    cli._cancel = _cancel


def _no_pacing_backoff() -> None:
    import dataclasses

    from ibtargets.refbackend import service
    original = service.Backend.__init__

    def __init__(self, settings):
        original(self, dataclasses.replace(settings, pacing_backoff_s=0.0))  # retry at once
    service.Backend.__init__ = __init__


def _requests_counted_twice() -> None:
    from ibtargets.refbackend import service
    original = service.Backend._fetch_segment

    async def _fetch_segment(self, contract, timeframe, start, end, result, op):
        bars = await original(self, contract, timeframe, start, end, result, op)
        result["ib_requests_made"] += 1  # counted again by the caller
        return bars
    service.Backend._fetch_segment = _fetch_segment


def _open_close_swapped_in_cache() -> None:
    import dataclasses

    from ibtargets.refbackend import service
    original = service.Backend._merge

    async def _merge(self, symbol, timeframe, bars):
        await original(self, symbol, timeframe, [dataclasses.replace(b, open=b.close, close=b.open) for b in bars])
    service.Backend._merge = _merge


def _cli_traceback_when_api_down() -> None:
    import requests

    from ibtargets.refbackend import client
    original = client.ApiClient.call

    def call(self, method, path, json=None, params=None, timeout_s=None):
        requests.get(self.base_url + "/api/v1/symbols", timeout=5)  # unguarded: a traceback when the API is down
        return original(self, method, path, json, params, timeout_s)
    client.ApiClient.call = call


def _health_without_probe() -> None:
    from ibtargets.refbackend import service

    async def health(self):
        return True, {"healthy": True, "connection_ok": True, "data_fetching_ok": True,
                      "last_successful_request": None, "error_message": None}  # "it was fine at start-up"
    service.Backend.health = health


def _connect_without_timeout() -> None:
    from ibtargets.refbackend import pool
    original = pool.connect_ib

    async def connect_ib(host, port, client_id, timeout_s, readonly=True):
        return await original(host, port, client_id, 3600.0, readonly)  # waits as long as the gateway likes
    pool.connect_ib = connect_ib


def _client_ids_never_reused() -> None:
    from ibtargets.refbackend import pool
    original = pool.ConnectionPool._next_client_id

    def _next_client_id(self, tried):
        used = self.__dict__.setdefault("_ever_used", set())
        choice = original(self, set(tried) | used)  # a freed ID is never taken again
        if choice is not None:
            used.add(choice)
        return choice
    pool.ConnectionPool._next_client_id = _next_client_id


def _answers_kept_forever() -> None:
    from ibtargets.refbackend import api, server
    original = api.create_app
    kept = []

    def create_app(*args, **kwargs):
        app = original(*args, **kwargs)

        @app.middleware("http")
        async def keep(request, call_next):
            kept.append(b"x" * (256 * 1024))  # "request log for debugging", never trimmed
            return await call_next(request)
        return app
    api.create_app = server.create_app = create_app


def _cleanup_without_closing() -> None:
    from ibtargets.refbackend import pool
    pool.ConnectionPool.cleanup = lambda self, force=False: len(self._connections)  # counted, not closed


def _connectivity_flag_never_cleared() -> None:
    from ibtargets.refbackend import pool
    original_adopt, original_acquire = pool.ConnectionPool._adopt, pool.ConnectionPool.acquire

    def _adopt(self, ib, client_id, host, port, generation):
        conn = original_adopt(self, ib, client_id, host, port, generation)

        def on_notice(req_id, code, message, contract):
            if code in (1100, 1101, 2103, 2105):
                self.ib_down = True  # set on "lost" and farm notices; 1102 "restored" is never handled
        ib.errorEvent += on_notice
        return conn

    async def acquire(self):
        if getattr(self, "ib_down", False):
            raise pool.GatewayUnavailable("IB connectivity lost")
        return await original_acquire(self)
    pool.ConnectionPool._adopt, pool.ConnectionPool.acquire = _adopt, acquire


def _silence_remembered() -> None:
    from ibtargets.refbackend import pool
    original = pool.ConnectionPool.acquire

    async def acquire(self):
        if time.monotonic() < getattr(self, "tripped_until", 0.0):
            raise pool.GatewaySilent("IB Gateway was silent recently; not trying again yet")
        try:
            return await original(self)
        except pool.GatewaySilent:
            self.tripped_until = time.monotonic() + 60.0  # a breaker that stays open for a minute
            raise
    pool.ConnectionPool.acquire = acquire


def _unhealthy_answered_200() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.health

    async def health(self):
        _, data = await original(self)
        return True, data  # the body says unhealthy, the status says OK
    service.Backend.health = health


def _preferred_id_skipped() -> None:
    from ibtargets.refbackend import pool
    original = pool.ConnectionPool.__init__

    def __init__(self, settings):
        original(self, settings)
        self.client_id_min += 1  # off by one: the preferred ID is never tried
    pool.ConnectionPool.__init__ = __init__


def _status_shape_drift() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.status

    def status(self):
        data = original(self)
        data["metrics"] = data.pop("data_metrics")  # renamed field: clients of the contract break
        return data
    service.Backend.status = status


def _idle_default_not_ktrdr() -> None:
    import dataclasses
    import os

    from ibtargets.refbackend import settings as backend_settings
    original = backend_settings.Settings.from_env.__func__

    def from_env(cls, environ=None):
        loaded = original(cls, environ)
        env = os.environ if environ is None else environ
        return loaded if env.get("REFBACKEND_MAX_IDLE_S") else dataclasses.replace(loaded, max_idle_s=600.0)
    backend_settings.Settings.from_env = classmethod(from_env)


def _cli_status_constant_score() -> None:
    import json

    from ibtargets.refbackend import cli
    original = cli.ib_status

    def ib_status(api, output_format, verbose):
        if output_format != "json":
            return original(api, output_format, verbose)
        status = api.call("GET", "/ib/status")
        cli.out(json.dumps({"status": status.data, "resilience": {"overall_resilience_score": 100.0}}, indent=2))
        return 0  # the score "everyone knows", never asked for
    cli.ib_status = ib_status


# ----------------------------------------------------------------------------- the defects KTRDR showed


def _status_never_connected() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.status

    def status(self):
        data = original(self)
        data["connection"].update(connected=False, client_id=None)  # a field nobody ever sets
        return data
    service.Backend.status = status


def _config_constants() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.config

    def config(self):
        data = original(self)
        data.update(host="127.0.0.1", port=7497, client_id_range={"min": 11, "max": 999})  # TWS's defaults
        return data
    service.Backend.config = config


def _cli_cleanup_constant() -> None:
    from ibtargets.refbackend import cli

    def ib_cleanup(api, force, verbose):
        cli.out("Connections closed: 2")  # a placeholder that never calls the API
        return 0
    cli.ib_cleanup = ib_cleanup


def _loads_never_reach_ib() -> None:
    import asyncio

    from ibtargets.refbackend import service

    async def _load_into(self, request, op, result):
        cached = await asyncio.to_thread(self.store.read, request.symbol, request.timeframe)
        result.update(cached_before=len(cached or []), fetched_bars=len(cached or []))
        result["status"] = "success"  # the coroutine that would ask IB is never awaited
    service.Backend._load_into = _load_into


def _connect_retried_for_30s() -> None:
    import asyncio

    from ibtargets.refbackend import pool
    original = pool.ConnectionPool.acquire

    async def acquire(self):
        deadline = asyncio.get_running_loop().time() + 30.0
        while True:
            try:
                return await original(self)
            except pool.GatewayUnavailable:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(1.0)  # "the gateway will be back in a moment"
    pool.ConnectionPool.acquire = acquire


def _repeated_lookup_paced() -> None:
    import asyncio

    from ibtargets.refbackend import service
    original = service.Backend._lookup
    last_mono: dict[str, float] = {}

    async def _lookup(self, symbol):
        wait_s = last_mono.get(symbol, -1e9) + 15.0 - time.monotonic()
        if wait_s > 0:
            await asyncio.sleep(wait_s)  # IB's identical-request rule applied to contract details
        last_mono[symbol] = time.monotonic()
        return await original(self, symbol)
    service.Backend._lookup = _lookup


def _validated_connection_discarded() -> None:
    from ibtargets.refbackend import pool
    original = pool.ConnectionPool.validate

    async def validate(self, conn):
        result = await original(self, conn)
        if result.ok and conn.handoffs > 0:  # a prompt answer read as a timeout: the healthy connection goes
            return pool.ValidationResult(False, "validation timed out after 3.0 s")
        return result
    pool.ConnectionPool.validate = validate


def _cli_data_show_empty() -> None:
    from ibtargets.refbackend import cli

    def data_show(api, symbol, timeframe, rows):
        cli.out(f"{symbol} {timeframe}: last {rows} bars")  # a header, and no bars
        return 0
    cli.data_show = data_show


def _phase3_lists_nothing() -> None:
    from ibtargets.refbackend import resilience
    original = resilience.phase_3

    def phase_3(pool):
        report = original(pool)
        report["client_ids_in_use"] = []  # read from a registry nobody fills
        return report
    resilience.phase_3 = phase_3


def _config_range_elsewhere() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.config

    def config(self):
        data = original(self)
        data["client_id_range"] = {"min": 1000, "max": 9999}  # the range of another component
        return data
    service.Backend.config = config


def _health_always_503() -> None:
    from ibtargets.refbackend import service

    async def health(self):
        return False, {"healthy": False, "connection_ok": True, "data_fetching_ok": True,
                       "last_successful_request": None, "error_message": "no available connections"}
    service.Backend.health = health


def _shutdown_coroutine_unawaited() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.stop

    async def get_connection_pool():  # KTRDR's name for it
        return None

    async def stop(self):
        get_connection_pool()  # called, never awaited: Python prints the RuntimeWarning when it is collected
        return await original(self)
    service.Backend.stop = stop


def _load_coroutine_unawaited() -> None:
    from ibtargets.refbackend import service
    original = service.Backend._load

    async def _load(self, request, op):
        async def test_connection():  # KTRDR's DataManager._ensure_ib_connection.<locals>.test_connection
            return True
        test_connection()  # the answer stays right; only the server's stderr shows the bug
        return await original(self, request, op)
    service.Backend._load = _load


def _sigterm_ignored() -> None:
    from ibtargets.refbackend import server

    def _signalled(self, sig):
        server.log.info("received %s: ignored while requests may still come", sig)
    server._Server._signalled = _signalled


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
           (Kill('"ib test" passes against a healthy gateway, and really asks IB', "no warning, coroutine complaint"),),
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
           (Kill("A silent gateway drives the score below 75", "falls below healthy"),),
           _constant_score),
    Mutant("cli_success_without_asking", "CLI ib test prints success without asking IB", "@cli",
           (Kill('"ib test" fails when the gateway suffers silence after the handshake -- @1.1 ',
                 "fails with a clear message"),
            Kill('"ib test" passes against a healthy gateway, and really asks IB', "contract-details request")),
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
    Mutant("validation_timeout_too_short", "a validation timeout so short that a slow gateway is declared dead",
           "@silent",
           (Kill("A slow but alive gateway is not declared dead", "the request succeeds"),),
           _validation_timeout_too_short),
    Mutant("naive_local_timestamp", "the resilience report's timestamp in local time without a zone", "@score",
           (Kill("The report is current", "current UTC time"),), _naive_local_timestamp),
    Mutant("unknown_symbol_is_500", "an unknown symbol answered with HTTP 500", "@api",
           (Kill("An unknown symbol is reported as not found", "symbol was not found"),), _unknown_symbol_is_500),
    Mutant("ctrl_c_leaves_operation_running", "Ctrl-C stops the CLI but leaves the load running", "@cli",
           (Kill("Ctrl-C during a data load cancels the operation cleanly", "ends up cancelled"),),
           _ctrl_c_leaves_operation_running),
    Mutant("no_pacing_backoff", "IB pacing error 162 retried at once, without waiting", "@recovery",
           (Kill("A pacing violation is waited out, not crashed on", "data loads succeed"),), _no_pacing_backoff),
    Mutant("requests_counted_twice", "ib_requests_made that does not match the requests IB received", "@pipeline",
           (Kill("The load reports the IB requests it really made", "as many IB requests as the gateway"),),
           _requests_counted_twice),
    Mutant("open_close_swapped_in_cache", "cached bars that differ from what IB served (open and close swapped)",
           "@pipeline",
           (Kill("Discover, load and read back", "exactly the bars IB serves"),), _open_close_swapped_in_cache),
    Mutant("cli_traceback_when_api_down", "a CLI that dies with a traceback when the API is down", "@cli",
           (Kill("The API is not running", "no warning, coroutine complaint or traceback"),),
           _cli_traceback_when_api_down),
    Mutant("health_without_probe", "an IB health check that reports healthy without asking IB", "@silent or @recovery",
           (Kill("Only the server-time request goes unanswered", "reports IB unhealthy"),
            Kill("A healthy IB report comes with a server-time request the gateway answered",
                 "server-time request while the report was made")), _health_without_probe),
    Mutant("connect_without_timeout", "a connect that waits for the handshake without a bound", "@silent",
           (Kill("The handshake is never answered", "fails within the silent-detection bound"),),
           _connect_without_timeout),
    Mutant("client_ids_never_reused", "freed client IDs never reused (the IDs run out)", "@client_ids",
           (Kill("The preferred ID is used again once it is free", "last accepted the backend"),),
           _client_ids_never_reused),
    Mutant("answers_kept_forever", "every answer kept in memory (unbounded growth)", "@leaks",
           (Kill("Resources stay flat over 150 requests", "memory grew by at most"),), _answers_kept_forever),
    Mutant("cleanup_without_closing", "a cleanup that reports connections closed without closing them", "@pool",
           (Kill("Cleanup closes every connection the gateway saw", "cleanup reports as many closed connections"),),
           _cleanup_without_closing),
    Mutant("connectivity_flag_never_cleared", "IB 'connectivity lost' remembered after IB says it is restored",
           "@recovery",
           (Kill("IB notice 2103 disturbs the service for at most the recovery bound -- @1.1 ", "discover a symbol again"),),
           _connectivity_flag_never_cleared),
    Mutant("silence_remembered", "a silent gateway remembered for a minute after it talks again", "@silent or @score",
           (Kill("Requests succeed again after the silence ends", "discover a symbol again"),), _silence_remembered),
    Mutant("unhealthy_answered_200", "an unhealthy IB reported with HTTP 200", "@silent",
           (Kill("The backend reports IB unhealthy when the gateway is silent", "reports IB unhealthy"),),
           _unhealthy_answered_200),
    Mutant("preferred_id_skipped", "the preferred client ID never tried (off by one)", "@client_ids",
           (Kill("A fresh pool connects with the preferred client ID", "accepted the backend with the preferred"),
            Kill("A healthy gateway scores at least 75", "reports working only if the backend holds the preferred")),
           _preferred_id_skipped),
    Mutant("status_shape_drift", "an /ib/status field renamed (the contract broken)", "@api",
           (Kill("the IB status answers with the contract's shape -- @1.2 ", "contract's shape"),), _status_shape_drift),
    Mutant("idle_default_not_ktrdr", "an idle timeout default other than KTRDR's 300 s", "@gc",
           (Kill("A backend started without tuning reports the default timings", "idle timeout of 300"),),
           _idle_default_not_ktrdr),
    Mutant("cli_status_constant_score", "CLI ib status printing a constant score instead of the live one", "@cli",
           (Kill('"ib status" in JSON shows the live score, not a constant -- @1.2 ', "shows the resilience score the API reports"),),
           _cli_status_constant_score),
    Mutant("status_never_connected", "/ib/status always says connected: false", "@self_report",
           (Kill("The IB status names a connection the gateway has open", "says connected"),), _status_never_connected),
    Mutant("config_constants", "/ib/config reports TWS's default port and a fixed client-ID range", "@self_report",
           (Kill("The IB configuration reports the address and the client IDs in use", "names the address"),),
           _config_constants),
    Mutant("cli_cleanup_constant", "CLI ib cleanup prints a constant count without calling the API", "@cli",
           (Kill('"ib cleanup" reports the connections the gateway saw close', "reported as many closed connections"),),
           _cli_cleanup_constant),
    Mutant("loads_never_reach_ib", "data loads answer success with the cached bars, never asking IB", "@pipeline",
           (Kill("Discover, load and read back", "came from IB during the request"),), _loads_never_reach_ib),
    Mutant("connect_retried_for_30s", "a refused connection retried for 30 s inside the request", "@api",
           (Kill("A synchronous data load while the gateway refuses connections fails fast and blocks no one",
                 "fails with a clear message within the API response bound"),), _connect_retried_for_30s),
    Mutant("repeated_lookup_paced", "a repeated lookup of one symbol paced by 15 s inside the request", "@api",
           (Kill("The same symbol looked up again and again stays within the bound",
                 "every answer came within the API response bound"),), _repeated_lookup_paced),
    Mutant("validated_connection_discarded", "a connection whose validation was answered discarded as timed out",
           "@phase1", (Kill("A reused connection is validated again", "no connection that passed its validation"),),
           _validated_connection_discarded),
    Mutant("cli_data_show_empty", "CLI data show prints a header and no bars", "@cli",
           (Kill('"data show" prints the cached bars', "printed the last 5 cached"),), _cli_data_show_empty),
    Mutant("phase3_lists_nothing", "phase 3 lists no client IDs in use while the gateway has some open", "@self_report",
           (Kill("The resilience report lists the client IDs the gateway has open", "the client IDs it lists in use"),),
           _phase3_lists_nothing),
    Mutant("config_range_elsewhere", "/ib/config reports a client-ID range the backend does not use", "@self_report",
           (Kill("The IB configuration reports the address and the client IDs in use", "client-ID range holds"),),
           _config_range_elsewhere),
    Mutant("health_always_503", "IB health always unhealthy (503), whatever the gateway does", "@silent",
           (Kill("The backend reports IB healthy when the gateway answers", "the answer says IB is healthy"),),
           _health_always_503),
    Mutant("shutdown_coroutine_unawaited", "a coroutine never awaited at server shutdown (KTRDR's get_connection_pool)",
           "@backend_output", (Kill("Stopping the backend prints no complaint", "while it stopped"),),
           _shutdown_coroutine_unawaited),
    Mutant("load_coroutine_unawaited", "a coroutine never awaited on the server during every data load",
           "@backend_output", (Kill("A data load prints no complaint", "printed no warning"),),
           _load_coroutine_unawaited),
    Mutant("sigterm_ignored", "SIGTERM ignored: the backend keeps its IB connections until it is killed",
           "@backend_output", (Kill("Stopping the backend closes every IB connection it holds within the shutdown bound",
                                    "close within the shutdown bound"),), _sigterm_ignored),
)

BY_NAME = {m.name: m for m in MUTANTS}


# ----------------------------------------------------------------------------- bugs only overlapping faults show
#
# Each of these passes every standard scenario (one planned fault at a time) and is meant to: it needs two
# things to happen at once. ``make nemesis-prove`` shows the nemesis finding each one and shrinking its
# schedule (tests/nemesis/prove_mutants.py); they are kept out of MUTANTS, whose kill test runs in make test.


def _validation_timer_outlives_lost_connection() -> None:
    import asyncio

    from ibtargets.refbackend import pool

    def forget_client_id(self, client_id):
        for serial, conn in list(self._connections.items()):
            if conn.client_id == client_id:
                self._connections.pop(serial, None)  # "its socket is dead anyway": forgotten, not closed
                # Kept for a post-mortem log that never runs. Without a reference, ib_insync's IB.__del__ would
                # close the forgotten connection at the next cyclic garbage collection, seconds later, and the
                # leak would come and go with the collector (a 2-fault schedule passed 3 replays of 3 without it).
                self.__dict__.setdefault("_forgotten", []).append(conn)
        self._notify()

    async def validate(self, conn):
        started = time.monotonic()
        if not conn.is_connected():
            result = pool.ValidationResult(False, "not connected")
        else:
            waiter = asyncio.ensure_future(conn.ib.reqCurrentTimeAsync())
            fired = []

            def expire():  # a hand-rolled timeout: forget the silent connection, stop waiting for it
                fired.append(True)
                forget_client_id(self, conn.client_id)
                waiter.cancel()
            timer = asyncio.get_running_loop().call_later(self.settings.validation_timeout_s, expire)
            try:
                await waiter
                timer.cancel()
                result = pool.ValidationResult(True)
            except asyncio.CancelledError:
                if not fired:
                    timer.cancel()
                    raise
                result = pool.ValidationResult(False, f"reqCurrentTime unanswered for "
                                                      f"{self.settings.validation_timeout_s:.1f} s", timed_out=True)
            except (ConnectionError, OSError) as exc:  # the bug: the timer is left running; when it fires, the
                result = pool.ValidationResult(False, f"connection lost: {exc}")  # ID may be a new connection's
        now = time.monotonic()
        result = pool.ValidationResult(result.ok, result.reason, result.timed_out, round((now - started) * 1000, 3))
        conn.last_validated_mono, conn.last_validation_ok = now, result.ok
        if result.ok:
            self.metrics.validations_ok += 1
            self.record_outcome(True)
        else:
            self.metrics.validations_failed += 1
            self.record_outcome(False, f"validation of client ID {conn.client_id}: {result.reason}")
        return result
    pool.ConnectionPool.validate = validate


def _cleanup_orphans_connect_past_326() -> None:
    import asyncio
    import contextvars

    from ibtargets.refbackend import pool
    refused = contextvars.ContextVar("refused_during_connect", default=False)
    original_connect, original_cleanup = pool.connect_ib, pool.ConnectionPool.cleanup

    async def connect_ib(*args, **kwargs):
        try:
            return await original_connect(*args, **kwargs)
        except pool.ClientIdInUse:
            refused.set(True)
            await asyncio.sleep(0.15)  # give the gateway a moment before the next ID
            raise

    async def _open_reserved(self):
        refused.set(False)
        registry = self._connections  # where the pool was when this connect began
        try:
            conn = await self._open()
        except BaseException:
            self._opening -= 1
            self._notify()
            raise
        self._opening -= 1
        # The bug: a connect that went past a 326 joins the registry it started with, which a cleanup meanwhile
        # replaced: the connection is open, holds its client ID, and no pool knows it.
        (registry if refused.get() else self._connections)[conn.serial] = conn
        return conn

    def cleanup(self, force=False):
        closed = original_cleanup(self, force)
        # A fresh registry after every cleanup; the old one is kept for a shutdown audit that never reads it.
        # Without that reference, ib_insync's IB.__del__ would close an orphan at the next cyclic garbage
        # collection, seconds later, and the leak would come and go with the collector.
        self.__dict__.setdefault("_old_registries", []).append(self._connections)
        self._connections = dict(self._connections)
        return closed
    pool.connect_ib = connect_ib
    pool.ConnectionPool._open_reserved = _open_reserved
    pool.ConnectionPool.cleanup = cleanup


def _reconnect_loop_leaks_timed_out_socket() -> None:
    import asyncio

    from ibtargets.common import ibclient
    from ibtargets.refbackend import pool
    original_lost, original_close = pool.ConnectionPool._on_gateway_disconnect, pool.ConnectionPool.close

    def _on_gateway_disconnect(self, conn):
        original_lost(self, conn)
        task = self.__dict__.get("_reconnect_task")
        if not self._closed and (task is None or task.done()):
            self._reconnect_task = asyncio.ensure_future(reconnect(self))

    async def reconnect(self):
        """After the gateway dropped the pool, warm it up again: one standby connection, retried until IB answers."""
        deadline = time.monotonic() + 60.0
        while not self._closed and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            if self._closed or len(self._connections) + self._opening >= self.settings.pool_size:
                return  # the pool is full: no standby needed
            client_id = self._next_client_id(set())
            if client_id is None:
                continue
            lower = self._unavailable_ids()
            ib = ibclient.IB()
            # The attempt holds a slot like any connect of the pool, so the pool never goes past its limit while
            # it runs (the standard level's "never more backend connections than the pool allows" holds).
            self._opening += 1
            try:
                attempt = asyncio.ensure_future(ib.connectAsync(self.host, self.port, clientId=client_id, timeout=0,
                                                                readonly=self.settings.readonly))
                done, _ = await asyncio.wait({attempt}, timeout=self.settings.connect_timeout_s)
            finally:
                self._opening -= 1
                self._notify()
            if not done:
                continue  # the bug: the attempt is abandoned, not cancelled; its socket stays open for good
            if attempt.exception() is not None:
                ib.disconnect()
                continue
            if self._closed:
                ib.disconnect()
                return
            conn = self._adopt(ib, client_id, self.host, self.port, self.generation)
            conn.in_use, conn.preference_kept = False, all(i in lower for i in range(self.client_id_min, client_id))
            ib.RaiseRequestErrors = True
            self._connections[conn.serial] = conn
            self._notify()
            return

    async def close(self):
        task = self.__dict__.get("_reconnect_task")
        if task is not None and not task.done():
            task.cancel()
        return await original_close(self)
    pool.ConnectionPool._on_gateway_disconnect = _on_gateway_disconnect
    pool.ConnectionPool.close = close


def _discovery_paced_after_health() -> None:
    from ibtargets.refbackend import service
    health, discover = service.Backend.health, service.Backend.discover

    async def paced_health(self):
        self.discovery_paced_until = time.monotonic() + 12.0  # "IB was just asked; the next lookup waits its turn"
        return await health(self)

    async def paced_discover(self, symbol, force_refresh=False):
        await asyncio.sleep(max(0.0, getattr(self, "discovery_paced_until", 0.0) - time.monotonic()))
        return await discover(self, symbol, force_refresh)
    service.Backend.health, service.Backend.discover = paced_health, paced_discover


#: A state no history shows, for the restart policy's comparison (tests/mutants/test_restart_policy.py): not in
#: MUTANTS (no scenario's claim is about it), startable by launch.py.
RESTART_POLICY_MUTANTS: tuple[Mutant, ...] = (
    Mutant("discovery_paced_after_health",
           "after an IB health check, the next symbol lookup waits 12 s (a pacing a backend imposes on itself, kept in "
           "memory: KTRDR be94b8f4 leaves such a wait after a data load)", "@self_report or @silent", (),
           _discovery_paced_after_health),
)
BY_NAME.update({m.name: m for m in RESTART_POLICY_MUTANTS})


#: Bugs that only overlapping faults show: they survive the standard level; the nemesis must find them.
NEMESIS_MUTANTS: tuple[Mutant, ...] = (
    Mutant("validation_timer_outlives_lost_connection",
           "a validation timeout not cancelled when the connection is lost during the validation (a restart or a "
           "reset while the gateway is slow): when it fires it forgets the new connection that took the same "
           "client ID, without closing it", "@phase1 or @silent or @recovery or @pool", (),
           _validation_timer_outlives_lost_connection),
    Mutant("cleanup_orphans_connect_past_326",
           "a connection that went past error 326 while a cleanup ran joins the pool's old registry: open, its "
           "client ID held, known to nobody", "@client_ids or @pool", (), _cleanup_orphans_connect_past_326),
    Mutant("reconnect_loop_leaks_timed_out_socket",
           "a reconnect loop, started when the gateway drops the pool, abandons an attempt that times out (the "
           "gateway silent meanwhile) without closing its socket", "@recovery or @silent or @pool", (),
           _reconnect_loop_leaks_timed_out_socket),
)
BY_NAME.update({m.name: m for m in NEMESIS_MUTANTS})


# ----------------------------------------------------------------------------- bugs only the run-wide invariants see
#
# Each of these passes every scenario it runs under: it shows between scenarios, in a background task, or in a
# request no scenario judges. ``tests/mutants/test_run_wide_mutants.py`` shows each killed by its run-wide
# invariant (support/checks/run_wide.py) and by no other invariant.


def _first_start() -> bool:
    """Whether this server process is the run's first start of the backend (the suite gives every start its own
    data folder, numbered from 1)."""
    import os
    import sys

    return "serve" in sys.argv and os.environ.get("REFBACKEND_DATA_DIR", "").endswith("backend-data-1")


def _warning_at_first_start() -> None:
    from ibtargets.refbackend import service
    original = service.Backend.start

    async def warm_caches():
        return None

    async def start(self):
        if _first_start():
            warm_caches()  # called, never awaited, while the backend starts: before any scenario begins
        return await original(self)
    service.Backend.start = start


def _health_check_discards_validated() -> None:
    import asyncio

    from ibtargets.refbackend import pool
    original = pool.ConnectionPool.release

    async def check(self, conn):
        await asyncio.sleep(0.05)
        if conn.closed or conn.in_use:
            return
        conn.in_use = True
        result = await self.validate(conn)
        conn.in_use = False
        if result.ok:
            self._discard(conn, "validation_failed")  # KTRDR's: a prompt answer taken for a failure
        self._notify()

    def release(self, conn):
        original(self, conn)
        if not conn.closed:  # a health check of every connection given back, a moment later
            asyncio.ensure_future(check(self, conn))
    pool.ConnectionPool.release = release


def _health_check_on_busy_connection() -> None:
    import asyncio

    from ibtargets.refbackend import pool
    original_check, original_acquire, original_release = (pool.ConnectionPool.run_health_check,
                                                          pool.ConnectionPool.acquire, pool.ConnectionPool.release)

    async def check(conn, timeout_s):
        try:
            await asyncio.wait_for(conn.ib.reqCurrentTimeAsync(), timeout_s)
        except Exception:  # the check's own outcome is ignored; only its timing is the bug
            pass

    async def acquire(self):
        conn = await original_acquire(self)
        conn.__dict__["_handed_out"] = time.monotonic()   # validated and handed to its caller
        return conn

    def release(self, conn):
        conn.__dict__["_handed_out"] = None
        return original_release(self, conn)

    def run_health_check(self):
        original_check(self)
        now = time.monotonic()
        for conn in list(self._connections.values()):
            handed = conn.__dict__.get("_handed_out")
            # It checks a connection a caller has held for a while, forgetting that the caller still holds it.
            if handed is not None and now - handed > 0.2 and conn.is_connected():
                asyncio.ensure_future(check(conn, self.settings.validation_timeout_s))
    pool.ConnectionPool.run_health_check = run_health_check
    pool.ConnectionPool.acquire = acquire
    pool.ConnectionPool.release = release


def _loop_frozen_after_first_start() -> None:
    import asyncio

    from ibtargets.refbackend import api
    original = api.create_app

    def create_app(settings, backend=None):
        app = original(settings, backend)
        if _first_start():
            seen = {"health": 0}

            @app.middleware("http")
            async def rebuild_index_once(request, call_next):
                if request.url.path == "/api/v1/health":
                    seen["health"] += 1
                    if seen["health"] == 2:  # once the backend is up and first asked how it is
                        asyncio.get_running_loop().call_soon(time.sleep, 6.0)  # a synchronous rebuild: the loop stops
                return await call_next(request)
        return app
    api.create_app = create_app


@dataclass(frozen=True)
class InvariantKill:
    """A seeded bug no scenario sees: the run-wide invariant that must kill it (and the only one)."""

    mutant: Mutant
    invariant: str
    scenarios: tuple[str, ...]    # the scenarios the proof runs: every one passes against the bug
    also: tuple[str, ...] = ()    # other invariants that may see the same bug


#: Bugs only the run-wide invariants see, each with the invariant that must kill it.
RUN_WIDE_MUTANTS: tuple[InvariantKill, ...] = (
    InvariantKill(Mutant("warning_at_first_start", "an un-awaited coroutine printed when the backend first starts, "
                         "before any scenario", "@basic", (), _warning_at_first_start), "output",
                  ("The backend reports IB healthy when the gateway answers",)),
    InvariantKill(Mutant("health_check_discards_validated", "a health check of every connection given back that "
                         "discards it although its validation was answered at once", "@basic", (), _health_check_discards_validated),
                  "validated_kept", ("The backend reports IB healthy when the gateway answers",
                                     "The IB configuration reports the address and the client IDs in use")),
    InvariantKill(Mutant("health_check_on_busy_connection", "a health check that validates connections a caller "
                         "holds", "@basic", (), _health_check_on_busy_connection), "one_caller",
                  ("The gateway goes silent during an asynchronous load",)),
    InvariantKill(Mutant("loop_frozen_after_first_start", "a background task that blocks the event loop for 6 s "
                         "once, as the first start begins to serve", "@basic", (), _loop_frozen_after_first_start),
                  "liveness", ("The backend reports IB healthy when the gateway answers",
                               "The IB configuration reports the address and the client IDs in use"),
                  also=("bounds",)),
)
BY_NAME.update({k.mutant.name: k.mutant for k in RUN_WIDE_MUTANTS})
