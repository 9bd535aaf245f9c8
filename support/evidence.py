"""Evidence: what each scenario, and each of its steps, leaves behind for a reviewer (Allure attachments, logs).

Attachments made while a step runs (behave's ``after_step`` runs before the step is reported) hang on that
step in Allure; those made in ``after_scenario`` hang on the scenario. :func:`step_slice` cuts the scenario's
transcripts into per-step slices, so each step carries the API exchanges and CLI runs it produced.
"""

from __future__ import annotations

import json
import logging
import platform
import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

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


#: The suffix of scenario-level attachments holding what no step recorded (hooks, cleanup).
OUTSIDE_STEPS = " (outside steps)"


def record_limit(limits: MutableMapping[str, float], attribute: str, limit: float) -> None:
    """Record the limit a claim states for a sampled attribute (``rss_mb`` … as growth, ``ib_connections`` as a
    count) so the scenario's resource plot draws it.

    Args:
        limits: the scenario's ``Observations.claim_limits`` (reset with every scenario).
    """
    limits[attribute] = limit


def step_slice(marks: MutableMapping[str, float], exchanges: Sequence[Any], runs: Sequence[Any],
               origin_mono: float, now_mono: float) -> tuple[list[Any], list[Any], float]:
    """What was recorded since the previous slice: API answers, CLI runs, and when the previous slice was cut.

    Each answer and run is in exactly one slice (recorded when it finished); the marks live in the scenario's
    ``Observations.step_marks``, so a new scenario starts from the beginning of its (cleared) transcripts.

    Returns:
        the new answers, the new CLI runs, and the monotonic time the previous slice ended (``origin_mono`` for
        the first).
    """
    if not marks:
        marks.update(exchanges=0, runs=0, mono=origin_mono)
    first_exchange = int(marks["exchanges"]) if marks["exchanges"] <= len(exchanges) else 0
    first_run = int(marks["runs"]) if marks["runs"] <= len(runs) else 0
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


# ---------------------------------------------------------------- what the run was pointed at (environment.properties)

ENVIRONMENT_FILE = "environment.properties"
T = TypeVar("T")


def target_properties(world: Any) -> dict[str, str]:
    """What the run was pointed at, with versions, for ``environment.properties``. Never raises.

    Args:
        world: the suite's :class:`support.world.World` after ``before_all`` set it up.
    """
    settings, targets = world.settings, world.targets
    from support import __version__
    gateway_kind = f"IB Gateway simulator (ib-resilience {__version__})" if targets.gateway_control \
        else "external IB Gateway / TWS"
    health = _quietly(world.api.health)
    body = health.body if health is not None and isinstance(health.body, dict) else {}
    probe = _quietly(lambda: world.ib.probe(settings.squatter_client_id_base, settings.bound_of(5.0, "the version probe").seconds))
    properties = {
        "target": settings.target,
        "api_base_url": targets.api_base_url,
        "ib_host": str(targets.ib_host),
        "ib_port": str(targets.ib_port),
        "backend_ib_host": str(getattr(targets, "backend_ib_host", "") or "?"),
        "backend_ib_port": str(targets.backend_ib_port or "?"),
        "gateway_control": targets.gateway_control or "none",
        "proxy_control": targets.proxy_control or "none",
        "cli": " ".join(targets.cli),
        "backend.version": str(body.get("version", "unknown")),
        "gateway": gateway_kind,
        "gateway.server_version": str(probe.server_version) if probe and probe.server_version else "unknown",
        "gateway.accounts": ",".join(getattr(world, "accounts", ()) or ()),
        "ib_library": settings.ib_library,
        "ib_library.version": _version(settings.ib_library),
        "ib_insync.version": _version("ib_insync"),
        "behave.version": _version("behave"),
        "python.version": platform.python_version(),
        "platform": platform.platform(),
        "timeout_multiplier": f"{settings.timeout_multiplier:g}",
    }
    properties |= {f"threshold.{k}": f"{v:g}" for k, v in vars(settings.thresholds).items()}
    properties |= {f"profile.{k}": str(v) for k, v in vars(settings.profile).items()}
    if settings.target == "embedded":
        properties |= {f"tuning.{k}": f"{v:g}" for k, v in vars(settings.tuning).items()}
    if settings.managed:
        properties["backend_command"] = " ".join(settings.backend_command)
        properties["services"] = ", ".join(f"{s.name} ({s.lifetime})" for s in settings.services) or "none"
    properties["lacks"] = ", ".join(settings.lacks) or "nothing declared"
    return properties


def _quietly(call: Callable[[], T]) -> T | None:
    try:
        return call()
    except Exception:  # a version we cannot read is "unknown", never a failed run
        return None


def _version(module: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_properties(path: Path, properties: Mapping[str, str]) -> None:
    """Write a Java ``.properties`` file (what Allure reads for its Environment widget)."""
    def clean(text: str) -> str:
        return str(text).replace("\\", "\\\\").replace("\n", " ").replace("\r", " ")
    lines = [f"{clean(k).replace('=', '_').replace(':', '_').replace(' ', '_')}={clean(v)}"
             for k, v in properties.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


_PROPERTY_ESCAPE = re.compile(r"\\([\\:= #!])")


def read_properties(path: Path) -> dict[str, str]:
    """A Java-style ``key=value`` properties file as a dict (empty when missing)."""
    properties: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return properties
    for line in lines:
        if line.strip() and not line.lstrip().startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = _PROPERTY_ESCAPE.sub(r"\1", value.strip())
    return properties


def record_targets(results_dir: Path, world: Any) -> None:
    """Merge :func:`target_properties` into the run's ``environment.properties`` (Allure's Environment widget)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ENVIRONMENT_FILE
    write_properties(path, read_properties(path) | target_properties(world))


#: Where a scenario's first attempt goes when it is run once more on a fresh backend (reports_dir/RETIRED_DIR): kept
#: as evidence, out of the results every report counts (one verdict per scenario).
RETIRED_DIR = "retired-attempts"


def retire_attempt(results_dir: Path, name: str, location: str, into: Path) -> list[Path]:
    """Move the Allure result files of the scenario ``name`` at ``location`` (``file:line``, its location label) from
    ``results_dir`` into ``into``; return where they went. Its attachments stay (they are named by the result)."""
    moved = []
    for path in sorted(Path(results_dir).glob("*-result.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        labels = {(str(label.get("name")), str(label.get("value"))) for label in raw.get("labels") or []}
        if raw.get("name") == name and ("location", location) in labels:   # ibreport's LOCATION_LABEL
            into.mkdir(parents=True, exist_ok=True)
            moved.append(path.replace(into / path.name))
    return moved
