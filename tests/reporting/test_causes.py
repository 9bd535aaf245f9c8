"""Causes: failed scenarios grouped by what the backend did (``ibreport.causes``), from hand-made results and
histories: one defect with many symptoms is one cause, wording never groups, state an earlier scenario left is
flagged as carried over, the Markdown's first screen lists the causes and Allure files each failure under its own."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from reporting_helpers import ResultsDir, every_invariant, record

from ibreport import summary as reporting
from ibreport.allure_formatter import failing_claim
from ibreport.causes import CAUSE_LABEL, CAUSE_MARK, Histories, annotate_allure, bucket, causes_of
from ibreport.results import claim_in, load_results
from ibresilience import merge
from support import claims
from support.checks.limits import Limits
from support.drivers.api import ApiResponse
from support.run_evidence import HISTORY_FILE, write_history
from support.run_history import Connection, HistoryWindow, Life, OutputLine, Request, Span
from support.settings import Settings
from support.verdict import BoundExceeded
from support.waiting import Bound

DISCOVER, HEALTH, LOAD = "/ib/symbols/discover", "/ib/health", "/data/load"


def exchange(method: str, path: str, status: int | None, elapsed_s: float, started_s: float = 0.0,
             code: str = "", body: dict | None = None) -> dict:
    """One API exchange as a step's "API exchanges" attachment holds it."""
    if body is None:
        body = {"success": not code and (status or 0) < 400, "data": {},
                "error": {"code": code, "message": "x"} if code else None}
    return {"method": method, "path": path, "request": None, "status": status, "started_s": started_s,
            "elapsed_s": elapsed_s, "error": "" if status else f"no answer within {elapsed_s} s", "body": body}


def trace(*frames: str) -> str:
    """A Python trace as Allure records it, through these ``module.function`` frames (outermost first)."""
    paths = {"claims": "/x/support/claims.py", "cli_claims": "/x/support/cli_claims.py",
             "verdict": "/x/support/verdict.py", "waiting": "/x/support/waiting.py", "steps": "features/steps/s.py"}
    return "".join(f'  File "{paths[f.split(".")[0]]}", line 1, in {f.split(".")[1]}\n    x()\n' for f in frames)


SLOW = "Then every answer came within the API response bound"


def slow_discoveries(results: ResultsDir, name: str, seconds: float = 15.0, message: str = "") -> int:
    return results.stepped(name, [
        {"name": "Given the API answers", "exchanges": [exchange("GET", "/health", 200, 0.01)]},
        {"name": "When a client discovers the same symbol 3 times in a row",
         "exchanges": [exchange("POST", DISCOVER, 200, seconds, 1.0), exchange("POST", DISCOVER, 200, 1.0, 2.0)]},
        {"name": SLOW, "status": "failed"}],
        message=message or f"support.verdict.BoundExceeded: 1 answer(s) slower than 5 s: {seconds}",
        trace=trace("steps.step", "claims.all_within", "verdict.require_within"))


def unhealthy(results: ResultsDir, name: str, message: str = "support.verdict.ClaimFailed: not healthy") -> int:
    return results.stepped(name, [
        {"name": "When a client reads the IB health", "exchanges": [exchange("GET", HEALTH, 503, 0.01, 0.5,
                                                                              "IB-UNHEALTHY")]},
        {"name": "Then the answer says IB is healthy", "status": "failed"}],
        message=message, trace=trace("steps.step", "claims.says_healthy", "verdict.require"))


def markdown(results: ResultsDir, **kwargs) -> str:
    run = load_results(results.path)
    return reporting.markdown_report(run, "standard", 10.0, 1, {}, dt.datetime.now(), **kwargs)


