"""Steps that judge what IB saw: validation before handoff, connection sharing, pool limits, closes."""

from behave import then, when

from support import claims


@then("every connection was validated with a server-time request before it was used")
def step_handoffs_validated(context):
    claims.handoffs_validated(context.world)


@then("no connection that passed its validation was thrown away")
def step_validated_kept(context):
    claims.validated_connections_kept(context.world)


@then("no request was sent on a connection that failed validation")
def step_failed_never_used(context):
    claims.failed_validations_never_used(context.world)


@then("no connection carried two requests at the same moment")
def step_never_shared(context):
    claims.connections_never_shared(context.world)


@then("the gateway never saw more backend connections at once than the pool allows")
def step_pool_limit(context):
    claims.pool_limit_respected(context.world)


@when("no client uses IB afterwards")
def step_idle(context):
    w = context.world
    w.seen.last_use_mono = w.api.transcript[-1].finished_mono if w.api.transcript else w.seen.started_mono


@then("the gateway sees every backend connection close within the idle timeout plus two health intervals")
def step_idle_closed(context):
    w = context.world
    bound, reason = claims.idle_collection_bound(w)
    if reason:
        return context.scenario.skip(reason)
    claims.backend_connections_closed(w, bound)


@then("the gateway sees every backend connection close within {seconds:d} seconds")
def step_all_closed(context, seconds):
    w = context.world
    claims.backend_connections_closed(w, w.settings.bound_of(seconds, f"{seconds} s"))


@then("no backend connection was closed before the idle timeout")
def step_not_closed_early(context):
    claims.not_closed_before_idle_timeout(context.world)


@then("a historical-data request was in flight at IB for longer than the idle timeout")
def step_in_flight(context):
    claims.in_flight_longer_than_idle_timeout(context.world)


@then("no backend connection closed while the request was running")
def step_busy_not_closed(context):
    claims.none_closed_during(context.world, context.world.seen.last_response)


@then("within two health intervals the pool holds no connections the gateway dropped")
def step_dead_removed(context):
    w = context.world
    claims.pool_holds_only_live_connections(w, claims.two_health_intervals(w))
