"""The Markdown summary, categories, labels and plots, from hand-made Allure result files and small behave runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import SimpleNamespace

import pytest
from behave.parser import parse_file
from reporting_helpers import checks_by_name, every_invariant, run_bounded

from ibreport import summary as reporting
from ibreport.allure_formatter import feature_epic, scenario_labels
from ibreport.record import build_record, rewrite_junit
from ibreport.results import (
    FAILURE_KINDS,
    INVARIANT_CATEGORY,
    allure_categories,
    capability_of,
    categorise,
    junit_counts,
    kind_of,
    load_results,
    over_bound_pct,
    read_properties,
)
from support import evidence
from support.claims import failed_within
from support.drivers.api import ApiResponse
from support.drivers.processes import ProcessSample
from support.plots import resources_figure, resources_png, y_range
from support.settings import ROOT
from support.waiting import Bound, eventually


def real_message(call) -> str:
    """The message a real claim raises, as Allure records it (``Type: message``)."""
    with pytest.raises(AssertionError) as raised:
        call()
    return f"{type(raised.value).__name__}: {raised.value}"


def test_counts_failures_and_categories_in_the_markdown(results):
    silent = real_message(lambda: failed_within(ApiResponse("POST", "/ib/symbols/discover", None, 200,
                                                            {"success": True}, 0.2, 0.0),
                                                Bound.exactly(5.0, "the silent-detection bound")))
    score = real_message(lambda: eventually(lambda: None, Bound.exactly(0.01), "the resilience score below 75"))
    results.scenario("passes")
    results.scenario("silent one", "failed", message=silent, tags=("phase1", "silent", "basic"),
                     failing_step="Then the request fails within the silent-detection bound instead of hanging")
    results.scenario("score one", "failed", message=score, failing_step="Then the resilience score falls below 75",
                     tags=("score",))
    results.scenario("refused one", "broken", message="ConnectionRefusedError: [Errno 111]", failing_step="When x")
    results.scenario("broken one", "broken", message="KeyError: 'x'", failing_step="When y")
    results.scenario("skipped one", "skipped", message="skipped: needs.gateway_control: no simulator")
    run = load_results(results.path)
    assert run.counts == {"passed": 1, "failed": 2, "broken": 2, "skipped": 1, "unknown": 0}
    text = reporting.markdown_report(run, "basic", 12.5, 1, {"tests": 6, "failures": 2, "errors": 2, "skipped": 1},
                                     dt.datetime(2026, 1, 2, 3, 4, 5))
    for label, value in (("Total Scenarios", 6), ("Passed", 1), ("Failed", 2), ("Skipped", 1), ("Errors", 2)):
        assert re.search(rf"^- \*\*{label}:\*\* {value}\b", text, re.M), label
    assert "**Overall Result:** ❌ FAILED" in text and "**Execution Time:** 12.50 seconds" in text
    assert "category:** Claim failed · silent connections & validation (phase 1)" in text
    assert "category:** Time bound exceeded · resilience score" in text
    assert "category:** Target unreachable · A feature" in text and "category:** Suite error (not an assertion)" in text
    assert "`Then the request fails within the silent-detection bound instead of hanging`" in text
    assert "expected a failure, not success or a hang" in text
    assert "--name 'silent one'" in text
    assert "6 tests, 2 failures, 2 errors, 1 skipped ✅ (agrees:" in text
    assert "  - `needs.gateway_control: no simulator` (1): skipped one" in text
    advice = text.split("## Recommendations")[1]
    assert "Claims failed — silent connections & validation (phase 1)" in advice and "reqCurrentTime" in advice
    assert "could not reach the target" in advice and "--timeout-multiplier" not in advice


def test_all_passing_run_is_passed_and_says_what_next(results):
    results.scenario("a")
    results.judged(every_invariant())
    text = reporting.markdown_report(load_results(results.path), "basic", 3.0, 0, {}, dt.datetime.now())
    assert "**Overall Result:** ✅ PASSED" in text and "--level standard" in text and "ib-resilience monitor" in text


def test_nothing_ran_is_a_failure(results):
    text = reporting.markdown_report(load_results(results.path), "basic", 1.0, 0, {}, dt.datetime.now())
    assert "**Overall Result:** ❌ FAILED" in text and "No scenario result was recorded" in text


def test_leaks_is_the_outcome_of_the_stability_scenarios_with_their_resource_figures(results):
    samples = [{"t_s": i * 0.2, "rss_mb": 50 + i, "open_fds": 10, "threads": 3, "ib_connections": 9} for i in range(8)]
    results.scenario("sampled, not about leaks", samples=samples, tags=("api",))
    assert checks_by_name(results)["Leaks"].verdict == "not exercised"  # only the stability scenarios count
    reporting.write_properties(results.path / "environment.properties", {"profile.pool_limit": "5"})
    results.scenario("flat?", samples=samples, tags=("stability", "leaks"))
    check = checks_by_name(results)["Leaks"]
    # A peak of 9 connections over a pool of 5 is shown, never judged here: the scenario's own claims passed.
    assert check.verdict == "pass" and "flat?: RSS +6.0 MB" in check.observed and "peak 9 IB connection(s) (pool 5)" \
        in check.observed
    results.scenario("grows", "failed", message="AssertionError: RSS grew by 31 MB", failing_step="Then RSS is flat",
                     tags=("stability",))
    check = checks_by_name(results)["Leaks"]
    assert check.verdict == "fail" and "failed: grows" in check.observed


def test_each_failure_kind_from_status_step_and_message():
    assert kind_of("passed", "", "then") is None and kind_of("skipped", "skipped: x", "") is None
    claim = real_message(lambda: failed_within(ApiResponse("GET", "/ib/health", None, 200, {}, 1.0, 0.0),
                                                Bound.exactly(5.0, "the silent-detection bound")))
    assert kind_of("failed", claim, "then").key == "claim"
    slow = real_message(lambda: failed_within(ApiResponse("GET", "/ib/health", None, 503, {}, 6.2, 0.0),
                                               Bound.exactly(5.0, "the silent-detection bound")))
    assert kind_of("failed", slow, "then").key == "bound" and over_bound_pct(slow) == pytest.approx(24.0)
    never = real_message(lambda: eventually(lambda: None, Bound.exactly(0.01), "the resilience score below 75"))
    assert kind_of("failed", never, "then").key == "bound" and over_bound_pct(never) is None
    # The same messages at a Given or Background step: the scenario never reached its claim.
    assert kind_of("failed", never, "given").key == "precondition"
    assert kind_of("failed", claim, "then", in_background=True).key == "precondition"
    assert kind_of("failed", slow, "when").key == "action"
    refused = "AssertionError: expected 503: GET /ib/health → connection failed: ConnectionError in 0.00 s"
    assert kind_of("failed", refused, "then").key == "unreachable"
    assert kind_of("broken", "ConnectionError: cannot reach IB at 127.0.0.1:4002: refused", "given").key == "unreachable"
    assert kind_of("broken", "KeyError: 'x'", "then").key == "suite"
    assert kind_of("failed", "AssertionError: the CLI printed:\nib test: ['RuntimeWarning: x']", "then").key == "async"
    # A CLI transcript that mentions a refused connection is not the suite failing to reach the target.
    cli = "AssertionError: expected a clear message:\n$ ktrdr ib status  (exit 1, 0.4 s)\nConnection refused"
    assert kind_of("failed", cli, "then").key == "claim"
    hung = "BoundExceeded: took 30.1 s > 30 s (the CLI bound):\n$ ktrdr ib test  (timed out, 30.1 s)\n"
    assert kind_of("failed", hung, "then").key == "bound"
    # Kinds come from the type raised, not from the wording: a plain assertion that mentions time is a claim.
    assert kind_of("failed", "AssertionError: took 6.2 s > 5 s, not true within 5 s", "then").key == "claim"
    assert kind_of("failed", "AssertionError: took 6.2 s > 5 s", "then", raised="BoundExceeded").key == "bound"


def test_every_feature_names_a_capability_by_its_tags():
    for path in sorted((ROOT / "features").glob("*.feature")):
        feature = parse_file(str(path))
        assert capability_of(feature.tags, feature.name).key != "other", f"{path.name}: tags {feature.tags}"
    assert capability_of(["phase2", "standard"]).name == "garbage collection (phase 2)"
    assert capability_of([], "Some feature").name == "Some feature"


def test_allure_categories_match_the_formatter_prefix_and_nothing_else():
    categories = allure_categories()
    assert [c["name"] for c in categories[:-2]] == [k.name for k in FAILURE_KINDS]
    assert categories[-2]["name"] == INVARIANT_CATEGORY
    for kind in FAILURE_KINDS:
        assert re.fullmatch(r"[a-z ]+", kind.token), kind.token  # nothing Java's regex would read differently
        category = categorise(kind.statuses[0], "AssertionError: whatever", "Then x", "then", ["cli"])
        message = category.__class__(kind, category.capability).prefix + "AssertionError: whatever\nmore"
        # Allure applies the first category whose status and Pattern.matches() fit.
        first = next(c for c in categories if kind.statuses[0] in c["matchedStatuses"]
                     and re.fullmatch(c["messageRegex"], message))
        assert first["name"] == kind.name
    assert re.fullmatch(categories[-1]["messageRegex"], "AssertionError: no prefix")


def test_precondition_failures_are_one_row_that_names_the_precondition(results):
    never = real_message(lambda: eventually(lambda: None, Bound.exactly(0.01), "a discovery through the API succeeds"))
    for index, tags in enumerate((("phase1", "silent"), ("phase2", "gc"), ("score",)) * 3):
        results.scenario(f"scenario {index}", "failed", message=never, tags=tags,
                         failing_step="And a symbol discovery succeeds")
    text = reporting.markdown_report(load_results(results.path), "standard", 9.0, 1, {}, dt.datetime.now())
    table = text.split("### Failure Categories", 1)[1].split("###", 1)[0]
    assert table.count("| Precondition failed (claim never reached) |") == 3  # one row per capability
    assert "Time bound exceeded" not in text
    assert "the scenario never reached its claim: the precondition `And a symbol discovery succeeds` failed" in text
    advice = text.split("## Recommendations")[1]
    assert "**9 scenario(s) never reached their claim**: the precondition `And a symbol discovery succeeds`" in advice
    assert "--timeout-multiplier" not in advice


def test_only_a_small_margin_suggests_the_timeout_multiplier(results):
    results.scenario("a bit slow", "failed", message="BoundExceeded: the failure took 6.20 s > 5.0 s: GET",
                     failing_step="Then the request fails within 5 seconds", tags=("silent",))
    text = reporting.markdown_report(load_results(results.path), "basic", 9.0, 1, {}, dt.datetime.now())
    assert "exceeded by 24 %" in text and "re-run with `--timeout-multiplier 1.5`" in text
    results.scenario("far too slow", "failed", message="BoundExceeded: the failure took 31.00 s > 5.0 s: GET",
                     failing_step="Then the request fails within 5 seconds", tags=("silent",))
    text = reporting.markdown_report(load_results(results.path), "basic", 9.0, 1, {}, dt.datetime.now())
    advice = text.split("## Recommendations")[1]
    assert "a bit slow +24 %" in advice and "Time bounds exceeded** (1 scenario(s): far too slow)" in advice


def test_unreachable_target_advice_names_the_addresses(results):
    results.scenario("refused", "failed", failing_step="Given the API answers",
                     message="ConditionTimeout: the API answers: not true within 5.0 s (last seen: GET /health → "
                             "connection failed: ConnectionError in 0.00 s)")
    reporting.write_properties(results.path / "environment.properties",
                               {"api_base_url": "http://10.0.0.5:8000", "ib_host": "10.0.0.6", "ib_port": "4002",
                                "backend_ib_host": "127.0.0.1", "backend_ib_port": "4010"})
    text = reporting.markdown_report(load_results(results.path), "basic", 9.0, 1, {}, dt.datetime.now())
    assert "category:** Target unreachable" in text
    advice = text.split("## Recommendations")[1]
    assert "check the addresses" in advice and "http://10.0.0.5:8000" in advice and "10.0.0.6:4002" in advice


def test_title_names_the_level_and_the_two_ib_addresses(results):
    results.scenario("a")
    reporting.write_properties(results.path / "environment.properties",
                               {"ib_host": "gw.example", "ib_port": "4002", "backend_ib_port": "4010"})
    text = reporting.markdown_report(load_results(results.path), "standard", 1.0, 0, {}, dt.datetime.now())
    assert text.startswith("# IB Connection Resilience Test Report — standard level\n")
    assert "- Gateway (the suite's probes): gw.example:4002 (" in text
    assert "- The backend connects to IB at: ?:4010" in text and "Backend's IB port" not in text


def test_rerun_commands_keep_every_target_argument(results, monkeypatch):
    results.scenario("Silence (after 2 s) is caught", "failed", message="AssertionError: x", failing_step="Then y")
    monkeypatch.setattr(reporting, "allure_cli", lambda: None)
    argv = ["run", "--level", "standard", "--report", "--api-base-url", "http://h:8000", "--cli", "ktrdr --quiet",
            "--ib-host", "gw", "--ib-port", "4002", "--gateway-control", "http://gw:7000", "--proxy-control",
            "http://px:7001", "-D", "silent_detection_s=6", "--timeout-multiplier", "2", "--name", "old",
            "--name=older", "--reports-dir", str(results.path.parent)]
    made = reporting.render_reports(results.path.parent, "standard", 2.0, 1, html=False, run_argv=argv)
    expected = ("ib-resilience run --level standard --api-base-url http://h:8000 --cli 'ktrdr --quiet' --ib-host gw "
                "--ib-port 4002 --gateway-control http://gw:7000 --proxy-control http://px:7001 -D "
                f"silent_detection_s=6 --timeout-multiplier 2 --reports-dir {results.path.parent} "
                "--name 'Silence \\(after 2 s\\) is caught'")
    assert f"**Re-run alone:** `{expected}`" in made.markdown.read_text()
    record = json.loads((results.path / reporting.RUN_RECORD_FILE).read_text())
    assert record["argv"] == argv and record["level"] == "standard" and record["return_code"] == 1
    properties = dict(line.split("=", 1) for line in (results.path / "environment.properties").read_text().splitlines())
    assert properties["run.command"].startswith("ib-resilience run --level standard --report --api-base-url")
    # Regenerating the reports of the same results keeps the commands.
    again = reporting.render_reports(results.path.parent, "standard", 2.0, 1, html=False)
    assert f"**Re-run alone:** `{expected}`" in again.markdown.read_text()


def test_rerun_command_without_recorded_arguments_comes_from_the_properties(results):
    results.scenario("one", "failed", message="AssertionError: x", failing_step="Then y")
    reporting.write_properties(results.path / "environment.properties", {
        "target": "external", "api_base_url": "http://h:8000", "cli": "ktrdr", "ib_host": "gw", "ib_port": "4002",
        "gateway_control": "none", "proxy_control": "http://px:7001", "timeout_multiplier": "1.5",
        "threshold.silent_detection_s": "6", "threshold.recovery_s": "10"})
    text = reporting.markdown_report(load_results(results.path), "basic", 1.0, 1, {}, dt.datetime.now())
    assert ("`ib-resilience run --level basic --api-base-url http://h:8000 --cli ktrdr --ib-host gw --ib-port 4002 "
            "--proxy-control http://px:7001 --timeout-multiplier 1.5 -D silent_detection_s=6 --name one`") in text


def test_junit_counts_sum_every_suite(tmp_path):
    (tmp_path / "TESTS-a.xml").write_text('<testsuite tests="3" failures="1" errors="0" skipped="1"/>')
    (tmp_path / "TESTS-b.xml").write_text('<testsuite tests="2" failures="0" errors="1" skipped="0"/>')
    (tmp_path / "TESTS-c.xml").write_text("not xml")
    assert junit_counts(tmp_path) == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1}


def test_render_reports_without_the_allure_cli_still_writes_the_markdown(results, monkeypatch):
    results.scenario("a")
    monkeypatch.setattr(reporting, "allure_cli", lambda: None)
    made = reporting.render_reports(results.path.parent, "basic", 2.0, 0)
    assert not (results.path / reporting.RUN_RECORD_FILE).exists()  # no arguments given, none recorded
    assert re.fullmatch(r"resilience_test_report_\d{8}_\d{6}\.md", made.markdown.name)
    text = made.markdown.read_text()
    assert "Allure HTML not generated" in text and "make install" in made.html_error
    executor = json.loads((results.path / "executor.json").read_text())
    assert re.fullmatch(r"level basic \d{4}-\d\d-\d\d \d\d:\d\d", executor["buildName"]), executor
    assert json.loads((results.path / "categories.json").read_text()) == allure_categories()


def test_labels_come_from_effective_tags():
    feature = parse_file(str(ROOT / "features" / "silent_connections.feature"))
    for scenario in feature.walk_scenarios():
        labels = {}
        for label in scenario_labels(scenario):
            labels.setdefault(label.name, []).append(label.value)
        level = next(t for t in ("basic", "standard", "exhaustive") if t in scenario.effective_tags)
        assert labels["level"] == [level]
        assert labels["severity"] == ["critical"], "a silent connection is critical at every level"
        assert labels["phase"] == ["Phase 1: systematic validation"]
        assert labels["location"] == [f"{scenario.filename}:{scenario.line}"]


def test_severity_follows_the_requirement_not_the_level():
    from ibreport.allure_formatter import severity_of

    assert severity_of({"exhaustive", "silent"}) == "critical" and severity_of({"basic", "gc"}) == "normal"
    assert severity_of({"standard", "pool", "severity.blocker"}) == "blocker"
    assert severity_of({"basic", "cli", "severity.nonsense"}) == "critical"


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
                        "-f", "ibreport.allure_formatter:AllureFormatter", "-o", str(out), "-f", "null",
                        "-D", "AllureFormatter.hide_excluded=true"], 60.0, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout
    run = load_results(out)
    by_name = {s.name: s for s in run.scenarios}
    assert set(by_name) == {"runs", "lacks a capability"}
    assert by_name["lacks a capability"].status == "skipped"
    assert by_name["lacks a capability"].message == "skipped: needs.x: the target lacks x"
    assert by_name["runs"].label("story") == "the rule" and by_name["runs"].label("phase") == "Phase 2: garbage collection"


DEMO_FEATURE = """@score
Feature: Demo score

  Background:
    Given the API answers

  Rule: the rule

    @basic
    Scenario: passes
      Then the claim holds

    @basic @down
    Scenario: the API is down
      Then the claim holds

    @basic
    Scenario: too slow
      Then the claim is too slow

    @basic @needs.x
    Scenario: lacks a capability
      Then the claim holds

    @basic
    Scenario: the suite breaks
      Then the suite breaks

    @basic @hook.fails
    Scenario: a hook fails
      Then the claim holds

    @exhaustive
    Scenario: another level
      Then the claim holds
