"""Where a run's time went: scenarios (those that failed apart), the backend's starts and stops, the waits of
timed claims that never held, and the rest — the suite's own work between scenarios.

Read from the run's history (its scenario spans and the backend's lives) and the waits :mod:`support.waiting`
counted; printed at the end of every run and written to ``time-budget.json``, so a slow run on a real backend
says what made it slow before anyone tunes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from support.run_history import HistoryWindow


@dataclass(frozen=True)
class TimeBudget:
    """Seconds, by where they went (stretches overlap: a start inside a scenario counts in both)."""

    run_s: float
    scenarios: int
    scenarios_s: float
    failed_scenarios: int
    failed_scenarios_s: float
    backend_starts: int
    starting_s: float
    stopping_s: float
    starts_between_scenarios: int
    between_scenarios_s: float
    failing_waits_s: float
    second_attempts: int = 0   # scenarios run once more on a fresh backend (restart_after_failure = when-unhealthy)

    def lines(self) -> list[str]:
        """The budget as a few console lines."""
        share = (lambda s: f"{100 * s / self.run_s:.0f} %") if self.run_s else (lambda s: "–")  # noqa: E731
        return [f"time: {self.run_s:.1f} s in all",
                f"  scenarios          {self.scenarios_s:8.1f} s  {share(self.scenarios_s):>5}  ({self.scenarios} scenarios;"
                + (f" {self.second_attempts} of them run again on a fresh backend;" if self.second_attempts else "")
                + f" {self.failed_scenarios} failed took {self.failed_scenarios_s:.1f} s)",
                f"  waits that failed  {self.failing_waits_s:8.1f} s  {share(self.failing_waits_s):>5}  (timed claims "
                "that never held, waited out to their bound)",
                f"  backend starts     {self.starting_s:8.1f} s  {share(self.starting_s):>5}  ({self.backend_starts} starts,"
                f" {self.starts_between_scenarios} between scenarios)",
                f"  backend stops      {self.stopping_s:8.1f} s  {share(self.stopping_s):>5}",
                f"  between scenarios  {self.between_scenarios_s:8.1f} s  {share(self.between_scenarios_s):>5}  "
                "(restarts, evidence, the suite's own work)"]

    def to_json(self) -> dict[str, float | int]:
        """As JSON values (``time-budget.json``)."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def time_budget(window: HistoryWindow, failing_waits_s: float = 0.0) -> TimeBudget:
    """The budget of the run ``window`` covers; ``failing_waits_s`` from :func:`support.waiting.failing_waits_s`."""
    spans = sorted((s for s in window.spans if s.kind == "scenario" and s.end_mono is not None),
                   key=lambda s: s.start_mono)
    failed = [s for s in spans if s.status in ("failed", "error")]
    lives = window.lives
    starting = [life.ready_mono - life.started_mono for life in lives if life.ready_mono is not None]
    stopping = [life.ended_mono - life.stopping_mono for life in lives
                if life.ended_mono is not None and life.stopping_mono is not None]
    gaps = [(a.end_mono, b.start_mono) for a, b in zip(spans, spans[1:], strict=False)]
    between = sum(max(0.0, end - start) for start, end in gaps)
    outside = sum(1 for life in lives if any(start <= life.started_mono <= end for start, end in gaps))
    # A second attempt on a fresh backend follows its failed first attempt at once, under the same name.
    second = sum(1 for a, b in zip(spans, spans[1:], strict=False) if a.label == b.label and a.status in ("failed", "error"))
    return TimeBudget(window.end_mono - window.start_mono, len(spans),
                      sum(s.end_mono - s.start_mono for s in spans), len(failed),
                      sum(s.end_mono - s.start_mono for s in failed), len(lives), sum(starting), sum(stopping),
                      outside, between, failing_waits_s, second)
