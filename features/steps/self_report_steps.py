"""Steps that hold the backend's own reports (status, configuration, health, phase 3) against what IB saw."""

from behave import then

from support import claims


@then("the IB status says connected, with a client ID the gateway has open for the backend")
def step_status_connected(context):
    claims.status_connected_as_gateway_sees(context.world, context.world.seen.last_response)


@then("the IB status names the address the backend connects to IB through")
def step_status_address(context):
    claims.status_names_backend_address(context.world, context.world.seen.last_response)


@then("the configuration names the address the backend connects to IB through")
def step_config_address(context):
    claims.config_names_backend_address(context.world, context.world.seen.last_response)


@then("the configuration's client-ID range holds every client ID the gateway accepted from the backend")
def step_config_range(context):
    claims.config_range_holds_accepted_ids(context.world, context.world.seen.last_response)


@then("the client IDs it lists in use are the ones the gateway has open for the backend")
def step_phase3_ids(context):
    claims.listed_ids_are_open_ones(context.world, context.world.seen.last_response)


@then("the client-ID phase reports working only if the backend holds the preferred client ID")
def step_phase3_working(context):
    claims.phase_3_working_only_with_preferred(context.world, context.world.seen.last_response)


@then("the gateway answered the backend a server-time request while the report was made")
def step_health_probed(context):
    claims.answered_during(context.world, "reqCurrentTime", context.world.seen.last_response)
