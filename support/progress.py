"""Progress of a long run: scenario n of N, the time spent, and an estimate of the time left.

The runner writes the plan (every selected scenario with the duration it took in earlier runs, when known) and
names it with ``-D progress.plan=PATH``; behave's ``after_scenario`` hook prints one line per scenario to stderr::

    ib-resilience: [12/84] passed  Concurrent requests never share a connection (3.1 s); 41 s elapsed, about 2 min left
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The userdata name of the plan file (a dotted name: not a setting of the suite).
PLAN_SETTING = "progress.plan"


def plan_key(feature_file: str | Path, name: str) -> str:
    """A scenario's key in the plan: its feature file's absolute path and its name."""
    return f"{Path(feature_file).resolve()}::{name.strip()}"


def write_plan(path: Path, scenarios: list[tuple[str, str, float | None]]) -> None:
    """Write the plan: ``(feature file, scenario name, expected seconds or None)`` in run order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scenarios": [{"key": plan_key(f, n), "expected_s": e} for f, n, e in scenarios]}),
                    encoding="utf-8")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


@dataclass
class Progress:
    """Counts finished scenarios against the plan and estimates what is left from the stored durations (the
    mean of the known ones stands in for a scenario never timed)."""

    expected_s: dict[str, float | None]
    started_mono: float = field(default_factory=time.monotonic)
    done: set[str] = field(default_factory=set)

    @classmethod
    def from_plan(cls, path: str | Path) -> Progress | None:
        """The progress of a run with this plan (None when there is no readable plan)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls({str(s["key"]): s.get("expected_s") for s in data["scenarios"]})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def finished(self, feature_file: str, name: str, status: str, took_s: float) -> str:
        """Record a finished scenario; the line to print."""
        key = plan_key(feature_file, name)
        self.done.add(key)
        total = len(self.expected_s)
        count = len(self.done & set(self.expected_s)) or len(self.done)
        elapsed_s = time.monotonic() - self.started_mono
        known = [s for s in self.expected_s.values() if s is not None]
        mean_s = sum(known) / len(known) if known else elapsed_s / max(count, 1)
        left_s = sum(mean_s if s is None else s for k, s in self.expected_s.items() if k not in self.done)
        estimate = f", about {_duration(left_s)} left" if count < total else ""
        return (f"ib-resilience: [{count}/{total}] {status:<7} {name.strip()} ({took_s:.1f} s); "
                f"{_duration(elapsed_s)} elapsed{estimate}")
