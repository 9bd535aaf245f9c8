"""Reports of a run: Allure metadata, the Allure HTML (multi-file and single-file) and the Markdown summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ibreport.causes import (
    Cause,
    Finding,
    annotate_allure,
    cause_categories,
    causes_of,
    linked_causes,
    requirement_of,
)
from ibreport.record import NOT_RUN, RunRecord, build_record, junit_agrees_with, read_record
from ibreport.results import (
    FAIL,
    FAILURE_KINDS,
    INVARIANTS_FILE,
    KINDS,
    NOT_EXERCISED,
    NOT_JUDGED,
    PASS,
    Category,
    Check,
    RunResults,
    ScenarioResult,
    allure_categories,
    capability_of,
    critical_checks,
    junit_counts,
    load_results,
)
from support.evidence import ENVIRONMENT_FILE, read_properties, write_properties
from support.settings import ROOT, Thresholds

T = TypeVar("T")
#: A clone's Allure CLI (``make install`` runs npm install); an installed tool has none: :func:`allure_cli`.
ALLURE_CLI = ROOT / "node_modules" / ".bin" / "allure"
#: Names an Allure binary to use instead (e.g. where the suite is installed as a tool, without node_modules).
ALLURE_ENV = "ALLURE"
#: Bound on one ``allure generate`` (Java start-up included).
ALLURE_TIMEOUT_S = 180.0
VERDICT_MARK = {PASS: "✅", FAIL: "❌", NOT_EXERCISED: "➖", NOT_JUDGED: "⚠️"}


# ------------------------------------------------------------------------------------------- Allure metadata

def write_allure_metadata(results_dir: Path, properties: Mapping[str, str] | None = None,
                          executor: Mapping[str, Any] | None = None, causes: Sequence[Cause] = ()) -> None:
    """Write ``categories.json`` and, when given, merge ``environment.properties`` and write ``executor.json``.

    Args:
        results_dir: the Allure results directory.
        properties: environment entries; merged over what the file already holds.
        executor: the ``executor.json`` document.
        causes: the run's causes: one category each, before the kinds' (Allure files a result under the first
            category it matches), matched on the cause line :func:`ibreport.causes.annotate_allure` wrote.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    categories = cause_categories(causes) + allure_categories()
    (results_dir / "categories.json").write_text(json.dumps(categories, indent=2), encoding="utf-8")
    if properties:
        merged = read_properties(results_dir / ENVIRONMENT_FILE) | dict(properties)
        write_properties(results_dir / ENVIRONMENT_FILE, merged)
    if executor:
        (results_dir / "executor.json").write_text(json.dumps(dict(executor), indent=2), encoding="utf-8")


def executor_document(level: str, started: dt.datetime, report_url: str = "",
                      record: RunRecord | None = None) -> dict[str, Any]:
    """``executor.json``: who ran what (CI or a workstation) and when (and, for a run that did not end on its own,
    that it was interrupted: Allure shows the build's name on its overview).

    Allure labels each run on its trend charts ``#<buildOrder>`` (a number: the trend data has no other label),
    so the order is the run's local date and time as digits, ``#202612020410`` for 2026-12-02 04:10, rather
    than epoch seconds; ``buildName`` (shown in the Executors widget) says the level and the time in words.
    """
    on_ci = bool(os.environ.get("CI"))
    return {"name": "CI" if on_ci else f"ib-resilience on {platform.node()}", "type": "ci" if on_ci else "local",
            "buildName": build_name(level, started) + (f" — INTERRUPTED by {record.interrupted.words}"
                                                       if record is not None and record.interrupted else ""),
            "buildOrder": build_order(started),
            "reportName": f"IB connection resilience ({level})", "reportUrl": report_url}


def build_name(level: str, started: dt.datetime) -> str:
    """The run's name in Allure's Executors widget: ``level standard 2026-12-02 04:10``."""
    return f"level {level} {started:%Y-%m-%d %H:%M}"


def build_order(started: dt.datetime) -> int:
    """The run's number on Allure's trend axis: its local date and time as ``YYYYmmddHHMM`` (increasing)."""
    return int(f"{started:%Y%m%d%H%M}")


# ------------------------------------------------------------------------------------------- Allure HTML

@dataclass(frozen=True)
class Reports:
    """Where :func:`render_reports` put things; ``html_error`` says why the HTML is missing, if it is."""

    markdown: Path
    html_dir: Path | None
    single_file: Path | None
    html_error: str = ""


