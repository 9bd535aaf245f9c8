"""Markdown for a nemesis run, and for a hunt that found and shrank a failure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from support.nemesis.record import op_counts

if TYPE_CHECKING:
    from support.nemesis.outcome import RunResult
    from support.nemesis.shrink import ShrinkResult


def _schedule_table(schedule) -> list[str]:
    lines = ["| # | fault | plane | start (s) | duration (s) | outage |", "|---|---|---|---|---|---|"]
    for f in schedule.faults:
        lines.append(f"| {f.id} | {f.label()} | {f.plane} | {f.start_s:.1f} | "
                     f"{'one-shot' if f.one_shot else f'{f.duration_s:.1f}'} | {'yes' if f.outage else ''} |")
    return lines


def run_markdown(result: RunResult) -> str:
    """The report of one run: verdicts, violations, the schedule, how to replay it."""
    h = result.history
    status = "every invariant held" if result.ok else f"FAILED: {', '.join(result.failed)}"
    lines = [f"# Nemesis run, seed {result.schedule.seed}", "",
             f"{result.schedule.duration_s:.0f} s schedule, {len(result.schedule.faults)} fault(s), "
             f"{len(h.ops)} operations; {status}." + (f" {result.schedule.note}." if result.schedule.note else ""), "",
             f"Replay: `ib-resilience nemesis --replay {result.out_dir / 'schedule.json'}`", "",
             "![timeline](timeline.png)", "", "## Invariants", "", "| invariant | verdict | |", "|---|---|---|"]
    for v in result.verdicts.values():
        lines.append(f"| {v.family} | {'pass' if v.ok else '**FAIL**'} | {v.summary} |")
    for v in result.verdicts.values():
        if not v.ok:
            lines += ["", f"### {v.family}", "", "```", v.message(h.origin, limit=20), "```"]
    lines += ["", "## Schedule", ""] + _schedule_table(result.schedule)
    applied = [f for f in h.faults if f.error or f.note]
    if applied:
        lines += ["", "Fault notes:", ""] + [f"- #{f.spec.id} {f.spec.label()}: {f.error or f.note}" for f in applied]
    if h.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in h.notes[:40]]
    lines += ["", "## Operations", "", ", ".join(f"{k} {n}" for k, n in op_counts(h).items()), ""]
    return "\n".join(lines)


def hunt_markdown(runs: Sequence[RunResult], shrunk: ShrinkResult | None, elapsed_s: float, title: str,
                  found_after_s: float | None = None) -> str:
    """The report of a series of runs: which seeds passed, the failure found, its minimal schedule."""
    found = "" if found_after_s is None else f" The first failure was found {found_after_s / 60:.1f} min after the start."
    lines = [f"# {title}", "", f"{len(runs)} run(s) in {elapsed_s / 60:.1f} min.{found}", "",
             "| seed | length | faults | verdict | folder |", "|---|---|---|---|---|"]
    for r in runs:
        verdict = "pass" if r.ok else "**FAIL** " + ", ".join(r.failed)
        lines.append(f"| {r.schedule.seed} | {r.schedule.duration_s:.0f} s | {len(r.schedule.faults)} | {verdict} | "
                     f"`{r.out_dir}` |")
    if shrunk is not None:
        m = shrunk.minimal
        lines += ["", "## Minimal schedule", "",
                  f"Shrunk from {len(shrunk.original.schedule.faults)} to {len(m.schedule.faults)} fault(s) in "
                  f"{shrunk.runs} rerun(s), {shrunk.elapsed_s / 60:.1f} min; it still fails "
                  f"{', '.join(m.failed)}.", "", f"Schedule file: `{m.out_dir / 'schedule.json'}` "
                  f"(`ib-resilience nemesis --replay {m.out_dir / 'schedule.json'}`)", "",
                  f"![minimal timeline]({m.out_dir / 'timeline.png'})", ""] + _schedule_table(m.schedule)
        for v in m.verdicts.values():
            if not v.ok:
                lines += ["", "```", v.message(m.history.origin, limit=8), "```"]
        lines += ["", "Shrinking steps:", ""] + [f"- {step}" for step in shrunk.steps]
    return "\n".join(lines) + "\n"


def write_json_summary(path: Path, runs: Sequence[RunResult], shrunk: ShrinkResult | None,
                       found_after_s: float | None = None) -> None:
    """A machine-readable summary next to the Markdown."""
    data: dict = {"runs": [{"seed": r.schedule.seed, "ok": r.ok, "failed": r.failed, "folder": str(r.out_dir),
                            "elapsed_s": round(r.elapsed_s, 1)} for r in runs],
                  "found_after_s": None if found_after_s is None else round(found_after_s, 1)}
    if shrunk is not None:
        data["minimal"] = {"schedule": shrunk.minimal.schedule.to_json(), "failed": shrunk.minimal.failed,
                           "folder": str(shrunk.minimal.out_dir), "reruns": shrunk.runs}
    Path(path).write_text(json.dumps(data, indent=2), encoding="utf-8")
