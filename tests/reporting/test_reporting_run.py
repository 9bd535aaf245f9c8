"""A real small run with --report: the Markdown summary, the Allure HTML and its metadata, against what behave saw."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import ib_insync
import pytest
from behave.parser import parse_file
from chromium_cdp import Browser, ChromiumError, ensure_chromium
from reporting_helpers import SEED_ROWS, section, table_rows

from ibreport.allure_formatter import feature_epic, severity_of
from ibreport.results import INVARIANT_CATEGORY, is_invariant_result, junit_agrees, junit_counts, load_results
from ibreport.summary import VERDICT_MARK, directory_size
from support import run_evidence
from support.checks.run_wide import INVARIANTS
from support.settings import ROOT

#: One process runs this module under pytest-xdist (``--dist loadgroup``): its fixture is one expensive real run.
pytestmark = pytest.mark.xdist_group("real_run")

SCREENSHOT_DIR = ROOT / "reports" / "screenshots"


def _markdown_stat(text: str, label: str) -> int:
    match = re.search(rf"^- \*\*{re.escape(label)}:\*\* (\d+)", text, re.M)
    assert match, f"no '{label}' line in the Markdown summary"
    return int(match.group(1))


def _junit_failures(junit_dir: Path) -> list[dict[str, str]]:
    """Each failed testcase with its scenario name, failing step and message, as behave's JUnit wrote them (the
    run-wide invariants' file holds no scenario)."""
    out = []
    for path in sorted(junit_dir.glob("TESTS-*.xml")):
        if path.name == run_evidence.JUNIT_FILE:
            continue
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            if failure is None:
                continue
            step = re.search(r"Failing step: (.+?) \.\.\. failed", failure.text or "")
            out.append({"name": case.get("name", ""), "step": step.group(1) if step else "",
                        "message": failure.get("message", "")})
    return out


def _leaves(node: dict) -> list[str]:
    """Names of the test results under a node of Allure's category tree (category → message → test)."""
    if "children" not in node:
        return [node["name"]]
    return [name for child in node["children"] for name in _leaves(child)]


def _allure_results(run) -> list[dict]:
    """The scenarios' Allure results (not the run-wide invariants')."""
    return [r for r in _all_allure_results(run) if not is_invariant_result(r)]


def _all_allure_results(run) -> list[dict]:
    return [json.loads(p.read_text()) for p in (run.reports_dir / "allure-results").glob("*-result.json")]


def _records(run) -> list[dict]:
    """The run-wide invariants' records the run wrote."""
    return json.loads((run.reports_dir / run_evidence.INVARIANTS_FILE).read_text())


def test_run_failed_as_arranged(real_run):
    assert real_run.exit_code == 1, real_run.output[-2000:]
    assert real_run.failed >= 1 and real_run.passed >= 4, real_run.output[-2000:]


def test_markdown_totals_match_behave_and_junit(real_run):
    text = real_run.markdown.read_text()
    ran = real_run.passed + real_run.failed
    results = load_results(real_run.reports_dir / "allure-results")
    skipped = len(results.capability_skips)
    assert _markdown_stat(text, "Total Scenarios") == ran + skipped
    assert _markdown_stat(text, "Skipped") == skipped
    assert _markdown_stat(text, "Passed") == real_run.passed
    assert _markdown_stat(text, "Failed") + _markdown_stat(text, "Errors") == real_run.failed
    junit = junit_counts(real_run.reports_dir / "junit")
    assert (junit["tests"], junit["failures"] + junit["errors"], junit["skipped"]) == (ran + skipped, real_run.failed,
                                                                                       skipped)
    assert junit_agrees(results, junit)
    assert f"JUnit cross-check:** {ran + skipped} tests, " in text and "✅ (agrees: every selected scenario" in text
    assert "**Overall Result:** ❌ FAILED" in text and "**Return Code:** 1" in text
    print(f"\nMarkdown summary: {real_run.markdown}")


