"""Backend output driver: what the backend itself prints (its captured stdout/stderr, or a log file it writes).

A coroutine that is never awaited shows nowhere but there: Python prints the ``RuntimeWarning`` on the
backend's stderr, not in any HTTP answer. The suite reads the output in slices: a position is taken
before an action and the text written since is judged after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from threading import Event

from support.drivers.complaints import WARNING_PATTERNS, complaint_lines

#: The most of one slice kept for judging and evidence (the end is kept).
SLICE_MAX_CHARS = 400_000


@dataclass
class BackendOutput:
    """A file the backend's output goes to, read by byte position.

    Args:
        path: the file (the suite's capture of a backend it started, or ``backend_log`` for one it did not);
            None when nothing the backend prints is visible.
    """

    path: Path | None = None

    @property
    def available(self) -> bool:
        """Whether the backend's output can be read."""
        return self.path is not None

    def position(self) -> int:
        """The current end of the output (0 when the file does not exist yet)."""
        try:
            return self.path.stat().st_size if self.path is not None else 0
        except OSError:
            return 0

    def since(self, position: int) -> str:
        """The text written after ``position`` (from the start if the file was truncated or replaced)."""
        if self.path is None:
            return ""
        try:
            with open(self.path, "rb") as output:
                output.seek(0, 2)
                end = output.tell()
                output.seek(position if position <= end else 0)
                data = output.read()
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")[-SLICE_MAX_CHARS:]

    def settled(self, quiet_s: float = 0.3, within_s: float = 2.0) -> int:
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

    def complaints_since(self, position: int) -> list[str]:
        """Lines written after ``position`` that no healthy backend prints (warnings, coroutines, tracebacks)."""
        return complaint_lines(self.since(position), WARNING_PATTERNS)