def test_one_defect_with_many_symptoms_is_one_cause_largest_first(results):
    """A discovery answered after 15 s fails a bound, a claim about the answer and a precondition: one cause, the
    largest first, every failure under exactly one; the precondition names the requirement it kept unjudged."""
    unhealthy(results, "health says unhealthy")
    slow_discoveries(results, "same symbol again")
    results.stepped("unknown symbol", [
        {"name": 'When a client discovers the symbol "XYZNOTREAL"',
         "exchanges": [exchange("POST", DISCOVER, 200, 15.02, 0.1, "IB-SYMBOL-DISCOVERY-ERROR",
                                {"success": False, "data": None, "error": {
                                    "code": "IB-SYMBOL-DISCOVERY-ERROR", "message": "x", "details": {
                                        "error": "503: {'code': 'IB-TIMEOUT', 'message': 'timed out'}"}}})]},
        {"name": "Then the answer says the symbol was not found", "status": "failed"}],
        message="support.verdict.ClaimFailed: expected symbol_info null", trace=trace("claims.says_not_found"))
    results.stepped("slow precondition", [
        {"name": "Given the API answers", "exchanges": [exchange("GET", "/health", 200, 0.01)]},
        {"name": "And a symbol discovery succeeds", "status": "failed",
         "exchanges": [exchange("POST", DISCOVER, 200, 15.01, 0.1, "IB-SYMBOL-DISCOVERY-ERROR")]},
        {"name": "When a client discovers a symbol", "status": "skipped"},
        {"name": "Then the request succeeds within the validation bound", "status": "skipped"}],
        message="support.waiting.ConditionTimeout: a discovery: not true within 5 s",
        trace=trace("claims.discovery_succeeds", "waiting.eventually"))
    results.scenario("passes")
    run = load_results(results.path)
    causes = causes_of(run)
    assert [len(c.findings) for c in causes] == [3, 1]
    slow, health = causes
    assert slow.key == ("api", "POST /ib/symbols/discover", "≈15 s")
    assert slow.behaviour == "answers POST /ib/symbols/discover only after ≈15 s"
    assert {s.name for s in slow.scenarios} == {"same symbol again", "unknown symbol", "slow precondition"}
    assert "HTTP 200 IB-SYMBOL-DISCOVERY-ERROR (IB-TIMEOUT)" in slow.evidence and "answered in 15 s;" in slow.evidence
    assert "not judged: the request succeeds within the validation bound" in slow.requirements
    assert health.behaviour == "answers GET /ib/health with HTTP 503 IB-UNHEALTHY"
    filed = [s.name for c in causes for s in c.scenarios]
    assert sorted(filed) == sorted(s.name for s in run.problems) and len(filed) == len(set(filed))
    text = markdown(results)
    assert "so this requirement was not judged: the request succeeds within the validation bound" in text
    assert "- **Cause:** C1 — answers POST /ib/symbols/discover only after ≈15 s" in text


def test_the_message_wording_never_groups(results):
    """The same message over different evidence is two causes; different messages over the same evidence, one."""
    same = "support.verdict.ClaimFailed: the service is not what it should be"
    unhealthy(results, "unhealthy, said one way", message=same)
    unhealthy(results, "unhealthy, said another way", message="support.verdict.ClaimFailed: 503 is not healthy")
    results.stepped("load not found, said the same way", [
        {"name": 'When a client loads "IBM" daily bars', "exchanges": [exchange("POST", LOAD, 400, 1.0, 0.1,
                                                                                  "DATA-FileNotFound")]},
        {"name": "Then the data load succeeds", "status": "failed"}],
        message=same, trace=trace("claims.loads_succeeded", "verdict.require"))
    causes = causes_of(load_results(results.path))
    assert [sorted(s.name for s in c.scenarios) for c in causes] == [
        ["unhealthy, said another way", "unhealthy, said one way"], ["load not found, said the same way"]]
    assert causes[1].key == ("api", "POST /data/load", "400", "DATA-FileNotFound", "")


def test_times_are_bucketed_so_one_pace_is_one_cause():
    assert bucket(14.36) == bucket(15.0) == bucket(15.89) == "≈15 s"
    assert bucket(8.1) == "≈8 s" and bucket(150.1) == "≈150 s" and bucket(0.2) == "≈1 s"


def test_slow_answers_in_other_buckets_are_other_causes(results):
    slow_discoveries(results, "fifteen", 15.9)
    slow_discoveries(results, "fourteen", 14.4)
    slow_discoveries(results, "eight", 8.1)
    causes = causes_of(load_results(results.path))
    assert [(c.key[-1], len(c.findings)) for c in causes] == [("≈15 s", 2), ("≈8 s", 1)]


def _cli_run(results: ResultsDir, name: str, command: str, outcome: str, claim: tuple[str, ...],
             faults: list | None = None) -> None:
    results.stepped(name, [
        {"name": f'When the operator runs "{command}"', "cli": f"$ /opt/ktrdr {command}  ({outcome})\nOK\n"},
        {"name": "Then the command did what it was asked", "status": "failed"}],
        message="support.verdict.ClaimFailed: x", trace=trace("steps.step", *claim, "verdict.require"), faults=faults)


