"""On-disk bar cache: one CSV per symbol and timeframe, replaced atomically on every merge."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ibtargets.refbackend.errors import InvalidInput

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w", "1M")
COLUMNS = ("date", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar; ``date`` is ISO 8601 (``YYYY-MM-DD`` for daily and longer, UTC datetime otherwise)."""

    date: str
    open: float
    high: float
    low: float
    close: float
    volume: float

    def ohlcv(self) -> list[float]:
        """``[open, high, low, close, volume]``."""
        return [self.open, self.high, self.low, self.close, self.volume]


def normalize_symbol(symbol: str) -> str:
    """Upper-case ``symbol`` and check it is a plausible ticker.

    Raises:
        InvalidInput: empty, too long, or with characters a ticker never has.
    """
    text = (symbol or "").strip().upper()
    if not SYMBOL_RE.match(text):
        raise InvalidInput(f"invalid symbol {symbol!r}: 1-32 characters from A-Z 0-9 . _ -")
    return text


def check_timeframe(timeframe: str) -> str:
    """Return ``timeframe`` if it is one of :data:`TIMEFRAMES`.

    Raises:
        InvalidInput: any other value.
    """
    if timeframe not in TIMEFRAMES:
        raise InvalidInput(f"invalid timeframe {timeframe!r}: one of {', '.join(TIMEFRAMES)}")
    return timeframe


class BarStore:
    """Cached bars under ``root``; file names are safe because symbols and timeframes are checked.

    Args:
        root: the cache directory (created on first write).
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, symbol: str, timeframe: str) -> Path:
        """The CSV file of one symbol and timeframe (``1M`` is spelled ``1mo``: file systems may fold case)."""
        tag = "1mo" if timeframe == "1M" else check_timeframe(timeframe)
        return self.root / f"{normalize_symbol(symbol)}_{tag}.csv"

    def read(self, symbol: str, timeframe: str) -> list[Bar] | None:
        """Every cached bar in date order, or None when nothing is cached."""
        path = self.path(symbol, timeframe)
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except FileNotFoundError:
            return None
        return [Bar(r["date"], float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]),
                    float(r["volume"])) for r in rows]

    def merge(self, symbol: str, timeframe: str, bars: list[Bar]) -> int:
        """Add ``bars`` (a bar with a cached date replaces it); return how many bars the file now holds."""
        merged = {b.date: b for b in self.read(symbol, timeframe) or []}
        merged.update((b.date, b) for b in bars)
        ordered = [merged[d] for d in sorted(merged)]
        path = self.path(symbol, timeframe)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(COLUMNS)
                for b in ordered:
                    writer.writerow([b.date, repr(b.open), repr(b.high), repr(b.low), repr(b.close),
                                     repr(b.volume)])
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return len(ordered)

    def cached_series(self) -> list[tuple[str, str]]:
        """``(symbol, timeframe)`` of every cached file."""
        out = []
        if not self.root.is_dir():
            return out
        for path in sorted(self.root.glob("*_*.csv")):
            symbol, _, tag = path.stem.rpartition("_")
            timeframe = "1M" if tag == "1mo" else tag
            if timeframe in TIMEFRAMES and SYMBOL_RE.match(symbol):
                out.append((symbol, timeframe))
        return out

