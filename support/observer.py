"""The observer: keeps the run's history current between and around scenarios (IB records, the backend's output,
liveness samples), on two daemon threads with bounded waits. It never asserts and never injects a fault."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from support.drivers.api import ApiDriver
from support.run_history import OutputLine, RunHistory


class OutputTail:
    """Reads the lines a file gains, each stamped with the read that found it (a partial last line waits)."""

    def __init__(self, path: Path | None, from_end: bool = False, source: str = "backend"):
        self.path = path
        self.source = source
        self.position = 0
        self._partial = b""
        self._last_read = time.monotonic()
        if path is not None and from_end:
            try:
                self.position = path.stat().st_size
            except OSError:
                self.position = 0

    def read(self) -> list[OutputLine]:
        """The complete lines written since the last read."""
        now, after = time.monotonic(), self._last_read
        self._last_read = now
        if self.path is None:
            return []
        try:
            with open(self.path, "rb") as output:
                output.seek(0, 2)
                end = output.tell()
                if end < self.position:      # replaced or truncated: read it again from its start
                    self.position, self._partial = 0, b""
                output.seek(self.position)
                data = output.read()
                self.position = output.tell()
        except OSError:
            return []
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [OutputLine(line.decode("utf-8", errors="replace").rstrip("\r"), now, after, self.source)
                for line in lines]


class Observer:
    """Syncs the history with the IB records and the backend's output every ``sync_every_s``, and samples the
    backend's liveness (``GET /api/v1/health``, no IB involved) every ``sample_every_s``.

    Args:
        history: the run's history.
        output: the backend's output file (None: not visible).
        api_base_url: where the backend's API is while it serves ('' while it starts or stops: no sample then; it
            may move when the backend restarts).
        sample_timeout_s: the sampler's patience (longer than the API bound, so a late answer is measured).
        output_from_end: start reading the output at its current end (an external backend's log with history).
        services: (name, file) of each service the suite started: their lines join the history as ``service NAME``.
    """

    def __init__(self, history: RunHistory, output: Path | None, api_base_url: Callable[[], str],
                 sample_timeout_s: float, sync_every_s: float = 1.0, sample_every_s: float = 0.5,
                 output_from_end: bool = False, services: tuple[tuple[str, Path], ...] = ()):
        self.history = history
        self.tail = OutputTail(output, from_end=output_from_end)
        self.tails = [self.tail, *(OutputTail(path, source=f"service {name}") for name, path in services)]
        self.api_base_url = api_base_url
        self.sample_timeout_s = sample_timeout_s
        self.sync_every_s, self.sample_every_s = sync_every_s, sample_every_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._syncing, name="history-sync", daemon=True),
                         threading.Thread(target=self._sampling, name="liveness", daemon=True)]

    def start(self) -> Observer:
        """Start both threads."""
        for thread in self._threads:
            thread.start()
        return self

    def sync(self) -> None:
        """Read the IB records and the output now (the threads do it every ``sync_every_s``)."""
        with self._lock:
            self.history.sync()
            for tail in self.tails:
                lines = tail.read()
                if lines:
                    self.history.add_output(lines)

    def _syncing(self) -> None:
        while not self._stop.wait(self.sync_every_s):
            try:
                self.sync()
            except Exception as exc:  # an observer error is noted in the history, never raised into a scenario
                self.history.errors.append(f"{time.monotonic():.3f} observer: {exc!r}")

    def _sampling(self) -> None:
        api, url = None, ""
        while not self._stop.wait(self.sample_every_s):
            current = self.api_base_url()
            if not current:
                continue
            if current != url:
                api, url = ApiDriver(current, timeout_s=self.sample_timeout_s), current
            self.history.add_sample(api.health())
            api.transcript.clear()  # the sample is kept in the history, not twice

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop both threads (bounded) and read what is left once."""
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout_s + self.sample_timeout_s)
        self.sync()
