"""Steps of the nemesis: one seeded fault schedule run, then one invariant family judged per step."""

from behave import given, then

from support.nemesis import spec


@given("the nemesis has run the fault schedule of seed {seed:d} for {minutes:g} minutes")
def step_nemesis_ran(context, seed, minutes):
    context.world.seen.values["nemesis"] = spec.run_once(context.world, seed, minutes)


@then("every request of the run was answered within its bound")
def step_bounds(context):
    spec.holds(context.world.seen.values["nemesis"], "bounds")


@then("the score fell below 75 in every outage and was back after every heal")
def step_score(context):
    spec.holds(context.world.seen.values["nemesis"], "score")


@then("the backend never held more IB connections at once than its pool allows")
def step_pool_limit(context):
    spec.holds(context.world.seen.values["nemesis"], "pool_limit")


@then("no client ID stayed held after any cleanup")
def step_cleanup(context):
    spec.holds(context.world.seen.values["nemesis"], "cleanup")


@then("every cached bar is a bar IB served")
def step_cached_bars(context):
    spec.holds(context.world.seen.values["nemesis"], "cached_bars")


@then("no CLI transcript or backend output shows a warning, a traceback or an un-awaited coroutine")
def step_output(context):
    spec.holds(context.world.seen.values["nemesis"], "output")


@then("the backend served again within the recovery bound after the last heal")
def step_recovery(context):
    spec.holds(context.world.seen.values["nemesis"], "recovery")
