"""What one nemesis run produced: its window of the run history, the nemesis's own facts and the checkers'
verdicts (the runner makes it; the report, the shrinker and the specification read it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support.checks.limits import Limits
from support.nemesis import judge
from support.nemesis.record import NemesisRun
from support.nemesis.schedule import Schedule
from support.run_history import HistoryWindow
from support.verdict import FAIL, NOT_EXERCISED, Verdict


@dataclass
class RunResult:
    """What one run produced.

    Args:
        window: the run history from the schedule's second 0 to the run's end.
        run: what only the nemesis knows (schedule, planned versus applied, final heal, final reads, notes).
        verdicts: family → verdict (:data:`support.nemesis.judge.FAMILIES`).
        limits: what it was judged by.
    """

    window: HistoryWindow
    run: NemesisRun
    verdicts: dict[str, Verdict]
    out_dir: Path
    elapsed_s: float
    limits: Limits

    @property
    def schedule(self) -> Schedule:
        """The schedule the run followed."""
        return self.run.schedule

    @property
    def failed(self) -> list[str]:
        """Families whose verdict is a failure (not exercised is not one)."""
        return [family for family, verdict in self.verdicts.items() if verdict.status == FAIL]

    @property
    def ok(self) -> bool:
        """No family failed."""
        return not self.failed

    def first_violation_s(self, families: list[str] | None = None) -> float | None:
        """Seconds from the schedule's start to the earliest violation of ``families`` (default: all failed)."""
        times = [v.first_at() for f, v in self.verdicts.items()
                 if (families is None or f in families) and v.status == FAIL]
        times = [t for t in times if t is not None]
        return min(times) - self.run.origin_mono if times else None

    def summary(self) -> str:
        """One line per family."""
        marks = {FAIL: "FAIL", NOT_EXERCISED: "n/e "}
        return "\n".join(f"  {marks.get(v.status, 'PASS')}  {family:<15} {v.message}"
                         for family, v in self.verdicts.items())

    def explain(self, family: str, limit: int = 12) -> str:
        """A family's verdict with its first violations, times in seconds from the schedule's start."""
        verdict = self.verdicts[family]
        status = "" if verdict.ok else f"{verdict.status}: "
        return f"{family} ({judge.title(family)}): {status}{verdict.detail(self.run.origin_mono, limit)}"
