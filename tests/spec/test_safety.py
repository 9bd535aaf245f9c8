"""A live (non-paper) account stops the run before any scenario touches it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_live_account_stops_the_run_before_any_scenario(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ibresilience.main", "run", "--level", "basic", "--reports-dir", str(tmp_path),
                          "-D", "gateway_account=U7654321"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "not a paper account" in run.stdout + run.stderr
    assert not list((tmp_path / "allure-results").glob("*-result.json")), "a scenario ran against a live account"
