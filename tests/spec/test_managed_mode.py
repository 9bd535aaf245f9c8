"""A managed target: the suite starts the user's own backend by command behind its simulator and proxy."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ibresilience.runner import LEVELS
from support.preflight import PreflightError, ensure_reachable
from support.settings import Settings
from support.targets import backend_environment

ROOT = Path(__file__).resolve().parents[2]
REFBACKEND = str(ROOT / ".venv" / "bin" / "refbackend")
#: What the embedded mode gives the reference backend, handed over as a user would: by environment.
TUNING = ("REFBACKEND_MAX_IDLE_S", "REFBACKEND_HEALTH_INTERVAL_S")


def _run(tmp_path: Path, level: str, *extra: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in backend_environment(Settings(), 0).items() if k not in ("IB_HOST", "IB_PORT")}
    fixed = ",".join(f"{k}={v}" for k, v in env.items() if k not in TUNING)
    tuning = ",".join(f"{k}={v}" for k, v in env.items() if k in TUNING)
    return subprocess.run(
        [sys.executable, "-m", "ibresilience.main", "run", "--level", level, "--reports-dir", str(tmp_path / "run"),
         "--target", "managed", "--backend-command", f"{REFBACKEND} serve --host 127.0.0.1 --port {{api_port}}",
         "--backend-cwd", str(tmp_path), "--backend-env", f"{fixed},REFBACKEND_DATA_DIR=data",
         "-D", f"backend_tuning_env={tuning}", "-D", "backend_remove=data", "--cli", REFBACKEND, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def _selected(level: str) -> int:
    """How many scenarios the level selects (behave's dry run)."""
    dry = subprocess.run([sys.executable, "-m", "behave", "--dry-run", "-f", "null", "--tags", LEVELS[level],
                          str(ROOT / "features")], capture_output=True, text=True, timeout=60, cwd=ROOT)
    return int(re.search(r"\d+ scenarios? passed, \d+ failed, \d+ skipped, (\d+) untested", dry.stdout).group(1))


@pytest.mark.timeout(900)
def test_the_standard_level_runs_whole_against_the_reference_started_by_command(tmp_path):
    """Every standard scenario runs and passes, the restart and shutdown ones included; none is skipped."""
    run = _run(tmp_path, "standard", timeout_s=840)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    selected = _selected("standard")
    assert f"{selected} scenarios passed, 0 failed" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    assert "SKIPPED" not in run.stderr, run.stderr[-3000:]


def test_a_failed_scenario_gets_the_next_one_a_fresh_backend(tmp_path):
    reset_marker = tmp_path / "resets"
    run = _run(tmp_path, "basic", "--backend-reset", f"echo reset >> {reset_marker}", "--name", "An unknown symbol",
               "--name", "The IB status names", "-D", "symbols=NOPE1,NOPE2,NOPE3,NOPE4")
    # Unknown symbols make the discovery precondition fail; each failure restarts (and resets) the backend.
    assert run.returncode != 0
    assert reset_marker.read_text().count("reset") >= 2, run.stdout[-3000:]


def test_preflight_names_a_missing_backend_program(tmp_path):
    settings = Settings(target="managed", backend_command=("/nonexistent/backend",), cli=(REFBACKEND,),
                        reports_dir=tmp_path)
    with pytest.raises(PreflightError, match="/nonexistent/backend"):
        ensure_reachable(settings)
