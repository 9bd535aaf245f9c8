"""Claims: what each Then-step asserts, one function per claim (the CLI's are in :mod:`support.cli_claims`).

The convention is :mod:`support.verdict`'s: a claim returns quietly or raises :class:`~support.verdict.ClaimFailed`
with what was expected and what was seen. A claim that needs time polls through a driver with
:func:`support.waiting.eventually` until its :class:`~support.waiting.Bound` (from the settings, scaled once)
runs out; a claim over what was recorded reads the scenario's :class:`~support.timeline.Timeline` and the pure
checkers of :mod:`support.checkers`. The backend's answers are read through the typed values of
:mod:`support.contract`; what the backend says about IB is held against what IB itself saw.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

from support import bars, contract
from support.checks import pool, timing, wire
from support.contract import (
    FINISHED,
    Cleanup,
    DataLoad,
    Discovery,
    IbConfig,
    IbHealth,
    IbStatus,
    Operation,
    ResilienceReport,
    needed,
)
from support.drivers.api import ApiDriver, ApiResponse
from support.timeline import Window
from support.verdict import FAIL, ClaimFailed, ComplaintFound, Verdict, holds, require, require_within
from support.waiting import Bound, eventually, settled
from support.world import Shutdown, World


def _recorded(world: World, call: Callable[[], ApiResponse]) -> Callable[[], ApiResponse]:
    def probe() -> ApiResponse:
        response = call()
        world.seen.responses.append(response)
        return response
    return probe


def _fresh(world: World, call: Callable[[ApiDriver], ApiResponse]) -> ApiResponse:
    """One more answer, recorded with the scenario's exchanges."""
    response = call(world.api)
    world.seen.responses.append(response)
    return response


def _listed(lines: Sequence[str], limit: int = 10) -> str:
    return "\n".join(lines[:limit]) + (f"\n… {len(lines) - limit} more" if len(lines) > limit else "")


# =========================================================================================== one answer

def answered_within(response: ApiResponse, bound: Bound) -> ApiResponse:
    """An answer (any status) came within ``bound``; a hang or a slower answer fails the claim."""
    require_within(not response.timed_out and response.elapsed_s <= bound.seconds,
                   f"answer took {response.elapsed_s:.2f} s > {bound}: {response.describe()}")
    return response


def failed_within(response: ApiResponse, bound: Bound) -> ApiResponse:
    """The answer is a failure (not success, not a hang) that came within ``bound``."""
    require(not response.ok and not response.timed_out,
            f"expected a failure, not success or a hang: {response.describe()}")
    require_within(response.elapsed_s <= bound.seconds,
                   f"the failure took {response.elapsed_s:.2f} s > {bound}: {response.describe()}")
    return response


def failed_with_ib_error(response: ApiResponse, bound: Bound) -> None:
    """A failure within ``bound`` that carries an ``IB-`` error code and a message."""
    failed_within(response, bound)
    require(response.error_code.startswith("IB-") and response.error_message,
            f"expected an IB- error with a message: {response.describe()}")


def succeeded(response: ApiResponse, what: str = "the request") -> ApiResponse:
    """The answer is a success (HTTP 2xx, ``success`` not false)."""
    require(response.ok, f"{what} failed: {response.describe()}")
    return response


def succeeded_within(response: ApiResponse, bound: Bound) -> None:
    """A success that came within ``bound``."""
    succeeded(response)
    require_within(response.elapsed_s <= bound.seconds,
                   f"took {response.elapsed_s:.2f} s > {bound}: {response.describe()}")


def every_request_succeeded(responses: Sequence[ApiResponse], what: str = "request") -> None:
    """There were requests, and every one succeeded."""
    failed = [r.describe() for r in responses if not r.ok]
    require(responses and not failed, f"{len(failed)} of {len(responses)} {what}(s) failed:\n" + _listed(failed))


def has_contract_shape(response: ApiResponse, endpoint: str) -> None:
    """The answer has a status the contract allows for ``endpoint`` and the contract's shape."""
    errors = contract.envelope_errors(response, endpoint)
    require(response.status in contract.STATUSES.get(endpoint, (200,)) and not errors,
            f"{endpoint}: HTTP {response.status}; " + "; ".join(errors))


def says_not_found(response: ApiResponse) -> None:
    """An unknown symbol: a success with no symbol details, or a 404 with a message."""
    found_nothing = response.status == 200 and response.ok and Discovery.of(response).symbol_info is None
    said_not_found = response.status == 404 and bool(response.error_message)
    require(found_nothing or said_not_found,
            f"expected symbol_info null or a 404 with a message: {response.describe()}")


def is_validation_error(response: ApiResponse) -> None:
    """Bad input is refused as such (400 or 422)."""
    require(response.status in (400, 422), f"expected 400/422: {response.describe()}")


def is_ib_unavailable(response: ApiResponse) -> None:
    """A 503 with an ``IB-`` error code and a message."""
    require(response.status == 503 and response.error_code.startswith("IB-") and response.error_message,
            f"expected 503 with an IB- error code and a message: {response.describe()}")


