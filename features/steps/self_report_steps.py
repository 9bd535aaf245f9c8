"""Steps that hold the backend's own reports (status, configuration, health, phase 3) against what IB saw."""

from behave import then

from support import checkers, claims


@then("the IB status says connected, with a client ID the gateway has open for the backend")
def step_status_connected(context):
    w = context.world
    response = w.seen.last_response
    connection = (response.data or {}).get("connection") or {}
    _, open_ids = claims.open_ids_during(w, response)
    assert connection.get("connected") is True and connection.get("client_id") in open_ids, \
        f"the gateway has client ID(s) {sorted(open_ids)} open for the backend; /ib/status says {connection}"


@then("the IB status names the address the backend connects to IB through")
def step_status_address(context):
    connection = (context.world.seen.last_response.data or {}).get("connection") or {}
    claims.names_backend_address(context.world, connection.get("host"), connection.get("port"), "/ib/status")


@then("the configuration names the address the backend connects to IB through")
def step_config_address(context):
    data = context.world.seen.last_response.data or {}
    claims.names_backend_address(context.world, data.get("host"), data.get("port"), "/ib/config")


@then("the configuration's client-ID range holds every client ID the gateway accepted from the backend")
def step_config_range(context):
    w = context.world
    id_range = (w.seen.last_response.data or {}).get("client_id_range") or {}
    accepted = sorted({int(c["client_id"]) for c in w.history.backend_connections(w.seen.started_mono)})
    outside = [i for i in accepted if not (id_range.get("min", 0) <= i <= id_range.get("max", -1))]
    assert accepted and not outside, f"the gateway accepted client IDs {accepted}; /ib/config says {id_range}"


@then("the client IDs it lists in use are the ones the gateway has open for the backend")
def step_phase3_ids(context):
    w = context.world
    listed = set(((w.seen.last_response.data or {}).get("phase_3_client_id_preference") or {}).get("client_ids_in_use") or [])
    throughout, anytime = claims.open_ids_during(w, w.seen.last_response)
    assert throughout <= listed <= anytime, \
        f"the report lists client IDs {sorted(listed)}; the gateway had {sorted(throughout)} open throughout the request"


@then("the client-ID phase reports working only if the backend holds the preferred client ID")
def step_phase3_working(context):
    w = context.world
    phase = (w.seen.last_response.data or {}).get("phase_3_client_id_preference") or {}
    _, open_ids = claims.open_ids_during(w, w.seen.last_response)
    verdict = phase.get("status") != "working" or w.settings.preferred_client_id in open_ids
    assert verdict, f"phase 3 reports working, but the gateway has client IDs {sorted(open_ids)} open for the backend, " \
                    f"not the preferred {w.settings.preferred_client_id}: {phase}"


@then("the gateway answered the backend a server-time request while the report was made")
def step_health_probed(context):
    w, response = context.world, context.world.seen.last_response
    verdict = checkers.answered_between(w.history.events(), "reqCurrentTime", response.started_mono, response.finished_mono)
    assert verdict, verdict.message
