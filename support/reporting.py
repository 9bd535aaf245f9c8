"""Reports of a run: Allure metadata, the Allure HTML (multi-file and single-file) and the Markdown summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from . import __version__
from .results import (CATEGORIES, ENVIRONMENT_FILE, FAIL, NOT_EXERCISED, PASS, Check, RunResults, critical_checks,
                      junit_counts, load_results, read_properties)
from .settings import ROOT

T = TypeVar("T")
ALLURE_CLI = ROOT / "node_modules" / ".bin" / "allure"
#: Bound on one ``allure generate`` (Java start-up included).
ALLURE_TIMEOUT_S = 180.0
VERDICT_MARK = {PASS: "✅", FAIL: "❌", NOT_EXERCISED: "➖"}


# ------------------------------------------------------------------------------------------- Allure metadata

def target_properties(world: Any) -> dict[str, str]:
    """What the run was pointed at, with versions, for ``environment.properties``. Never raises.

    Args:
        world: the suite's :class:`support.world.World` after ``before_all`` set it up.
    """
    settings, targets = world.settings, world.targets
    gateway_kind = f"IB Gateway simulator (ib-resilience {__version__})" if targets.gateway_control \
        else "external IB Gateway / TWS"
    health = _quietly(world.api.health)
    body = health.body if health is not None and isinstance(health.body, dict) else {}
    probe = _quietly(lambda: world.ib.probe(settings.squatter_client_id_base, settings.scaled(5.0)))
    properties = {
        "target": settings.target,
        "api_base_url": targets.api_base_url,
        "ib_gateway": f"{targets.ib_host}:{targets.ib_port}",
        "backend_ib_port": str(targets.backend_ib_port),
        "gateway_control": targets.gateway_control or "none",
        "proxy_control": targets.proxy_control or "none",
        "cli": " ".join(targets.cli),
        "backend.version": str(body.get("version", "unknown")),
        "gateway": gateway_kind,
        "gateway.server_version": str(probe.server_version) if probe and probe.server_version else "unknown",
        "gateway.accounts": ",".join(getattr(world, "accounts", ()) or ()),
        "ib_insync.version": _version("ib_insync"),
        "behave.version": _version("behave"),
        "python.version": platform.python_version(),
        "platform": platform.platform(),
        "timeout_multiplier": f"{settings.timeout_multiplier:g}",
    }
    properties |= {f"threshold.{k}": f"{v:g}" for k, v in vars(settings.thresholds).items()}
    if settings.embedded:
        properties |= {f"tuning.{k}": f"{v:g}" for k, v in vars(settings.tuning).items()}
    return properties


def _quietly(call: Callable[[], T]) -> T | None:
    try:
        return call()
    except Exception:  # a version we cannot read is "unknown", never a failed run
        return None


def _version(module: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_properties(path: Path, properties: Mapping[str, str]) -> None:
    """Write a Java ``.properties`` file (what Allure reads for its Environment widget)."""
    def clean(text: str) -> str:
        return str(text).replace("\\", "\\\\").replace("\n", " ").replace("\r", " ")
    lines = [f"{clean(k).replace('=', '_').replace(':', '_').replace(' ', '_')}={clean(v)}"
             for k, v in properties.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_allure_metadata(results_dir: Path, properties: Mapping[str, str] | None = None,
                          executor: Mapping[str, Any] | None = None) -> None:
    """Write ``categories.json`` and, when given, merge ``environment.properties`` and write ``executor.json``.

    Args:
        results_dir: the Allure results directory.
        properties: environment entries; merged over what the file already holds.
        executor: the ``executor.json`` document.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    categories = [{k: v for k, v in c.items() if k != "key"} for c in CATEGORIES]
    (results_dir / "categories.json").write_text(json.dumps(categories, indent=2), encoding="utf-8")
    if properties:
        merged = read_properties(results_dir / ENVIRONMENT_FILE) | dict(properties)
        write_properties(results_dir / ENVIRONMENT_FILE, merged)
    if executor:
        (results_dir / "executor.json").write_text(json.dumps(dict(executor), indent=2), encoding="utf-8")