def says_healthy(response: ApiResponse) -> ApiResponse:
    """An ``/ib/health`` answer that says healthy: HTTP 200 and ``healthy: true``."""
    require(response.status == 200 and IbHealth.of(response).healthy is True,
            f"expected HTTP 200 with healthy true: {response.describe()}")
    return response


# =========================================================================================== the service

def gateway_answers(world: World, within: Bound) -> None:
    """The gateway itself completes a connection and answers a server-time request (the suite's own probe)."""
    client_id = world.settings.squatter_client_id_base + 3

    def probe() -> bool:
        result = world.ib.probe(client_id, timeout_s=world.settings.bound("validation").seconds)
        require(result.connected and result.server_time,
                f"IB at {world.targets.ib_host}:{world.targets.ib_port}: {result.error}")
        return True
    eventually(probe, within, "the gateway answers the suite's own probe", interval_s=0.5)


def api_answers(world: World, within: Bound) -> ApiResponse:
    """The API's service health (``GET /health``, no IB involved) answers 200."""
    probe = _recorded(world, world.api.health)

    def check() -> ApiResponse:
        response = probe()
        require(response.status == 200, response.describe())
        return response
    return eventually(check, within, "the API answers", interval_s=0.2)


def _since_trouble(world: World) -> float | None:
    """The start of a detection bound: when the fault on began (None: now)."""
    return world.timeline.trouble_began(time.monotonic())


def _since_heal(world: World) -> float | None:
    """The start of a recovery bound: when the last fault was healed (None: now)."""
    return world.timeline.trouble_ended(time.monotonic())


def reports_healthy(world: World, within: Bound) -> ApiResponse:
    """The backend answers ``/ib/health`` healthy within ``within``."""
    probe = _recorded(world, world.api.ib_health)
    return eventually(lambda: says_healthy(probe()), within, "the backend reports IB healthy")


def reports_unhealthy(world: World, within: Bound) -> ApiResponse:
    """``/ib/health`` answers 503 with an ``IB-`` error code within ``within``."""
    probe = _recorded(world, world.api.ib_health)

    def unhealthy() -> ApiResponse:
        response = probe()
        require(response.status == 503, f"expected 503: {response.describe()}")
        require(response.error_code.startswith("IB-"), f"expected an IB- error code: {response.describe()}")
        return response
    return eventually(unhealthy, within, "the backend reports IB unhealthy", since_mono=_since_trouble(world))


def discovery_succeeds(world: World, within: Bound) -> ApiResponse:
    """A forced discovery of a fresh symbol succeeds within ``within``."""
    probe = _recorded(world, lambda: world.api.discover(world.symbols.fresh()))

    def check() -> ApiResponse:
        response = probe()
        require(response.ok and Discovery.of(response).symbol_info, response.describe())
        return response
    return eventually(check, within, "a symbol discovery succeeds", interval_s=0.2, since_mono=_since_heal(world))


def holds_no_connections(world: World, within: Bound) -> None:
    """The backend holds no IB connection: its own cleanup first (unless its profile says it has none); whatever it
    leaves open, the suite cuts at the proxy or the simulator (the cleanup's own correctness is judged by the cleanup
    scenarios, not here)."""
    own_cleanup = "api_cleanup" not in world.settings.lacks
    response = _fresh(world, ApiDriver.cleanup) if own_cleanup else None
    if not world.history.source:
        require(response is not None, "the backend has no cleanup (its profile lacks api_cleanup) and the suite "
                                      "cannot cut its connections itself")
        require(response.ok, f"cleanup failed (and the suite cannot cut connections itself): {response.describe()}")
        return

    def closed(conn_ids: set[int]) -> bool:
        still = conn_ids & world.history.backend_open_ids()
        require(not still, f"the gateway still has backend connections {sorted(still)} open")
        return True
    left = world.history.backend_open_ids()
    try:
        if not own_cleanup:
            raise AssertionError("no cleanup of its own")
        eventually(lambda: closed(left), world.settings.bound_of(1.0, "the backend's own cleanup"),
                   "the backend's cleanup closes its connections", interval_s=0.1)
    except AssertionError:
        world.faults.drop_connections()
        eventually(lambda: closed(left), within, "the connections the suite cut are closed", interval_s=0.2)


def holds_a_connection(world: World, within: Bound) -> set[int]:
    """A discovery, then the gateway sees at least one connection of the backend open; return their IDs."""
    succeeded(_fresh(world, lambda api: api.discover(world.symbols.fresh())), "the discovery")
    return eventually(lambda: world.history.backend_open_ids(), within,
                      "the gateway sees a connection of the backend open", interval_s=0.1)


# =========================================================================================== the resilience report

def report(world: World) -> tuple[ResilienceReport, ApiResponse]:
    """A fresh resilience report, recorded with the scenario's exchanges."""
    response = _fresh(world, ApiDriver.resilience)
    return ResilienceReport.of(response), response


def score_of(response: ApiResponse) -> float:
    """The overall score of a resilience report (the claim fails when it carries none)."""
    return needed(ResilienceReport.of(response).score, "overall_resilience_score", response)


