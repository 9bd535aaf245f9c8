"""The ``refbackend`` CLI through a terminal (pexpect): real answers, clear failures, Ctrl-C, no tracebacks."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest
from backend_helpers import BackendProcess, cli_env, events, free_port, open_connections

from ibtargets.common.faults import Delay, Silent
from ibtargets.gateway import ThreadedGateway
from ibtargets.proxy import ThreadedProxy
from ibtargets.refbackend.cli import LABEL_WIDTH_ENV
from support.cli_reading import number_of
from support.waiting import Bound, eventually

CLI = str(Path(sys.executable).parent / "refbackend")
CLI_BOUND_S = 30.0
FORBIDDEN = ("Traceback", "RuntimeWarning", "never awaited", "Exception ignored")


@dataclass(frozen=True)
class CliRun:
    """One finished CLI run: exit code, everything it printed, how long it took."""

    exit_code: int
    output: str
    elapsed_s: float


def clean(output: str) -> None:
    """No traceback or warning may ever reach the terminal."""
    for word in FORBIDDEN:
        assert word not in output, f"{word!r} in CLI output:\n{output}"


def cli(args: list[str], api_url: str, timeout_s: float = CLI_BOUND_S, env: dict[str, str] | None = None) -> CliRun:
    """Run the CLI in a pseudo-terminal until it exits (bounded); ``env`` adds to its environment."""
    started = time.monotonic()
    child = pexpect.spawn(CLI, args, env={**cli_env(api_url), **(env or {})}, encoding="utf-8", timeout=timeout_s,
                          dimensions=(50, 160))
    try:
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    run = CliRun(child.exitstatus if child.exitstatus is not None else -1, child.before, time.monotonic() - started)
    clean(run.output)
    return run


def test_ib_test_asks_ib_and_passes_with_a_healthy_gateway(backend: BackendProcess,
                                                           gateway: ThreadedGateway) -> None:
    run = cli(["ib", "test", "--symbol", "MSFT"], backend.url)
    assert run.exit_code == 0, run.output
    assert "MICROSOFT" in run.output and "passed" in run.output
    assert events(gateway, "request", type="reqCurrentTime"), "the health probe reached IB"
    asked = events(gateway, "request", type="reqContractDetails")
    assert asked, "the symbol discovery reached IB"
    again = cli(["ib", "test", "-s", "MSFT"], backend.url)
    assert again.exit_code == 0
    assert len(events(gateway, "request", type="reqContractDetails")) > len(asked), "every test asks IB again"


def test_ib_test_fails_clearly_when_ib_is_silent(proxied_backend: BackendProcess, proxy: ThreadedProxy) -> None:
    assert cli(["ib", "test"], proxied_backend.url).exit_code == 0
    proxy.apply(Silent())
    run = cli(["ib", "test"], proxied_backend.url)
    assert run.exit_code != 0 and "not answering" in run.output, run.output
    assert run.elapsed_s < CLI_BOUND_S


def test_ib_test_fails_for_an_unknown_symbol(backend: BackendProcess) -> None:
    run = cli(["ib", "test", "-s", "XXXX"], backend.url)
    assert run.exit_code == 1 and "no security definition for XXXX" in run.output


def test_a_missing_api_is_reported_without_a_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["ib", "test"], ["ib", "status"], ["ib", "cleanup"], ["data", "load", "AAPL"],
                 ["data", "show", "AAPL"]):
        run = cli(args, url)
        assert run.exit_code == 1 and "Could not connect" in run.output and "API" in run.output, (args, run.output)
        assert run.elapsed_s < CLI_BOUND_S


def test_ib_status_prints_the_live_status_and_score(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    backend.api.post("/ib/symbols/discover", json={"symbol": "AAPL"})
    run = cli(["ib", "status", "--format", "json"], backend.url)
    assert run.exit_code == 0
    printed = json.loads(run.output[run.output.index("{"):])
    assert printed["status"]["connection"]["port"] == gateway.port
    assert printed["status"]["pool"]["client_ids_in_use"] == [1]
    assert printed["resilience"]["overall_resilience_score"] == 100.0
    table = cli(["ib", "status", "-v"], backend.url)
    assert table.exit_code == 0 and "resilience score:   100/100" in table.output


@pytest.mark.parametrize("label_width", [None, 1, 30])
def test_ib_status_reads_as_the_live_score_in_either_layout(backend: BackendProcess, gateway: ThreadedGateway,
                                                            label_width: int | None) -> None:
    """The suite's reader finds the score in the default table, and in the one with labels padded to any width."""
    backend.api.post("/ib/symbols/discover", json={"symbol": "AAPL"})
    env = {} if label_width is None else {LABEL_WIDTH_ENV: str(label_width)}
    run = cli(["ib", "status"], backend.url, env=env)
    score = backend.api.get("/ib/resilience").data["overall_resilience_score"]
    assert run.exit_code == 0 and score == 100.0, run.output
    assert ("Resilience score" in run.output) == (label_width is not None), run.output
    assert number_of(run.output, ("resilience", "score")) == score, run.output


