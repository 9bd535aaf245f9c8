"""Who may drive the gateway's control API, and what it accepts: tokens, loopback, JSON-only writes,
no live account at runtime, ranges on every number, known request types, validated ports."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ibtargets.common import faults
from ibtargets.common.control import TOKEN_ENV, is_loopback_host
from ibtargets.common.control_client import ControlClient, ControlError
from ibtargets.common.control_server import ControlBindError, check_control_bind
from ibtargets.common.launch import ManagedProcess, venv_script
from ibtargets.gateway import ConfigError, GatewayConfig, ThreadedGateway
from ibtargets.gateway.config import RANGES as CONFIG_RANGES

JSON = {"Content-Type": "application/json"}
TOKEN = "s3cret-Token_42"
CLI_TIMEOUT_S = 30


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ib-resilience <args>`` as a process that is expected to exit by itself (bounded)."""
    environment = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return subprocess.run([venv_script("ib-resilience"), *args], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, env={**environment, **(env or {})})


def _one_line_exit_2(run: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr and "READY" not in run.stdout
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def token_gateway() -> Iterator[ThreadedGateway]:
    """A gateway whose control API needs :data:`TOKEN`."""
    gateway = ThreadedGateway(GatewayConfig(), control_token=TOKEN).start()
    yield gateway
    gateway.stop()


# --------------------------------------------------------------------------- 1. binding and tokens


def test_non_loopback_control_bind_without_a_token_exits_2() -> None:
    run = _cli("gateway", "--port", "0", "--control-host", "0.0.0.0", "--control-port", "0")
    _one_line_exit_2(run, "--control-token", TOKEN_ENV)


def test_control_bind_rules() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"):
        assert is_loopback_host(host), host
        check_control_bind(host, None)
    for host in ("0.0.0.0", "", "::", "10.0.0.5", "192.168.1.2", "example.com", "localhost.example.com"):
        assert not is_loopback_host(host), host
        with pytest.raises(ControlBindError, match="--control-token"):
            check_control_bind(host, None)
        check_control_bind(host, TOKEN)  # a token makes any address acceptable
    with pytest.raises(ControlBindError, match="visible ASCII"):
        check_control_bind("127.0.0.1", "two words")


def test_the_library_refuses_a_non_loopback_control_bind_without_a_token() -> None:
    gateway = ThreadedGateway(control_host="0.0.0.0")
    with pytest.raises(ControlBindError):
        gateway.start()
    assert gateway.gateway.control_port is None


def test_with_a_token_a_request_without_it_gets_401_and_with_it_works(token_gateway: ThreadedGateway) -> None:
    url = token_gateway.control_url
    refused = requests.get(f"{url}/health", timeout=5)
    assert refused.status_code == 401 and "token" in refused.json()["error"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.get(f"{url}/faults", headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    post = requests.post(f"{url}/faults", json={"kind": "drop_clients"}, timeout=5)
    assert post.status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(f"{url}/health", headers=auth, timeout=5).json()["role"] == "gateway"
    applied = requests.post(f"{url}/faults", json={"kind": "unanswered"}, headers=auth, timeout=5)
    assert applied.status_code == 201
    assert [f.kind for f in token_gateway.faults()] == ["unanswered"]


def test_control_client_sends_the_token(token_gateway: ThreadedGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    url = token_gateway.control_url
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ControlError, match="401"):
        ControlClient(url).health()
    with pytest.raises(ControlError, match="401"):
        ControlClient(url, token="wrong").health()
    explicit = ControlClient(url, token=TOKEN)
    explicit.apply(faults.Unanswered(request_types=("reqCurrentTime",)))
    explicit.heal("unanswered")
    explicit.reset()
    assert explicit.update_config(pacing_enabled=False)["pacing_enabled"] is False
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    from_env = ControlClient(url)
    assert from_env.health()["role"] == "gateway" and from_env.faults() == []
    with pytest.raises(ControlError, match="401"):
        ControlClient(url, token="").health()  # "" sends no token, whatever the environment says


def test_a_token_from_the_environment_protects_the_process(tmp_path: Path) -> None:
    process = ManagedProcess([venv_script("ib-resilience"), "gateway", "--port", "0", "--control-port", "0"],
                             tmp_path / "gateway.log", env={TOKEN_ENV: TOKEN}, name="gateway")
    try:
        ready = process.start(ready_timeout_s=20)
        assert ready["control_host"] == "127.0.0.1"
        url = f"http://127.0.0.1:{ready['control_port']}"
        assert requests.get(f"{url}/health", timeout=5).status_code == 401
        assert ControlClient(url, token=TOKEN).health()["role"] == "gateway"
    finally:
        process.stop()


# --------------------------------------------------------------------------- 2. browsers


def test_a_cross_origin_plain_text_post_is_refused(gateway: ThreadedGateway) -> None:
    url = gateway.control_url
    body = '{"kind": "unanswered"}'
    # what a web page's fetch(..., {mode: "no-cors", method: "POST", body}) sends: no preflight
    page = requests.post(f"{url}/faults", data=body, timeout=5,
                         headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://evil.example"})
    assert page.status_code == 403 and "Origin" in page.json()["error"]
    plain = requests.post(f"{url}/faults", data=body, headers={"Content-Type": "text/plain"}, timeout=5)
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]
    form = requests.post(f"{url}/faults", data={"kind": "unanswered"}, timeout=5)  # a form post
    assert form.status_code == 415
    bare = requests.post(f"{url}/reset", timeout=5)
    assert bare.status_code == 415
    delete = requests.delete(f"{url}/faults/unanswered", timeout=5)
    assert delete.status_code == 415
    put = requests.put(f"{url}/config", data='{"pacing_enabled": false}', timeout=5)
    assert put.status_code == 415 and gateway.config.pacing_enabled is True
    json_from_page = requests.post(f"{url}/faults", data=body, timeout=5,
                                   headers={**JSON, "Origin": "https://evil.example"})
    assert json_from_page.status_code == 403
    read_from_page = requests.get(f"{url}/history", headers={"Origin": "null"}, timeout=5)
    assert read_from_page.status_code == 403
    rebound = requests.get(f"{url}/history", headers={"Host": f"evil.example:{gateway.control_port}"}, timeout=5)
    assert rebound.status_code == 403 and "Host" in rebound.json()["error"]
    assert gateway.faults() == []
    local_page = requests.post(f"{url}/faults", data=body, timeout=5,
                               headers={**JSON, "Origin": "http://localhost:3000"})
    assert local_page.status_code == 201
    charset = requests.delete(f"{url}/faults/unanswered", timeout=5,
                              headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 204 and gateway.faults() == []


# --------------------------------------------------------------------------- 3. live accounts


def test_put_config_refuses_a_live_account_without_the_flag(gateway: ThreadedGateway) -> None:
    url = f"{gateway.control_url}/config"
    for body in ({"account": "U1234567"}, {"account": "U1234567", "allow_live_account": True},
                 {"allow_live_account": True}, {"account": "D1234567", "allow_live_account": True}):
        refused = requests.put(url, json=body, timeout=5)
        assert refused.status_code == 400, body
        assert "--allow-live-account" in refused.json()["error"]
    assert gateway.config.account == "DU1234567" and gateway.config.allow_live_account is False
    with pytest.raises(ConfigError, match="--allow-live-account"):
        gateway.update_config(account="U1", allow_live_account=True)
    assert requests.put(url, json={"account": "DF7654321"}, timeout=5).json()["account"] == "DF7654321"
    whole = requests.get(url, timeout=5).json()  # the suite restores the whole config after a scenario
    assert requests.put(url, json=whole, timeout=5).status_code == 200


def test_put_config_may_present_a_live_account_when_started_with_the_flag(make_gateway) -> None:
    gateway = make_gateway(allow_live_account=True)
    changed = requests.put(f"{gateway.control_url}/config", json={"account": "U7654321"}, timeout=5)
    assert changed.status_code == 200 and changed.json()["account"] == "U7654321"


def test_paper_accounts_are_du_and_df() -> None:
    for account in ("DU1", "DF2", "du3"):
        assert GatewayConfig(account=account).account == account
    for account in ("U1234567", "D1234567", "DI1234567", "F1234567"):
        with pytest.raises(ConfigError, match="not a paper account"):
            GatewayConfig(account=account)


# --------------------------------------------------------------------------- 5. ranges and request types


@pytest.mark.parametrize("body, message", [
    ({"kind": "delay", "attributes": {"latency_ms": 600_001}}, "delay.latency_ms must be within 0..600000"),
    ({"kind": "delay", "attributes": {"latency_ms": -1}}, "delay.latency_ms must be within 0..600000"),
    ({"kind": "error", "attributes": {"code": 5}}, "error.code must be within 100..99999"),
    ({"kind": "error", "attributes": {"req_id": -2}}, "error.req_id must be within -1..2147483647"),
    ({"kind": "restart", "attributes": {"down_s": 86_401}}, "restart.down_s must be within 0..86400"),
    ({"kind": "restart", "attributes": {"down_s": 10 ** 400}}, "restart.down_s must be within 0..86400"),
    ({"kind": "connectivity_lost", "attributes": {"restored_code": 1100}}, "within 1101..1102"),
    ({"kind": "unanswered", "client_id": -1}, "unanswered.client_id must be within 0..2147483647"),
    ({"kind": "drop_clients", "client_id": 2 ** 31}, "drop_clients.client_id must be within 0..2147483647"),
    ({"kind": "unanswered", "attributes": {"request_types": ["reqCurrentTme"]}}, "'reqCurrentTme'"),
    ({"kind": "delay", "attributes": {"request_types": ["reqHistoricalData", "historical"]}}, "'historical'"),
])
def test_bad_numbers_and_unknown_request_types_get_a_400_naming_the_range(
        control: ControlClient, gateway: ThreadedGateway, body: dict, message: str) -> None:
    with pytest.raises(ControlError, match="400") as error:
        control._call("POST", "/faults", body)
    assert message in str(error.value)
    if "request_types" in str(body):
        assert "known: '*'" in str(error.value) and "reqCurrentTime" in str(error.value)
    assert control.faults() == [] and gateway.faults() == []


def test_non_finite_numbers_are_out_of_range(gateway: ThreadedGateway) -> None:
    url = gateway.control_url
    fault = requests.post(f"{url}/faults", data='{"kind": "delay", "attributes": {"latency_ms": NaN}}',
                          headers=JSON, timeout=5)
    assert fault.status_code == 400 and "integer" in fault.json()["error"]
    restart = requests.post(f"{url}/faults", data='{"kind": "restart", "attributes": {"down_s": Infinity}}',
                            headers=JSON, timeout=5)
    assert restart.status_code == 400 and "0..86400" in restart.json()["error"]
    config = requests.put(f"{url}/config", data='{"window_s": NaN}', headers=JSON, timeout=5)
    assert config.status_code == 400 and "window_s must be within 0..86400" in config.json()["error"]


@pytest.mark.parametrize("body, message", [
    ({"max_clients": 0}, "max_clients must be within 1..1024"),
    ({"max_clients": 5000}, "max_clients must be within 1..1024"),
    ({"window_s": 1e9}, "window_s must be within 0..86400"),
    ({"identical_window_s": 10 ** 400}, "identical_window_s must be within 0..86400"),
    ({"handshake_timeout_s": 0}, "handshake_timeout_s must be within 0.01..3600"),
    ({"next_valid_id": 2 ** 31}, "next_valid_id must be within 1..2147483647"),
    ({"max_frame_bytes": 2 ** 30}, "max_frame_bytes must be within 1..16777216"),
    ({"server_version_max": 99}, "server_version_max must be within 100..178"),
])
def test_config_numbers_out_of_range_get_a_400_naming_the_range(gateway: ThreadedGateway, body: dict,
                                                                 message: str) -> None:
    refused = requests.put(f"{gateway.control_url}/config", json=body, timeout=5)
    assert refused.status_code == 400 and message in refused.json()["error"]
    assert gateway.config == GatewayConfig()


def test_every_numeric_field_has_a_range() -> None:
    for cls in [*faults.fault_kinds(faults.GATEWAY).values(), *faults.fault_kinds(faults.PROXY).values()]:
        for name in faults._numeric_fields(cls):
            low, high = faults.RANGES[name]
            assert low <= high
    hints = typing.get_type_hints(GatewayConfig)
    numeric = {f.name for f in dataclasses.fields(GatewayConfig) if hints[f.name] in (int, float)}
    assert numeric == set(CONFIG_RANGES)
    for name, (low, high) in CONFIG_RANGES.items():  # the defaults lie within their ranges
        assert low <= getattr(GatewayConfig(), name) <= high


def test_the_suite_s_own_faults_and_rules_are_in_range() -> None:
    faults.Restart(down_s=3600.0)       # an outage
    faults.Delay(latency_ms=30_000, request_types=("reqHistoricalData",))
    faults.PushError(code=1100)
    faults.PushError(code=2103)
    GatewayConfig(identical_window_s=2, window_max=100_000)  # the embedded target's compression


# --------------------------------------------------------------------------- 6. ports


@pytest.mark.parametrize("args, words", [
    (("--port", "99999"), ("--port", "99999", "0..65535")),
    (("--port", "-1"), ("--port", "0..65535")),
    (("--port", "http"), ("--port", "0..65535")),
    (("--control-port", "70000"), ("--control-port", "0..65535")),
])
def test_bad_ports_exit_2_with_one_line(args: tuple[str, ...], words: tuple[str, ...]) -> None:
    _one_line_exit_2(_cli("gateway", "--control-port", "0", *args), *words)


@pytest.mark.parametrize("args", [("--port", "65536"), ("--max-clients", "x"), ("--window-s", "nan"),
                                  ("--no-such-flag",), ("--control-token", "a b")])
def test_other_bad_arguments_are_one_line_too(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    from ibtargets.gateway.server import main
    try:
        code = main(["--port", "0", *args])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ib-resilience gateway: "), err
