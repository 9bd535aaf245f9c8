"""The Markdown summary and its critical checks, from hand-made Allure result files (no processes)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import uuid
from pathlib import Path

import pytest
from behave.parser import parse_file

from reporting_helpers import run_bounded
from support import reporting
from support.allure_formatter import scenario_labels
from support.claims import failed_within
from support.drivers.api import ApiResponse
from support.results import CATEGORIES, category_of, critical_checks, junit_counts, load_results
from support.settings import ROOT
from support.waiting import eventually

HEALTHY = {"overall_resilience_score": 100.0, "connection_pool_health": {"healthy_connections": 2, "total_connections": 2}}


class ResultsDir:
    """Writes Allure result files the way allure-behave does (result JSON + attachment files)."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.clock_ms = 1_700_000_000_000

    def _attach(self, name: str, body: str, kind: str, extension: str) -> dict:
        source = f"{uuid.uuid4()}-attachment.{extension}"
        (self.path / source).write_text(body)
        return {"name": name, "source": source, "type": kind}

    def scenario(self, name: str, status: str = "passed", feature: str = "A feature", message: str = "",
                 failing_step: str = "", exchanges: list | None = None, faults: list | None = None,
                 cli: str = "", samples: list | None = None, labels: dict | None = None) -> None:
        attachments = []
        if exchanges is not None:
            attachments.append(self._attach("API exchanges", json.dumps(exchanges), "application/json", "json"))
        if faults:
            attachments.append(self._attach("Fault timeline", json.dumps(faults), "application/json", "json"))
        if cli:
            attachments.append(self._attach("CLI transcripts", cli, "text/plain", "txt"))
        if samples:
            attachments.append(self._attach("Backend resource samples", json.dumps(samples), "application/json", "json"))
        steps = [{"name": "Given the backend is serving requests through a healthy gateway", "status": "passed"}]
        if failing_step:
            steps.append({"name": failing_step, "status": status, "statusDetails": {"message": message}})
        self.clock_ms += 1000
        result = {"name": name, "status": status, "steps": steps, "attachments": attachments,
                  "start": self.clock_ms, "stop": self.clock_ms + 500,
                  "labels": [{"name": "feature", "value": feature},
                             *({"name": k, "value": v} for k, v in (labels or {}).items())]}
        if message:
            result["statusDetails"] = {"message": message}
        (self.path / f"{uuid.uuid4()}-result.json").write_text(json.dumps(result))


def exchange(path: str, started_s: float, elapsed_s: float, status: int | None, data: dict | None) -> dict:
    return {"method": "GET", "path": path, "started_s": started_s, "elapsed_s": elapsed_s, "status": status,
            "body": None if status is None else {"success": 200 <= status < 300, "data": data}}


def fault(kind: str, applied_s: float, healed_s: float | None, **attributes) -> dict:
    return {"fault": kind, "plane": "proxy", "definition": {"kind": kind, "attributes": attributes},
            "applied_s": applied_s, "healed_s": healed_s}


@pytest.fixture
def results(tmp_path: Path) -> ResultsDir:
    return ResultsDir(tmp_path / "reports" / "allure-results")


def real_message(call) -> str:
    """The message a real claim raises, as Allure records it (``Type: message``)."""
    with pytest.raises(AssertionError) as raised:
        call()
    return f"{type(raised.value).__name__}: {raised.value}"


def checks_by_name(results: ResultsDir) -> dict:
    return {c.name: c for c in critical_checks(load_results(results.path))}


