"""``ib-resilience run``: run the specification at a level, with Allure and JUnit output."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support.progress import PLAN_SETTING
from support.settings import LEVELS, ROOT

#: Hard bound on one run (a hung scenario is a bug in the suite, but CI must still end).
RUN_TIMEOUT_S = {"basic": 600, "standard": 1800, "exhaustive": 3600}


def _here(path: str) -> str:
    """``path`` made absolute against the directory the command was given in (behave runs in the spec's)."""
    return str(Path(path).absolute()) if path else path


def _here_path(path: str) -> Path:
    return Path(_here(path))


def _profile(name_or_path: str) -> str:
    """A profile's name as given (``ktrdr``), a profile file made absolute (``./mine.toml``)."""
    return _here(name_or_path) if Path(name_or_path).suffix else name_or_path


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (the seed's ``--test-level`` spelling accepted)."""
    parser = argparse.ArgumentParser(prog="ib-resilience run",
                                     description="Run the IB connection resilience specification.")
    parser.add_argument("--level", "--test-level", dest="level", choices=sorted(LEVELS), default="basic",
                        help="which scenarios: basic ⊂ standard ⊂ exhaustive (default: basic)")
    parser.add_argument("--report", action="store_true",
                        help="also render the Markdown summary and the Allure HTML report")
    parser.add_argument("--no-html", action="store_true",
                        help="with --report: only the Markdown summary (no Allure HTML, which takes about 15 s)")
    parser.add_argument("--target", choices=("embedded", "managed", "external"),
                        help="embedded (default): the project's own gateway, proxy and backend; managed: your "
                             "backend started by --backend-command behind them; external: all yours")
    parser.add_argument("--profile", type=_profile, help="a named profile of settings (e.g. 'ktrdr', docs/profiles.md) or a .toml file; "
                                          "options and -D settings override it")
    parser.add_argument("--backend-command", help="managed: how to start your backend's API; placeholders "
                                                  "{ib_host} {ib_port} (the fault proxy) {api_port}")
    parser.add_argument("--backend-cwd", type=_here, help="managed: the directory it starts in")
    parser.add_argument("--backend-env", action="append", default=[], metavar="K=V",
                        help="managed: extra environment (IB_HOST/IB_PORT point at the proxy already)")
    parser.add_argument("--backend-reset", help="managed: shell command run before every start of the backend")
    parser.add_argument("--api-port", type=int, help="managed: the port its API listens on (default: a free one)")
    parser.add_argument("--backend-venv", type=_here, help="managed: its virtual environment (the {backend_venv} placeholder)")
    parser.add_argument("--backend-log", type=_here, help="external: a file your backend writes its output to (read for "
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
    parser.add_argument("--reports-dir", type=_here_path, default=_here_path("reports"),
                        help="where results go (default: ./reports)")
    parser.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                        help="any other setting (behave userdata)")
    parser.add_argument("--verbose", action="store_true", help="print every step (pretty formatter)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="embedded target: N behave processes, each with its own gateway, proxy and backend; "
                             "the scenarios are dealt out longest first (docs/ci.md, 'Workers and shards')")
    parser.add_argument("--shard", metavar="I/N",
                        help="run only part I of N of the selected scenarios (a duration-balanced partition every "
                             "shard computes alike); merge the shards with 'ib-resilience report --merge'")
    parser.add_argument("--durations", action="append", type=_here_path, default=[], metavar="PATH",
                        help="scenario durations for --workers/--shard: a reports folder, its junit or "
                             "allure-results, or scenario-durations.json (default: the reports folder's last runs)")
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
    command = [sys.executable, "-m", "ibresilience.spec_behave", str(ROOT / "features"),
               "--tags", LEVELS[args.level], "--no-skipped",
               "-f", "ibreport.allure_formatter:AllureFormatter", "-o", str(results / "allure-results"),
               "-f", "pretty" if args.verbose else "progress3", "--no-summary",
               "--junit", "--junit-directory", str(results / "junit"),
               "-D", "AllureFormatter.hide_excluded=true", "-D", f"allure_results={results / 'allure-results'}"]
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
    codes, received = _run_all([(command, env, None)], timeout_s)
    return codes[0], received


def _run_all(jobs: list[tuple[list[str], dict[str, str], Path | None]], timeout_s: float,
             on_exit: Callable[[int, int], None] | None = None) -> tuple[list[int], int | None]:
    """Run several behave processes at once, each in its own process group (output to its file, or inherited
    when the file is None); return their exit codes and the signal that stopped the run (or None).

    A signal to the runner reaches every group (as SIGINT, like :func:`_run_bounded`); past
    :data:`STOP_GRACE_S`, or past ``timeout_s`` for the whole run, every group left is killed (124 then).
    ``on_exit(index, code)`` is called as each process ends on its own.
    """
    processes: list[subprocess.Popen] = []
    outputs = []
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            for process in processes:
                _signal_group(process, signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in SIGNAL_EXIT}
    timed_out = False
    try:
        for command, env, output in jobs:
            if received:
                break
            handle = open(output, "w", encoding="utf-8") if output is not None else None
            outputs.append(handle)
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                                              stdin=subprocess.DEVNULL if handle else None, stdout=handle,
                                              stderr=subprocess.STDOUT if handle else None))
        deadline = time.monotonic() + timeout_s
        reported: set[int] = set()
        while any(p.poll() is None for p in processes):
            if received:
                _stop_all(processes, STOP_GRACE_S)
                break
            if time.monotonic() >= deadline:
                print(f"ib-resilience: run exceeded {timeout_s} s and was stopped", file=sys.stderr)
                for process in processes:
                    _signal_group(process, signal.SIGINT)
                _stop_all(processes, STOP_GRACE_S + 10.0)
                timed_out = True
                break
            for index, process in enumerate(processes):
                if process.poll() is not None and index not in reported:
                    reported.add(index)
                    if on_exit is not None:
                        on_exit(index, process.returncode)
            running = [p for p in processes if p.poll() is None]
            if running:
                _wait(running[0], 0.2)
        if on_exit is not None and not received and not timed_out:
            for index, process in enumerate(processes):
                if index not in reported:
                    on_exit(index, process.returncode)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for process in processes:
            _signal_group(process, signal.SIGKILL)  # whatever of behave's group is left (nothing, normally)
        for handle in outputs:
            if handle is not None:
                handle.close()
    codes = [124 if timed_out else (p.returncode if p.returncode is not None else -9) for p in processes]
    codes += [-9] * (len(jobs) - len(processes))  # never started: a signal came first
    return codes, (received[0] if received else None)


