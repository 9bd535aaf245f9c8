"""Steps of the nemesis: one seeded fault schedule run, then its verdicts claimed, one family per step."""

from behave import then, when

from support.nemesis import spec


@when("the nemesis runs the fault schedule of seed {seed:d} for {minutes:g} minutes")
def step_nemesis_ran(context, seed, minutes):
    """Run once per behave process (the feature is @together); every scenario judges the same history."""
    context.world.seen.nemesis = spec.run_once(context.world, seed, minutes, getattr(context, "observer", None))


@then("every request of the run was answered within its bound")
def step_bounds(context):
    spec.holds(context.world.seen.nemesis, "bounds")


@then("the score fell below healthy in every outage and was healthy again after every heal")
def step_score(context):
    spec.holds(context.world.seen.nemesis, "reports_fall", "reports_recover")


@then("the backend never held more IB connections at once than its pool allows")
def step_pool_limit(context):
    spec.holds(context.world.seen.nemesis, "pool_limit")


@then("no client ID stayed held after any cleanup")
def step_cleanup(context):
    spec.holds(context.world.seen.nemesis, "cleanup")


@then("every cached bar is a bar IB served")
def step_cached_bars(context):
    spec.holds(context.world.seen.nemesis, "cached_bars")


@then("no CLI transcript or backend output shows a warning, a traceback or an un-awaited coroutine")
def step_output(context):
    spec.holds(context.world.seen.nemesis, "output")


@then("the backend served again within the recovery bound after the last heal")
def step_recovery(context):
    spec.holds(context.world.seen.nemesis, "recovery")