def test_markdown_names_each_failure_with_its_step_and_message(real_run):
    text = real_run.markdown.read_text()
    section = text.split("### Failed Scenarios", 1)[1].split("## Recommendations", 1)[0]
    section = section.split("### Broken Run-wide Invariants", 1)[0]
    failures = _junit_failures(real_run.reports_dir / "junit")
    assert len(failures) == real_run.failed
    for failure in failures:
        assert f": {failure['name']}\n" in section, f"{failure['name']} missing from:\n{section}"
        assert f"**Failing step:** `{failure['step']}`" in section
        assert failure["message"].splitlines()[0][:80] in section
    reruns = re.findall(r"^- \*\*Re-run alone:\*\* `(.+)`$", section, re.M)
    assert len(reruns) == section.count("#### ") == real_run.failed
    for command in reruns:  # the run's level and its -D bound are kept, its --name selection replaced
        assert command.startswith("ib-resilience run --level standard ") and " -D silent_detection_s=0.5" in command
        assert command.count("--name") == 1 and re.search(r" --name '[^']+'$", command), command


def test_markdown_critical_checks_are_the_runs_own_verdicts(real_run):
    text = real_run.markdown.read_text()
    records = {r["key"]: r for r in _records(real_run)}
    assert set(records) == {i.key for i in INVARIANTS}
    rows = table_rows(text)
    for name, key in SEED_ROWS.items():
        record = records[key]
        assert rows[name].endswith(f"| {VERDICT_MARK[record['status']]} {record['status']} |"), (rows[name], record)
        assert record["message"].replace("|", "\\|") in rows[name]
    for invariant in INVARIANTS:
        if invariant.key not in SEED_ROWS.values():
            assert f"{VERDICT_MARK[records[invariant.key]['status']]} {records[invariant.key]['status']} |" \
                in rows[invariant.title]
    # The run tightened the silent-detection bound to 0.5 s: the requirement says so, the figures are the run's.
    silent = rows["Silent-connection detection"]
    assert "arriving ≥ 0.5 s into an outage" in silent
    detection = records["reports_fall"]["figures"]["detection_s"]
    if detection:
        assert f"noticed after max {max(detection):.2f} s" in silent and f"over {len(detection)} outage(s)" in silent
    assert "Resources stay flat over 150 requests: RSS" in rows["Leaks"] and "✅ pass" in rows["Leaks"]
    listed = section(text, "Run-wide invariants")
    for record in records.values():
        assert f"{VERDICT_MARK[record['status']]} **{record['title']}** (`{record['key']}`) — {record['status']}" \
            in listed
    broken = [r for r in records.values() if r["status"] == "fail"]
    assert ("### Broken Run-wide Invariants" in text) == bool(broken)
    for record in broken:
        assert f"Run-wide invariant: {record['title']}" in section(text, "Broken Run-wide Invariants")
    assert "DO NOT DEPLOY" in text.split("## Recommendations", 1)[1]


def test_allure_html_both_forms_without_analytics(real_run):
    report, single = real_run.reports_dir / "allure-report", real_run.reports_dir / "allure-report-single" / "index.html"
    assert (report / "index.html").is_file() and single.is_file()
    for path in [single, report / "index.html", *report.glob("*.js")]:
        assert "googletagmanager" not in path.read_text(errors="replace"), f"analytics left in {path}"
    size_dir, size_single = directory_size(report), single.stat().st_size
    assert size_dir > 100_000 and size_single > 100_000
    print(f"\nAllure report: {report} ({size_dir / 1e6:.1f} MB); single file {single} ({size_single / 1e6:.1f} MB)")


