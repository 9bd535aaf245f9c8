"""What the run's history says against keeping a backend after a failed scenario (``restart_after_failure =
"when-unhealthy"``, :func:`support.world.doubt_after_failure`)."""

from __future__ import annotations

import dataclasses

from history_helpers import LIMITS

from ibtargets.common.faults import Silent
from support.drivers.api import ApiResponse
from support.drivers.cli import CliRun
from support.drivers.faults import FaultWindow
from support.run_history import Connection, HistoryWindow, Life
from support.world import doubt_after_failure, ever_healthy

START = 100.0            # the backend's current life began (its last start)
LIFE = Life(started_mono=1.0, ready_mono=2.0)
POOL = dataclasses.replace(LIMITS, pool_limit=5)


def health(status: int, healthy: bool, at: float = 50.0) -> ApiResponse:
    return ApiResponse("GET", "/ib/health", None, status, {"success": status == 200, "data": {"healthy": healthy}},
                       0.01, at)


def discover(at: float, elapsed_s: float = 0.2, timed_out: bool = False) -> ApiResponse:
    return ApiResponse("POST", "/ib/symbols/discover", {"symbol": "AAPL"}, None if timed_out else 200,
                       {"success": True}, elapsed_s, at, "", timed_out)


def history(open_connections: int = 1, faults: tuple[FaultWindow, ...] = (), exchanges: tuple[ApiResponse, ...] = (),
            cli_runs: tuple[CliRun, ...] = (), start: float = 0.0) -> HistoryWindow:
    connections = tuple(Connection("gateway", n, f"p:{n}", 10.0 + n, n, 10.01 + n) for n in range(open_connections))
    closed = (Connection("gateway", 99, "p:99", 5.0, 11, 5.01, closed_mono=6.0, closed_by="client"),)
    return HistoryWindow(start, 200.0, "gateway", connections + closed, faults=faults,
                         exchanges=tuple(e for e in exchanges if e.started_mono >= start),
                         cli_runs=tuple(r for r in cli_runs if r.started_mono >= start), lives=(LIFE,))


def doubt(**parts) -> str:
    return doubt_after_failure(history(**parts), history(start=START, **parts), POOL)


def test_a_quiet_failure_within_the_pool_raises_no_doubt():
    assert doubt(open_connections=5, exchanges=(health(503, False), discover(START + 1))) == ""


def test_more_connections_than_the_pool_holds_is_a_doubt_whatever_the_health():
    assert "holds 6 IB connections" in doubt(open_connections=6, exchanges=(health(200, True),))


def test_a_fault_in_the_backend_s_life_is_a_doubt_only_when_health_never_said_healthy():
    fault = FaultWindow("silence", "proxy", Silent(), START + 2, START + 8)
    assert "nothing shows it is over the silence" in doubt(faults=(fault,), exchanges=(health(503, False),))
    # A backend whose health has said healthy shows its recovery by saying so again (World.unhealthy_after waits).
    assert doubt(faults=(fault,), exchanges=(health(503, False), health(200, True))) == ""
    earlier_life = FaultWindow("silence", "proxy", Silent(), START - 30, START - 20)
    assert doubt(faults=(earlier_life,)) == ""   # a restart since


def test_heavy_load_in_the_backend_s_life_is_a_doubt():
    burst = tuple(discover(START + 1 + n * 0.01, elapsed_s=1.0) for n in range(8))
    assert "heavy load" in doubt(exchanges=burst)


def test_a_request_answered_late_or_never_is_a_doubt():
    assert "answered late" in doubt(exchanges=(discover(START + 1, elapsed_s=15.0),))
    assert "answered late" in doubt(exchanges=(discover(START + 1, elapsed_s=30.0, timed_out=True),))
    slow_cli = CliRun(("ktrdr", "data", "load", "KO"), 1, "", 45.0, started_mono=START + 1)
    assert "answered late" in doubt(cli_runs=(slow_cli,))
    assert doubt(exchanges=(discover(START - 50, elapsed_s=15.0),)) == ""   # an earlier life's


def test_healthy_means_http_200_and_healthy_true():
    assert not ever_healthy(history(exchanges=(health(200, False), health(503, True))))


def test_a_retired_attempt_leaves_the_results_every_report_counts(tmp_path):
    """The first attempt of a scenario run again on a fresh backend moves out of the Allure results; the other
    scenarios' results and the second attempt (written later) stay."""
    import json

    from support.evidence import retire_attempt

    def result(uuid: str, name: str, location: str) -> None:
        (tmp_path / "results" / f"{uuid}-result.json").write_text(json.dumps(
            {"uuid": uuid, "name": name, "status": "failed", "labels": [{"name": "location", "value": location}]}))
    (tmp_path / "results").mkdir()
    result("a", "Serving commands prints no complaint", "features/backend_output.feature:31")
    result("b", "Serving commands prints no complaint", "features/other.feature:31")   # same name elsewhere
    result("c", "A data load prints no complaint", "features/backend_output.feature:22")
    moved = retire_attempt(tmp_path / "results", "Serving commands prints no complaint",
                           "features/backend_output.feature:31", tmp_path / "retired")
    assert [p.name for p in moved] == ["a-result.json"] and (tmp_path / "retired" / "a-result.json").exists()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["b-result.json", "c-result.json"]
