"""Gateway trouble in the user's words: the one table from the Gherkin's phrases to the fault driver's calls.

Each row is one action on the gateway (one :class:`FaultDriver` call) with every phrase that names it: the
step's own words, and the noun Scenario Outlines put after "the gateway suffers". Two phrases in one row
say the same thing; two actions never share a phrase. ``features/steps/gateway_steps.py`` registers a step
for every row's phrases (the arguments a call takes from the settings, not from its words, it adds by key);
the two steps that add timing of their own ("… idle timeouts late", "… once the operation is running") call a
row by its key. Nothing else maps words to faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import parse

from support.drivers.faults import FaultDriver, FaultWindow
from support.waiting import ConditionTimeout, eventually

if TYPE_CHECKING:
    from support.waiting import Bound

GIVEN, WHEN = "given", "when"


@dataclass(frozen=True)
class Trouble:
    """One action on the gateway and the words that name it.

    Args:
        key: the action's name in the suite (for steps that add timing or arguments of their own).
        act: the one driver call, ``act(faults, **fields)``; the fields are the phrase's (``{latency_ms:d}`` …).
        steps: whole step phrases (behave ``parse`` patterns), for the ``keywords`` given.
        nouns: what follows "the gateway suffers" in a Scenario Outline (``parse`` patterns).
        keywords: the step keywords the ``steps`` phrases are registered for.
    """

    key: str
    act: Callable[..., Any]
    steps: tuple[str, ...] = ()
    nouns: tuple[str, ...] = ()
    keywords: tuple[str, ...] = (GIVEN, WHEN)


def _requests(*request_types: str) -> tuple[str, ...]:
    return request_types


#: The table. A row's fields come from its phrase (``{latency_ms:d}``) or, by key, from the settings.
TABLE: tuple[Trouble, ...] = (
    # ---- silence: nothing answered after the handshake
    Trouble("silence", lambda faults: faults.silence(),
            steps=("the gateway goes silent on every open connection",),
            nouns=("silence after the handshake",)),
    Trouble("server-time unanswered", lambda faults: faults.unanswered(_requests("reqCurrentTime")),
            steps=("the gateway stops answering server-time requests",)),
    Trouble("historical data unanswered", lambda faults: faults.unanswered(_requests("reqHistoricalData")),
            steps=("the gateway stops answering historical-data requests",), keywords=(GIVEN,)),
    Trouble("no handshake", lambda faults: faults.no_handshake(),
            steps=("the gateway accepts connections but never answers the handshake",), keywords=(WHEN,),
            nouns=("no answer to the handshake",)),
    Trouble("API session never starts", lambda faults: faults.ignore_start_api(),
            steps=("the gateway ignores the start of every API session",), keywords=(WHEN,)),
    Trouble("connectivity lost", lambda faults: faults.connectivity_lost(),
            steps=("the gateway loses its connectivity to IB",), keywords=(WHEN,),
            nouns=("a loss of connectivity to IB",)),
    # ---- slow answers
    Trouble("server time late",
            lambda faults, latency_ms: faults.delay_requests(latency_ms, _requests("reqCurrentTime")),
            steps=("the gateway answers the server-time request {latency_ms:d} ms late",), keywords=(GIVEN,)),
    Trouble("contract details late",
            lambda faults, latency_ms: faults.delay_requests(latency_ms, _requests("reqContractDetails")),
            steps=("the gateway answers contract-detail requests {latency_ms:d} ms late",), keywords=(GIVEN,)),
    Trouble("historical data late",
            lambda faults, latency_ms: faults.delay_requests(latency_ms, _requests("reqHistoricalData")),
            steps=("the gateway answers historical-data requests {latency_ms:d} ms late",), keywords=(GIVEN,)),
    Trouble("everything late", lambda faults, latency_ms: faults.latency(latency_ms),
            steps=("the gateway answers everything {latency_ms:d} ms late",), keywords=(GIVEN,)),
    # ---- connections cut, refused or dropped
    Trouble("outage", lambda faults: faults.outage(), nouns=("an outage",)),
    Trouble("restart", lambda faults, down_s: faults.restart(float(down_s)),
            steps=("the gateway restarts and refuses connections for {down_s:d} seconds",), keywords=(WHEN,),
            nouns=("a restart that refuses for {down_s:g} s",)),
    # The gateway closes its clients' sockets (a FIN from the simulator) ...
    Trouble("clients dropped", lambda faults, client_id=None: faults.drop_clients(client_id),
            steps=("the gateway drops every client connection",), keywords=(WHEN,)),
    Trouble("preferred client dropped", lambda faults, client_id: faults.drop_clients(client_id),
            steps=("the gateway has dropped the connection with the preferred client ID",), keywords=(GIVEN,)),
    # ... which is not a reset of every TCP connection on the way to it (a RST from the fault proxy).
    Trouble("connections reset", lambda faults: faults.reset_connections(),
            steps=("every connection to the gateway is reset",), keywords=(WHEN,)),
    # ---- IB's own messages and rules
    Trouble("IB notice", lambda faults, code: faults.push_error(code),
            steps=("the gateway announces IB notice {code:d}",), keywords=(WHEN,)),
    Trouble("strict pacing", lambda faults, rules: faults.tighten_rules(**rules),
            steps=("the gateway enforces historical-data pacing strictly",), keywords=(GIVEN,)),
    # ---- the trouble ends
    Trouble("connectivity restored", lambda faults: faults.restore_connectivity(),
            steps=("the gateway's connectivity to IB is restored",), keywords=(WHEN,)),
    Trouble("every fault healed", lambda faults: faults.heal_all(),
            steps=("the gateway answers again", "the gateway recovers"), keywords=(WHEN,)),
)
BY_KEY: dict[str, Trouble] = {trouble.key: trouble for trouble in TABLE}


def _check_table() -> None:
    """One row per key, one row per phrase (a phrase naming two actions would be ambiguous)."""
    assert len(BY_KEY) == len(TABLE), "two rows share a key"
    phrases = [p for trouble in TABLE for p in trouble.steps + trouble.nouns]
    doubled = sorted({p for p in phrases if phrases.count(p) > 1})
    assert not doubled, f"phrases in more than one row: {doubled}"


_check_table()


def act(faults: FaultDriver, key: str, **fields: Any) -> Any:
    """Run the action of the row called ``key`` (for a step that computes its arguments, e.g. from settings)."""
    return BY_KEY[key].act(faults, **fields)


def inflict(faults: FaultDriver, trouble: str) -> FaultWindow:
    """Apply the trouble a Scenario Outline names after "the gateway suffers".

    Raises:
        KeyError: the phrase is not in the table (the message lists the known ones).
    """
    for row in TABLE:
        for noun in row.nouns:
            found = parse.parse(noun, trouble)
            if found is not None:
                return row.act(faults, **found.named)
    known = ", ".join(repr(noun) for row in TABLE for noun in row.nouns)
    raise KeyError(f"unknown gateway trouble {trouble!r}; known: {known}")


def silent_blip(faults: FaultDriver, api_probe: Callable[[], bool], silent: Bound, recovery: Bound) -> None:
    """Nemesis for long runs: silence the gateway for about ``silent``, heal, let the service recover.

    Never asserts: the workload's own results are the verdict. Waits are bounded.
    """
    window = faults.silence()
    try:
        eventually(lambda: not api_probe(), silent, "the silence is noticed")
    except ConditionTimeout:
        pass
    finally:
        faults.heal(window)
    try:
        eventually(api_probe, recovery, "service is back after the silence", interval_s=0.2)
    except ConditionTimeout:
        pass
