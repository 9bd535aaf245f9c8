"""Checkers of what a cleanup must do, as the gateway saw it: after a cleanup that answered success, every
connection the backend had pooled is closed once its current use ends, so no client ID stays held."""

from __future__ import annotations

from dataclasses import dataclass

from support.checks import spans
from support.checks.limits import Limits
from support.run_history import DATA_REQUESTS, VALIDATION_REQUEST, Connection, HistoryWindow
from support.verdict import Verdict, Violation

#: Requests a backend sends while it uses a connection (the validation and the data requests); each is answered.
USE_REQUESTS = (VALIDATION_REQUEST, *DATA_REQUESTS)


@dataclass(frozen=True)
class CleanupCall:
    """One cleanup the suite asked for and that answered success: through the API (``POST /ib/cleanup``) or the
    CLI (``ib cleanup``), from its start to its answer."""

    started_mono: float
    answered_mono: float
    how: str

    def describe(self, window: HistoryWindow) -> str:
        """``the cleanup (API) of 12.0 s–12.1 s``."""
        return f"the cleanup ({self.how}) of {window.rel(self.started_mono):.1f} s–{window.rel(self.answered_mono):.1f} s"


def _is_cleanup(argv: tuple[str, ...]) -> bool:
    """Whether a command line (the CLI's own words first) runs ``ib cleanup``."""
    return any(argv[i:i + 2] == ("ib", "cleanup") for i in range(len(argv) - 1))


def cleanups(window: HistoryWindow) -> list[CleanupCall]:
    """The cleanups of the window that answered success (a failed or unanswered one claims nothing), in order."""
    calls = [CleanupCall(r.started_mono, r.finished_mono, "API") for r in window.exchanges
             if r.method == "POST" and r.path == "/ib/cleanup" and r.ok]
    calls += [CleanupCall(run.started_mono, run.finished_mono, "CLI") for run in window.cli_runs
              if _is_cleanup(run.argv) and run.exit_code == 0 and not run.timed_out]
    return sorted(calls, key=lambda c: c.started_mono)


def use_deadline(conn: Connection, answered_mono: float, limits: Limits, lost: spans.Spans = ()) -> float:
    """When a connection pooled before a cleanup that answered at ``answered_mono`` must be closed: the API bound
    after the later of that answer and the end of the use it was in. The use runs from its last validation before
    the answer (else its opening); its requests that arrived until the API bound after the answer end when they
    were answered, or — never answered, or answered while the fault proxy dropped answers (``lost``: the answer
    never reached the backend, which is still waiting) — the load bound after they arrived."""
    grace = limits.api_response.seconds
    validations = [r.arrived_mono for r in conn.requests if r.validation and r.arrived_mono <= answered_mono]
    use_start = max(validations, default=conn.api_mono if conn.api_mono is not None else conn.opened_mono)
    ends = [answered_mono]
    for request in conn.requests:
        if request.type not in USE_REQUESTS or not use_start <= request.arrived_mono <= answered_mono + grace:
            continue
        reply = request.answered_mono
        if reply is not None and spans.inside(lost, reply):
            reply = None
        ends.append(request.arrived_mono + limits.load.seconds - grace if reply is None else reply)
    return max(ends) + grace


def cleanup_closes_pool(window: HistoryWindow, limits: Limits) -> Verdict:
    """After every cleanup that answered success, no client ID stays held.

    For a cleanup that answered success between ``s`` and ``e``: every connection of the backend the gateway had
    open at ``s`` whose API session began at least the connect bound before (pooled, not being opened) is closed
    within the API bound after ``e`` — or, when a client was using it then, within the API bound of the end of that
    use (:func:`use_deadline`). A deadline beyond the end of the window is not judged.
    """
    conns = window.backend_connections()
    lost = spans.answers_lost(window)
    violations, judged = [], 0
    calls = cleanups(window)
    for call in calls:
        for conn in conns:
            began = conn.api_mono if conn.api_mono is not None else conn.opened_mono
            if not conn.open_at(call.started_mono) or began > call.started_mono - limits.connect.seconds:
                continue
            deadline = use_deadline(conn, call.answered_mono, limits, lost)
            if deadline > window.end_mono:
                continue
            judged += 1
            if conn.closed_mono is None or conn.closed_mono > deadline:
                held = ("still open at the end" if conn.closed_mono is None
                        else f"closed {conn.closed_mono - call.answered_mono:.1f} s after it")
                violations.append(Violation(deadline, f"{conn.describe()}, open since {window.rel(began):.1f} s, was "
                                                      f"not closed by {call.describe(window)} ({held}; bound "
                                                      f"{deadline - call.answered_mono:.1f} s after it): its client "
                                                      f"ID stayed held"))
    if violations:
        return Verdict.failed(f"{len(violations)} of {judged} pooled connection(s) left open after a cleanup",
                              violations, judged)
    if not judged:
        what = "no pooled connection at a cleanup" if calls else "no cleanup answered success"
        return Verdict.unexercised(f"{what} (with its deadline inside the history)")
    return Verdict.passed(f"{judged} pooled connection(s) at {len(calls)} cleanup(s), each closed in time", judged)