"""
DEMO_STEPS = """from behave import given, then

from support.verdict import BoundExceeded

@given('the API answers')
def api_answers(context):
    assert 'down' not in context.scenario.effective_tags, 'the API answers: not true within 5.0 s (last seen: 500)'

@then('the claim holds')
def holds(context):
    pass

@then('the claim is too slow')
def too_slow(context):
    raise BoundExceeded('answer took 6.20 s > 5.0 s: GET /ib/health')

@then('the suite breaks')
def breaks(context):
    raise KeyError('x')
"""
DEMO_ENVIRONMENT = """def before_scenario(context, scenario):
    if 'needs.x' in scenario.effective_tags:
        scenario.skip('needs.x: the target lacks x')

def after_scenario(context, scenario):
    if 'hook.fails' in scenario.effective_tags:
        raise RuntimeError('cleanup failed')
"""


def behave_summary(output: str) -> dict[str, int]:
    """behave's scenario summary line (``1 scenario passed, 2 failed, 1 error, 2 skipped``) as counts."""
    line = re.search(r"^\d+ scenarios? passed, .*$", output, re.M)
    assert line, f"behave printed no scenario summary:\n{output[-1500:]}"
    return {name: int(count) for count, name in re.findall(r"(\d+) (?:scenarios? )?(\w+)", line.group(0))}


