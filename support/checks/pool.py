"""Checkers of the backend's pool as the gateway saw it: its limit, idle connections collected, connections kept
or discarded, and what a cleanup must close."""

from __future__ import annotations

from support.checks import spans
from support.checks.limits import Limits
from support.contract import ResilienceReport
from support.run_history import Connection, HistoryWindow, Life
from support.verdict import Verdict, Violation


def pool_limit(window: HistoryWindow, limits: Limits) -> Verdict:
    """The gateway never had more of the backend's connections open at once than the pool allows."""
    conns = window.backend_connections()
    edges = sorted([(c.api_mono or c.opened_mono, 1, c) for c in conns]
                   + [(c.closed_mono, -1, c) for c in conns if c.closed_mono is not None], key=lambda e: (e[0], e[1]))
    level, peak, violations, open_now = 0, 0, [], {}
    for at, step, conn in edges:
        level += step
        if step > 0:
            open_now[conn.conn_id] = conn
        else:
            open_now.pop(conn.conn_id, None)
        peak = max(peak, level)
        if level > limits.pool_limit and len(violations) < 20:
            ids = sorted(c.client_id for c in open_now.values() if c.client_id is not None)
            violations.append(Violation(at, f"{level} backend connections open at once (client IDs {ids}); "
                                            f"the pool allows {limits.pool_limit}"))
    return Verdict.over(violations, len(conns), f"peak of {peak} connections open at once > {limits.pool_limit}",
                        "the backend opened no IB connection",
                        f"peak of {peak} of {limits.pool_limit} over {len(conns)} connections")


def pool_size_steps(window: HistoryWindow) -> list[tuple[float, int]]:
    """(time, backend connections open) after every change, for a plot's step line (from the window's start)."""
    conns = window.backend_connections()
    edges = sorted([(c.api_mono or c.opened_mono, 1) for c in conns]
                   + [(c.closed_mono, -1) for c in conns if c.closed_mono is not None])
    before = [step for at, step in edges if at <= window.start_mono]
    level = sum(before)
    out = [(window.start_mono, level)]
    for at, step in edges[len(before):]:
        level += step
        out.append((at, level))
    return out


# ----------------------------------------------------------------------------- uses and idleness


def busy(conn: Connection, limits: Limits, end_mono: float, lost: spans.Spans = ()) -> list[tuple[float, float]]:
    """When a client was using the connection: from each request's arrival until its answer (one never answered,
    or answered while the proxy dropped answers (``lost``), is in use until the next request on the connection,
    or its close: its client is still waiting); a lone validation, whose answer no other request followed within
    the validation bound, is a health check, not a use. The API session's start counts as a use."""
    out = [(conn.api_mono, conn.api_mono)] if conn.api_mono is not None else []
    requests = sorted(conn.requests, key=lambda r: r.arrived_mono)
    closed = conn.closed_mono if conn.closed_mono is not None else end_mono
    for index, request in enumerate(requests):
        following = requests[index + 1] if index + 1 < len(requests) else None
        if request.validation:
            until = (request.answered_mono or request.arrived_mono) + limits.validation.seconds
            if following is None or following.arrived_mono > until:
                continue  # a lone validation: a health check
        done = request.answered_mono
        if done is not None and spans.inside(lost, done):
            done = None
        if done is None:
            done = following.arrived_mono if following is not None else closed
        out.append((request.arrived_mono, max(done, request.arrived_mono)))
    return spans.merged(out)


def idle_stretches(conn: Connection, limits: Limits, end_mono: float, lost: spans.Spans = ()
                   ) -> list[tuple[float, float]]:
    """When the connection sat open and unused: between its uses, and from its last use to its close."""
    used = busy(conn, limits, end_mono, lost)
    closed = conn.closed_mono if conn.closed_mono is not None else end_mono
    edges = [end for _, end in used]
    starts = [start for start, _ in used[1:]] + [closed]
    return [(a, b) for a, b in zip(edges, starts, strict=False) if b > a]


def _timings(window: HistoryWindow, life: Life | None) -> tuple[float, float]:
    """The idle timeout and health interval of one life: the suite's when it started the backend with them, else
    the last the backend itself reported in that life (0, 0: unknown)."""
    if life is not None and life.idle_timeout_s > 0:
        return life.idle_timeout_s, life.health_interval_s
    start = life.started_mono if life else window.start_mono
    end = life.ended_mono if life and life.ended_mono is not None else window.end_mono
    for response in reversed(window.exchanges_to("/ib/resilience")):
        if start <= response.started_mono <= end:
            report = ResilienceReport.of(response)
            if report.max_idle_s and report.health_interval_s:
                return report.max_idle_s, report.health_interval_s
    return 0.0, 0.0


