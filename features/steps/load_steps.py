"""Steps about load and stress: bursts, cycles, mixed workloads and their outcome."""

from behave import then, when

from support import claims, workloads


@when("clients discover a symbol and clean up the pool {cycles:d} times in a row")
def step_cycles(context, cycles):
    w = context.world
    w.seen.responses += workloads.discover_and_cleanup(w.api, w.symbols.batch(cycles))


@when("{count:d} mixed requests arrive at the same time")
def step_mixed_burst(context, count):
    w = context.world
    w.seen.responses += workloads.burst(w.api, count, w.symbols.batch(count), w.settings.lacks)


@when("{bursts:d} bursts of {size:d} concurrent symbol discoveries run back to back")
def step_bursts(context, bursts, size):
    w = context.world
    for _ in range(bursts):
        w.seen.responses += workloads.discover_concurrently(w.api, w.symbols.batch(size))


@then("the requests met the required success rate")
def step_success_rate(context):
    w = context.world
    claims.success_rate_at_least(w.seen.acted, w.settings.thresholds.success_rate_min_pct)


@then("the slowest {percent:d} percent of the requests took at most {bound:Bound}")
def step_latency_tail(context, percent, bound):
    w = context.world
    claims.slowest_within(w.seen.acted, percent, w.settings.bound(bound))


@then("every answer came within {bound:Bound}")
def step_all_in_time(context, bound):
    w = context.world
    claims.all_within(w.seen.acted, w.settings.bound(bound))


@then("every answer was a success or a clear IB error")
def step_all_clear(context):
    claims.success_or_clear_ib_error(context.world.seen.acted)
