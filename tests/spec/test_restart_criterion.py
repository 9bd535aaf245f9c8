"""What the run's history says against keeping a backend after a failed scenario (``restart_after_failure =
"when-unhealthy"``, :func:`support.world.doubt_after_failure`)."""

from __future__ import annotations

from ibtargets.common.faults import Silent
from support.drivers.api import ApiResponse
from support.drivers.faults import FaultWindow
from support.run_history import Connection, HistoryWindow
from support.world import doubt_after_failure, ever_healthy

SCENARIO_START = 100.0


def health(status: int, healthy: bool, at: float = 50.0) -> ApiResponse:
    return ApiResponse("GET", "/ib/health", None, status, {"success": status == 200, "data": {"healthy": healthy}},
                       0.01, at)


def window(open_connections: int = 1, faults: tuple[FaultWindow, ...] = (),
           exchanges: tuple[ApiResponse, ...] = ()) -> HistoryWindow:
    connections = tuple(Connection("gateway", n, f"p:{n}", 10.0 + n, n, 10.01 + n) for n in range(open_connections))
    closed = (Connection("gateway", 99, "p:99", 5.0, 11, 5.01, closed_mono=6.0, closed_by="client"),)
    return HistoryWindow(0.0, 200.0, "gateway", connections + closed, faults=faults, exchanges=exchanges)


def test_a_quiet_failure_of_a_backend_within_its_pool_raises_no_doubt():
    assert doubt_after_failure(window(5), SCENARIO_START, pool_limit=5) == ""


def test_more_connections_than_the_pool_holds_is_a_doubt():
    assert "holds 6 IB connections" in doubt_after_failure(window(6), SCENARIO_START, pool_limit=5)


def test_a_fault_in_the_scenario_is_a_doubt_when_health_never_said_healthy():
    fault = FaultWindow("silence", "proxy", Silent(), SCENARIO_START + 2, SCENARIO_START + 8)
    never = window(1, (fault,), (health(503, False),))
    assert "nothing shows it is over the scenario's silence" in doubt_after_failure(never, SCENARIO_START, 5)
    # A backend whose health has said healthy shows its recovery by saying so again (World.unhealthy_after waits).
    once = window(1, (fault,), (health(503, False), health(200, True)))
    assert ever_healthy(once) and doubt_after_failure(once, SCENARIO_START, 5) == ""


def test_a_fault_of_an_earlier_scenario_is_no_doubt():
    earlier = FaultWindow("silence", "proxy", Silent(), SCENARIO_START - 30, SCENARIO_START - 20)
    assert doubt_after_failure(window(1, (earlier,)), SCENARIO_START, 5) == ""


def test_healthy_means_http_200_and_healthy_true():
    assert not ever_healthy(window(1, exchanges=(health(200, False), health(503, True))))
