"""Steps about the backend's process: memory, descriptors, threads and sockets over time."""

from behave import given, then, when

from support import checkers, evidence, troubles, workloads


@given("the backend's resources are being sampled")
def step_sampling(context):
    context.world.sut.sample()
    context.world.sut.start_sampling(interval_s=0.2)


@when("clients make {count:d} mixed requests")
def step_mixed(context, count):
    w = context.world
    w.seen.responses += workloads.run_mixed(w.api, count, w.settings.symbols)
    w.sut.sample()


@when("clients make {count:d} mixed requests while the gateway goes silent every {every:d} requests")
def step_mixed_with_faults(context, count, every):
    w = context.world
    blip = lambda n: troubles.silent_blip(w.faults, lambda: w.api.ib_health().ok, w.settings.thresholds.silent_detection_s, w.settings.thresholds.recovery_s)
    w.seen.responses += workloads.run_mixed(w.api, count, w.settings.symbols, every=every, between=blip)
    w.sut.sample()


@then("the backend's memory grew by at most {limit_mb:d} MB")
def step_memory(context, limit_mb):
    samples = context.world.sut.stop_sampling()
    evidence.record_limit(context.world.seen.values, "rss_mb", limit_mb)  # drawn on the resource plot
    grown_mb = checkers.growth(samples, "rss_mb")
    assert grown_mb <= limit_mb, f"RSS grew by {grown_mb:.1f} MB (> {limit_mb} MB) over {len(samples)} samples"


@then("the backend's open file descriptors grew by at most {limit:d}")
def step_fds(context, limit):
    evidence.record_limit(context.world.seen.values, "open_fds", limit)
    grown = checkers.growth(context.world.sut.samples, "open_fds")
    assert grown <= limit, f"open fds grew by {grown} (> {limit}) over {len(context.world.sut.samples)} samples"


@then("the backend's threads grew by at most {limit:d}")
def step_threads(context, limit):
    evidence.record_limit(context.world.seen.values, "threads", limit)
    grown = checkers.growth(context.world.sut.samples, "threads")
    assert grown <= limit, f"threads grew by {grown} (> {limit}) over {len(context.world.sut.samples)} samples"


@then("the backend never held more IB connections than its pool allows")
def step_ib_sockets(context):
    w = context.world
    peak, limit = max(s.ib_connections for s in w.sut.samples), w.settings.profile.pool_limit
    evidence.record_limit(w.seen.values, "ib_connections", limit)
    where = f"{w.targets.backend_ib_host}:{w.targets.backend_ib_port}"
    assert 0 < peak <= limit, f"peak of {peak} backend sockets to IB at {where}; the pool allows {limit} (pool_limit)"
