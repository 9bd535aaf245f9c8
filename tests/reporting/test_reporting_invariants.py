"""The report shows the run's own verdicts (issue 21): the run-wide invariants that ``after_all`` judged, read back
from their Allure results and ``run-invariants.json``, never judged again; scenarios and invariants kept apart."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from reporting_helpers import SEED_ROWS, ResultsDir, checks_by_name, every_invariant, record, section, table_rows

from ibreport import summary as reporting
from ibreport.results import (
    INVARIANT_CATEGORY,
    NOT_JUDGED_TEXT,
    allure_categories,
    junit_agrees,
    junit_counts,
    load_results,
)
from ibresilience import merge
from support import run_evidence
from support.checks.run_wide import BY_KEY, INVARIANTS

FALL = BY_KEY["reports_fall"]


def markdown(results: ResultsDir, return_code: int | None = 0) -> str:
    return reporting.markdown_report(load_results(results.path), "standard", 9.0, return_code,
                                     junit_counts(results.reports / "junit"), dt.datetime(2026, 12, 2, 4, 10))


def test_scenarios_and_invariants_are_kept_apart(results):
    results.scenario("runs")
    results.scenario("lacks a capability", "skipped", message="skipped: needs.gateway_control: no simulator")
    results.judged(every_invariant(cancels={"status": "not exercised", "message": "nothing was cancelled"}))
    junit = results.reports / "junit"
    (junit / "TESTS-demo.xml").write_text('<testsuite tests="2" failures="0" errors="0" skipped="1">'
                                          '<testcase name="runs" status="passed"/><testcase name="lacks a capability" '
                                          'status="skipped"><skipped message="needs.gateway_control: no simulator"/>'
                                          '</testcase></testsuite>')
    run = load_results(results.path)
    assert [s.name for s in run.scenarios] == ["runs", "lacks a capability"]
    assert run.counts == {"passed": 1, "failed": 0, "broken": 0, "skipped": 1, "unknown": 0}
    assert [s.name for s in run.capability_skips] == ["lacks a capability"]
    assert sorted(i.key for i in run.invariants) == sorted(i.key for i in INVARIANTS)
    assert all(i.recorded and not i.worker for i in run.invariants)
    assert junit_counts(junit) == {"tests": 2, "failures": 0, "errors": 0, "skipped": 1}  # the invariants' file apart
    assert junit_agrees(run, junit_counts(junit))
    text = markdown(results)
    assert "**Total Scenarios:** 2 selected (1 ran, 1 skipped" in text and "**Success Rate:** 100.0% (1/1)" in text
    assert "2 tests, 0 failures, 0 errors, 1 skipped ✅ (agrees" in text and "nothing was cancelled` (1)" not in text
    assert "**Run-wide invariants:** 10 held, 0 broken ✅, 1 not exercised" in text
    assert "| Run-wide invariants |" not in text.split("### Results by Feature", 1)[1].split("###", 1)[0]
    assert "**Overall Result:** ✅ PASSED" in text


def test_the_critical_checks_are_the_runs_verdicts_never_judged_again(results):
    # What the scenarios attached would make a second judge cry foul; the run judged otherwise, and it is the judge.
    results.scenario("cli", cli="$ refbackend ib test  (exit 0, 0.7 s)\n"
                                "sys:1: RuntimeWarning: coroutine 'acquire_ib_connection' was never awaited\n")
    results.judged(every_invariant(output={"message": "nothing complained in 1 CLI run(s)"},
                                   reports_fall={"figures": {"detection_s": [3.5, 1.0, 2.0]}},
                                   reports_recover={"figures": {"recovery_s": [0.8]}},
                                   liveness={"figures": {"sample_s": [0.01, 0.5, 0.02, 0.3]}}))
    checks = checks_by_name(results)
    assert checks["Async/coroutine errors"].verdict == "pass"
    assert checks["Async/coroutine errors"].observed == "nothing complained in 1 CLI run(s)"
    for name, key in SEED_ROWS.items():
        assert checks[name].verdict == "pass" and f"invariant `{key}`" in checks[name].requirement, name
    silent = checks["Silent-connection detection"].observed
    assert silent.startswith("noticed after max 3.50 s, median 2.00 s over 3 outage(s); reports_fall: pass"), silent
    assert checks["Recovery time"].observed.startswith("healthy again after max 0.80 s, median 0.80 s over 1")
    assert "slowest samples 0.02, 0.3, 0.5 s" in checks["Responsiveness"].observed
    for invariant in INVARIANTS:
        if invariant.key not in SEED_ROWS.values():
            assert checks[invariant.title].verdict == "pass" and invariant.source in checks[invariant.title].requirement
    assert "**Overall Result:** ✅ PASSED" in markdown(results)


def test_a_constant_score_run_shows_the_broken_invariant_and_fails(results):
    # The constant-score mutant: every scenario the level ran passed, but the run-wide invariant saw the score
    # stay at 100 in an outage (the report once showed ✅ here from its own reading of the attachments).
    results.scenario("A healthy gateway scores at least 75", tags=("score",))
    results.scenario("The gateway stops answering after the handshake", tags=("silent",))
    said = "score 100 (IB fine) 5.6 s into an outage (3.1 s – 14.0 s), past 5 s (the silent-detection bound)"
    results.judged(every_invariant(reports_fall={
        "status": "fail", "message": "3 of 4 self-report(s) said IB was fine during an outage",
        "violations": [(8.7, said), (10.2, said.replace("5.6 s", "7.1 s"))], "violation_count": 3,
        "figures": {"detection_s": []}}))
    text = markdown(results, return_code=0)
    rows = table_rows(text)
    assert "❌ fail" in rows["Resilience score (under faults)"] and "❌ fail" in rows["Silent-connection detection"]
    assert "3 of 4 self-report(s) said IB was fine" in rows["Resilience score (under faults)"]
    assert "at 8.70 s: score 100 (IB fine)" in rows["Resilience score (under faults)"]
    assert "**Overall Result:** ❌ FAILED" in text
    assert "**Run-wide invariants:** 10 held, 1 broken ❌, 0 not exercised" in text
    listed = section(text, "Run-wide invariants")
    assert f"- ❌ **{FALL.title}** (`reports_fall`) — fail: 3 of 4 self-report(s)" in listed
    assert f"  - at 8.70 s: {said}" in listed and "  - … 1 more violation(s)" in listed
    broken = section(text, "Broken Run-wide Invariants")
    assert f"#### 1. Run-wide invariant: {FALL.title}" in broken and f"**Requirement:** {FALL.source}" in broken
    assert "run-invariants.json" in broken and "history.json.gz" in broken and f"- at 8.70 s  {said}" in broken
    assert "**Re-run:** `ib-resilience run --level standard`" in broken
    assert section(text, "Failed Scenarios").strip() == "None."
    advice = text.split("## Recommendations", 1)[1]
    assert f"**Run-wide invariant broken — {FALL.title}**" in advice and "3 violation(s)" in advice
    assert "each phase may report `working` only on live evidence" in advice  # the score's advice
    assert not reporting.overall_passed(load_results(results.path), 0, [])


def test_a_run_with_no_records_is_not_judged_and_never_passes(results):
    results.scenario("passes")
    text = markdown(results, return_code=0)
    rows = table_rows(text)
    for name in [*SEED_ROWS, *(i.title for i in INVARIANTS if i.key not in SEED_ROWS.values())]:
        assert rows[name].endswith(f"| {NOT_JUDGED_TEXT} | ⚠️ not judged |"), rows[name]
    assert not any("✅" in row for row in rows.values()), rows
    assert "**Overall Result:** ❌ FAILED" in text
    assert "⚠️ **Not judged:** the run ended before its run-wide invariants were judged" in text
    assert "**The run-wide invariants were not judged**" in text.split("## Recommendations", 1)[1]


def test_an_invariant_whose_record_is_lost_keeps_the_verdict_of_its_allure_result(results):
    results.scenario("passes")
    results.judged(every_invariant(one_caller={"status": "fail", "message": "1 connection carried two callers",
                                               "violations": [(4.25, "connection 3: reqCurrentTime and reqHistory")]}),
                   json_file=False)
    run = load_results(results.path)
    (lost,) = [i for i in run.invariants if i.key == "one_caller"]
    assert not lost.recorded and lost.status == "fail" and lost.source == BY_KEY["one_caller"].source
    assert [(v.at_s, v.text) for v in lost.violations] == [(4.25, "connection 3: reqCurrentTime and reqHistory")]
    row = table_rows(markdown(results))[BY_KEY["one_caller"].title]
    assert "❌ fail" in row and "at 4.25 s: connection 3" in row


def test_a_record_left_by_an_earlier_run_is_not_taken_for_this_runs(results):
    results.scenario("passes")
    results.judged(every_invariant(reports_fall={"status": "fail", "message": "1 of 1 self-report(s) said IB was fine"}),
                   json_file=False)
    stale = every_invariant(reports_fall={"message": "an earlier run", "figures": {"detection_s": [0.5]}})
    (results.reports / run_evidence.INVARIANTS_FILE).write_text(json.dumps(stale))
    check = checks_by_name(results)["Resilience score (under faults)"]
    assert check.verdict == "fail" and "an earlier run" not in check.observed and "0.50 s" not in check.observed


def test_the_workers_records_are_combined(results):
    results.scenario("passes")
    reporting.write_properties(results.path / "environment.properties", {"run.workers": "2"})
    results.judged(every_invariant("w1", reports_fall={"figures": {"detection_s": [1.0, 2.0]}},
                                   reports_recover={"status": "not exercised", "message": "no quiet report"},
                                   cancels={"status": "not exercised", "message": "nothing was cancelled"}))
    results.judged(every_invariant("w2", reports_fall={"status": "fail", "message": "1 of 2 said IB was fine",
                                                       "violations": [(30.5, "score 100 in an outage")],
                                                       "figures": {"detection_s": [4.0]}},
                                   cancels={"status": "not exercised", "message": "nothing was cancelled"}))
    run = load_results(results.path)
    assert {i.worker for i in run.invariants} == {"w1", "w2"} and all(i.recorded for i in run.invariants)
    assert run.invariant("reports_fall").status == "fail"        # one worker broke it
    assert run.invariant("reports_recover").status == "pass"     # one held it, the other did not exercise it
    assert run.invariant("cancels").status == "not exercised"    # neither exercised it
    checks = checks_by_name(results)
    under = checks["Resilience score (under faults)"]
    assert under.verdict == "fail" and "max 4.00 s, median 2.00 s over 3 outage(s)" in under.observed
    assert "w1: reports_fall: pass as recorded; w2: 1 of 2 said IB was fine" in under.observed
    assert "at 30.50 s (w2): score 100 in an outage" in under.observed
    assert checks["Recovery time"].verdict == "pass" and "w1: no quiet report" in checks["Recovery time"].observed
    assert checks[BY_KEY["cancels"].title].verdict == "not exercised"
    text = markdown(results)
    listed = section(text, "Run-wide invariants")
    assert f"- ❌ **{FALL.title}** (`reports_fall`) — fail\n  - ✅ w1 — pass: reports_fall: pass as recorded\n" \
           "  - ❌ w2 — fail: 1 of 2 said IB was fine\n    - at 30.50 s: score 100 in an outage" in listed
    assert "broken in w2" in section(text, "Broken Run-wide Invariants")
    assert "workers/w2/run-invariants.json" in section(text, "Broken Run-wide Invariants")
    assert "**Overall Result:** ❌ FAILED" in text


def test_a_worker_that_judged_nothing_is_named_and_fails_the_run(results):
    results.scenario("passes")
    reporting.write_properties(results.path / "environment.properties", {"run.workers": "3"})
    results.judged(every_invariant("w1"))
    results.judged(every_invariant("w2"))
    text = markdown(results)
    assert "⚠️ **Not judged by worker(s) w3:**" in text and "**Overall Result:** ❌ FAILED" in text
    assert "**The run-wide invariants were not judged** by w3" in text


def test_a_broken_invariant_has_its_own_allure_category(results):
    results.judged([record("idle", "fail", "2 connection(s) idle past the timeout", violations=[(61.0, "conn 4")])])
    (raw,) = [json.loads(p.read_text()) for p in results.path.glob("*-result.json")]
    categories = allure_categories()

    def shown(status: str, message: str, trace: str) -> str:
        return next(c["name"] for c in categories if status in c["matchedStatuses"]
                    and re.fullmatch(c["messageRegex"], message)
                    and re.fullmatch(c.get("traceRegex", "(?s).*"), trace))

    details = raw["statusDetails"]
    assert shown(raw["status"], details["message"], details["trace"]) == INVARIANT_CATEGORY
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'x'"
    assert shown("failed", "KeyError: 'x'", traceback) == "Unclassified failures (no category prefix)"


def _shard(root: Path, index: int, count: int, records: list[dict]) -> Path:
    """A shard's reports folder as ``ib-resilience run --shard I/N`` leaves it (its behave in ``workers/w1``)."""
    folder = root / f"s{index}"
    shard = ResultsDir(folder / "allure-results")
    shard.scenario(f"scenario of shard {index}", labels={"location": f"features/demo.feature:{index}"})
    shard.judged(records)
    reporting.write_properties(shard.path / "environment.properties", {"run.shard": f"{index}/{count}",
                                                                       "run.level": "basic"})
    reporting.record_run(shard.path, "basic", 10.0 * index, 1 if any(r["status"] == "fail" for r in records) else 0,
                         ["--level", "basic", "--shard", f"{index}/{count}"])
    return folder


