"""Evidence: what each scenario, and each of its steps, leaves behind for a reviewer (Allure attachments, logs).

Attachments made while a step runs (behave's ``after_step`` runs before the step is reported) hang on that
step in Allure; those made in ``after_scenario`` hang on the scenario. :func:`step_slice` cuts the scenario's
transcripts into per-step slices, so each step carries the API exchanges and CLI runs it produced.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, MutableMapping, Sequence

log = logging.getLogger(__name__)

try:
    import allure
    from allure_commons.types import AttachmentType
except ImportError:  # evidence is optional; the verdict never depends on it
    allure = None
    AttachmentType = None


def _attach(body: Any, name: str, kind: Any) -> None:
    if allure is None or not body:
        return
    try:
        allure.attach(body, name=name, attachment_type=kind)
    except Exception as exc:  # evidence must never change a verdict
        log.warning("attachment %r not recorded: %r", name, exc)


def attach_text(name: str, text: str) -> None:
    """Attach plain text to the current Allure test (no-op without Allure)."""
    _attach(text, name, AttachmentType.TEXT if AttachmentType else None)


def attach_json(name: str, value: Any) -> None:
    """Attach a JSON document to the current Allure test (no-op without Allure)."""
    if value:
        _attach(json.dumps(value, indent=2, default=str), name, AttachmentType.JSON if AttachmentType else None)


def attach_png(name: str, png: bytes) -> None:
    """Attach a PNG image (a plot) to the current Allure test."""
    _attach(png, name, AttachmentType.PNG if AttachmentType else None)


def api_exchanges(responses: Iterable[Any], origin_mono: float | None = None) -> list[dict[str, Any]]:
    """API transcript entries as JSON-able dicts (``started_s`` since ``origin_mono``, when given)."""
    return [{"method": r.method, "path": r.path, "request": r.request_body, "status": r.status,
             "started_s": None if origin_mono is None else round(r.started_mono - origin_mono, 3),
             "elapsed_s": round(r.elapsed_s, 4), "error": r.error, "body": r.body} for r in responses]


def cli_transcripts(runs: Iterable[Any]) -> str:
    """CLI transcripts as one text."""
    return "\n\n".join(run.describe(tail_lines=200) for run in runs)


def resource_samples(samples: Iterable[Any], origin_mono: float) -> list[dict[str, Any]]:
    """Process samples taken since ``origin_mono`` (the scenario's start), times in seconds from it."""
    return [{"t_s": round(s.mono - origin_mono, 3), "rss_mb": round(s.rss_mb, 2), "open_fds": s.open_fds,
             "threads": s.threads, "tcp_connections": s.tcp_connections, "ib_connections": s.ib_connections,
             "children": s.children} for s in samples if s.mono >= origin_mono]


def fault_timeline(windows: Iterable[Any], origin_mono: float) -> list[dict[str, Any]]:
    """Fault windows relative to the scenario start, in seconds."""
    return [{"fault": w.label, "plane": w.plane, "definition": w.fault.to_json(),
             "applied_s": round(w.applied_mono - origin_mono, 3),
             "healed_s": None if w.healed_mono is None else round(w.healed_mono - origin_mono, 3)}
            for w in windows]


#: Where steps record the limits their claims state (in ``Observations.values``), for the resource plot.
LIMITS_KEY = "evidence.claim_limits"
#: Where the per-step slices resume (in ``Observations.values``): what earlier steps already attached.
MARKS_KEY = "evidence.step_marks"
#: The suffix of scenario-level attachments holding what no step recorded (hooks, cleanup).
OUTSIDE_STEPS = " (outside steps)"


def record_limit(values: MutableMapping[str, Any], attribute: str, limit: float) -> None:
    """Record the limit a claim states for a sampled attribute (``rss_mb`` … as growth, ``ib_connections`` as a
    count) so the scenario's resource plot draws it.

    Args:
        values: the scenario's ``Observations.values`` (reset with every scenario).
    """
    values.setdefault(LIMITS_KEY, {})[attribute] = limit


def recorded_limits(values: MutableMapping[str, Any]) -> dict[str, float]:
    """The limits the scenario's claims recorded, by sampled attribute."""
    return dict(values.get(LIMITS_KEY) or {})


def step_slice(values: MutableMapping[str, Any], exchanges: Sequence[Any], runs: Sequence[Any],
               origin_mono: float, now_mono: float) -> tuple[list[Any], list[Any], float]:
    """What was recorded since the previous slice: API answers, CLI runs, and when the previous slice was cut.

    Each answer and run is in exactly one slice (recorded when it finished); the marks live in ``values``, so a
    new scenario starts from the beginning of its (cleared) transcripts.

    Returns:
        the new answers, the new CLI runs, and the monotonic time the previous slice ended (``origin_mono`` for
        the first).
    """
    marks = values.setdefault(MARKS_KEY, {"exchanges": 0, "runs": 0, "mono": origin_mono})
    first_exchange = marks["exchanges"] if marks["exchanges"] <= len(exchanges) else 0
    first_run = marks["runs"] if marks["runs"] <= len(runs) else 0
    new_exchanges, new_runs, since = list(exchanges[first_exchange:]), list(runs[first_run:]), marks["mono"]
    marks.update(exchanges=first_exchange + len(new_exchanges), runs=first_run + len(new_runs), mono=now_mono)
    return new_exchanges, new_runs, since


def fault_changes(windows: Iterable[Any], origin_mono: float, since_mono: float, until_mono: float
                  ) -> list[dict[str, Any]]:
    """Faults applied or healed in ``(since_mono, until_mono]``, in seconds from the scenario's start."""
    events = []
    for w in windows:
        for event, at in (("applied", w.applied_mono), ("healed", w.healed_mono)):
            if at is not None and since_mono < at <= until_mono:
                events.append({"event": event, "fault": w.label, "plane": w.plane, "at_s": round(at - origin_mono, 3)})
    return sorted(events, key=lambda e: e["at_s"])
