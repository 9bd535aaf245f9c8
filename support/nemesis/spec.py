"""The nemesis as the specification uses it: one run per seed and length per behave process, judged by family."""

from __future__ import annotations

from pathlib import Path

from support import evidence
from support.nemesis.outcome import RunResult
from support.nemesis.runner import run_schedule
from support.nemesis.schedule import generate
from support.verdict import require
from support.world import World

#: Runs already made in this process, by (seed, seconds): every scenario of the feature judges the same history.
_RUNS: dict[tuple[int, float], RunResult] = {}


def run_once(world: World, seed: int, minutes: float) -> RunResult:
    """The run of ``seed`` for ``minutes`` against the world's targets (made on first use, then remembered);
    its timeline, schedule and verdicts are attached to the step that asks."""
    key = (seed, round(minutes * 60.0, 3))
    result = _RUNS.get(key)
    if result is None:
        out = Path(world.settings.reports_dir) / "nemesis" / f"spec-seed-{seed}-{minutes:g}min"
        result = _RUNS[key] = run_schedule(world, generate(seed, minutes * 60.0), out)
    if (result.out_dir / "timeline.png").exists():
        evidence.attach_png("Nemesis timeline", (result.out_dir / "timeline.png").read_bytes())
    evidence.attach_json("Nemesis schedule", result.schedule.to_json())
    evidence.attach_text("Nemesis verdicts", result.summary() + f"\n\nevidence: {result.out_dir}")
    return result


def holds(result: RunResult, family: str) -> None:
    """The invariant ``family`` held over the whole history (a failed claim with the counterexamples if not)."""
    verdict = result.verdicts[family]
    require(verdict.ok, f"seed {result.schedule.seed}: {verdict.message(result.history.origin)}\n"
                        f"schedule: {result.out_dir / 'schedule.json'} "
                        f"(ib-resilience nemesis --replay {result.out_dir / 'schedule.json'})")
