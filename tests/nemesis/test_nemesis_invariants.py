"""Checkers over hand-made histories: each invariant, overlapping faults, and what is not judged."""

from datetime import UTC

from support.nemesis import invariants
from support.nemesis.invariants import Bounds
from support.nemesis.record import FaultRecord, History, Op
from support.nemesis.schedule import FaultSpec, Schedule

T0 = 1000.0


def history(*faults: tuple[str, float, float, dict], end: float = 100.0) -> History:
    specs = [FaultSpec(i + 1, kind, start, duration, params) for i, (kind, start, duration, params) in enumerate(faults)]
    h = History(Schedule(1, end, tuple(specs)))
    h.origin, h.finished, h.final_heal = T0, T0 + end, T0 + max((s.end_s for s in specs), default=0.0)
    for s in specs:
        h.add_fault(FaultRecord(s, T0 + s.start_s, T0 + s.end_s))
    return h


def read(h: History, start: float, score: float, took: float = 0.1) -> None:
    h.add_op(Op("sampler", "resilience", T0 + start, T0 + start + took, True, 200, False, {"score": score}))


def test_score_must_fall_during_an_outage_and_come_back_after_it():
    h = history(("silence", 10.0, 20.0, {}))
    for t in (12.0, 16.0, 25.0):      # 12 s: before the detection bound, not judged
        read(h, t, 100.0 if t == 12.0 else 30.0)
    read(h, 45.0, 100.0)
    assert invariants.score(h, Bounds())
    read(h, 26.0, 100.0)               # still 100 deep in the outage
    read(h, 50.0, 65.0)                # low 20 s after the heal with nothing on
    verdict = invariants.score(h, Bounds())
    assert not verdict and len(verdict.violations) == 2


def test_recovery_is_not_claimed_while_another_fault_is_on():
    h = history(("silence", 10.0, 10.0, {}), ("latency", 15.0, 30.0, {"latency_ms": 300}))
    read(h, 30.0, 30.0)                # 10 s after the silence, but the latency is still on
    read(h, 44.0, 30.0)                # the latency ended at 45: still within its recovery bound
    assert invariants.score(h, Bounds())
    read(h, 56.0, 30.0)                # 11 s after the latency ended, nothing on: must be back
    assert not invariants.score(h, Bounds())


def test_overlapping_outages_are_one_outage():
    h = history(("restart", 10.0, 4.0, {}), ("silence", 13.0, 10.0, {}))
    read(h, 16.0, 30.0)
    read(h, 21.0, 30.0)
    assert invariants.outage_intervals(h.faults, h.finished) == [(T0 + 10.0, T0 + 23.0)]
    assert invariants.score(h, Bounds())
    read(h, 22.0, 100.0)
    assert not invariants.score(h, Bounds())


def gateway_conn(h: History, conn_id: int, client_id: int, opened: float, closed: float | None = None,
                 requests: tuple = ()) -> None:
    events = [{"kind": "connect", "conn_id": conn_id, "peer": f"127.0.0.1:{40000 + conn_id}", "mono": T0 + opened},
              {"kind": "start_api", "conn_id": conn_id, "client_id": client_id, "mono": T0 + opened}]
    for sent, kind, answered in requests:
        events.append({"kind": "request", "conn_id": conn_id, "type": kind, "req_id": None, "mono": T0 + sent})
        if answered is not None:
            events.append({"kind": "response", "conn_id": conn_id, "type": kind, "req_id": None, "mono": T0 + answered})
    if closed is not None:
        events.append({"kind": "disconnect", "conn_id": conn_id, "client_id": client_id, "mono": T0 + closed})
    h.add_ib_events("gateway", sorted(events, key=lambda e: e["mono"]))


def test_a_connection_left_open_after_a_cleanup_holds_its_client_id():
    h = history(("cleanup", 30.0, 0.0, {"via": "api"}))
    h.add_op(Op("nemesis", "cleanup", T0 + 30.0, T0 + 30.05, True, 200))
    gateway_conn(h, 1, 1, 5.0, closed=30.1)
    gateway_conn(h, 2, 2, 6.0, closed=31.0, requests=((29.0, "reqCurrentTime", 29.01),
                                                      (29.02, "reqHistoricalData", 33.0)))  # in use: closes on release
    gateway_conn(h, 3, 3, 28.0)                                     # opened during the cleanup: not judged
    assert invariants.cleanup(h, Bounds())
    gateway_conn(h, 4, 4, 10.0)                                     # pooled, never closed
    verdict = invariants.cleanup(h, Bounds())
    assert not verdict and "client ID 4" in verdict.violations[0].text


def test_the_pool_limit_counts_the_backend_only():
    h = history()
    for n in range(5):
        gateway_conn(h, n + 1, n + 1, 10.0 + n)
    h.own_ports = {40000 + 9}
    gateway_conn(h, 9, 900, 20.0)                                   # the suite's own probe
    assert invariants.pool_limit(h, Bounds(pool_limit=5))
    gateway_conn(h, 6, 6, 21.0)
    assert not invariants.pool_limit(h, Bounds(pool_limit=5))


