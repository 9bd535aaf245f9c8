"""Shrinking: from a failing schedule to a minimal one that still fails the same invariant.

Every candidate is a real rerun (a fresh backend, the same seed, so the same workload); a candidate is kept
only if it fails again. The steps, in order:

1. cut the schedule after the first violation (faults that start later cannot have caused it), with twice the
   tries of the other steps: it saves the most, and a race that did not happen twice must not lose it;
2. start the faults right after the warm-up, the gaps between them kept (every later rerun is that much shorter);
3. drop faults: delta debugging (halves, then smaller pieces, then one at a time), each fault set tried once;
   after each drop that is kept, step 2 again (the first faults may be gone);
4. shorten each remaining window by halves, down to its kind's shortest window;
5. pull the remaining faults together (gaps of at most 3 s), so the reproduction is short.

A run's length always follows its faults (last heal plus the healthy tail), so a smaller schedule is also a
quicker one to replay.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from support.nemesis.schedule import KINDS, FaultSpec, Schedule


class Outcome(Protocol):
    """What a rerun returns (a :class:`support.nemesis.outcome.RunResult`, or a test's stand-in)."""

    schedule: Schedule

    @property
    def failed(self) -> list[str]: ...

    def first_violation_s(self, families: list[str] | None = None) -> float | None: ...


@dataclass
class ShrinkResult:
    """The original failure, the smallest schedule that still failed, and how it got there."""

    original: Outcome
    minimal: Outcome
    runs: int = 0
    elapsed_s: float = 0.0
    steps: list[str] = field(default_factory=list)


class _Shrinker:
    def __init__(self, original: Outcome, rerun: Callable[[Schedule, str], Outcome], target: set[str],
                 max_runs: int, budget_s: float | None, log: Callable[[str], None], tries: int = 1):
        self.best = original
        self.rerun, self.target, self.max_runs, self.log, self.tries = rerun, target, max_runs, log, max(1, tries)
        self.deadline = time.monotonic() + budget_s if budget_s else None
        self.result = ShrinkResult(original, original)
        self.tried: set[tuple] = set()

    def out_of_budget(self) -> bool:
        return self.result.runs >= self.max_runs or (self.deadline is not None and time.monotonic() >= self.deadline)

    def attempt(self, faults: Sequence[FaultSpec], why: str, tries: int | None = None) -> bool:
        """Rerun with ``faults`` (up to ``tries`` times, default the shrinker's); keep the result when it fails a
        target invariant again."""
        key = tuple((f.id, f.start_s, f.duration_s) for f in sorted(faults, key=lambda f: f.id))
        if key in self.tried or self.out_of_budget():
            return False
        self.tried.add(key)
        candidate = self.best.schedule.with_faults(faults, note=f"shrunk from seed {self.best.schedule.seed}")
        for _ in range(tries or self.tries):  # a bug that needs a race may pass once and fail the next time
            if self.result.runs >= self.max_runs:
                break
            self.result.runs += 1
            outcome = self.rerun(candidate, f"shrink-{self.result.runs:02d}")
            kept = bool(set(outcome.failed) & self.target)
            if kept:
                break
        text = (f"{why} ({len(faults)} fault(s), {candidate.duration_s:.0f} s): "
                + (f"still fails {', '.join(sorted(set(outcome.failed) & self.target))} — kept" if kept
                   else "passes — not kept" if not outcome.failed
                   else f"fails only {', '.join(outcome.failed)} — not kept"))
        self.result.steps.append(text)
        self.log(text)
        if kept:
            self.best = outcome
        return kept

    @property
    def faults(self) -> list[FaultSpec]:
        return list(self.best.schedule.faults)

    def truncate(self) -> None:
        for _ in range(3):
            first = self.best.first_violation_s(sorted(self.target))
            if first is None:
                return
            kept = [f for f in self.faults if f.start_s < first]
            # Twice the tries: the cut saves the most, and every later step reruns what it leaves.
            if len(kept) == len(self.faults) or not self.attempt(kept, f"cut after the first violation at {first:.1f} s",
                                                                 tries=2 * self.tries):
                return

    def lead(self, min_shift_s: float = 3.0) -> None:
        """Start the faults at the end of the warm-up, every gap between them kept: the reruns after it are as
        much shorter as the run began with faults-free time."""
        faults = self.faults
        if not faults:
            return
        shift = min(f.start_s for f in faults) - self.best.schedule.warmup_s
        if shift >= min_shift_s:
            self.attempt([dataclasses.replace(f, start_s=round(f.start_s - shift, 3)) for f in faults],
                         f"start the faults {shift:.0f} s earlier (the gaps between them kept)")

    def drop(self) -> None:
        pieces = 2
        while self.faults and not self.out_of_budget():
            faults = self.faults
            if len(faults) == 1:
                self.attempt([], "drop the last fault")
                return
            size = max(1, -(-len(faults) // pieces))
            chunks = [faults[i:i + size] for i in range(0, len(faults), size)]
            for chunk in chunks:
                ids = {f.id for f in chunk}
                rest = [f for f in faults if f.id not in ids]
                if self.attempt(rest, "drop " + ", ".join(f"#{f.id} {f.kind}" for f in chunk)):
                    pieces = max(pieces - 1, 2)
                    self.lead()  # the first faults may be gone: what is left can start earlier
                    break
            else:
                if size == 1:
                    return
                pieces = min(len(faults), pieces * 2)

    def shorten(self) -> None:
        for spec_id in [f.id for f in self.faults]:
            while not self.out_of_budget():
                spec = next((f for f in self.faults if f.id == spec_id), None)
                if spec is None or spec.one_shot or spec.duration_s / 2 < KINDS[spec.kind].min_s:
                    break
                shorter = dataclasses.replace(spec, duration_s=round(spec.duration_s / 2, 3))
                if not self.attempt([shorter if f.id == spec_id else f for f in self.faults],
                                    f"shorten #{spec_id} {spec.kind} to {shorter.duration_s:.1f} s"):
                    break

    def compact(self, max_gap_s: float = 3.0) -> None:
        faults = sorted(self.faults, key=lambda f: f.start_s)
        if not faults:
            return
        warmup = self.best.schedule.warmup_s
        moved, previous_old, previous_new = [], None, warmup
        for f in faults:
            new_start = warmup if previous_old is None else previous_new + min(f.start_s - previous_old, max_gap_s)
            moved.append(dataclasses.replace(f, start_s=round(new_start, 3)))
            previous_old, previous_new = f.start_s, new_start
        if any(a.start_s != b.start_s for a, b in zip(moved, faults, strict=False)):
            self.attempt(moved, f"pull the faults together (gaps ≤ {max_gap_s:g} s)")


def shrink(original: Outcome, rerun: Callable[[Schedule, str], Outcome], target: Sequence[str] | None = None,
           max_runs: int = 40, budget_s: float | None = None,
           log: Callable[[str], None] = lambda text: None, tries: int = 1) -> ShrinkResult:
    """Shrink a failing run's schedule while it still fails one of ``target`` (default: what it failed).

    Args:
        original: the failing run.
        rerun: runs a candidate schedule (the label names its evidence folder) and returns its outcome.
        max_runs, budget_s: stop shrinking after this many reruns or seconds (the best so far is kept).
        tries: how many times a candidate is run before it counts as passing (races need more than one).
    """
    started = time.monotonic()
    shrinker = _Shrinker(original, rerun, set(target or original.failed), max_runs, budget_s, log, tries)
    if not shrinker.target:
        raise ValueError("the run to shrink did not fail")
    for step in (shrinker.truncate, shrinker.lead, shrinker.drop, shrinker.shorten, shrinker.compact):
        if shrinker.out_of_budget():
            shrinker.result.steps.append("stopped: shrinking budget spent")
            break
        step()
    shrinker.result.minimal = shrinker.best
    shrinker.result.elapsed_s = time.monotonic() - started
    return shrinker.result
