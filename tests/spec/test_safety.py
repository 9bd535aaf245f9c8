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


def test_the_suites_ib_driver_refuses_a_gateway_logged_in_to_a_live_account(tmp_path):
    import pytest

    from support.drivers.ib import IbDriver, LiveAccountError
    from support.targets import start_lone_gateway

    process = start_lone_gateway("U1234567", tmp_path)
    ib = IbDriver("127.0.0.1", int(process.ready["port"]))
    try:
        with pytest.raises(LiveAccountError):
            ib.ensure_paper_account(902, timeout_s=10.0)
        assert ib.squatted == (), "nothing was done with the live account"
    finally:
        ib.close()
        process.stop()


def test_a_basic_run_says_which_paper_account_it_checked(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ibresilience.main", "run", "--level", "basic", "--reports-dir",
                          str(tmp_path), "--name", "preferred client ID"], cwd=ROOT, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "preflight: the gateway is logged in to paper account(s) DU1234567" in run.stdout + run.stderr
