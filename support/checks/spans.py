"""Stretches of a history the checkers reason with: outages, disturbances, when the backend served, heavy load.

Every span is ``(start_mono, end_mono)``; lists are sorted and merged where they touch.
"""

from __future__ import annotations

from collections.abc import Iterable

from support.checks.limits import Limits
from support.run_history import VALIDATION_REQUEST, HistoryWindow

#: The request a backend's validation and health probe send: a fault that spares it spares them.
PROBE = VALIDATION_REQUEST
Spans = list[tuple[float, float]]


def merged(spans: Iterable[tuple[float, float]]) -> Spans:
    """The union of ``spans``, sorted, overlapping or touching ones joined."""
    out: Spans = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def widened(spans: Spans, before_s: float = 0.0, after_s: float = 0.0) -> Spans:
    """Every span ``before_s`` earlier and ``after_s`` later, merged again."""
    return merged((start - before_s, end + after_s) for start, end in spans)


def inside(spans: Spans, mono: float) -> bool:
    """Whether ``mono`` falls in one of ``spans``."""
    return any(start <= mono <= end for start, end in spans)


def overlaps(spans: Spans, start_mono: float, end_mono: float) -> bool:
    """Whether ``[start_mono, end_mono]`` meets one of ``spans``."""
    return any(start <= end_mono and end >= start_mono for start, end in spans)


def _until(end: float | None, window: HistoryWindow) -> float:
    return window.end_mono if end is None else min(end, window.end_mono)


def outages(window: HistoryWindow) -> Spans:
    """While the gateway was silent or gone for every connection (the fault catalogue's :meth:`Fault.outage`)."""
    return merged((f.applied_mono, _until(f.healed_mono, window)) for f in window.faults
                  if f.fault.outage(PROBE) and not f.fault.one_shot)


def answers_lost(window: HistoryWindow) -> Spans:
    """While the fault proxy dropped the gateway's answers on their way to the backend (an answer the gateway
    wrote then never reached its client, who is still waiting)."""
    return merged((f.applied_mono, _until(f.healed_mono, window)) for f in window.faults
                  if f.fault.dropped_answers() is not None and not f.fault.one_shot)


#: How far the gateway's record of an answer may trail its write (a busy machine can pause the simulator between
#: the two), beside the proxy's own delay: a held-back answer is judged with this much doubt either way.
DELAY_SLACK_MS = 50


def answer_delays(window: HistoryWindow, least: bool) -> list[tuple[float, float, float]]:
    """When the fault proxy delivered the gateway's answers late: ``(start, end, seconds)`` of each downstream
    latency. The proxy adds ±jitter, so a client got an answer written then at least ``latency - jitter`` later
    (``least``: what a checker may rely on to blame a request sent too early — and only from the moment the proxy
    confirmed the latency, since an answer written while the call was under way may have passed undelayed) and at
    most ``latency + jitter`` (to blame a backend for discarding an answer it had in time; from the call's start)."""
    sign = -1 if least else 1
    slack_ms = -DELAY_SLACK_MS if least else DELAY_SLACK_MS
    return [(f.surely_on_mono if least else f.applied_mono, _until(f.healed_mono, window),
             max(0.0, f.fault.latency_ms + sign * f.fault.jitter_ms + slack_ms) / 1000.0)
            for f in window.faults if f.fault.shaping_slot == "latency" and f.fault.shapes("downstream")]


def delay_at(delays: list[tuple[float, float, float]], mono: float) -> float:
    """The longest of ``delays`` (from :func:`answer_delays`) on at ``mono`` (0 when none)."""
    return max((seconds for start, end, seconds in delays if start <= mono <= end), default=0.0)


def faults(window: HistoryWindow) -> Spans:
    """While any fault was on (a one-shot fault at its moment)."""
    return merged((f.applied_mono, _until(f.healed_mono, window)) for f in window.faults)


