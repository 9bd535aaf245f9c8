"""``ib-resilience monitor``: poll ``/api/v1/ib/resilience``, print a line per poll, alert on a low score or a phase down."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import requests

RESILIENCE_PATH = "/api/v1/ib/resilience"
#: Contract phase key → the short name printed per poll.
PHASES = {"phase_1_systematic_validation": "validation", "phase_2_garbage_collection": "gc",
          "phase_3_client_id_preference": "client_ids"}
EXIT_OK, EXIT_ALERT, EXIT_USAGE, EXIT_NO_REPORT = 0, 1, 2, 3
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class Reading:
    """One poll of the resilience report: the score and phase statuses, or why there was no report."""

    at: dt.datetime
    elapsed_s: float
    score: float | None = None
    phases: dict[str, str] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def problems(self, threshold: float) -> list[str]:
        """What is wrong, in words (empty when healthy)."""
        if self.error:
            return [f"no report: {self.error}"]
        out = []
        if self.score is None or self.score < threshold:
            out.append(f"score {_number(self.score)} < {threshold:g}")
        out += [f"{name} {self.phases.get(key) or 'missing'}" for key, name in PHASES.items()
                if self.phases.get(key) != "working"]
        return out

    def line(self, threshold: float, recovered: bool = False) -> str:
        """The line printed for this poll."""
        stamp = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        problems = self.problems(threshold)
        if self.error:
            return f"{stamp} ALERT {problems[0]} ({self.elapsed_s * 1000:.0f} ms)"
        phases = " ".join(f"{name}={self.phases.get(key) or 'missing'}" for key, name in PHASES.items())
        pool = f"pool={self.pool.get('healthy_connections', '?')}/{self.pool.get('total_connections', '?')} healthy"
        state = "ALERT" if problems else ("OK (recovered)" if recovered else "OK")
        text = f"{stamp} {state} score={_number(self.score)} {phases} {pool} ({self.elapsed_s * 1000:.0f} ms)"
        return text + (": " + "; ".join(problems) if problems else "")

    def exit_code(self, threshold: float) -> int:
        """0 healthy, 1 score or phase alert, 3 no report."""
        if self.error:
            return EXIT_NO_REPORT
        return EXIT_ALERT if self.problems(threshold) else EXIT_OK


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def resilience_url(api_base_url: str) -> str:
    """The report's URL for an API base URL (with or without the ``/api/v1`` prefix).

    Raises:
        ValueError: not an http(s) URL.
    """
    base = api_base_url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")) or len(base.split("://", 1)[1]) == 0:
        raise ValueError(f"--api-base-url must be an http(s) URL, not {api_base_url!r}")
    return base.removesuffix("/api/v1") + RESILIENCE_PATH


def poll(session: requests.Session, url: str, timeout_s: float) -> Reading:
    """GET the resilience report once; connect and every read bounded by ``timeout_s``, the body by 1 MB."""
    at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    deadline = started + 2 * timeout_s

    def failed(error: str) -> Reading:
        return Reading(at, time.monotonic() - started, error=error)

    try:
        with session.get(url, timeout=(timeout_s, timeout_s), stream=True) as reply:
            body = b""
            for chunk in reply.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY_BYTES or time.monotonic() > deadline:
                    return failed(f"answer larger than {MAX_BODY_BYTES} bytes or slower than {2 * timeout_s:g} s")
            status = reply.status_code
    except requests.Timeout:
        return failed(f"no answer within {timeout_s:g} s from {url}")
    except requests.RequestException as exc:
        return failed(f"cannot reach {url}: {exc.__class__.__name__}")
    try:
        document = json.loads(body)
    except ValueError:
        return failed(f"HTTP {status} with a body that is not JSON")
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        return failed(f"HTTP {status} without a resilience report: {body[:200].decode('utf-8', 'replace')}")
    score = data.get("overall_resilience_score")
    phases = {key: str((data.get(key) or {}).get("status") or "") for key in PHASES}
    pool = data.get("connection_pool_health") if isinstance(data.get("connection_pool_health"), dict) else {}
    return Reading(at, time.monotonic() - started, float(score) if isinstance(score, (int, float)) else None,
                   phases, pool)


def run_hook(command: str, reading: Reading, state: str, threshold: float, url: str, timeout_s: float,
             err: TextIO) -> int | None:
    """Run the operator's hook through the shell, its whole process group bounded by ``timeout_s``.

    The hook sees ``IB_RESILIENCE_STATE`` (alert / recovered), ``IB_RESILIENCE_SCORE``,
    ``IB_RESILIENCE_PROBLEMS``, ``IB_RESILIENCE_LINE`` and ``IB_RESILIENCE_URL``.

    Returns:
        the hook's exit code, or None if it had to be killed or could not start.
    """
    env = {**os.environ, "IB_RESILIENCE_STATE": state, "IB_RESILIENCE_SCORE": _number(reading.score),
           "IB_RESILIENCE_PROBLEMS": "; ".join(reading.problems(threshold)),
           "IB_RESILIENCE_LINE": reading.line(threshold), "IB_RESILIENCE_URL": url}
    try:
        process = subprocess.Popen(["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    except OSError as exc:
        print(f"monitor: hook could not start: {exc}", file=err, flush=True)
        return None
    try:
        code = process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5.0)
        print(f"monitor: hook killed after {timeout_s:g} s", file=err, flush=True)
        return None
    if code != 0:
        print(f"monitor: hook exited {code}", file=err, flush=True)
    return code


@dataclass
class Monitor:
    """Polls at a fixed rate, prints a line per poll and calls the hook on alert and on recovery.

    Args:
        url: the resilience report's URL.
        threshold: alert below this score.
        interval_s: time between the starts of two polls.
        timeout_s: bound of each connect and read.
        hook: shell command for alerts (None: none).
        hook_timeout_s: bound of one hook run.
    """

    url: str
    threshold: float = 75.0
    interval_s: float = 60.0
    timeout_s: float = 10.0
    hook: str | None = None
    hook_timeout_s: float = 30.0
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    stop: threading.Event = field(default_factory=threading.Event)
    polls: int = 0
    alerts: int = 0

    def run(self, max_polls: int | None = None) -> int:
        """Poll until ``max_polls`` polls or :attr:`stop` is set; the exit code is the worst poll's."""
        worst, alerting = EXIT_OK, False
        session = requests.Session()
        started = time.monotonic()
        try:
            while not self.stop.is_set() and (max_polls is None or self.polls < max_polls):
                reading = poll(session, self.url, self.timeout_s)
                self.polls += 1
                code = reading.exit_code(self.threshold)
                worst = max(worst, code)
                print(reading.line(self.threshold, recovered=alerting and code == EXIT_OK), file=self.out, flush=True)
                if code != EXIT_OK:
                    self.alerts += 1
                if self.hook and (code != EXIT_OK) != alerting:
                    run_hook(self.hook, reading, "alert" if code != EXIT_OK else "recovered", self.threshold,
                             self.url, self.hook_timeout_s, self.err)
                alerting = code != EXIT_OK
                if max_polls is not None and self.polls >= max_polls:
                    break
                # Fixed rate: the next poll starts interval_s after the previous one started.
                self.stop.wait(max(0.0, started + self.polls * self.interval_s - time.monotonic()))
        finally:
            session.close()
        return worst


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(
        prog="ib-resilience monitor",
        description="Poll the backend's /api/v1/ib/resilience and alert when the score drops below the threshold "
                    "or a phase stops working. Exit 0: healthy; 1: score or phase alert; 3: no report "
                    "(API unreachable or malformed); 2: bad options.")
    parser.add_argument("--api-base-url", required=True, help="the backend's API, e.g. http://localhost:8000")
    parser.add_argument("--threshold", type=float, default=75.0, help="alert below this score (default 75)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between polls (default 60)")
    parser.add_argument("--once", action="store_true", help="poll once and exit with its code (for cron)")
    parser.add_argument("--max-polls", type=int, help="stop after this many polls")
    parser.add_argument("--hook", help="shell command run when an alert starts and when it ends "
                                       "(env IB_RESILIENCE_STATE, _SCORE, _PROBLEMS, _LINE, _URL)")
    parser.add_argument("--hook-timeout", type=float, default=30.0, help="seconds a hook may run (default 30)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per connect/read (default 10)")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the monitor; see :func:`build_parser` for the exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, value in (("--interval", args.interval), ("--timeout", args.timeout),
                        ("--hook-timeout", args.hook_timeout)):
        if not value > 0:
            parser.error(f"{name} must be > 0")
    if not 0 <= args.threshold <= 100:
        parser.error("--threshold must be within 0..100")
    if args.max_polls is not None and args.max_polls < 1:
        parser.error("--max-polls must be at least 1")
    try:
        url = resilience_url(args.api_base_url)
    except ValueError as exc:
        parser.error(str(exc))
    monitor = Monitor(url, args.threshold, args.interval, args.timeout, args.hook, args.hook_timeout,
                      out or sys.stdout, err or sys.stderr)
    restore = _stop_on_signals(monitor.stop.set)
    try:
        code = monitor.run(1 if args.once else args.max_polls)
    finally:
        restore()
    if not args.once:
        print(f"monitor: {monitor.polls} poll(s), {monitor.alerts} alert(s)", file=monitor.err, flush=True)
    return code


def _stop_on_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """SIGINT/SIGTERM end the loop cleanly (only where signals can be handled: the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, lambda *_: stop()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return restore