def executor_document(level: str, started: dt.datetime, report_url: str = "") -> dict[str, Any]:
    """``executor.json``: who ran what (CI or a workstation) and when."""
    on_ci = bool(os.environ.get("CI"))
    return {"name": "CI" if on_ci else f"ib-resilience on {platform.node()}", "type": "ci" if on_ci else "local",
            "buildName": f"ib-resilience {level} {started:%Y-%m-%d %H:%M:%S}",
            "buildOrder": int(started.timestamp()), "reportName": f"IB connection resilience ({level})",
            "reportUrl": report_url}


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
    if not ALLURE_CLI.exists():
        raise RuntimeError(f"Allure CLI not installed at {ALLURE_CLI} (run `make install`, which runs npm install)")
    command = [str(ALLURE_CLI), "generate", str(results_dir), "-o", str(output_dir), "--clean"]
    if single_file:
        command.append("--single-file")
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true"}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"allure generate took more than {timeout_s:.0f} s") from None
    except OSError as exc:
        raise RuntimeError(f"cannot run {ALLURE_CLI}: {exc}") from None
    index = Path(output_dir) / "index.html"
    if done.returncode != 0 or not index.exists():
        raise RuntimeError(f"allure generate exited {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}")
    return index


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
                   html: bool = True) -> Reports:
    """Write Allure metadata, the Allure HTML (multi-file and single-file) and the Markdown summary.

    Args:
        reports_dir: holds ``allure-results`` and ``junit`` of the run; the reports go there too.
        level: the run's level (basic, standard, exhaustive).
        elapsed_s: how long the run took.
        return_code: behave's exit code (None when unknown).
        html: also render the Allure HTML (needs the npm CLI and Java 17).
    """
    reports_dir = Path(reports_dir)
    results_dir = reports_dir / "allure-results"
    now = dt.datetime.now().astimezone()
    html_dir, single_dir = reports_dir / "allure-report", reports_dir / "allure-report-single"
    write_allure_metadata(results_dir, {"run.level": level, "run.elapsed_s": f"{elapsed_s:.1f}"},
                          executor_document(level, now, "../allure-report/index.html"))
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
    text = markdown_report(run, level, elapsed_s, return_code, junit_counts(reports_dir / "junit"), now,
                           html_index, single_index, error)
    markdown = reports_dir / f"resilience_test_report_{now:%Y%m%d_%H%M%S}.md"
    markdown.write_text(text, encoding="utf-8")
    print(f"ib-resilience: Markdown summary {_shown(markdown)}", flush=True)
    if html_index and single_index:
        print(f"ib-resilience: Allure HTML {_shown(html_index)} ({_megabytes(directory_size(html_dir))}); "
              f"single file {_shown(single_index)} ({_megabytes(single_index.stat().st_size)})", flush=True)
    return Reports(markdown, html_dir if html_index else None, single_index, error)


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def overall_passed(run: RunResults, return_code: int | None, checks: list[Check]) -> bool:
    """PASSED only if scenarios ran, none failed or broke, behave exited 0 and no critical check failed."""
    counts = run.counts
    return (run.total > 0 and counts["failed"] == 0 and counts["broken"] == 0 and return_code in (0, None)
            and all(c.verdict != FAIL for c in checks))


