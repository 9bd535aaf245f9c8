"""Steps about the resilience report (/api/v1/ib/resilience) and its score."""


from behave import given, then, when

from support import claims, contract


@then("the resilience score is at least {minimum:d}")
def step_score_at_least(context, minimum):
    value = contract.score(context.world.seen.last_response)
    assert value >= minimum, f"score {value} < {minimum}: {context.world.seen.last_response.describe()}"


@then("every resilience phase reports working")
def step_phases_working(context):
    data = context.world.seen.last_response.data or {}
    broken = {phase: (data.get(phase) or {}).get("status") for phase in contract.PHASES
              if (data.get(phase) or {}).get("status") != "working"}
    assert not broken, f"phases not working: {broken}"


@then("the score is one the contract allows")
def step_score_allowed(context):
    value = contract.score(context.world.seen.last_response)
    assert value in contract.ALLOWED_SCORES, f"score {value} is not a sum the contract allows {contract.ALLOWED_SCORES}"


@then("the report's timestamp is the current UTC time")
def step_timestamp_current(context):
    claims.timestamp_is_now(context.world.seen.last_response, drift_max_s=5.0)


@then("the report states an idle timeout of {seconds:d} seconds")
def step_idle_timeout(context, seconds):
    value = claims.resilience_value(context.world, "phase_2_garbage_collection", "max_idle_time_seconds")
    assert float(value) == float(seconds), f"idle timeout {value} s, expected {seconds} s"


@then("the report states a health-check interval of {seconds:d} seconds")
def step_health_interval(context, seconds):
    value = claims.resilience_value(context.world, "phase_2_garbage_collection", "health_check_interval")
    assert float(value) == float(seconds), f"health-check interval {value} s, expected {seconds} s"


@then("the resilience report shows garbage collection working")
def step_gc_working(context):
    status = claims.resilience_value(context.world, "phase_2_garbage_collection", "status")
    assert status == "working", f"garbage collection phase is {status!r}"


@then("the resilience report lists the preferred client ID in use")
def step_preferred_in_use(context):
    w = context.world
    in_use = claims.resilience_value(w, "phase_3_client_id_preference", "client_ids_in_use")
    assert w.settings.preferred_client_id in in_use, f"client IDs in use {in_use}, expected {w.settings.preferred_client_id} among them"


@given("the resilience score falls below {limit:d} within the silent-detection bound")
@when("the resilience score falls below {limit:d} within the silent-detection bound")
@then("the resilience score falls below {limit:d} within the silent-detection bound")
def step_score_falls(context, limit):
    w = context.world
    claims.score_matches(w, lambda s: s < limit, f"below {limit}", w.settings.thresholds.silent_detection_s)


@then("the resilience score is at least {minimum:d} again within the recovery bound")
def step_score_recovers(context, minimum):
    w = context.world
    claims.score_matches(w, lambda s: s >= minimum, f"at least {minimum}", w.settings.thresholds.recovery_s)


@then("every resilience report during the trouble came within the API response bound")
def step_reports_in_time(context):
    w = context.world
    bound_s = w.settings.bound_s("api_response_s")
    slow = [r.describe() for r in w.seen.responses if r.path == "/ib/resilience" and (r.timed_out or r.elapsed_s > bound_s)]
    assert not slow, f"resilience reports slower than {bound_s:.1f} s:\n" + "\n".join(slow)
