"""Symbols for scenarios, handed out least-recently-used first, so no scenario times a repeated lookup."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence


class SymbolRotation:
    """Real symbols, each handed out again only after all the others.

    Backends may pace repeated lookups of one symbol (KTRDR waits 15 s, IB's own rule for identical
    requests); a scenario that times a request must not measure that pacing by accident.

    Args:
        symbols: symbols the gateway knows (the ``symbols`` setting).
    """

    def __init__(self, symbols: Sequence[str]):
        self._last_used = {symbol: 0.0 for symbol in symbols}
        self._lock = threading.Lock()

    def fresh(self) -> str:
        """The symbol used longest ago (or never)."""
        with self._lock:
            symbol = min(self._last_used, key=self._last_used.__getitem__)
            self._last_used[symbol] = time.monotonic()
            return symbol

    def batch(self, count: int) -> list[str]:
        """``count`` symbols in rotation (repeating only when ``count`` exceeds the list)."""
        return [self.fresh() for _ in range(count)]
