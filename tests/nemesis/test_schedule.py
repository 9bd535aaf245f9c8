"""The generator: deterministic for a seed, within its bounds, and a schedule file round-trips."""

from pathlib import Path

import pytest

from support.nemesis.schedule import KINDS, Bounds, FaultSpec, Schedule, generate


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    assert generate(11, 300) == generate(11, 300)
    assert generate(11, 300).faults != generate(12, 300).faults


@pytest.mark.parametrize("seed", range(1, 25))
def test_faults_stay_within_their_bounds(seed):
    bounds = Bounds()
    schedule = generate(seed, 300, bounds)
    assert schedule.faults, "a five-minute schedule without faults"
    for f in schedule.faults:
        kind = KINDS[f.kind]
        assert f.start_s >= bounds.warmup_s and f.end_s <= schedule.duration_s - bounds.tail_s + 1e-6
        if kind.one_shot:
            assert f.duration_s == 0
        else:
            assert kind.duration_s[0] - 1e-6 <= f.duration_s <= kind.duration_s[1] + 1e-6 or \
                f.end_s >= schedule.duration_s - bounds.tail_s - 1e-6  # cut short by the tail only
        overlapping = [g for g in schedule.faults if g.start_s <= f.start_s < g.end_s and g is not f]
        assert all(g.kind != f.kind for g in overlapping), f"two {f.kind} at once in seed {seed}"
        assert len(overlapping) < bounds.max_overlap


def test_every_kind_appears_across_a_few_schedules():
    seen = {f.kind for seed in range(1, 6) for f in generate(seed, 300).faults}
    assert seen == set(KINDS)


def test_a_written_schedule_reads_back_equal(tmp_path: Path):
    schedule = generate(5, 120)
    path = schedule.write(tmp_path / "schedule.json")
    assert Schedule.read(path) == schedule
    shrunk = schedule.with_faults(schedule.faults[:1], note="shrunk")
    assert Schedule.read(shrunk.write(tmp_path / "small.json")) == shrunk
    assert shrunk.duration_s == pytest.approx(schedule.faults[0].end_s + schedule.tail_s)


def test_outages_are_what_the_contract_calls_silent_or_down():
    def spec(kind, **params):
        return FaultSpec(1, kind, 5.0, 0.0 if KINDS[kind].one_shot else 5.0, params)
    assert spec("silence").outage and spec("restart").outage and spec("connectivity_lost").outage
    assert spec("unanswered", request_types=["reqCurrentTime"]).outage and spec("unanswered", request_types=["*"]).outage
    assert not spec("unanswered", request_types=["reqHistoricalData"]).outage
    assert spec("refuse", keep_existing=False).outage and not spec("refuse", keep_existing=True).outage
    assert not any(spec(k).outage for k in ("latency", "reset", "ib_notice", "pacing", "squatter", "cleanup"))


def test_a_bad_schedule_file_is_refused(tmp_path: Path):
    path = tmp_path / "bad.json"
    path.write_text('{"seed": 1, "duration_s": 30, "faults": [{"id": 1, "kind": "meteor", "start_s": 1}]}')
    with pytest.raises(ValueError, match="unknown fault kind"):
        Schedule.read(path)


def test_the_composed_interleavings_come_up_in_most_schedules():
    """A reset while the gateway is slow, cleanups while a squatter forces 326 retries, silence right after a
    drop: each pattern the generator composes on purpose shows up across ten 3-minute schedules."""
    def inside(f, window):
        return window.start_s < f.start_s < window.end_s

    counts = {"reset while slow": 0, "cleanups while squatted and slow": 0, "silence after a drop": 0}
    for seed in range(1, 11):
        faults = generate(seed, 180.0).faults
        latencies = [f for f in faults if f.kind in ("latency", "slow_validation")]
        squatters = [f for f in faults if f.kind == "squatter"]
        drops = [f for f in faults if f.kind in ("reset", "restart")]
        counts["reset while slow"] += any(inside(f, w) for f in faults if f.kind == "reset" for w in latencies)
        counts["cleanups while squatted and slow"] += any(
            inside(f, w) and any(inside(f, s) for s in latencies) for f in faults if f.kind == "cleanup" for w in squatters)
        counts["silence after a drop"] += any(0 < f.start_s - d.end_s <= 3.0 for f in faults if f.kind == "silence"
                                              for d in drops)
    assert counts["reset while slow"] >= 7, counts
    assert counts["cleanups while squatted and slow"] >= 3, counts
    assert counts["silence after a drop"] >= 4, counts
    quiet = generate(1, 180.0, Bounds(cut_while_slow=0, cleanups_while_squatted=0, silence_after_cut=0))
    assert len(quiet.faults) < len(generate(1, 180.0).faults)