def test_counts_failures_and_categories_in_the_markdown(results):
    silent = real_message(lambda: failed_within(ApiResponse("POST", "/ib/symbols/discover", None, 200,
                                                            {"success": True}, 0.2, 0.0), 5.0))
    score = real_message(lambda: eventually(lambda: None, 0.01, "the resilience score below 75"))
    results.scenario("passes")
    results.scenario("silent one", "failed", message=silent,
                     failing_step="Then the request fails within the silent-detection bound instead of hanging")
    results.scenario("score one", "failed", message=score, failing_step="Then the resilience score falls below 75")
    results.scenario("broken one", "broken", message="ConnectionRefusedError: [Errno 111]", failing_step="When x")
    results.scenario("skipped one", "skipped", message="skipped: needs.gateway_control: no simulator")
    run = load_results(results.path)
    assert run.counts == {"passed": 1, "failed": 2, "broken": 1, "skipped": 1, "unknown": 0}
    text = reporting.markdown_report(run, "basic", 12.5, 1, {"tests": 4, "failures": 2, "errors": 1, "skipped": 0},
                                     dt.datetime(2026, 1, 2, 3, 4, 5))
    for label, value in (("Total Scenarios", 5), ("Passed", 1), ("Failed", 2), ("Skipped", 1), ("Errors", 1)):
        assert re.search(rf"^- \*\*{label}:\*\* {value}\b", text, re.M), label
    assert "**Overall Result:** ❌ FAILED" in text and "**Execution Time:** 12.50 seconds" in text
    assert "category:** Silent connection not caught" in text and "category:** Resilience score" in text
    assert "category:** Suite or target errors" in text
    assert "`Then the request fails within the silent-detection bound instead of hanging`" in text
    assert "expected a failure, not success or a hang" in text
    assert "--name 'silent one'" in text and "⚠️ (differs" in text  # JUnit said 4 tests, Allure has 5
    assert "Silent connections are not caught" in text.split("## Recommendations")[1]


def test_all_passing_run_is_passed_and_says_what_next(results):
    results.scenario("a", exchanges=[exchange("/ib/resilience", 0.1, 0.05, 200, HEALTHY)])
    text = reporting.markdown_report(load_results(results.path), "basic", 3.0, 0, {}, dt.datetime.now())
    assert "**Overall Result:** ✅ PASSED" in text and "--level standard" in text and "ib-resilience monitor" in text


def test_nothing_ran_is_a_failure(results):
    text = reporting.markdown_report(load_results(results.path), "basic", 1.0, 0, {}, dt.datetime.now())
    assert "**Overall Result:** ❌ FAILED" in text and "No scenario result was recorded" in text


def test_a_coroutine_warning_in_a_cli_transcript_fails_the_run_even_if_scenarios_passed(results):
    results.scenario("cli", cli="$ refbackend ib test  (exit 0, 0.7 s)\n"
                                "sys:1: RuntimeWarning: coroutine 'acquire_ib_connection' was never awaited\n")
    run = load_results(results.path)
    check = checks_by_name(results)["Async/coroutine errors"]
    assert check.verdict == "fail" and "acquire_ib_connection" in check.observed
    assert "❌ FAILED" in reporting.markdown_report(run, "basic", 1.0, 0, {}, dt.datetime.now())


def test_clean_cli_transcripts_are_counted(results):
    results.scenario("cli", cli="$ refbackend ib test  (exit 0, 0.7 s)\nIB OK\n\n$ refbackend ib status  (exit 0, 0.5 s)\n")
    check = checks_by_name(results)["Async/coroutine errors"]
    assert check.verdict == "pass" and "2 CLI run(s) of 1 scenario(s)" in check.observed


def test_silent_detection_and_recovery_times_come_from_the_exchanges(results):
    results.scenario("silence then recovery", faults=[fault("silent", 1.0, 6.0)], exchanges=[
        exchange("/ib/health", 0.2, 0.1, 200, {"healthy": True}),            # before the fault
        exchange("/ib/health", 1.5, 0.1, 200, {"healthy": True}),            # not noticed yet
        exchange("/ib/health", 2.0, 2.5, 503, {"healthy": False}),           # noticed: 2.0 + 2.5 - 1.0 = 3.5 s
        exchange("/ib/symbols/discover", 6.5, 0.3, 200, {"symbol_info": {"symbol": "AAPL"}}),  # back: 0.8 s
    ])
    checks = checks_by_name(results)
    assert checks["Silent-connection detection"].verdict == "pass"
    assert "max 3.50 s" in checks["Silent-connection detection"].observed
    assert checks["Recovery time"].verdict == "pass" and "max 0.80 s" in checks["Recovery time"].observed


