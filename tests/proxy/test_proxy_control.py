"""The proxy's control API, its Python clients and the ``ib-resilience proxy`` command."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
from proxy_fakes import FakeGateway

from ibtargets.common.control_client import ControlClient, ControlError
from ibtargets.common.faults import Latency, Reset, Silent
from ibtargets.common.launch import ManagedProcess, venv_script
from ibtargets.proxy import ThreadedProxy
from support.waiting import Bound, eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def control(proxy: ThreadedProxy):
    client = ControlClient(proxy.control_url)
    yield client
    client.close()


def test_health_names_the_role(control: ControlClient):
    assert control.health() == {"status": "ok", "role": "proxy"}


def test_faults_apply_list_replace_heal_and_reset(control: ControlClient):
    control.apply(Latency(latency_ms=50))
    control.apply(Latency(latency_ms=80, direction="both"))  # same name: replaces
    control.apply(Silent(name="quiet-7", client_id=7, request_types=("reqCurrentTime",)))
    listed = {f["name"]: f for f in control.faults()}
    assert listed["latency"]["attributes"] == {"latency_ms": 80, "jitter_ms": 0, "direction": "both"}
    assert listed["quiet-7"] == {"name": "quiet-7", "kind": "silent", "client_id": 7,
                                 "attributes": {"request_types": ["reqCurrentTime"]}}
    control.heal("latency")
    control.heal("latency")  # healing an inactive name is a no-op
    assert [f["name"] for f in control.faults()] == ["quiet-7"]
    control.reset()
    assert control.faults() == []
    kinds = [e["kind"] for e in control.history() if e["kind"].startswith("fault_")]
    assert kinds == ["fault_applied"] * 3 + ["fault_healed"] * 2


def test_one_shot_fault_is_not_kept_and_the_context_manager_heals(control: ControlClient, proxy: ThreadedProxy):
    with control.fault(Reset()):
        pass
    with proxy.fault(Silent()):
        assert [f.kind for f in proxy.faults()] == ["silent"]
    assert control.faults() == []


@pytest.mark.parametrize("body, message", [
    ({"kind": "unanswered"}, "unknown proxy fault kind"),          # a gateway-plane kind
    ({"kind": "latency", "attributes": {"latency_ms": -1}}, "within 0..600000"),
    ({"kind": "latency", "attributes": {"direction": "sideways"}}, "direction"),
    ({"kind": "blackhole", "client_id": 3}, "cannot be scoped"),
    ({"kind": "slicer", "attributes": {"max_chunk_bytes": "3"}}, "integer"),
])
def test_bad_faults_get_a_clear_400(control: ControlClient, body: dict, message: str):
    with pytest.raises(ControlError, match="400") as error:
        control._call("POST", "/faults", body)
    assert message in str(error.value)
    assert control.faults() == []


def test_upstream_can_be_repointed(loop_thread, fake_gateway: FakeGateway, make_proxy, connect_ib, client_id):
    other = FakeGateway(loop_thread).start()
    try:
        proxy = make_proxy(fake_gateway.port)
        control = ControlClient(proxy.control_url)
        assert control._call("GET", "/upstream") == {"host": "127.0.0.1", "port": fake_gateway.port}
        assert control._call("PUT", "/upstream", {"host": "127.0.0.1", "port": other.port}) == \
            {"host": "127.0.0.1", "port": other.port}
        cid = client_id()
        connect_ib(proxy.port, cid)
        assert other.client_ids == [cid] and cid not in fake_gateway.client_ids
        with pytest.raises(ControlError, match="400"):
            control._call("PUT", "/upstream", {"host": "127.0.0.1", "port": 70000})
    finally:
        other.stop()


def test_connections_describe_each_pair(proxy: ThreadedProxy, connect_ib, client_id):
    cid = client_id()
    ib = connect_ib(proxy.port, cid)
    ib.reqCurrentTime()
    [conn] = ControlClient(proxy.control_url).connections()
    assert conn["client_id"] == cid and conn["state"] == "open" and conn["version"] >= 157
    assert conn["bytes_up"] > 0 and conn["bytes_down"] > 0 and conn["disconnected_at"] is None
    assert set(conn) == {"conn_id", "peer", "client_id", "version", "state", "connected_at", "connected_mono",
                         "disconnected_at", "disconnected_mono", "bytes_up", "bytes_down"}
    ib.disconnect()
    eventually(lambda: proxy.connections()[0]["state"] == "closed", Bound.exactly(5), "the connection listed as closed")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_command_announces_ready_forwards_and_exits_cleanly(signum: int, fake_gateway: FakeGateway,
                                                            connect_ib, raw_socket, tmp_path: Path):
    process = ManagedProcess([venv_script("ib-resilience"), "proxy", "--listen", "127.0.0.1:0",
                              "--upstream", f"127.0.0.1:{fake_gateway.port}", "--control-port", "0"],
                             tmp_path / "proxy.log", name="proxy")
    try:
        ready = process.start(ready_timeout_s=20.0)
        assert ready["host"] == "127.0.0.1" and ready["upstream"] == f"127.0.0.1:{fake_gateway.port}"
        port, control_port = int(ready["port"]), int(ready["control_port"])
        assert ControlClient(f"http://127.0.0.1:{control_port}").health()["role"] == "proxy"
        assert connect_ib(port).reqCurrentTime() is not None
        open_client = raw_socket(port)
        process.signal(signum)
        open_client.settimeout(5.0)
        assert open_client.recv(1) == b"", "the open connection was closed on shutdown"
        assert process.proc is not None and process.proc.wait(10.0) == 0
    finally:
        process.stop()
    for freed in (port, control_port):  # nothing left listening (TIME_WAIT leftovers are fine)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", freed))
            sock.listen()


@pytest.mark.parametrize("args, message", [
    (["--upstream", "nohost"], "HOST:PORT"),
    (["--upstream", "127.0.0.1:99999"], "HOST:PORT"),
    ([], "--upstream"),
])
def test_command_rejects_bad_arguments(args: list[str], message: str, capsys):
    from ibtargets.proxy.server import main
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
