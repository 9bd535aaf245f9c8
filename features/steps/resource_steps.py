"""Steps about the backend's process: memory, descriptors, threads and sockets over time."""

from behave import given, then, when

from support import claims, evidence, troubles, workloads


@given("the backend's resources are being sampled")
def step_sampling(context):
    context.world.sut.sample()
    context.world.sut.start_sampling(interval_s=0.2)


@when("clients make {count:d} mixed requests")
def step_mixed(context, count):
    w = context.world
    w.seen.responses += workloads.run_mixed(w.api, count, w.settings.symbols, lacks=w.settings.lacks)
    w.sut.sample()


@when("clients make {count:d} mixed requests while the gateway goes silent every {every:d} requests")
def step_mixed_with_faults(context, count, every):
    w = context.world

    def blip(_n):
        troubles.silent_blip(w.faults, lambda: w.api.ib_health().ok, w.settings.bound("silent-detection"),
                             w.settings.bound("recovery"))
    w.seen.responses += workloads.run_mixed(w.api, count, w.settings.symbols, every=every, between=blip,
                                            lacks=w.settings.lacks)
    w.sut.sample()


@then("the backend's memory grew by at most {limit_mb:d} MB")
def step_memory(context, limit_mb):
    w = context.world
    samples = w.sut.stop_sampling()
    evidence.record_limit(w.seen.claim_limits, "rss_mb", limit_mb)  # drawn on the resource plot
    claims.grew_at_most(samples, "rss_mb", limit_mb, "RSS", " MB")


@then("the backend's open file descriptors grew by at most {limit:d}")
def step_fds(context, limit):
    w = context.world
    evidence.record_limit(w.seen.claim_limits, "open_fds", limit)
    claims.grew_at_most(w.sut.samples, "open_fds", limit, "open fds")


@then("the backend's threads grew by at most {limit:d}")
def step_threads(context, limit):
    w = context.world
    evidence.record_limit(w.seen.claim_limits, "threads", limit)
    claims.grew_at_most(w.sut.samples, "threads", limit, "threads")


@then("the backend never held more IB connections than its pool allows")
def step_ib_sockets(context):
    w = context.world
    evidence.record_limit(w.seen.claim_limits, "ib_connections", w.settings.profile.pool_limit)
    claims.sockets_within_pool(w)
