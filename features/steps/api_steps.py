"""Steps about the API's answers: the contract's shapes, bad input, trouble reported as such."""

from behave import then, when

from support import claims, contract


@when("a client reads {endpoint}")
def step_read_endpoint(context, endpoint):
    context.world.seen.responses.append(contract.read(endpoint, context.world.api))


@then("the answer has the contract's shape for {endpoint}")
def step_shape(context, endpoint):
    claims.has_contract_shape(context.world.seen.last_response, endpoint)


@then("the answer came within {bound:Bound}")
def step_within_bound(context, bound):
    claims.answered_within(context.world.seen.last_response, context.world.settings.bound(bound))


@then("the answer says the symbol was not found")
def step_not_found(context):
    claims.says_not_found(context.world.seen.last_response)


@when("a client sends a discovery request without a symbol")
def step_malformed(context):
    context.world.seen.responses.append(context.world.api.call("POST", "/ib/symbols/discover", {"force_refresh": True}))


@then("the answer is a validation error")
def step_validation_error(context):
    claims.is_validation_error(context.world.seen.last_response)


@then("the answer is a 503 with an IB error code and a message")
def step_503(context):
    claims.is_ib_unavailable(context.world.seen.last_response)
