"""The timeline of a nemesis run: faults as bands per plane, requests coloured by outcome, the score, the pool.

Three panels over seconds since the schedule's start, sharing the x axis:

- faults: one lane per plane (simulator, proxy, client-side: squatters and cleanups), a band per window
  (a tick for a one-shot fault), outages in red, the rest in amber/blue;
- requests: one lane per kind of operation, a point at each invocation — green answered in time and
  successful, grey answered in time with a failure, red past its bound or unanswered;
- the resilience score (line, the 75 threshold dashed) and the backend's connections open at the gateway
  (step line on the right axis, the pool limit dashed).

Outage windows are shaded across every panel; each invariant's first violation is a vertical red line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from support.nemesis.invariants import Verdict, pool_size_steps
from support.nemesis.record import History, Op

PLANES = (("gateway", "simulator"), ("proxy", "proxy"), ("client", "client-side"))
OUTAGE = "tab:red"
OTHER = {"gateway": "tab:orange", "proxy": "tab:blue", "client": "tab:purple"}


def _lane(op: Op) -> str:
    if op.cli:
        return op.kind
    return op.kind if op.kind != "operation_poll" else "operation"


def figure(history: History, verdicts: Mapping[str, Verdict]):
    """The matplotlib figure (the caller closes it)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    rel = history.rel
    end = max(rel(history.finished), history.schedule.duration_s, 1.0)
    fig, (faults_ax, ops_ax, score_ax) = pyplot.subplots(
        3, 1, figsize=(14, 9.5), sharex=True, gridspec_kw={"height_ratios": [1.5, 2.4, 1.6]})

    # Faults: one lane per plane.
    lanes = {plane: i for i, (plane, _) in enumerate(PLANES)}
    placed: dict[str, int] = {}
    for record in sorted(history.faults, key=lambda r: r.applied):
        spec = record.spec
        y = lanes[spec.plane]
        start = rel(record.applied)
        stop = rel(record.until) if record.until != float("inf") else end
        color = OUTAGE if spec.outage else OTHER[spec.plane]
        if spec.one_shot or stop - start < 0.15:
            faults_ax.plot([start, start], [y - 0.35, y + 0.35], color=color, linewidth=2.2)
        else:
            faults_ax.broken_barh([(start, stop - start)], (y - 0.35, 0.7), facecolors=color, alpha=0.55,
                                  edgecolor="black", linewidth=0.4)
        above = placed.get(spec.plane, 0) % 2 == 0  # labels alternate above and below their lane
        placed[spec.plane] = placed.get(spec.plane, 0) + 1
        faults_ax.text(start, y + (0.38 if above else -0.38), f"#{spec.id} {spec.label()}", fontsize=6,
                       va="bottom" if above else "top", clip_on=True)
    faults_ax.set_yticks(range(len(PLANES)), [label for _, label in PLANES], fontsize=8)
    faults_ax.set_ylim(-0.75, len(PLANES) - 0.05)
    faults_ax.set_title(f"seed {history.schedule.seed}: faults (red = outage: silent or down)", fontsize=9, loc="left")

    # Requests: one lane per kind, coloured by outcome.
    bounds = history.settings
    ops = [op for op in history.ops]
    kinds = sorted({_lane(op) for op in ops})
    rows = {kind: i for i, kind in enumerate(kinds)}
    late_ids = _late(history, verdicts)
    for outcome, color, size in (("ok", "tab:green", 9), ("failed", "tab:gray", 9), ("late", "red", 22)):
        xs, ys = [], []
        for op in ops:
            state = "late" if id(op) in late_ids else ("ok" if op.ok else "failed")
            if state == outcome:
                xs.append(rel(op.start))
                ys.append(rows[_lane(op)])
        if xs:
            ops_ax.scatter(xs, ys, s=size, c=color, label={"ok": "answered, success", "failed": "answered in time, "
                                                           "failure", "late": "past its bound / no answer"}[outcome],
                           alpha=0.8, linewidths=0)
    ops_ax.set_yticks(range(len(kinds)), kinds, fontsize=7)
    ops_ax.legend(loc="upper right", fontsize=7, ncol=3)
    ops_ax.set_title("requests (by kind, at their start)", fontsize=9, loc="left")

    # Score and pool size.
    reads = sorted(history.resilience_reads(), key=lambda op: op.end)
    if reads:
        score_ax.plot([rel(op.end) for op in reads], [op.detail["score"] for op in reads], color="tab:blue",
                      linewidth=1.2, marker=".", markersize=3, label="resilience score")
    score_ax.axhline(float(bounds.get("score_min", 75.0)), color="tab:blue", linestyle="--", linewidth=0.8)
    score_ax.set_ylim(-5, 105)
    score_ax.set_ylabel("score", fontsize=8)
    pool_ax = score_ax.twinx()
    steps = pool_size_steps(history)
    pool_ax.step([rel(t) for t, _ in steps] + [end], [n for _, n in steps] + [steps[-1][1]], where="post",
                 color="tab:green", linewidth=1.1, label="backend connections open at the gateway")
    limit = int(bounds.get("pool_limit", 5))
    pool_ax.axhline(limit, color="tab:green", linestyle="--", linewidth=0.8)
    pool_ax.set_ylim(-0.3, max(limit + 1.5, max((n for _, n in steps), default=0) + 1))
    pool_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    pool_ax.set_ylabel("connections", fontsize=8)
    handles = score_ax.get_legend_handles_labels()[0] + pool_ax.get_legend_handles_labels()[0]
    score_ax.legend(handles, [h.get_label() for h in handles], loc="lower right", fontsize=7)
    score_ax.set_xlabel("seconds since the schedule's start (outages shaded; red lines: first violation of an "
                        "invariant)", fontsize=8)

    # Shading and violation markers across the panels.
    from support.nemesis.invariants import outage_intervals
    for start, stop in outage_intervals(history.faults, history.finished):
        for axis in (faults_ax, ops_ax, score_ax):
            axis.axvspan(rel(start), rel(stop), color=OUTAGE, alpha=0.07)
    for verdict in verdicts.values():
        first = verdict.first_at()
        if first is not None:
            for axis in (faults_ax, ops_ax, score_ax):
                axis.axvline(rel(first), color="red", linewidth=1.0, alpha=0.8)
            ops_ax.text(rel(first), len(kinds) - 0.5, f" {verdict.family}", color="red", fontsize=7, va="top")
    score_ax.set_xlim(0, end)
    failed = [v.family for v in verdicts.values() if not v.ok]
    fig.suptitle(f"Nemesis run, seed {history.schedule.seed}, {len(history.schedule.faults)} fault(s): "
                 + (f"FAILED {', '.join(failed)}" if failed else "every invariant held"), fontsize=11)
    fig.tight_layout()
    return fig


def _late(history: History, verdicts: Mapping[str, Verdict]) -> set[int]:
    """The operations the ``bounds`` checker named (matched by their description)."""
    verdict = verdicts.get("bounds")
    if verdict is None or verdict.ok:
        return set()
    texts = " ".join(v.text for v in verdict.violations)
    return {id(op) for op in history.ops if op.describe(history.origin) in texts}


def write_png(history: History, verdicts: Mapping[str, Verdict], path: Path) -> Path:
    """Draw the timeline into ``path`` (PNG)."""
    from matplotlib import pyplot

    fig = figure(history, verdicts)
    try:
        fig.savefig(path, format="png", dpi=90)
    finally:
        pyplot.close(fig)
    return Path(path)
