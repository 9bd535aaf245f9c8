"""The nemesis's verdicts over hand-made windows of a run history: each family's checker (support/checks), overlapping
faults, what is not judged, and a written history judged again to the same verdicts."""

from __future__ import annotations

from ibtargets.common.control_client import ControlClient
from ibtargets.common.faults import Latency, Restart, Silent
from support.checks import cleanup, output, pool, recovery, reports, spans, timing
from support.checks.cache import CacheRead, cached_bars_true
from support.checks.limits import Limits
from support.drivers.api import ApiResponse
from support.drivers.cli import CliRun
from support.drivers.faults import FaultWindow
from support.drivers.history import OwnConnections
from support.nemesis import judge
from support.nemesis.outcome import RunResult
from support.nemesis.record import FaultNote, NemesisRun, read_history, write_history
from support.nemesis.runner import judge_again, write_evidence
from support.nemesis.schedule import FaultSpec, Schedule
from support.run_history import HistoryWindow, OutputLine, RunHistory
from support.settings import Settings
from support.verdict import FAIL, NOT_EXERCISED, PASS

T0 = 1000.0
LIMITS = Limits.from_settings(Settings())
#: The local port of the suite's own connection in these histories.
OWN_PORT = 40009


def history() -> RunHistory:
    """A run history whose backend serves from before T0, reading the simulator's record (fed by hand)."""
    run = RunHistory(started_mono=T0 - 10.0)
    run.attach_records(ControlClient("http://127.0.0.1:9"), None)  # never synced: the events are added by hand
    run.is_own = OwnConnections({OWN_PORT})
    run.life_began(T0 - 5.0, T0 - 4.0)
    return run


def window(run: RunHistory, end: float = 100.0) -> HistoryWindow:
    return run.window(T0, T0 + end)


def fault(run: RunHistory, value, start: float, end: float | None) -> None:
    applied = FaultWindow(value.kind, value.plane, value, T0 + start)
    run.fault_changed(None, applied)
    if end is not None:
        run.fault_changed(applied, FaultWindow(value.kind, value.plane, value, T0 + start, T0 + end))


def exchange(run: RunHistory, method: str, path: str, start: float, took: float = 0.1, status: int | None = 200,
             data: dict | None = None, timed_out: bool = False) -> ApiResponse:
    body = None if status is None else {"success": status == 200, "data": data or {}}
    response = ApiResponse(method, path, None, status, body, took, T0 + start, "", timed_out)
    run.add_exchange(response)
    return response


def read(run: RunHistory, start: float, score: float, took: float = 0.1) -> None:
    exchange(run, "GET", "/ib/resilience", start, took, data={"overall_resilience_score": score})


def conn(run: RunHistory, conn_id: int, client_id: int, opened: float, closed: float | None = None,
         requests: tuple = (), port: int | None = None) -> None:
    """A connection of the simulator's record: accepted at ``opened``, ``requests`` as (arrived, type, answered)."""
    peer = f"127.0.0.1:{port or 41000 + conn_id}"
    events = [{"kind": "connect", "conn_id": conn_id, "peer": peer, "mono": T0 + opened},
              {"kind": "start_api", "conn_id": conn_id, "client_id": client_id, "mono": T0 + opened}]
    for arrived, kind, answered in requests:
        events.append({"kind": "request", "conn_id": conn_id, "type": kind, "req_id": None, "mono": T0 + arrived,
                       "read_mono": T0 + arrived})
        if answered is not None:
            events.append({"kind": "response", "conn_id": conn_id, "type": kind, "req_id": None,
                           "mono": T0 + answered})
    if closed is not None:
        events.append({"kind": "disconnect", "conn_id": conn_id, "client_id": client_id, "mono": T0 + closed,
                       "reason": "client closed"})
    run.add_raw("gateway", sorted(events, key=lambda e: e["mono"]))


# ----------------------------------------------------------------------------- the score (reports_fall, reports_recover)


def test_score_must_fall_during_an_outage_and_come_back_after_it():
    run = history()
    fault(run, Silent(), 10.0, 30.0)
    for t in (12.0, 16.0, 25.0):      # 12 s: before the detection bound, not judged
        read(run, t, 100.0 if t == 12.0 else 30.0)
    read(run, 45.0, 100.0)
    assert reports.fall_during_outages(window(run), LIMITS).status == PASS
    assert reports.healthy_when_quiet(window(run), LIMITS).status == PASS
    read(run, 26.0, 100.0)             # still 100 deep in the outage
    read(run, 50.0, 65.0)              # low 20 s after the heal with nothing on
    fell, recovered = reports.fall_during_outages(window(run), LIMITS), reports.healthy_when_quiet(window(run), LIMITS)
    assert fell.status == FAIL and len(fell.violations) == 1
    assert recovered.status == FAIL and len(recovered.violations) == 1


