"""Backend output driver: what the backend itself prints (its captured stdout/stderr, or a log file it writes), and
what the services it needs print.

A coroutine that is never awaited shows nowhere but there: Python prints the ``RuntimeWarning`` on the
backend's stderr, not in any HTTP answer. The suite reads the output in slices: a position is taken
before an action and the text written since is judged after it. A service's lines come after the backend's,
each marked ``[service NAME]``, and count alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from threading import Event

from support.drivers.complaints import WARNING_PATTERNS, complaint_lines

#: The most of one slice kept for judging and evidence (the end is kept).
SLICE_MAX_CHARS = 400_000


#: Where the output was: the end of each file (the backend's first, then each service's), as :meth:`position` says.
Position = tuple[int, ...]


@dataclass
class BackendOutput:
    """The files the backend's output goes to, read by byte position.

    Args:
        path: the file (the suite's capture of a backend it started, or ``backend_log`` for one it did not);
            None when nothing the backend prints is visible.
        services: (name, file) of each service the suite started for it.
    """

    path: Path | None = None
    services: tuple[tuple[str, Path], ...] = ()

    @property
    def available(self) -> bool:
        """Whether the backend's output can be read."""
        return self.path is not None

    def _files(self) -> list[Path | None]:
        return [self.path, *(path for _, path in self.services)]

    def position(self) -> Position:
        """The current end of each file (0 for one that does not exist yet)."""
        return tuple(_size(path) for path in self._files())

    def since(self, position: Position | int) -> str:
        """The text written after ``position`` (a file truncated or replaced is read from its start); each service's
        lines marked with its name. A bare number is a position in the backend's own file."""
        marks = (position,) if isinstance(position, int) else tuple(position)
        texts = []
        for index, path in enumerate(self._files()):
            text = _read_from(path, marks[index] if index < len(marks) else 0)
            if index and text:
                name = self.services[index - 1][0]
                text = "".join(f"[service {name}] {line}" for line in text.splitlines(keepends=True))
            texts.append(text)
        return "".join(texts)[-SLICE_MAX_CHARS:]

    def settled(self, quiet_s: float = 0.3, within_s: float = 2.0) -> Position:
        """Wait (bounded by ``within_s``) until the output has not grown for ``quiet_s``; return its end.

        A warning about a coroutine is printed when the coroutine is collected, which can be a moment after the
        answer that caused it; a claim about the output reads it once the backend has stopped writing.
        """
        deadline, pause = time.monotonic() + within_s, Event()
        size, still_since = self.position(), time.monotonic()
        while time.monotonic() < deadline:
            pause.wait(0.05)  # the poll's pacing, bounded by the deadline
            now_size = self.position()
            if now_size != size:
                size, still_since = now_size, time.monotonic()
            elif time.monotonic() - still_since >= quiet_s:
                break
        return size

    def complaints_since(self, position: Position | int) -> list[str]:
        """Lines written after ``position`` that no healthy backend prints (warnings, coroutines, tracebacks)."""
        return complaint_lines(self.since(position), WARNING_PATTERNS)


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _read_from(path: Path | None, position: int) -> str:
    """A file's text after ``position`` (from its start when it is now shorter)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as output:
            output.seek(0, 2)
            end = output.tell()
            output.seek(position if position <= end else 0)
            data = output.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")