def test_cli_failures_group_by_command_and_how_it_ended(results):
    reporting.write_properties(results.path / "environment.properties", {"cli": "/opt/ktrdr"})
    outage = [{"fault": "outage", "plane": "proxy", "applied_s": 0.0, "healed_s": None,
               "definition": {"name": "refuse", "kind": "refuse", "client_id": None,
                           "attributes": {"keep_existing": False}}}]
    _cli_run(results, "ib test asks nothing", "ib test", "exit 0, 1.3 s", ("cli_claims.did_its_job", "cli_claims.asked_ib"))
    _cli_run(results, "ib test in an outage", "ib test", "exit 0, 0.9 s", ("cli_claims.failed_clearly",), outage)
    _cli_run(results, "ib status constant", "ib status --format json", "exit 0, 1.1 s", ("cli_claims.shows_live_score",))
    _cli_run(results, "cleanup placeholder", "ib cleanup --force", "exit 0, 1.0 s",
             ("cli_claims.reported_gateway_closes", "claims.closed_count_matches_gateway", "waiting.settled"))
    _cli_run(results, "load hangs", "data load KO --mode tail", "timed out, 45.2 s", ("cli_claims.succeeded",))
    causes = causes_of(load_results(results.path))
    assert [(c.key, len(c.findings)) for c in causes] == [
        (("cli", "ib test", "exit 0"), 2), (("cli", "ib status", "exit 0"), 1), (("cli", "ib cleanup", "exit 0"), 1),
        (("cli", "data load", "timed out"), 1)]
    assert causes[0].behaviour.startswith("`ib test` exits 0")
    assert "faults in force: none, outage" in causes[0].evidence
    assert causes[2].behaviour == "`ib cleanup` exits 0 and reports closing connections the gateway never saw close"
    assert causes[3].behaviour == "`data load` times out" and "took 45.2 s" in causes[3].evidence


def _complaining(results: ResultsDir, name: str, output: str) -> None:
    results.stepped(name, [
        {"name": 'When a client loads "IBM" daily bars', "exchanges": [exchange("POST", LOAD, 200, 1.0)]},
        {"name": "Then the backend printed no warning, coroutine complaint or traceback meanwhile",
         "status": "failed"}],
        message="support.verdict.ComplaintFound: the backend printed 2 complaint line(s)",
        trace=trace("claims.output_clean"), backend_output=output)


def test_complaints_group_by_what_was_printed_without_paths_times_and_numbers(results):
    _complaining(results, "first load", "2026-12-07 04:22:48,001 INFO fine\n/a/data_manager.py:467: RuntimeWarning: "
                 "coroutine 'DataManager.test_connection' was never awaited\nRuntimeWarning: Enable tracemalloc to "
                 "get the object allocation traceback\n")
    _complaining(results, "second load", "/b/data_manager.py:468: RuntimeWarning: coroutine "
                 "'DataManager.test_connection' was never awaited\n")
    _complaining(results, "stop", "/c/contextlib.py:217: RuntimeWarning: coroutine 'get_connection_pool' was never "
                 "awaited\nTraceback (most recent call last):\n  File x\nValueError: 3\n")
    _complaining(results, "traceback only", "Traceback (most recent call last):\n  File x\nKeyError: 'available'\n")
    causes = causes_of(load_results(results.path))
    assert [(c.behaviour, len(c.findings)) for c in causes] == [
        ("prints `RuntimeWarning: coroutine 'DataManager.test_connection' was never awaited`", 2),
        ("prints `RuntimeWarning: coroutine 'get_connection_pool' was never awaited`", 1),
        ("prints `Traceback … KeyError: 'available'`", 1)]
    assert all(c.subjects == {"output"} for c in causes)


# ------------------------------------------------------------------------------------------- the run's history

def _history(results: ResultsDir, spans: list[Span], lives: list[Life], exchanges=(), output=(), connections=()) -> None:
    window = HistoryWindow(1000.0, 2000.0, "gateway", connections=tuple(connections), exchanges=tuple(exchanges),
                           output=tuple(output), lives=tuple(lives), spans=tuple(spans))
    write_history(results.reports / HISTORY_FILE, window, Limits.from_settings(Settings()))