def run_demo(tmp_path: Path):
    """The demo feature through behave with the runner's options (Allure formatter, JUnit, --no-skipped)."""
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "demo.feature").write_text(DEMO_FEATURE)
    (features / "steps" / "steps.py").write_text(DEMO_STEPS)
    (features / "environment.py").write_text(DEMO_ENVIRONMENT)
    reports = tmp_path / "reports"
    return run_bounded([sys.executable, "-m", "behave", str(features), "--tags", "@basic", "--no-skipped",
                        "-f", "ibreport.allure_formatter:AllureFormatter", "-o", str(reports / "allure-results"),
                        "-f", "progress3", "--junit", "--junit-directory", str(reports / "junit"),
                        "-D", "AllureFormatter.hide_excluded=true"], 60.0, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}), reports


def test_markdown_counts_agree_with_behave_and_junit_when_capabilities_skip(tmp_path):
    done, reports = run_demo(tmp_path)
    assert done.returncode == 1, done.stdout
    junit = junit_counts(reports / "junit")
    # behave: 1 passed, 2 failed (assertions), 2 errors (an exception, a hook); the capability skip and the
    # other level are skipped; JUnit under --no-skipped counts the 5 that ran.
    assert junit == {"tests": 5, "failures": 2, "errors": 2, "skipped": 0}, junit
    assert behave_summary(done.stdout) == {"passed": 1, "failed": 2, "error": 1, "hook_error": 1, "skipped": 2}
    run = load_results(reports / "allure-results")
    assert run.counts == {"passed": 1, "failed": 2, "broken": 2, "skipped": 1, "unknown": 0}
    # The runner writes JUnit again from the run's record: the skipped scenario a test case, with its reason.
    record = build_record(run, "basic", 1.0, behave_exit=done.returncode)
    rewrite_junit(record, reports / "junit")
    junit = junit_counts(reports / "junit")
    assert junit == {"tests": 6, "failures": 2, "errors": 2, "skipped": 1}, junit
    skipped = [c.find("skipped").get("message") for path in (reports / "junit").glob("TESTS-*.xml")
               for c in ElementTree.parse(path).getroot().iter("testcase") if c.get("status") == "skipped"]
    assert skipped == ["needs.x: the target lacks x"]
    text = reporting.markdown_report(run, "basic", 1.0, done.returncode, junit, dt.datetime.now(), record=record)
    for label, value in (("Total Scenarios", 6), ("Passed", 1), ("Failed", 2), ("Errors", 2), ("Skipped", 1)):
        assert re.search(rf"^- \*\*{label}:\*\* {value}\b", text, re.M), label
    assert "6 tests, 2 failures, 2 errors, 1 skipped ✅ (agrees:" in text
    assert "  - `needs.x: the target lacks x` (1): lacks a capability" in text
    assert "another level" not in text