def score_at_least(response: ApiResponse, minimum: float) -> None:
    """The report's score is at least ``minimum``."""
    value = score_of(response)
    require(value >= minimum, f"score {value} < {minimum}: {response.describe()}")


def score_allowed(response: ApiResponse) -> None:
    """The score is a sum the contract allows."""
    value = score_of(response)
    require(value in contract.ALLOWED_SCORES,
            f"score {value} is not a sum the contract allows {contract.ALLOWED_SCORES}")


def phases_working(response: ApiResponse) -> None:
    """Every phase of the report says ``working``."""
    broken = {phase: status for phase, status in ResilienceReport.of(response).phase_status.items()
              if status != "working"}
    require(not broken, f"phases not working: {broken}")


def score_matches(world: World, predicate: Callable[[float], bool], wanted: str, within: Bound,
                  since_mono: float | None = None) -> float:
    """The resilience score satisfies ``predicate`` within ``within`` of ``since_mono`` (default: now); returns it."""
    probe = _recorded(world, world.api.resilience)

    def check() -> ApiResponse:
        response = probe()
        value = score_of(response)
        require(predicate(value), f"score {value} (wanted {wanted})")
        return response
    return score_of(eventually(check, within, f"the resilience score {wanted}", interval_s=0.2, since_mono=since_mono))


def score_falls(world: World, below: float, within: Bound) -> float:
    """The score falls below ``below`` within ``within`` of the fault on (the detection bound's start)."""
    return score_matches(world, lambda s: s < below, f"below {below:g}", within, _since_trouble(world))


def score_recovers(world: World, at_least: float, within: Bound) -> float:
    """The score is at least ``at_least`` within ``within`` of the last heal (the recovery bound's start)."""
    return score_matches(world, lambda s: s >= at_least, f"at least {at_least:g}", within, _since_heal(world))


def reports_in_time(world: World, bound: Bound) -> None:
    """Every resilience report the scenario asked for came within ``bound``."""
    slow = [r.describe() for r in world.timeline.exchanges("/ib/resilience") if r.timed_out or r.elapsed_s > bound.seconds]
    require_within(not slow, f"resilience reports slower than {bound}:\n" + "\n".join(slow))


def timestamp_is_now(response: ApiResponse, drift_max_s: float) -> None:
    """The report's ``timestamp`` is ISO 8601 in UTC and within ``drift_max_s`` of now."""
    try:
        stamp = contract.parse_timestamp(str(ResilienceReport.of(response).timestamp))
    except ValueError:
        raise ClaimFailed(f"no ISO 8601 timestamp in the report: {response.describe()}") from None
    require(stamp.utcoffset() == dt.timedelta(0), f"timestamp {stamp.isoformat()} does not say UTC")
    drift_s = abs((dt.datetime.now(dt.UTC) - stamp).total_seconds())
    require(drift_s <= drift_max_s, f"timestamp {stamp.isoformat()} is {drift_s:.1f} s away from now")


def states_idle_timeout(world: World, seconds: float) -> None:
    """The report states an idle timeout of ``seconds``."""
    state, response = report(world)
    value = needed(state.max_idle_s, "phase_2_garbage_collection.max_idle_time_seconds", response)
    require(value == float(seconds), f"idle timeout {value} s, expected {seconds} s")


def states_health_interval(world: World, seconds: float) -> None:
    """The report states a health-check interval of ``seconds``."""
    state, response = report(world)
    value = needed(state.health_interval_s, "phase_2_garbage_collection.health_check_interval", response)
    require(value == float(seconds), f"health-check interval {value} s, expected {seconds} s")


def garbage_collection_working(world: World) -> None:
    """The report's garbage-collection phase says ``working``."""
    status = report(world)[0].phase_status[contract.PHASES[1]]
    require(status == "working", f"garbage collection phase is {status!r}")


def preferred_id_listed(world: World) -> None:
    """The report lists the preferred client ID in use."""
    state, response = report(world)
    in_use = needed(state.client_ids_in_use, "phase_3_client_id_preference.client_ids_in_use", response)
    wanted = world.settings.preferred_client_id
    require(wanted in in_use, f"client IDs in use {list(in_use)}, expected {wanted} among them")


def idle_timeout_s(world: World) -> float:
    """The backend's idle timeout: the target profile's, else what its resilience report states."""
    if world.settings.profile.idle_timeout_s:
        return world.settings.profile.idle_timeout_s
    state, response = report(world)
    return needed(state.max_idle_s, "phase_2_garbage_collection.max_idle_time_seconds", response)


def health_interval_s(world: World) -> float:
    """The backend's health-check interval: the target profile's, else what its resilience report states (0 for a
    backend whose profile declares it has no health-check loop)."""
    if "health_check_loop" in world.settings.lacks:
        return 0.0
    if world.settings.profile.health_check_interval_s:
        return world.settings.profile.health_check_interval_s
    state, response = report(world)
    return needed(state.health_interval_s, "phase_2_garbage_collection.health_check_interval", response)


