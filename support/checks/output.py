"""Checkers of what the backend and the CLI print: the seed's un-awaited coroutine and its relatives, anywhere."""

from __future__ import annotations

import re

from support.checks import spans
from support.checks.limits import Limits
from support.drivers.complaints import COROUTINE_PATTERNS, TRACEBACK_PATTERN, WARNING_PATTERNS, complaint_lines
from support.run_history import HistoryWindow, OutputLine
from support.verdict import Verdict, Violation


def _traceback_text(lines: tuple[OutputLine, ...], index: int, everything: tuple[OutputLine, ...] = ()) -> str:
    """A traceback's header with the exception line that ends it (the first unindented line after it).

    Args:
        lines: the lines of the traceback's source; ``index``, when ``everything`` is given, is its place there.
    """
    if everything:
        header = everything[index]
        index = next(i for i, line in enumerate(lines) if line is header)
    for later in lines[index + 1:index + 80]:
        if later.text and not later.text[0].isspace():
            return f"{lines[index].text.strip()} … {later.text.strip()[:200]}"
    return lines[index].text.strip()


def _same_source(lines: tuple[OutputLine, ...], source: str) -> tuple[OutputLine, ...]:
    """The lines one process printed (a service's lines may interleave the backend's in the history)."""
    return tuple(line for line in lines if line.source == source)


#: The second line Python prints under an un-awaited coroutine: part of the same warning, not another one.
_TRACEMALLOC_HINT = "Enable tracemalloc to get the object allocation traceback"
#: What makes two printings of one complaint differ: times, addresses, numbers of connections or requests.
_VARYING = re.compile(r"^\d{4}-\d\d-\d\d[ T][\d:.,]+\s*|0x[0-9a-f]+|(?<![:\w])\d+\b")


def _kind(text: str) -> str:
    """A complaint without what varies between its printings (log time, addresses, IDs), to count repeats."""
    return _VARYING.sub("#", text.strip())[:200]


def _short(text: str) -> str:
    """A complaint's telling part: from the warning's name on (the file and line stay in the violation)."""
    for marker in ("RuntimeWarning: ", "Traceback", "Task was destroyed", "Event loop is closed"):
        if marker in text:
            return text[text.index(marker):][:110]
    return text[:110]


def complaint_kind(text: str) -> str:
    """What a complaint is, without where and when it was printed (its telling part, times and numbers out): the
    report groups failures by it (``ibreport.causes``)."""
    return _kind(_short(text))


def nothing_complained(window: HistoryWindow, limits: Limits) -> Verdict:
    """No CLI run printed a warning, an un-awaited coroutine or a traceback (the contract: "in every path"), and
    the backend never printed an un-awaited coroutine, a destroyed pending task, a closed loop or any
    ``RuntimeWarning``, at any time; nor a traceback outside trouble (a disruption and the recovery bound after
    it, the suite changing its pool, the backend stopping: a backend may log the trouble it meets).

    Each distinct complaint is one violation (at its first printing) with how often it was printed."""
    excused = spans.trouble(window, limits)
    found: dict[str, list] = {}   # kind → [first time, text, count]

    def note(at: float, text: str) -> None:
        entry = found.setdefault(_kind(text), [at, text, 0])
        entry[2] += 1

    for run in window.cli_runs:
        for line in complaint_lines(run.output, WARNING_PATTERNS):
            if _TRACEMALLOC_HINT not in line:
                note(run.finished_mono, f"$ {' '.join(run.argv[-4:])} printed: {line[:200]}")
    for index, line in enumerate(window.output):
        if _TRACEMALLOC_HINT in line.text:
            continue
        if any(p.search(line.text) for p in COROUTINE_PATTERNS):
            note(line.mono, f"the {line.source} printed: {line.text.strip()[:240]}")
        elif TRACEBACK_PATTERN.search(line.text) and not spans.overlaps(excused, line.after_mono, line.mono):
            note(line.mono, f"the {line.source} printed, outside trouble: "
                            f"{_traceback_text(_same_source(window.output, line.source), index, window.output)}")
    judged = len(window.cli_runs) + (1 if window.output else 0)
    if found:
        ranked = sorted(found.values(), key=lambda e: -e[2])
        violations = [Violation(at, f"{count} × {text}" if count > 1 else text) for at, text, count in ranked]
        total = sum(count for _, _, count in ranked)
        top = "; ".join(f"{count} × {_short(text)}" for _, text, count in ranked[:3])
        return Verdict.failed(f"{total} complaint(s) of {len(found)} kind(s): {top}", violations, judged)
    if not judged:
        return Verdict.unexercised("no CLI command ran and the backend's output was not visible")
    seen = f"{len(window.cli_runs)} CLI run(s)"
    seen += f" and {len(window.output)} line(s) of the backend's output" if window.output else \
        "; the backend's output was not visible"
    return Verdict.passed(f"nothing complained in {seen}", judged)
