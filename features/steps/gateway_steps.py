"""Steps about the IB Gateway's behaviour: the faults the scenarios inflict and heal."""

from behave import given, when

from support import claims, troubles
from support.waiting import eventually


@given("the gateway goes silent on every open connection")
@when("the gateway goes silent on every open connection")
def step_silence(context):
    context.world.faults.silence()


@given("the gateway stops answering server-time requests")
@when("the gateway stops answering server-time requests")
def step_time_unanswered(context):
    context.world.faults.unanswered(("reqCurrentTime",))


@given("the gateway stops answering historical-data requests")
def step_history_unanswered(context):
    context.world.faults.unanswered(("reqHistoricalData",))


@given("the gateway answers the server-time request {latency_ms:d} ms late")
def step_time_late(context, latency_ms):
    context.world.faults.delay_requests(latency_ms, ("reqCurrentTime",))


@given("the gateway answers contract-detail requests {latency_ms:d} ms late")
def step_details_late(context, latency_ms):
    context.world.faults.delay_requests(latency_ms, ("reqContractDetails",))


@given("the gateway answers historical-data requests {latency_ms:d} ms late")
def step_history_late(context, latency_ms):
    context.world.faults.delay_requests(latency_ms, ("reqHistoricalData",))


@given("the gateway answers historical-data requests {count:d} idle timeouts late")
def step_history_idle_late(context, count):
    w = context.world
    delay_s, reason = claims.idle_timeouts_delay(w, count)
    if reason:
        return context.scenario.skip(reason)
    w.faults.delay_requests(int(delay_s * 1000), ("reqHistoricalData",))


@given("the gateway answers everything {latency_ms:d} ms late")
def step_everything_late(context, latency_ms):
    context.world.faults.latency(latency_ms)


@when("the gateway accepts connections but never answers the handshake")
def step_no_handshake(context):
    context.world.faults.no_handshake()


@when("the gateway ignores the start of every API session")
def step_ignore_start_api(context):
    context.world.faults.ignore_start_api()


@given("the gateway suffers {trouble}")
@when("the gateway suffers {trouble}")
def step_trouble(context, trouble):
    troubles.inflict(context.world.faults, trouble)


@when("the gateway answers again")
@when("the gateway recovers")
def step_recover(context):
    context.world.faults.heal_all()


@when("the gateway drops every client connection")
def step_drop_all(context):
    context.world.faults.drop_connections()


@given("the gateway has dropped the connection with the preferred client ID")
def step_drop_preferred(context):
    context.world.faults.drop_connections(client_id=context.world.settings.preferred_client_id)


@when("the gateway restarts and refuses connections for {down_s:d} seconds")
def step_restart(context, down_s):
    context.world.faults.restart(down_s)


@when("every connection to the gateway is reset")
def step_reset(context):
    context.world.faults.drop_connections()


@when("the gateway loses its connectivity to IB")
def step_connectivity_lost(context):
    context.world.seen.values["connectivity"] = context.world.faults.connectivity_lost()


@when("the gateway's connectivity to IB is restored")
def step_connectivity_restored(context):
    context.world.faults.heal(context.world.seen.values["connectivity"])


@when("the gateway announces IB notice {code:d}")
def step_notice(context, code):
    context.world.faults.push_error(code)


@given("the gateway enforces historical-data pacing strictly")
def step_strict_pacing(context):
    context.world.faults.tighten_rules(**context.world.settings.strict_pacing_rules)


@when("the gateway goes silent once the operation is running")
def step_silence_mid_load(context):
    w = context.world
    eventually(lambda: any(e.type == "reqHistoricalData" for e in w.history.events()), 30.0,
               "the backend has sent its first historical-data request")
    w.faults.silence()
