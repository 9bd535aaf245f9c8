"""The suite's own IB connections are left out of what the backend is judged on, and only those."""

from support.drivers.history import IbHistory


class _Record:
    """A control client's connection table, as the simulator reports it."""

    def __init__(self, connections):
        self._connections = connections

    def connections(self):
        return self._connections

    def last_seq(self):
        return 0

    def history(self, since=0):
        return []


def test_a_port_the_suite_used_earlier_is_the_backends_when_the_os_gives_it_to_the_backend_later():
    table = [
        {"conn_id": 1, "peer": "127.0.0.1:50000", "client_id": 900, "connected_mono": 100.0, "disconnected_mono": 100.5},
        {"conn_id": 2, "peer": "127.0.0.1:50000", "client_id": 1, "connected_mono": 400.0, "disconnected_mono": None},
        {"conn_id": 3, "peer": "127.0.0.1:50001", "client_id": 2, "connected_mono": 401.0, "disconnected_mono": None},
    ]
    history = IbHistory(_Record(table), None, own_ports={50000}, own_connects=[(50000, 100.01)])
    assert [c["conn_id"] for c in history.backend_connections(0.0)] == [2, 3]
    assert history.backend_open_ids() == {2, 3}
    legacy = IbHistory(_Record(table), None, own_ports={50000})   # without times: the port alone decides
    assert [c["conn_id"] for c in legacy.backend_connections(0.0)] == [3]