def two_health_intervals(world: World) -> Bound:
    """Two of the backend's health intervals and a second: how long a dead connection may stay in the pool."""
    return world.settings.bound_of(2 * health_interval_s(world) + 1.0, "two health intervals")


def pool_holds_only_live_connections(world: World, within: Bound) -> None:
    """The report's pool health counts no dead connection (healthy == total)."""
    def check() -> bool:
        state, response = report(world)
        total = needed(state.pool_total, "connection_pool_health.total_connections", response)
        require(state.pool_healthy == total, f"pool health {state.pool}")
        return True
    eventually(check, within, "the pool holds only live connections")


def client_id_released(world: World, client_id: int) -> None:
    """The resilience report no longer lists ``client_id`` in use (within two health intervals)."""
    def released() -> bool:
        state, response = report(world)
        in_use = needed(state.client_ids_in_use, "phase_3_client_id_preference.client_ids_in_use", response)
        require(client_id not in in_use, f"client IDs in use {list(in_use)}")
        return True
    eventually(released, two_health_intervals(world), f"the backend stops using client ID {client_id}")


# =========================================================================================== what IB saw

def handoffs_validated(world: World) -> None:
    """Every connection used by an API call was validated with a server-time request before its first use."""
    holds(wire.handoffs_validated(world.history.events(), world.seen.responses))


def validated_connections_kept(world: World) -> None:
    """No connection that passed its validation was thrown away (the run-wide invariant's checker, over the
    scenario's window from its first When step)."""
    holds(pool.validated_connections_kept(world.window(world.seen.acting_mono), world.limits))


def failed_validations_never_used(world: World) -> None:
    """No request was sent on a connection that failed its validation."""
    holds(wire.failed_validations_never_used(world.history.events()))


def connections_never_shared(world: World) -> None:
    """No connection carried two requests at the same moment: no two data requests (wire.connections_never_shared)
    and no validation beside another request (the run-wide invariant's checker, over the scenario's window)."""
    holds(wire.connections_never_shared(world.history.events()))
    callers = wire.one_caller_at_a_time(world.window(world.seen.acting_mono), world.limits)
    require(callers.status != FAIL, callers.detail(world.seen.started_mono))


def pool_limit_respected(world: World) -> None:
    """The gateway never saw more backend connections open at once than the pool allows (and saw at least one):
    the run-wide invariant's checker, over the scenario's window."""
    holds(pool.pool_limit(world.window(), world.limits))


def backend_connections_closed(world: World, within: Bound) -> None:
    """Every backend connection open during the scenario is closed, as the gateway side saw it."""
    require(world.timeline.backend_connections(),
            "the gateway side saw no backend connection in this scenario; nothing to check")

    def all_closed() -> bool:
        still_open = [c for c in world.timeline.backend_connections() if c.get("disconnected_mono") is None]
        require(not still_open, f"still open: {[(c.get('conn_id'), c.get('client_id')) for c in still_open]}")
        return True
    eventually(all_closed, within, "every backend connection closes", interval_s=0.2)


def used_in_scenario(world: World) -> set[int]:
    """IDs (in the record the history reads) of the connections that carried a request since the scenario began:
    the scenario's own, not those an earlier scenario left idle, which the idle collection may close at any time."""
    raw = world.history.slices(world.seen.history_positions).get(world.history.source, [])
    return {int(e.get("conn_id") or 0) for e in raw if e.get("kind") == "request"}


def not_closed_before_idle_timeout(world: World) -> None:
    """No connection the scenario used was closed sooner than (nearly) the idle timeout after its last use."""
    idle_s = idle_timeout_s(world)
    used = used_in_scenario(world)  # one an earlier scenario left idle may rightly close sooner
    last_use = world.seen.last_use_mono if world.seen.last_use_mono is not None else world.seen.started_mono
    early = [c for c in world.timeline.backend_connections()
             if c.get("disconnected_mono") and int(c.get("conn_id") or 0) in used
             and c["disconnected_mono"] - last_use < 0.9 * idle_s]
    require(not early, f"closed less than {idle_s} s after the last use: {early}")


def in_flight_longer_than_idle_timeout(world: World) -> None:
    """A historical-data request was in flight at IB for longer than the idle timeout."""
    holds(wire.in_flight_longer_than(world.history.events(), "reqHistoricalData", idle_timeout_s(world)))


def none_closed_during(world: World, response: ApiResponse) -> None:
    """No backend connection closed while ``response``'s request was running."""
    window = Window.of(response)
    closed = [c for c in world.timeline.closed_within(window) if window.start_mono < c["disconnected_mono"] < window.end_mono]
    require(not closed, f"connections closed during the {response.elapsed_s:.1f} s request: {closed}")


def answered_during(world: World, request_type: str, response: ApiResponse) -> None:
    """The gateway answered the backend a ``request_type`` while ``response``'s request was made."""
    holds(wire.answered_between(world.history.events(), request_type, response.started_mono,
                                    response.finished_mono))


