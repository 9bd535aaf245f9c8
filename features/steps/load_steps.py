"""Steps about load and stress: bursts, cycles, mixed workloads and their outcome."""

from behave import then, when

from support import checkers, workloads


@when("clients discover a symbol and clean up the pool {cycles:d} times in a row")
def step_cycles(context, cycles):
    w = context.world
    w.seen.responses += workloads.discover_and_cleanup(w.api, w.symbols.batch(cycles))


@when("{count:d} mixed requests arrive at the same time")
def step_mixed_burst(context, count):
    w = context.world
    w.seen.responses += workloads.burst(w.api, count, w.symbols.batch(count))


@when("{bursts:d} bursts of {size:d} concurrent symbol discoveries run back to back")
def step_bursts(context, bursts, size):
    w = context.world
    for _ in range(bursts):
        w.seen.responses += workloads.discover_concurrently(w.api, w.symbols.batch(size))


@then("at least {percent:d} percent of the requests succeeded")
def step_success_rate(context, percent):
    summary = checkers.summarise_load(context.world.seen.acted)
    assert summary.total and summary.success_rate_pct >= percent, \
        f"{summary.success_rate_pct:.1f} % of {summary.total} succeeded (< {percent} %):\n" + "\n".join(summary.failures[:10])


@then("the slowest {percent:d} percent of the requests took at most the API response bound")
def step_latency_tail(context, percent):
    summary, bound_s = checkers.summarise_load(context.world.seen.acted), context.world.settings.bound_s("api_response_s")
    tail_s = checkers.percentile([r.elapsed_s for r in context.world.seen.acted], 100 - percent)
    assert tail_s <= bound_s, f"p{100 - percent} = {tail_s:.2f} s > {bound_s:.1f} s (p50 {summary.p50_s:.2f} s, max {summary.max_s:.2f} s)"


@then("every answer came within the API response bound")
def step_all_in_time(context):
    w = context.world
    bound_s = w.settings.bound_s("api_response_s")
    slow = [r.describe() for r in w.seen.acted if r.timed_out or r.elapsed_s > bound_s]
    assert w.seen.acted and not slow, f"{len(slow)} answer(s) slower than {bound_s:.1f} s:\n" + "\n".join(slow[:10])


@then("every answer was a success or a clear IB error")
def step_all_clear(context):
    unclear = [r.describe() for r in context.world.seen.acted
               if not r.ok and not (r.status == 503 and r.error_code.startswith("IB-") and r.error_message)]
    assert not unclear, f"{len(unclear)} answer(s) neither a success nor a 503 with an IB- code:\n" + "\n".join(unclear[:10])
