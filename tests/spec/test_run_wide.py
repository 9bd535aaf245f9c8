"""The run-wide invariants on small recorded histories: each passes what the contract allows, fails what it
forbids (with the evidence), says "not exercised" when nothing gave it a chance, and excuses what a fault, the
suite or the backend's stop explains — never more."""

from __future__ import annotations

from history_helpers import LIMITS, Gateway, answer, score

from ibtargets.common.faults import Latency, Restart, Silent, Unanswered
from support.checks import client_ids, operations, output, pool, reports, run_wide, timing, wire
from support.checks.limits import Limits
from support.drivers.cli import CliRun
from support.drivers.faults import FaultWindow
from support.run_history import HistoryWindow, OutputLine, RunHistory
from support.verdict import FAIL, NOT_EXERCISED, PASS

# ----------------------------------------------------------------------------- output


def test_output_blames_a_coroutine_warning_any_time_and_a_traceback_only_outside_trouble():
    g = Gateway()
    g.run.add_output([OutputLine("INFO started", 1.0, 0.5)])
    assert output.nothing_complained(g.window(), LIMITS).status == PASS
    g.run.fault_changed(None, FaultWindow("silence", "proxy", Silent(), 10.0, 12.0))
    g.run.add_output([OutputLine("Traceback (most recent call last):", 13.0, 12.5), OutputLine("  File x", 13.0, 12.5),
                      OutputLine("TimeoutError: IB silent", 13.0, 12.5)])
    assert output.nothing_complained(g.window(), LIMITS).status == PASS   # within the recovery bound of a fault
    g.run.add_output([OutputLine("Traceback (most recent call last):", 40.0, 39.5), OutputLine("ValueError: x", 40.0, 39.5)])
    verdict = output.nothing_complained(g.window(), LIMITS)
    assert verdict.status == FAIL and "ValueError: x" in verdict.violations[0].text
    g = Gateway()
    g.run.add_output([OutputLine("RuntimeWarning: coroutine 'warm' was never awaited", 11.0, 10.5)])
    g.run.fault_changed(None, FaultWindow("silence", "proxy", Silent(), 10.0, 12.0))
    assert output.nothing_complained(g.window(), LIMITS).status == FAIL   # never excused
    g = Gateway()
    g.run.add_cli_run(CliRun(("cli", "ib", "status"), 0, "Traceback (most recent call last):\n", 1.0, started_mono=3.0))
    assert output.nothing_complained(g.window(), LIMITS).status == FAIL
    assert output.nothing_complained(HistoryWindow(0.0, 1.0), LIMITS).status == NOT_EXERCISED


def test_output_judges_a_service_like_the_backend_and_names_it():
    g = Gateway()
    g.run.add_output([OutputLine("INFO backend up", 1.0, 0.5),
                      OutputLine("store.py:9: RuntimeWarning: coroutine 'flush' was never awaited", 2.0, 1.5,
                                 "service store"),
                      OutputLine("Traceback (most recent call last):", 40.0, 39.5, "service store"),
                      OutputLine("INFO backend still up", 40.0, 39.5),
                      OutputLine("KeyError: 'x'", 40.0, 39.5, "service store")])
    verdict = output.nothing_complained(g.window(), LIMITS)
    texts = [v.text for v in verdict.violations]
    assert verdict.status == FAIL and any(t.startswith("the service store printed: store.py:9") for t in texts)
    assert any(t.startswith("the service store printed, outside trouble: Traceback") and "KeyError: 'x'" in t
               for t in texts), texts     # the traceback's own end, not the backend's line between


# ----------------------------------------------------------------------------- bounds and liveness


def test_bounds_measure_each_answer_while_the_backend_serves():
    g = Gateway()
    g.run.add_exchange(answer("/ib/health", 2.0, 4.9))
    assert timing.requests_bounded(g.window(), LIMITS).status == PASS
    g.run.add_exchange(answer("/ib/symbols/discover", 10.0, 5.3))
    verdict = timing.requests_bounded(g.window(), LIMITS)
    assert verdict.status == FAIL and "past 5 s" in verdict.violations[0].text
    g = Gateway()
    g.run.add_exchange(answer("/ib/health", 0.1, 8.0))     # asked before the backend was ready
    g.run.add_exchange(answer("/ib/health", 2.0, 20.0, status=None, timed_out=True))
    verdict = timing.requests_bounded(g.window(), LIMITS)
    assert verdict.status == FAIL and len(verdict.violations) == 1 and "patience" in verdict.violations[0].text


