"""Append-only, bounded timeline of events (connections, requests, faults, outcomes)."""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from typing import Any


def wall_iso(epoch_s: float | None = None) -> str:
    """ISO 8601 UTC text for an epoch time (now when omitted)."""
    moment = dt.datetime.fromtimestamp(time.time() if epoch_s is None else epoch_s, dt.UTC)
    return moment.isoformat(timespec="milliseconds")


class History:
    """A bounded ring of event dicts, each with ``seq``, ``kind``, ``mono`` and ``wall``.

    ``mono`` is ``time.monotonic()``: on Linux the clock is system-wide, so times
    recorded by the gateway, the proxy and the suite can be compared directly.
    Thread-safe; cheap enough to call from an event loop.

    Args:
        max_events: oldest events are dropped beyond this many.
    """

    def __init__(self, max_events: int = 100_000):
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_events)
        self._seq = 0
        self._lock = threading.Lock()
        self._wall_ms = -1
        self._wall_text = ""

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event and return it."""
        with self._lock:
            self._seq += 1
            now = time.time()
            wall_ms = int(now * 1000)
            if wall_ms != self._wall_ms:  # formatting costs more than the rest of record(): once per ms
                self._wall_ms, self._wall_text = wall_ms, wall_iso(now)
            event = {"seq": self._seq, "kind": kind, "mono": time.monotonic(), "wall": self._wall_text, **fields}
            self._events.append(event)
            return event

    def since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Events with ``seq`` greater than the given one, oldest first (at most ``limit``)."""
        with self._lock:
            out = [e for e in self._events if e["seq"] > seq]
        return out[:limit] if limit else out

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event (0 when empty)."""
        with self._lock:
            return self._seq

    def clear(self) -> None:
        """Forget every event (sequence numbers keep growing)."""
        with self._lock:
            self._events.clear()
