"""Steps about the backend as a process: what it prints, and how it stops."""

from behave import given, then, when

from support import claims


@given("the backend holds an IB connection the gateway sees")
def step_holds_connection(context):
    w = context.world
    claims.holds_a_connection(w, w.settings.bound("recovery"))


@when("the backend is told to stop")
def step_stop(context):
    context.world.seen.shutdown = context.world.stop_backend()


@then("the backend printed no warning, coroutine complaint or traceback meanwhile")
def step_output_clean(context):
    claims.output_clean(context.world, context.world.seen.output_from)


@then("the backend printed no warning, coroutine complaint or traceback while it stopped")
def step_output_clean_at_stop(context):
    shutdown = context.world.seen.shutdown
    claims.output_clean(context.world, shutdown.output_from, settle=False)


@then("the gateway saw every connection the backend held close within {bound:Bound}")
def step_closed_on_stop(context, bound):
    w = context.world
    claims.closed_on_stop(w, w.seen.shutdown, w.settings.bound(bound))


@then("the backend stopped by itself within {bound:Bound}")
def step_stopped(context, bound):
    w = context.world
    claims.stopped_by_itself(w.seen.shutdown, w.settings.bound(bound))