def test_slow_detection_and_no_recovery_fail(results):
    results.scenario("hang", "failed", message="AssertionError: the failure took 31.00 s > 5.0 s",
                     faults=[fault("silent", 0.0, 40.0)], exchanges=[
                         exchange("/ib/symbols/discover", 0.5, 31.0, None, None),
                         exchange("/ib/health", 41.0, 0.1, 503, {"healthy": False})])
    checks = checks_by_name(results)
    assert checks["Silent-connection detection"].verdict == "fail" and "31.50" in checks["Silent-connection detection"].observed
    assert checks["Recovery time"].verdict == "fail" and "not back after silent" in checks["Recovery time"].observed


def test_a_score_that_stays_high_during_an_outage_fails(results):
    results.scenario("constant score", "failed", message="ConditionTimeout: the resilience score below 75: not true",
                     faults=[fault("refuse", 1.0, None, keep_existing=False)],
                     exchanges=[exchange("/ib/resilience", t, 0.05, 200, HEALTHY) for t in (1.2, 3.0, 6.5)])
    check = checks_by_name(results)["Resilience score (under faults)"]
    assert check.verdict == "fail" and "stayed 100" in check.observed


def test_partial_faults_leave_the_score_alone(results):
    results.scenario("history unanswered", faults=[fault("unanswered", 0.0, 9.0, request_types=["reqHistoricalData"]),
                                                   fault("refuse", 0.0, 9.0, keep_existing=True)],
                     exchanges=[exchange("/ib/resilience", t, 0.05, 200, HEALTHY) for t in (1.0, 6.0, 8.0)])
    checks = checks_by_name(results)
    assert checks["Resilience score (under faults)"].verdict == "not exercised"
    assert checks["Silent-connection detection"].verdict == "not exercised"


def test_healthy_score_ignores_scenarios_with_faults_and_empty_pools(results):
    empty_pool = {"overall_resilience_score": 65.0, "connection_pool_health": {"healthy_connections": 0}}
    results.scenario("healthy", exchanges=[exchange("/ib/resilience", 0.1, 0.05, 200, HEALTHY),
                                           exchange("/ib/resilience", 0.3, 0.05, 200, empty_pool)])
    results.scenario("faulted", faults=[fault("silent", 0.0, 1.0)],
                     exchanges=[exchange("/ib/resilience", 0.5, 0.05, 200, {**HEALTHY, "overall_resilience_score": 30})])
    check = checks_by_name(results)["Resilience score (healthy)"]
    assert check.verdict == "pass" and "min 100, max 100 over 1 report" in check.observed


def test_leak_check_reads_the_resource_samples(results):
    samples = [{"t_s": i * 0.2, "rss_mb": 50 + i, "open_fds": 10, "threads": 3, "ib_connections": 2} for i in range(8)]
    results.scenario("flat?", samples=samples)
    check = checks_by_name(results)["Leaks"]
    assert "RSS +6.0 MB" in check.observed and check.verdict == "pass"  # the scenario's own limits judge growth


def test_categories_match_real_messages():
    silent = real_message(lambda: failed_within(ApiResponse("GET", "/ib/health", None, 200, {}, 9.0, 0.0), 5.0))
    assert category_of("failed", silent)["key"] == "silent"
    assert category_of("failed", "AssertionError: the CLI printed:\nib test: ['RuntimeWarning: x']")["key"] == "async"
    assert category_of("failed", "AssertionError: RSS grew by 40.0 MB (> 20 MB) over 90 samples")["key"] == "leaks"
    assert category_of("failed", "AssertionError: refused client IDs [1]; expected [1, 2]")["key"] == "client_ids"
    assert category_of("broken", "KeyError: 'x'")["key"] == "suite"
    assert category_of("passed", "anything") is None
    # Allure applies the same patterns with Java's Pattern.matches(): keep them free of Python-only syntax.
    assert all("(?P" not in c["messageRegex"] for c in CATEGORIES)


