"""What a fault's type declares, for the report and for the targets: one place per fault (issue 14, item 6)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ibtargets.common.faults import (
    GATEWAY,
    PROXY,
    Fault,
    Refuse,
    Silent,
    Unanswered,
    fault_kinds,
    kinds_where,
)

ROOT = Path(__file__).resolve().parents[2]
PROBE = "reqCurrentTime"


def test_the_facts_name_the_kinds_the_report_classifies() -> None:
    silences = {"silent", "unanswered", "blackhole", "no_handshake", "ignore_start_api", "connectivity_lost"}
    assert kinds_where("silences") == silences
    assert kinds_where("disrupts") == silences | {"restart", "refuse", "reset", "drop_clients"}
    assert kinds_where("silences", GATEWAY) == {"unanswered", "no_handshake", "ignore_start_api", "connectivity_lost"}
    with pytest.raises(AttributeError):
        kinds_where("kind")


def test_every_silencing_kind_disrupts() -> None:
    assert kinds_where("silences") <= kinds_where("disrupts")


@pytest.mark.parametrize(("fault", "silencing", "disrupting"), [
    (Silent(), True, True),
    (Silent(request_types=("reqHistoricalData",)), False, False),
    (Unanswered(request_types=("reqCurrentTime", "reqHistoricalData")), True, True),
    (Unanswered(request_types=("reqContractDetails",)), False, False),
    (Refuse(keep_existing=False), False, True),
    (Refuse(keep_existing=True), False, False),
])
def test_as_configured_a_fault_silences_or_disrupts_only_when_it_spares_no_working_path(
        fault: Fault, silencing: bool, disrupting: bool) -> None:
    assert fault.silencing(PROBE) is silencing
    assert fault.disrupting(PROBE) is disrupting


def test_an_outage_is_a_fault_no_validation_survives_and_a_cut_closes_what_is_open() -> None:
    """The facts the run-wide invariants and the nemesis ask (issue 21: one fault catalogue)."""
    outages = {kind for plane in (GATEWAY, PROXY) for kind, cls in fault_kinds(plane).items() if cls().outage(PROBE)}
    assert outages == {"silent", "unanswered", "connectivity_lost", "restart"}      # refuse keeps open ones by default
    assert Refuse(keep_existing=False).outage(PROBE) and not Refuse().outage(PROBE)
    assert not Silent(request_types=("reqHistoricalData",)).outage(PROBE)
    assert not Unanswered(client_id=3).outage(PROBE)                              # one client is not the gateway
    cuts = {kind for plane in (GATEWAY, PROXY) for kind, cls in fault_kinds(plane).items() if cls().cuts_connections()}
    assert cuts == {"restart", "drop_clients", "reset"}
    assert Refuse(keep_existing=False).cuts_connections()


@pytest.mark.parametrize("plane", [GATEWAY, PROXY])
def test_the_facts_survive_the_control_api_round_trip(plane: str) -> None:
    for cls in fault_kinds(plane).values():
        fault = cls()
        again = Fault.from_json(plane, fault.to_json())
        assert (again.silencing(PROBE), again.disrupting(PROBE)) == (fault.silencing(PROBE), fault.disrupting(PROBE))


@pytest.mark.parametrize("path", ["ibtargets/proxy/core.py", "ibtargets/proxy/pair.py",
                                  "ibtargets/gateway/gateway.py", "ibtargets/gateway/session.py"])
def test_the_targets_ask_a_fault_and_never_branch_on_its_type(path: str) -> None:
    kinds = {cls.__name__ for plane in (GATEWAY, PROXY) for cls in fault_kinds(plane).values()}
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    named = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id in kinds})
    assert not named, f"{path} names fault types {named}: a fault's behaviour belongs to its type"
