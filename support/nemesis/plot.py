"""The timeline of a nemesis run: faults as bands per plane, requests coloured by outcome, the score, the pool.

Three panels over seconds since the schedule's start, sharing the x axis:

- faults: one lane per plane (simulator, proxy, client-side: squatters and cleanups), a band per window
  (a tick for a one-shot fault), outages in red, the rest in amber/blue;
- requests: one lane per kind of exchange or CLI command, a point at each invocation — green answered and
  successful, grey answered with a failure, red named by the ``bounds`` verdict (past its bound or unanswered);
- the resilience score (line, the 75 threshold dashed) and the backend's connections open at the gateway
  (step line on the right axis, the pool limit dashed: :func:`support.checks.pool.pool_size_steps`).

Outage windows (:func:`support.checks.spans.outages`) are shaded across every panel; each failed verdict's first
violation is a vertical red line. Everything is read from the run's window, its nemesis facts and its verdicts.
"""

from __future__ import annotations

import re
from pathlib import Path

from support.checks import pool, spans
from support.contract import ResilienceReport
from support.drivers.api import ApiResponse
from support.drivers.cli import CliRun
from support.nemesis.outcome import RunResult
from support.verdict import FAIL

PLANES = (("gateway", "simulator"), ("proxy", "proxy"), ("client", "client-side"))
OUTAGE = "tab:red"
OTHER = {"gateway": "tab:orange", "proxy": "tab:blue", "client": "tab:purple"}
#: Path segments that name one thing (an operation, a symbol, a timeframe), folded into one lane.
_IDS = ((re.compile(r"^/operations/[^/]+$"), "/operations/{id}"), (re.compile(r"^/data/(?!load$)[^/]+/[^/]+$"),
                                                                   "/data/{symbol}/{timeframe}"))


def request_kind(request: ApiResponse | CliRun) -> str:
    """The lane of an exchange (``POST /ib/symbols/discover``) or a CLI run (``cli: ib status``)."""
    if isinstance(request, CliRun):
        words = [w for w in request.argv if not w.startswith(("/", "."))]
        at = next((i for i, w in enumerate(words) if w in ("ib", "data")), 0)
        return "cli: " + " ".join(words[at:at + 2])
    path = request.path
    for pattern, folded in _IDS:
        if pattern.match(path):
            path = folded
    return f"{request.method} {path}"


def _late(result: RunResult) -> set[int]:
    """The exchanges and CLI runs the ``bounds`` verdict named (matched by the text it quotes)."""
    verdict = result.verdicts.get("bounds")
    if verdict is None or verdict.status != FAIL:
        return set()
    texts = " ".join(v.text for v in verdict.violations)
    window = result.window
    late = {id(r) for r in window.exchanges if f"{window.rel(r.started_mono):.2f} s {r.describe()[:60]}" in texts}
    late |= {id(run) for run in window.cli_runs if f"$ {' '.join(run.argv)} took {run.elapsed_s:.1f} s" in texts}
    return late