def test_junit_counts_sum_every_suite(tmp_path):
    (tmp_path / "TESTS-a.xml").write_text('<testsuite tests="3" failures="1" errors="0" skipped="1"/>')
    (tmp_path / "TESTS-b.xml").write_text('<testsuite tests="2" failures="0" errors="1" skipped="0"/>')
    (tmp_path / "TESTS-c.xml").write_text("not xml")
    assert junit_counts(tmp_path) == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1}


def test_render_reports_without_the_allure_cli_still_writes_the_markdown(results, monkeypatch):
    results.scenario("a")
    monkeypatch.setattr(reporting, "ALLURE_CLI", Path("/nonexistent/allure"))
    made = reporting.render_reports(results.path.parent, "basic", 2.0, 0)
    assert re.fullmatch(r"resilience_test_report_\d{8}_\d{6}\.md", made.markdown.name)
    text = made.markdown.read_text()
    assert "Allure HTML not generated" in text and "make install" in made.html_error
    assert json.loads((results.path / "executor.json").read_text())["buildName"].startswith("ib-resilience basic")
    assert {c["name"] for c in json.loads((results.path / "categories.json").read_text())} == {c["name"] for c in CATEGORIES}


def test_labels_come_from_effective_tags():
    feature = parse_file(str(ROOT / "features" / "silent_connections.feature"))
    for scenario in feature.walk_scenarios():
        labels = {}
        for label in scenario_labels(scenario):
            labels.setdefault(label.name, []).append(label.value)
        level = next(t for t in ("basic", "standard", "exhaustive") if t in scenario.effective_tags)
        assert labels["level"] == [level]
        assert labels["severity"] == [{"basic": "critical", "standard": "normal", "exhaustive": "minor"}[level]]
        assert labels["phase"] == ["Phase 1: systematic validation"]
        assert labels["location"] == [f"{scenario.filename}:{scenario.line}"]


def test_formatter_keeps_capability_skips_with_their_reason_and_hides_excluded(tmp_path):
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "demo.feature").write_text(
        "@phase2\nFeature: Demo\n\n  Rule: the rule\n\n    @basic\n    Scenario: runs\n      Given nothing\n\n"
        "    @basic @needs.x\n    Scenario: lacks a capability\n      Given nothing\n\n"
        "    @exhaustive\n    Scenario: not selected\n      Given nothing\n")
    (features / "steps" / "steps.py").write_text("from behave import given\n\n@given('nothing')\ndef step(context):\n    pass\n")
    (features / "environment.py").write_text(
        "def before_scenario(context, scenario):\n"
        "    if 'needs.x' in scenario.effective_tags:\n        scenario.skip('needs.x: the target lacks x')\n")
    out = tmp_path / "allure-results"
    done = run_bounded([sys.executable, "-m", "behave", str(features), "--tags", "@basic", "--no-skipped",
                        "-f", "support.allure_formatter:AllureFormatter", "-o", str(out), "-f", "null",
                        "-D", "AllureFormatter.hide_excluded=true"], 60.0, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout
    run = load_results(out)
    by_name = {s.name: s for s in run.scenarios}
    assert set(by_name) == {"runs", "lacks a capability"}
    assert by_name["lacks a capability"].status == "skipped"
    assert by_name["lacks a capability"].message == "skipped: needs.x: the target lacks x"
    assert by_name["runs"].label("story") == "the rule" and by_name["runs"].label("phase") == "Phase 2: garbage collection"
