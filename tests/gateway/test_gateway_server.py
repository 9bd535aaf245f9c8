"""``ib-resilience gateway`` as a real process: READY line, service, clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import ib_insync
import pytest
from gateway_helpers import bounded, ib_session, run

from ibtargets.common.control_client import ControlClient
from ibtargets.common.launch import ManagedProcess, ProcessStartError, venv_script


def _gateway_process(tmp_path: Path, *flags: str) -> ManagedProcess:
    argv = [venv_script("ib-resilience"), "gateway", "--port", "0", "--control-port", "0", *flags]
    return ManagedProcess(argv, tmp_path / "gateway.log", name="gateway")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_process_serves_and_exits_cleanly(tmp_path: Path, signum: int) -> None:
    process = _gateway_process(tmp_path, "--account", "DU7654321", "--max-clients", "4", "--no-pacing-enabled")
    try:
        ready = process.start(ready_timeout_s=20)
        port, control_port = int(ready["port"]), int(ready["control_port"])
        assert ready["host"] == "127.0.0.1" and port > 0 and control_port > 0
        control = ControlClient(f"http://127.0.0.1:{control_port}")
        config = control._call("GET", "/config")
        assert config["max_clients"] == 4 and config["pacing_enabled"] is False

        async def body() -> None:
            async with ib_session(ib_insync, port, client_id=1) as ib:
                assert ib.managedAccounts() == ["DU7654321"]
                await bounded(ib.reqCurrentTimeAsync())

        run(body())
        assert [c["client_id"] for c in control.connections()] == [1]
        control.close()
        process.signal(signum)
        assert process.proc is not None and process.proc.wait(10) == 0
        assert _refused(port) and _refused(control_port)
    finally:
        process.stop()
    assert "Traceback" not in process.log_tail(200)


@pytest.mark.parametrize("flags, message", [
    (("--account", "U1234567"), "not a paper account"),
    (("--max-clients", "0"), "max_clients must be within 1..1024"),
])
def test_process_refuses_bad_settings(tmp_path: Path, flags: tuple[str, ...], message: str) -> None:
    process = _gateway_process(tmp_path, *flags)
    with pytest.raises(ProcessStartError):
        process.start(ready_timeout_s=20)
    assert process.proc is not None and process.proc.returncode == 2
    assert message in process.log_tail()
