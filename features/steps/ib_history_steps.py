"""Steps that judge what IB saw: validation before handoff, connection sharing, pool limits, closes."""

from behave import then, when

from support import checkers, claims


@then("every connection was validated with a server-time request before it was used")
def step_handoffs_validated(context):
    w = context.world
    verdict = checkers.handoffs_validated(w.history.events(), w.seen.responses)
    assert verdict, verdict.message


@then("no connection that passed its validation was thrown away")
def step_validated_kept(context):
    w = context.world
    verdict = checkers.validated_connections_kept(w.history.events(), w.seen.acted)
    assert verdict, verdict.message


@then("no request was sent on a connection that failed validation")
def step_failed_never_used(context):
    verdict = checkers.failed_validations_never_used(context.world.history.events())
    assert verdict, verdict.message


@then("no connection carried two requests at the same moment")
def step_never_shared(context):
    verdict = checkers.connections_never_shared(context.world.history.events())
    assert verdict, verdict.message


@then("the gateway never saw more backend connections at once than the pool allows")
def step_pool_limit(context):
    w = context.world
    peak, limit = checkers.peak_concurrent(w.history.backend_connections(w.seen.started_mono)), w.settings.profile.pool_limit
    assert 0 < peak <= limit, f"peak of {peak} backend connections at once; the pool allows {limit} (pool_limit)"


@when("no client uses IB afterwards")
def step_idle(context):
    context.world.seen.values["last_use_mono"] = context.world.seen.started_mono if not context.world.api.transcript \
        else context.world.api.transcript[-1].finished_mono


@then("the gateway sees every backend connection close within the idle timeout plus two health intervals")
def step_idle_closed(context):
    w = context.world
    bound_s, reason = claims.idle_collection_bound(w)
    if reason:
        return context.scenario.skip(reason)
    claims.backend_connections_closed(w, bound_s)


@then("the gateway sees every backend connection close within {seconds:d} seconds")
def step_all_closed(context, seconds):
    claims.backend_connections_closed(context.world, seconds)


@then("no backend connection was closed before the idle timeout")
def step_not_closed_early(context):
    w = context.world
    idle_s = claims.idle_timeout_s(w)
    used = claims.used_in_scenario(w)  # one an earlier scenario left idle may rightly close sooner
    early = [c for c in w.history.backend_connections(w.seen.started_mono)
             if c.get("disconnected_mono") and int(c.get("conn_id") or 0) in used
             and c["disconnected_mono"] - w.seen.values["last_use_mono"] < 0.9 * idle_s]
    assert not early, f"closed less than {idle_s} s after the last use: {early}"


@then("a historical-data request was in flight at IB for longer than the idle timeout")
def step_in_flight(context):
    w = context.world
    idle_s = claims.idle_timeout_s(w)
    verdict = checkers.in_flight_longer_than(w.history.events(), "reqHistoricalData", idle_s)
    assert verdict, verdict.message


@then("no backend connection closed while the request was running")
def step_busy_not_closed(context):
    w, load = context.world, context.world.seen.last_response
    closed = [c for c in w.history.backend_connections(load.started_mono)
              if c.get("disconnected_mono") and load.started_mono < c["disconnected_mono"] < load.finished_mono]
    assert not closed, f"connections closed during the {load.elapsed_s:.1f} s request: {closed}"


@then("within two health intervals the pool holds no connections the gateway dropped")
def step_dead_removed(context):
    w = context.world
    interval_s = claims.health_interval_s(w)
    claims.pool_holds_only_live_connections(w, 2 * interval_s + 1.0)