def test_recovery_is_not_claimed_while_another_fault_is_on():
    run = history()
    fault(run, Silent(), 10.0, 20.0)
    fault(run, Latency(latency_ms=300), 15.0, 45.0)
    read(run, 30.0, 30.0)              # 10 s after the silence, but the latency is still on
    read(run, 44.0, 30.0)              # the latency ended at 45: still within its recovery bound
    assert reports.healthy_when_quiet(window(run), LIMITS).status == NOT_EXERCISED
    read(run, 56.0, 30.0)              # 11 s after the latency ended, nothing on: must be back
    assert reports.healthy_when_quiet(window(run), LIMITS).status == FAIL


def test_overlapping_outages_are_one_outage():
    run = history()
    fault(run, Restart(down_s=4.0), 10.0, 14.0)
    fault(run, Silent(), 13.0, 23.0)
    read(run, 16.0, 30.0)
    read(run, 21.0, 30.0)
    assert spans.outages(window(run)) == [(T0 + 10.0, T0 + 23.0)]
    assert reports.fall_during_outages(window(run), LIMITS).status == PASS
    read(run, 22.0, 100.0)
    assert reports.fall_during_outages(window(run), LIMITS).status == FAIL


def test_a_cleanup_outside_the_schedule_is_a_disturbance_too():
    run = history()
    fault(run, Silent(), 10.0, 15.0)
    exchange(run, "POST", "/ib/cleanup", 40.0, 0.05)   # the run's final cleanup: not a scheduled fault
    read(run, 40.2, 30.0)              # right after it: not judged
    assert reports.healthy_when_quiet(window(run), LIMITS).status == NOT_EXERCISED
    read(run, 51.0, 30.0)
    assert reports.healthy_when_quiet(window(run), LIMITS).status == FAIL


# ----------------------------------------------------------------------------- cleanup


def test_a_connection_left_open_after_a_cleanup_holds_its_client_id():
    run = history()
    exchange(run, "POST", "/ib/cleanup", 30.0, 0.05, data={"connections_closed": 2})
    conn(run, 1, 1, 5.0, closed=30.1)
    conn(run, 2, 2, 6.0, closed=34.0, requests=((29.0, "reqCurrentTime", 29.01),
                                                (29.02, "reqHistoricalData", 33.0)))  # in use: closes on release
    conn(run, 3, 3, 28.0)                                         # opened during the cleanup: not judged
    verdict = cleanup.cleanup_closes_pool(window(run), LIMITS)
    assert verdict.status == PASS and verdict.exercised == 2
    conn(run, 4, 4, 10.0)                                         # pooled, never closed
    verdict = cleanup.cleanup_closes_pool(window(run), LIMITS)
    assert verdict.status == FAIL and "client 4" in verdict.violations[0].text


def test_a_cleanup_whose_deadline_is_past_the_history_is_not_judged():
    run = history()
    conn(run, 4, 1, 10.0)                                         # pooled, still open when the history ends
    exchange(run, "POST", "/ib/cleanup", 97.0, 0.05)              # its connections may close until 102.05 s
    assert cleanup.cleanup_closes_pool(window(run), LIMITS).status == NOT_EXERCISED
    assert cleanup.cleanup_closes_pool(window(run, end=103.0), LIMITS).status == FAIL


def test_a_cleanup_through_the_cli_counts_and_a_failed_one_claims_nothing():
    run = history()
    conn(run, 4, 4, 10.0)                                         # pooled, never closed
    exchange(run, "POST", "/ib/cleanup", 30.0, 0.05, status=503)
    assert cleanup.cleanup_closes_pool(window(run), LIMITS).status == NOT_EXERCISED
    run.add_cli_run(CliRun(("/venv/bin/refbackend", "ib", "cleanup"), 0, "closed 1 connection\n", 1.5,
                           started_mono=T0 + 40.0))
    verdict = cleanup.cleanup_closes_pool(window(run), LIMITS)
    assert verdict.status == FAIL and "cleanup (CLI)" in verdict.violations[0].text


def test_an_answer_the_proxy_dropped_keeps_its_connection_in_use():
    """A historical-data request answered at the gateway while the proxy dropped answers: its client still waits, so
    the connection may stay open up to the load bound; answered and delivered, it must close 5 s after."""
    def one(silent: bool) -> str:
        run = history()
        if silent:
            fault(run, Silent(), 29.0, 32.0)
        exchange(run, "POST", "/ib/cleanup", 30.0, 0.05)
        conn(run, 5, 1, 10.0, closed=40.0, requests=((29.5, "reqHistoricalData", 30.5),))
        return cleanup.cleanup_closes_pool(window(run, end=200.0), LIMITS).status
    assert one(silent=False) == FAIL
    assert one(silent=True) == PASS