def _discover(at: float, elapsed: float = 0.5) -> ApiResponse:
    return ApiResponse("POST", DISCOVER, {"symbol": "AAPL"}, 200, {"success": True}, elapsed, at)


OUTAGE = [{"fault": "outage", "plane": "proxy", "applied_s": 0.0, "healed_s": None,
           "definition": {"name": "refuse", "kind": "refuse", "client_id": None,
                           "attributes": {"keep_existing": False}}}]


@pytest.mark.parametrize("variant", ["carried", "fresh life", "outage", "no wait", "no earlier use"])
def test_a_wait_an_earlier_scenario_left_is_flagged_carried_over_naming_it(results, variant):
    """The backend announces a 506 s wait at the scenario's first discovery: the pace the earlier scenario of the same
    backend life left. Not so when the backend was restarted between them, when the gateway was out (the wait is the
    backend's answer to it), when it announced no wait, or when no earlier scenario of the life used the endpoint."""
    results.scenario("Earlier scenario")
    results.stepped("Later scenario", [
        {"name": "Given the API answers", "exchanges": [exchange("GET", "/health", 200, 0.01)]},
        {"name": "And a symbol discovery succeeds", "status": "failed",
         "exchanges": [exchange("POST", DISCOVER, 200, 15.01, 0.05, "IB-SYMBOL-DISCOVERY-ERROR")]},
        {"name": "Then the request succeeds within the validation bound plus 2 seconds", "status": "skipped"}],
        message="support.waiting.ConditionTimeout: a discovery: not true within 5 s",
        trace=trace("claims.discovery_succeeds", "waiting.eventually"), faults=OUTAGE if variant == "outage" else [])
    earlier, later = Span("scenario", "Earlier scenario", 1002.0, 1010.0, "passed"), \
        Span("scenario", "Later scenario", 1011.0, 1030.0, "failed")
    lives = [Life(1000.0, 1001.0)] if variant != "fresh life" else [Life(1000.0, 1001.0, 1010.2, 1010.4),
                                                                   Life(1010.4, 1010.9)]
    used = [] if variant == "no earlier use" else [_discover(1003.0), _discover(1004.0), _discover(1005.0)]
    wait = [] if variant == "no wait" else [OutputLine("| ib_pace_manager | PROACTIVE PACE LIMIT: Waiting 506.4s for "
                                                       "AAPL:contract_lookup", 1011.6, 1011.1)]
    _history(results, [earlier, later], lives, [*used, _discover(1011.05, 15.01)], wait)
    (cause,) = causes_of(load_results(results.path))
    if variant != "carried":
        assert cause.key == ("api", "POST /ib/symbols/discover", "≈15 s") and not cause.carried_from
        return
    assert cause.key == ("carried over", "wait", "POST /ib/symbols/discover")
    assert cause.carried_from == ["Earlier scenario"]
    assert "wait announced 506 s" in cause.evidence and "most of them by: Earlier scenario (3)" in cause.evidence
    text = markdown(results)
    row = next(line for line in text.splitlines() if line.startswith("| C1 |"))
    assert '⟲ carried over from "Earlier scenario"' in row
    assert "--name 'Earlier scenario' --name 'Later scenario'" in row  # re-run the one that left it, then this one
    assert '(carried over from "Earlier scenario")' in text.split("### Failed Scenarios", 1)[1]


def test_a_client_id_an_earlier_scenario_still_holds_is_carried_over(results):
    results.scenario("Opens a connection")
    results.stepped("Meets a held ID", [
        {"name": "When a client discovers a symbol", "exchanges": [exchange("POST", DISCOVER, 200, 0.5, 0.1)]},
        {"name": "Then the gateway accepted the backend with the preferred client ID", "status": "failed"}],
        message="support.verdict.ClaimFailed: accepted [2]", trace=trace("claims.accepted_first", "verdict.require"))
    spans = [Span("scenario", "Opens a connection", 1002.0, 1010.0, "passed"),
             Span("scenario", "Meets a held ID", 1011.0, 1020.0, "failed")]
    connections = [Connection("gateway", 1, "p:1", 1003.0, 1, 1003.01),
                   Connection("gateway", 2, "p:2", 1011.2, 1, 1011.21, rejected=True, reject_code=326,
                              closed_mono=1011.22),
                   Connection("gateway", 3, "p:3", 1011.3, 2, 1011.31)]
    _history(results, spans, [Life(1000.0, 1001.0)], connections=connections)
    (cause,) = causes_of(load_results(results.path))
    assert cause.key == ("carried over", "client ID held") and cause.carried_from == ["Opens a connection"]
    assert "client ID: 1" in cause.evidence and "held by: conn 1 (client 1)" in cause.evidence


