"""One judge: on one recorded history, the scenario's claim, the nemesis and the report give the same verdict,
because all three read the same checker of support/checks (the report only shows what the run judged)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from history_helpers import LIMITS, Gateway

from ibreport.results import critical_checks, load_results
from support import claims, run_evidence
from support.checks import run_wide
from support.nemesis import judge
from support.nemesis.record import NemesisRun
from support.nemesis.schedule import Schedule
from support.verdict import FAIL, PASS, ClaimFailed


def _history(discarded: bool):
    """A backend whose connection answered its validation in 0.5 ms; ``discarded``: then closed unused at once."""
    g = Gateway(idle_timeout_s=300.0)
    conn = g.connect(1.0, 1)
    g.ask(conn, 1.1, "reqCurrentTime", 1.1005)
    g.ask(conn, 1.2, "reqContractDetails", 1.21, req_id=5)
    g.ask(conn, 3.0, "reqCurrentTime", 3.0005)
    if discarded:
        g.close(conn, 6.0)
    else:
        g.ask(conn, 3.01, "reqContractDetails", 3.02, req_id=6)
    return g.window(20.0)


def _scenario_claim(window) -> tuple[str, str]:
    """The Then-step "no connection that passed its validation was thrown away", over this history."""
    world = SimpleNamespace(window=lambda since=None: window, limits=LIMITS,
                            seen=SimpleNamespace(acting_mono=0.0, started_mono=0.0))
    try:
        claims.validated_connections_kept(world)
    except ClaimFailed as failed:
        return FAIL, str(failed)
    return PASS, ""


def _nemesis(window) -> tuple[str, str]:
    """The nemesis's verdict of the same family over the same window."""
    run = NemesisRun(Schedule(seed=1, duration_s=20.0, faults=()), window.start_mono, window.end_mono)
    verdict = judge.judge(window, run, LIMITS)["validated_kept"]
    return verdict.status, verdict.detail()


def _report(window, tmp_path: Path) -> tuple[str, str]:
    """What the report shows for it, from the files a run writes."""
    reports = tmp_path / "reports"
    run_evidence.record_run(reports, reports / "allure-results", run_wide.judge(window, LIMITS), window, LIMITS)
    check = next(c for c in critical_checks(load_results(reports / "allure-results"))
                 if c.name == run_wide.BY_KEY["validated_kept"].title)
    return check.verdict, check.observed


@pytest.mark.parametrize("discarded", [True, False], ids=["discarded", "kept"])
def test_the_claim_the_nemesis_and_the_report_agree_on_one_history(discarded, tmp_path):
    window = _history(discarded)
    claim, nemesis, report = _scenario_claim(window), _nemesis(window), _report(window, tmp_path)
    assert claim[0] == nemesis[0] == report[0] == (FAIL if discarded else PASS), (claim, nemesis, report)
    if discarded:
        evidence = "conn 1 (client 1): its validation was answered in 1 ms at 3.00 s"
        assert evidence in claim[1] and evidence in nemesis[1], (claim, nemesis)
        assert "validated connection(s) discarded" in report[1]


def test_ib_resilience_judge_gives_a_recorded_run_its_verdicts_again(tmp_path, capsys):
    from ibresilience import judge_cmd

    window = _history(discarded=True)
    reports = tmp_path / "reports"
    run_evidence.record_run(reports, reports / "allure-results", run_wide.judge(window, LIMITS), window, LIMITS)
    assert judge_cmd.main([str(reports), "--json", str(tmp_path / "again.json")]) == 1
    assert "FAIL          validated_kept" in capsys.readouterr().out
    recorded = {r["key"]: (r["status"], r["message"]) for r in run_evidence.read_records(reports)}
    again = {r["key"]: (r["status"], r["message"]) for r in json.loads((tmp_path / "again.json").read_text())}
    assert again == recorded
    assert judge_cmd.main([str(tmp_path / "nothing-here")]) == 2