# ----------------------------------------------------------------------------- the pool


def test_the_pool_limit_counts_the_backend_only():
    run = history()
    for n in range(5):
        conn(run, n + 1, n + 1, 10.0 + n)
    conn(run, 9, 900, 20.0, port=OWN_PORT)                         # the suite's own probe
    assert pool.pool_limit(window(run), LIMITS).status == PASS
    conn(run, 6, 6, 21.0)
    assert pool.pool_limit(window(run), LIMITS).status == FAIL


def test_connections_opened_while_the_backend_got_ready_count_from_the_start():
    run = history()
    conn(run, 1, 1, -3.0)                    # opened before the schedule's second 0, still open
    conn(run, 2, 2, -2.0, closed=-1.0)       # opened and closed before it
    for n in range(4):
        conn(run, n + 3, n + 3, 10.0 + n)
    steps = pool.pool_size_steps(window(run))
    assert steps[0] == (T0, 1) and steps[-1] == (T0 + 13.0, 5)
    assert pool.pool_limit(window(run), LIMITS).status == PASS
    conn(run, 7, 7, 20.0)
    assert pool.pool_limit(window(run), LIMITS).status == FAIL


# ----------------------------------------------------------------------------- bounds, recovery, output, cache


def test_request_bounds_follow_what_the_request_is():
    run = history()
    exchange(run, "POST", "/ib/symbols/discover", 1.0, 3.9, status=503)
    exchange(run, "POST", "/data/load", 10.0, 10.0)
    conn(run, 5, 1, 5.0, requests=((11.0, "reqHistoricalData", 19.0),))  # it asked IB for bars: the load bound
    run.add_cli_run(CliRun(("refbackend", "ib", "test"), 1, "", 20.0, started_mono=T0 + 30.0))
    assert timing.requests_bounded(window(run), LIMITS).status == PASS
    exchange(run, "POST", "/data/load", 60.0, 6.0, status=503)           # never asked IB for bars: the API bound
    exchange(run, "GET", "/ib/status", 70.0, 20.0, status=None, timed_out=True)
    verdict = timing.requests_bounded(window(run), LIMITS)
    assert verdict.status == FAIL and len(verdict.violations) == 2


def test_recovery_needs_a_discovery_that_reached_ib_in_time():
    run = history()
    fault(run, Silent(), 10.0, 20.0)
    healed = T0 + 20.0
    exchange(run, "POST", "/ib/symbols/discover", 20.5, 3.0, status=503)
    assert recovery.served_after_heal(window(run), LIMITS, healed).status == FAIL
    found = {"symbol_info": {"symbol": "MSFT"}}
    exchange(run, "POST", "/ib/symbols/discover", 24.0, 0.2, data=found)  # from the cache: IB never asked
    assert recovery.served_after_heal(window(run), LIMITS, healed).status == FAIL
    exchange(run, "POST", "/ib/symbols/discover", 25.0, 0.2, data=found)
    conn(run, 6, 1, 21.0, requests=((25.1, "reqContractDetails", 25.15),))
    verdict = recovery.served_after_heal(window(run), LIMITS, healed)
    assert verdict.status == PASS, verdict.message
    late = history()
    late.add_exchange(ApiResponse("POST", "/ib/symbols/discover", None, 200, {"data": found}, 0.2, T0 + 31.0))
    conn(late, 6, 1, 21.0, requests=((31.1, "reqContractDetails", 31.15),))
    assert recovery.served_after_heal(window(late), LIMITS, healed).status == FAIL   # 11.2 s after the heal


def test_output_complaints_are_found_in_cli_transcripts_and_the_backend():
    run = history()
    run.add_cli_run(CliRun(("refbackend", "ib", "status"), 0, "score 100\n", 1.0, started_mono=T0))
    run.add_output([OutputLine("INFO connected", T0 + 2.0, T0 + 1.0),
                    OutputLine("WARNING gateway closed the connection", T0 + 2.0, T0 + 1.0)])
    assert output.nothing_complained(window(run), LIMITS).status == PASS
    run.add_output([OutputLine("sys:1: RuntimeWarning: coroutine 'x' was never awaited", T0 + 3.0, T0 + 2.0)])
    verdict = output.nothing_complained(window(run), LIMITS)
    assert verdict.status == FAIL and verdict.first_at() == T0 + 3.0


