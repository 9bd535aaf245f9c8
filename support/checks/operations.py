"""Checkers of cancelled operations: a cancel is honoured within the API bound, and the CLI tells the truth
about it."""

from __future__ import annotations

import re

from support.checks.limits import Limits
from support.cli_reading import plain
from support.contract import FINISHED, Operation
from support.run_history import HistoryWindow
from support.verdict import Verdict, Violation

#: What a CLI prints when its cancel did not go through.
CANCEL_FAILED = re.compile(r"(?i)(fail\w*\s+to\s+cancel|could\s*n[o']t\s+cancel|cancel\w*\s+(has\s+)?failed"
                           r"|unable\s+to\s+cancel|error\W+\w*\s*cancel)")


def cancels_honoured(window: HistoryWindow, limits: Limits) -> Verdict:
    """Every cancel ended within the API bound:

    - a ``DELETE /operations/{id}`` the suite sent was answered within the API bound, and every read of that
      operation that asked from the API bound after it on found it finished (cancelled, or already done);
    - a CLI command interrupted (Ctrl-C) while it ran an operation ended within the API bound of the interrupt,
      and never printed that its cancel failed.
    """
    bound = limits.api_response
    violations, judged = [], 0
    for cancel in (r for r in window.exchanges if r.method == "DELETE" and r.path.startswith("/operations/")):
        judged += 1
        if cancel.timed_out or cancel.status is None or cancel.elapsed_s > bound.seconds:
            violations.append(Violation(cancel.started_mono, f"{cancel.describe()[:200]}: past {bound}"))
            continue
        reads = [r for r in window.exchanges if r.method == "GET" and r.path == cancel.path and r.ok
                 and r.started_mono >= cancel.started_mono + bound.seconds]
        running = [r for r in reads if Operation.of(r).status not in FINISHED]
        if running:
            violations.append(Violation(running[0].started_mono,
                                        f"{cancel.path} still {Operation.of(running[0]).status!r} "
                                        f"{running[0].started_mono - cancel.started_mono:.1f} s after its cancel"))
    for run in (r for r in window.cli_runs if r.interrupted_mono is not None):
        judged += 1
        took_s = run.finished_mono - run.interrupted_mono
        if run.timed_out or took_s > bound.seconds:
            violations.append(Violation(run.interrupted_mono + bound.seconds,
                                        f"$ {' '.join(run.argv)} ended {took_s:.1f} s after Ctrl-C, past {bound}"))
        said = [line.strip() for line in plain(run.output).splitlines() if CANCEL_FAILED.search(line)]
        if said:
            violations.append(Violation(run.finished_mono, f"$ {' '.join(run.argv)} printed after Ctrl-C: {said[0][:200]}"))
    return Verdict.over(violations, judged,
                        f"{len(violations)} problem(s) in {judged} cancel(s)",
                        "nothing was cancelled",
                        f"{judged} cancel(s), each honoured within {bound}")
