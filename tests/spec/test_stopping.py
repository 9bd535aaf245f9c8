"""A run stopped by SIGTERM (CI cancelling, `timeout`) or SIGINT (Ctrl-C) leaves nothing behind."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from process_checks import gone, listening, port_free

ROOT = Path(__file__).resolve().parents[2]
STOP_BOUND_S = 5.0


def _started_run(tmp_path: Path) -> tuple[subprocess.Popen, list[psutil.Process], set[int]]:
    """A standard run, once its first scenarios ran: the runner, every process under it, their listening ports."""
    run = subprocess.Popen([sys.executable, "-m", "ibresilience.main", "run", "--level", "standard", "--report",
                            "--reports-dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and len(list((tmp_path / "allure-results").glob("*-result.json"))) < 2:
        try:
            run.wait(0.2)
            pytest.fail(f"the run ended before it could be stopped: {run.communicate()}")
        except subprocess.TimeoutExpired:
            pass
    tree = psutil.Process(run.pid).children(recursive=True)
    ports = {c.laddr.port for p in tree for c in listening(p)}
    assert len(tree) >= 4 and len(ports) >= 4, (tree, ports)   # behave, gateway, proxy, backend
    return run, tree, ports




@pytest.mark.timeout(180)
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_and_frees_every_port_within_5_s(tmp_path, signum, code):
    run, tree, ports = _started_run(tmp_path)
    signalled = time.monotonic()
    run.send_signal(signum)
    out, err = run.communicate(timeout=60)
    stopped_s = time.monotonic() - signalled
    assert run.returncode == code, (out[-2000:], err[-2000:])
    assert stopped_s <= STOP_BOUND_S, f"the runner took {stopped_s:.1f} s"
    left = [p for p in tree if not gone(p)]
    bound = sorted(p for p in ports if not port_free(p))
    assert not left and not bound, (left, bound)
    assert "Traceback" not in out + err, err[-3000:]
    assert f"stopped by {signal.Signals(signum).name}" in err and "scenarios passed" in out
    assert list(tmp_path.glob("resilience_test_report_*.md")), "the partial Markdown summary is written"
