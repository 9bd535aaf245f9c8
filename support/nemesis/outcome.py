"""What one nemesis run produced: its schedule, its history and the invariants' verdicts (the runner makes it;
the report, the shrinker and the specification read it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support.nemesis.invariants import Verdict
from support.nemesis.record import History
from support.nemesis.schedule import Schedule


@dataclass
class RunResult:
    """What one run produced."""

    schedule: Schedule
    history: History
    verdicts: dict[str, Verdict]
    out_dir: Path
    elapsed_s: float

    @property
    def failed(self) -> list[str]:
        """Families whose invariant was violated."""
        return [family for family, verdict in self.verdicts.items() if not verdict.ok]

    @property
    def ok(self) -> bool:
        """Every invariant held."""
        return not self.failed

    def first_violation_s(self, families: list[str] | None = None) -> float | None:
        """Seconds from the schedule's start to the earliest violation of ``families`` (default: all failed)."""
        times = [v.first_at() for f, v in self.verdicts.items() if (families is None or f in families) and not v.ok]
        times = [t for t in times if t is not None]
        return min(times) - self.history.origin if times else None

    def summary(self) -> str:
        """One line per family."""
        return "\n".join(f"  {'PASS' if v.ok else 'FAIL'}  {v.family:<12} {v.summary}" for v in self.verdicts.values())