def test_the_gateways_record_groups_claims_about_client_ids_and_loads_that_never_reach_ib(results):
    """Three client-ID claims fail on one fact (the backend's connections use 11, never the preferred 1, a
    squatter of the suite's own left out); two synchronous loads, one 400 and one 200 with no bars from IB, on
    another (no reqHistoricalData reached the gateway) — and without a history they fall back to their claims."""
    names = []
    for claim, step in (("accepted_first", "the gateway accepted the backend with the preferred client ID"),
                        ("refused_in_order", "the gateway refused the backend 1 time(s) with error 326"),
                        ("phase_3_working_only_with_preferred", "the client-ID phase reports working only if …")):
        name = f"client IDs: {claim}"
        names.append(name)
        results.stepped(name, [
            {"name": "When a client discovers a symbol", "exchanges": [exchange("POST", DISCOVER, 200, 0.9, 0.1)]},
            {"name": f"Then {step}", "status": "failed"}],
            message="support.verdict.ClaimFailed: x", trace=trace(f"claims.{claim}", "verdict.require"))
    for name, status, code, claim in (("load 400", 400, "DATA-FileNotFound", "loads_succeeded"),
                                      ("load from cache", 200, "", "bars_came_from_ib")):
        names.append(name)
        results.stepped(name, [
            {"name": 'When a client loads "MSFT" hourly bars',
             "exchanges": [exchange("POST", LOAD, status, 4.0, 0.1, code, None if code else {
                 "success": True, "data": {"status": "success", "fetched_bars": 320, "ib_requests_made": 0}})]},
            {"name": "Then the data load succeeds", "status": "failed"}],
            message="support.verdict.ClaimFailed: x", trace=trace(f"claims.{claim}", "verdict.require"))
    assert len(causes_of(load_results(results.path))) == 5  # no history yet: each claim and answer its own cause
    spans = [Span("scenario", name, 1001.0 + 10 * i, 1009.0 + 10 * i, "failed") for i, name in enumerate(names)]
    connections = [Connection("gateway", 100 + i, "p", 1001.5 + 10 * i, 11, 1001.6 + 10 * i,
                              requests=(Request(1001.7 + 10 * i, "reqContractDetails", 1, True, 1001.8 + 10 * i),))
                   for i in range(len(names))]
    connections.append(Connection("gateway", 99, "p", 1001.2, 1, 1001.3, own=True))  # the suite's squatter on 1
    _history(results, spans, [Life(1000.0, 1000.5)], connections=connections)
    causes = causes_of(load_results(results.path))
    assert [(c.key, len(c.findings)) for c in causes] == [
        (("client IDs", "never the preferred 1; from 11"), 3),
        (("api", "POST /data/load", "synchronous", "no reqHistoricalData"), 2)]
    assert causes[0].behaviour == "its IB connections use client IDs from 11, never the preferred 1"
    assert "HTTP 400 DATA-FileNotFound" in causes[1].evidence and "ib_requests_made 0" in causes[1].evidence


# ------------------------------------------------------------------------------------------- the reports