def _stop_all(processes: list[subprocess.Popen], grace_s: float) -> None:
    """Wait (together, bounded by ``grace_s``) for every process to end; kill the groups of those left."""
    deadline = time.monotonic() + grace_s
    for process in processes:
        _wait(process, max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGKILL)
    for process in processes:
        _wait(process, 5.0)


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

    from ibreport.results import scenario_suites

    outcomes: Counter[str] = Counter()
    for _, suite in scenario_suites(junit_dir):   # the run-wide invariants are counted apart (ibreport.record)
        for case in suite.iter("testcase"):
            status = case.get("status") or ("failed" if case.find("failure") is not None else "passed")
            outcomes[{"error": "failed", "failure": "failed"}.get(status, status)] += 1
    return dict(outcomes)


#: How long one scenario may wait on the target's own timings, per level (the exhaustive level
#: includes KTRDR's real 300 s idle timeout; basic and standard never wait that long).
MAX_WAIT_S = {"basic": 60, "standard": 120, "exhaustive": 900}


def bad_input(args: argparse.Namespace) -> str:
    """One line naming what is wrong with the options (and what would do), '' when nothing is: checked before
    anything starts, so bad input never ends in a traceback or a run of nothing."""
    import re
    from urllib.parse import urlsplit

    for definition in args.define:
        name, sep, _ = definition.partition("=")
        if not sep or not name.strip():
            return f"-D {definition!r} is not NAME=VALUE (e.g. -D recovery_s=10)"
    for pattern in args.name:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"--name {pattern!r} is not a regular expression: {exc} (escape ( ) [ ] with a backslash)"
    if args.api_base_url:
        parts = urlsplit(args.api_base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"--api-base-url must be a URL like http://localhost:8000, not {args.api_base_url!r}"
    try:
        args.reports_dir.mkdir(parents=True, exist_ok=True)
        probe = args.reports_dir / ".ib-resilience-write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        return f"--reports-dir {str(args.reports_dir)!r} cannot be written: {exc.strerror or exc}"
    return ""


def _preflight(args: argparse.Namespace) -> str:
    """'' when an external target's API, gateway and CLI answer; else one line saying what does not."""
    from support.preflight import PreflightError, ensure_reachable
    from support.settings import SettingsError

    try:
        ensure_reachable(_settings(args))
    except (PreflightError, SettingsError) as exc:
        return str(exc)
    return ""


def _settings(args: argparse.Namespace):
    """The settings behave will read for ``args`` (raises SettingsError like behave's ``before_all`` would)."""
    from support.settings import Settings

    command = behave_command(args)
    userdata = dict(c.split("=", 1) for i, c in enumerate(command) if i and command[i - 1] == "-D" and "=" in c)
    return Settings.from_userdata(userdata)


def main(argv: list[str] | None = None) -> int:
    """Run behave at the chosen level; the exit code, the console's last lines, JUnit, the Markdown and the Allure
    metadata all come from one record of the run (``ibreport.record``): 0 only if every selected scenario that
    could run passed, no run-wide invariant broke and the run was not interrupted; 2 when nothing was selected."""
    from ibresilience import parallel

    args = build_parser().parse_args(argv)
    problem = bad_input(args)
    if problem:
        print(f"ib-resilience: {problem}", file=sys.stderr, flush=True)
        return 2
    if not any(d.startswith("max_wait_s=") for d in args.define):
        args.define.insert(0, f"max_wait_s={MAX_WAIT_S[args.level]}")
    run_argv = list(argv if argv is not None else sys.argv[1:])
    if args.workers != 1 or args.shard:
        return _main_parallel(args, run_argv)
    problem = _preflight(args)
    if problem:
        print(f"ib-resilience: {problem}", file=sys.stderr, flush=True)
        return 2
    results = args.reports_dir / "allure-results"
    results.mkdir(parents=True, exist_ok=True)
    for stale in [*results.glob("*"), *(args.reports_dir / "junit").glob("TESTS-*.xml"), *_run_evidence(args.reports_dir)]:
        if stale.is_file():
            stale.unlink()
    selection = parallel.select(LEVELS[args.level], args.name)
    if not selection:
        return _finish(args, selection, 0.0, None, None, run_argv).exit_code
    command = behave_command(args) + ["-D", f"{PLAN_SETTING}={_write_progress_plan(args, selection)}"]
    print(f"ib-resilience: level {args.level} ({LEVELS[args.level]}): {len(selection)} scenarios", flush=True)
    print("$ " + shlex.join(command), flush=True)
    started = time.monotonic()
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true", "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "")}
    code, stopped_by = _run_bounded(command, env, RUN_TIMEOUT_S[args.level])
    from ibreport.results import sanitize_junit
    sanitize_junit(args.reports_dir / "junit")
    elapsed_s = time.monotonic() - started
    interrupted = _interruption(stopped_by, code == 124, elapsed_s)
    if stopped_by is not None:
        print(f"ib-resilience: stopped by {signal.Signals(stopped_by).name} after {elapsed_s:.1f} s; "
              "partial results kept", file=sys.stderr, flush=True)
    else:
        _remember_durations(args.reports_dir)
    return _finish(args, selection, elapsed_s, interrupted, code, run_argv).exit_code


