"""The nemesis as the specification uses it: one run per seed and length per behave process, its verdicts (the
checkers of :mod:`support.checks` over the run's window) claimed by family."""

from __future__ import annotations

from pathlib import Path

from support import evidence
from support.nemesis.outcome import RunResult
from support.nemesis.runner import run_schedule
from support.nemesis.schedule import generate
from support.observer import Observer
from support.verdict import NOT_EXERCISED, require
from support.world import World

#: Runs already made in this process, by (seed, seconds): every scenario of the feature judges the same history.
_RUNS: dict[tuple[int, float], RunResult] = {}


def run_once(world: World, seed: int, minutes: float, observer: Observer | None = None) -> RunResult:
    """The run of ``seed`` for ``minutes`` against the world's targets (made on first use, then remembered), recorded
    into the world's run history (``observer``: the run's, which reads the backend's output into it); its timeline,
    schedule and verdicts are attached to the step that asks."""
    key = (seed, round(minutes * 60.0, 3))
    result = _RUNS.get(key)
    if result is None:
        out = Path(world.settings.reports_dir) / "nemesis" / f"spec-seed-{seed}-{minutes:g}min"
        result = _RUNS[key] = run_schedule(world, generate(seed, minutes * 60.0), out, observer=observer)
    if (result.out_dir / "timeline.png").exists():
        evidence.attach_png("Nemesis timeline", (result.out_dir / "timeline.png").read_bytes())
    evidence.attach_json("Nemesis schedule", result.schedule.to_json())
    evidence.attach_text("Nemesis verdicts", result.summary() + f"\n\nevidence: {result.out_dir}")
    return result


def holds(result: RunResult, *families: str) -> None:
    """Each verdict of ``families`` passed over the run's whole history: a failed claim with the counterexamples if
    one failed, and if one judged nothing (a claim that judged nothing proved nothing)."""
    replay = (f"schedule: {result.out_dir / 'schedule.json'} "
              f"(ib-resilience nemesis --replay {result.out_dir / 'schedule.json'})")
    for family in families:
        verdict = result.verdicts[family]
        shown = "not exercised in this schedule: " if verdict.status == NOT_EXERCISED else ""
        require(verdict.ok, f"seed {result.schedule.seed}: {shown}{result.explain(family)}\n{replay}")
