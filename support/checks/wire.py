"""Checkers of what each IB connection carried, as the gateway side saw it: validation before every handoff,
one caller at a time, client IDs, pacing. Pure functions of recorded events; they never inject and never wait."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from support.checks import spans
from support.checks.limits import Limits
from support.drivers.api import ApiResponse
from support.run_history import DATA_REQUESTS, VALIDATION_REQUEST, HistoryWindow, IbEvent
from support.verdict import Verdict, Violation


def _tail(events: Sequence[IbEvent], n: int = 12) -> str:
    return "\n  ".join(e.describe() for e in list(events)[-n:]) or "(no IB events)"


def handoffs_validated(events: Sequence[IbEvent], calls: Iterable[ApiResponse]) -> Verdict:
    """Every connection used by an API call was validated during that call, before its first use.

    Validation is a ``reqCurrentTime`` sent on that connection after the call began
    and answered before the first data request of the call on the same connection.
    """
    checked, failures = 0, []
    for call in calls:
        start, end = call.started_mono, call.finished_mono
        window = [e for e in events if start <= e.mono <= end]
        first_use: dict[int, float] = {}
        for e in window:
            if e.kind == "request" and e.type in DATA_REQUESTS:
                first_use.setdefault(e.conn_id, e.mono)
        for conn_id, used_at in first_use.items():
            checked += 1
            answered = [e for e in window if e.conn_id == conn_id and e.kind == "response"
                        and e.type == VALIDATION_REQUEST and e.mono <= used_at]
            if not answered:
                failures.append(f"{call.method} {call.path}: connection {conn_id} used at {used_at:.3f} "
                                "without a validation round-trip first")
    if not checked:
        return Verdict.unexercised(f"no API call used an IB connection; nothing to check\n  {_tail(events)}")
    if failures:
        return Verdict.failed("\n".join(failures) + f"\nIB events:\n  {_tail(events)}")
    return Verdict.passed(f"{checked} handoffs, each validated first")


def failed_validations_never_used(events: Sequence[IbEvent]) -> Verdict:
    """A connection whose validation went unanswered never carries another request."""
    by_conn: dict[int, list[IbEvent]] = defaultdict(list)
    for e in events:
        by_conn[e.conn_id].append(e)
    failed, misuse = 0, []
    for conn_id, conn_events in by_conn.items():
        pending_since: float | None = None
        for e in conn_events:
            if e.kind == "request" and e.type == VALIDATION_REQUEST:
                pending_since = e.mono if pending_since is None else pending_since
            elif e.kind == "response" and e.type == VALIDATION_REQUEST:
                pending_since = None
            elif e.kind == "request" and e.type in DATA_REQUESTS and pending_since is not None:
                misuse.append(f"connection {conn_id}: {e.type} at {e.mono:.3f} although its validation "
                              f"from {pending_since:.3f} was never answered")
        if pending_since is not None:
            failed += 1
    if misuse:
        return Verdict.failed("\n".join(misuse) + f"\nIB events:\n  {_tail(events)}")
    if not failed:
        return Verdict.unexercised(f"no validation went unanswered; the scenario proved nothing\n  {_tail(events)}")
    return Verdict.passed(f"{failed} connection(s) failed validation and none was used")


def connections_never_shared(events: Sequence[IbEvent]) -> Verdict:
    """No connection carries two data requests at the same moment (request → answer intervals)."""
    opened: dict[tuple[int, Any], float] = {}
    spans: dict[int, list[tuple[float, float, Any]]] = defaultdict(list)
    for e in events:
        if e.type not in DATA_REQUESTS or e.req_id is None:
            continue
        key = (e.conn_id, e.req_id)
        if e.kind == "request":
            opened[key] = e.mono
        elif e.kind in ("response", "error") and key in opened:
            spans[e.conn_id].append((opened.pop(key), e.mono, e.req_id))
    overlaps, total = [], 0
    for conn_id, intervals in spans.items():
        intervals.sort()
        total += len(intervals)
        for (_, e1, r1), (s2, _, r2) in zip(intervals, intervals[1:], strict=False):
            if s2 < e1:
                overlaps.append(f"connection {conn_id}: request {r2} started at {s2:.3f} while request "
                                f"{r1} ran until {e1:.3f}")
    if total < 2:
        return Verdict.unexercised(f"only {total} answered data request(s) seen; nothing to compare\n  {_tail(events)}")
    if overlaps:
        return Verdict.failed("\n".join(overlaps[:10]))
    return Verdict.passed(f"{total} requests on {len(spans)} connections, never two at once on one")


def accepted_client_ids(events: Sequence[IbEvent]) -> list[int]:
    """Client IDs the gateway accepted (startApi not followed by a rejection), in order."""
    rejected = {e.conn_id for e in events if e.kind == "rejected"}
    return [int(e.client_id) for e in events
            if e.kind == "start_api" and e.client_id is not None and e.conn_id not in rejected]


def rejected_client_ids(events: Sequence[IbEvent]) -> list[int]:
    """Client IDs the gateway refused (error 326), in order."""
    starts = {e.conn_id: e.client_id for e in events if e.kind == "start_api"}
    return [int(e.client_id if e.client_id is not None else starts.get(e.conn_id, -1))
            for e in events if e.kind == "rejected"]


def retried_after_backoff(events: Sequence[IbEvent], code: int, min_wait_s: float) -> Verdict:
    """After each error ``code`` on a request, the next request of the same type came ``min_wait_s`` later."""
    errors = [e for e in events if e.kind == "error" and e.code == code]
    if not errors:
        return Verdict.unexercised(f"no error {code} was sent; nothing was paced\n  {_tail(events)}")
    requests = [e for e in events if e.kind == "request"]
    typed = {(e.conn_id, e.req_id): e.type for e in requests}
    hasty = []
    for error in errors:
        kind = typed.get((error.conn_id, error.req_id), "reqHistoricalData")
        later = [r for r in requests if r.type == kind and r.mono > error.mono]
        if not later:
            hasty.append(f"error {code} at {error.mono:.3f} was never followed by a retry")
        elif later[0].mono - error.mono < min_wait_s:
            hasty.append(f"retry {later[0].mono - error.mono:.2f} s after error {code} (< {min_wait_s} s)")
    if hasty:
        return Verdict.failed("\n".join(hasty))
    return Verdict.passed(f"{len(errors)} error(s) {code}, each waited out")


# ----------------------------------------------------------------------------- self-reports vs what IB saw


def open_during(connections: Iterable[dict[str, Any]], start_mono: float, end_mono: float) -> tuple[set[int], set[int]]:
    """Client IDs of ``connections`` open for the whole window, and those open at any moment of it."""
    throughout, anytime = set(), set()
    for c in connections:
        opened, closed = float(c["connected_mono"]), c.get("disconnected_mono")
        if opened <= end_mono and (closed is None or float(closed) >= start_mono):
            anytime.add(int(c["client_id"]))
            if opened <= start_mono and (closed is None or float(closed) >= end_mono):
                throughout.add(int(c["client_id"]))
    return throughout, anytime


def same_host(a: str, b: str) -> bool:
    """Whether two host names name the same address (``localhost`` is ``127.0.0.1``)."""
    import socket

    def address(host: str) -> str:
        try:
            return socket.gethostbyname(str(host).strip("[]"))
        except OSError:
            return str(host)
    loopback = ("127.0.0.1", "::1")
    return address(a) == address(b) or (address(a) in loopback and address(b) in loopback)


def requests_between(events: Sequence[IbEvent], request_type: str, start_mono: float, end_mono: float) -> list[IbEvent]:
    """Requests of ``request_type`` the gateway side received within the window."""
    return [e for e in events if e.kind == "request" and e.type == request_type and start_mono <= e.mono <= end_mono]


def answered_between(events: Sequence[IbEvent], request_type: str, start_mono: float, end_mono: float) -> Verdict:
    """A request of ``request_type`` was received and answered within the window."""
    asked = requests_between(events, request_type, start_mono, end_mono)
    answered = [e for e in events if e.kind == "response" and e.type == request_type
                and start_mono <= e.mono <= end_mono and any(a.conn_id == e.conn_id for a in asked)]
    window = [e for e in events if start_mono - 1.0 <= e.mono <= end_mono + 1.0]
    if not asked:
        return Verdict.failed(f"the gateway received no {request_type} from the backend in that window "
                              f"({end_mono - start_mono:.2f} s)\n  {_tail(window)}")
    if not answered:
        return Verdict.failed(f"{len(asked)} {request_type} received but none answered in that window\n  {_tail(window)}")
    return Verdict.passed(f"{len(asked)} {request_type} received, {len(answered)} answered")


def in_flight_longer_than(events: Sequence[IbEvent], request_type: str, min_s: float) -> Verdict:
    """Some ``request_type`` request stayed unanswered at IB for at least ``min_s``."""
    asked = {(e.conn_id, e.req_id): e.mono for e in events if e.kind == "request" and e.type == request_type}
    spans = [e.mono - asked[(e.conn_id, e.req_id)] for e in events
             if e.kind in ("response", "error") and (e.conn_id, e.req_id) in asked]
    longest = max(spans, default=0.0)
    if longest < min_s:
        return Verdict.unexercised(f"no {request_type} was in flight at IB for {min_s:.1f} s (longest {longest:.1f} s, "
                              f"{len(asked)} received); the scenario proved nothing\n  {_tail(events)}")
    return Verdict.passed(f"a {request_type} was in flight for {longest:.1f} s")


# ----------------------------------------------------------------------------- over a whole history


#: The requests a caller of the pool sends on a connection it was handed: the validation and the data requests.
CALLER_REQUESTS = frozenset({VALIDATION_REQUEST, *DATA_REQUESTS})


def _overlap(conn, burst: list, window: HistoryWindow) -> Violation:
    """One stretch of overlapping requests on one connection, as one violation (its first overlap, and how many)."""
    later, earlier, received = burst[0]
    more = f" (and {len(burst) - 1} more request(s) within the next second)" if len(burst) > 1 else ""
    return Violation(later.arrived_mono,
                     f"{conn.describe()}: {later.type} arrived at {window.rel(later.arrived_mono):.3f} s while "
                     f"{earlier.type} from {window.rel(earlier.arrived_mono):.3f} s was unanswered (until "
                     f"{window.rel(received):.3f} s){more}: two callers at once")


def one_caller_at_a_time(window: HistoryWindow, limits: Limits) -> Verdict:
    """No connection carries the requests of two callers at once, validations included: a validation never
    arrives on a connection while an earlier request on it is unanswered, and no request arrives while a
    validation on it is (one caller awaits its validation before anything else, and never validates twice at
    once). Requests of one read arrived together, before any answer to them; an answer the fault proxy held back
    reached the client that much later. Only the requests callers make count (the validation and the contract's
    data requests): the client library's own bookkeeping (positions, executions, account updates it asks at
    connect or after an IB notice) is no caller. Data requests pipelined by one caller are left to the scenario
    claim that forbids them."""
    violations, judged, overlapping = [], 0, 0
    delays = spans.answer_delays(window, least=True)
    for conn in window.backend_connections():
        requests = sorted(conn.requests, key=lambda r: r.arrived_mono)
        burst: list[tuple[object, object, float]] = []   # (later, earlier, received) of one stretch of overlaps
        for index, later in enumerate(requests):
            judged += later.validation
            if later.type not in CALLER_REQUESTS:
                continue
            for earlier in requests[max(0, index - 50):index]:
                if earlier.answered_mono is None or earlier.type not in CALLER_REQUESTS \
                        or not (earlier.validation or later.validation):
                    continue
                received = earlier.answered_mono + spans.delay_at(delays, earlier.answered_mono)
                if earlier.arrived_mono <= later.arrived_mono < received:
                    overlapping += 1
                    if burst and later.arrived_mono - burst[-1][0].arrived_mono > 1.0:
                        violations.append(_overlap(conn, burst, window))
                        burst = []
                    burst.append((later, earlier, received))
                    break
        if burst:
            violations.append(_overlap(conn, burst, window))
    if violations:
        shared = len({v.text.split(":")[0] for v in violations})
        return Verdict.failed(f"{overlapping} request(s) overlapping another caller's on {shared} connection(s)",
                              violations, judged)
    if not judged:
        return Verdict.unexercised("no validation reached the gateway")
    return Verdict.passed(f"{judged} validations, none overlapping another request on its connection", judged)