def test_allure_metadata_describes_the_targets(real_run):
    results = real_run.reports_dir / "allure-results"
    properties = dict(line.split("=", 1) for line in (results / "environment.properties").read_text().splitlines())
    ready = re.search(r"READY backend .*?port=(\d+)", (real_run.reports_dir / "logs" / "latest" / "backend.log").read_text())
    assert ready and properties["api_base_url"].endswith(f":{ready.group(1)}")
    assert properties["ib_insync.version"] == ib_insync.__version__
    assert properties["threshold.silent_detection_s"] == "0.5"
    assert properties["gateway.server_version"].isdigit() and properties["backend.version"] != "unknown"
    assert properties["run.level"] == "standard"
    assert properties["ib_port"].isdigit() and properties["backend_ib_port"].isdigit()
    assert properties["backend_ib_port"] != properties["ib_port"]  # the backend goes through the fault proxy
    executor = json.loads((results / "executor.json").read_text())
    assert re.fullmatch(r"level standard \d{4}-\d\d-\d\d \d\d:\d\d", executor["buildName"]), executor
    # Allure labels each run on its trend axis "#<buildOrder>": the run's date and time, not epoch seconds.
    assert re.fullmatch(r"20\d{2}(0[1-9]|1[0-2])\d{6}", str(executor["buildOrder"])), executor
    trend = json.loads((real_run.reports_dir / "allure-report" / "widgets" / "history-trend.json").read_text())
    assert trend[0]["buildOrder"] == executor["buildOrder"], trend[0]
    # Allure put each failure in the category of its cause, as the Markdown's Causes table numbers them (its
    # kind stays in the message's prefix and the Markdown).
    categories = json.loads((real_run.reports_dir / "allure-report" / "data" / "categories.json").read_text())
    shown = {leaf: group["name"] for group in categories["children"] for leaf in _leaves(group)}
    problems = load_results(results).problems
    assert problems
    text = real_run.markdown.read_text()
    for scenario in problems:
        cause = scenario.label("cause")
        assert re.match(r"C\d+ \(\d+ scenario\(s\)\)", cause) and shown[scenario.name] == cause
        assert f"| {cause.split(' ', 1)[0]} | " in text.split("**Report Generated:**", 1)[0]
        assert f"**category:** {scenario.category.name}" in text
    for invariant in load_results(results).invariants:
        if invariant.status == "fail":
            assert shown[invariant.name] == INVARIANT_CATEGORY


def test_allure_labels_follow_the_tags(real_run):
    features = {}
    for path in (ROOT / "features").glob("*.feature"):
        feature = parse_file(str(path))
        features.update({s.name: s for s in feature.walk_scenarios()})
    for result in _all_allure_results(real_run):
        if is_invariant_result(result):
            assert {"name": "tag", "value": "run_wide"} in result["labels"] and result["name"] not in features
            continue
        labels = {}
        for label in result["labels"]:
            labels.setdefault(label["name"], []).append(label["value"])
        tags = features[result["name"]].effective_tags
        level = next(t for t in ("basic", "standard", "exhaustive") if t in tags)
        assert labels["level"] == [level] and labels["severity"] == [severity_of(set(tags))], result["name"]
        phases = sorted(t for t in tags if t.startswith("phase"))
        assert [p.split(":")[0].replace("Phase ", "phase") for p in labels.get("phase", [])] == phases
        assert labels["feature"] == [features[result["name"]].feature.name]
        assert labels["epic"] == [feature_epic(features[result["name"]].feature)], result["name"]
        assert set(labels["tag"]) == set(tags)


def _step_attachments(result: dict) -> dict[str, set[str]]:
    """Attachment names per step (nested steps included), by step name."""
    out: dict[str, set[str]] = {}
    pending = list(result.get("steps") or [])
    while pending:
        step = pending.pop()
        out.setdefault(step["name"], set()).update(a["name"] for a in step.get("attachments") or [])
        pending += step.get("steps") or []
    return out


