"""Checkers of what the backend says about IB against what the gateway did: the resilience score and the IB
health fall while the gateway is silent or gone, and are healthy again once nothing disturbs it."""

from __future__ import annotations

from support.checks import spans
from support.checks.limits import Limits
from support.contract import IbHealth, ResilienceReport
from support.drivers.api import ApiResponse
from support.run_history import HistoryWindow
from support.verdict import Verdict, Violation

#: The self-reports judged: the resilience report's score and the IB health.
SELF_REPORTS = ("/ib/resilience", "/ib/health")


def troubled(response: ApiResponse, limits: Limits) -> bool | None:
    """Whether a self-report says IB is in trouble (None: it says nothing, e.g. no answer or no score)."""
    if response.path == "/ib/resilience":
        score = ResilienceReport.of(response).score if response.ok else None
        return None if score is None else score < limits.score_min
    if response.status == 503:
        return True
    healthy = IbHealth.of(response).healthy if response.status == 200 else None
    return None if healthy is None else not healthy


def _said(response: ApiResponse, limits: Limits) -> str:
    if response.path == "/ib/resilience":
        return f"score {ResilienceReport.of(response).score:g}"
    return f"health HTTP {response.status}"


def _reports(window: HistoryWindow) -> list[ApiResponse]:
    return [r for r in window.exchanges if r.path in SELF_REPORTS and r.status is not None]


#: A self-report asked this soon after an outage began measures how long the backend took to notice it.
PROMPT_S = 1.0


def fall_during_outages(window: HistoryWindow, limits: Limits) -> Verdict:
    """While the gateway is silent or gone for every connection, every self-report that asked after the outage
    began and arrived from the detection bound on, before it ended, says IB is in trouble (score below the
    healthy minimum, health 503): a constant score or a health that never asks IB fails here. And a self-report
    asked right as the outage began (within a second) answers within the detection bound: the backend noticed in
    time, not only eventually."""
    violations, judged, outages_judged = [], 0, 0
    reports = _reports(window)
    bound = limits.silent_detection.seconds
    for start, end in spans.outages(window):
        due = start + bound
        prompt = [r for r in reports if start <= r.started_mono <= start + min(PROMPT_S, bound / 2)
                  and r.finished_mono <= end]
        for response in prompt[:1]:
            if response.finished_mono > due:
                judged += 1
                violations.append(Violation(response.finished_mono,
                                            f"{_said(response, limits)} asked {response.started_mono - start:.2f} s "
                                            f"into an outage arrived {response.finished_mono - start:.2f} s into it, "
                                            f"past {limits.silent_detection}: {response.describe()[:200]}"))
        inside = [r for r in reports if r.started_mono >= start and due <= r.finished_mono <= end]
        outages_judged += bool(inside)
        for response in inside:
            verdict = troubled(response, limits)
            if verdict is None:
                continue
            judged += 1
            if not verdict:
                violations.append(Violation(response.finished_mono,
                                            f"{_said(response, limits)} {response.finished_mono - start:.1f} s into an "
                                            f"outage ({window.rel(start):.1f} s – {window.rel(end):.1f} s), past "
                                            f"{limits.silent_detection}: {response.describe()[:200]}"))
    return Verdict.over(violations, judged,
                        f"{len(violations)} of {judged} self-report(s) during an outage said IB was fine, or "
                        "noticed it only past the detection bound",
                        "no self-report arrived inside an outage after the detection bound",
                        f"{judged} self-report(s) in {outages_judged} outage(s), each saying IB was in trouble")


def healthy_when_quiet(window: HistoryWindow, limits: Limits) -> Verdict:
    """Once nothing has disturbed the gateway or the pool for the recovery bound (no fault, no cleanup or
    configuration change, no client ID held by the suite, the backend serving), every self-report says IB is
    fine (score at least the healthy minimum, health 200): a score stuck low after an outage fails here."""
    quiet_from = spans.widened(spans.disturbances(window, limits), after_s=limits.recovery.seconds)
    violations, judged = [], 0
    for response in _reports(window):
        if spans.overlaps(quiet_from, response.started_mono, response.finished_mono):
            continue
        verdict = troubled(response, limits)
        if verdict is None:
            continue
        judged += 1
        if verdict:
            last = max((end for start, end in quiet_from if end <= response.started_mono), default=None)
            since = f"{response.started_mono - last + limits.recovery.seconds:.1f} s after the last disturbance" \
                if last is not None else "with nothing disturbing it"
            violations.append(Violation(response.started_mono, f"{_said(response, limits)} {since}: "
                                                                f"{response.describe()[:200]}"))
    return Verdict.over(violations, judged,
                        f"{len(violations)} of {judged} self-report(s) said IB was in trouble with the gateway "
                        "healthy and nothing disturbing it",
                        "no self-report with the gateway quiet for the recovery bound",
                        f"{judged} self-report(s) with nothing disturbing the gateway, each saying IB was fine")


def detection_times(window: HistoryWindow, limits: Limits) -> list[float]:
    """For each outage, seconds from its start to the first self-report that arrived saying IB was in trouble."""
    out = []
    reports = _reports(window)
    for start, end in spans.outages(window):
        first = next((r for r in reports if r.started_mono >= start and r.finished_mono <= end
                      and troubled(r, limits)), None)
        if first is not None:
            out.append(first.finished_mono - start)
    return out


def recovery_times(window: HistoryWindow, limits: Limits) -> list[float]:
    """For each outage's end, seconds to the first self-report that arrived saying IB was fine again (before the
    next outage)."""
    out = []
    reports = _reports(window)
    outages = spans.outages(window)
    for index, (_, end) in enumerate(outages):
        nxt = outages[index + 1][0] if index + 1 < len(outages) else window.end_mono
        first = next((r for r in reports if end <= r.started_mono and r.finished_mono <= nxt
                      and troubled(r, limits) is False), None)
        if first is not None:
            out.append(first.finished_mono - end)
    return out
