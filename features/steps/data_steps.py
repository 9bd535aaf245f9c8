"""Steps about the data pipeline: loads from IB, operations, and the bars the backend cached."""

from behave import given, then, when

from support import bars, checkers, claims, workloads


@when('a client loads "{symbol}" {kind} bars from IB')
def step_load(context, symbol, kind):
    context.world.seen.responses.append(context.world.api.load_data(symbol, **bars.load_request(kind)))


@given('a client has loaded "{symbol}" {kind} bars from IB')
def step_loaded(context, symbol, kind):
    response = context.world.api.load_data(symbol, **bars.load_request(kind))
    assert response.ok and (response.data or {}).get("status") == "success", f"the load failed: {response.describe()}"


@when('a client loads "{symbol}" {kind} bars from IB while another client reads the service health')
def step_load_while_probing(context, symbol, kind):
    w = context.world
    load, probes = workloads.load_while_probing(w.api, symbol, bars.load_request(kind), w.settings.bound_s("api_response_s"))
    w.seen.responses += [*probes, load]


@then("every service-health answer during the load came within the API response bound")
def step_probes_in_time(context):
    w = context.world
    bound_s, load = w.settings.bound_s("api_response_s"), w.seen.last_response
    # The first read starts just before the load (see workloads.load_while_probing), the rest while it runs.
    probes = [r for r in w.seen.responses if r.path == "/health" and load.started_mono - 1.0 <= r.started_mono <= load.finished_mono]
    slow = [r.describe() for r in probes if r.timed_out or r.status != 200 or r.elapsed_s > bound_s]
    assert probes and not slow, f"{len(slow)} of {len(probes)} health answers slower than {bound_s:.1f} s or failed:\n" + "\n".join(slow[:5])


@then("the load's bars came from IB during the request")
def step_bars_from_ib(context):
    w, load = context.world, context.world.seen.last_response
    verdict = checkers.answered_between(w.history.events(), "reqHistoricalData", load.started_mono, load.finished_mono)
    fetched = (load.data or {}).get("fetched_bars") or 0
    assert verdict and fetched > 0, f"{verdict.message}; the load reports {fetched} bars fetched: {load.describe()}"


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


@then("the data load fails with a clear message within the API response bound")
def step_load_fails_fast(context):
    w = context.world
    claims.load_failed_clearly(w.seen.last_response, w.settings.bound_s("api_response_s"))


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
