"""Steps about the resilience report (/api/v1/ib/resilience) and its score."""

from behave import given, then

from support import claims


@then("the resilience score is healthy")
def step_score_healthy(context):
    w = context.world
    claims.score_at_least(w.seen.last_response, w.settings.thresholds.score_min)


@then("every resilience phase reports working")
def step_phases_working(context):
    claims.phases_working(context.world.seen.last_response)


@then("the score is one the contract allows")
def step_score_allowed(context):
    claims.score_allowed(context.world.seen.last_response)


@then("the report's timestamp is the current UTC time")
def step_timestamp_current(context):
    claims.timestamp_is_now(context.world.seen.last_response, drift_max_s=5.0)


@then("the report states an idle timeout of {seconds:d} seconds")
def step_idle_timeout(context, seconds):
    claims.states_idle_timeout(context.world, seconds)


@then("the report states a health-check interval of {seconds:d} seconds")
def step_health_interval(context, seconds):
    claims.states_health_interval(context.world, seconds)


@then("the resilience report shows garbage collection working")
def step_gc_working(context):
    claims.garbage_collection_working(context.world)


@then("the resilience report lists the preferred client ID in use")
def step_preferred_in_use(context):
    claims.preferred_id_listed(context.world)


@given("the resilience score falls below healthy within {bound:Bound}")
@then("the resilience score falls below healthy within {bound:Bound}")
def step_score_falls(context, bound):
    w = context.world
    healthy = w.settings.thresholds.score_min
    claims.score_falls(w, healthy, w.settings.bound(bound))


@then("the resilience score is healthy again within {bound:Bound}")
def step_score_recovers(context, bound):
    w = context.world
    healthy = w.settings.thresholds.score_min
    claims.score_recovers(w, healthy, w.settings.bound(bound))


@then("every resilience report during the trouble came within {bound:Bound}")
def step_reports_in_time(context, bound):
    claims.reports_in_time(context.world, context.world.settings.bound(bound))
