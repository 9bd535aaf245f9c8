"""Plots of the backend's resources over time, fault windows shaded (PNG bytes for the report)."""

from __future__ import annotations

import io
from typing import Sequence

from .drivers.faults import FaultWindow
from .drivers.processes import ProcessSample

SERIES = (("rss_mb", "RSS (MB)"), ("open_fds", "open fds"), ("threads", "threads"),
          ("ib_connections", "IB connections"))


def resources_png(samples: Sequence[ProcessSample], faults: Sequence[FaultWindow], origin_mono: float) -> bytes:
    """A four-panel PNG: RSS, fds, threads and IB connections against seconds since ``origin_mono``."""
    if not samples:
        return b""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    times = [s.mono - origin_mono for s in samples]
    figure, axes = pyplot.subplots(len(SERIES), 1, figsize=(9, 8), sharex=True)
    try:
        for axis, (attribute, label) in zip(axes, SERIES):
            axis.plot(times, [getattr(s, attribute) for s in samples], linewidth=1.2)
            axis.set_ylabel(label)
            axis.grid(alpha=0.3)
            for window in faults:
                end = (window.healed_mono or samples[-1].mono) - origin_mono
                axis.axvspan(window.applied_mono - origin_mono, max(end, window.applied_mono - origin_mono + 0.05),
                             color="tab:red", alpha=0.15)
        axes[-1].set_xlabel("seconds since the scenario began (faults shaded)")
        figure.suptitle("Backend resources over the scenario")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90)
        return buffer.getvalue()
    finally:
        pyplot.close(figure)
