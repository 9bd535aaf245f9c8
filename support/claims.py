"""Claims that need a deadline: poll the system through a driver until a property holds or time runs out.

Each function is what one Then-step asserts; it raises ``AssertionError`` (via
:func:`support.waiting.eventually`) with what was expected and what was seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support import bars, checkers, contract
from support.drivers.api import ApiDriver, ApiResponse
from support.waiting import eventually
from support.world import Shutdown, World


def answered_within(response: ApiResponse, bound_s: float) -> ApiResponse:
    """An answer (any status) came within ``bound_s``; a hang or a slower answer fails the claim."""
    assert not response.timed_out and response.elapsed_s <= bound_s, \
        f"answer took {response.elapsed_s:.2f} s > {bound_s:.1f} s: {response.describe()}"
    return response


def failed_within(response: ApiResponse, bound_s: float) -> ApiResponse:
    """The answer is a failure (not success, not a hang) that came within ``bound_s``."""
    assert not response.ok and not response.timed_out, f"expected a failure, not success or a hang: {response.describe()}"
    assert response.elapsed_s <= bound_s, \
        f"the failure took {response.elapsed_s:.2f} s > {bound_s:.1f} s: {response.describe()}"
    return response


def _recorded(world: World, call: Callable[[], ApiResponse]) -> Callable[[], ApiResponse]:
    def probe() -> ApiResponse:
        response = call()
        world.seen.responses.append(response)
        return response
    return probe


def gateway_answers(world: World, within_s: float) -> None:
    """The gateway itself completes a connection and answers a server-time request (the suite's own probe)."""
    client_id = world.settings.squatter_client_id_base + 3

    def probe() -> bool:
        result = world.ib.probe(client_id, timeout_s=world.settings.bound_s("validation_s"))
        assert result.connected and result.server_time, f"IB at {world.targets.ib_host}:{world.targets.ib_port}: {result.error}"
        return True
    eventually(probe, within_s, "the gateway answers the suite's own probe", interval_s=0.5)


def api_answers(world: World, within_s: float) -> ApiResponse:
    """The API's service health (``GET /health``, no IB involved) answers 200."""
    probe = _recorded(world, world.api.health)

    def check() -> ApiResponse:
        response = probe()
        assert response.status == 200, response.describe()
        return response
    return eventually(check, within_s, "the API answers", interval_s=0.2)


def says_healthy(response: ApiResponse) -> ApiResponse:
    """An ``/ib/health`` answer that says healthy: HTTP 200 and ``healthy: true``."""
    assert response.status == 200 and (response.data or {}).get("healthy") is True, \
        f"expected HTTP 200 with healthy true: {response.describe()}"
    return response


def reports_healthy(world: World, within_s: float) -> ApiResponse:
    """The backend answers ``/ib/health`` healthy within ``within_s``."""
    probe = _recorded(world, world.api.ib_health)
    return eventually(lambda: says_healthy(probe()), within_s, "the backend reports IB healthy")


def reports_unhealthy(world: World, within_s: float) -> ApiResponse:
    """``/ib/health`` answers 503 ``IB-UNHEALTHY`` (each answer itself within the API bound)."""
    probe = _recorded(world, world.api.ib_health)

    def unhealthy() -> ApiResponse:
        response = probe()
        assert response.status == 503, f"expected 503: {response.describe()}"
        assert response.error_code.startswith("IB-"), f"expected an IB- error code: {response.describe()}"
        return response
    return eventually(unhealthy, within_s, "the backend reports IB unhealthy")


def score_matches(world: World, predicate: Callable[[float], bool], wanted: str, within_s: float) -> float:
    """The resilience score satisfies ``predicate`` within ``within_s``; returns it."""
    probe = _recorded(world, world.api.resilience)

    def check() -> float | None:
        response = probe()
        value = contract.score(response)
        assert predicate(value), f"score {value} (wanted {wanted})"
        return value if value else 0.1  # a score of 0 is a legitimate answer, keep it truthy
    return eventually(check, within_s, f"the resilience score {wanted}", interval_s=0.2)


def discovery_succeeds(world: World, within_s: float) -> ApiResponse:
    """A forced discovery of a fresh symbol succeeds within ``within_s``."""
    probe = _recorded(world, lambda: world.api.discover(world.symbols.fresh()))

    def check() -> ApiResponse:
        response = probe()
        assert response.ok and (response.data or {}).get("symbol_info"), response.describe()
        return response
    return eventually(check, within_s, "a symbol discovery succeeds", interval_s=0.2)


def resilience_value(world: World, *path: str) -> Any:
    """One value of a fresh resilience report, e.g. ``("phase_2_garbage_collection", "max_idle_time_seconds")``."""
    response = world.api.resilience()
    world.seen.responses.append(response)
    value: Any = response.data
    for key in path:
        assert isinstance(value, dict) and key in value, f"no {'.'.join(path)} in {response.describe()}"
        value = value[key]
    return value


def idle_timeout_s(world: World) -> float:
    """The backend's idle timeout: the target profile's, else what its resilience report states."""
    return world.settings.profile.idle_timeout_s or float(
        resilience_value(world, "phase_2_garbage_collection", "max_idle_time_seconds"))


def health_interval_s(world: World) -> float:
    """The backend's health-check interval: the target profile's, else what its resilience report states."""
    return world.settings.profile.health_check_interval_s or float(
        resilience_value(world, "phase_2_garbage_collection", "health_check_interval"))


def operation_state(api: ApiDriver, operation_id: str, states: tuple[str, ...], within_s: float,
                    seen: list[ApiResponse]) -> ApiResponse:
    """The operation reaches one of ``states`` within ``within_s``; every poll is kept in ``seen``."""
    def check() -> ApiResponse:
        response = api.operation(operation_id)
        seen.append(response)
        status = (response.data or {}).get("status")
        assert status in states, f"operation {operation_id} is {status!r}: {response.describe()}"
        return response
    return eventually(check, within_s, f"operation {operation_id} becomes {'/'.join(states)}", interval_s=0.25)


def backend_connections_closed(world: World, within_s: float) -> list[dict[str, Any]]:
    """Every backend connection open during the scenario is closed, as the gateway side saw it."""
    since = world.seen.started_mono
    seen = world.history.backend_connections(since)
    assert seen, "the gateway side saw no backend connection in this scenario; nothing to check"

    def all_closed() -> list[dict[str, Any]]:
        still_open = [c for c in world.history.backend_connections(since) if c.get("disconnected_mono") is None]
        assert not still_open, f"still open: {[(c.get('conn_id'), c.get('client_id')) for c in still_open]}"
        return seen
    return eventually(all_closed, within_s, "every backend connection closes", interval_s=0.2)


def client_id_range(world: World) -> tuple[int, int]:
    """The client IDs the backend may use: the target profile's range, else what ``/ib/config`` reports."""
    profile = world.settings.profile
    if profile.client_id_min and profile.client_id_max:
        return profile.client_id_min, profile.client_id_max
    response = world.api.ib_config()
    world.seen.responses.append(response)
    id_range = (response.data or {}).get("client_id_range") or {}
    assert isinstance(id_range.get("min"), int) and isinstance(id_range.get("max"), int), \
        f"no client_id_range in {response.describe()}"
    return id_range["min"], id_range["max"]


def client_id_released(world: World, client_id: int) -> None:
    """The resilience report no longer lists ``client_id`` in use (within two health intervals)."""
    interval_s = health_interval_s(world)
    eventually(lambda: client_id not in resilience_value(world, "phase_3_client_id_preference", "client_ids_in_use"),
               2 * interval_s + 1.0, f"the backend stops using client ID {client_id}")


def load_failed_clearly(response: ApiResponse, bound_s: float) -> None:
    """A data load that ended as a failure with a message, within ``bound_s`` (never a hang)."""
    assert not response.timed_out and response.elapsed_s <= bound_s, \
        f"{'no answer' if response.timed_out else 'the answer came'} after {response.elapsed_s:.1f} s > {bound_s:.0f} s: {response.describe()}"
    data = response.data or {}
    failed = (not response.ok) or data.get("status") == "failed"
    message = data.get("error_message") or response.error_message
    assert failed and message, f"expected a failed load with a message: {response.describe()}"


def cached_bars(world: World, symbol: str, timeframe: str) -> list:
    """The backend's cached bars for a symbol and timeframe (empty when it has none)."""
    response = world.api.cached_data(symbol, timeframe)
    world.seen.responses.append(response)
    if response.status == 404:
        return []
    assert response.ok, f"cannot read the cache: {response.describe()}"
    body = response.data if isinstance(response.data, dict) and "dates" in response.data else response.body
    return bars.from_cache(body, timeframe == "1d")


def cache_matches_ib(world: World, symbol: str, kind: str, complete: bool) -> checkers.Verdict:
    """Every cached bar equals what IB serves (regular or extended hours); ``complete``: none missing."""
    timeframe, first, last, _ = bars.LOADS[kind]
    # The cache may hold bars of other loads too; judge the range this load asked for.
    cached = [b for b in cached_bars(world, symbol, timeframe) if first <= b.key[:10] <= last]
    if complete and not cached:
        return checkers.Verdict(False, f"no {symbol} {timeframe} bars cached")
    verdicts = []
    for use_rth in (True, False):
        served = bars.oracle(world.ib, world.settings.squatter_client_id_base + 1, symbol, kind, use_rth)
        wrong = bars.mismatches(cached, served)
        if complete and cached:
            wrong += [f"{key}: IB serves it, the cache lacks it" for key in
                      bars.missing(cached, served, cached[0].key, cached[-1].key)]
        if not wrong:
            return checkers.Verdict(True, f"{len(cached)} cached bars equal IB's (useRTH={use_rth})")
        verdicts.append(f"useRTH={use_rth}: " + "; ".join(wrong[:5]) + (f" (+{len(wrong) - 5} more)" if len(wrong) > 5 else ""))
    return checkers.Verdict(False, "cached bars differ from IB's:\n" + "\n".join(verdicts))


def operation_bars_cached(world: World, operation_id: str) -> checkers.Verdict:
    """The bars an operation says it fetched are exactly the bars now in the cache."""
    response = world.api.operation(operation_id)
    world.seen.responses.append(response)
    summary = (response.data or {}).get("result_summary") or {}
    fetched = summary.get("fetched_bars") or 0
    symbol, timeframe = summary.get("symbol"), summary.get("timeframe")
    assert symbol and timeframe, f"the operation names no symbol/timeframe: {response.describe()}"
    count = len(cached_bars(world, symbol, timeframe))
    return checkers.Verdict(fetched == count, f"the operation reports {fetched} bars fetched; the cache holds {count}")


def pool_holds_only_live_connections(world: World, within_s: float) -> dict[str, Any]:
    """The resilience report's pool health counts no dead connection (healthy == total)."""
    def check() -> dict[str, Any]:
        pool = resilience_value(world, "connection_pool_health")
        assert pool["healthy_connections"] == pool["total_connections"], f"pool health {pool}"
        return pool
    return eventually(check, within_s, "the pool holds only live connections")


def closed_count_matches_gateway(world: World, reported: Any, start_mono: float, end_mono: float, what: str) -> int:
    """A cleanup's reported count of closed connections equals the closes the gateway saw during it."""
    assert isinstance(reported, int) and not isinstance(reported, bool), f"no count of closed connections reported: {what}"
    # Closes reach the gateway just after the answer; 1 s, well inside any idle timeout, so an idle
    # collection that happens to follow the cleanup is not counted as the cleanup's work.
    grace_s = world.settings.scaled(1.0)

    def closes() -> list[Any]:
        return [c for c in world.history.backend_connections(start_mono) if c.get("disconnected_mono") is not None
                and start_mono <= float(c["disconnected_mono"]) <= end_mono + grace_s]

    # A connection an earlier scenario left idle may be closed by the idle collection during the cleanup, so it
    # may or may not be in the cleanup's count; every connection this scenario used must be.
    used = used_in_scenario(world)

    def agree() -> int:
        closed = closes()
        seen, own = len(closed), sum(1 for c in closed if int(c.get("conn_id") or 0) in used)
        assert seen >= 1, "the gateway saw no backend connection close; the scenario proved nothing"
        assert own <= reported <= seen, f"reported {reported} closed, the gateway saw {seen} close" + (
            f" ({seen - own} of them left idle by an earlier scenario)" if own < seen else "")
        return seen
    return eventually(agree, grace_s, f"the gateway sees {reported} backend connection(s) close", interval_s=0.2)


def used_in_scenario(world: World) -> set[int]:
    """IDs (in the record the history reads) of the connections that carried a request since the scenario began:
    the scenario's own, not those an earlier scenario left idle, which the idle collection may close at any time."""
    positions = world.seen.values.get("history_positions") or {}
    raw = world.history.slices(positions).get(world.history.source, [])
    return {int(e.get("conn_id") or 0) for e in raw if e.get("kind") == "request"}


def open_ids_during(world: World, response: Any) -> tuple[set[int], set[int]]:
    """Client IDs of the backend's connections open at the gateway throughout, and at any time of, a request."""
    connections = world.history.backend_connections(response.started_mono)
    assert connections, "the gateway saw no backend connection during the request; nothing to compare"
    return checkers.open_during(connections, response.started_mono, response.finished_mono)


def names_backend_address(world: World, host: Any, port: Any, where: str) -> None:
    """``host``/``port`` are where the backend's IB connections really go."""
    want_host, want_port = world.targets.backend_ib_host, world.targets.backend_ib_port
    assert port == want_port and checkers.same_host(str(host), want_host), \
        f"{where} names {host}:{port}; the backend connects to IB through {want_host}:{want_port}"


def idle_collection_bound(world: World) -> tuple[float, str]:
    """How long idle connections may take to close (idle timeout + two health intervals + 1 s), and the
    reason to skip if that is longer than ``max_wait_s`` ('' when it is not)."""
    idle_s = idle_timeout_s(world)
    bound_s = idle_s + 2 * health_interval_s(world) + 1.0
    return bound_s, within_patience(world, bound_s, f"the target's idle timeout ({idle_s:g} s)")


def idle_timeouts_delay(world: World, count: int) -> tuple[float, str]:
    """``count`` idle timeouts in seconds, and the reason to skip if waiting that long exceeds ``max_wait_s``."""
    idle_s = idle_timeout_s(world)
    wait_s = count * idle_s + world.settings.thresholds.api_response_s
    return count * idle_s, within_patience(world, wait_s, f"the target's idle timeout ({idle_s:g} s)")


def timestamp_is_now(response: ApiResponse, drift_max_s: float) -> None:
    """The answer's ``timestamp`` is ISO 8601 in UTC and within ``drift_max_s`` of now."""
    import datetime as dt

    try:
        stamp = contract.parse_timestamp(str((response.data or {}).get("timestamp")))
    except ValueError:
        raise AssertionError(f"no ISO 8601 timestamp in the report: {response.describe()}") from None
    assert stamp.utcoffset() == dt.timedelta(0), f"timestamp {stamp.isoformat()} does not say UTC"
    drift_s = abs((dt.datetime.now(dt.UTC) - stamp).total_seconds())
    assert drift_s <= drift_max_s, f"timestamp {stamp.isoformat()} is {drift_s:.1f} s away from now"


def within_patience(world: World, wait_s: float, why: str) -> str:
    """'' if a wait the target's own timings impose fits ``max_wait_s``; else the reason to skip."""
    limit_s = world.settings.profile.max_wait_s
    if wait_s <= limit_s:
        return ""
    return (f"{why} makes this scenario wait {wait_s:.0f} s > max_wait_s {limit_s:.0f} s "
            "(compress the target's timings, or raise -D max_wait_s)")


def holds_no_connections(world: World, within_s: float) -> None:
    """The backend holds no IB connection: its own cleanup first; whatever it leaves open, the suite cuts at the
    proxy or the simulator (the cleanup's own correctness is judged by the cleanup scenarios, not here)."""
    response = world.api.cleanup()
    world.seen.responses.append(response)
    if not world.history.source:
        assert response.ok, f"cleanup failed (and the suite cannot cut connections itself): {response.describe()}"
        return

    def closed(conn_ids: set[int]) -> bool:
        still = conn_ids & world.history.backend_open_ids()
        assert not still, f"the gateway still has backend connections {sorted(still)} open"
        return True
    left = world.history.backend_open_ids()
    try:
        eventually(lambda: closed(left), 1.0, "the backend's cleanup closes its connections", interval_s=0.1)
    except AssertionError:
        world.faults.drop_connections()
        eventually(lambda: closed(left), within_s, "the connections the suite cut are closed", interval_s=0.2)


def holds_a_connection(world: World, within_s: float) -> set[int]:
    """A discovery, then the gateway sees at least one connection of the backend open; return their IDs."""
    response = world.api.discover(world.symbols.fresh())
    world.seen.responses.append(response)
    assert response.ok, f"discovery failed: {response.describe()}"
    return eventually(lambda: world.history.backend_open_ids(), within_s,
                      "the gateway sees a connection of the backend open", interval_s=0.1)


def output_clean(world: World, since: int, settle: bool = True) -> None:
    """Nothing the backend printed after ``since`` is a warning, an un-awaited coroutine or a traceback.

    Args:
        settle: wait (bounded) until the backend stops writing first (a coroutine is reported when it is
            collected, which can be a moment after the answer).
    """
    if settle:
        world.backend_output.settled()
    lines = world.backend_output.complaints_since(since)
    shown = "\n".join(lines[:12]) + (f"\n… {len(lines) - 12} more" if len(lines) > 12 else "")
    assert not lines, f"the backend printed {len(lines)} complaint line(s) ({world.backend_output.path}):\n{shown}"


def closed_on_stop(world: World, shutdown: Shutdown, bound_s: float) -> None:
    """Every connection the backend held when told to stop was closed, as the gateway saw it, within ``bound_s``."""
    assert shutdown.held, "the backend held no IB connection when it was told to stop: nothing to judge"

    def closes() -> dict[int, float | None]:
        table = {int(c["conn_id"]): c.get("disconnected_mono") for c in world.history.connections()}
        return {conn_id: table.get(conn_id) for conn_id in shutdown.held}
    try:  # the proxy passes a close on to the gateway a moment after the backend's socket goes
        found = eventually(lambda: all(v is not None for v in closes().values()) and closes(), 2.0,
                           "the gateway sees the backend's connections closed", interval_s=0.1)
    except AssertionError:
        found = closes()
    late = {conn_id: (None if at is None else round(float(at) - shutdown.started_mono, 2))
            for conn_id, at in found.items() if at is None or float(at) - shutdown.started_mono > bound_s}
    assert not late, (f"{len(late)} of {len(found)} connections were not closed within {bound_s:.1f} s of the stop "
                      f"signal (seconds after it; None: still open): {late}; {shutdown.describe()}")


def stopped_by_itself(shutdown: Shutdown, bound_s: float) -> None:
    """The backend ended on the stop signal, within ``bound_s``, without being killed."""
    assert not shutdown.killed and shutdown.elapsed_s <= bound_s, \
        f"expected the backend to stop by itself within {bound_s:.1f} s: {shutdown.describe()}"
