"""One verdict (issue 22): the exit code, the console, JUnit, the Markdown and Allure say the same of one run.

Each run here is a real ``ib-resilience run --report --no-html`` (the Allure results and metadata are written; only
the 15 s of HTML rendering is left out): a clean basic run, a skip forced by ``max_wait_s``, the ``constant_score``
mutant, ``-D silent_detection_s=1``, a run stopped by SIGTERM, a managed backend missing an endpoint, and a run
that selects nothing. For each, every place is read back on its own and compared: the counts (passed, failed,
errors, skipped with their reasons, not run), the failures, the run-wide invariants, the interruption, the verdict
and the exit code.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reporting_helpers import run_bounded, section

from ibreport.record import RESULT_FILE
from ibreport.results import is_invariant_result
from ibresilience import parallel
from support.run_evidence import JUNIT_FILE as INVARIANTS_JUNIT
from support.settings import LEVELS, ROOT

RUNNER = str(Path(sys.executable).with_name("ib-resilience"))
RUN_TIMEOUT_S = 240.0
MISSING_ENDPOINT = ROOT / "tests" / "reporting" / "missing_endpoint.py"
MUTANT_LAUNCH = ROOT / "tests" / "mutants" / "launch.py"
#: Two pytest-xdist groups (``--dist loadgroup``): the runs of each go one after the other in one process.
WHOLE_LEVEL, FEW_SCENARIOS = pytest.mark.xdist_group("one_verdict_whole"), pytest.mark.xdist_group("one_verdict_few")

_SUMMARY = re.compile(r"^ib-resilience: level \w+: (\d+) scenarios passed, (\d+) failed, (\d+) errors, (\d+) skipped, "
                      r"(\d+) not run in [\d.]+ s: (PASSED|FAILED|INTERRUPTED)(?: by (\S+))?, exit (\d+)$", re.M)
_INVARIANTS = re.compile(r"^ib-resilience: run-wide invariants: (\d+) held, (\d+) broken(?: \(.*\))?, "
                         r"(\d+) not exercised$", re.M)
_MARKDOWN_VERDICT = {"✅ PASSED": "PASSED", "❌ FAILED": "FAILED", "⏹️ INTERRUPTED": "INTERRUPTED",
                     "❌ NOTHING SELECTED": "NOTHING SELECTED"}


@dataclass
class Said:
    """What one place says of the run."""

    counts: dict[str, int]                 # passed, failed, errors, skipped, not_run
    skips: dict[str, str] = field(default_factory=dict)          # scenario → reason
    failures: set[str] = field(default_factory=set)              # failed and errors, by name
    invariants: tuple[int, int, int] | None = None               # held, broken, not exercised
    verdict: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class Run:
    reports: Path
    exit_code: int
    output: str


def _run(reports: Path, *args: str) -> Run:
    done = run_bounded([RUNNER, "run", "--report", "--no-html", "--reports-dir", str(reports), *args], RUN_TIMEOUT_S,
                       cwd=ROOT)
    return Run(reports, done.returncode, done.stdout)


# ------------------------------------------------------------------------------------------- each place, read back

def console(run: Run) -> Said:
    found = _SUMMARY.findall(run.output)
    assert len(found) == 1, f"not one summary line:\n{run.output[-3000:]}"
    passed, failed, errors, skipped, not_run, verdict, _, code = found[0]
    skips = dict(re.findall(r"^ib-resilience: skipped: (.+?) — (.+)$", run.output, re.M))
    failures = {m.group(2) for m in re.finditer(r"^ib-resilience: (failed|error|interrupted): (.+?) — ", run.output,
                                                 re.M)}
    invariants = _INVARIANTS.search(run.output)
    assert run.output.rstrip().splitlines()[-1].startswith("ib-resilience: level "), "the summary is the last line"
    return Said({"passed": int(passed), "failed": int(failed), "errors": int(errors), "skipped": int(skipped),
                 "not_run": int(not_run)}, skips, failures,
                tuple(int(n) for n in invariants.groups()) if invariants else None, verdict, int(code))


def record(run: Run) -> Said:
    data = json.loads((run.reports / RESULT_FILE).read_text(encoding="utf-8"))
    c, i = data["counts"], data["invariants"]
    return Said({"passed": c["passed"], "failed": c["failed"], "errors": c["broken"], "skipped": c["skipped"],
                 "not_run": c["not_run"]}, {s["scenario"]: s["reason"] for s in data["skipped"]},
                {f["scenario"] for f in data["failures"]},
                (i["held"], i["broken"], i["not_exercised"]) if i["judged"] else None, data["verdict"],
                data["exit_code"])


def junit(run: Run) -> Said:
    counts: Counter[str] = Counter()
    skips, failures, invariants = {}, set(), None
    for path in sorted((run.reports / "junit").glob("TESTS-*.xml")):
        suite = ElementTree.parse(path).getroot()
        cases = suite.findall("testcase")
        if path.name == INVARIANTS_JUNIT:
            statuses = Counter(case.get("status") for case in cases)
            invariants = (statuses["passed"], statuses["failed"], statuses["skipped"])
            continue
        own: Counter[str] = Counter()
        for case in cases:
            name = case.get("name", "").strip()
            skipped = case.find("skipped")
            if case.find("failure") is not None:
                own["failed"] += 1
                failures.add(name)
            elif case.find("error") is not None:
                own["errors"] += 1
                failures.add(name)
            elif skipped is not None and skipped.get("message", "").startswith("not run: "):
                own["not_run"] += 1
            elif skipped is not None:
                own["skipped"] += 1
                skips[name] = skipped.get("message", "")
            else:
                own["passed"] += 1
        # The suite's own totals, what a CI reads first, say the same as its test cases.
        assert (int(suite.get("tests")), int(suite.get("failures")), int(suite.get("errors")),
                int(suite.get("skipped"))) == (len(cases), own["failed"], own["errors"],
                                               own["skipped"] + own["not_run"]), path
        counts += own
    return Said({k: counts[k] for k in ("passed", "failed", "errors", "skipped", "not_run")}, skips, failures,
                invariants)


def markdown(run: Run) -> tuple[Said, str]:
    (path,) = run.reports.glob("resilience_test_report_*.md")
    text = path.read_text(encoding="utf-8")

    def stat(label: str) -> int:
        match = re.search(rf"^- \*\*{re.escape(label)}:\*\* (\d+)", text, re.M)
        assert match, f"no {label!r} in the Markdown"
        return int(match.group(1))

    verdict = re.search(r"^\*\*Overall Result:\*\* (.+?)  $", text, re.M).group(1)
    code = int(re.search(r"^\*\*Return Code:\*\* (\d+)$", text, re.M).group(1))
    invariants = re.search(r"^- \*\*Run-wide invariants:\*\* (\d+) held, (\d+) broken \S+, (\d+) not exercised", text,
                           re.M)
    skips = {name: reason for reason, names in re.findall(r"^  - `(.+)` \(\d+\): (.+)$", text, re.M)
             for name in names.split(", ")}
    failures = set(re.findall(r"^#### \d+\. [^:]+: (.+)$", section(text, "Failed Scenarios"), re.M))
    counts = {"passed": stat("Passed"), "failed": stat("Failed"), "errors": stat("Errors"),
              "skipped": stat("Skipped"), "not_run": stat("Not run")}
    assert stat("Total Scenarios") == sum(counts.values())
    return Said(counts, skips, failures, tuple(int(n) for n in invariants.groups()) if invariants else None,
                _MARKDOWN_VERDICT[verdict], code), text


def allure(run: Run) -> tuple[Said, dict[str, str], dict]:
    results = run.reports / "allure-results"
    raw = [json.loads(p.read_text(encoding="utf-8")) for p in results.glob("*-result.json")]
    scenarios = [r for r in raw if not is_invariant_result(r)]
    statuses = Counter(r["status"] for r in scenarios)
    skips = {r["name"].strip(): r["statusDetails"]["message"].removeprefix("skipped: ")
             for r in scenarios if r["status"] == "skipped"}
    failures = {r["name"].strip() for r in scenarios if r["status"] in ("failed", "broken")}
    judged = Counter(r["status"] for r in raw if is_invariant_result(r))
    properties = dict(line.split("=", 1) for line in (results / "environment.properties").read_text(
        encoding="utf-8").splitlines() if "=" in line)
    executor = json.loads((results / "executor.json").read_text(encoding="utf-8"))
    not_run = int(re.search(r"(\d+) not run", properties["run.counts"]).group(1))
    return Said({"passed": statuses["passed"], "failed": statuses["failed"], "errors": statuses["broken"],
                 "skipped": statuses["skipped"], "not_run": not_run}, skips, failures,
                (judged["passed"], judged["failed"], judged["skipped"]) if judged else None), properties, executor


def assert_one_verdict(run: Run) -> Said:
    """Every place says the same counts, skips (with their reasons), failures, invariants, verdict and exit code;
    returns what they say."""
    said = console(run)
    places = {"run-result.json": record(run), "JUnit": junit(run)}
    shown, text = markdown(run)
    places["Markdown"] = shown
    in_allure, properties, executor = allure(run)
    places["Allure"] = in_allure
    for name, other in places.items():
        assert other.counts == said.counts, (name, other.counts, said.counts, run.output[-2000:])
        assert other.skips == said.skips, (name, other.skips, said.skips)
        assert other.failures == said.failures, (name, other.failures, said.failures)
        assert other.invariants == said.invariants, (name, other.invariants, said.invariants)
        if other.verdict:
            assert (other.verdict, other.exit_code) == (said.verdict, said.exit_code), name
    assert run.exit_code == said.exit_code
    assert all(said.skips.values()), "every skip has its reason"
    # Allure's Environment and Executors widgets say the verdict, the counts and the interruption too.
    assert properties["run.verdict"] == f"{said.verdict}, exit {said.exit_code}"
    assert properties["run.counts"].startswith(f"{said.counts['passed']} scenarios passed, {said.counts['failed']} "
                                               f"failed, {said.counts['errors']} errors, {said.counts['skipped']} "
                                               f"skipped, {said.counts['not_run']} not run of ")
    interrupted = said.verdict == "INTERRUPTED"
    assert (properties["run.interrupted"] != "no") == interrupted == ("INTERRUPTED by" in executor["buildName"])
    assert ("> ⚠️ **Interrupted:**" in text) == interrupted
    advice = text.split("## Recommendations", 1)[1].split("\n## ", 1)[0]
    if said.exit_code == 0:
        assert "### Tests Passed ✅" in advice and "DO NOT DEPLOY" not in advice
    else:
        listed = advice.split("**DO NOT DEPLOY**", 1)[1]
        assert re.search(r"^- \S", listed, re.M), f"an empty DO NOT DEPLOY list:\n{advice}"
        for name in said.failures:
            assert name in listed, f"{name!r} is not in the DO NOT DEPLOY list:\n{listed}"
        for title in json.loads((run.reports / RESULT_FILE).read_text())["invariants"]["broken_names"]:
            assert title in listed
    return said


def _selected(*names: str, level: str = "basic") -> int:
    """How many scenarios the level selects (behave's own selection)."""
    return len(parallel.select(LEVELS[level], names))


# ------------------------------------------------------------------------------------------- the runs

@pytest.fixture(scope="module")
def clean_basic(tmp_path_factory) -> Run:
    return _run(tmp_path_factory.mktemp("clean") / "reports", "--level", "basic")


@pytest.fixture(scope="module")
def forced_skip(tmp_path_factory) -> Run:
    return _run(tmp_path_factory.mktemp("skip") / "reports", "--level", "basic", "-D", "max_wait_s=1",
                "--name", "An idle connection is closed after the idle timeout",
                "--name", "A healthy gateway scores at least 75")


@pytest.fixture(scope="module")
def constant_score(tmp_path_factory) -> Run:
    mutant = shlex.join([sys.executable, str(MUTANT_LAUNCH), "constant_score"])
    return _run(tmp_path_factory.mktemp("mutant") / "reports", "--level", "basic", "-D", f"backend_command={mutant}",
                "-D", f"cli={mutant}", "--name", "A silent gateway drives the score below 75",
                "--name", "A healthy gateway scores at least 75")


@pytest.fixture(scope="module")
def silent_detection_1s(tmp_path_factory) -> Run:
    return _run(tmp_path_factory.mktemp("silent") / "reports", "--level", "basic", "-D", "silent_detection_s=1",
                "--name", "reports IB unhealthy when the gateway is silent")


@pytest.fixture(scope="module")
def missing_endpoint(tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("managed")
    backend = shlex.join([sys.executable, str(MISSING_ENDPOINT), "/ib/resilience"])
    return _run(folder / "reports", "--level", "basic", "--target", "managed", "--backend-command",
                f"{backend} serve --host 127.0.0.1 --port {{api_port}}", "--backend-cwd", str(folder), "--cli",
                backend, "--name", "A healthy gateway scores at least 75", "--name", "The IB status names",
                "--name", "An unknown symbol is reported as not found")


@pytest.fixture(scope="module")
def declared_lacks(tmp_path_factory) -> Run:
    """The reference backend, said to lack the resilience report (as a profile's ``lacks`` would)."""
    return _run(tmp_path_factory.mktemp("lacks") / "reports", "--level", "basic", "-D", "lacks=resilience_report",
                "--name", "A healthy gateway scores at least 75", "--name", "A silent gateway drives the score below 75",
                "--name", "The IB status names")


@pytest.fixture(scope="module")
def missing_twice(tmp_path_factory) -> Run:
    """A managed backend without /ib/resilience, and two scenarios that need it."""
    folder = tmp_path_factory.mktemp("missing-twice")
    backend = shlex.join([sys.executable, str(MISSING_ENDPOINT), "/ib/resilience"])
    return _run(folder / "reports", "--level", "basic", "--target", "managed", "--backend-command",
                f"{backend} serve --host 127.0.0.1 --port {{api_port}}", "--backend-cwd", str(folder), "--cli",
                backend, "--name", "A healthy gateway scores at least 75",
                "--name", "A silent gateway drives the score below 75")


@pytest.fixture(scope="module")
def sigterm(tmp_path_factory) -> Run:
    """A basic run stopped by SIGTERM once three scenarios have their results."""
    reports = tmp_path_factory.mktemp("sigterm") / "reports"
    process = subprocess.Popen([RUNNER, "run", "--level", "basic", "--report", "--reports-dir", str(reports)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90.0
        while len(list((reports / "allure-results").glob("*-result.json"))) < 3:
            assert process.poll() is None, f"the run ended before it could be stopped:\n{process.communicate()[0]}"
            assert time.monotonic() < deadline, "no three results within 90 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    return Run(reports, process.returncode, output)


# ------------------------------------------------------------------------------------------- the tests

@WHOLE_LEVEL
@pytest.mark.timeout(300)
def test_a_clean_basic_run_says_the_same_everywhere(clean_basic):
    said = assert_one_verdict(clean_basic)
    assert said.exit_code == 0 and said.verdict == "PASSED", clean_basic.output[-3000:]
    assert said.counts == {"passed": _selected(), "failed": 0, "errors": 0, "skipped": 0, "not_run": 0}
    assert said.invariants is not None and said.invariants[1] == 0


@FEW_SCENARIOS
@pytest.mark.timeout(300)
def test_a_skip_forced_by_max_wait_is_a_skipped_test_case_with_its_reason_everywhere(forced_skip):
    said = assert_one_verdict(forced_skip)
    (reason,) = said.skips.values()
    assert list(said.skips) == ["An idle connection is closed after the idle timeout"]
    assert "max_wait_s 1 s" in reason and said.exit_code == 0, forced_skip.output[-3000:]
    assert said.counts == {"passed": 1, "failed": 0, "errors": 0, "skipped": 1, "not_run": 0}
    # The skipped scenario's feature had no other scenario: its JUnit file is written for it.
    suite = ElementTree.parse(forced_skip.reports / "junit" / "TESTS-garbage_collection.xml").getroot()
    assert suite.get("skipped") == "1" and suite.find("testcase/skipped").get("message") == reason


@FEW_SCENARIOS
@pytest.mark.timeout(300)
def test_the_constant_score_mutant_fails_alike_everywhere(constant_score):
    said = assert_one_verdict(constant_score)
    assert said.exit_code == 1 and said.verdict == "FAILED", constant_score.output[-3000:]
    assert "A silent gateway drives the score below 75" in said.failures
    assert said.invariants is not None and said.invariants[1] >= 1  # reports_fall: a score of 100 in an outage


@FEW_SCENARIOS
@pytest.mark.timeout(300)
def test_a_one_second_silent_detection_bound_gives_one_verdict(silent_detection_1s):
    said = assert_one_verdict(silent_detection_1s)
    assert said.counts["passed"] + said.counts["failed"] + said.counts["errors"] == 1
    assert said.exit_code == (0 if not said.failures and not said.invariants[1] else 1)


@FEW_SCENARIOS
@pytest.mark.timeout(300)
def test_a_managed_backend_missing_an_endpoint_fails_alike_everywhere(missing_endpoint):
    said = assert_one_verdict(missing_endpoint)
    assert said.exit_code == 1 and "A healthy gateway scores at least 75" in said.failures, \
        missing_endpoint.output[-3000:]
    assert sum(said.counts.values()) == 3


@FEW_SCENARIOS
@pytest.mark.timeout(300)
def test_what_a_backend_lacks_is_not_judged_and_says_so_everywhere(declared_lacks):
    said = assert_one_verdict(declared_lacks)
    assert said.counts == {"passed": 1, "failed": 0, "errors": 0, "skipped": 2, "not_run": 0}, \
        declared_lacks.output[-3000:]
    assert set(said.skips) == {"A healthy gateway scores at least 75", "A silent gateway drives the score below 75"}
    assert all(reason.startswith("not judged: the backend does not provide resilience_report (")
               and reason.endswith("its profile says so") for reason in said.skips.values()), said.skips
    assert said.exit_code == 0


@FEW_SCENARIOS
@pytest.mark.timeout(300)
def test_a_missing_endpoint_fails_once_and_later_scenarios_needing_it_are_not_judged(missing_twice):
    said = assert_one_verdict(missing_twice)
    assert said.failures == {"A healthy gateway scores at least 75"}, missing_twice.output[-3000:]
    (reason,) = said.skips.values()
    assert list(said.skips) == ["A silent gateway drives the score below 75"]
    assert reason.startswith("not judged: the backend does not provide resilience_report (") and \
        "the API has no GET /api/v1/ib/resilience" in reason and \
        "found by 'A healthy gateway scores at least 75'" in reason, reason
    assert said.exit_code == 1


@WHOLE_LEVEL
@pytest.mark.timeout(300)
def test_a_run_stopped_by_sigterm_says_so_everywhere(sigterm):
    said = assert_one_verdict(sigterm)
    assert said.exit_code == 143 and said.verdict == "INTERRUPTED", sigterm.output[-3000:]
    assert "INTERRUPTED by SIGTERM, exit 143" in sigterm.output.rstrip().splitlines()[-1]
    assert sum(said.counts.values()) == _selected()       # the level's scenarios, never another level's
    assert said.counts["not_run"] >= 1 and said.counts["passed"] >= 3
    data = json.loads((sigterm.reports / RESULT_FILE).read_text())
    assert data["interrupted"]["by"] == "SIGTERM" and data["interrupted"]["not_run"] == said.counts["not_run"]
    # A scenario cut short by the signal is an error that says so, never "the suite or a target broke".
    text = next(sigterm.reports.glob("resilience_test_report_*.md")).read_text(encoding="utf-8")
    assert "The suite or a target broke" not in text
    assert all(f["interrupted"] for f in data["failures"] if f["status"] == "broken")


@WHOLE_LEVEL
def test_a_run_that_selects_nothing_is_an_error(tmp_path):
    run = _run(tmp_path / "reports", "--level", "basic", "--name", "nomatch")
    assert run.exit_code == 2, run.output
    last = run.output.rstrip().splitlines()[-1]
    assert last == ("ib-resilience: level basic: nothing selected: no scenario of level basic matches "
                    "--name 'nomatch': exit 2")
    data = json.loads((tmp_path / "reports" / RESULT_FILE).read_text())
    assert data["nothing_selected"] and data["exit_code"] == 2 and data["verdict"] == "NOTHING SELECTED"
    assert not list((tmp_path / "reports" / "junit").glob("TESTS-*.xml"))
    shown, text = markdown(Run(tmp_path / "reports", 2, run.output))
    assert (shown.verdict, shown.exit_code) == ("NOTHING SELECTED", 2) and "DO NOT DEPLOY" in text
