"""Checkers of the client-ID rules as the gateway saw them: the preferred ID first, the next in order after error
326, freed IDs used again first."""

from __future__ import annotations

from support.checks import spans
from support.checks.limits import Limits
from support.contract import IbConfig
from support.run_history import Connection, HistoryWindow
from support.verdict import Verdict, Violation

#: How long after a disruption a client library may still read a handshake the fault cut as a refused ID.
CUT_HANDSHAKE_S = 2.0
#: How long a lower ID must have been free for a connection that took a higher one to be blamed, and how soon
#: another connection taking it excuses a race (two connections opening at once arrive in either order).
FREE_FOR_S = 1.0


def _attempt(conn: Connection) -> float:
    return conn.api_mono if conn.api_mono is not None else conn.opened_mono


def _held(conns: list[Connection], client_id: int, start: float, end: float) -> bool:
    """Whether an accepted connection (anyone's) held ``client_id`` at any moment of ``[start, end]``."""
    return any(c.accepted and c.client_id == client_id and _attempt(c) <= end
               and (c.closed_mono is None or c.closed_mono >= start) for c in conns)


def _config_changed(window: HistoryWindow) -> spans.Spans:
    """From a configuration change on, to the end of that backend's life: its preferred ID may have moved."""
    out = []
    for change in (r for r in window.exchanges if r.path == "/ib/config" and r.method == "PUT"):
        life = next((life for life in reversed(window.lives) if life.started_mono <= change.started_mono), None)
        end = life.ended_mono if life is not None and life.ended_mono is not None else window.end_mono
        out.append((change.started_mono, end))
    return spans.merged(out)


def highest_id(window: HistoryWindow, limits: Limits) -> int | None:
    """The highest client ID the backend may use: the profile's, else the last its configuration reported."""
    if limits.client_id_max:
        return limits.client_id_max
    reported = [IbConfig.of(r).client_id_max for r in window.exchanges_to("/ib/config") if r.method == "GET" and r.ok]
    return next((value for value in reversed(reported) if value), None)


def client_id_rules(window: HistoryWindow, limits: Limits) -> Verdict:
    """Over the whole run, as the gateway saw the backend's connections:

    - after error 326 on ID n, the backend tries an ID above n within the API bound (sequential fallback), and
      does not try n again first (IDs it is retiring may free up meanwhile, so which higher ID is not judged;
      other connections opening at once start from the preferred ID, so an n after a lower ID is theirs);
    - a connection is never accepted on an ID while a lower one, from the preferred ID up, had been free for
      a second and no other connection took it a moment later (the preferred ID first, freed IDs used again).

    IDs above the backend's range (the profile's ``client_id_max``, else what ``/ib/config`` reports) are never
    required. A configuration change moves the preferred ID: that life is not judged from it on. Nor is a choice
    made during a disruption or just after it (:data:`CUT_HANDSHAKE_S`): a handshake a fault cuts reads to the client
    library as a refused ID ("Peer closed connection. clientId 1 already in use?"), so a backend rightly moves on
    to the next ID while the gateway saw the lower one free.
    """
    everyone = [c for c in window.connections if c.client_id is not None]
    backend = sorted((c for c in everyone if not c.own), key=_attempt)
    moved = _config_changed(window)
    trouble = spans.widened(spans.disruptions(window), before_s=spans.FAULT_LEAD_S, after_s=CUT_HANDSHAKE_S)
    top = highest_id(window, limits)
    violations, judged = [], 0
    for index, conn in enumerate(backend):
        at = _attempt(conn)
        if spans.inside(moved, at) or spans.inside(trouble, at):
            continue
        if conn.duplicate_id:
            if spans.overlaps(trouble, at, at + limits.api_response.seconds):
                continue  # a fault cut what followed: the chain of attempts is not the backend's own
            judged += 1
            later = [c.client_id for c in backend[index + 1:] if at < _attempt(c) <= at + limits.api_response.seconds]
            tried = ", ".join(str(i) for i in later[:5]) or "nothing"
            # Other connections opening at the same time start from the preferred ID: an attempt on n after a lower
            # one belongs to such a chain, not to this one. This chain retried n if n came before any other ID.
            first = next((i for i in later if i != conn.client_id), None)
            if later and later[0] == conn.client_id and (first is None or first > conn.client_id):
                violations.append(Violation(at, f"client ID {conn.client_id} refused (326) at {window.rel(at):.2f} s; "
                                                f"the backend tried it again ({tried}) before the next one"))
            elif not any(i > conn.client_id for i in later) and (top is None or conn.client_id < top):
                violations.append(Violation(at, f"client ID {conn.client_id} refused (326) at {window.rel(at):.2f} s; "
                                                f"the backend then tried {tried} within {limits.api_response}, none "
                                                "above it (no sequential fallback)"))
            continue
        if not conn.accepted:
            continue
        judged += 1
        free = [i for i in range(limits.preferred_client_id, conn.client_id)
                if not _held(everyone, i, at - FREE_FOR_S, at + FREE_FOR_S)
                and not any(c.duplicate_id and c.client_id == i and at - limits.api_response.seconds <= _attempt(c) <= at
                            for c in backend)]
        if free:
            violations.append(Violation(at, f"{conn.describe()} accepted at {window.rel(at):.2f} s while client ID "
                                            f"{free[0]} was free (the preferred ID is {limits.preferred_client_id}; "
                                            "lower free IDs come first)"))
    return Verdict.over(violations, judged,
                        f"{len(violations)} of {judged} client-ID choice(s) broke the rules",
                        "the backend opened no IB connection",
                        f"{judged} client-ID choice(s), each by the rules")