def test_the_markdowns_first_screen_is_the_causes_with_the_invariants_linked(results):
    slow_discoveries(results, "same symbol again")
    slow_discoveries(results, "same symbol once more")
    unhealthy(results, "health says unhealthy")
    results.judged(every_invariant(bounds={"status": "fail", "message": "2 of 9 request(s) past their bound",
                                           "violations": [(38.0, "POST /ib/symbols/discover in 15.00 s")]},
                                   cancels={"status": "fail", "message": "1 problem(s) in 1 cancel(s)"}))
    text = markdown(results)
    head = text.split("**Report Generated:**", 1)[0]
    assert head.startswith("# IB Connection Resilience Test Report — standard level\n\n**Overall Result:** ❌ FAILED")
    assert "## Causes" in head and "**3 failed scenario(s) from 2 cause(s)**; **2 run-wide invariant(s) broken**" in head
    rows = [line for line in head.splitlines() if re.match(r"^\| [CI]\d+ \|", line)]
    assert [row.split(" | ")[0] for row in rows] == ["| C1", "| C2", "| I1", "| I2"]
    for name in ("same symbol again", "same symbol once more", "health says unhealthy"):
        assert sum(name in row.split(" | ")[3] for row in rows) == 1, name
    assert rows[0].split(" | ")[3].startswith("2: ")
    assert "ib-resilience run --level standard --name 'same symbol" in rows[0]
    bounds = next(row for row in rows if "(`bounds`)" in row)
    assert "shares its evidence with C1" in bounds and "first at 38.00 s: POST /ib/symbols/discover" in bounds
    assert "shares its evidence" not in next(row for row in rows if "(`cancels`)" in row)


def test_a_green_run_has_no_causes(results):
    results.scenario("passes")
    results.judged(every_invariant())
    assert "## Causes\n\nNone: no scenario failed and no run-wide invariant broke." in markdown(results)


def _java_matches(pattern: str, text: str) -> bool:
    """Allure's test of a category's regex: the whole text, DOTALL (Java's ``Pattern.matches``)."""
    return re.fullmatch(pattern, text, re.S) is not None


def test_allure_files_each_failure_under_its_cause_before_its_kind(results):
    slow_discoveries(results, "same symbol again")
    unhealthy(results, "health says unhealthy")
    results.scenario("passes")
    run = load_results(results.path)
    causes = causes_of(run)
    assert annotate_allure(results.path, causes) == 2
    assert annotate_allure(results.path, causes) == 2  # again: replaced, not added
    reporting.write_allure_metadata(results.path, causes=causes)
    categories = json.loads((results.path / "categories.json").read_text())
    assert [c["name"] for c in categories[:2]] == [
        "C1 (1 scenario(s)): answers POST /ib/symbols/discover only after ≈15 s",
        "C2 (1 scenario(s)): answers GET /ib/health with HTTP 503 IB-UNHEALTHY"]
    for path in results.path.glob("*-result.json"):
        raw = json.loads(path.read_text())
        labels = [label["value"] for label in raw["labels"] if label["name"] == CAUSE_LABEL]
        if raw["status"] == "passed":
            assert not labels and CAUSE_MARK not in json.dumps(raw)
            continue
        trace_text = raw["statusDetails"]["trace"]
        assert trace_text.count(CAUSE_MARK) == 1
        first = next(c["name"] for c in categories if raw["status"] in c["matchedStatuses"]
                     and _java_matches(c.get("traceRegex", "(?s).*"), trace_text)
                     and _java_matches(c.get("messageRegex", "(?s).*"), raw["statusDetails"]["message"]))
        assert labels == [first]
    assert load_results(results.path).problems[0].category is not None  # the annotation leaves the category alone