def allure_generate(results_dir: Path, output_dir: Path, single_file: bool = False,
                    timeout_s: float = ALLURE_TIMEOUT_S) -> Path:
    """Run the npm Allure CLI (analytics off) and return the report's ``index.html``.

    Raises:
        RuntimeError: the CLI is missing, failed, or took longer than ``timeout_s``.
    """
    cli = allure_cli()
    if cli is None:
        raise RuntimeError(f"no Allure CLI (in a clone: `make install`, which runs npm install; elsewhere: "
                           f"{ALLURE_ENV}=/path/to/allure or `allure` on PATH, or later `npx allure-commandline "
                           f"generate {_shown(results_dir)} -o {_shown(output_dir)}`; Allure needs Java)")
    command = [str(cli), "generate", str(results_dir), "-o", str(output_dir), "--clean"]
    if single_file:
        command.append("--single-file")
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"allure generate took more than {timeout_s:.0f} s") from None
    except OSError as exc:
        raise RuntimeError(f"cannot run {cli}: {exc}") from None
    index = Path(output_dir) / "index.html"
    if done.returncode != 0 or not index.exists():
        raise RuntimeError(f"allure generate exited {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
    return index


def allure_cli() -> Path | None:
    """The Allure CLI to render with: ``$ALLURE``, else the clone's npm one, else ``allure`` on PATH (None: none)."""
    given = os.environ.get(ALLURE_ENV, "")
    if given:
        return Path(given)
    if ALLURE_CLI.exists():
        return ALLURE_CLI
    found = shutil.which("allure")
    return Path(found) if found else None


def _carry_history(report_dir: Path, results_dir: Path) -> None:
    """Copy the previous report's history into the results so Allure draws trends across runs."""
    history = report_dir / "history"
    if history.is_dir():
        shutil.copytree(history, results_dir / "history", dirs_exist_ok=True)


def directory_size(path: Path) -> int:
    """Bytes in every file under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


# ------------------------------------------------------------------------------------------- the run's reports

def render_reports(reports_dir: Path, level: str, elapsed_s: float, return_code: int | None = None,
                   html: bool = True, run_argv: Sequence[str] | None = None,
                   record: RunRecord | None = None) -> Reports:
    """Write Allure metadata, the Allure HTML (multi-file and single-file) and the Markdown summary.

    Args:
        reports_dir: holds ``allure-results`` and ``junit`` of the run; the reports go there too.
        level: the run's level (basic, standard, exhaustive).
        elapsed_s: how long the run took.
        return_code: behave's exit code (None when unknown).
        html: also render the Allure HTML (needs the npm CLI and Java 17).
        run_argv: the ``ib-resilience run`` arguments of the run (recorded in the results, and the base of each
            "re-run alone" command); None reads them back from an earlier record of the same results.
        record: the run's record (``ibreport.record``), which every verdict is read from; None reads the one in
            ``reports_dir`` (``run-result.json``), else builds one from the results and ``return_code``.
    """
    reports_dir = Path(reports_dir)
    results_dir = reports_dir / "allure-results"
    now = dt.datetime.now().astimezone()
    html_dir, single_dir = reports_dir / "allure-report", reports_dir / "allure-report-single"
    if record is None:
        record = read_record(reports_dir) or build_record(load_results(results_dir), level, elapsed_s,
                                                          behave_exit=return_code)
    run_argv = record_run(results_dir, level, elapsed_s, record.exit_code, run_argv)
    properties = {"run.level": level, "run.elapsed_s": f"{elapsed_s:.1f}", **record.allure_properties()}
    if run_argv is not None:
        properties["run.command"] = "ib-resilience run " + shlex.join(_run_options(run_argv))
    causes = causes_of(load_results(results_dir))
    annotate_allure(results_dir, causes)
    write_allure_metadata(results_dir, properties,
                          executor_document(level, now, "../allure-report/index.html", record), causes)
    html_index = single_index = None
    error = ""
    if html:
        try:
            _carry_history(html_dir, results_dir)
            html_index = allure_generate(results_dir, html_dir)
            single_index = allure_generate(results_dir, single_dir, single_file=True)
        except RuntimeError as exc:
            error = str(exc)
            print(f"ib-resilience: Allure HTML not generated: {error}", file=sys.stderr)
    run = load_results(results_dir)
    text = markdown_report(run, level, elapsed_s, record.exit_code, junit_counts(reports_dir / "junit"), now,
                           html_index, single_index, error, run_argv, record, causes)
    markdown = reports_dir / f"resilience_test_report_{now:%Y%m%d_%H%M%S}.md"
    markdown.write_text(text, encoding="utf-8")
    print(f"ib-resilience: Markdown summary {_shown(markdown)}", flush=True)
    if html_index and single_index:
        print(f"ib-resilience: Allure HTML {_shown(html_index)} ({_megabytes(directory_size(html_dir))}); "
              f"single file {_shown(single_index)} ({_megabytes(single_index.stat().st_size)})", flush=True)
    return Reports(markdown, html_dir if html_index else None, single_index, error)


#: What :func:`record_run` writes into the results directory (Allure ignores it).
RUN_RECORD_FILE = "ib-resilience-run.json"


def record_run(results_dir: Path, level: str, elapsed_s: float, return_code: int | None,
               run_argv: Sequence[str] | None) -> list[str] | None:
    """Write the run's arguments, level, time and exit code to :data:`RUN_RECORD_FILE` and return the arguments.

    Without ``run_argv`` nothing is written and the arguments of an earlier record are returned (None if none),
    so regenerating the reports of a run keeps its re-run commands.
    """
    path = Path(results_dir) / RUN_RECORD_FILE
    if run_argv is None:
        return read_run_record(results_dir).get("argv")
    argv = [str(a) for a in run_argv]
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"argv": argv, "level": level, "elapsed_s": round(elapsed_s, 1), "return_code": return_code}
    path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return argv


def read_run_record(results_dir: Path) -> dict[str, Any]:
    """What :func:`record_run` wrote ({} when nothing was recorded or the file is unreadable)."""
    try:
        record = json.loads((Path(results_dir) / RUN_RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or not isinstance(record.get("argv"), list):
        return {}
    return record


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def overall_passed(run: RunResults, return_code: int | None, checks: list[Check]) -> bool:
    """PASSED only if the run's record is green (``ibreport.record``: scenarios ran, none failed or broke, behave
    exited 0, the run judged its run-wide invariants, every worker of it, and none broke, it was not interrupted).
    A critical check fails only when a scenario or an invariant did, so ``checks`` can never disagree."""
    return build_record(run, "", 0.0, behave_exit=return_code).passed and all(c.verdict != FAIL for c in checks)


def unjudged_workers(run: RunResults) -> list[str]:
    """The workers of a ``--workers N`` run (``run.workers`` in its properties) that filed no invariant: their
    behave ended before ``after_all``."""
    count = run.properties.get("run.workers", "")
    judged = {i.worker for i in run.invariants}
    if not count.isdigit() or int(count) < 2 or not judged:
        return []
    return [f"w{k}" for k in range(1, int(count) + 1) if f"w{k}" not in judged]


def markdown_report(run: RunResults, level: str, elapsed_s: float, return_code: int | None,
                    junit: Mapping[str, int], generated: dt.datetime, html_index: Path | None = None,
                    single_index: Path | None = None, html_error: str = "",
                    run_argv: Sequence[str] | None = None, record: RunRecord | None = None,
                    causes: Sequence[Cause] | None = None) -> str:
    """The seed's Markdown report: the overall result and the causes of the failures first (what the backend did,
    largest first), then configuration, totals, critical checks, failures, advice.

    Args:
        return_code: the runner's exit code, when there is no ``record`` (then one is built from ``run`` and it).
        run_argv: the run's ``ib-resilience run`` arguments (the base of the re-run commands); None rebuilds
            what it can from ``environment.properties``.
        record: the run's record: the overall result, the return code, the statistics and the interruption are
            its own.
        causes: the failures grouped by cause (``ibreport.causes``); None groups them here (reading the run's
            histories next to its results).
    """
    from support.settings import LEVELS
    if record is None:
        record = build_record(run, level, elapsed_s, behave_exit=return_code)
    if causes is None:
        causes = causes_of(run)
    checks = critical_checks(run)
    passed = record.passed
    base = rerun_base(run_argv, level, run.properties)
    lines = [f"# IB Connection Resilience Test Report — {level} level", ""] + _banner(record)
    lines += [f"**Overall Result:** {VERDICT_SHOWN[record.verdict]}  ", ""]
    lines += ["## Causes", ""] + _causes(run, causes, base)
    lines += ["", f"**Report Generated:** {generated.isoformat(timespec='seconds')}  ",
              f"**Test Level:** {level} (`{LEVELS.get(level, level)}`)  ", "**Test Configuration:**", ""]
    lines += _configuration(run.properties)
    lines += ["", "## Test Results Summary", ""]
    lines += [f"**Execution Time:** {elapsed_s:.2f} seconds  ",
              f"**Return Code:** {record.exit_code}", "",
              "### Test Statistics", ""]
    lines += _statistics(record, junit) + [_invariant_line(run)]
    lines += ["", "### Critical Checks", "", "| Check | Requirement | Observed | Verdict |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {_cell(c.requirement)} | {_cell(c.observed)} | {VERDICT_MARK[c.verdict]} {c.verdict} |"
              for c in checks]
    lines += ["", "### Run-wide invariants", ""] + _invariants(run)
    lines += ["", "### Results by Feature", "",
              "| Feature | Phase | Passed | Failed | Errors | Skipped | Not run |", "|---|---|---|---|---|---|---|"]
    lines += _by_feature(run, record)
    lines += ["", "### Failure Categories", ""] + (_category_table(run) or ["None."])
    lines += ["", "### Failed Scenarios", ""]
    lines += _failures(run, base, causes) or ["None."]
    lines += _broken_invariants(run, base)
    lines += _error_details(record)
    lines += ["", "## Recommendations", ""] + _recommendations(run, record, level, passed, checks)
    lines += ["", "## Evidence", ""] + _evidence(run.directory.parent, html_index, single_index, html_error)
    return "\n".join(lines) + "\n"


#: How many requirements and scenario names a cause's row shows before "… N more".
SHOWN_REQUIREMENTS = 3
CAUSES_INTRO = ("Each failed scenario sits under exactly one cause — what the backend did, read from typed evidence "
                "(the claim, the answers' status, error code and time, the CLI's exit, the gateway's record, the "
                "backend's output, the faults in force) — largest first; ⟲ marks state an earlier scenario left. The "
                "broken run-wide invariants follow (I1 …), with the causes whose evidence they share.")


def _causes(run: RunResults, causes: Sequence[Cause], base_argv: Sequence[str]) -> list[str]:
    """The Causes table: one row per cause, largest first, then one per broken run-wide invariant."""
    broken = run.broken_invariants
    if not causes and not broken:
        return ["None: no scenario failed and no run-wide invariant broke."]
    failed = sum(len(c.findings) for c in causes)
    out = [f"**{failed} failed scenario(s) from {len(causes)} cause(s)**"
           + (f"; **{len(broken)} run-wide invariant(s) broken**" if broken else "") + ". " + CAUSES_INTRO, "",
           "| # | Cause: what the backend did | Evidence | Scenarios it failed | Requirement it breaks | Re-run first |",
           "|---|---|---|---|---|---|"]
    for cause in causes:
        carried = " ⟲ carried over from " + ", ".join(f'"{name}"' for name in cause.carried_from) \
            if cause.carried_from else ""
        names = "; ".join(s.name.strip() for s in cause.scenarios)
        requirements = cause.requirements
        shown = "; ".join(requirements[:SHOWN_REQUIREMENTS]) + (
            f"; … {len(requirements) - SHOWN_REQUIREMENTS} more" if len(requirements) > SHOWN_REQUIREMENTS else "")
        first = cause.rerun_first()
        out.append(f"| {cause.ident} | {_cell(cause.behaviour)}{_cell(carried)} | {_cell(cause.evidence)} | "
                   f"{len(cause.findings)}: {_cell(names)} | {_cell(shown)} | {_cell(first.scenario.name.strip())}: "
                   f"`{_cell(_rerun_finding(base_argv, first))}` |")
    for index, invariant in enumerate(broken, 1):
        first = invariant.violations[0][1] if invariant.violations else None
        evidence = invariant.message + (f"; first at {first.at_s:.2f} s: {first.text}" if first else "")
        linked = ", ".join(c.ident for c in linked_causes(invariant, causes))
        shares = f"; shares its evidence with {linked}" if linked else ""
        out.append(f"| I{index} | Run-wide invariant broken: {_cell(invariant.title)} (`{invariant.key}`) | "
                   f"{_cell(evidence[:400])} | — (judged over the whole run: {invariant.violation_count} "
                   f"violation(s)){shares} | {_cell(invariant.source)} | the whole level: "
                   f"`{_cell('ib-resilience run ' + shlex.join(base_argv))}` |")
    return out


def _rerun_finding(base_argv: Sequence[str], finding: Finding) -> str:
    """The command that re-runs a cause's first scenario: with the scenario that left its state, when carried over."""
    names = ([finding.carried_from] if finding.carried_from else []) + [finding.scenario.name]
    return rerun_command(base_argv, *names)


