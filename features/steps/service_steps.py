"""Steps about the backend as a service: readiness, requests through the API, their outcomes."""

from behave import given, then, when

from support import claims, workloads


@given("the gateway answers")
def step_gateway_answers(context):
    w = context.world
    claims.gateway_answers(w, w.settings.bound("recovery"))


@given("the API answers")
def step_api_answers(context):
    w = context.world
    claims.api_answers(w, w.settings.bound("recovery"))


@given("a symbol discovery succeeds")
def step_discovery_works(context):
    w = context.world
    claims.discovery_succeeds(w, w.settings.bound("recovery"))


@given("the backend holds no IB connections")
def step_no_connections(context):
    w = context.world
    claims.holds_no_connections(w, w.settings.bound("recovery"))


@when("the backend cleans up its IB connections")
def step_cleanup(context):
    response = context.world.api.cleanup()
    context.world.seen.responses.append(response)
    claims.succeeded(response, "the cleanup")


@given('a client has discovered a symbol')
def step_discovered_one(context):
    claims.succeeded(context.world.api.discover(context.world.symbols.fresh()), "the discovery")


@given('a client discovers a symbol')
@when('a client discovers a symbol')
def step_discover_fresh(context):
    context.world.seen.responses.append(context.world.api.discover(context.world.symbols.fresh()))


@when("a client discovers the same symbol {count:d} times in a row")
def step_discover_repeatedly(context, count):
    symbol = context.world.symbols.fresh()
    context.world.seen.responses += workloads.discover_sequentially(context.world.api, [symbol] * count)


@given('a client discovers the symbol "{symbol}"')
@when('a client discovers the symbol "{symbol}"')
def step_discover(context, symbol):
    context.world.seen.responses.append(context.world.api.discover(symbol))


@when("a client discovers {count:d} symbols one after another")
@when("a client discovers {count:d} more symbols one after another")
def step_discover_sequence(context, count):
    w = context.world
    w.seen.responses += workloads.discover_sequentially(w.api, w.symbols.batch(count))


@when("{count:d} clients discover symbols at the same time")
def step_discover_concurrently(context, count):
    w = context.world
    w.seen.responses += workloads.discover_concurrently(w.api, w.symbols.batch(count))


@given("{count:d} clients have discovered symbols at the same time")
def step_discovered_concurrently(context, count):
    w = context.world
    claims.every_request_succeeded(workloads.discover_concurrently(w.api, w.symbols.batch(count)), "setup discovery")


@then("the request succeeds")
def step_request_succeeds(context):
    claims.succeeded(context.world.seen.last_response)


@then("every request succeeded")
def step_every_request_succeeded(context):
    claims.every_request_succeeded(context.world.seen.acted)


@then("the request succeeds within {bound:Bound} plus {extra_s:d} seconds")
def step_succeeds_within(context, bound, extra_s):
    w = context.world
    claims.succeeded_within(w.seen.last_response, w.settings.bound(bound, extra_s))


@then("the request fails within {bound:Bound} instead of hanging")
def step_fails_fast(context, bound):
    w = context.world
    claims.failed_within(w.seen.last_response, w.settings.bound(bound))


@then("the request fails with a clear IB error within {bound:Bound}")
def step_fails_clearly(context, bound):
    w = context.world
    claims.failed_with_ib_error(w.seen.last_response, w.settings.bound(bound))


@then("the backend reports IB unhealthy within {bound:Bound}")
def step_reports_unhealthy(context, bound):
    w = context.world
    claims.reports_unhealthy(w, w.settings.bound(bound))


@then("the backend reports IB healthy")
def step_reports_healthy(context):
    w = context.world
    claims.reports_healthy(w, w.settings.bound("API response"))


@then("the answer says IB is healthy")
def step_answer_healthy(context):
    claims.says_healthy(context.world.seen.last_response)


@then("a client can discover a symbol again within {bound:Bound}")
def step_recovers(context, bound):
    w = context.world
    claims.discovery_succeeds(w, w.settings.bound(bound))


@then("the cleanup reports as many closed connections as the gateway saw close")
def step_cleanup_reports(context):
    claims.cleanup_count_matches_gateway(context.world, context.world.seen.last_response)