def _write_progress_plan(args: argparse.Namespace, selection: list) -> Path:
    """The plan behave prints its progress against: the selected scenarios and their durations in earlier runs."""
    from ibresilience.parallel import load_durations
    from support.progress import write_plan

    durations = load_durations(args.reports_dir, args.durations)
    path = args.reports_dir / "progress-plan.json"
    write_plan(path, [(str(ROOT / s.feature_file), s.name, durations.get(s.key)) for s in selection])
    return path


def _interruption(stopped_by: int | None, timed_out: bool, elapsed_s: float):
    """What stopped the run (a signal the runner received, or its time bound), None when it ended on its own."""
    from ibreport.record import Interruption

    if stopped_by is not None:
        return Interruption(signal.Signals(stopped_by).name, elapsed_s)
    return Interruption("timeout", elapsed_s) if timed_out else None


def _finish(args: argparse.Namespace, selection: list, elapsed_s: float, interrupted, behave_exit: int | None,
            run_argv: list[str], workers: int = 1, shard: str = "", properties: dict[str, str] | None = None):
    """The run's record from its Allure results and what the runner knows; then, all from it: the JUnit files,
    ``run-result.json``, the Allure metadata, the reports (``--report``) and the console's last lines. Returns it."""
    import datetime as dt

    from ibreport.record import build_record, rewrite_junit, write_record
    from ibreport.results import load_results
    from ibreport.summary import executor_document, record_run, render_reports, write_allure_metadata

    reports, results = args.reports_dir, args.reports_dir / "allure-results"
    record = build_record(load_results(results), args.level, elapsed_s, [s.selected for s in selection],
                          interrupted, behave_exit, workers, shard, args.name)
    rewrite_junit(record, reports / "junit")
    write_record(record, reports)
    write_allure_metadata(results, {**(properties or {}), **record.allure_properties()},
                          executor_document(args.level, dt.datetime.now().astimezone(), record=record))
    if args.report and (record.scenarios or record.nothing_selected):
        html = not (args.no_html or record.interrupted or record.nothing_selected)
        if html:
            print("ib-resilience: rendering the Allure HTML report (about 15 s)…", flush=True)
        render_reports(reports, args.level, elapsed_s, html=html, run_argv=run_argv, record=record)
    else:
        record_run(results, args.level, elapsed_s, record.exit_code, run_argv)  # what 'report --merge' reads back
    stream = sys.stderr if record.nothing_selected else sys.stdout
    for line in record.console_lines():
        print(line, file=stream, flush=True)
    return record