#: The Overall Result of each verdict of the record.
VERDICT_SHOWN = {"PASSED": "✅ PASSED", "FAILED": "❌ FAILED", "INTERRUPTED": "⏹️ INTERRUPTED",
                 "NOTHING SELECTED": "❌ NOTHING SELECTED"}


def _banner(record: RunRecord) -> list[str]:
    """What must be read before any count: the run was interrupted, or selected nothing."""
    if record.interrupted is not None:
        return [f"> ⚠️ **Interrupted:** {record.interruption_text}.", ""]
    if record.nothing_selected:
        return [f"> ⚠️ **{record.nothing_selected_text[:1].upper()}{record.nothing_selected_text[1:]}.** Check "
                "`--name` and `--level`.", ""]
    return []


def _error_details(record: RunRecord) -> list[str]:
    """Why the run failed when no scenario and no invariant says so."""
    said = {record.interruption_text, record.nothing_selected_text}
    unexplained = [p for p in record.problems if p not in said and not p.split(" ", 1)[-1].startswith(
        ("scenario(s) failed", "scenario(s) broke", "run-wide invariant(s) broken"))]
    if not unexplained:
        return []
    return ["", "### Error Details", "", "```", *unexplained, "```"]


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _address(p: Mapping[str, str], host_key: str, port_key: str) -> str:
    """``host:port`` from two properties, '?' for what is missing."""
    return f"{p.get(host_key) or '?'}:{p.get(port_key) or '?'}"


