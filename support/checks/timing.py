"""Checkers of time and load: latency percentiles, success rates, resource growth, and the run's request bounds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from support.checks import spans
from support.checks.limits import Limits
from support.drivers.api import ApiResponse
from support.run_history import HistoryWindow
from support.verdict import Verdict, Violation


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




# ----------------------------------------------------------------------------- bounds over a whole history


def _describe(response: ApiResponse, window: HistoryWindow) -> str:
    return f"{window.rel(response.started_mono):.2f} s {response.describe()[:300]}"


def _load_reached_ib(window: HistoryWindow, response: ApiResponse) -> bool:
    """A data load during which the gateway received a historical-data request from the backend (really
    receiving bars: the contract's one exception to the API bound)."""
    own = {c.conn_id for c in window.connections if c.own}
    return any(e.kind == "request" and e.type == "reqHistoricalData" and e.conn_id not in own
               and response.started_mono <= e.mono <= response.finished_mono for e in window.ib_events)


def requests_bounded(window: HistoryWindow, limits: Limits) -> Verdict:
    """Every API request the suite made while the backend served, not under a heavy load, was answered within the
    API bound whatever the gateway did (a data load really receiving bars: the load bound); every CLI command
    ended within the CLI bound. A request with no answer at all counts as a hang."""
    serving, heavy = spans.serving(window), spans.heavy_load(window, limits)
    violations, judged = [], 0
    for response in window.exchanges:
        if not any(s <= response.started_mono and response.finished_mono <= e for s, e in serving):
            continue  # asked while the backend was starting or stopping (or it stopped meanwhile)
        if spans.overlaps(heavy, response.started_mono, response.finished_mono):
            continue  # it met a burst above the pool: callers may wait for a free connection
        judged += 1
        bound = limits.api_response
        if response.path == "/data/load" and _load_reached_ib(window, response):
            bound = limits.load
        if response.timed_out or response.status is None:
            why = "no answer within the client's patience" if response.timed_out else "no answer at all"
            violations.append(Violation(response.started_mono, f"{_describe(response, window)}: {why} ({bound})"))
        elif response.elapsed_s > bound.seconds:
            violations.append(Violation(response.started_mono + bound.seconds,
                                        f"{_describe(response, window)}: past {bound}"))
    for run in window.cli_runs:
        judged += 1
        if run.timed_out or run.elapsed_s > limits.cli_command.seconds:
            violations.append(Violation(run.started_mono + limits.cli_command.seconds,
                                        f"$ {' '.join(run.argv)} took {run.elapsed_s:.1f} s, past {limits.cli_command}"))
    return Verdict.over(violations, judged,
                        f"{len(violations)} of {judged} request(s) past their bound",
                        "no API request or CLI command while the backend served",
                        f"{judged} request(s) and command(s), each within its bound")


def stays_responsive(window: HistoryWindow, limits: Limits) -> Verdict:
    """The backend's liveness: every sample of its service health (no IB involved, a few a second, all run
    long) taken while it served and no heavy load was on answered 200 within the API bound. An event loop
    frozen by a load or a blocking call fails here, whichever scenario caused it, and between scenarios."""
    serving = spans.serving(window)
    heavy = spans.heavy_load(window, limits)
    bound = limits.api_response
    slow: list[ApiResponse] = []
    judged = 0
    for sample in window.samples:
        if not any(s <= sample.started_mono and sample.finished_mono <= e for s, e in serving):
            continue
        if spans.overlaps(heavy, sample.started_mono, sample.finished_mono):
            continue
        judged += 1
        if sample.timed_out or sample.status != 200 or sample.elapsed_s > bound.seconds:
            slow.append(sample)
    if not judged:
        return Verdict.unexercised("no liveness sample while the backend served")
    if not slow:
        longest = max((s.elapsed_s for s in window.samples), default=0.0)
        return Verdict.passed(f"{judged} samples, each answered within {bound} (longest {longest:.2f} s)", judged)
    # One freeze shows as several slow samples, each cut at the sampler's patience: samples less than a second
    # apart belong to one stretch.
    stretches = [(start, end - 1.0) for start, end in spans.merged((s.started_mono, s.finished_mono + 1.0)
                                                                    for s in slow)]
    violations = [Violation(start, f"unresponsive from {window.rel(start):.1f} s to {window.rel(end):.1f} s "
                                   f"({end - start:.1f} s): "
                                   + "; ".join(s.describe()[:120] for s in slow if start <= s.started_mono <= end)[:400])
                  for start, end in stretches]
    worst = max(end - start for start, end in stretches)
    return Verdict.failed(f"{len(slow)} of {judged} samples slower than {bound} or failed, in {len(stretches)} "
                          f"stretch(es), the longest {worst:.1f} s", violations, judged)