def closed_count_matches_gateway(world: World, reported: int | None, window: Window, what: str) -> int:
    """A cleanup's reported count of closed connections equals the closes the gateway saw during it."""
    require(reported is not None, f"no count of closed connections reported: {what}")
    # Closes reach the gateway just after the answer; 1 s, well inside any idle timeout, so an idle
    # collection that happens to follow the cleanup is not counted as the cleanup's work.
    grace = world.settings.bound_of(1.0, "closes reaching the gateway after the answer")
    # A connection an earlier scenario left idle may be closed by the idle collection during the cleanup, so it
    # may or may not be in the cleanup's count; every connection this scenario used must be.
    used = used_in_scenario(world)

    def agree() -> int:
        closed = world.timeline.closed_within(window.widened(after_s=grace.seconds))
        seen, own = len(closed), sum(1 for c in closed if int(c.get("conn_id") or 0) in used)
        require(own <= reported <= seen, f"reported {reported} closed, the gateway saw {seen} close" + (
            f" ({seen - own} of them left idle by an earlier scenario)" if own < seen else ""))
        require(seen >= 1, "the gateway saw no backend connection close; the scenario proved nothing")
        return seen
    # A count the gateway contradicts is a refuted claim, not a time bound: the grace only lets closes arrive.
    return settled(agree, grace, f"the gateway sees {reported} backend connection(s) close", interval_s=0.2)


def cleanup_count_matches_gateway(world: World, response: ApiResponse) -> None:
    """The cleanup answer's count of closed connections is the count the gateway saw close."""
    closed_count_matches_gateway(world, Cleanup.of(response).connections_closed, Window.of(response),
                                 response.describe())


# =========================================================================================== the backend's self-report

def open_ids_during(world: World, response: ApiResponse) -> tuple[set[int], set[int]]:
    """Client IDs of the backend's connections open at the gateway throughout, and at any time of, a request."""
    connections = world.timeline.backend_connections(response.started_mono)
    require(connections, "the gateway saw no backend connection during the request; nothing to compare")
    return wire.open_during(connections, response.started_mono, response.finished_mono)


def status_connected_as_gateway_sees(world: World, response: ApiResponse) -> None:
    """``/ib/status`` says connected, with a client ID the gateway has open for the backend."""
    status = IbStatus.of(response)
    _, open_ids = open_ids_during(world, response)
    require(status.connected is True and status.client_id in open_ids,
            f"the gateway has client ID(s) {sorted(open_ids)} open for the backend; /ib/status says {status.connection}")


def names_backend_address(world: World, host: Any, port: Any, where: str) -> None:
    """``host``/``port`` are where the backend's IB connections really go."""
    want_host, want_port = world.targets.backend_ib_host, world.targets.backend_ib_port
    require(port == want_port and wire.same_host(str(host), want_host),
            f"{where} names {host}:{port}; the backend connects to IB through {want_host}:{want_port}")


def status_names_backend_address(world: World, response: ApiResponse) -> None:
    """``/ib/status`` names the address the backend connects to IB through."""
    status = IbStatus.of(response)
    names_backend_address(world, status.host, status.port, "/ib/status")


def config_names_backend_address(world: World, response: ApiResponse) -> None:
    """``/ib/config`` names the address the backend connects to IB through."""
    config = IbConfig.of(response)
    names_backend_address(world, config.host, config.port, "/ib/config")


def config_range_holds_accepted_ids(world: World, response: ApiResponse) -> None:
    """``/ib/config``'s client-ID range holds every client ID the gateway accepted from the backend."""
    config = IbConfig.of(response)
    accepted = world.timeline.client_ids(world.timeline.backend_connections())
    low = config.client_id_min if config.client_id_min is not None else 0
    high = config.client_id_max if config.client_id_max is not None else -1
    outside = [i for i in accepted if not low <= i <= high]
    require(accepted and not outside,
            f"the gateway accepted client IDs {accepted}; /ib/config says {config.client_id_range}")


def client_id_range(world: World) -> tuple[int, int]:
    """The client IDs the backend may use: the target profile's range, else what ``/ib/config`` reports."""
    profile = world.settings.profile
    if profile.client_id_min and profile.client_id_max:
        return profile.client_id_min, profile.client_id_max
    response = _fresh(world, ApiDriver.ib_config)
    config = IbConfig.of(response)
    return (needed(config.client_id_min, "client_id_range.min", response),
            needed(config.client_id_max, "client_id_range.max", response))


def listed_ids_are_open_ones(world: World, response: ApiResponse) -> None:
    """The client IDs phase 3 lists in use are the ones the gateway has open for the backend."""
    listed = set(ResilienceReport.of(response).client_ids_in_use or ())
    throughout, anytime = open_ids_during(world, response)
    require(throughout <= listed <= anytime,
            f"the report lists client IDs {sorted(listed)}; the gateway had {sorted(throughout)} open throughout "
            "the request")


