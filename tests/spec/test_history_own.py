"""The suite's own IB connections are left out of what the backend is judged on, and only those."""

from support.drivers.history import IbHistory, OwnConnections
from support.run_history import RunHistory


def _history(own: OwnConnections) -> RunHistory:
    """A run history holding three connections of the simulator's record (port 50000 used twice)."""
    run = RunHistory()
    run.add_raw("gateway", [
        {"seq": 1, "kind": "connect", "conn_id": 1, "peer": "127.0.0.1:50000", "mono": 100.0},
        {"seq": 2, "kind": "start_api", "conn_id": 1, "client_id": 900, "mono": 100.1},
        {"seq": 3, "kind": "disconnect", "conn_id": 1, "client_id": 900, "mono": 100.5, "reason": "client closed"},
        {"seq": 4, "kind": "connect", "conn_id": 2, "peer": "127.0.0.1:50000", "mono": 400.0},
        {"seq": 5, "kind": "start_api", "conn_id": 2, "client_id": 1, "mono": 400.1},
        {"seq": 6, "kind": "connect", "conn_id": 3, "peer": "127.0.0.1:50001", "mono": 401.0},
        {"seq": 7, "kind": "start_api", "conn_id": 3, "client_id": 2, "mono": 401.1},
    ])
    run._records["gateway"] = None  # noqa: SLF001 - a record attached, read only from what was added
    run.sync = lambda: None
    run.is_own = own
    return run


def test_a_port_the_suite_used_earlier_is_the_backends_when_the_os_gives_it_to_the_backend_later():
    history = IbHistory(_history(OwnConnections({50000}, [(50000, 100.01)])))
    assert [c["conn_id"] for c in history.backend_connections(0.0)] == [2, 3]
    assert history.backend_open_ids() == {2, 3}
    legacy = IbHistory(_history(OwnConnections({50000})))   # without times: the port alone decides
    assert [c["conn_id"] for c in legacy.backend_connections(0.0)] == [3]


def test_a_window_tells_the_backends_connections_and_what_they_carried():
    run = _history(OwnConnections({50000}, [(50000, 100.01)]))
    run.add_raw("gateway", [
        {"seq": 8, "kind": "request", "conn_id": 2, "type": "reqCurrentTime", "req_id": None, "answered": True,
         "mono": 402.0, "read_mono": 401.99},
        {"seq": 9, "kind": "response", "conn_id": 2, "type": "reqCurrentTime", "req_id": None, "mono": 402.01},
        {"seq": 10, "kind": "disconnect", "conn_id": 2, "client_id": 1, "mono": 405.0, "reason": "client closed"}])
    window = run.window(0.0, 500.0)
    backend = {c.conn_id: c for c in window.backend_connections()}
    assert sorted(backend) == [2, 3]
    assert backend[2].requests[0].arrived_mono == 401.99 and backend[2].requests[0].answered_mono == 402.01
    assert backend[2].closed_by == "client" and backend[3].closed_mono is None
    again = type(window).from_json(window.to_json())
    assert again == window
