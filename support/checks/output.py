"""Checkers of what the backend and the CLI print: the seed's un-awaited coroutine and its relatives, anywhere."""

from __future__ import annotations

from support.checks import spans
from support.checks.limits import Limits
from support.drivers.complaints import COROUTINE_PATTERNS, TRACEBACK_PATTERN, WARNING_PATTERNS, complaint_lines
from support.run_history import HistoryWindow, OutputLine
from support.verdict import Verdict, Violation


def _traceback_text(lines: tuple[OutputLine, ...], index: int) -> str:
    """A traceback's header with the exception line that ends it (the first unindented line after it)."""
    for later in lines[index + 1:index + 80]:
        if later.text and not later.text[0].isspace():
            return f"{lines[index].text.strip()} … {later.text.strip()[:200]}"
    return lines[index].text.strip()


def nothing_complained(window: HistoryWindow, limits: Limits) -> Verdict:
    """No CLI run printed a warning, an un-awaited coroutine or a traceback (the contract: "in every path"), and
    the backend never printed an un-awaited coroutine, a destroyed pending task, a closed loop or any
    ``RuntimeWarning``, at any time; nor a traceback outside trouble (a fault and the recovery bound after it, the
    suite changing its pool, the backend stopping: a backend may log the trouble it meets)."""
    violations: list[Violation] = []
    for run in window.cli_runs:
        for line in complaint_lines(run.output, WARNING_PATTERNS)[:3]:
            violations.append(Violation(run.finished_mono, f"$ {' '.join(run.argv)} printed: {line[:200]}"))
    excused = spans.trouble(window, limits)
    coroutine_lines = traceback_lines = 0
    for index, line in enumerate(window.output):
        if any(p.search(line.text) for p in COROUTINE_PATTERNS):
            coroutine_lines += 1
            if coroutine_lines <= 20:
                violations.append(Violation(line.mono, f"the backend printed: {line.text.strip()[:240]}"))
        elif TRACEBACK_PATTERN.search(line.text) and not spans.overlaps(excused, line.after_mono, line.mono):
            traceback_lines += 1
            if traceback_lines <= 10:
                violations.append(Violation(line.mono, f"the backend printed, nothing disturbing it: "
                                                       f"{_traceback_text(window.output, index)}"))
    judged = len(window.cli_runs) + (1 if window.output else 0)
    if violations:
        counts = []
        if coroutine_lines:
            counts.append(f"{coroutine_lines} coroutine/RuntimeWarning line(s) from the backend")
        if traceback_lines:
            counts.append(f"{traceback_lines} traceback(s) from the backend outside trouble")
        cli = sum(1 for v in violations if v.text.startswith("$ "))
        if cli:
            counts.append(f"{cli} complaint line(s) in {len(window.cli_runs)} CLI run(s)")
        return Verdict.failed("; ".join(counts), violations, judged)
    if not judged:
        return Verdict.unexercised("no CLI command ran and the backend's output was not visible")
    seen = f"{len(window.cli_runs)} CLI run(s)"
    seen += f" and {len(window.output)} line(s) of the backend's output" if window.output else \
        "; the backend's output was not visible"
    return Verdict.passed(f"nothing complained in {seen}", judged)