def _remember_durations(reports_dir: Path) -> None:
    """Keep this run's scenario durations (merged over earlier runs) for the next run's workers and shards."""
    from ibresilience.parallel import read_durations, remember_durations

    try:
        remember_durations(reports_dir, read_durations(reports_dir))
    except OSError as exc:  # a read-only reports folder costs the next run its balance, never this run's verdict
        print(f"ib-resilience: scenario durations not kept: {exc}", file=sys.stderr)


def _refusal(args: argparse.Namespace) -> str:
    """Why ``--workers`` > 1 cannot run against this target ('' when it can: the embedded target, or a managed one
    on a machine that gives each worker its own loopback and its own view of the backend's folders)."""
    from ibresilience import isolate
    from support.settings import EMBEDDED, MANAGED, SettingsError

    try:
        target = _settings(args).target
    except SettingsError:
        return ""  # the preflight says what is wrong with the settings
    if args.workers <= 1 or target == EMBEDDED:
        return ""
    if target == MANAGED:
        why = isolate.available()
        return "" if not why else (
            f"--workers {args.workers} with a managed target gives each worker its own network namespace (the "
            f"backend's fixed ports in every worker) and its own overlay of backend_cwd, and this machine cannot: "
            f"{why}; run without --workers, or --shard I/N on separate machines")
    return (f"--workers {args.workers} needs a target the suite starts, not {target}: faults act on a whole target, so "
            f"two workers must never share an external target; run --shard I/N on separate runners, one target each")


