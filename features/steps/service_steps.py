"""Steps about the backend as a service: readiness, requests through the API, their outcomes."""

from behave import given, then, when

from support import claims, workloads


@given("the gateway answers")
def step_gateway_answers(context):
    w = context.world
    claims.gateway_answers(w, w.settings.thresholds.recovery_s)


@given("the API answers")
def step_api_answers(context):
    w = context.world
    claims.api_answers(w, w.settings.thresholds.recovery_s)


@given("a symbol discovery succeeds")
def step_discovery_works(context):
    w = context.world
    claims.discovery_succeeds(w, w.settings.thresholds.recovery_s)


@given("the backend holds no IB connections")
def step_no_connections(context):
    w = context.world
    claims.holds_no_connections(w, w.settings.thresholds.recovery_s)


@when("the backend cleans up its IB connections")
def step_cleanup(context):
    response = context.world.api.cleanup()
    context.world.seen.responses.append(response)
    assert response.ok, f"cleanup failed: {response.describe()}"


@given('a client has discovered a symbol')
def step_discovered_one(context):
    response = context.world.api.discover(context.world.symbols.fresh())
    assert response.ok, f"discovery failed: {response.describe()}"


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
    failed = [r.describe() for r in workloads.discover_concurrently(w.api, w.symbols.batch(count)) if not r.ok]
    assert not failed, "setup discoveries failed:\n" + "\n".join(failed)


@then("the request succeeds")
def step_request_succeeds(context):
    response = context.world.seen.last_response
    assert response.ok, f"expected success: {response.describe()}"


@then("every request succeeded")
def step_every_request_succeeded(context):
    failed = [r.describe() for r in context.world.seen.acted if not r.ok]
    assert context.world.seen.acted and not failed, f"{len(failed)} request(s) failed:\n" + "\n".join(failed[:10])


@then("the request succeeds within the validation bound plus {extra_s:d} seconds")
def step_succeeds_within_validation(context, extra_s):
    response, w = context.world.seen.last_response, context.world
    bound_s = w.settings.scaled(w.settings.thresholds.validation_s + extra_s)
    assert response.ok and response.elapsed_s <= bound_s, f"expected success within {bound_s:.1f} s: {response.describe()}"


@then("the request fails within the silent-detection bound instead of hanging")
def step_fails_fast(context):
    w = context.world
    claims.failed_within(w.seen.last_response, w.settings.bound_s("silent_detection_s"))


@then("the request fails with a clear IB error within the silent-detection bound")
def step_fails_clearly(context):
    w = context.world
    response = claims.failed_within(w.seen.last_response, w.settings.bound_s("silent_detection_s"))
    assert response.error_code.startswith("IB-") and response.error_message, f"expected an IB- error with a message: {response.describe()}"


@then("the backend reports IB unhealthy within the silent-detection bound")
def step_reports_unhealthy(context):
    w = context.world
    claims.reports_unhealthy(w, w.settings.thresholds.silent_detection_s)


@then("the backend reports IB healthy")
def step_reports_healthy(context):
    w = context.world
    claims.reports_healthy(w, w.settings.thresholds.api_response_s)


@then("the answer says IB is healthy")
def step_answer_healthy(context):
    claims.says_healthy(context.world.seen.last_response)


@then("a client can discover a symbol again within the recovery bound")
def step_recovers(context):
    w = context.world
    claims.discovery_succeeds(w, w.settings.thresholds.recovery_s)


@then("the cleanup reports as many closed connections as the gateway saw close")
def step_cleanup_reports(context):
    w = context.world
    response = w.seen.last_response
    claims.closed_count_matches_gateway(w, (response.data or {}).get("connections_closed"), response.started_mono,
                                        response.finished_mono, response.describe())
