"""Checkers: invariants over a whole nemesis history. They never inject faults, never wait, never ask the system.

Each checker is one family of the contract's claims (``shared/contract.md``), judged over every operation and
every fault of the run, overlapping ones included:

====================  ==========================================================================================
``bounds``            every request answered within its bound: API 5 s, CLI 30 s, a data load that asked IB for
                      bars the load bound (90 s)
``score``             below 75 from 5 s after an outage began until it ended; at least 75 from 10 s after the
                      last disturbance, while nothing disturbs the gateway
``pool_limit``        never more backend connections open at the gateway than the pool allows
``cleanup``           after a cleanup answered, every connection the backend had pooled is closed once its
                      current use ends: no client ID stays held
``cached_bars``       every cached bar of every series the workload loaded is a bar IB serves
``output``            no warning or traceback in any CLI transcript, no un-awaited coroutine (or other
                      RuntimeWarning) in the backend's output
``recovery``          after the last heal the backend serves a discovery within 10 s
====================  ==========================================================================================

A claim that the history gives no chance to test is counted as not exercised, never as passed silently.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from support.drivers.complaints import COROUTINE_PATTERNS, WARNING_PATTERNS, complaint_lines
from support.nemesis.record import Connection, FaultRecord, History, Op

#: Families in report order.
FAMILIES = ("bounds", "score", "pool_limit", "cleanup", "cached_bars", "output", "recovery")


@dataclass(frozen=True)
class Bounds:
    """The bounds the checkers judge by (the seed's thresholds, after the timeout multiplier)."""

    api_response_s: float = 5.0
    cli_command_s: float = 30.0
    load_s: float = 90.0               # a data load that really asked IB for bars (the suite's load bound)
    silent_detection_s: float = 5.0
    recovery_s: float = 10.0
    score_min: float = 75.0
    pool_limit: int = 5
    connect_s: float = 5.0             # a connection whose API session began this recently may still be opening


@dataclass(frozen=True)
class Violation:
    """One counterexample: when (monotonic) and what."""

    at: float
    text: str


@dataclass(frozen=True)
class Verdict:
    """A checker's answer over the whole history."""

    family: str
    ok: bool
    summary: str
    violations: tuple[Violation, ...] = ()
    exercised: int = 0

    def __bool__(self) -> bool:
        return self.ok

    def first_at(self) -> float | None:
        """The earliest violation (monotonic), None when there is none."""
        return min((v.at for v in self.violations), default=None)

    def message(self, origin: float = 0.0, limit: int = 12) -> str:
        """The summary and the first violations, times relative to ``origin``."""
        lines = [f"{self.family}: {self.summary}"]
        lines += [f"  {v.at - origin:8.2f} s  {v.text}" for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"  … {len(self.violations) - limit} more")
        return "\n".join(lines)


def _verdict(family: str, violations: list[Violation], exercised: int, what: str) -> Verdict:
    violations.sort(key=lambda v: v.at)
    if violations:
        return Verdict(family, False, f"{len(violations)} violation(s) over {exercised} {what}", tuple(violations),
                       exercised)
    if not exercised:
        return Verdict(family, True, f"not exercised: no {what} in this history", (), 0)
    return Verdict(family, True, f"held over {exercised} {what}", (), exercised)


# ----------------------------------------------------------------------------- request bounds


def bounds(history: History, b: Bounds) -> Verdict:
    """Every request answered within its bound, whatever the faults did.

    API calls: 5 s. CLI commands: 30 s. A synchronous data load during which the gateway received a
    historical-data request from the backend is a load really asking IB for bars: the load bound; so is an
    asynchronous operation from its start to its end. A request with no answer at all (refused, reset, or
    the client's own patience ran out) is a violation.
    """
    own = history.own_conn_ids()
    historical = sorted(float(e["mono"]) for e in history.gateway_events
                        if e.get("kind") == "request" and e.get("type") == "reqHistoricalData"
                        and int(e.get("conn_id") or 0) not in own)
    violations, judged = [], 0
    for op in history.ops:
        if op.process == "final" and op.kind == "oracle":
            continue
        judged += 1
        if op.cli:
            bound, what = b.cli_command_s, "CLI bound"
        elif op.kind == "operation":
            bound, what = b.load_s, "load bound"
        elif op.kind == "load_sync" and any(op.start <= t <= op.end for t in historical):
            bound, what = b.load_s, "load bound (it asked IB for bars)"
        else:
            bound, what = b.api_response_s, "API bound"
        if op.timed_out or op.status is None:
            why = "no answer within the client's patience" if op.timed_out else "no answer at all"
            violations.append(Violation(op.start, f"{op.describe(history.origin)}: {why} ({what} {bound:g} s)"))
        elif op.elapsed_s > bound:
            violations.append(Violation(op.start + bound, f"{op.describe(history.origin)}: past the {what} "
                                                          f"of {bound:g} s"))
    return _verdict("bounds", violations, judged, "requests")


# ----------------------------------------------------------------------------- the score


def outage_intervals(faults: Sequence[FaultRecord], end: float) -> list[tuple[float, float]]:
    """The union of the outage faults' windows (merged where they touch or overlap)."""
    spans = sorted((f.applied, min(f.until, end)) for f in faults if f.spec.outage and not f.error)
    merged: list[tuple[float, float]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def disturbances(history: History) -> list[tuple[float, float]]:
    """Every window during which anything disturbed the gateway or the pool: each fault (a one-shot fault at its
    moment), each cleanup call, and the run's start (a backend that just started)."""
    spans = [(history.origin - 1e9, history.origin)]
    for f in history.faults:
        if f.error and f.spec.kind != "cleanup":
            continue
        spans.append((f.applied, min(f.until, history.finished) if f.until != float("inf") else history.finished))
    # Every cleanup closes the pool, the final one (not a scheduled fault) included.
    spans += [(op.start, op.end) for op in history.ops if op.kind in ("cleanup", "cli:ib cleanup")]
    return spans


def score(history: History, b: Bounds) -> Verdict:
    """The score is honest under overlapping faults.

    During an outage (the union of every silent / down fault's window, whatever else was on): every report
    that began ``silent_detection_s`` after the outage began and ended before it ended is below
    ``score_min``. With a healthy gateway: every report that began ``recovery_s`` after the end of the latest
    disturbance (any fault, a cleanup, the backend's start) and ended before the next one began is at least
    ``score_min``. An outage followed by a quiet stretch long enough to hold such a report is "exercised"
    for recovery; each outage long enough to hold a report after the detection bound is exercised for the fall.
    """
    reads = history.resilience_reads()
    outages = outage_intervals(history.faults, history.finished)
    spans = disturbances(history)
    violations, fell, recovered = [], 0, 0
    for start, stop in outages:
        during = [r for r in reads if r.start >= start + b.silent_detection_s and r.end <= stop]
        fell += bool(during)
        for r in during:
            if r.detail["score"] >= b.score_min:
                violations.append(Violation(r.start, f"score {r.detail['score']:g} ≥ {b.score_min:g} "
                                            f"{r.start - start:.1f} s into an outage (from "
                                            f"{history.rel(start):.1f} s to {history.rel(stop):.1f} s): "
                                            f"{r.describe(history.origin)}"))
    judged_quiet: list[Op] = []
    for r in reads:
        last_end = max((stop for s, stop in spans if s <= r.end), default=None)
        if last_end is None or any(s <= r.end and stop > r.start - b.recovery_s for s, stop in spans):
            continue  # something disturbed the gateway within the recovery bound before or during the report
        judged_quiet.append(r)
        if r.detail["score"] < b.score_min:
            violations.append(Violation(r.start, f"score {r.detail['score']:g} < {b.score_min:g} "
                                        f"{r.start - last_end:.1f} s after the last disturbance ended "
                                        f"(at {history.rel(last_end):.1f} s), nothing on since: "
                                        f"{r.describe(history.origin)}"))
    for _, stop in outages:
        # Recovery from this outage is judged when a quiet report follows it with nothing new begun between.
        recovered += any(r.start >= stop + b.recovery_s and not any(stop < s <= r.end for s, _ in spans)
                         for r in judged_quiet)
    return _verdict("score", violations, fell + len(judged_quiet),
                    f"outage report windows and quiet reports ({fell} outage(s) judged for the fall, "
                    f"{recovered} followed by a judged recovery)")


# ----------------------------------------------------------------------------- the pool limit


def pool_limit(history: History, b: Bounds) -> Verdict:
    """The simulator never had more of the backend's connections open at once than the pool allows."""
    conns = history.backend_connections()
    edges = sorted([(c.opened, 1, c) for c in conns] + [(c.closed, -1, c) for c in conns if c.closed is not None],
                   key=lambda e: (e[0], e[1]))
    level, violations, open_now = 0, [], set()
    for at, step, conn in edges:
        level += step
        if step > 0:
            open_now.add(conn.conn_id)
        else:
            open_now.discard(conn.conn_id)
        if level > b.pool_limit:
            ids = sorted(c.client_id for c in conns if c.conn_id in open_now)
            violations.append(Violation(at, f"{level} backend connections open at once (client IDs {ids}); "
                                            f"the pool allows {b.pool_limit}"))
    return _verdict("pool_limit", violations[:20], len(conns), "backend connections")


def pool_size_steps(history: History) -> list[tuple[float, int]]:
    """(time, backend connections open) after every change, for the plot's step line."""
    conns = history.backend_connections()
    edges = sorted([(c.opened, 1) for c in conns] + [(c.closed, -1) for c in conns if c.closed is not None])
    before = [step for at, step in edges if at <= history.origin]   # opened while the backend got ready
    level = sum(before)
    out = [(history.origin, level)]
    for at, step in edges[len(before):]:
        level += step
        out.append((at, level))
    return out


# ----------------------------------------------------------------------------- cleanup


#: Requests a backend sends while it uses a connection (the validation and the data requests); each is answered.
_USE_REQUESTS = ("reqCurrentTime", "reqContractDetails", "reqHistoricalData", "reqHeadTimeStamp")


def _answer_time(conn: Connection, sent: float, kind: str, req_id: object) -> float | None:
    """When the simulator answered a request (None: never)."""
    return next((t for t, akind, rid in conn.answers if t >= sent and (
        (req_id is not None and rid == req_id) or (req_id is None and akind == kind))), None)


def _use_deadline(conn: Connection, answered: float, b: Bounds, lost: Sequence[tuple[float, float]] = ()) -> float:
    """When a connection pooled before a cleanup that answered at ``answered`` must be closed: ``api_response_s``
    after the later of that answer and the end of the use it was in (from its last validation before the answer:
    its requests sent until ``api_response_s`` after it, each answered, or the load bound after it was sent
    when it never was). An answer the simulator wrote while the proxy dropped answers (``lost`` windows) never
    reached the backend: it counts as never answered."""
    validations = [t for t, kind, _ in conn.requests if kind == "reqCurrentTime" and t <= answered]
    use_start = max(validations, default=conn.opened)
    ends = [answered]
    for sent, kind, req_id in conn.requests:
        if kind not in _USE_REQUESTS or not use_start <= sent <= answered + b.api_response_s:
            continue
        reply = _answer_time(conn, sent, kind, req_id)
        if reply is not None and any(start <= reply <= stop for start, stop in lost):
            reply = None
        ends.append(sent + b.load_s - b.api_response_s if reply is None else reply)
    return max(ends) + b.api_response_s


def cleanup(history: History, b: Bounds) -> Verdict:
    """After every cleanup that answered, no client ID stays held.

    For a cleanup that answered success between ``s`` and ``e``: every backend connection the simulator had open
    at ``s`` whose API session began at least ``connect_s`` before (it was pooled, not being opened) must be
    closed within ``api_response_s`` after ``e`` — or, when a client was using it then, within
    ``api_response_s`` of the end of that use (its last answer; the load bound for a request never answered).
    A deadline beyond the end of the history is not judged.
    """
    conns = history.backend_connections()
    lost = [(f.applied, min(f.until, history.finished)) for f in history.faults if f.spec.kind == "silence"]
    violations, judged = [], 0
    cleanups = [op for op in history.ops if op.ok and (op.kind == "cleanup" or op.kind == "cli:ib cleanup")]
    for op in cleanups:
        s, e = op.start, op.end
        for conn in conns:
            if not conn.open_at(s) or conn.opened > s - b.connect_s:
                continue
            deadline = _use_deadline(conn, e, b, lost)
            if deadline > history.finished:
                continue
            judged += 1
            if conn.closed is None or conn.closed > deadline:
                held = "still open at the end" if conn.closed is None else f"closed {conn.closed - e:.1f} s after it"
                violations.append(Violation(deadline, f"connection {conn.conn_id} (client ID {conn.client_id}, open "
                                                      f"since {history.rel(conn.opened):.1f} s) was not closed by the "
                                                      f"cleanup of {history.rel(s):.1f} s–{history.rel(e):.1f} s "
                                                      f"({held}; bound {deadline - e:.1f} s after it)"))
    return _verdict("cleanup", violations, judged, "pooled connections at answered cleanups")


# ----------------------------------------------------------------------------- cached bars


def cached_bars(history: History, b: Bounds) -> Verdict:
    """Every cached bar of every series the workload loaded is a bar IB serves (regular or extended hours,
    whichever the backend asked for), judged from the final reads."""
    violations, judged = [], 0
    for series in history.cache:
        if series.get("error"):
            violations.append(Violation(history.finished, f"{series['symbol']} {series['kind']}: {series['error']}"))
            continue
        if not series.get("cached"):
            continue
        judged += 1
        if series.get("mismatches"):
            shown = "; ".join(series["mismatches"][:5])
            violations.append(Violation(history.finished, f"{series['symbol']} {series['kind']}: "
                                                          f"{len(series['mismatches'])} cached bar(s) IB did not "
                                                          f"serve: {shown}"))
    return _verdict("cached_bars", violations, judged, "cached series")


# ----------------------------------------------------------------------------- output


def output(history: History, b: Bounds) -> Verdict:
    """No CLI transcript shows a warning, an un-awaited coroutine or a traceback; the backend's output shows no
    un-awaited coroutine or other RuntimeWarning (it may log the faults themselves)."""
    violations, judged = [], 0
    for op in history.ops:
        if not op.cli:
            continue
        judged += 1
        for line in complaint_lines(str(op.detail.get("output", "")), WARNING_PATTERNS)[:3]:
            violations.append(Violation(op.end, f"{op.describe(history.origin)} printed: {line[:200]}"))
    if history.backend_output:
        judged += 1
        lines = complaint_lines(history.backend_output, COROUTINE_PATTERNS)
        to_mono = _log_time_to_mono(history)
        for line in lines[:10]:
            # At the line's own time when it carries one (so shrinking can cut the faults after it), else at the end.
            violations.append(Violation(to_mono(line), f"the backend printed: {line[:200]}"))
    return _verdict("output", violations, judged, "transcripts")


#: The time a backend log line starts with (Python logging's default, local time): ``2026-12-02 08:54:37,083``.
_LOG_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3})\b")


