"""Steps about load and stress: bursts, cycles, mixed workloads and their outcome."""

from behave import then, when

from support import checkers, workloads


@when("clients discover a symbol and clean up the pool {cycles:d} times in a row")
def step_cycles(context, cycles):
    context.world.seen.responses += workloads.discover_and_cleanup(context.world.api, cycles)


@when("{count:d} mixed requests arrive at the same time")
def step_mixed_burst(context, count):
    context.world.seen.responses += workloads.burst(context.world.api, count)


@when("{bursts:d} bursts of {size:d} concurrent symbol discoveries run back to back")
def step_bursts(context, bursts, size):
    for _ in range(bursts):
        context.world.seen.responses += workloads.discover_concurrently(context.world.api, size)


@then("at least {percent:d} percent of the requests succeeded")
def step_success_rate(context, percent):
    summary = checkers.summarise_load(context.world.seen.responses)
    assert summary.total and summary.success_rate_pct >= percent, \
        f"{summary.success_rate_pct:.1f} % of {summary.total} succeeded (< {percent} %):\n" + "\n".join(summary.failures[:10])


@then("the slowest {percent:d} percent of the requests took at most {seconds:d} seconds")
def step_latency_tail(context, percent, seconds):
    summary, bound_s = checkers.summarise_load(context.world.seen.responses), context.world.settings.scaled(seconds)
    assert summary.p95_s <= bound_s, f"p{100 - percent} = {summary.p95_s:.2f} s > {bound_s:.1f} s (p50 {summary.p50_s:.2f} s, max {summary.max_s:.2f} s)"
