"""Who may drive the proxy's control API, and what it accepts: tokens, loopback, JSON-only writes, a
loopback upstream unless allowed, ranges on every number, known request types, validated ports."""

from __future__ import annotations

import os
import subprocess

import pytest
import requests
from proxy_fakes import FakeGateway

from ibtargets.common.control import TOKEN_ENV
from ibtargets.common.control_client import ControlClient, ControlError
from ibtargets.common.control_server import ControlBindError
from ibtargets.common.faults import Silent
from ibtargets.common.launch import venv_script
from ibtargets.proxy import ProxyConfig, ThreadedProxy
from ibtargets.proxy.server import build_parser

pytestmark = pytest.mark.timeout(60)

JSON = {"Content-Type": "application/json"}
TOKEN = "proxy-token-0123456789"
CLI_TIMEOUT_S = 30


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``ib-resilience proxy <args>`` as a process that is expected to exit by itself (bounded)."""
    environment = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return subprocess.run([venv_script("ib-resilience"), "proxy", *args], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, env=environment)


def _one_line_exit_2(run: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("ib-resilience proxy: ") and "Traceback" not in run.stderr
    assert "READY" not in run.stdout
    for word in words:
        assert word in lines[0], lines[0]


# --------------------------------------------------------------------------- 1. binding and tokens


def test_non_loopback_control_bind_without_a_token_exits_2() -> None:
    run = _cli("--upstream", "127.0.0.1:4002", "--control-host", "0.0.0.0")
    _one_line_exit_2(run, "--control-token", TOKEN_ENV)


def test_the_library_refuses_a_non_loopback_control_bind_without_a_token(fake_gateway: FakeGateway) -> None:
    proxy = ThreadedProxy("127.0.0.1", fake_gateway.port, control_host="::")
    with pytest.raises(RuntimeError) as error:
        proxy.start()
    assert isinstance(error.value.__cause__, ControlBindError)


def test_with_a_token_a_request_without_it_gets_401_and_with_it_works(make_proxy, fake_gateway: FakeGateway,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = make_proxy(fake_gateway.port, control_token=TOKEN)
    url = proxy.control_url
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    refused = requests.post(f"{url}/faults", json={"kind": "silent"}, timeout=5)
    assert refused.status_code == 401 and "token" in refused.json()["error"]
    assert requests.get(f"{url}/listen", timeout=5).status_code == 401
    with pytest.raises(ControlError, match="401"):
        ControlClient(url).apply(Silent())
    assert proxy.faults() == []
    client = ControlClient(url, token=TOKEN)
    client.apply(Silent(request_types=("reqCurrentTime",)))
    assert [f["kind"] for f in client.faults()] == ["silent"]
    assert client.listen_address() == ("127.0.0.1", proxy.port)
    client.heal("silent")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert ControlClient(url).faults() == []  # the token from the environment


# --------------------------------------------------------------------------- 2. browsers


def test_a_cross_origin_plain_text_post_is_refused(proxy: ThreadedProxy) -> None:
    url = proxy.control_url
    body = '{"kind": "refuse", "attributes": {"keep_existing": false}}'
    page = requests.post(f"{url}/faults", data=body, timeout=5,
                         headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://evil.example"})
    assert page.status_code == 403
    plain = requests.post(f"{url}/faults", data=body, headers={"Content-Type": "text/plain"}, timeout=5)
    assert plain.status_code == 415
    upstream = requests.put(f"{url}/upstream", data='{"host": "127.0.0.1", "port": 1}', timeout=5)
    assert upstream.status_code == 415
    assert proxy.faults() == [] and proxy.proxy.upstream[1] != 1
    assert requests.get(f"{url}/upstream", headers={"Origin": "http://evil.example"}, timeout=5).status_code == 403
    accepted = requests.post(f"{url}/faults", data='{"kind": "blackhole"}', timeout=5,
                             headers={**JSON, "Origin": "http://127.0.0.1:8080"})
    assert accepted.status_code == 201
    assert requests.post(f"{url}/reset", headers=JSON, timeout=5).status_code == 204
    assert proxy.faults() == []


# --------------------------------------------------------------------------- 4. upstream


def test_put_upstream_refuses_a_non_loopback_host(proxy: ThreadedProxy) -> None:
    control = ControlClient(proxy.control_url)
    before = proxy.proxy.upstream
    for host in ("10.1.2.3", "example.com", "0.0.0.0", "192.168.0.10"):
        with pytest.raises(ControlError, match="400") as error:
            control._call("PUT", "/upstream", {"host": host, "port": 4002})
        assert "--allow-remote-upstream" in str(error.value) and repr(host) in str(error.value)
    assert proxy.proxy.upstream == before
    with pytest.raises(ValueError, match="--allow-remote-upstream"):
        proxy.set_upstream("10.1.2.3", 4002)
    for host in ("localhost", "::1", "127.0.0.2"):
        assert control._call("PUT", "/upstream", {"host": host, "port": 4002}) == {"host": host, "port": 4002}
    assert [e["host"] for e in proxy.history() if e["kind"] == "upstream_changed"] == ["localhost", "::1", "127.0.0.2"]


def test_put_upstream_may_point_elsewhere_when_allowed(make_proxy, fake_gateway: FakeGateway) -> None:
    proxy = make_proxy(fake_gateway.port, config=ProxyConfig(allow_remote_upstream=True))
    control = ControlClient(proxy.control_url)
    assert control._call("PUT", "/upstream", {"host": "10.1.2.3", "port": 4002}) == {"host": "10.1.2.3", "port": 4002}
    assert build_parser().parse_args(["--upstream", "127.0.0.1:1", "--allow-remote-upstream"]).allow_remote_upstream
    assert not build_parser().parse_args(["--upstream", "127.0.0.1:1"]).allow_remote_upstream


# --------------------------------------------------------------------------- 5. ranges and request types


@pytest.mark.parametrize("body, message", [
    ({"kind": "latency", "attributes": {"latency_ms": 600_001}}, "latency.latency_ms must be within 0..600000"),
    ({"kind": "latency", "attributes": {"jitter_ms": -5}}, "latency.jitter_ms must be within 0..600000"),
    ({"kind": "bandwidth", "attributes": {"rate_kbps": 0}}, "bandwidth.rate_kbps must be within 1..1000000"),
    ({"kind": "slicer", "attributes": {"max_chunk_bytes": 0}}, "slicer.max_chunk_bytes must be within 1..16777216"),
    ({"kind": "slicer", "attributes": {"delay_us": 10 ** 12}}, "slicer.delay_us must be within 0..10000000"),
    ({"kind": "silent", "client_id": -7}, "silent.client_id must be within 0..2147483647"),
    ({"kind": "reset", "client_id": 2 ** 40}, "reset.client_id must be within 0..2147483647"),
    ({"kind": "silent", "attributes": {"request_types": ["reqCurentTime"]}}, "'reqCurentTime'"),
    ({"kind": "silent", "attributes": {"request_types": []}}, "at least one request type"),
])
def test_bad_numbers_and_unknown_request_types_get_a_400(proxy: ThreadedProxy, body: dict, message: str) -> None:
    control = ControlClient(proxy.control_url)
    with pytest.raises(ControlError, match="400") as error:
        control._call("POST", "/faults", body)
    assert message in str(error.value)
    if "reqCurentTime" in str(body):
        assert "known: '*'" in str(error.value) and "reqCurrentTime" in str(error.value)
    assert control.faults() == []


# --------------------------------------------------------------------------- 6. ports


@pytest.mark.parametrize("args, words", [
    (("--upstream", "127.0.0.1:4002", "--listen", "127.0.0.1:99999"), ("--listen", "0..65535")),
    (("--upstream", "127.0.0.1:99999"), ("--upstream", "0..65535")),
    (("--upstream", "127.0.0.1:4002", "--control-port", "99999"), ("--control-port", "0..65535")),
    (("--upstream", "127.0.0.1:4002", "--control-port", "-3"), ("--control-port", "0..65535")),
])
def test_bad_ports_exit_2_with_one_line(args: tuple[str, ...], words: tuple[str, ...]) -> None:
    _one_line_exit_2(_cli(*args), *words)


@pytest.mark.parametrize("args", [["--upstream", "127.0.0.1:x"], ["--upstream", "127.0.0.1:1", "--control-port", "p"],
                                  ["--upstream", "127.0.0.1:1", "--connect-timeout-s", "nan"], []])
def test_other_bad_arguments_are_one_line_too(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from ibtargets.proxy.server import main
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ib-resilience proxy: "), err