def figure(result: RunResult):
    """The matplotlib figure (the caller closes it)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    window, run, limits = result.window, result.run, result.limits
    rel = run.rel
    end = max(rel(run.finished_mono), run.schedule.duration_s, 1.0)
    fig, (faults_ax, ops_ax, score_ax) = pyplot.subplots(
        3, 1, figsize=(14, 9.5), sharex=True, gridspec_kw={"height_ratios": [1.5, 2.4, 1.6]})

    # Faults: one lane per plane; outages (the fault catalogue's) in red.
    by_name = {f.fault.name: f for f in window.faults}
    lanes = {plane: i for i, (plane, _) in enumerate(PLANES)}
    placed: dict[str, int] = {}
    for spec, note in run.applied():
        if note.error:
            continue
        y = lanes[spec.plane]
        start = rel(note.applied_mono)
        stop = rel(note.healed_mono) if note.healed_mono is not None else end
        plane_window = by_name.get(f"nemesis-{spec.id}-{spec.kind}")
        outage = (plane_window is not None and not plane_window.fault.one_shot
                  and plane_window.fault.outage(spans.PROBE))
        color = OUTAGE if outage else OTHER[spec.plane]
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
    faults_ax.set_title(f"seed {run.schedule.seed}: faults (red = outage: silent or down)", fontsize=9, loc="left")

    # Requests: one lane per kind, coloured by outcome.
    requests: list[ApiResponse | CliRun] = [*window.exchanges, *window.cli_runs]
    kinds = sorted({request_kind(r) for r in requests})
    rows = {kind: i for i, kind in enumerate(kinds)}
    late = _late(result)

    def state(request: ApiResponse | CliRun) -> str:
        if id(request) in late:
            return "late"
        ok = request.ok if isinstance(request, ApiResponse) else request.exit_code == 0 and not request.timed_out
        return "ok" if ok else "failed"
    for outcome, color, size in (("ok", "tab:green", 9), ("failed", "tab:gray", 9), ("late", "red", 22)):
        chosen = [r for r in requests if state(r) == outcome]
        if chosen:
            ops_ax.scatter([rel(r.started_mono) for r in chosen], [rows[request_kind(r)] for r in chosen], s=size,
                           c=color, label={"ok": "answered, success", "failed": "answered, failure",
                                           "late": "past its bound / no answer"}[outcome], alpha=0.8, linewidths=0)
    ops_ax.set_yticks(range(len(kinds)), kinds, fontsize=7)
    ops_ax.legend(loc="upper right", fontsize=7, ncol=3)
    ops_ax.set_title("requests (by kind, at their start)", fontsize=9, loc="left")

    # Score and pool size.
    reads = sorted(((r.finished_mono, ResilienceReport.of(r).score) for r in window.exchanges_to("/ib/resilience")
                    if r.ok), key=lambda point: point[0])
    reads = [(at, score) for at, score in reads if score is not None]
    if reads:
        score_ax.plot([rel(at) for at, _ in reads], [score for _, score in reads], color="tab:blue",
                      linewidth=1.2, marker=".", markersize=3, label="resilience score")
    score_ax.axhline(limits.score_min, color="tab:blue", linestyle="--", linewidth=0.8)
    score_ax.set_ylim(-5, 105)
    score_ax.set_ylabel("score", fontsize=8)
    pool_ax = score_ax.twinx()
    steps = pool.pool_size_steps(window)
    pool_ax.step([rel(t) for t, _ in steps] + [end], [n for _, n in steps] + [steps[-1][1]], where="post",
                 color="tab:green", linewidth=1.1, label="backend connections open at the gateway")
    pool_ax.axhline(limits.pool_limit, color="tab:green", linestyle="--", linewidth=0.8)
    pool_ax.set_ylim(-0.3, max(limits.pool_limit + 1.5, max((n for _, n in steps), default=0) + 1))
    pool_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    pool_ax.set_ylabel("connections", fontsize=8)
    handles = score_ax.get_legend_handles_labels()[0] + pool_ax.get_legend_handles_labels()[0]
    score_ax.legend(handles, [h.get_label() for h in handles], loc="lower right", fontsize=7)
    score_ax.set_xlabel("seconds since the schedule's start (outages shaded; red lines: first violation of a "
                        "verdict)", fontsize=8)

    # Shading and violation markers across the panels.
    for start, stop in spans.outages(window):
        for axis in (faults_ax, ops_ax, score_ax):
            axis.axvspan(rel(start), rel(stop), color=OUTAGE, alpha=0.07)
    for family, verdict in result.verdicts.items():
        first = verdict.first_at() if verdict.status == FAIL else None
        if first is not None:
            for axis in (faults_ax, ops_ax, score_ax):
                axis.axvline(rel(first), color="red", linewidth=1.0, alpha=0.8)
            ops_ax.text(rel(first), len(kinds) - 0.5, f" {family}", color="red", fontsize=7, va="top")
    score_ax.set_xlim(0, end)
    fig.suptitle(f"Nemesis run, seed {run.schedule.seed}, {len(run.schedule.faults)} fault(s): "
                 + (f"FAILED {', '.join(result.failed)}" if result.failed else "no verdict failed"), fontsize=11)
    fig.tight_layout()
    return fig


def write_png(result: RunResult, path: Path) -> Path:
    """Draw the timeline into ``path`` (PNG)."""
    from matplotlib import pyplot

    fig = figure(result)
    try:
        fig.savefig(path, format="png", dpi=90)
    finally:
        pyplot.close(fig)
    return Path(path)
