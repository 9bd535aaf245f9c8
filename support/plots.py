"""Plots of the backend's resources over time, fault windows shaded (PNG bytes for the report).

Memory, descriptors and threads are drawn as growth from the scenario's baseline — the median of the first
quarter of the samples, the baseline the leak claims measure from (:func:`support.checks.timing.growth`) — so the
curve's end reads against the claim's limit, drawn as a dashed line when a step stated one. IB connections are
drawn as counts (the claim bounds the peak, not its growth). The y range never shrinks below the limit (or a
floor per series), so a wiggle of a fraction of a MB does not fill the panel and look like a leak.
"""

from __future__ import annotations

import importlib.util
import io
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from support.drivers.faults import FaultWindow
from support.drivers.processes import ProcessSample


@dataclass(frozen=True)
class Series:
    """One panel: a sampled attribute, how it is drawn, and the smallest range it is shown over."""

    attribute: str
    label: str
    growth: bool        # drawn relative to the baseline (else as it is)
    integer: bool       # a count: integer ticks
    floor: float        # the y range covers at least this much above the baseline (or zero), limit or not


SERIES = (Series("rss_mb", "RSS growth (MB)", True, False, 5.0),
          Series("open_fds", "open fds growth", True, True, 5.0),
          Series("threads", "threads growth", True, True, 3.0),
          Series("ib_connections", "IB connections", False, True, 2.0))


def baseline(values: Sequence[float]) -> float:
    """The median of the first quarter of ``values`` (the first value when there are fewer than four)."""
    if not values:
        return 0.0
    if len(values) < 4:
        return float(values[0])
    return float(statistics.median(values[:max(1, len(values) // 4)]))


def y_range(values: Sequence[float], limit: float | None, floor: float) -> tuple[float, float]:
    """The y limits of a panel: every value, zero, the limit and ``floor`` inside, with a margin."""
    top = max([0.0, floor, *values] + ([limit] if limit is not None else []))
    bottom = min([0.0, *values])
    margin = 0.08 * (top - bottom)
    return bottom - margin, top + margin


def plotting_available() -> bool:
    """Whether matplotlib is installed (``pip install 'ib-resilience[plots]'``): plots are evidence, never verdicts."""
    return importlib.util.find_spec("matplotlib") is not None


def resources_png(samples: Sequence[ProcessSample], faults: Sequence[FaultWindow], origin_mono: float,
                  limits: Mapping[str, float] | None = None) -> bytes:
    """The PNG of :func:`resources_figure` (empty without samples, or without matplotlib: the ``plots`` extra)."""
    if not samples or not plotting_available():
        return b""
    from matplotlib import pyplot

    figure = resources_figure(samples, faults, origin_mono, limits)
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
        return buffer.getvalue()
    finally:
        pyplot.close(figure)


def resources_figure(samples: Sequence[ProcessSample], faults: Sequence[FaultWindow], origin_mono: float,
                     limits: Mapping[str, float] | None = None):
    """Four panels: RSS, fds and threads growth and IB connections against seconds since ``origin_mono``.

    Args:
        samples: the scenario's process samples (at least one).
        faults: the scenario's fault windows (shaded).
        origin_mono: the scenario's start (monotonic clock).
        limits: the claims' limits by sampled attribute (``rss_mb``, ``open_fds``, ``threads`` as growth,
            ``ib_connections`` as a count), drawn as dashed horizontal lines.

    Returns:
        the matplotlib figure (the caller closes it with ``pyplot.close``).
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    limits = dict(limits or {})
    times = [s.mono - origin_mono for s in samples]
    figure, axes = pyplot.subplots(len(SERIES), 1, figsize=(9, 8), sharex=True)
    for axis, series in zip(axes, SERIES, strict=False):
        raw = [float(getattr(s, series.attribute)) for s in samples]
        base = baseline(raw) if series.growth else 0.0
        values = [v - base for v in raw]
        limit = limits.get(series.attribute)
        axis.plot(times, values, linewidth=1.2)
        label = series.label
        if limit is not None:
            axis.axhline(limit, color="tab:orange", linestyle="--", linewidth=1.2)
            label += f"\n(claim ≤ {'+' if series.growth else ''}{limit:g})"
        axis.set_ylabel(label, fontsize=9)
        axis.set_ylim(*y_range(values, limit, series.floor))
        if series.integer:
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        for window in faults:
            end = (window.healed_mono or samples[-1].mono) - origin_mono
            axis.axvspan(window.applied_mono - origin_mono, max(end, window.applied_mono - origin_mono + 0.05),
                         color="tab:red", alpha=0.15)
    axes[-1].set_xlabel("seconds since the scenario began (faults shaded)")
    figure.suptitle("Backend resources over the scenario: growth from the first quarter's median,\n"
                    "dashed lines are the claims' limits", fontsize=10)
    figure.tight_layout()
    return figure