def test_a_burst_above_the_pool_is_heavy_load_and_excused():
    g = Gateway()
    for k in range(3):      # three at once with a pool of two
        g.run.add_exchange(answer("/ib/symbols/discover", 2.0 + k * 0.01, 6.0))
    assert timing.requests_bounded(g.window(), LIMITS).status == NOT_EXERCISED   # nothing left to judge


def test_liveness_finds_a_frozen_stretch_between_scenarios():
    g = Gateway()
    for k in range(10):
        g.run.add_sample(answer("/health", 1.0 + k * 0.5, 0.01))
    assert timing.stays_responsive(g.window(), LIMITS).status == PASS
    g.run.add_sample(answer("/health", 7.0, 5.6))
    verdict = timing.stays_responsive(g.window(), LIMITS)
    assert verdict.status == FAIL and "unresponsive from 7.0 s" in verdict.violations[0].text


# ----------------------------------------------------------------------------- self-reports


def test_the_score_must_fall_during_an_outage_after_the_detection_bound():
    g = Gateway()
    g.run.fault_changed(None, FaultWindow("silence", "proxy", Silent(), 10.0, 30.0))
    g.run.add_exchange(score(12.0, 100))            # before the bound: either answer is right
    g.run.add_exchange(score(16.0, 30))
    assert reports.fall_during_outages(g.window(), LIMITS).status == PASS
    g.run.add_exchange(score(20.0, 100))            # the constant score
    verdict = reports.fall_during_outages(g.window(), LIMITS)
    assert verdict.status == FAIL and "score 100" in verdict.violations[0].text
    g = Gateway()                                   # asked at once, noticed only past the bound
    g.run.fault_changed(None, FaultWindow("silence", "proxy", Silent(), 10.0, 30.0))
    g.run.add_exchange(answer("/ib/health", 10.1, 6.0, status=503))
    verdict = reports.fall_during_outages(g.window(), LIMITS)
    assert verdict.status == FAIL and "arrived 6.10 s into it" in verdict.violations[0].text
    g = Gateway()                                   # a silence that spares the probe is no outage
    g.run.fault_changed(None, FaultWindow("unanswered", "gateway", Unanswered(request_types=("reqHistoricalData",)),
                                          10.0, 30.0))
    g.run.add_exchange(score(20.0, 100))
    assert reports.fall_during_outages(g.window(), LIMITS).status == NOT_EXERCISED


def test_the_score_is_healthy_again_once_nothing_disturbs_the_gateway():
    g = Gateway()
    g.run.fault_changed(None, FaultWindow("restart", "gateway", Restart(down_s=3), 10.0, 13.0))
    g.run.add_exchange(score(18.0, 30))             # within the recovery bound of the heal
    g.run.add_exchange(score(24.0, 100))
    assert reports.healthy_when_quiet(g.window(), LIMITS).status == PASS
    g.run.add_exchange(score(30.0, 30))             # stuck low long after
    assert reports.healthy_when_quiet(g.window(), LIMITS).status == FAIL


# ----------------------------------------------------------------------------- what each connection carried


def test_a_validated_connection_closed_at_once_is_a_discard_unless_trouble_explains_it():
    g = Gateway(idle_timeout_s=300.0)
    conn = g.connect(1.0, 1)
    g.ask(conn, 1.1, "reqCurrentTime", 1.1005)
    g.ask(conn, 1.2, "reqContractDetails", 1.21, req_id=5)
    g.ask(conn, 3.0, "reqCurrentTime", 3.0005)
    g.close(conn, 6.0)                               # the validation timer fired though the answer came in 0.5 ms
    verdict = pool.validated_connections_kept(g.window(), LIMITS)
    assert verdict.status == FAIL and "answered in 1 ms" in verdict.violations[0].text
    g.run.fault_changed(None, FaultWindow("latency", "proxy", Latency(latency_ms=4000), 2.5, 7.0))
    assert pool.validated_connections_kept(g.window(), LIMITS).status == PASS


def test_an_idle_collection_after_a_health_check_is_no_discard():
    g = Gateway()
    conn = g.connect(1.0, 1)
    g.ask(conn, 1.1, "reqCurrentTime", 1.1005)
    g.ask(conn, 1.2, "reqContractDetails", 1.21, req_id=5)
    g.ask(conn, 3.4, "reqCurrentTime", 3.4005)        # a lone validation: a health check
    g.close(conn, 3.5)                                 # idle 2.3 s > 2 s: the collector's close
    assert pool.validated_connections_kept(g.window(), LIMITS).status == PASS