def test_connections_opened_while_the_backend_got_ready_count_from_the_start():
    h = history()
    gateway_conn(h, 1, 1, -3.0)                    # opened before the schedule's second 0, still open
    gateway_conn(h, 2, 2, -2.0, closed=-1.0)        # opened and closed before it
    for n in range(4):
        gateway_conn(h, n + 3, n + 3, 10.0 + n)
    assert invariants.pool_size_steps(h)[0] == (T0, 1)
    assert invariants.pool_size_steps(h)[-1] == (T0 + 13.0, 5)
    assert invariants.pool_limit(h, Bounds(pool_limit=5))
    gateway_conn(h, 7, 7, 20.0)
    assert not invariants.pool_limit(h, Bounds(pool_limit=5))


def test_request_bounds_follow_what_the_request_is():
    h = history()
    h.add_op(Op("api-1", "discover", T0 + 1, T0 + 4.9, False, 503))
    h.add_op(Op("api-1", "load_sync", T0 + 10, T0 + 20, True, 200))
    h.add_ib_events("gateway", [{"kind": "request", "conn_id": 5, "type": "reqHistoricalData", "mono": T0 + 11}])
    h.add_op(Op("cli", "cli:ib test", T0 + 30, T0 + 50, False, 1))
    assert invariants.bounds(h, Bounds())
    h.add_op(Op("api-2", "load_sync", T0 + 60, T0 + 66, False, 503))   # never asked IB for bars: API bound
    h.add_op(Op("api-2", "status", T0 + 70, T0 + 90, False, None, True))
    verdict = invariants.bounds(h, Bounds())
    assert len(verdict.violations) == 2


def test_recovery_needs_a_discovery_that_reached_ib_in_time():
    h = history(("silence", 10.0, 10.0, {}))
    h.add_op(Op("final", "discover", T0 + 20.5, T0 + 23.5, False, 503))
    assert not invariants.recovery(h, Bounds())
    h.add_op(Op("final", "discover", T0 + 24.0, T0 + 24.2, True, 200, False, {"found": True}))
    assert invariants.recovery(h, Bounds())


def test_output_complaints_are_found_in_cli_transcripts_and_the_backend():
    h = history()
    h.add_op(Op("cli", "cli:ib status", T0, T0 + 1, True, 0, False, {"output": "score 100\n"}))
    h.backend_output = "INFO connected\nWARNING gateway closed the connection\n"
    assert invariants.output(h, Bounds())
    h.backend_output += "sys:1: RuntimeWarning: coroutine 'x' was never awaited\n"
    assert not invariants.output(h, Bounds())


def test_a_backend_complaint_is_placed_at_its_own_log_time():
    from datetime import datetime
    h = history()
    # The simulator's record gives the wall clock of one monotonic instant: T0 + 10 s is 08:00:10 UTC.
    at = datetime(2026, 12, 2, 8, 0, 10, tzinfo=UTC)
    h.gateway_events = [{"kind": "connect", "mono": T0 + 10.0, "wall": at.isoformat(timespec="milliseconds")}]
    local = datetime.fromtimestamp(at.timestamp() + 27.5)      # the backend logs in local time
    h.backend_output = (f"{local:%Y-%m-%d %H:%M:%S},{local.microsecond // 1000:03d} ERROR asyncio: "
                        "Task was destroyed but it is pending!\ntask: <Task pending name='Task-1'>\n")
    verdict = invariants.output(h, Bounds())
    assert not verdict and abs(verdict.first_at() - (T0 + 37.5)) < 0.01
    h.backend_output = "Task was destroyed but it is pending!\n"   # no time of its own: the end of the run
    assert invariants.output(h, Bounds()).first_at() == h.finished


def test_a_cleanup_outside_the_schedule_is_a_disturbance_too():
    h = history(("silence", 10.0, 5.0, {}))
    h.add_op(Op("final", "cleanup", T0 + 40.0, T0 + 40.05, True, 200))
    read(h, 40.2, 30.0)                # right after the run's final cleanup: not judged
    assert invariants.score(h, Bounds())
    read(h, 51.0, 30.0)
    assert not invariants.score(h, Bounds())


def test_a_written_history_reads_back_to_the_same_verdicts(tmp_path):
    h = history(("silence", 10.0, 20.0, {}), ("cleanup", 40.0, 0.0, {"via": "api"}))
    read(h, 16.0, 100.0)
    h.add_op(Op("nemesis", "cleanup", T0 + 40.0, T0 + 40.05, True, 200))
    gateway_conn(h, 4, 4, 10.0)
    h.backend_output = "RuntimeWarning: coroutine 'x' was never awaited\n"
    again = History.read(h.write(tmp_path / "history.json"))
    before, after = invariants.check(h, Bounds()), invariants.check(again, Bounds())
    assert {f: (v.ok, len(v.violations)) for f, v in before.items()} == \
        {f: (v.ok, len(v.violations)) for f, v in after.items()}
    assert not before["score"] and not before["cleanup"] and not before["output"]