def _configuration(p: Mapping[str, str]) -> list[str]:
    """What the run was pointed at: the gateway the suite probes, where the backend connects, versions, bounds."""
    if not p:
        return ["- (no environment.properties: the run did not reach its set-up)"]
    gateway = _address(p, "ib_host", "ib_port") if "ib_host" in p else p.get("ib_gateway", "?")
    out = [f"- Gateway (the suite's probes): {gateway} ({p.get('gateway', '?')}, server version "
           f"{p.get('gateway.server_version', '?')}, accounts {p.get('gateway.accounts') or '?'})",
           f"- The backend connects to IB at: {_address(p, 'backend_ib_host', 'backend_ib_port')}",
           f"- API Base URL: {p.get('api_base_url', '?')} (backend version {p.get('backend.version', '?')})",
           f"- Fault proxy control: {p.get('proxy_control', '?')}; gateway control: {p.get('gateway_control', '?')}",
           f"- CLI: `{p.get('cli', '?')}`",
           f"- Target: {p.get('target', '?')}; {p.get('ib_library', 'ib_insync')} "
           f"{p.get('ib_library.version') or p.get('ib_insync.version', '?')}; "
           f"Python {p.get('python.version', '?')}; behave {p.get('behave.version', '?')}; {p.get('platform', '')}"]
    bounds = [f"{k.removeprefix('threshold.')}={v}" for k, v in p.items() if k.startswith("threshold.")]
    if bounds:
        out.append(f"- Bounds: {', '.join(bounds)}; timeout multiplier {p.get('timeout_multiplier', '1')}")
    if p.get("run.command"):
        out.append(f"- Command: `{p['run.command']}`")
    return out


def _statistics(record: RunRecord, junit: Mapping[str, int]) -> list[str]:
    """Totals of the selected scenarios, from the run's record: those that ran, those skipped (each with its
    reason), those that never ran; and whether JUnit says the same."""
    c = record.counts
    ran = record.ran
    rate = f"{100.0 * c['passed'] / ran:.1f}% ({c['passed']}/{ran})" if ran else "n/a (nothing ran)"
    out = [f"- **Total Scenarios:** {c['selected']} selected ({ran} ran, {c['skipped']} skipped, {c[NOT_RUN]} not run; "
           "other levels are not counted)",
           f"- **Passed:** {c['passed']} ✅",
           f"- **Failed:** {c['failed']} {'❌' if c['failed'] else '✅'}",
           f"- **Errors:** {c['broken']} {'❌' if c['broken'] else '✅'}"
           + (f" ({sum(s.interrupted for s in record.failures)} interrupted mid-way)"
              if any(s.interrupted for s in record.failures) else ""),
           f"- **Skipped:** {c['skipped']}" + (" (reasons below)" if c["skipped"] else ""),
           f"- **Not run:** {c[NOT_RUN]}" + (f" ❌ ({record.not_run[0].reason})" if c[NOT_RUN] else ""),
           f"- **Success Rate:** {rate}"]
    return out + _junit_line(record, junit) + _skip_reasons(record)


def _invariant_line(run: RunResults) -> str:
    """The run-wide invariants' totals, apart from the scenarios' (each one under "Run-wide invariants")."""
    combined = run.combined_invariants
    if not combined:
        return "- **Run-wide invariants:** not judged ⚠️ (the run ended before they were judged)"
    counts = {status: sum(c.status == status for c in combined) for status in (PASS, FAIL, NOT_EXERCISED)}
    return (f"- **Run-wide invariants:** {counts[PASS]} held, {counts[FAIL]} broken {'❌' if counts[FAIL] else '✅'}, "
            f"{counts[NOT_EXERCISED]} not exercised (counted apart from the scenarios)")


def _junit_line(record: RunRecord, junit: Mapping[str, int]) -> list[str]:
    """The JUnit totals and whether they say the record's counts (the runner writes them from it)."""
    if not junit.get("tests") and not record.scenarios:
        return []
    verdict = ("✅ (agrees: every selected scenario a test case, the skipped and the never-run as skipped)"
               if junit_agrees_with(record, junit) else "⚠️ (differs from this summary; see reports/junit/)")
    return [f"- **JUnit cross-check:** {junit.get('tests', 0)} tests, {junit.get('failures', 0)} failures, "
            f"{junit.get('errors', 0)} errors, {junit.get('skipped', 0)} skipped {verdict}"]


def _skip_reasons(record: RunRecord) -> list[str]:
    """Each skip reason with the scenarios it kept from running."""
    by_reason: dict[str, list[str]] = {}
    for s in record.skips:
        by_reason.setdefault(s.reason, []).append(s.name)
    out = ["- **Skipped, with their reasons:**"] if by_reason else []
    return out + [f"  - `{reason}` ({len(names)}): {', '.join(names)}" for reason, names in by_reason.items()]


def _by_feature(run: RunResults, record: RunRecord) -> list[str]:
    """One table row per feature: its phase and its scenarios per outcome (the record's)."""
    phases = {s.feature: s.label("phase") for s in run.scenarios}
    rows: dict[str, dict[str, Any]] = {}
    for s in record.scenarios:
        row = rows.setdefault(s.feature, {"phase": phases.get(s.feature) or "–", "passed": 0, "failed": 0,
                                          "broken": 0, "skipped": 0, NOT_RUN: 0})
        row[s.status] += 1
    return [f"| {_cell(name)} | {r['phase']} | {r['passed']} | {r['failed']} | {r['broken']} | {r['skipped']} "
            f"| {r[NOT_RUN]} |" for name, r in rows.items()] or ["| (no scenario) | | | | | | |"]


def _category_table(run: RunResults) -> list[str]:
    """Failed scenarios grouped by kind, capability and failing step: one defect shows as one row."""
    groups: dict[tuple[str, str, str], int] = {}
    for s in run.problems:
        category = _category(s)
        key = (category.kind.name, category.capability.name, category.step or "(a hook, not a step)")
        groups[key] = groups.get(key, 0) + 1
    if not groups:
        return []
    rows = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
    return ["| Kind | Capability | Failing step | Scenarios |", "|---|---|---|---|"] + [
        f"| {_cell(kind)} | {_cell(capability)} | `{_cell(step)}` | {count} |"
        for (kind, capability, step), count in rows]