def phase_3_working_only_with_preferred(world: World, response: ApiResponse) -> None:
    """Phase 3 reports working only if the gateway has the preferred client ID open for the backend."""
    state = ResilienceReport.of(response)
    _, open_ids = open_ids_during(world, response)
    preferred = world.settings.preferred_client_id
    require(state.phase_status[contract.PHASES[2]] != "working" or preferred in open_ids,
            f"phase 3 reports working, but the gateway has client IDs {sorted(open_ids)} open for the backend, "
            f"not the preferred {preferred}: {state.phase_3}")


# =========================================================================================== client IDs

def accepted_first(world: World, wanted: int) -> None:
    """The first client ID the gateway accepted from the backend is ``wanted``."""
    accepted = wire.accepted_client_ids(world.history.events())
    require(accepted and accepted[0] == wanted, f"accepted client IDs {accepted}; expected {wanted} first")


def accepted_last(world: World, wanted: int) -> None:
    """The last client ID the gateway accepted from the backend is ``wanted``."""
    accepted = wire.accepted_client_ids(world.history.events())
    require(accepted and accepted[-1] == wanted, f"accepted client IDs in order {accepted}; expected {wanted} last")


def refused_in_order(world: World, first: int, count: int) -> None:
    """The gateway refused the backend ``count`` times with 326, for ``first``, ``first + 1`` …"""
    refused, wanted = wire.rejected_client_ids(world.history.events()), list(range(first, first + count))
    require(refused == wanted, f"refused client IDs {refused}; expected {wanted}")


# =========================================================================================== load

def success_rate_at_least(responses: Sequence[ApiResponse], percent: float) -> None:
    """At least ``percent`` % of the requests succeeded."""
    summary = timing.summarise_load(responses)
    require(summary.total and summary.success_rate_pct >= percent,
            f"{summary.success_rate_pct:.1f} % of {summary.total} succeeded (< {percent} %):\n"
            + "\n".join(summary.failures[:10]))


def slowest_within(responses: Sequence[ApiResponse], percent: float, bound: Bound) -> None:
    """The slowest ``percent`` % of the requests took at most ``bound`` (the {100 - percent}th percentile)."""
    summary = timing.summarise_load(responses)
    tail_s = timing.percentile([r.elapsed_s for r in responses], 100 - percent)
    require(responses, "no request was made")
    require_within(tail_s <= bound.seconds,
            f"p{100 - percent:g} = {tail_s:.2f} s > {bound} (p50 {summary.p50_s:.2f} s, max {summary.max_s:.2f} s)")


def all_within(responses: Sequence[ApiResponse], bound: Bound, what: str = "answer") -> None:
    """There were answers, and every one came within ``bound`` (a hang counts as slow)."""
    slow = [r.describe() for r in responses if r.timed_out or r.elapsed_s > bound.seconds]
    require(responses, f"no {what} was recorded")
    require_within(not slow, f"{len(slow)} {what}(s) slower than {bound}:\n" + _listed(slow))


def success_or_clear_ib_error(responses: Sequence[ApiResponse]) -> None:
    """Every answer was a success or a 503 with an ``IB-`` code and a message."""
    unclear = [r.describe() for r in responses
               if not r.ok and not (r.status == 503 and r.error_code.startswith("IB-") and r.error_message)]
    require(not unclear, f"{len(unclear)} answer(s) neither a success nor a 503 with an IB- code:\n" + _listed(unclear))


def probes_in_time_during(world: World, load: ApiResponse, bound: Bound) -> None:
    """Every service-health read made while ``load`` ran answered 200 within ``bound``."""
    # The first read starts just before the load (see workloads.load_while_probing), the rest while it runs.
    probes = world.timeline.exchanges("/health", within=Window.of(load).widened(before_s=1.0))
    slow = [r.describe() for r in probes if r.timed_out or r.status != 200 or r.elapsed_s > bound.seconds]
    require(probes, "no service-health read overlapped the load")
    require_within(not slow, f"{len(slow)} of {len(probes)} health answers slower than {bound} or failed:\n"
            + _listed(slow, 5))


# =========================================================================================== data

def load_succeeded(response: ApiResponse) -> None:
    """A data load that says it succeeded."""
    require(response.ok and DataLoad.of(response).succeeded, f"the load failed: {response.describe()}")


def loads_succeeded(world: World) -> None:
    """The scenario's data loads all succeeded (and there was one)."""
    loads = world.timeline.exchanges("/data/load")
    failed = [r.describe() for r in loads if not r.ok or not DataLoad.of(r).succeeded]
    require(loads and not failed, "data loads not successful:\n" + "\n".join(failed))


def operation_started(response: ApiResponse) -> str:
    """An asynchronous load answered with an operation; returns its ID."""
    operation_id = DataLoad.of(response).operation_id
    require(response.ok and operation_id, f"no operation started: {response.describe()}")
    return str(operation_id)


def load_failed_clearly(response: ApiResponse, bound: Bound) -> None:
    """A data load that ended as a failure with a message, within ``bound`` (never a hang)."""
    require_within(not response.timed_out and response.elapsed_s <= bound.seconds,
                   f"{'no answer' if response.timed_out else 'the answer came'} after {response.elapsed_s:.1f} s > {bound}: "
            f"{response.describe()}")
    load = DataLoad.of(response)
    require(((not response.ok) or load.status == "failed") and load.error_message,
            f"expected a failed load with a message: {response.describe()}")