def test_each_scenario_carries_its_evidence(real_run):
    results = _allure_results(real_run)
    by_name = {r["name"]: r for r in results}
    names = lambda result: {a["name"] for a in result.get("attachments", [])}  # noqa: E731
    # What a step produced hangs on that step; the scenario keeps what spans it.
    healthy = _step_attachments(by_name["A healthy gateway scores at least 75"])
    assert any("API exchanges" in attached for step, attached in healthy.items() if step.startswith("When ")), healthy
    assert "API exchanges" not in names(by_name["A healthy gateway scores at least 75"])
    # Selected by name prefix (RUN_SCENARIOS): the scenario's full title may say more.
    ib_test = next(r for r in results if r["name"].startswith('"ib test" passes against a healthy gateway'))
    ran = {step for step, attached in _step_attachments(ib_test).items() if "CLI transcripts" in attached}
    assert ran and all(step.startswith("When ") for step in ran), _step_attachments(ib_test)
    silent = by_name["The gateway stops answering after the handshake"]
    assert {"Fault timeline", "Backend output", "IB history (gateway)", "IB history (proxy)"} <= names(silent)
    assert any("Fault changes" in attached for attached in _step_attachments(silent).values())
    scenario = next(s for s in load_results(real_run.reports_dir / "allure-results").scenarios
                    if s.name == "The gateway stops answering after the handshake")
    assert scenario.attached_list("API exchanges") and scenario.attached_list("Fault timeline")
    stability = by_name["Resources stay flat over 150 requests"]
    assert {"Backend resources", "Backend resource samples"} <= names(stability)
    png = next(a for a in stability["attachments"] if a["name"] == "Backend resources")
    assert (real_run.reports_dir / "allure-results" / png["source"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(400)
def test_single_file_report_in_chromium_shows_the_run(real_run):
    try:
        binary = ensure_chromium()
    except ChromiumError as exc:
        pytest.skip(f"headless Chromium unavailable: {exc}")
    single = real_run.reports_dir / "allure-report-single" / "index.html"
    url = single.resolve().as_uri()
    invariants = [r["status"] for r in _records(real_run)]  # their own Allure results, beside the scenarios
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with Browser(binary) as browser:
        browser.navigate(url + "#")
        total = browser.wait_for("document.querySelector('.splash__title')?.textContent", 30,
                                 "the overview shows its total")
        assert int(total) == real_run.passed + real_run.failed + len(invariants)
        overview = browser.screenshot(SCREENSHOT_DIR / "allure-single-file-overview.png")
        browser.navigate(url + "#suites")
        shown = browser.wait_for("document.querySelector('.status-toggle') && Object.fromEntries("
                                 "[...document.querySelectorAll('.status-toggle .y-label')]"
                                 ".map(e => [e.dataset.status, +e.textContent]))", 30, "the status counters")
        assert (shown["passed"], shown["failed"] + shown["broken"]) == (real_run.passed + invariants.count("pass"),
                                                                        real_run.failed + invariants.count("fail")), shown
        browser.navigate(url + "#testresult/" + _test_case_uid(single, "Resources stay flat over 150 requests"))
        browser.wait_for("!!document.querySelector('.attachment-row[data-type=\"image/png\"]')", 30,
                         "the resource plot's attachment row")
        browser.evaluate("document.querySelector('.attachment-row[data-type=\"image/png\"]').click()")
        width, height = browser.wait_for(
            "(() => { const i = document.querySelector('.attachment-row__content img');"
            " if (!i || !i.complete || !i.naturalWidth) return null; i.scrollIntoView();"
            " return [i.naturalWidth, i.naturalHeight]; })()", 30, "the resource plot renders")
        assert width > 300 and height > 300
        plot = browser.screenshot(SCREENSHOT_DIR / "allure-single-file-resource-plot.png")
    print(f"\nChromium screenshots: {overview} and {plot}")


def _test_case_uid(single_file: Path, name: str) -> str:
    """The report's uid of the test case called ``name``, read from the data embedded in the single file."""
    html = single_file.read_text()
    for match in re.finditer(r"d\('data/test-cases/[0-9a-f]+\.json','([A-Za-z0-9+/=]+)'\)", html):
        case = json.loads(base64.b64decode(match.group(1)))
        if case.get("name") == name:
            return case["uid"]
    raise AssertionError(f"no test case {name!r} in {single_file}")
