"""Steps about IB client IDs: squatters, 326 refusals, which ID the gateway accepted."""

from behave import given, then, when

from support import claims


@given("another application holds {count:d} client ID(s) starting at the preferred one")
def step_squat(context, count):
    w = context.world
    for client_id in range(w.settings.preferred_client_id, w.settings.preferred_client_id + count):
        w.ib.squat(client_id)


@given("another application holds every client ID the backend may use")
def step_squat_all(context):
    w = context.world
    low, high = claims.client_id_range(w)
    if high - low + 1 > 30:
        context.scenario.skip(f"the backend may use {high - low + 1} client IDs; IB Gateway accepts only 32 clients")
        return
    for client_id in range(low, high + 1):
        w.ib.squat(client_id)


@when("the other application lets its client IDs go")
def step_release(context):
    context.world.ib.release_all()


@then("the gateway accepted the backend with the preferred client ID")
def step_accepted_preferred(context):
    w = context.world
    claims.accepted_first(w, w.settings.preferred_client_id)


@then("the gateway accepted the backend with the preferred client ID plus {offset:d}")
def step_accepted_offset(context, offset):
    w = context.world
    claims.accepted_first(w, w.settings.preferred_client_id + offset)


@then("the gateway last accepted the backend with the preferred client ID")
def step_last_accepted(context):
    w = context.world
    claims.accepted_last(w, w.settings.preferred_client_id)


@then("the gateway refused the backend {count:d} time(s) with error 326")
def step_refused(context, count):
    w = context.world
    claims.refused_in_order(w, w.settings.preferred_client_id, count)


@given("the pool has let go of the dropped connection")
def step_pool_let_go(context):
    w = context.world
    claims.client_id_released(w, w.settings.preferred_client_id)