def test_merge_copies_each_shards_history_where_the_report_reads_it(tmp_path):
    folders = []
    for index in (1, 2):
        results = ResultsDir(tmp_path / f"s{index}" / "allure-results")
        results.scenario(f"scenario {index}")
        results.judged(every_invariant())
        _history(results, [Span("scenario", f"scenario {index}", 1001.0, 1002.0, "passed")], [Life(1000.0, 1000.5)])
        folders.append(tmp_path / f"s{index}")
    out = tmp_path / "merged"
    assert merge.main(["--merge", *map(str, folders), "--out", str(out), "--no-html"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob(HISTORY_FILE)) == [
        f"shards/1/{HISTORY_FILE}", f"shards/2/{HISTORY_FILE}"]
    assert len(Histories.near(out).loaded) == 2


# ------------------------------------------------------------------------------------------- the claim, typed

def test_the_claim_is_the_innermost_claim_frame_and_cli_when_the_step_called_a_cli_claim():
    assert claim_in([("/x/support/cli_claims.py", "did_its_job"), ("/x/support/cli_claims.py", "reported_gateway_closes"),
                     ("/x/support/claims.py", "closed_count_matches_gateway"), ("/x/support/waiting.py", "settled")]) \
        == "cli.closed_count_matches_gateway"
    assert claim_in([("features/steps/a.py", "step"), ("/x/support/claims.py", "all_within"),
                     ("/x/support/claims.py", "_listed")]) == "all_within"
    assert claim_in([("features/steps/a.py", "step"), ("/x/support/waiting.py", "eventually")]) == ""


def test_the_formatter_labels_a_failure_with_the_claim_it_raised_from():
    with pytest.raises(BoundExceeded) as raised:
        claims.all_within([ApiResponse("POST", DISCOVER, None, 200, {}, 15.0, 0.0)], Bound.exactly(5.0))
    failed = SimpleNamespace(status=SimpleNamespace(name="failed"), exception=raised.value)
    passed = SimpleNamespace(status=SimpleNamespace(name="passed"), exception=None)
    assert failing_claim(SimpleNamespace(all_steps=[passed, failed])) == "all_within"
    assert failing_claim(SimpleNamespace(all_steps=[passed])) == ""


def test_the_claim_label_decides_over_the_trace(results):
    """A result the formatter labelled with its claim is grouped by the label, whatever its trace says."""
    results.stepped("labelled", [
        {"name": "When a client discovers a symbol", "exchanges": [exchange("POST", DISCOVER, 200, 0.5)]},
        {"name": "Then no connection carried two requests at the same moment", "status": "failed"}],
        message="support.verdict.ClaimFailed: x", trace="", labels={"claim": "connections_never_shared"})
    (cause,) = causes_of(load_results(results.path))
    assert cause.key == ("requirement", "connections_never_shared", "POST /ib/symbols/discover", "200")
    assert cause.behaviour.startswith("hands one IB connection to several callers at once")
    assert cause.subjects == {"one_caller"}


def test_records_written_by_the_invariants_do_not_become_causes(results):
    results.scenario("passes")
    results.judged([record("bounds", "fail", "1 of 1 past its bound", violations=[(1.0, "slow")])])
    run = load_results(results.path)
    assert causes_of(run) == [] and len(run.broken_invariants) == 1


def test_reading_a_missing_or_broken_history_groups_without_it(results):
    slow_discoveries(results, "same symbol again")
    (results.reports / HISTORY_FILE).write_bytes(b"not gzip")
    (cause,) = causes_of(load_results(results.path))
    assert cause.key == ("api", "POST /ib/symbols/discover", "≈15 s")
    assert Path(results.reports / HISTORY_FILE).exists() and not Histories.near(results.reports)


def test_rendering_the_reports_files_the_causes_in_allure_and_the_markdown(results):
    slow_discoveries(results, "same symbol again")
    results.judged(every_invariant())
    made = reporting.render_reports(results.reports, "standard", 2.0, 1, html=False)
    categories = json.loads((results.path / "categories.json").read_text())
    assert categories[0]["name"] == "C1 (1 scenario(s)): answers POST /ib/symbols/discover only after ≈15 s"
    (failed,) = load_results(results.path).problems
    assert failed.label(CAUSE_LABEL) == categories[0]["name"]
    assert "| C1 | answers POST /ib/symbols/discover only after ≈15 s |" in made.markdown.read_text()


#: A trimmed copy of the KTRDR be94b8f4 standard rehearsal (53 failed scenarios; ``fixtures/trim_ktrdr_corpus.py``
#: keeps everything a cause is read from): its causes, as the expert analysis of that run groups its defects.
KTRDR = Path(__file__).parent / "fixtures" / "ktrdr-be94b8f4-causes.tar.gz"
KTRDR_CAUSES = [  # (key, how many scenarios)
    (("api", "POST /ib/symbols/discover", "≈15 s"), 11),   # 15-s contract lookups and same-symbol pacing
    (("client IDs", "never the preferred 1; from 11"), 7),  # the registry hands out 11..50
    (("cli", "ib test", "exit 0"), 5),                      # placeholder: "not yet implemented", then OK
    (("api", "GET /ib/health", "503", "IB-UNHEALTHY", ""), 5),  # always 503 (a swallowed KeyError)
    (("requirement", "score_matches", "GET /ib/resilience", "200"), 5),  # a constant score of 100
    (("cli", "ib status", "exit 0"), 4),                    # hard-coded status, no score
    (("api", "POST /data/load", "synchronous", "no reqHistoricalData"), 4),  # the sync path never reaches IB
    (("cli", "ib cleanup", "exit 0"), 2),                   # placeholder: "Connections closed: 2"
    (("api", "POST /data/load", "no answer"), 1),           # the sync load freezes the server
    (("printed", "RuntimeWarning: coroutine 'DataManager._ensure_ib_connection.<locals>.test_connection' was never "
                 "awaited"), 1),
    (("printed", "RuntimeWarning: coroutine 'get_connection_pool' was never awaited"), 1),
    (("cli", "data load", "timed out"), 1),
    (("api", "POST /data/load", "asynchronous", "no reqHistoricalData"), 1),
    (("api", "POST /ib/symbols/discover", "200", "IB-SYMBOL-DISCOVERY-ERROR", "IB-CIRCUIT-OPEN"), 1),
    (("requirement", "status_connected_as_gateway_sees", "GET /ib/status", "200"), 1),
    (("requirement", "names_backend_address", "GET /ib/config", "200"), 1),
    (("carried over", "wait", "POST /ib/symbols/discover"), 1),  # a 506 s pace wait "Resources stay flat" left
    (("requirement", "connections_never_shared", "POST /ib/symbols/discover", "200"), 1),
]


def test_the_ktrdr_rehearsal_gives_its_causes(tmp_path):
    import tarfile

    with tarfile.open(KTRDR) as tar:
        tar.extractall(tmp_path, filter="data")
    run = load_results(tmp_path / "allure-results")
    causes = causes_of(run)
    assert len(run.problems) == 53
    assert [(c.key, len(c.findings)) for c in causes] == KTRDR_CAUSES
    filed = [s.name for c in causes for s in c.scenarios]
    assert sorted(filed) == sorted(s.name for s in run.problems) and len(set(filed)) == 53
    carried = causes[16]
    assert carried.carried_from == ["Resources stay flat over 150 requests"]
    assert [s.name for s in carried.scenarios] == ["Validation that gets a slow but timely answer lets the request through"]
    assert "wait announced 506 s" in carried.evidence
    assert causes[7].behaviour == "`ib cleanup` exits 0 and reports closing connections the gateway never saw close"
    text = markdown(ResultsDir(tmp_path / "allure-results"))
    head = text.split("**Report Generated:**", 1)[0]
    assert len(re.findall(r"^\| C\d\d \|", head, re.M)) == 18 and "**53 failed scenario(s) from 18 cause(s)**" in head


def test_a_late_fall_and_a_late_error_say_when(results):
    """A bound the claim names may be tighter than the API's: the cause says when the answer changed, or how long
    an error took (the reference backend under a 0.5 s silent-detection bound)."""
    silence = [{"fault": "silence", "plane": "proxy", "applied_s": 1.0, "healed_s": None,
                "definition": {"name": "silent", "kind": "silent", "client_id": None, "attributes": {}}}]
    score = lambda value, at: exchange("GET", "/ib/resilience", 200, 0.01, at, body={  # noqa: E731
        "success": True, "data": {"overall_resilience_score": value}})
    results.stepped("score falls late", [
        {"name": "When the gateway goes silent on every open connection", "at_s": 1.0},
        {"name": "Then the resilience score falls below healthy within the silent-detection bound", "status": "failed",
         "at_s": 1.1, "exchanges": [score(100, 1.1), score(100, 1.2), score(30, 1.3)]}],
        message="support.waiting.ConditionTimeout: x", trace=trace("claims.score_falls", "claims.score_matches",
                                                                   "waiting.eventually"), faults=silence)
    results.stepped("error comes late", [
        {"name": "When a client discovers a symbol", "at_s": 1.0,
         "exchanges": [exchange("POST", DISCOVER, 503, 3.05, 1.1, "IB-SILENT")]},
        {"name": "Then the request fails within the silent-detection bound instead of hanging", "status": "failed",
         "at_s": 4.2}],
        message="support.verdict.BoundExceeded: 3.05 s > 0.5 s", trace=trace("claims.failed_within",
                                                                             "verdict.require_within"), faults=silence)
    behaviours = {c.scenarios[0].name: c.behaviour for c in causes_of(load_results(results.path))}
    assert behaviours == {
        "score falls late": "answers GET /ib/resilience with HTTP 200 (score 100, then score 30 from 0.3 s after "
                            "silence began)",
        "error comes late": "answers POST /ib/symbols/discover with HTTP 503 IB-SILENT after ≈3 s"}
