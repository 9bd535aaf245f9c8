"""The shrinker reduces a synthetic failing schedule to the faults that make it fail."""

from dataclasses import dataclass

from support.nemesis.schedule import FaultSpec, Schedule, generate
from support.nemesis.shrink import shrink


@dataclass
class FakeRun:
    """A run whose verdict is a pure function of its schedule: it fails 'cleanup' when a reset lands while a
    latency fault is on and a cleanup comes after both (the shape of an interleaving bug)."""

    schedule: Schedule

    @property
    def failed(self) -> list[str]:
        faults = self.schedule.faults
        for lat in (f for f in faults if f.kind == "latency"):
            for reset in (f for f in faults if f.kind == "reset" and lat.start_s <= f.start_s < lat.end_s):
                if any(c.kind == "cleanup" and c.start_s > reset.start_s for c in faults):
                    return ["cleanup"]
        return []

    def first_violation_s(self, families=None):
        if not self.failed:
            return None
        reset = min(f.start_s for f in self.schedule.faults if f.kind == "reset")
        return min(c.start_s for c in self.schedule.faults if c.kind == "cleanup" and c.start_s > reset) + 5.0


def _noisy_schedule() -> Schedule:
    base = generate(3, 300)
    noise = [f for f in base.faults if f.kind not in ("latency", "reset", "cleanup")]
    culprits = [FaultSpec(90, "latency", 100.0, 24.0, {"latency_ms": 300, "jitter_ms": 0, "direction": "downstream"}),
                FaultSpec(91, "reset", 110.0), FaultSpec(92, "cleanup", 150.0, 0.0, {"via": "api"}),
                FaultSpec(93, "cleanup", 260.0, 0.0, {"via": "api"})]
    return base.with_faults(noise + culprits)


def test_the_shrinker_keeps_only_the_faults_that_matter():
    original = FakeRun(_noisy_schedule())
    assert original.failed == ["cleanup"] and len(original.schedule.faults) > 10
    reruns = []

    def rerun(schedule, label):
        reruns.append(label)
        return FakeRun(schedule)
    result = shrink(original, rerun, max_runs=80)
    kinds = sorted(f.kind for f in result.minimal.schedule.faults)
    assert kinds == ["cleanup", "latency", "reset"], result.steps
    assert result.minimal.failed == ["cleanup"] and result.runs == len(reruns) <= 80
    latency = next(f for f in result.minimal.schedule.faults if f.kind == "latency")
    assert latency.duration_s < 24.0, "the latency window was not shortened"
    assert result.minimal.schedule.duration_s < 60.0, "the faults were not pulled together"


def test_the_shrinker_never_keeps_a_candidate_that_passes():
    original = FakeRun(_noisy_schedule())
    result = shrink(original, lambda schedule, label: FakeRun(schedule), max_runs=80)
    assert all(("kept" in step) for step in result.steps)
    assert FakeRun(result.minimal.schedule).failed == ["cleanup"]


def test_the_shrinker_stops_at_its_budget():
    original = FakeRun(_noisy_schedule())
    result = shrink(original, lambda schedule, label: FakeRun(schedule), max_runs=3)
    assert result.runs == 3 and result.minimal.failed == ["cleanup"]


def test_a_racy_failure_gets_a_second_chance():
    runs = {"n": 0}

    def rerun(schedule, label):  # every other rerun of anything loses the race and passes
        runs["n"] += 1
        run = FakeRun(schedule)
        return run if runs["n"] % 2 == 0 else FakeRun(schedule.with_faults([]))
    result = shrink(FakeRun(_noisy_schedule()), rerun, max_runs=200, tries=2)
    assert sorted(f.kind for f in result.minimal.schedule.faults) == ["cleanup", "latency", "reset"], result.steps


def test_the_cut_after_the_first_violation_gets_twice_the_tries():
    runs = {"n": 0}

    def rerun(schedule, label):  # the first three reruns lose the race; from the fourth on it is won
        runs["n"] += 1
        return FakeRun(schedule) if runs["n"] > 3 else FakeRun(schedule.with_faults([]))
    original = FakeRun(_noisy_schedule())
    result = shrink(original, rerun, max_runs=200, tries=2)
    assert result.steps[0].startswith("cut after the first violation") and result.steps[0].endswith("kept"), result.steps
    assert runs["n"] > 4


def test_the_faults_are_moved_to_the_start_before_they_are_dropped():
    original = FakeRun(_noisy_schedule())
    result = shrink(original, lambda schedule, label: FakeRun(schedule), max_runs=80)
    assert result.steps[1].startswith("start the faults") and result.steps[1].endswith("kept"), result.steps


def test_faults_left_after_a_drop_are_moved_to_the_start_again():
    result = shrink(FakeRun(_noisy_schedule()), lambda schedule, label: FakeRun(schedule), max_runs=80)
    leads = [step for step in result.steps if step.startswith("start the faults") and step.endswith("kept")]
    assert len(leads) >= 2, result.steps