def _category(s: ScenarioResult) -> Category:
    """The scenario's category (:func:`load_results` gives every failed or broken one a category; a result
    built otherwise counts as a claim, or a suite error when broken)."""
    return s.category or Category(KINDS["claim"] if s.status == "failed" else KINDS["suite"],
                                  capability_of(s.labels.get("tag", ()), s.feature), s.failing_step)


#: A bound exceeded by at most this much may be slowness of the machine (the only case for a multiplier).
MULTIPLIER_MARGIN_PCT = 30.0


def _meaning(category: Category, scenario: ScenarioResult | None = None) -> str:
    """One sentence per failure kind: what the failure says about the claim (for a failed precondition or action,
    which requirement it kept from being judged)."""
    step = f"`{category.step}`" if category.step else "a hook"
    unjudged = requirement_of(scenario, category.key)[0] if scenario is not None else ""
    unjudged = f"; {unjudged.replace('not judged: ', 'so this requirement was not judged: ', 1)}" \
        if unjudged.startswith("not judged: ") else ""
    pct = category.over_bound_pct
    return {
        "interrupted": "the run was stopped (SIGTERM, Ctrl-C or its time bound) while this scenario ran: it has no "
                       "verdict",
        "async": "the CLI or the backend printed async/coroutine warnings — the original bug",
        "not_provided": f"the backend does not provide an endpoint or a field the contract names ({step}): the "
                        "requirement could not be judged — a drifted or incomplete API, not a refuted claim",
        "unreachable": "the suite could not reach the target (API or gateway) — check the addresses; the claim "
                       "was not judged",
        "suite": "an exception that is not an assertion: a suite or target error, not a verdict on the backend",
        "precondition": f"the scenario never reached its claim: the precondition {step} failed{unjudged}",
        "action": f"the scenario never reached its claim: the action {step} failed{unjudged}",
        "bound": (f"the claim's time bound was exceeded by {pct:.0f} %" if pct is not None
                  else "the claim did not hold within its time bound"),
        "claim": "the claim was judged and does not hold",
    }[category.key]


def rerun_base(run_argv: Sequence[str] | None, level: str, properties: Mapping[str, str]) -> list[str]:
    """The run's arguments without its scenario selection and ``--report``.

    Without the run's arguments, what :func:`argv_from_properties` can rebuild.
    """
    if run_argv is None:
        return argv_from_properties(properties, level)
    argv, skip_value = [], False
    for token in _run_options(run_argv):
        if skip_value:
            skip_value = False
        elif token == "--name":
            skip_value = True
        elif token != "--report" and not token.startswith("--name="):
            argv.append(token)
    return argv


def _run_options(run_argv: Sequence[str]) -> list[str]:
    """The options of an ``ib-resilience run`` argument list (without a leading ``run`` subcommand)."""
    tokens = [str(t) for t in run_argv]
    return tokens[1:] if tokens[:1] == ["run"] else tokens


#: ``ib-resilience run`` options for an external target's addresses (environment property → option).
_TARGET_OPTIONS = (("api_base_url", "--api-base-url"), ("cli", "--cli"), ("ib_host", "--ib-host"),
                   ("ib_port", "--ib-port"), ("gateway_control", "--gateway-control"),
                   ("proxy_control", "--proxy-control"))


def argv_from_properties(p: Mapping[str, str], level: str) -> list[str]:
    """``ib-resilience run`` arguments rebuilt from ``environment.properties``: the level, an external target's
    addresses, the timeout multiplier and every bound that differs from the seed's (other ``-D`` settings are
    not recorded there)."""
    argv = ["--level", level]
    if p.get("target") == "external":
        argv += [a for key, option in _TARGET_OPTIONS if p.get(key) not in (None, "", "none", "?")
                 for a in (option, p[key])]
    if p.get("timeout_multiplier") not in (None, "", "1"):
        argv += ["--timeout-multiplier", p["timeout_multiplier"]]
    for name, default in vars(Thresholds()).items():
        value = p.get(f"threshold.{name}")
        if value is not None and _number(value) != default:
            argv += ["-D", f"{name}={value}"]
    return argv


def _number(text: str) -> float | None:
    """The number in ``text`` (None when it is not one)."""
    try:
        return float(text)
    except ValueError:
        return None


def rerun_command(base_argv: Sequence[str], *scenario_names: str) -> str:
    """A shell command that re-runs one scenario alone (or these few, in the order the run has them) with the run's
    other arguments."""
    selection = []
    for scenario_name in scenario_names:
        name = scenario_name.split(" -- @")[0]
        selection += ["--name", "".join("\\" + ch if ch in ".^$*+?{}[]()|\\" else ch for ch in name)]
    return "ib-resilience run " + shlex.join([*base_argv, *selection])


def _failures(run: RunResults, base_argv: Sequence[str], causes: Sequence[Cause] = ()) -> list[str]:
    """Each failed or broken scenario: its cause, category, failing step, what it means, how to re-run it, its
    message."""
    out = []
    cause_of = {id(f.scenario): c for c in causes for f in c.findings}
    for index, s in enumerate(run.problems, 1):
        category = _category(s)
        message = "\n".join(s.message.splitlines()[:15]) or "(no message)"
        cause = cause_of.get(id(s))
        out += [f"#### {index}. {s.feature}: {s.name}", ""]
        if cause is not None:
            carried = next((f.carried_from for f in cause.findings if f.scenario is s and f.carried_from), "")
            out.append(f"- **Cause:** {cause.ident} — {_cell(cause.behaviour)}"
                       + (f" (carried over from \"{carried}\")" if carried else ""))
        out += [f"- **Status:** {s.status}; **category:** {category.name}",
                f"- **Failing step:** `{s.failing_step or '(a hook, not a step)'}`",
                f"- **What this means:** {_meaning(category, s)}",
                f"- **Location:** `{s.label('location') or '?'}`",
                f"- **Re-run alone:** `{rerun_command(base_argv, s.name)}`", "",
                "```", message.replace("```", "'''"), "```", ""]
    return out


#: How many violations of one invariant (per worker) the Markdown quotes; the rest are in ``run-invariants.json``.
SHOWN_VIOLATIONS = 5
INVARIANTS_INTRO = ("Judged once, when the run ended, over the whole run's history (between and around scenarios "
                    "too, at every level): the run's own verdicts, shown as the run gave them. Times are seconds "
                    "from the start of the history that was judged (each worker's own).")


