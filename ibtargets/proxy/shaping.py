"""One direction of a proxied connection: write straight through, or through a timed queue for latency, bandwidth and slicing."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Callable
from dataclasses import dataclass

from ibtargets.common.faults import Bandwidth, Latency, Slicer

#: Bandwidth is paced in pieces of this much line time, so throughput stays smooth.
PACING_PIECE_S = 0.01


@dataclass(frozen=True)
class Shaping:
    """The transport faults acting on one direction of one connection (None = off)."""

    latency: Latency | None = None
    bandwidth: Bandwidth | None = None
    slicer: Slicer | None = None

    @property
    def active(self) -> bool:
        """Whether any byte must go through the timed queue."""
        return self.latency is not None or self.bandwidth is not None or self.slicer is not None


@dataclass
class _Item:
    release_at: float  # loop time
    data: bytes
    slice_bytes: int  # 0 = write whole
    slice_gap_s: float


class Pipe:
    """Bytes for one destination transport, in order, shaped by :class:`Shaping`.

    With no shaping and nothing queued, :meth:`send` writes at once (the fast path,
    byte-for-byte the same chunks). Otherwise chunks get a release time and a
    flusher task writes them when due. Queued bytes are bounded: above
    ``max_queue_bytes`` ``on_full`` is called (the pair stops reading the source),
    and ``on_drained`` once half of it has gone.

    Args:
        name: ``upstream`` (client → gateway) or ``downstream``.
        max_queue_bytes: shaped bytes held before the source is paused.
        on_full: called when the queue passes the bound.
        on_drained: called when it falls back under half the bound.
    """

    def __init__(self, name: str, max_queue_bytes: int, on_full: Callable[[], None],
                 on_drained: Callable[[], None]):
        self.name = name
        self.dest: asyncio.Transport | None = None
        self.shaping = Shaping()
        self.forwarded_bytes = 0
        self._max_queue_bytes = max_queue_bytes
        self._on_full = on_full
        self._on_drained = on_drained
        self._full = False
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued_bytes = 0
        self._writable = asyncio.Event()
        self._writable.set()
        self._flusher: asyncio.Task[None] | None = None
        self._last_release = 0.0
        self._line_free_at = 0.0
        self._close_when_flushed = False

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the timed queue."""
        return self._queued_bytes

    def set_writable(self, writable: bool) -> None:
        """Follow the destination's flow control (pause_writing / resume_writing)."""
        if writable:
            self._writable.set()
        else:
            self._writable.clear()

    def send(self, data: bytes) -> None:
        """Forward ``data`` now or at its shaped release time."""
        if not data or self.dest is None or self.dest.is_closing():
            return
        if not self.shaping.active and not self._queue:
            self.dest.write(data)
            self.forwarded_bytes += len(data)
            return
        self._enqueue(data)

    def finish(self) -> None:
        """Close the destination once the queue has been written (at once when empty)."""
        if self.dest is None:
            return
        if self._queue and not self.dest.is_closing():
            self._close_when_flushed = True
        else:
            self.dest.close()

    def cancel(self) -> None:
        """Forget queued bytes and stop the flusher."""
        self._queue.clear()
        self._queued_bytes = 0
        if self._flusher is not None:
            self._flusher.cancel()

    # ------------------------------------------------------------------ timed queue

    def _enqueue(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        shaping = self.shaping
        release = now
        if shaping.latency is not None:
            jitter_ms = random.uniform(-shaping.latency.jitter_ms, shaping.latency.jitter_ms)
            release += max(0.0, shaping.latency.latency_ms + jitter_ms) / 1000.0
        release = max(release, self._last_release)  # TCP never reorders: jitter cannot either
        slice_bytes = shaping.slicer.max_chunk_bytes if shaping.slicer is not None else 0
        gap_s = shaping.slicer.delay_us / 1e6 if shaping.slicer is not None else 0.0
        pieces = [data]
        if shaping.bandwidth is not None:
            rate_bps = shaping.bandwidth.rate_kbps * 1000.0
            step = max(1, int(rate_bps * PACING_PIECE_S))
            pieces = [data[i:i + step] for i in range(0, len(data), step)]
        for piece in pieces:
            if shaping.bandwidth is not None:
                start = max(release, self._line_free_at)
                release = start + len(piece) / (shaping.bandwidth.rate_kbps * 1000.0)
                self._line_free_at = release
            self._queue.append(_Item(release, piece, slice_bytes, gap_s))
        self._last_release = release
        self._queued_bytes += len(data)
        if not self._full and self._queued_bytes > self._max_queue_bytes:
            self._full = True
            self._on_full()
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            item = self._queue[0]
            delay = item.release_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._writable.wait()
            dest = self.dest
            if dest is None or dest.is_closing():
                self.cancel()
                return
            if item.slice_bytes and len(item.data) > item.slice_bytes:
                chunk, item.data = item.data[:item.slice_bytes], item.data[item.slice_bytes:]
                # Spacing from the actual write keeps slices apart even when the loop runs late.
                item.release_at = loop.time() + item.slice_gap_s
                if item.slice_gap_s == 0:
                    await asyncio.sleep(0)  # one write per loop turn: separate segments where possible
            else:
                chunk = item.data
                self._queue.popleft()
            dest.write(chunk)
            self.forwarded_bytes += len(chunk)
            self._queued_bytes -= len(chunk)
            if self._full and self._queued_bytes <= self._max_queue_bytes // 2:
                self._full = False
                self._on_drained()
        if self._close_when_flushed and self.dest is not None:
            self.dest.close()
