"""``ib-resilience monitor`` against the real reference backend, simulator and fault proxy."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from reporting_helpers import run_bounded

from ibresilience.monitor import EXIT_ALERT, EXIT_NO_REPORT, EXIT_OK, EXIT_USAGE, main
from ibtargets.common.control_client import ControlClient
from ibtargets.common.faults import Silent
from support.drivers.api import ApiDriver
from support.waiting import Bound, eventually

MONITOR = [str(Path(sys.executable).with_name("ib-resilience")), "monitor"]


def monitor_once(url: str, *extra: str) -> tuple[int, str, str]:
    """Run ``main(["--once", ...])`` in-process; return exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main(["--api-base-url", url, "--once", "--timeout", "10", *extra], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def serving(url: str) -> None:
    """Make the backend hold a validated connection (a client asks IB for something through it)."""
    api = ApiDriver(url, timeout_s=10.0)
    eventually(lambda: api.discover("AAPL").ok, Bound.exactly(15.0), "a discovery through the backend succeeds", interval_s=0.2)


@pytest.fixture
def healthy(embedded_targets) -> Iterator[str]:
    """The API URL of a backend that monitors as healthy; every fault healed afterwards."""
    proxy = ControlClient(embedded_targets.proxy_control)
    proxy.reset()
    serving(embedded_targets.api_base_url)
    eventually(lambda: monitor_once(embedded_targets.api_base_url)[0] == EXIT_OK, Bound.exactly(15.0), "the monitor sees health")
    try:
        yield embedded_targets.api_base_url
    finally:
        proxy.reset()


def test_once_healthy_prints_the_score_and_phases(healthy):
    code, out, _ = monitor_once(healthy)
    assert code == EXIT_OK, out
    assert " OK score=" in out and "validation=working gc=working client_ids=working" in out


def test_once_alerts_when_the_gateway_goes_silent(healthy, embedded_targets):
    def alerting() -> str:
        code, out, _ = monitor_once(healthy)
        assert code == EXIT_ALERT, out
        return out

    with ControlClient(embedded_targets.proxy_control).fault(Silent()):
        out = eventually(alerting, Bound.exactly(10.0), "the monitor alerts on a silent gateway", interval_s=0.3)
    assert "ALERT score=" in out and "< 75" in out and "validation not_working" in out, out
    serving(healthy)
    eventually(lambda: monitor_once(healthy)[0] == EXIT_OK, Bound.exactly(15.0), "the monitor sees recovery")


def test_threshold_is_the_operator_s(healthy):
    code, out, _ = monitor_once(healthy, "--threshold", "100")
    score = float(out.split("score=")[1].split()[0])
    assert code == (EXIT_OK if score >= 100 else EXIT_ALERT), out


def test_continuous_monitor_runs_the_hook_on_alert_and_recovery(healthy, embedded_targets, tmp_path):
    hook_log = tmp_path / "hook.log"
    process = subprocess.Popen(
        [*MONITOR, "--api-base-url", healthy, "--interval", "0.3", "--timeout", "10",
         "--hook", f'echo "$IB_RESILIENCE_STATE $IB_RESILIENCE_SCORE" >> {hook_log}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        with ControlClient(embedded_targets.proxy_control).fault(Silent()):
            eventually(lambda: hook_log.exists() and "alert" in hook_log.read_text(), Bound.exactly(15.0),
                       "the hook is told about the alert", interval_s=0.2)
        serving(healthy)
        eventually(lambda: "recovered" in hook_log.read_text(), Bound.exactly(15.0), "the hook is told about the recovery",
                   interval_s=0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=15.0)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate(timeout=5.0)
    assert process.returncode == EXIT_ALERT, (out, err)
    states = [line.split()[0] for line in hook_log.read_text().splitlines()]
    assert states == ["alert", "recovered"], hook_log.read_text()
    lines = out.splitlines()
    assert any(" ALERT " in line for line in lines) and any(" OK (recovered) " in line for line in lines), out
    assert "poll(s)" in err and "alert(s)" in err


def test_no_report_when_the_api_is_gone():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code, out, _ = monitor_once(url)
    assert code == EXIT_NO_REPORT and "ALERT no report: cannot reach" in out, out


def test_an_api_that_never_answers_is_bounded():
    with socket.socket() as silent_listener:  # the kernel completes connects; nobody ever reads or answers
        silent_listener.bind(("127.0.0.1", 0))
        silent_listener.listen(4)
        started = time.monotonic()
        code, out, _ = monitor_once(f"http://127.0.0.1:{silent_listener.getsockname()[1]}", "--timeout", "0.5")
        elapsed_s = time.monotonic() - started
    assert code == EXIT_NO_REPORT and "no answer within 0.5 s" in out, out
    print(f"\nunanswered poll gave up after {elapsed_s:.2f} s (--timeout 0.5)")


def test_a_hung_hook_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "hook.pid"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code, _, err = monitor_once(url, "--hook", f"sleep 60 & echo $! > {pid_file}; wait", "--hook-timeout", "0.5")
    assert code == EXIT_NO_REPORT and "hook killed after 0.5 s" in err, err
    sleeper = int(pid_file.read_text())
    eventually(lambda: not psutil.pid_exists(sleeper) or psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE,
               Bound.exactly(5.0), "the hook's child is gone")


@pytest.mark.parametrize("options", [["--threshold", "120"], ["--interval", "0"], ["--max-polls", "0"],
                                     ["--timeout", "-1"]])
def test_bad_options_are_refused(options):
    done = run_bounded([*MONITOR, "--api-base-url", "http://127.0.0.1:8000", *options], 30.0)
    assert done.returncode == EXIT_USAGE and "error:" in done.stdout, done.stdout


def test_a_url_that_is_not_http_is_refused():
    done = run_bounded([*MONITOR, "--api-base-url", "localhost:8000", "--once"], 30.0)
    assert done.returncode == EXIT_USAGE and "must be an http(s) URL" in done.stdout, done.stdout