def bars_came_from_ib(world: World, load: ApiResponse) -> None:
    """The gateway answered historical-data requests while the load ran, and the load says it fetched bars."""
    verdict = wire.answered_between(world.history.events(), "reqHistoricalData", load.started_mono,
                                        load.finished_mono)
    fetched = DataLoad.of(load).fetched_bars or 0
    require(verdict and fetched > 0, f"{verdict.message}; the load reports {fetched} bars fetched: {load.describe()}")


def requests_counted_honestly(world: World, load: ApiResponse) -> None:
    """The load's ``ib_requests_made`` is the number of historical-data requests the gateway received during it."""
    received = len(world.timeline.ib_events("request", "reqHistoricalData", within=Window.of(load)))
    reported = DataLoad.of(load).ib_requests_made
    require(received > 0 and reported == received,
            f"the load reported {reported} IB requests; the gateway received {received}")


def cached_bars(world: World, symbol: str, timeframe: str) -> list:
    """The backend's cached bars for a symbol and timeframe (empty when it has none)."""
    response = _fresh(world, lambda api: api.cached_data(symbol, timeframe))
    if response.status == 404:
        return []
    require(response.ok, f"cannot read the cache: {response.describe()}")
    body = response.data if isinstance(response.data, dict) and "dates" in response.data else response.body
    return bars.from_cache(body, timeframe == "1d")


def cache_verdict(world: World, symbol: str, kind: str, complete: bool) -> Verdict:
    """Whether every cached bar equals what IB serves (regular or extended hours); ``complete``: none missing."""
    timeframe, first, last, _ = bars.LOADS[kind]
    # The cache may hold bars of other loads too; judge the range this load asked for.
    cached = [b for b in cached_bars(world, symbol, timeframe) if first <= b.key[:10] <= last]
    if complete and not cached:
        return Verdict.failed(f"no {symbol} {timeframe} bars cached")
    verdicts = []
    for use_rth in (True, False):
        served = bars.oracle(world.ib, world.settings.squatter_client_id_base + 1, symbol, kind, use_rth)
        wrong = bars.mismatches(cached, served)
        if complete and cached:
            wrong += [f"{key}: IB serves it, the cache lacks it" for key in
                      bars.missing(cached, served, cached[0].key, cached[-1].key)]
        if not wrong:
            return Verdict.passed(f"{len(cached)} cached bars equal IB's (useRTH={use_rth})")
        verdicts.append(f"useRTH={use_rth}: " + "; ".join(wrong[:5]) + (f" (+{len(wrong) - 5} more)" if len(wrong) > 5 else ""))
    return Verdict.failed("cached bars differ from IB's:\n" + "\n".join(verdicts))


def cache_matches_ib(world: World, symbol: str, kind: str, complete: bool) -> None:
    """The cached bars are bars IB serves (``complete``: exactly the bars IB serves for the request)."""
    holds(cache_verdict(world, symbol, kind, complete))


def operation_state(world: World, operation_id: str, states: tuple[str, ...], within: Bound) -> ApiResponse:
    """The operation reaches one of ``states`` within ``within``; every poll is kept with the scenario's answers."""
    def check() -> ApiResponse:
        response = _fresh(world, lambda api: api.operation(operation_id))
        status = Operation.of(response).status
        require(status in states, f"operation {operation_id} is {status!r}: {response.describe()}")
        return response
    return eventually(check, within, f"operation {operation_id} becomes {'/'.join(states)}", interval_s=0.25)


def operation_completed(world: World, operation_id: str, within: Bound) -> None:
    """The operation finishes within ``within``, and finishes completed."""
    final = operation_state(world, operation_id, FINISHED, within)
    status = Operation.of(final).status
    require(status == "completed", f"the operation ended {status}: {final.describe()}")


def operation_progressed(world: World) -> None:
    """Some poll of the operation showed progress above 0 %."""
    polls = [Operation.of(r) for r in world.seen.responses if r.path.startswith("/operations/") and r.ok]
    percentages = [p.percentage for p in polls]
    require(percentages and max(percentages) > 0, f"no progress reported in {len(polls)} polls: {percentages}")


def operation_bars_cached(world: World, operation_id: str) -> None:
    """The bars an operation says it fetched are exactly the bars now in the cache."""
    response = _fresh(world, lambda api: api.operation(operation_id))
    operation = Operation.of(response)
    require(operation.symbol and operation.timeframe,
            f"the operation names no symbol/timeframe: {response.describe()}")
    count = len(cached_bars(world, str(operation.symbol), str(operation.timeframe)))
    require(operation.fetched_bars == count,
            f"the operation reports {operation.fetched_bars} bars fetched; the cache holds {count}")


def pacing_violation_sent(world: World) -> None:
    """The gateway sent the backend error 162 (a pacing violation)."""
    codes = [e.code for e in world.timeline.ib_events("error")]
    require(162 in codes, f"no error 162 sent to the backend; IB errors seen: {codes}")