def test_ib_cleanup_prints_the_real_count(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    backend.api.post("/ib/symbols/discover", json={"symbol": "AAPL"})
    opened = len(open_connections(gateway))
    run = cli(["ib", "cleanup", "--force"], backend.url)
    assert run.exit_code == 0 and f"Closed {opened} IB connection(s)" in run.output, run.output
    eventually(lambda: not open_connections(gateway), within=Bound.exactly(2.0), describe="connections closed")
    assert "Closed 0 IB connection(s)" in cli(["ib", "cleanup"], backend.url).output


def test_data_load_shows_progress_then_data_show_prints_the_bars(backend: BackendProcess) -> None:
    run = cli(["data", "load", "IBM", "-t", "1d", "-m", "tail"], backend.url)
    assert run.exit_code == 0, run.output
    assert "%]" in run.output and "Loaded IBM 1d" in run.output
    points = backend.api.get("/data/IBM/1d").data
    assert f"{points['metadata']['points']} bars fetched" in run.output
    show = cli(["data", "show", "IBM", "-r", "3"], backend.url)
    assert show.exit_code == 0 and points["dates"][-1] in show.output
    assert points["dates"][-4] not in show.output, "--rows 3 prints three bars"
    as_json = cli(["data", "load", "MSFT", "-f", "json", "--no-progress"], backend.url)
    assert as_json.exit_code == 0 and "%]" not in as_json.output, as_json.output
    printed = json.loads(as_json.output[as_json.output.index("{"):])
    assert printed["status"] == "completed" and printed["result_summary"]["fetched_bars"] > 0
    missing = cli(["data", "show", "SPY"], backend.url)
    assert missing.exit_code == 1 and "no cached data" in missing.output


def test_ctrl_c_cancels_the_load_and_exits_cleanly(backend: BackendProcess, gateway: ThreadedGateway) -> None:
    gateway.apply(Delay(latency_ms=30000, request_types=("reqHistoricalData",)))
    child = pexpect.spawn(CLI, ["data", "load", "AAPL", "-t", "1d"], env=cli_env(backend.url),
                          encoding="utf-8", timeout=CLI_BOUND_S)
    try:
        child.expect(r"operation (op_\S+)")
        op_id = child.match.group(1)
        eventually(lambda: backend.api.get(f"/operations/{op_id}").data["progress"].get("ib_requests_made"),
                   within=Bound.exactly(10), describe="the load waiting on IB")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    output = child.before
    clean(output)
    assert child.exitstatus == 130 and "cancel" in output.lower(), output
    op = backend.api.get(f"/operations/{op_id}").data
    assert op["status"] == "cancelled" and op["result_summary"]["fetched_bars"] == 0


def test_the_api_address_comes_from_the_option_or_the_environment(backend: BackendProcess) -> None:
    wrong = f"http://127.0.0.1:{free_port()}"
    assert cli(["--api-url", backend.url, "ib", "status"], wrong).exit_code == 0
    assert cli(["ib", "status"], backend.url).exit_code == 0
    assert cli(["ib", "status"], wrong).exit_code == 1


def test_usage_errors_are_short_and_clean(backend: BackendProcess) -> None:
    run = cli(["data", "load", "AAPL", "-t", "7x"], backend.url)
    assert run.exit_code == 2 and "7x" in run.output
    bad_date = cli(["data", "load", "AAPL", "-m", "full", "--start", "yesterday"], backend.url)
    assert bad_date.exit_code == 1 and "start_date" in bad_date.output
