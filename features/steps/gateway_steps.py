"""Steps about the IB Gateway's behaviour: the faults the scenarios inflict and heal.

Every phrase naming gateway trouble is a row of ``support.troubles.TABLE`` (one phrase, one driver call);
the steps are registered from it. Only the steps that add timing of their own are written out here.
"""

from behave import given, when

from support import claims, troubles
from support.waiting import eventually

_KEYWORDS = {troubles.GIVEN: given, troubles.WHEN: when}
#: Arguments a row's call takes from the settings rather than from its words, by row key.
_FROM_SETTINGS = {
    "strict pacing": lambda settings: {"rules": settings.strict_pacing_rules},
    "preferred client dropped": lambda settings: {"client_id": settings.preferred_client_id},
}


def _step_of(trouble: troubles.Trouble):
    def step(context, **fields):
        w = context.world
        extra = _FROM_SETTINGS[trouble.key](w.settings) if trouble.key in _FROM_SETTINGS else {}
        trouble.act(w.faults, **fields, **extra)
    step.__name__ = step.__qualname__ = "step_" + "_".join(trouble.key.replace("-", " ").split()).lower()
    step.__doc__ = f"Gateway trouble {trouble.key!r} (support.troubles.TABLE)."
    return step


for _trouble in troubles.TABLE:
    _step = _step_of(_trouble)
    for _keyword in _trouble.keywords:
        for _phrase in _trouble.steps:
            _KEYWORDS[_keyword](_phrase)(_step)


@given("the gateway suffers {trouble}")
@when("the gateway suffers {trouble}")
def step_trouble(context, trouble):
    troubles.inflict(context.world.faults, trouble)


@given("the gateway answers historical-data requests {count:d} idle timeouts late")
def step_history_idle_late(context, count):
    w = context.world
    delay_s, reason = claims.idle_timeouts_delay(w, count)
    if reason:
        return context.scenario.skip(reason)
    troubles.act(w.faults, "historical data late", latency_ms=int(delay_s * 1000))


@when("the gateway goes silent once the operation is running")
def step_silence_mid_load(context):
    w = context.world
    eventually(lambda: w.timeline.ib_events(request_type="reqHistoricalData"), w.settings.bound_of(30.0, "a load reaching IB"),
               "the backend has sent its first historical-data request")
    troubles.act(w.faults, "silence")
