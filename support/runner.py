"""``ib-resilience run``: run the specification at a level, with Allure and JUnit output."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from .settings import ROOT

#: Level → behave tag expression (basic ⊂ standard ⊂ exhaustive).
LEVELS = {
    "basic": "@basic",
    "standard": "@basic or @standard",
    "exhaustive": "@basic or @standard or @exhaustive",
}
#: Hard bound on one run (a hung scenario is a bug in the suite, but CI must still end).
RUN_TIMEOUT_S = {"basic": 600, "standard": 1800, "exhaustive": 3600}


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (the seed's ``--test-level`` spelling accepted)."""
    parser = argparse.ArgumentParser(prog="ib-resilience run",
                                     description="Run the IB connection resilience specification.")
    parser.add_argument("--level", "--test-level", dest="level", choices=sorted(LEVELS), default="basic",
                        help="which scenarios: basic ⊂ standard ⊂ exhaustive (default: basic)")
    parser.add_argument("--report", action="store_true",
                        help="also render the Markdown summary and the Allure HTML report")
    parser.add_argument("--target", choices=("embedded", "managed", "external"),
                        help="embedded (default): the project's own gateway, proxy and backend; managed: your "
                             "backend started by --backend-command behind them; external: all yours")
    parser.add_argument("--profile", help="a named profile of settings (e.g. 'ktrdr', README) or a .toml file; "
                                          "options and -D settings override it")
    parser.add_argument("--backend-command", help="managed: how to start your backend's API; placeholders "
                                                  "{ib_host} {ib_port} (the fault proxy) {api_port}")
    parser.add_argument("--backend-cwd", help="managed: the directory it starts in")
    parser.add_argument("--backend-env", action="append", default=[], metavar="K=V",
                        help="managed: extra environment (IB_HOST/IB_PORT point at the proxy already)")
    parser.add_argument("--backend-reset", help="managed: shell command run before every start of the backend")
    parser.add_argument("--api-port", type=int, help="managed: the port its API listens on (default: a free one)")
    parser.add_argument("--backend-venv", help="managed: its virtual environment (the {backend_venv} placeholder)")
    parser.add_argument("--backend-log", help="external: a file your backend writes its output to (read for "
                                              "warnings, un-awaited coroutines and tracebacks)")
    parser.add_argument("--cli-api", help="how the CLI is pointed at the API: env:NAME (default env:KTRDR_API_URL), "
                                          "option:--flag, or fixed:URL when it cannot be pointed")
    parser.add_argument("--ib-host", help="IB Gateway host (external)")
    parser.add_argument("--ib-port", type=int, help="IB Gateway port (external)")
    parser.add_argument("--api-base-url", help="backend API, e.g. http://localhost:8000 (external)")
    parser.add_argument("--cli", help="backend CLI command, e.g. 'ktrdr' (external)")
    parser.add_argument("--gateway-control", help="control URL of a simulator you started")
    parser.add_argument("--proxy-control", help="control URL of a fault proxy you started")
    parser.add_argument("--timeout-multiplier", type=float, help="scale every bound (slow machines)")
    parser.add_argument("--name", action="append", default=[], help="only scenarios whose name matches (regex)")
    parser.add_argument("--reports-dir", type=Path, default=ROOT / "reports", help="where results go")
    parser.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                        help="any other setting (behave userdata)")
    parser.add_argument("--verbose", action="store_true", help="print every step (pretty formatter)")
    return parser


def behave_command(args: argparse.Namespace) -> list[str]:
    """The behave command line for ``args``."""
    results = args.reports_dir
    userdata = {"target": args.target, "ib_host": args.ib_host, "ib_port": args.ib_port,
                "api_base_url": args.api_base_url, "cli": args.cli, "gateway_control": args.gateway_control,
                "proxy_control": args.proxy_control, "timeout_multiplier": args.timeout_multiplier,
                "backend_command": args.backend_command, "backend_cwd": args.backend_cwd,
                "backend_env": ",".join(args.backend_env) or None, "backend_reset": args.backend_reset,
                "api_port": args.api_port, "reports_dir": str(results), "profile": args.profile,
                "backend_venv": args.backend_venv, "backend_log": args.backend_log, "cli_api": args.cli_api}
    if args.api_base_url and not args.target:
        userdata["target"] = "external"
    elif args.backend_command and not args.target:
        userdata["target"] = "managed"
    command = [sys.executable, "-m", "behave", str(ROOT / "features"),
               "--tags", LEVELS[args.level], "--no-skipped",
               "-f", "support.allure_formatter:AllureFormatter", "-o", str(results / "allure-results"),
               "-f", "pretty" if args.verbose else "progress3", "--no-summary",
               "--junit", "--junit-directory", str(results / "junit"),
               "-D", "AllureFormatter.hide_excluded=true"]
    for key, value in userdata.items():
        if value is not None:
            command += ["-D", f"{key}={value}"]
    for definition in args.define:
        command += ["-D", definition]
    for name in args.name:
        command += ["--name", name]
    return command


#: After SIGTERM or SIGINT: how long behave gets to run its cleanups (heal faults, stop every server it started)
#: before its whole process group is killed.
STOP_GRACE_S = 4.0
#: Exit codes after a signal, as shells report them.
SIGNAL_EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