def markdown_report(run: RunResults, level: str, elapsed_s: float, return_code: int | None,
                    junit: Mapping[str, int], generated: dt.datetime, html_index: Path | None = None,
                    single_index: Path | None = None, html_error: str = "") -> str:
    """The seed's Markdown report: configuration, overall result, totals, critical checks, failures, advice."""
    from .runner import LEVELS
    checks = critical_checks(run)
    passed = overall_passed(run, return_code, checks)
    counts, p = run.counts, run.properties
    lines = ["# Exhaustive IB Connection Resilience Test Report", "",
             f"**Report Generated:** {generated.isoformat(timespec='seconds')}  ",
             f"**Test Level:** {level} (`{LEVELS.get(level, level)}`)  ", "**Test Configuration:**", ""]
    lines += _configuration(p)
    lines += ["", "## Test Results Summary", "",
              f"**Overall Result:** {'✅ PASSED' if passed else '❌ FAILED'}  ",
              f"**Execution Time:** {elapsed_s:.2f} seconds  ",
              f"**Return Code:** {'not recorded' if return_code is None else return_code}", "",
              "### Test Statistics", ""]
    lines += _statistics(run, junit)
    lines += ["", "### Critical Checks", "", "| Check | Requirement | Observed | Verdict |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {_cell(c.requirement)} | {_cell(c.observed)} | {VERDICT_MARK[c.verdict]} {c.verdict} |"
              for c in checks]
    lines += ["", "### Results by Feature", "", "| Feature | Phase | Passed | Failed | Errors | Skipped |",
              "|---|---|---|---|---|---|"]
    lines += _by_feature(run)
    lines += ["", "### Failed Scenarios", ""]
    lines += _failures(run, level) or ["None."]
    if return_code not in (0, None) and not run.problems:
        lines += ["", "### Error Details", "", "```",
                  f"behave exited with code {return_code} although no scenario failed: the run itself broke "
                  "(set-up, a hook or a timeout). See the console output and reports/logs/.", "```"]
    if run.total == 0:
        lines += ["", "### Error Details", "", "```", "No scenario result was recorded.", "```"]
    lines += ["", "## Recommendations", ""] + _recommendations(run, level, passed, checks)
    lines += ["", "## Evidence", ""] + _evidence(run.directory.parent, html_index, single_index, html_error)
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _configuration(p: Mapping[str, str]) -> list[str]:
    if not p:
        return ["- (no environment.properties: the run did not reach its set-up)"]
    out = [f"- IB Host: {p.get('ib_gateway', '?')} ({p.get('gateway', '?')}, server version "
           f"{p.get('gateway.server_version', '?')}, accounts {p.get('gateway.accounts') or '?'})",
           f"- API Base URL: {p.get('api_base_url', '?')} (backend version {p.get('backend.version', '?')})",
           f"- Backend's IB port: {p.get('backend_ib_port', '?')}; fault proxy control: {p.get('proxy_control', '?')}; "
           f"gateway control: {p.get('gateway_control', '?')}",
           f"- CLI: `{p.get('cli', '?')}`",
           f"- Target: {p.get('target', '?')}; ib_insync {p.get('ib_insync.version', '?')}; "
           f"Python {p.get('python.version', '?')}; behave {p.get('behave.version', '?')}; {p.get('platform', '')}"]
    bounds = [f"{k.removeprefix('threshold.')}={v}" for k, v in p.items() if k.startswith("threshold.")]
    if bounds:
        out.append(f"- Bounds: {', '.join(bounds)}; timeout multiplier {p.get('timeout_multiplier', '1')}")
    return out


def _statistics(run: RunResults, junit: Mapping[str, int]) -> list[str]:
    c = run.counts
    ran = c["passed"] + c["failed"] + c["broken"]
    rate = f"{100.0 * c['passed'] / ran:.1f}% ({c['passed']}/{ran})" if ran else "n/a (nothing ran)"
    out = [f"- **Total Scenarios:** {run.total}",
           f"- **Passed:** {c['passed']} ✅",
           f"- **Failed:** {c['failed']} {'❌' if c['failed'] else '✅'}",
           f"- **Skipped:** {c['skipped']}",
           f"- **Errors:** {c['broken']} {'❌' if c['broken'] else '✅'}",
           f"- **Success Rate:** {rate}"]
    if c["unknown"]:
        out.append(f"- **Unknown:** {c['unknown']} ❌")
    if junit.get("tests"):
        agrees = (junit["tests"] == run.total and junit["failures"] == c["failed"]
                  and junit["errors"] == c["broken"])
        out.append(f"- **JUnit cross-check:** {junit['tests']} tests, {junit['failures']} failures, "
                   f"{junit['errors']} errors, {junit['skipped']} skipped "
                   + ("✅ (agrees)" if agrees else "⚠️ (differs from the Allure results; see reports/junit/)"))
    return out


def _by_feature(run: RunResults) -> list[str]:
    rows: dict[str, dict[str, Any]] = {}
    for s in run.scenarios:
        row = rows.setdefault(s.feature, {"phase": s.label("phase") or "–", "passed": 0, "failed": 0,
                                          "broken": 0, "skipped": 0})
        if s.status in row:
            row[s.status] += 1
    return [f"| {_cell(name)} | {r['phase']} | {r['passed']} | {r['failed']} | {r['broken']} | {r['skipped']} |"
            for name, r in rows.items()] or ["| (no scenario) | | | | | |"]


def _failures(run: RunResults, level: str) -> list[str]:
    out = []
    for index, s in enumerate(run.problems, 1):
        name = s.name.split(" -- @")[0]
        selector = "".join("\\" + ch if ch in ".^$*+?{}[]()|\\" else ch for ch in name).replace("'", "'\\''")
        message = "\n".join(s.message.splitlines()[:15]) or "(no message)"
        out += [f"#### {index}. {s.feature}: {s.name}", "",
                f"- **Status:** {s.status}; **category:** {(s.category or {}).get('name', 'uncategorised')}",
                f"- **Failing step:** `{s.failing_step or '(a hook, not a step)'}`",
                f"- **Location:** `{s.label('location') or '?'}`",
                f"- **Re-run alone:** `ib-resilience run --level {level} --name '{selector}'`", "",
                "```", message.replace("```", "'''"), "```", ""]
    return out


