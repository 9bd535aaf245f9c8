"""Steps about the API's answers: the contract's shapes, bad input, trouble reported as such."""

from behave import then, when

from support import claims, contract


@when("a client reads {endpoint}")
def step_read_endpoint(context, endpoint):
    assert endpoint in contract.ENDPOINTS, f"unknown endpoint name {endpoint!r}; known: {', '.join(contract.ENDPOINTS)}"
    context.world.seen.values["endpoint"] = endpoint
    context.world.seen.responses.append(contract.ENDPOINTS[endpoint](context.world.api))


@then("the answer has the contract's shape for {endpoint}")
def step_shape(context, endpoint):
    response = context.world.seen.last_response
    errors = contract.envelope_errors(response, endpoint)
    assert response.status in contract.STATUSES.get(endpoint, (200,)) and not errors, \
        f"{endpoint}: HTTP {response.status}; " + "; ".join(errors)


@then("the answer came within the API response bound")
def step_api_bound(context):
    claims.answered_within(context.world.seen.last_response, context.world.settings.bound_s("api_response_s"))


@then("the answer came within the silent-detection bound")
def step_silent_bound(context):
    claims.answered_within(context.world.seen.last_response, context.world.settings.bound_s("silent_detection_s"))


@then("the answer says the symbol was not found")
def step_not_found(context):
    response = context.world.seen.last_response
    found_nothing = response.status == 200 and response.ok and (response.data or {}).get("symbol_info") is None
    said_not_found = response.status == 404 and bool(response.error_message)
    assert found_nothing or said_not_found, f"expected symbol_info null or a 404 with a message: {response.describe()}"


@when("a client sends a discovery request without a symbol")
def step_malformed(context):
    context.world.seen.responses.append(context.world.api.call("POST", "/ib/symbols/discover", {"force_refresh": True}))


@then("the answer is a validation error")
def step_validation_error(context):
    response = context.world.seen.last_response
    assert response.status in (400, 422), f"expected 400/422: {response.describe()}"


@then("the answer is a 503 with an IB error code and a message")
def step_503(context):
    response = context.world.seen.last_response
    assert response.status == 503 and response.error_code.startswith("IB-") and response.error_message, \
        f"expected 503 with an IB- error code and a message: {response.describe()}"