def _invariants(run: RunResults) -> list[str]:
    """Each run-wide invariant: its verdict, its message and its first violations with their times (per worker
    when several judged it); or why there are none."""
    combined = run.combined_invariants
    if not combined:
        return [f"⚠️ **Not judged:** the run ended before its run-wide invariants were judged (no result filed under "
                f"\"Run-wide invariants\", no `{INVARIANTS_FILE}`); nothing the backend did between scenarios was "
                "checked."]
    counts = {status: sum(c.status == status for c in combined) for status in (PASS, FAIL, NOT_EXERCISED)}
    out = [INVARIANTS_INTRO, "",
           f"**{len(combined)} invariant(s):** {counts[PASS]} held ✅, {counts[FAIL]} broken "
           f"{'❌' if counts[FAIL] else '✅'}, {counts[NOT_EXERCISED]} not exercised", ""]
    missing = unjudged_workers(run)
    if missing:
        out += [f"⚠️ **Not judged by worker(s) {', '.join(missing)}:** their run ended before its run-wide "
                "invariants were judged, so their part of the run was never checked.", ""]
    for invariant in combined:
        mark = VERDICT_MARK[invariant.status]
        single = len(invariant.parts) == 1 and not invariant.parts[0].worker
        head = f"- {mark} **{_cell(invariant.title)}** (`{invariant.key}`) — {invariant.status}"
        if single:
            out.append(f"{head}: {invariant.parts[0].message}")
            out += _violation_lines(invariant.parts[0].violations, invariant.parts[0].violation_count, "  ")
            continue
        out.append(head)
        for part in invariant.parts:
            out.append(f"  - {VERDICT_MARK[part.status]} {part.worker or 'run'} — {part.status}: {part.message}")
            out += _violation_lines(part.violations, part.violation_count, "    ")
    return out


def _violation_lines(violations: Sequence[Any], count: int, indent: str) -> list[str]:
    """The first violations, each with its time, and how many more there are."""
    out = [f"{indent}- at {v.at_s:.2f} s: {_cell(v.text)}" for v in violations[:SHOWN_VIOLATIONS]]
    more = max(count, len(violations)) - min(len(violations), SHOWN_VIOLATIONS)
    if more > 0:
        out.append(f"{indent}- … {more} more violation(s) (every one in `{INVARIANTS_FILE}`)")
    return out


def _record_file(run: RunResults, worker: str) -> str:
    """Where the record of an invariant judged by ``worker`` is (the worker's folder, else the reports folder)."""
    reports = run.directory.parent
    own = reports / "workers" / worker / INVARIANTS_FILE
    return _shown(own if worker and own.is_file() else reports / INVARIANTS_FILE)


def _broken_invariants(run: RunResults, base_argv: Sequence[str]) -> list[str]:
    """Each broken run-wide invariant as a failure, like a failed scenario: what was required, where it broke,
    what it means, the evidence and how to judge it again."""
    broken = run.broken_invariants
    if not broken:
        return []
    out = ["", "### Broken Run-wide Invariants", ""]
    for index, invariant in enumerate(broken, 1):
        parts = [p for p in invariant.parts if p.status == FAIL]
        where = ", ".join(p.worker for p in parts if p.worker)
        files = sorted({_record_file(run, p.worker) for p in parts})
        evidence = [f"- at {v.at_s:.2f} s{f' ({worker})' if worker else ''}  {v.text}"
                    for worker, v in invariant.violations[:SHOWN_VIOLATIONS * 2]]
        shown = min(len(invariant.violations), SHOWN_VIOLATIONS * 2)
        if invariant.violation_count > shown:
            evidence.append(f"… {invariant.violation_count - shown} more")
        out += [f"#### {index}. Run-wide invariant: {invariant.title}", "",
                f"- **Status:** failed (broken{f' in {where}' if where else ''}); **category:** Run-wide invariant "
                f"broken · `{invariant.key}`",
                f"- **Requirement:** {invariant.source}",
                "- **What this means:** the run's history, judged as a whole when the run ended, breaks this "
                "invariant: the backend did it somewhere in the run (between scenarios too), even where every "
                "scenario's own claim held",
                f"- **Evidence:** every violation and the figures in {', '.join(f'`{f}`' for f in files)}; the "
                f"whole history in `{_shown(run.directory.parent / 'history.json.gz')}` (judge it again); Allure: "
                f"\"Run-wide invariants\" → {', '.join(p.name for p in parts)}",
                f"- **Re-run:** `ib-resilience run {shlex.join(base_argv)}` (the whole level: the invariant is "
                "judged over the whole run)", "",
                "```", "\n".join([p.message if not p.worker else f"{p.worker}: {p.message}" for p in parts]
                                 + evidence).replace("```", "'''"), "```", ""]
    return out


#: Advice per capability for claims that were judged and failed (the seed's "If Tests Fail", made specific).
CAPABILITY_ADVICE = {
    "validation": "validate every connection (`isConnected()` + `reqCurrentTime()` under a 3 s timeout) before "
                  "handing it out, discard the ones that fail, and bound every IB call; check "
                  "`phase_1_systematic_validation` in `/api/v1/ib/resilience`.",
    "gc": "the idle GC loop must run (`phase_2_garbage_collection`), close connections idle longer than the "
          "reported timeout, never close busy ones, and remove dead ones.",
    "client_ids": "on IB error 326 try the next client ID in order, reuse freed IDs first, and fail quickly with a "
                  "clear message when every allowed ID is taken.",
    "score": "each phase may report `working` only on live evidence (a recent validation round-trip, a GC loop "
             "that ran, IDs the gateway accepted); the score must follow the gateway's state.",
    "leaks": "cleanup must close every pooled connection and failed connections must be closed, not dropped; "
             "compare the resource plot attached to the scenario with its fault windows.",
    "pool": "the pool must hold its limit under bursts, hand each connection to one caller at a time, and give "
            "back every connection after create/destroy cycles.",
    "recovery": "after an outage the backend must replace dead connections on the next request and turn IB errors "
                "into clear answers (pacing with backoff, 1100/1102 followed).",
    "api": "the API must answer within its bound under load, keep the contract's shapes, reject bad input "
           "clearly and answer 503 quickly when IB is gone.",
    "cli": "each command must finish in time, do what it says (ask IB, show the live state) and fail honestly.",
    "pipeline": "what the backend caches must be what IB served, `ib_requests_made` must be honest, and a fault "
                "mid-load must end the load with a clear status.",
    "self_report": "IB status, IB configuration, IB health and the client-ID phase must come from the live "
                   "connections (what the gateway saw), never from constants or placeholders.",
    "backend_output": "on SIGTERM the backend must close every IB connection it holds (a disconnect the gateway "
                      "sees) and exit within the shutdown bound; read the backend output attached to the scenario.",
    "nemesis": "an invariant broke under overlapping faults: the failure names the seed and the schedule file; "
               "`ib-resilience nemesis --replay FILE` runs it again, and the timeline plot shows what overlapped.",
}
ASYNC_ADVICE = ("🚨 **DO NOT DEPLOY: async/coroutine errors in the CLI or the backend** — the original bug is back. "
                "Run the failing command with `PYTHONWARNINGS=default`, or read the backend's output attached to "
                "the scenario, and look for `RuntimeWarning` / `was never awaited`; every coroutine on the CLI "
                "and server paths must be awaited (or run via `asyncio.run`).")
