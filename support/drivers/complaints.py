"""What must never appear in what a CLI or a backend prints: the seed's async/coroutine bug and its relatives."""

from __future__ import annotations

import re
from collections.abc import Iterable
from re import Pattern

#: The coroutine family: an un-awaited coroutine, a destroyed pending task, a closed loop, any RuntimeWarning.
COROUTINE_PATTERNS: tuple[Pattern[str], ...] = (
    re.compile(r"RuntimeWarning"),
    re.compile(r"coroutine .* was never awaited"),
    re.compile(r"Task was destroyed but it is pending"),
    re.compile(r"Event loop is closed"),
)
#: A Python traceback.
TRACEBACK_PATTERN: Pattern[str] = re.compile(r"Traceback \(most recent call last\)")
#: Everything a clean CLI command or a backend serving healthy traffic never prints.
WARNING_PATTERNS: tuple[Pattern[str], ...] = (*COROUTINE_PATTERNS, TRACEBACK_PATTERN)


def complaint_lines(text: str, patterns: Iterable[Pattern[str]] = WARNING_PATTERNS) -> list[str]:
    """The lines of ``text`` matching any of ``patterns`` (stripped)."""
    patterns = tuple(patterns)
    return [line.strip() for line in text.splitlines() if any(p.search(line) for p in patterns)]