def test_every_cached_bar_must_be_one_ib_served():
    good = CacheRead("AAPL", "daily", "1d", 60)
    assert cached_bars_true([good, CacheRead("IBM", "hourly", "1h")], T0).status == PASS
    assert cached_bars_true([CacheRead("IBM", "hourly", "1h")], T0).status == NOT_EXERCISED
    wrong = CacheRead("MSFT", "daily", "1d", 60, ("2024-01-03: cached close 1.0, IB 2.0",))
    verdict = cached_bars_true([good, wrong], T0 + 5)
    assert verdict.status == FAIL and "MSFT daily: 1 cached bar(s)" in verdict.violations[0].text
    unreadable = CacheRead("SPY", "daily", "1d", error="the cache could not be read: HTTP 500")
    assert cached_bars_true([good, unreadable], T0).status == FAIL


# ----------------------------------------------------------------------------- the judge, written and read again


def _run_of(run: RunHistory, end: float = 100.0) -> NemesisRun:
    schedule = Schedule(1, end, (FaultSpec(1, "silence", 10.0, 20.0), FaultSpec(2, "cleanup", 40.0, 0.0, {"via": "api"})))
    return NemesisRun(schedule, T0, T0 + end, final_heal_mono=T0 + 30.0,
                      faults=(FaultNote(1, T0 + 10.0, T0 + 30.0), FaultNote(2, T0 + 40.0, T0 + 40.05, note="HTTP 200")),
                      cache=(CacheRead("AAPL", "daily", "1d", 3, ("2024-01-03: not served",)),), reads_mono=T0 + end,
                      notes=("a note",))


def _failing_history() -> RunHistory:
    run = history()
    fault(run, Silent(), 10.0, 30.0)
    read(run, 16.0, 100.0)                                        # the score stayed healthy in an outage
    exchange(run, "POST", "/ib/cleanup", 40.0, 0.05)
    conn(run, 4, 1, 10.0)                                         # pooled, never closed
    run.add_output([OutputLine("RuntimeWarning: coroutine 'x' was never awaited", T0 + 50.0, T0 + 49.0)])
    return run


def test_the_judge_takes_every_family_from_the_checkers_and_only_failures_fail_the_run():
    run = _failing_history()
    verdicts = judge.judge(window(run), _run_of(run), LIMITS)
    assert tuple(verdicts) == judge.FAMILIES and len(verdicts) == 14
    failed = sorted(f for f, v in verdicts.items() if v.status == FAIL)
    assert failed == ["cached_bars", "cleanup", "output", "recovery", "reports_fall"], verdicts
    result = RunResult(window(run), _run_of(run), verdicts, None, 0.0, LIMITS)
    assert result.failed == sorted(failed, key=judge.FAMILIES.index)
    assert verdicts["cancels"].status == NOT_EXERCISED and "cancels" not in result.failed
    assert abs(result.first_violation_s() - 16.1) < 1e-9   # the self-report that said IB was fine, when it arrived
    assert "conn 4 (client 1)" in result.explain("cleanup")


def test_a_client_id_choice_a_fault_confused_is_excused_and_only_that():
    """A handshake a fault cut reads to the client library as a refused ID: the backend moves on to the next ID
    while the gateway saw the lower one free. Not judged during a disruption and the 2 s after it only."""
    def client_ids(*accepted_at: float):
        run = history()
        fault(run, Restart(down_s=2.0), 20.0, 22.0)
        fault(run, Silent(), 18.0, 26.0)
        for n, at in enumerate(accepted_at):
            conn(run, n + 1, 2, at, closed=at + 1.0)              # ID 2 while ID 1 is free at the gateway
        return judge.judge(window(run), _run_of(run), LIMITS)["client_ids"]
    assert client_ids(24.0).status != FAIL                        # during the silence: not judged
    assert client_ids(27.5).status != FAIL                        # just after it (a cut handshake's aftermath)
    assert client_ids(34.0).status == FAIL                        # 8 s after every fault: judged
    assert client_ids(60.0).status == FAIL                        # 34 s after every fault: broken
    both = client_ids(24.0, 60.0)
    assert both.status == FAIL and len(both.violations) == 1


def test_a_written_history_reads_back_to_the_same_verdicts(tmp_path):
    run = _failing_history()
    nemesis = _run_of(run)
    before = judge.judge(window(run), nemesis, LIMITS)
    written = write_history(tmp_path / "history.json", window(run), nemesis, LIMITS)
    again_window, again_run, again_limits = read_history(written)
    assert again_window == window(run) and again_run == nemesis and again_limits == LIMITS
    write_evidence(RunResult(window(run), nemesis, before, tmp_path, 1.0, LIMITS))
    judged = judge_again(tmp_path)
    assert {f: (v.status, len(v.violations)) for f, v in before.items()} == \
        {f: (v.status, len(v.violations)) for f, v in judged.verdicts.items()}
    assert (tmp_path / "report.md").read_text().count("**FAIL**") == len(judged.failed)
    assert (tmp_path / "timeline.png").stat().st_size > 10_000