SUITE_ADVICE = ("**The suite or a target broke** (not an assertion) — read the trace in the Allure report and the "
                "targets' logs in `reports/logs/`.")
INTERRUPTED_ADVICE = ("**{n} scenario(s) interrupted mid-way** ({names}): the run was stopped while they ran, so "
                      "they have no verdict — re-run them.")
OTHER_ADVICE = ("read each failing step's message above and the evidence attached in the Allure report (API "
                "exchanges, CLI transcripts, IB history, fault timeline, backend output).")


#: The heading of the advice of a run that is not green, per verdict.
NOT_GREEN_HEADING = {"FAILED": "### Tests Failed ❌", "INTERRUPTED": "### Run Interrupted ⏹️",
                     "NOTHING SELECTED": "### Nothing Selected ❌"}
#: The record's reasons the advice states itself (its failures and invariants have advice of their own).
_STATED_BY_THE_RECORD = ("interrupted", "not run", "nothing ran", "nothing selected", "behave")


def _recommendations(run: RunResults, record: RunRecord, level: str, passed: bool, checks: list[Check]) -> list[str]:
    """What to do next: after a pass, the next level and monitoring; otherwise DO NOT DEPLOY and why — advice per
    failure kind, per broken invariant, and every other reason the record gives (never an empty list)."""
    if passed:
        return _passed_advice(run, level, checks)
    out = [NOT_GREEN_HEADING.get(record.verdict, "### Tests Failed ❌"), "",
           "**DO NOT DEPLOY** until these are fixed, then re-run this level:", ""]
    if run.problems:
        out += ["Work through the **Causes** at the top, largest first: each is one behaviour of the backend, with the "
                "scenario to re-run first once it is fixed; a cause marked ⟲ stems from state an earlier scenario "
                "left, so re-run the two together.", ""]
    lines = [f"**{problem[:1].upper()}{problem[1:]}.**" for kind, problem in record.problems_by_kind()
             if kind in _STATED_BY_THE_RECORD]
    lines += _failure_advice(run, checks) + _invariant_advice(run)
    if record.nothing_selected:
        lines.append("Check the `--name`/`--level` selection: `ib-resilience run --level LEVEL --name REGEX` runs "
                     "the scenarios whose name matches.")
    lines = lines or [f"{problem[:1].upper()}{problem[1:]}." for problem in record.problems] \
        or [f"The run's exit code is {record.exit_code}: see the console output."]
    return out + [f"- {line}" for line in lines]


def _passed_advice(run: RunResults, level: str, checks: list[Check]) -> list[str]:
    """The seed's "If Tests Pass" steps, with what this level did not exercise."""
    idle = [c.name for c in checks if c.verdict == NOT_EXERCISED]
    skipped = f" {len(run.capability_skips)} scenario(s) were skipped for a missing capability (listed above)." \
        if run.capability_skips else ""
    return ["### Tests Passed ✅", "",
            f"1. No scenario failed, no run-wide invariant broke and no critical check failed at the **{level}** "
            f"level ({run.counts['passed']} scenario(s) passed, {sum(c.status == PASS for c in run.combined_invariants)}"
            f" invariant(s) held).{skipped}",
            "2. " + (f"Not exercised at this level: {', '.join(idle)}; a higher level covers them."
                     if idle else "Every critical check was exercised."),
            "3. Enable monitoring: `ib-resilience monitor --api-base-url <API> --threshold 75 --interval 60` "
            "(alerts when the score drops below 75 or a phase stops working; `--once` for cron).",
            "4. " + ("Run `ib-resilience run --level standard --report` before deploying, and the exhaustive "
                     "level before major deployments." if level == "basic" else
                     "Run the exhaustive level before major deployments." if level == "standard" else
                     "Re-run this level before major deployments.")]


#: The advice for a broken run-wide invariant: the capability whose advice applies (``CAPABILITY_ADVICE``).
INVARIANT_CAPABILITY = {"bounds": "api", "liveness": "api", "reports_fall": "score", "reports_recover": "score",
                        "validated_kept": "validation", "one_caller": "pool", "idle": "gc", "pool_limit": "pool",
                        "client_ids": "client_ids", "cancels": "cli"}
NOT_JUDGED_ADVICE = ("**The run-wide invariants were not judged**{who}: the run ended before `after_all` (stopped, "
                     "timed out, or its set-up broke), so nothing the backend did between scenarios was checked — "
                     "fix that and re-run the level.")


def _invariant_advice(run: RunResults) -> list[str]:
    """Per broken invariant: where to look and what the backend must do; and a word when none were judged."""
    out = []
    for invariant in run.broken_invariants:
        where = ", ".join(p.worker for p in invariant.parts if p.status == FAIL and p.worker)
        advice = ASYNC_ADVICE if invariant.key == "output" else \
            CAPABILITY_ADVICE.get(INVARIANT_CAPABILITY.get(invariant.key, ""), OTHER_ADVICE)
        out.append(f"**Run-wide invariant broken — {invariant.title}**{f' ({where})' if where else ''}: "
                   f"{invariant.violation_count} violation(s), listed under Broken Run-wide Invariants with their "
                   "times; a scenario passing does not clear them (they were judged over the whole run). " + advice)
    if not run.invariants:
        out.append(NOT_JUDGED_ADVICE.format(who=""))
    elif unjudged_workers(run):
        out.append(NOT_JUDGED_ADVICE.format(who=f" by {', '.join(unjudged_workers(run))}"))
    return out