def test_merge_keeps_each_shards_invariants_and_the_report_combines_them(tmp_path, capsys):
    one = _shard(tmp_path, 1, 2, every_invariant("w1", reports_fall={"figures": {"detection_s": [3.0]}}))
    two = _shard(tmp_path, 2, 2, every_invariant("w1", reports_fall={
        "status": "fail", "message": "1 of 3 said IB was fine", "violations": [(12.0, "score 100 in an outage")],
        "figures": {"detection_s": [1.0]}}))
    out = tmp_path / "merged"
    assert merge.main(["--merge", str(one), str(two), "--out", str(out), "--no-html"]) == 1
    printed = capsys.readouterr().out
    assert "merged 2 scenario result(s) from 2 folder(s)" in printed
    # One line per invariant, combined over the shards (failed if any shard's failed), as the Markdown counts them.
    assert "run-wide invariants: 10 held, 1 broken (" in printed and "(shard 2/2)" in printed
    records = json.loads((out / run_evidence.INVARIANTS_FILE).read_text())
    assert len(records) == 2 * len(INVARIANTS)
    assert {r["worker"] for r in records} == {"shard 1/2", "shard 2/2"}
    names = [json.loads(p.read_text())["name"] for p in (out / "allure-results").glob("*-result.json")]
    invariant_names = [n for n in names if n.endswith("/2)")]
    assert len(invariant_names) == len(set(invariant_names)) == 2 * len(INVARIANTS)
    suite = ElementTree.parse(out / "junit" / run_evidence.JUNIT_FILE).getroot()
    cases = [case.get("name") for case in suite.iter("testcase")]
    assert len(cases) == len(set(cases)) == 2 * len(INVARIANTS) and suite.get("failures") == "1"
    run = load_results(out / "allure-results")
    assert run.total == 2 and len(run.invariants) == 2 * len(INVARIANTS)
    fall = run.invariant("reports_fall")
    assert fall.status == "fail" and sorted(fall.figures("detection_s")) == [1.0, 3.0]
    (text,) = [p.read_text() for p in out.glob("resilience_test_report_*.md")]
    row = table_rows(text)["Resilience score (under faults)"]
    assert "❌ fail" in row and "shard 1/2: reports_fall: pass as recorded; shard 2/2: 1 of 3 said IB was fine" in row
    assert "at 12.00 s (shard 2/2): score 100 in an outage" in row
    assert "**Overall Result:** ❌ FAILED" in text and "broken in shard 2/2" in text