def test_two_callers_on_one_connection_show_as_a_validation_sent_before_an_answer():
    g = Gateway()
    conn = g.connect(1.0, 1)
    g.ask(conn, 1.100, "reqCurrentTime", 1.1005)
    g.ask(conn, 1.101, "reqContractDetails", 1.5, req_id=5)
    g.ask(conn, 2.000, "reqCurrentTime", 2.0005)     # sequential: fine
    assert wire.one_caller_at_a_time(g.window(), LIMITS).status == PASS
    g.ask(conn, 3.0, "reqHistoricalData", 4.0, req_id=6)
    g.ask(conn, 3.5, "reqCurrentTime", 3.5005)       # a health check while a caller waits for its bars
    assert wire.one_caller_at_a_time(g.window(), LIMITS).status == FAIL
    g = Gateway()
    conn = g.connect(1.0, 1)
    g.ask(conn, 1.2, "reqCurrentTime", 1.2005, read_at=1.1999)   # eight callers validating at once: one read
    g.ask(conn, 1.201, "reqCurrentTime", 1.2015, read_at=1.1999)
    assert wire.one_caller_at_a_time(g.window(), LIMITS).status == FAIL


def test_an_answer_the_proxy_held_back_keeps_its_caller_waiting():
    g = Gateway()
    g.run.fault_changed(None, FaultWindow("latency", "proxy", Latency(latency_ms=1000), 0.5, 10.0))
    conn = g.connect(1.0, 1)
    g.ask(conn, 2.0, "reqContractDetails", 2.001, req_id=5)   # the client gets it at 3.001
    g.ask(conn, 2.5, "reqCurrentTime", 2.5005)
    assert wire.one_caller_at_a_time(g.window(), LIMITS).status == FAIL


def test_an_answer_written_while_the_latency_was_being_applied_is_not_assumed_held_back():
    """The split backend's run: the answer was written 1 ms into the proxy's apply call, the caller already had it
    and validated 30 ms later; the latency was only sure to act once the proxy confirmed it."""
    def blamed(confirmed_mono: float) -> str:
        g = Gateway()
        g.run.fault_changed(None, FaultWindow("latency", "proxy", Latency(latency_ms=1000), 2.0, 10.0, confirmed_mono))
        conn = g.connect(1.0, 1)
        g.ask(conn, 1.995, "reqContractDetails", 2.001, req_id=5)
        g.ask(conn, 2.031, "reqCurrentTime", 2.0315)
        return wire.one_caller_at_a_time(g.window(), LIMITS).status
    assert blamed(confirmed_mono=2.004) == PASS
    assert blamed(confirmed_mono=2.0005) == FAIL, "confirmed before the answer was written: it was held back"


def test_the_proxy_jitter_lets_an_answer_arrive_early_and_only_what_cannot_is_blamed():
    def overlap_at(sent_after_s: float) -> str:
        g = Gateway()
        g.run.fault_changed(None, FaultWindow("latency", "proxy", Latency(latency_ms=1000, jitter_ms=200), 0.5, 10.0))
        conn = g.connect(1.0, 1)
        g.ask(conn, 2.0, "reqContractDetails", 2.001, req_id=5)      # the client got it 0.8-1.2 s later
        g.ask(conn, 2.001 + sent_after_s, "reqCurrentTime", 2.001 + sent_after_s + 0.0005)
        return wire.one_caller_at_a_time(g.window(), LIMITS).status
    assert overlap_at(0.76) == PASS and overlap_at(0.70) == FAIL     # 0.8 s less 50 ms of doubt


def test_a_connection_idle_past_the_timeout_and_an_interval_is_a_leak():
    g = Gateway()
    conn = g.connect(1.0, 1)
    g.ask(conn, 1.1, "reqCurrentTime", 1.1005)
    g.ask(conn, 1.2, "reqHistoricalData", None, req_id=5)  # swallowed: its caller waits until the cancel
    g.ask(conn, 8.0, "cancelHistoricalData", None, req_id=5)
    g.close(conn, 9.0)
    assert pool.idle_connections_collected(g.window(), LIMITS).status == NOT_EXERCISED   # never idle 2 s
    leak = g.connect(10.0, 2)
    g.ask(leak, 10.1, "reqCurrentTime", 10.1005)
    g.ask(leak, 10.2, "reqContractDetails", 10.21, req_id=6)
    for tick in range(11, 40, 5):                          # lone health checks are not uses
        g.ask(leak, float(tick), "reqCurrentTime", tick + 0.0005)
    verdict = pool.idle_connections_collected(g.window(40.0), LIMITS)
    assert verdict.status == FAIL and "conn 2 (client 2) unused from 10.2 s" in verdict.violations[0].text