def _run_bounded(command: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, int | None]:
    """Run behave in its own process group; return its exit code and the signal that stopped the run (or None).

    SIGTERM or SIGINT to the runner (CI cancelling, ``timeout``, Ctrl-C) is passed on to behave as SIGINT: behave
    aborts the scenario, its cleanups heal the faults and stop every server it started; past
    :data:`STOP_GRACE_S` (or past ``timeout_s`` for the whole run) the group is killed.
    """
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            _signal_group(process, signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in SIGNAL_EXIT}
    try:
        deadline = time.monotonic() + timeout_s
        while process.poll() is None:
            if received:
                if not _wait(process, STOP_GRACE_S):
                    _signal_group(process, signal.SIGKILL)
                    _wait(process, 5.0)
                break
            if time.monotonic() >= deadline:
                print(f"ib-resilience: run exceeded {timeout_s} s and was stopped", file=sys.stderr)
                _signal_group(process, signal.SIGINT)
                if not _wait(process, STOP_GRACE_S + 10.0):
                    _signal_group(process, signal.SIGKILL)
                    _wait(process, 5.0)
                return 124, None
            _wait(process, 0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _signal_group(process, signal.SIGKILL)  # whatever of behave's group is left (nothing, normally)
    return (process.returncode if process.returncode is not None else -9), (received[0] if received else None)


def _wait(process: subprocess.Popen, timeout_s: float) -> bool:
    """Wait (bounded) for ``process`` to end; whether it did."""
    try:
        process.wait(timeout_s)
        return True
    except subprocess.TimeoutExpired:
        return False


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def junit_outcomes(junit_dir: Path) -> dict[str, int]:
    """Scenarios by outcome (``passed``, ``failed``, ``skipped``, ``untested``) from behave's JUnit files."""
    from collections import Counter
    from xml.etree import ElementTree

    from .results import xml_safe

    outcomes: Counter[str] = Counter()
    for path in sorted(Path(junit_dir).glob("TESTS-*.xml")):
        try:
            root = ElementTree.fromstring(xml_safe(path.read_text(encoding="utf-8", errors="replace")))
        except (OSError, ElementTree.ParseError):
            continue
        for case in root.iter("testcase"):
            status = case.get("status") or ("failed" if case.find("failure") is not None else "passed")
            outcomes[{"error": "failed", "failure": "failed"}.get(status, status)] += 1
    return dict(outcomes)


def summary_line(level: str, junit_dir: Path, elapsed_s: float, code: int) -> str:
    """The run's own last line: the level's scenarios by outcome (not behave's totals, which count the scenarios
    of other levels as skipped), its wall time and the exit code."""
    counts = junit_outcomes(junit_dir)
    untested = f", {counts['untested']} not run" if counts.get("untested") else ""
    return (f"ib-resilience: level {level}: {counts.get('passed', 0)} scenarios passed, {counts.get('failed', 0)} "
            f"failed, {counts.get('skipped', 0)} skipped (target lacks a capability){untested} in {elapsed_s:.1f} s, "
            f"exit {code}")


#: How long one scenario may wait on the target's own timings, per level (the exhaustive level
#: includes KTRDR's real 300 s idle timeout; basic and standard never wait that long).
MAX_WAIT_S = {"basic": 60, "standard": 120, "exhaustive": 900}


def _preflight(args: argparse.Namespace) -> str:
    """'' when an external target's API, gateway and CLI answer; else one line saying what does not."""
    from .preflight import PreflightError, ensure_reachable
    from .settings import Settings, SettingsError

    command = behave_command(args)
    userdata = dict(c.split("=", 1) for i, c in enumerate(command) if i and command[i - 1] == "-D" and "=" in c)
    try:
        ensure_reachable(Settings.from_userdata(userdata))
    except (PreflightError, SettingsError) as exc:
        return str(exc)
    return ""


def main(argv: list[str] | None = None) -> int:
    """Run behave at the chosen level; exit 0 only if every selected scenario passed."""
    args = build_parser().parse_args(argv)
    if not any(d.startswith("max_wait_s=") for d in args.define):
        args.define.insert(0, f"max_wait_s={MAX_WAIT_S[args.level]}")
    problem = _preflight(args)
    if problem:
        print(f"ib-resilience: {problem}", file=sys.stderr, flush=True)
        return 2
    results = args.reports_dir / "allure-results"
    results.mkdir(parents=True, exist_ok=True)
    for stale in [*results.glob("*"), *(args.reports_dir / "junit").glob("TESTS-*.xml")]:
        if stale.is_file():
            stale.unlink()
    command = behave_command(args)
    print(f"ib-resilience: level {args.level} ({LEVELS[args.level]})", flush=True)
    print("$ " + shlex.join(command), flush=True)
    started = time.monotonic()
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true", "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "")}
    code, stopped_by = _run_bounded(command, env, RUN_TIMEOUT_S[args.level])
    from .results import sanitize_junit
    sanitize_junit(args.reports_dir / "junit")
    elapsed_s = time.monotonic() - started
    if stopped_by is not None:
        code = SIGNAL_EXIT[stopped_by]
        print(f"ib-resilience: stopped by {signal.Signals(stopped_by).name} after {elapsed_s:.1f} s; "
              "partial results kept", file=sys.stderr, flush=True)
    print(summary_line(args.level, args.reports_dir / "junit", elapsed_s, code), flush=True)
    if args.report:
        from .reporting import render_reports
        html = stopped_by is None  # a stopped run gets its Markdown summary now, not 15 s of Allure rendering
        if html:
            print("ib-resilience: rendering the Allure HTML report (about 15 s)…", flush=True)
        render_reports(args.reports_dir, args.level, elapsed_s, return_code=code, html=html,
                       run_argv=list(argv if argv is not None else sys.argv[1:]))
    return code