def _main_parallel(args: argparse.Namespace, argv: list[str]) -> int:
    """``--workers N`` and/or ``--shard I/N``: this run's part of the partition, dealt out to N behave processes
    (each starts its own gateway, proxy and backend; a managed backend's worker runs isolated, see
    :mod:`ibresilience.isolate`), their results merged into the reports folder."""
    from ibreport.results import read_properties, sanitize_junit
    from ibreport.summary import write_allure_metadata
    from ibresilience import parallel

    if args.workers < 1:
        print("ib-resilience: --workers must be at least 1", file=sys.stderr, flush=True)
        return 2
    try:
        index, count = parallel.parse_shard(args.shard) if args.shard else (1, 1)
    except ValueError as exc:
        print(f"ib-resilience: {exc}", file=sys.stderr, flush=True)
        return 2
    problem = _refusal(args) or _preflight(args)
    if problem:
        print(f"ib-resilience: {problem}", file=sys.stderr, flush=True)
        return 2
    selection = parallel.select(LEVELS[args.level], args.name)
    if not selection:
        _clean(args.reports_dir, [])
        return _finish(args, [], 0.0, None, None, parallel.strip_options(argv)).exit_code
    # A shard must compute the partition every other shard computes: only the durations given to all of them
    # (--durations) count, never what this machine's reports folder happens to hold.
    measured = parallel.load_durations(None if count > 1 else args.reports_dir, args.durations)
    durations = parallel.over_typical(measured)
    mine = parallel.partition(selection, durations, count)[index - 1] if count > 1 else selection
    plan = [part for part in parallel.partition(mine, durations, args.workers) if part]
    reports, results = args.reports_dir, args.reports_dir / "allure-results"
    worker_dirs = [reports / parallel.WORKERS_DIR / f"w{k}" for k in range(1, len(plan) + 1)]
    _clean(reports, worker_dirs)
    shard = f"{index}/{count}" if count > 1 else ""
    print(f"ib-resilience: level {args.level} ({LEVELS[args.level]}): {len(selection)} scenarios"
          + (f"; shard {shard}: {len(mine)} of them" if shard else "")
          + f"; {len(plan)} worker(s), each its own gateway, proxy and backend", flush=True)
    env = {**os.environ, "ALLURE_NO_ANALYTICS": "true", "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "")}
    jobs = []
    for number, (part, folder) in enumerate(zip(plan, worker_dirs, strict=False), 1):
        command = _worker_command(args, folder, parallel.write_locations(folder / "locations.txt", part), results)
        log = folder / "behave.log" if len(plan) > 1 else None
        expected = (f"≈ {parallel.expected_seconds(part, durations, among=mine):.0f} s by "
                    + ("earlier runs" if any(s.key in measured for s in part) else "the suite's typical durations")
                    if any(s.key in durations for s in part) else "no earlier durations")
        if log is None:
            print("$ " + shlex.join(command), flush=True)
        else:
            log.write_text("$ " + shlex.join(command) + "\n", encoding="utf-8")
            print(f"ib-resilience: worker {number}: {len(part)} scenarios, {expected} (output: {_shown(log)})",
                  flush=True)
        jobs.append((command, env, log))
    started = time.monotonic()

    def finished(position: int, code: int) -> None:
        if len(plan) > 1:
            folder = worker_dirs[position]
            print(_worker_line(position + 1, folder / "junit", time.monotonic() - started, code)
                  + (_hook_error(folder / "behave.log") if code else ""), flush=True)

    codes, stopped_by = _run_all(jobs, RUN_TIMEOUT_S[args.level], on_exit=finished) if jobs else ([], None)
    elapsed_s = time.monotonic() - started
    for folder in worker_dirs:
        sanitize_junit(folder / "junit")
    parallel.merge_junit([folder / "junit" for folder in worker_dirs], reports / "junit", mine)
    properties = parallel.merge_properties([read_properties(folder / "allure-results" / "environment.properties")
                                            for folder in worker_dirs])
    properties |= {"run.workers": str(len(plan))} | ({"run.shard": shard} if shard else {})
    write_allure_metadata(results, properties)
    if stopped_by is not None:
        print(f"ib-resilience: stopped by {signal.Signals(stopped_by).name} after {elapsed_s:.1f} s; "
              "partial results kept", file=sys.stderr, flush=True)
    else:
        _remember_durations(reports)
    record = _finish(args, mine, elapsed_s, _interruption(stopped_by, 124 in codes, elapsed_s),
                     _combined_code(codes), parallel.strip_options(argv), workers=len(plan), shard=shard,
                     properties=properties)
    return record.exit_code


def _clean(reports: Path, worker_dirs: list[Path]) -> None:
    """Remove the last run's results (merged and per worker); each worker's server logs are kept."""
    from ibresilience.parallel import WORKERS_DIR
    from support.evidence import RETIRED_DIR

    stale = [*(reports / "allure-results").glob("*"), *(reports / "junit").glob("TESTS-*.xml"), *_run_evidence(reports),
             *(reports / RETIRED_DIR).glob("*")]
    for folder in (reports / WORKERS_DIR).glob("w*"):
        stale += [*(folder / "allure-results").glob("*"), *(folder / "junit").glob("TESTS-*.xml"),
                  folder / "behave.log", folder / "locations.txt", *_run_evidence(folder), *(folder / RETIRED_DIR).glob("*")]
    for path in stale:
        if path.is_file():
            path.unlink()
    (reports / "allure-results").mkdir(parents=True, exist_ok=True)
    for folder in worker_dirs:
        folder.mkdir(parents=True, exist_ok=True)


def _run_evidence(reports: Path) -> list[Path]:
    """The last run's whole-run evidence in a reports folder (its run-wide verdicts, its history, its record)."""
    from ibreport.record import RESULT_FILE
    from support.run_evidence import HISTORY_FILE, INVARIANTS_FILE

    return [reports / INVARIANTS_FILE, reports / HISTORY_FILE, reports / RESULT_FILE]


def _worker_command(args: argparse.Namespace, folder: Path, locations: Path, results: Path) -> list[str]:
    """behave for one worker: its scenario locations, its own reports folder (server logs, JUnit, its
    environment.properties), Allure results into the run's shared folder (every file there has a unique name)."""
    own = argparse.Namespace(**{**vars(args), "reports_dir": folder})
    command = behave_command(own)
    command[command.index(str(ROOT / "features"))] = f"@{locations}"
    command[command.index("-o") + 1] = str(results)
    command[command.index(f"allure_results={folder / 'allure-results'}")] = f"allure_results={results}"
    settings = _settings(own)
    if settings.managed and args.workers > 1:
        from ibresilience import isolate
        overlays = [Path(settings.backend_cwd)] if settings.backend_cwd else []
        return isolate.command(command, overlays, folder / "isolated")
    return command


def _worker_line(number: int, junit_dir: Path, elapsed_s: float, code: int) -> str:
    """One worker's outcome, with the names of its failed scenarios."""
    counts = junit_outcomes(junit_dir)
    failed = _failed_names(junit_dir)
    return (f"ib-resilience: worker {number} finished after {elapsed_s:.1f} s: {counts.get('passed', 0)} passed, "
            f"{counts.get('failed', 0)} failed" + (f" ({'; '.join(failed[:5])})" if failed else "") + f", exit {code}")


def _hook_error(log: Path) -> str:
    """' — <behave's first HOOK-ERROR line>' from a worker's output ('' when there is none)."""
    try:
        with open(log, encoding="utf-8", errors="replace") as lines:
            found = next((line.strip() for line in lines if line.startswith("HOOK-ERROR")), "")
    except OSError:
        return ""
    return f" — {found[:300]}" if found else ""


def _failed_names(junit_dir: Path) -> list[str]:
    from ibreport.results import scenario_suites

    return [case.get("name", "").strip() for _, suite in scenario_suites(junit_dir) for case in suite.iter("testcase")
            if case.get("status") in ("failed", "error") or case.find("failure") is not None
            or case.find("error") is not None]


def _combined_code(codes: list[int]) -> int:
    """0 when every worker passed; 124 when the run timed out; else the first worker's failure code."""
    if all(code == 0 for code in codes):
        return 0
    return 124 if 124 in codes else next(code for code in codes if code != 0)


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