def test_the_pool_limit_and_the_client_id_rules_over_the_whole_run():
    g = Gateway()
    a, b = g.connect(1.0, 1), g.connect(1.1, 2)
    assert pool.pool_limit(g.window(), LIMITS).status == PASS
    assert client_ids.client_id_rules(g.window(), LIMITS).status == PASS
    g.connect(1.2, 3)
    assert pool.pool_limit(g.window(), LIMITS).status == FAIL
    g.close(a, 2.0)
    g.close(b, 2.1)
    g.connect(5.0, 4)                                  # 1 and 2 free for seconds: a freed ID not used again
    verdict = client_ids.client_id_rules(g.window(), LIMITS)
    assert verdict.status == FAIL and "client ID 1 was free" in verdict.violations[0].text
    squatted = Gateway()
    own = squatted.connect(1.0, 1)
    squatted.run.is_own = lambda peer, opened: peer.endswith(f":{40000 + own}")
    squatted.connect(2.0, 1, accepted=False)           # 326 on the preferred ID ...
    squatted.connect(2.1, 1, accepted=False)           # ... and the same ID again, not the next
    verdict = client_ids.client_id_rules(squatted.window(), LIMITS)
    assert verdict.status == FAIL and "tried it again (1) before the next one" in verdict.violations[0].text
    fallback = Gateway()
    held = fallback.connect(1.0, 1)
    fallback.run.is_own = lambda peer, opened: peer.endswith(f":{40000 + held}")
    fallback.connect(2.0, 1, accepted=False)
    fallback.connect(2.1, 2)                         # the next one: fine
    assert client_ids.client_id_rules(fallback.window(), LIMITS).status == PASS
    gave_up = Gateway()
    held = gave_up.connect(1.0, 1)
    gave_up.run.is_own = lambda peer, opened: peer.endswith(f":{40000 + held}")
    gave_up.connect(2.0, 1, accepted=False)          # and nothing after it: no fallback
    verdict = client_ids.client_id_rules(gave_up.window(), LIMITS)
    assert verdict.status == FAIL and "none above it" in verdict.violations[0].text


def test_a_cancel_must_end_within_the_api_bound_and_the_cli_must_not_say_it_failed():
    g = Gateway()
    g.run.add_exchange(answer("/operations/op1", 2.0, 0.1, method="DELETE"))
    g.run.add_exchange(answer("/operations/op1", 8.0, 0.1, body={"success": True, "data": {"status": "cancelled"}}))
    assert operations.cancels_honoured(g.window(), LIMITS).status == PASS
    g.run.add_cli_run(CliRun(("cli", "data", "load", "MSFT"), 1, "Failed to cancel operation\n", 16.5,
                             interrupted=True, started_mono=20.0, interrupted_mono=20.5))
    verdict = operations.cancels_honoured(g.window(), LIMITS)
    assert verdict.status == FAIL and len(verdict.violations) == 2   # 16 s after Ctrl-C, and what it printed


def test_every_invariant_is_judged_and_a_recorded_history_gives_the_same_verdicts_again():
    g = Gateway()
    conn = g.connect(1.0, 1)
    g.ask(conn, 1.1, "reqCurrentTime", 1.1005)
    g.close(conn, 3.0)
    window = g.window(10.0)
    first = run_wide.judge(window, LIMITS)
    assert [j.invariant.key for j in first] == [i.key for i in run_wide.INVARIANTS]
    again = run_wide.judge(HistoryWindow.from_json(window.to_json()), Limits.from_json(LIMITS.to_json()))
    assert [(j.verdict.status, j.verdict.message) for j in again] == [(j.verdict.status, j.verdict.message) for j in first]


def test_liveness_samples_only_the_life_that_serves():
    """The sampler asks where the backend serves now: nowhere while it starts or stops (a sample of the old address
    after a restart would read as a crash)."""
    run = RunHistory(started_mono=0.0)
    assert run.serving_url() == ""
    run.life_began(0.0, 0.5, api_base_url="http://127.0.0.1:1")
    assert run.serving_url() == "http://127.0.0.1:1"
    run.life_ending(5.0, 5.5)
    assert run.serving_url() == ""
    run.life_began(6.0, None)                     # started, not answering yet
    assert run.serving_url() == ""