def test_formatter_records_each_failure_category_where_allure_matches_it(tmp_path):
    done, reports = run_demo(tmp_path)
    raw = {r["name"]: r for r in (json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json"))}
    labels = {name: {label["name"]: label["value"] for label in r["labels"] if label["name"] in ("failure_kind", "capability")}
              for name, r in raw.items()}
    assert labels["the API is down"] == {"failure_kind": "precondition", "capability": "score"}
    assert labels["too slow"] == {"failure_kind": "bound", "capability": "score"}
    assert labels["the suite breaks"]["failure_kind"] == labels["a hook fails"]["failure_kind"] == "suite"
    assert labels["passes"] == {} and labels["lacks a capability"] == {}
    assert raw["a hook fails"]["status"] == "broken" and "cleanup failed" in raw["a hook fails"]["statusDetails"]["message"]
    assert raw["the API is down"]["statusDetails"]["message"].startswith(
        "[precondition / resilience score] AssertionError: the API answers: not true within")
    by_name = {s.name: s for s in load_results(reports / "allure-results").scenarios}
    assert by_name["the API is down"].message.startswith("AssertionError: the API answers")  # prefix stripped
    assert by_name["the API is down"].failing_step == "Given the API answers"
    assert by_name["too slow"].category.over_bound_pct == pytest.approx(24.0)
    categories = allure_categories()
    for result in raw.values():
        if result["status"] in ("failed", "broken"):
            shown = next(c["name"] for c in categories if result["status"] in c["matchedStatuses"]
                         and re.fullmatch(c["messageRegex"], result["statusDetails"]["message"]))
            assert shown == by_name[result["name"]].category.kind.name


def test_properties_round_trip_backslashes(tmp_path):
    values = {"run.command": "ib-resilience run --name 'A\\ healthy\\ gateway' -D cli=C:\\tools\\ktrdr", "url": "http://h:1"}
    reporting.write_properties(tmp_path / "environment.properties", values)
    assert read_properties(tmp_path / "environment.properties") == values


def test_junit_with_a_clis_ansi_escapes_is_counted_and_sanitized(tmp_path):
    from ibreport.results import junit_counts, sanitize_junit
    xml = ('<?xml version="1.0" encoding="UTF-8"?><testsuite name="cli" tests="2" errors="0" failures="1" skipped="0">'
           '<testcase name="a"><failure message="x">\x1b[92mINFO\x1b[0m</failure></testcase>'
           '<testcase name="b"/></testsuite>')
    (tmp_path / "TESTS-cli.xml").write_text(xml, encoding="utf-8")
    assert junit_counts(tmp_path) == {"tests": 2, "failures": 1, "errors": 0, "skipped": 0}
    sanitize_junit(tmp_path)
    assert "\x1b" not in (tmp_path / "TESTS-cli.xml").read_text(encoding="utf-8")


def test_every_feature_gets_one_epic_from_its_own_tags():
    epics = {}
    for path in sorted((ROOT / "features").glob("*.feature")):
        feature = parse_file(str(path))
        for scenario in feature.walk_scenarios():
            values = [label.value for label in scenario_labels(scenario) if label.name == "epic"]
            assert values == [feature_epic(feature)], f"{path.name}: {scenario.name}: epics {values}"
        epic = feature_epic(feature)
        assert epic.strip(), path.name
        epics[path.name] = epic
    assert epics["data_pipeline.feature"] == "Data pipeline" and epics["cli.feature"] == "CLI"
    assert epics["silent_connections.feature"] == epics["systematic_validation.feature"] \
        == "Phase 1: systematic validation"
    assert epics["garbage_collection.feature"] == "Phase 2: garbage collection"
    assert feature_epic(SimpleNamespace(tags=["untagged"], name="A new feature")) == "A new feature"


def test_executor_labels_each_run_on_the_trend_axis_by_its_time():
    started = dt.datetime(2026, 12, 2, 4, 10, 33)
    executor = reporting.executor_document("standard", started)
    assert executor["buildName"] == "level standard 2026-12-02 04:10"
    assert executor["buildOrder"] == 202612020410  # Allure's trend axis shows "#202612020410"
    assert reporting.build_order(started + dt.timedelta(minutes=1)) > executor["buildOrder"]


def _samples(rss_mb: list[float], fds: int = 30, threads: int = 12, ib: int = 2) -> list[ProcessSample]:
    return [ProcessSample(mono=100.0 + 0.2 * i, rss_bytes=int(mb * 1024 * 1024), open_fds=fds, threads=threads,
                          tcp_connections=3, ib_connections=ib, children=0) for i, mb in enumerate(rss_mb)]


def test_resource_plot_draws_growth_against_the_claims_limits_with_integer_counts():
    from matplotlib import pyplot
    wiggle = [80.0, 80.9, 80.2, 80.8, 80.1, 80.9, 80.3, 80.6]  # 0.9 MB of noise, no leak
    figure = resources_figure(_samples(wiggle), [], 100.0, {"rss_mb": 20, "open_fds": 10, "threads": 5,
                                                            "ib_connections": 4})
    try:
        rss, fds, threads, ib = figure.axes
        low, high = rss.get_ylim()
        assert high >= 20 and 0.9 / (high - low) < 0.1  # the wiggle fills under a tenth of the panel
        curve = rss.get_lines()[0].get_ydata()
        assert abs(curve[0] - (80.0 - 80.45)) < 1e-6  # growth from the first quarter's median (80.0, 80.9)
        for axis, limit in ((rss, 20), (fds, 10), (threads, 5), (ib, 4)):
            assert any(list(line.get_ydata()) == [limit, limit] for line in axis.get_lines()[1:]), axis.get_ylabel()
        for axis in (fds, threads, ib):
            assert all(float(tick).is_integer() for tick in axis.get_yticks()), axis.get_ylabel()
    finally:
        pyplot.close(figure)
    no_limit = resources_figure(_samples(wiggle), [], 100.0)
    try:
        assert no_limit.axes[0].get_ylim()[1] >= 5.0 and len(no_limit.axes[0].get_lines()) == 1  # the floor
    finally:
        pyplot.close(no_limit)
    assert resources_png(_samples(wiggle), [], 100.0, {"rss_mb": 20})[:8] == b"\x89PNG\r\n\x1a\n"
    assert y_range([0.0, 0.4, -0.3], None, 3.0)[1] >= 3.0 and y_range([0.0, 42.0], 20.0, 5.0)[1] > 42.0


def test_step_slices_take_each_exchange_and_run_once():
    values, exchanges, runs = {}, ["a", "b"], []
    assert evidence.step_slice(values, exchanges, runs, 10.0, 11.0) == (["a", "b"], [], 10.0)
    exchanges.append("c")
    runs.append("run 1")
    assert evidence.step_slice(values, exchanges, runs, 10.0, 12.0) == (["c"], ["run 1"], 11.0)
    assert evidence.step_slice(values, exchanges, runs, 10.0, 13.0) == ([], [], 12.0)
    exchanges.clear()  # a transcript cleared under the marks starts over
    exchanges.append("d")
    assert evidence.step_slice(values, exchanges, runs, 10.0, 14.0)[0] == ["d"]
    window = SimpleNamespace(label="silent", plane="proxy", applied_mono=11.5, healed_mono=13.5)
    assert evidence.fault_changes([window], 10.0, 11.0, 12.0) == [
        {"event": "applied", "fault": "silent", "plane": "proxy", "at_s": 1.5}]
    assert [e["event"] for e in evidence.fault_changes([window], 10.0, 12.0, 14.0)] == ["healed"]
    limits = {}
    evidence.record_limit(limits, "rss_mb", 20)
    assert limits == {"rss_mb": 20}


STEP_EVIDENCE_ENVIRONMENT = """from support import evidence

def after_step(context, step):
    evidence.attach_json("API exchanges", [{"path": "/ib/health", "step": step.name}])

def after_scenario(context, scenario):
    evidence.attach_text("Backend output", "scenario-wide")
"""


def test_evidence_attached_in_after_step_hangs_on_the_step(tmp_path):
    features = tmp_path / "features"
    (features / "steps").mkdir(parents=True)
    (features / "demo.feature").write_text("@pipeline\nFeature: Demo\n\n  @basic\n  Scenario: two steps\n"
                                           "    Given nothing\n    When nothing\n")
    (features / "steps" / "steps.py").write_text("from behave import step\n\n@step('nothing')\ndef s(context):\n    pass\n")
    (features / "environment.py").write_text(STEP_EVIDENCE_ENVIRONMENT)
    out = tmp_path / "allure-results"
    done = run_bounded([sys.executable, "-m", "behave", str(features), "-f", "ibreport.allure_formatter:AllureFormatter",
                        "-o", str(out), "-f", "null"], 60.0, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout
    (raw,) = [json.loads(p.read_text()) for p in out.glob("*-result.json")]
    assert [a["name"] for a in raw["attachments"]] == ["Backend output"]
    assert [[a["name"] for a in s.get("attachments", [])] for s in raw["steps"]] == [["API exchanges"]] * 2
    assert {"name": "epic", "value": "Data pipeline"} in raw["labels"]
    (scenario,) = load_results(out).scenarios
    assert [e["step"] for e in scenario.attached_list("API exchanges")] == ["nothing", "nothing"]
    assert scenario.attached_text("Backend output") == "scenario-wide"


def test_a_scenario_stopped_before_any_step_ran_still_gets_a_status():
    """SIGTERM may leave a step executing: allure-behave's status is None, and its result had none."""
    from types import SimpleNamespace

    from behave.model_core import Status as BehaveStatus

    from ibreport.allure_formatter import INTERRUPTED_MESSAGE, judged

    step = SimpleNamespace(exception=None, status=BehaveStatus.executing, name="x", keyword="When",
                           error_message=None)
    scenario = SimpleNamespace(all_steps=[step], hook_failed=False, error_message=None, effective_tags=[],
                               feature=SimpleNamespace(tags=[], name="F"), tags=[], name="S")
    status, details, _ = judged(scenario, aborted=True)
    assert status == "broken" and details.message.endswith(INTERRUPTED_MESSAGE)
