"""Steps about the data pipeline: loads from IB, operations, and the bars the backend cached."""

from behave import then, when

from support import bars, claims, checkers


@when('a client loads "{symbol}" {kind} bars from IB')
def step_load(context, symbol, kind):
    context.world.seen.responses.append(context.world.api.load_data(symbol, **bars.load_request(kind)))


@when('a client loads "{symbol}" {kind} bars from IB twice in a row')
def step_load_twice(context, symbol, kind):
    for _ in range(2):
        context.world.seen.responses.append(context.world.api.load_data(symbol, **bars.load_request(kind)))


@when('a client starts an asynchronous load of "{symbol}" {kind} bars')
def step_load_async(context, symbol, kind):
    response = context.world.api.load_data(symbol, async_mode=True, **bars.load_request(kind))
    context.world.seen.responses.append(response)
    assert response.ok and (response.data or {}).get("operation_id"), f"no operation started: {response.describe()}"
    context.world.seen.values["operation_id"] = response.data["operation_id"]


@then("the data load succeeds")
@then("both data loads succeed")
def step_load_succeeds(context):
    loads = [r for r in context.world.seen.responses if r.path == "/data/load"]
    failed = [r.describe() for r in loads if not r.ok or (r.data or {}).get("status") != "success"]
    assert loads and not failed, "data loads not successful:\n" + "\n".join(failed)


@then("the data load fails with a clear message within {seconds:d} seconds")
def step_load_fails(context, seconds):
    response = context.world.seen.last_response
    claims.load_failed_clearly(response, context.world.settings.scaled(seconds))


@then('the cached "{symbol}" {kind} bars are exactly the bars IB serves for the same request')
def step_cache_exact(context, symbol, kind):
    w = context.world
    verdict = claims.cache_matches_ib(w, symbol, kind, complete=True)
    assert verdict, verdict.message


@then('every cached "{symbol}" {kind} bar is a bar IB really serves')
def step_cache_genuine(context, symbol, kind):
    verdict = claims.cache_matches_ib(context.world, symbol, kind, complete=False)
    assert verdict, verdict.message


@then("the load reported as many IB requests as the gateway received")
def step_requests_counted(context):
    w = context.world
    load = w.seen.last_response
    received = sum(1 for e in w.history.events() if e.kind == "request" and e.type == "reqHistoricalData"
                   and load.started_mono <= e.mono <= load.finished_mono)
    reported = (load.data or {}).get("ib_requests_made")
    assert received > 0 and reported == received, f"the load reported {reported} IB requests; the gateway received {received}"


@then("the operation completes within {seconds:d} seconds")
def step_operation_completes(context, seconds):
    w = context.world
    final = claims.operation_state(w.api, w.seen.values["operation_id"], ("completed", "failed", "cancelled"), seconds, w.seen.responses)
    assert final.data["status"] == "completed", f"the operation ended {final.data['status']}: {final.describe()}"


@then("the operation ends within {seconds:d} seconds")
def step_operation_ends(context, seconds):
    w = context.world
    claims.operation_state(w.api, w.seen.values["operation_id"], ("completed", "failed", "cancelled"), seconds, w.seen.responses)


@then("the operation reported its progress")
def step_operation_progress(context):
    polls = [r.data for r in context.world.seen.responses if r.path.startswith("/operations/") and r.ok]
    percentages = [float((p.get("progress") or {}).get("percentage") or 0) for p in polls]
    assert percentages and max(percentages) > 0, f"no progress reported in {len(polls)} polls: {percentages}"


@then('the cached "{symbol}" {kind} bars hold as many bars as the operation fetched')
@then("the operation reports exactly the bars it cached")
def step_operation_bars(context, symbol=None, kind=None):
    w = context.world
    verdict = claims.operation_bars_cached(w, w.seen.values["operation_id"])
    assert verdict, verdict.message


@then("the gateway reported a pacing violation to the backend")
def step_pacing_reported(context):
    codes = [e.code for e in context.world.history.events() if e.kind == "error"]
    assert 162 in codes, f"no error 162 sent to the backend; IB errors seen: {codes}"


@then("the backend retried the paced request after waiting")
def step_backoff(context):
    verdict = checkers.retried_after_backoff(context.world.history.events(), code=162, min_wait_s=1.0)
    assert verdict, verdict.message
