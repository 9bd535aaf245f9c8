"""Checkers of time and load: latency percentiles, success rates, resource growth, and the run's request bounds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from support.drivers.api import ApiResponse


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class LoadSummary:
    """Outcome of a burst of concurrent API calls."""

    total: int
    succeeded: int
    p50_s: float
    p95_s: float
    max_s: float
    failures: tuple[str, ...]

    @property
    def success_rate_pct(self) -> float:
        """Share of calls that succeeded, in percent."""
        return 100.0 * self.succeeded / self.total if self.total else 0.0


def summarise_load(responses: Sequence[ApiResponse]) -> LoadSummary:
    """Success rate and latency percentiles of a burst."""
    times = [r.elapsed_s for r in responses]
    failures = tuple(r.describe() for r in responses if not r.ok)
    return LoadSummary(len(responses), len(responses) - len(failures), statistics.median(times) if times else 0.0,
                       percentile(times, 95), max(times, default=0.0), failures)


def growth(samples: Sequence[Any], attribute: str) -> float:
    """Growth of a sampled quantity: median of the last quarter minus median of the first quarter."""
    values = [getattr(s, attribute) for s in samples]
    if len(values) < 4:
        return 0.0
    quarter = max(1, len(values) // 4)
    return statistics.median(values[-quarter:]) - statistics.median(values[:quarter])


