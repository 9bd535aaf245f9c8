"""Checkers of what the backend cached against what IB served: Jepsen's final read. The reads are made once the
faults are healed (:mod:`support.nemesis.runner`); the checker only compares what they found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from support.verdict import Verdict, Violation


@dataclass(frozen=True)
class CacheRead:
    """One series as the backend cached it, compared with what IB serves for the same range.

    Args:
        symbol, kind, timeframe: the series (``kind``: a load of :data:`support.bars.LOADS`).
        cached: how many cached bars fell inside the range (0: nothing cached).
        mismatches: each cached bar IB did not serve exactly (regular and extended hours both tried).
        error: the read or the comparison could not be made ('' when it was).
    """

    symbol: str
    kind: str
    timeframe: str
    cached: int = 0
    mismatches: tuple[str, ...] = ()
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return {"symbol": self.symbol, "kind": self.kind, "timeframe": self.timeframe, "cached": self.cached,
                "mismatches": list(self.mismatches), "error": self.error}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> CacheRead:
        """A read written by :meth:`to_json`."""
        return CacheRead(str(data["symbol"]), str(data["kind"]), str(data.get("timeframe", "")),
                         int(data.get("cached") or 0), tuple(data.get("mismatches") or ()), str(data.get("error") or ""))


def cached_bars_true(reads: Sequence[CacheRead], at_mono: float) -> Verdict:
    """Every cached bar of every series read is a bar IB served (regular or extended hours, whichever the backend
    asked for); a read that could not be made is a violation too (at ``at_mono``, when the reads were made)."""
    violations, judged = [], 0
    for read in reads:
        if read.error:
            violations.append(Violation(at_mono, f"{read.symbol} {read.kind}: {read.error}"))
            continue
        if not read.cached:
            continue
        judged += 1
        if read.mismatches:
            violations.append(Violation(at_mono, f"{read.symbol} {read.kind}: {len(read.mismatches)} cached bar(s) "
                                                 f"IB did not serve: {'; '.join(read.mismatches[:5])}"))
    if violations:
        return Verdict.failed(f"{len(violations)} of {len(reads)} series read wrong or unreadable", violations,
                              max(judged, 1))
    if not judged:
        return Verdict.unexercised(f"no cached bar to compare ({len(reads)} series read, none cached)")
    bars = sum(r.cached for r in reads)
    return Verdict.passed(f"{bars} cached bar(s) of {judged} series, each one IB served", judged)