def retried_after_backoff(world: World, min_wait_s: float = 1.0) -> None:
    """The backend retried the request the gateway paced only after waiting."""
    holds(wire.retried_after_backoff(world.history.events(), code=162, min_wait_s=min_wait_s))


# =========================================================================================== the backend's process

def grew_at_most(samples: Sequence[Any], attribute: str, limit: float, label: str, unit: str = "") -> None:
    """A sampled attribute of the backend's process (``rss_mb``, ``open_fds``, ``threads``) grew by at most
    ``limit`` over the samples (``label`` and ``unit`` name it in the message)."""
    grown = timing.growth(samples, attribute)
    shown = f"{grown:.1f}" if isinstance(grown, float) and not grown.is_integer() else f"{grown:g}"
    require(grown <= limit, f"{label} grew by {shown}{unit} (> {limit:g}{unit}) over {len(samples)} samples")


def sockets_within_pool(world: World) -> None:
    """The backend never held more sockets to IB than its pool allows (and held at least one)."""
    peak, limit = max((s.ib_connections for s in world.sut.samples), default=0), world.settings.profile.pool_limit
    where = f"{world.targets.backend_ib_host}:{world.targets.backend_ib_port}"
    require(0 < peak <= limit, f"peak of {peak} backend sockets to IB at {where}; the pool allows {limit} (pool_limit)")


def output_clean(world: World, since: int, settle: bool = True) -> None:
    """Nothing the backend (or a service it needs) printed after ``since`` is a warning, an un-awaited coroutine or a
    traceback.

    Args:
        settle: wait (bounded) until the backend stops writing first (a coroutine is reported when it is
            collected, which can be a moment after the answer).
    """
    if settle:
        world.backend_output.settled()
    lines = world.backend_output.complaints_since(since)
    if lines:
        raise ComplaintFound(f"the backend printed {len(lines)} complaint line(s) ({world.backend_output.path}"
                             + "".join(f", {path}" for _, path in world.backend_output.services) + "):\n"
                             + _listed(lines, 12))


def closed_on_stop(world: World, shutdown: Shutdown, bound: Bound) -> None:
    """Every connection the backend held when told to stop was closed, as the gateway saw it, within ``bound``."""
    require(shutdown.held, "the backend held no IB connection when it was told to stop: nothing to judge")

    def closes() -> dict[int, float | None]:
        table = {int(c["conn_id"]): c.get("disconnected_mono") for c in world.history.connections()}
        return {conn_id: table.get(conn_id) for conn_id in shutdown.held}
    try:  # the proxy passes a close on to the gateway a moment after the backend's socket goes
        found = eventually(lambda: all(v is not None for v in closes().values()) and closes(),
                           world.settings.bound_of(2.0, "closes reaching the gateway"),
                           "the gateway sees the backend's connections closed", interval_s=0.1)
    except AssertionError:
        found = closes()
    late = {conn_id: (None if at is None else round(float(at) - shutdown.started_mono, 2))
            for conn_id, at in found.items() if at is None or float(at) - shutdown.started_mono > bound.seconds}
    require_within(not late, f"{len(late)} of {len(found)} connections were not closed within {bound} of the stop "
                      f"signal (seconds after it; None: still open): {late}; {shutdown.describe()}")


def stopped_by_itself(shutdown: Shutdown, bound: Bound) -> None:
    """The backend ended on the stop signal, within ``bound``, without being killed."""
    require_within(not shutdown.killed and shutdown.elapsed_s <= bound.seconds,
            f"expected the backend to stop by itself within {bound}: {shutdown.describe()}")


# =========================================================================================== patience

def within_patience(world: World, wait_s: float, why: str) -> str:
    """'' if a wait the target's own timings impose fits ``max_wait_s``; else the reason to skip."""
    limit_s = world.settings.profile.max_wait_s
    if wait_s <= limit_s:
        return ""
    return (f"{why} makes this scenario wait {wait_s:.0f} s > max_wait_s {limit_s:.0f} s "
            "(compress the target's timings, or raise -D max_wait_s)")


def idle_collection_bound(world: World) -> tuple[Bound, str]:
    """How long idle connections may take to close (idle timeout + two health intervals + 1 s), and the
    reason to skip if that is longer than ``max_wait_s`` ('' when it is not)."""
    idle_s = idle_timeout_s(world)
    wait_s = idle_s + 2 * health_interval_s(world) + 1.0
    return (world.settings.bound_of(wait_s, "the idle timeout plus two health intervals"),
            within_patience(world, wait_s, f"the target's idle timeout ({idle_s:g} s)"))


def idle_timeouts_delay(world: World, count: int) -> tuple[float, str]:
    """``count`` idle timeouts in seconds, and the reason to skip if waiting that long exceeds ``max_wait_s``."""
    idle_s = idle_timeout_s(world)
    wait_s = count * idle_s + world.settings.thresholds.api_response_s
    return count * idle_s, within_patience(world, wait_s, f"the target's idle timeout ({idle_s:g} s)")