def _life_of(window: HistoryWindow, mono: float) -> Life | None:
    return next((life for life in reversed(window.lives) if life.started_mono <= mono), None)


def idle_connections_collected(window: HistoryWindow, limits: Limits) -> Verdict:
    """No connection of the backend sits unused at the gateway longer than the idle timeout plus one health-check
    interval (and the API bound for the close to reach it): a connection dropped from the pool's books after a
    failed request, or a collector that never runs, shows here. Judged where the timings are known."""
    violations, collectable, unknown = [], 0, 0
    lost = spans.answers_lost(window)
    for conn in window.backend_connections():
        idle_s, interval_s = _timings(window, _life_of(window, conn.opened_mono))
        if idle_s <= 0:
            unknown += 1
            continue
        allowed_s = idle_s + interval_s + limits.api_response.seconds
        stretches = idle_stretches(conn, limits, window.end_mono, lost)
        if not stretches:
            continue
        idle_from, idle_until = max(stretches, key=lambda stretch: stretch[1] - stretch[0])
        longest = idle_until - idle_from
        if longest >= idle_s:
            collectable += 1
        if longest > allowed_s:
            still = "still open" if conn.closed_mono is None else f"closed at {window.rel(conn.closed_mono):.1f} s"
            violations.append(Violation(idle_from + allowed_s,
                                        f"{conn.describe()} unused from {window.rel(idle_from):.1f} s for "
                                        f"{longest:.1f} s ({still}); idle timeout {idle_s:g} s + health interval "
                                        f"{interval_s:g} s + {limits.api_response.seconds:g} s"))
    if violations:
        return Verdict.failed(f"{len(violations)} connection(s) left idle past the idle timeout", violations,
                              collectable)
    if not collectable:
        note = f" ({unknown} with unknown timings)" if unknown else ""
        return Verdict.unexercised(f"no connection stayed idle as long as the idle timeout{note}")
    return Verdict.passed(f"{collectable} connection(s) idle past the idle timeout, each closed in time", collectable)


# ----------------------------------------------------------------------------- validated connections kept


def validated_connections_kept(window: HistoryWindow, limits: Limits) -> Verdict:
    """No connection the gateway answered within the validation bound is then thrown away as failed: a close by
    the backend within the validation bound (and 2 s) of a validation that was answered in time, with nothing
    sent after the answer, outside trouble (a fault and the recovery bound after it, a change the suite asked of
    the pool, the backend stopping) and not idle past the idle timeout (the collector's legitimate close)."""
    excused, lost = spans.trouble(window, limits), spans.answers_lost(window)
    delays = spans.answer_delays(window, least=False)
    violations = []
    for conn in window.backend_connections():
        if conn.closed_by != "client" or conn.closed_mono is None:
            continue
        before = [r for r in conn.requests if r.arrived_mono <= conn.closed_mono]
        uses = [index for index, r in enumerate(before) if not r.validation]
        trailing = before[uses[-1] + 1:] if uses else before   # the validations after its last use
        idle_s, _ = _timings(window, _life_of(window, conn.opened_mono))
        for validation in trailing:   # the earliest one whose timer can have closed it is the one to name
            if validation.answered_mono is None or spans.inside(lost, validation.answered_mono):
                continue  # a validation that failed: discarding the connection is right
            received = validation.answered_mono + spans.delay_at(delays, validation.answered_mono)
            if received - validation.arrived_mono > limits.validation.seconds:
                continue  # the answer reached the backend too late (the proxy held it back): a failed validation
            if conn.closed_mono - validation.arrived_mono > limits.validation.seconds + 2.0:
                continue  # closed long after: a cleanup, an idle collection, not this validation's timer
            if spans.overlaps(excused, validation.arrived_mono, conn.closed_mono):
                continue
            earlier = [end for _, end in busy(conn, limits, window.end_mono) if end < validation.arrived_mono]
            if idle_s > 0 and earlier and conn.closed_mono - earlier[-1] >= idle_s - 0.5:
                continue  # idle past its timeout: the collector's close
            violations.append(Violation(conn.closed_mono,
                                        f"{conn.describe()}: its validation was answered in "
                                        f"{(validation.answered_mono - validation.arrived_mono) * 1000:.0f} ms at "
                                        f"{window.rel(validation.answered_mono):.2f} s, then the backend closed it "
                                        f"unused at {window.rel(conn.closed_mono):.2f} s"))
            break
    answered = sum(1 for c in window.backend_connections() for r in c.requests
                   if r.validation and r.answered_mono is not None)
    return Verdict.over(violations, answered, f"{len(violations)} validated connection(s) discarded",
                        "no validation was answered",
                        f"{answered} validations answered; no validated connection discarded")