def _log_time_to_mono(history: History) -> Callable[[str], float]:
    """Maps a backend log line to the history's clock by its own timestamp: the simulator's events carry both its
    wall-clock time and ``time.monotonic()`` (one machine), which gives the offset between the two. A line with
    no timestamp, or a history without events, maps to the end of the run; a time outside the run is clamped."""
    offset = None
    for event in history.gateway_events:
        if event.get("wall") and event.get("mono") is not None:
            with contextlib.suppress(ValueError):
                offset = datetime.fromisoformat(str(event["wall"])).timestamp() - float(event["mono"])
                break

    def to_mono(line: str) -> float:
        match = _LOG_TIME.match(line)
        if offset is None or match is None:
            return history.finished
        try:
            wall = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(match.group(2)) / 1000
        except ValueError:
            return history.finished
        return min(max(wall - offset, history.origin), history.finished)
    return to_mono


# ----------------------------------------------------------------------------- recovery


def recovery(history: History, b: Bounds) -> Verdict:
    """After the last heal, a discovery that reached IB succeeded and answered within ``recovery_s``."""
    healed = history.final_heal
    served = [op for op in history.ops if op.kind == "discover" and op.ok and op.detail.get("found")
              and op.start >= healed]
    first = min((op.end for op in served), default=None)
    if first is None:
        return Verdict("recovery", False, f"no discovery succeeded after the last heal at {history.rel(healed):.1f} s",
                       (Violation(healed + b.recovery_s, "the backend never served again"),), 1)
    if first - healed > b.recovery_s:
        return Verdict("recovery", False, f"first successful discovery {first - healed:.1f} s after the last heal",
                       (Violation(healed + b.recovery_s, f"served again only {first - healed:.1f} s after the last "
                                                         f"heal (bound {b.recovery_s:g} s)"),), 1)
    return Verdict("recovery", True, f"served again {first - healed:.2f} s after the last heal", (), 1)


CHECKERS: dict[str, Callable[[History, Bounds], Verdict]] = {
    "bounds": bounds, "score": score, "pool_limit": pool_limit, "cleanup": cleanup, "cached_bars": cached_bars,
    "output": output, "recovery": recovery}


def check(history: History, b: Bounds) -> dict[str, Verdict]:
    """Every checker over the history, by family."""
    return {family: CHECKERS[family](history, b) for family in FAMILIES}