def serving(window: HistoryWindow, after_ready_s: float = 0.0) -> Spans:
    """While the backend was ready and not told to stop (``after_ready_s`` after it answered first)."""
    return merged((life.ready_mono + after_ready_s, _until(life.stopping_mono, window)) for life in window.lives
                  if life.ready_mono is not None)


def not_serving(window: HistoryWindow) -> Spans:
    """While the backend was starting, stopping or gone."""
    spans, cursor = [], window.start_mono
    for start, end in serving(window):
        if start > cursor:
            spans.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < window.end_mono:
        spans.append((cursor, window.end_mono))
    return spans


def heavy_load(window: HistoryWindow, limits: Limits) -> Spans:
    """While the suite had more API requests outstanding at once than normal load allows (more than the pool's
    connections, or than the contract's 5 API connections: a burst, a stress), and the API bound after, while the
    queue drains."""
    normal = min(limits.pool_limit, limits.normal_load_callers)
    edges = sorted([(r.started_mono, 1) for r in window.exchanges] + [(r.finished_mono, -1) for r in window.exchanges])
    spans, level, began = [], 0, None
    for at, step in edges:
        level += step
        if level > normal and began is None:
            began = at
        elif level <= normal and began is not None:
            spans.append((began, at))
            began = None
    if began is not None:
        spans.append((began, window.end_mono))
    return widened(spans, after_s=limits.api_response.seconds)


def pool_changes(window: HistoryWindow) -> Spans:
    """While the suite told the backend to close its pool (a cleanup call or command) or to use another gateway or
    client ID (a configuration change: to the end of its scenario)."""
    spans = [(r.started_mono, r.finished_mono) for r in window.exchanges if r.path == "/ib/cleanup"]
    spans += [(run.started_mono, run.finished_mono) for run in window.cli_runs if "cleanup" in run.argv]
    for change in (r for r in window.exchanges if r.path == "/ib/config" and r.method == "PUT"):
        scenario = next((s for s in window.spans_of("scenario") if s.covers(change.started_mono)), None)
        spans.append((change.started_mono, _until(scenario.end_mono if scenario else None, window)))
    return merged(spans)


def squatters(window: HistoryWindow, limits: Limits) -> Spans:
    """While the suite itself held a client ID the backend could use (a squatter; its probes use IDs far above)."""
    return merged((c.opened_mono, _until(c.closed_mono, window)) for c in window.connections
                  if c.own and c.client_id is not None and c.client_id < limits.probe_client_ids_from)


def stopping(window: HistoryWindow) -> Spans:
    """While the backend was told to stop and until it ended (its closes and last words are expected)."""
    return merged((life.stopping_mono, _until(life.ended_mono, window)) for life in window.lives
                  if life.stopping_mono is not None)


def disruptions(window: HistoryWindow) -> Spans:
    """While a fault that interrupts service was on (the fault catalogue's :meth:`Fault.disrupting`; a one-shot
    fault at its moment). A slow but timely gateway is not one: slow is not dead."""
    return merged((f.applied_mono, _until(f.healed_mono, window)) for f in window.faults
                  if f.fault.disrupting(PROBE))


#: How much earlier than its record a fault may have acted (the record is taken around the control API's call, the
#: gateway's own events on another clock read): a close this close before a cut is the cut's.
FAULT_LEAD_S = 0.1


def trouble(window: HistoryWindow, limits: Limits) -> Spans:
    """When a backend may rightly close connections or log what went wrong: a disruption (from a moment before its
    record) and the recovery bound after it, a change the suite asked of the pool, the backend stopping."""
    return merged([*widened(disruptions(window), before_s=FAULT_LEAD_S, after_s=limits.recovery.seconds),
                   *pool_changes(window), *stopping(window)])


def disturbances(window: HistoryWindow, limits: Limits) -> Spans:
    """While anything but the backend itself changed what IB or the pool looked like: a fault, a change the suite
    asked of the pool, a client ID the suite held, the backend starting or stopping."""
    return merged([*faults(window), *pool_changes(window), *squatters(window, limits), *not_serving(window)])
