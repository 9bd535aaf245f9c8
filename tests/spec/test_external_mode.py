"""The same feature files judge a backend the suite did not start (external mode, by configuration)."""

import subprocess
import sys
from pathlib import Path

from support.settings import Settings
from support.targets import EmbeddedTargets

ROOT = Path(__file__).resolve().parents[2]


def _run_external(tmp_path: Path, *extra: str, level: str = "basic", controls: bool = True,
                  backend_log: bool = False) -> subprocess.CompletedProcess:
    """Start the project's targets as if elsewhere, then run the suite against them in external mode."""
    targets = EmbeddedTargets(Settings(reports_dir=tmp_path), tmp_path / "servers")
    try:
        t = targets.start()
        options = ["--gateway-control", t.gateway_control, "--proxy-control", t.proxy_control] if controls else []
        options += ["--backend-log", t.backend_log] if backend_log else []
        return subprocess.run(
            [sys.executable, "-m", "ibresilience.main", "run", "--level", level, "--reports-dir", str(tmp_path / "run"),
             "--api-base-url", t.api_base_url, "--cli", " ".join(t.cli), "--ib-host", t.ib_host,
             "--ib-port", str(t.ib_port), *options, *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        targets.stop()


def test_basic_level_against_targets_started_elsewhere(tmp_path):
    run = _run_external(tmp_path, backend_log=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # Every basic scenario but the one that stops the backend (the suite did not start it): its log is read.
    assert "13 scenarios passed, 0 failed" in run.stdout, run.stdout[-3000:]
    assert "SKIPPED 'Stopping the backend prints no complaint': needs.backend_restart" in run.stderr


def test_capabilities_the_target_lacks_are_skipped_with_a_reason(tmp_path):
    run = _run_external(tmp_path, "--name", "silent gateway drives the score", "--name", "discovering a symbol print",
                        controls=False)
    assert "SKIPPED 'A silent gateway drives the score below 75': needs.fault_proxy" in run.stderr
    assert "print no complaint': needs.backend_output" in run.stderr
    assert "0 failed" in run.stdout and "1 passed" not in run.stdout


def test_a_cli_that_cannot_be_pointed_skips_the_api_outage_of_a_backend_it_cannot_stop(tmp_path):
    run = _run_external(tmp_path, "--name", "The API is not running", "--cli-api", "fixed:http://127.0.0.1:9",
                        level="standard")
    assert "SKIPPED 'The API is not running': needs.api_outage" in run.stderr, run.stderr[-2000:]
    assert "0 failed" in run.stdout and "1 passed" not in run.stdout


def test_a_dead_api_stops_the_run_within_5_s_with_one_line(tmp_path):
    import time

    from support.targets import free_port
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "ibresilience.main", "run", "--level", "basic", "--reports-dir", str(tmp_path / "run"),
         "--api-base-url", f"http://127.0.0.1:{free_port()}", "--cli", sys.executable,
         "--ib-host", "127.0.0.1", "--ib-port", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed_s = time.monotonic() - started
    assert run.returncode == 2 and elapsed_s < 5.0 + 3.0, (elapsed_s, run.stdout, run.stderr)  # + interpreter start
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "preflight failed" in lines[0] and "does not answer" in lines[0], run.stderr