#: Advice per failure category (the seed's "If Tests Fail" section, made specific).
ADVICE = {
    "async": "🚨 **DO NOT DEPLOY: async/coroutine errors in the CLI** — the original bug is back. Run the failing "
             "command with `PYTHONWARNINGS=default` and look for `RuntimeWarning` / `was never awaited`; every IB call "
             "on the CLI path must be awaited (or run via `asyncio.run`).",
    "silent": "**Silent connections are not caught** — validate every connection (`isConnected()` + `reqCurrentTime()` "
              "under a 3 s timeout) before handing it out, discard the ones that fail, and bound every IB call; check "
              "`phase_1_systematic_validation` in `/api/v1/ib/resilience`.",
    "leaks": "**Connections or resources leak** — check that cleanup closes every pooled connection, that the idle GC "
             "loop runs (`phase_2_garbage_collection`) and that failed connections are closed, not dropped.",
    "client_ids": "**Client-ID handling is wrong** — on IB error 326 try the next client ID in order, reuse freed IDs "
                  "first, and fail quickly with a clear message when every allowed ID is taken.",
    "score": "**The resilience score does not follow reality** — each phase may report `working` only on live "
             "evidence (a recent validation round-trip, a GC loop that ran, IDs the gateway accepted).",
    "timeouts": "**Bounds were exceeded** — on a slow machine re-run with `--timeout-multiplier 2`; otherwise read the "
                "backend log attached to the scenario in the Allure report for the slow path.",
    "product": "**Other failures** — read each failing step's message above and the evidence attached in the Allure "
               "report (API exchanges, CLI transcripts, IB history, fault timeline, backend log).",
    "suite": "**The suite or a target broke** (not an assertion) — read the trace in the Allure report and the "
             "targets' logs in `reports/logs/`.",
}


def _recommendations(run: RunResults, level: str, passed: bool, checks: list[Check]) -> list[str]:
    out: list[str] = []
    if passed:
        idle = [c.name for c in checks if c.verdict == NOT_EXERCISED]
        out += ["### Tests Passed ✅", "",
                f"1. No scenario failed and no critical check failed at the **{level}** level "
                f"({run.counts['passed']} scenario(s) passed).",
                "2. " + (f"Not exercised at this level: {', '.join(idle)}; a higher level covers them."
                         if idle else "Every critical check was exercised."),
                "3. Enable monitoring: `ib-resilience monitor --api-base-url <API> --threshold 75 --interval 60` "
                "(alerts when the score drops below 75 or a phase stops working; `--once` for cron).",
                "4. " + ("Run `ib-resilience run --level standard --report` before deploying, and the exhaustive "
                         "level before major deployments." if level == "basic" else
                         "Run the exhaustive level before major deployments." if level == "standard" else
                         "Re-run this level before major deployments.")]
    else:
        out += ["### Tests Failed ❌", "", "**DO NOT DEPLOY** until these are fixed, then re-run this level:", ""]
        keys = []
        for s in run.problems:
            key = (s.category or {}).get("key", "product")
            if key not in keys:
                keys.append(key)
        if any(c.verdict == FAIL and c.name.startswith("Async") for c in checks) and "async" not in keys:
            keys.insert(0, "async")
        out += [f"- {ADVICE[key]}" for key in keys]
        healthy = next((c for c in checks if c.name == "Resilience score (healthy)"), None)
        if healthy is not None and "infrastructure trouble" in healthy.observed:
            out.append("- **Low resilience score (< 65) with the gateway up**: infrastructure trouble — check the "
                       "gateway, its API settings and the network before the code.")
        if not keys and run.total == 0:
            out.append("- No scenario ran: check the `--name`/`--level` selection and the console output.")
    return out


def _evidence(reports_dir: Path, html_index: Path | None, single_index: Path | None, html_error: str) -> list[str]:
    out = []
    if html_index is not None:
        out.append(f"- Allure report: `{_shown(html_index)}` (serve it with "
                   f"`node_modules/.bin/allure open {_shown(html_index.parent)}`)")
    if single_index is not None:
        out.append(f"- Allure report, one file that opens from disk: `{_shown(single_index)}`")
    if html_error:
        out.append(f"- Allure HTML not generated: {html_error}")
    where = _shown(reports_dir)
    out += ["- Allure results (per-scenario evidence: API exchanges, CLI transcripts, IB history, fault timeline, "
            f"backend log, resource plots): `{where}/allure-results/`",
            f"- JUnit: `{where}/junit/`; target logs: `{where}/logs/`"]
    return out
