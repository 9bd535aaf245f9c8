"""Markdown for a nemesis run, and for a hunt that found and shrank a failure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from support.nemesis import judge
from support.verdict import FAIL, NOT_EXERCISED

if TYPE_CHECKING:
    from support.nemesis.outcome import RunResult
    from support.nemesis.shrink import ShrinkResult


def _schedule_table(schedule) -> list[str]:
    lines = ["| # | fault | plane | start (s) | duration (s) | outage |", "|---|---|---|---|---|---|"]
    for f in schedule.faults:
        lines.append(f"| {f.id} | {f.label()} | {f.plane} | {f.start_s:.1f} | "
                     f"{'one-shot' if f.one_shot else f'{f.duration_s:.1f}'} | {'yes' if f.outage else ''} |")
    return lines


def _request_counts(result: RunResult) -> dict[str, int]:
    """How many exchanges and CLI runs of each kind the run made."""
    from support.nemesis.plot import request_kind

    counts: dict[str, int] = {}
    for request in (*result.window.exchanges, *result.window.cli_runs):
        kind = request_kind(request)
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


_SHOWN = {FAIL: "**FAIL**", NOT_EXERCISED: "not exercised"}


def run_markdown(result: RunResult) -> str:
    """The report of one run: verdicts, violations, the schedule, how to replay it."""
    run, window = result.run, result.window
    status = "no verdict failed" if result.ok else f"FAILED: {', '.join(result.failed)}"
    requests = len(window.exchanges) + len(window.cli_runs)
    lines = [f"# Nemesis run, seed {result.schedule.seed}", "",
             f"{result.schedule.duration_s:.0f} s schedule, {len(result.schedule.faults)} fault(s), "
             f"{requests} requests and commands; {status}."
             + (f" {result.schedule.note}." if result.schedule.note else ""), "",
             f"Replay: `ib-resilience nemesis --replay {result.out_dir / 'schedule.json'}`; judge the written history "
             f"again: `ib-resilience nemesis --judge {result.out_dir}`", "",
             "![timeline](timeline.png)", "", "## Verdicts (support/checks over the run's history)", "",
             "| family | requirement | verdict | |", "|---|---|---|---|"]
    for family, v in result.verdicts.items():
        lines.append(f"| {family} | {judge.title(family)} | {_SHOWN.get(v.status, 'pass')} | {v.message} |")
    for family, v in result.verdicts.items():
        if v.status == FAIL:
            lines += ["", f"### {family}", "", "```", v.detail(run.origin_mono, limit=20), "```"]
    lines += ["", "## Schedule", ""] + _schedule_table(result.schedule)
    noted = [(spec, note) for spec, note in run.applied() if note.error or note.note]
    if noted:
        lines += ["", "Fault notes (planned versus applied):", ""]
        lines += [f"- #{spec.id} {spec.label()} at {run.rel(note.applied_mono):.1f} s: {note.error or note.note}"
                  for spec, note in noted]
    if run.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in run.notes[:40]]
    lines += ["", "## Requests", "", ", ".join(f"{k} {n}" for k, n in _request_counts(result).items()), ""]
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
        for family, v in m.verdicts.items():
            if v.status == FAIL:
                lines += ["", "```", f"{family}: {v.detail(m.run.origin_mono, limit=8)}", "```"]
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