NOT_PROVIDED_ADVICE = ("**Contract: not provided** ({names}): the backend lacks an endpoint or a field the contract "
                       "names (the failure says which). These requirements were not judged: provide them, or tell the "
                       "suite the target lacks them — a refuted claim they are not.")


def _failure_advice(run: RunResults, checks: list[Check]) -> list[str]:
    """Advice per failure kind (per failing step or capability inside a kind), in the kinds' order."""
    by_kind: dict[str, list[ScenarioResult]] = {}
    for s in run.problems:
        by_kind.setdefault(_category(s).key, []).append(s)
    if "async" not in by_kind and any(c.verdict == FAIL and c.name.startswith("Async") for c in checks):
        by_kind["async"] = []
    advice: dict[str, Callable[[list[ScenarioResult]], list[str]]] = {
        "interrupted": lambda ss: [INTERRUPTED_ADVICE.format(n=len(ss), names=_named(ss))],
        "async": lambda ss: [ASYNC_ADVICE + (f" Failed: {_named(ss)}." if ss else "")],
        "not_provided": lambda ss: [NOT_PROVIDED_ADVICE.format(names=_named(ss))],
        "unreachable": lambda ss: [_unreachable_advice(ss, run.properties)],
        "suite": lambda ss: [f"{SUITE_ADVICE} Broken: {_named(ss)}."],
        "precondition": _unreached_advice, "action": _unreached_advice,
        "bound": lambda ss: _bound_advice(ss, run.properties), "claim": _claim_advice}
    return [line for kind in FAILURE_KINDS if kind.key in by_kind for line in advice[kind.key](by_kind[kind.key])]


def _named(scenarios: Sequence[ScenarioResult], shown: int = 10) -> str:
    """The scenarios' names, for a line of advice (every failure is named in the DO NOT DEPLOY list)."""
    names = "; ".join(s.name for s in scenarios[:shown])
    return names + (f"; … {len(scenarios) - shown} more (under Failed Scenarios)" if len(scenarios) > shown else "")


def _unreachable_advice(scenarios: list[ScenarioResult], p: Mapping[str, str]) -> str:
    """Check the addresses the run used (they are named) and that the targets run."""
    return (f"**The suite could not reach the target** ({len(scenarios)} scenario(s): {_named(scenarios)}) — check "
            "the addresses and "
            f"that everything runs: API {p.get('api_base_url', '?')}, gateway {_address(p, 'ib_host', 'ib_port')}, "
            f"the backend's IB address {_address(p, 'backend_ib_host', 'backend_ib_port')}. If they answered at the "
            "start, the backend may have died: read its log. These claims were not judged.")


def _unreached_advice(scenarios: list[ScenarioResult]) -> list[str]:
    """Per failing precondition or action: how many scenarios it kept from their claims."""
    by_step: dict[str, list[ScenarioResult]] = {}
    for s in scenarios:
        by_step.setdefault(s.failing_step or "(a hook)", []).append(s)
    out = []
    for step, group in by_step.items():
        capabilities = sorted({_category(s).capability.name for s in group})
        out.append(f"**{len(group)} scenario(s) never reached their claim**: the {_category(group[0]).key} "
                   f"`{step}` failed ({'; '.join(capabilities)}). Fix that first — its message is under Failed "
                   f"Scenarios; these claims are untested, not refuted ({_named(group)}).")
    return out


def _bound_advice(scenarios: list[ScenarioResult], p: Mapping[str, str]) -> list[str]:
    """A bound exceeded by a small margin may be a slow machine; any other is a defect."""
    close = [s for s in scenarios if _category(s).over_bound_pct is not None
             and _category(s).over_bound_pct <= MULTIPLIER_MARGIN_PCT]
    far = [s for s in scenarios if s not in close]
    out = []
    if close:
        multiplier = 1.5 * (_number(p.get("timeout_multiplier", "1")) or 1.0)
        out.append(f"**Time bounds exceeded by a small margin** (≤ {MULTIPLIER_MARGIN_PCT:g} %: "
                   + ", ".join(f"{s.name} +{_category(s).over_bound_pct:.0f} %" for s in close)
                   + f") — if the machine was loaded, re-run with `--timeout-multiplier {multiplier:g}`; if they "
                   "still fail, the backend is too slow for the seed's bounds.")
    if far:
        out.append(f"**Time bounds exceeded** ({len(far)} scenario(s): {', '.join(s.name for s in far)}) — by far, "
                   "or the condition never held: a defect, not slowness. Read the last state quoted in each "
                   "message and the backend log; a larger timeout multiplier would only hide it.")
    return out


def _claim_advice(scenarios: list[ScenarioResult]) -> list[str]:
    """Per capability whose claims failed: what the backend must do."""
    by_capability: dict[str, list[ScenarioResult]] = {}
    for s in scenarios:
        by_capability.setdefault(_category(s).capability.key, []).append(s)
    return [f"**Claims failed — {_category(group[0]).capability.name}** ({len(group)} scenario(s): {_named(group)}): "
            f"{CAPABILITY_ADVICE.get(key, OTHER_ADVICE)}" for key, group in by_capability.items()]


def _evidence(reports_dir: Path, html_index: Path | None, single_index: Path | None, html_error: str) -> list[str]:
    out = []
    if html_index is not None:
        out.append(f"- Allure report: `{_shown(html_index)}` (serve it with "
                   f"`{_shown(allure_cli() or Path('allure'))} open {_shown(html_index.parent)}`)")
    if single_index is not None:
        out.append(f"- Allure report, one file that opens from disk: `{_shown(single_index)}`")
    if html_error:
        out.append(f"- Allure HTML not generated: {html_error}")
    where = _shown(reports_dir)
    out += ["- Allure results (per-scenario evidence: API exchanges, CLI transcripts, IB history, fault timeline, "
            f"backend log, resource plots): `{where}/allure-results/`",
            f"- Run-wide invariants: `{where}/{INVARIANTS_FILE}` (each worker's in `{where}/workers/wK/`), the "
            f"whole history they were judged on in `history.json.gz` beside it",
            f"- JUnit: `{where}/junit/` (the invariants in `TESTS-run_invariants.xml`); target logs: `{where}/logs/`"]
    return out
