"""A managed target: the suite starts the user's own backend by command behind its simulator and proxy."""

import subprocess
import sys
from pathlib import Path

import pytest

from support.preflight import PreflightError, ensure_reachable
from support.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REFBACKEND = str(ROOT / ".venv" / "bin" / "refbackend")


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "support.cli", "run", "--level", "basic", "--reports-dir", str(tmp_path / "run"),
         "--target", "managed", "--backend-command", f"{REFBACKEND} serve --host 127.0.0.1 --port {{api_port}}",
         "--backend-env", f"REFBACKEND_DATA_DIR={tmp_path / 'data'}", "--cli", REFBACKEND, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_basic_level_against_a_backend_started_by_command(tmp_path):
    run = _run(tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # Started with its own (KTRDR) timings, the idle scenario would wait 300 s: skipped, with that reason.
    assert "12 scenarios passed, 0 failed" in run.stdout, run.stdout[-3000:]
    assert "max_wait_s" in run.stdout + run.stderr


def test_a_failed_scenario_gets_the_next_one_a_fresh_backend(tmp_path):
    reset_marker = tmp_path / "resets"
    run = _run(tmp_path, "--backend-reset", f"echo reset >> {reset_marker}", "--name", "An unknown symbol",
               "--name", "The IB status names", "-D", "symbols=NOPE1,NOPE2,NOPE3,NOPE4")
    # Unknown symbols make the discovery precondition fail; each failure restarts (and resets) the backend.
    assert run.returncode != 0
    assert reset_marker.read_text().count("reset") >= 2, run.stdout[-3000:]


def test_preflight_names_a_missing_backend_program(tmp_path):
    settings = Settings(target="managed", backend_command=("/nonexistent/backend",), cli=(REFBACKEND,),
                        reports_dir=tmp_path)
    with pytest.raises(PreflightError, match="/nonexistent/backend"):
        ensure_reachable(settings)
