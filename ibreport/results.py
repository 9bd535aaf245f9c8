"""What a run produced, read back from Allure result files and JUnit: counts, failures, critical checks."""

from __future__ import annotations

import json
import re
import statistics
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ibtargets.common.faults import Fault, FaultError, kinds_where
from support.checks.timing import growth
from support.contract import DataLoad, Discovery, IbHealth, ResilienceReport
from support.drivers.api import ApiResponse
from support.drivers.complaints import COROUTINE_PATTERNS, WARNING_PATTERNS, complaint_lines
from support.evidence import ENVIRONMENT_FILE, read_properties
from support.settings import Thresholds

STATUSES = ("passed", "failed", "broken", "skipped", "unknown")
PASS, FAIL, NOT_EXERCISED = "pass", "fail", "not exercised"

@dataclass(frozen=True)
class FailureKind:
    """How a scenario failed: where it stopped (precondition, action, claim) or what went wrong around it."""

    key: str
    name: str
    token: str                    # first words of the Allure message prefix (letters and spaces only)
    statuses: tuple[str, ...]     # the Allure statuses this kind applies to


#: Failure kinds, in the order they are tested (see :func:`kind_of`).
FAILURE_KINDS: tuple[FailureKind, ...] = (
    FailureKind("async", "Async/coroutine warnings in the CLI or the backend", "async warning", ("failed",)),
    FailureKind("unreachable", "Target unreachable", "target unreachable", ("failed", "broken")),
    FailureKind("suite", "Suite error (not an assertion)", "suite error", ("broken",)),
    FailureKind("precondition", "Precondition failed (claim never reached)", "precondition", ("failed",)),
    FailureKind("action", "Action failed (claim never reached)", "action", ("failed",)),
    FailureKind("bound", "Time bound exceeded", "bound exceeded", ("failed",)),
    FailureKind("claim", "Claim failed", "claim", ("failed",)),
)
KINDS = {kind.key: kind for kind in FAILURE_KINDS}


@dataclass(frozen=True)
class Capability:
    """What a feature is about, named by its tags."""

    key: str
    name: str
    tags: frozenset[str]


#: Capabilities by tag, first match wins (the feature tags of ``features/*.feature``).
CAPABILITIES: tuple[Capability, ...] = (
    Capability("safety", "safety (paper accounts only)", frozenset({"safety"})),
    Capability("validation", "silent connections & validation (phase 1)",
               frozenset({"phase1", "silent", "validation"})),
    Capability("gc", "garbage collection (phase 2)", frozenset({"phase2", "gc"})),
    Capability("client_ids", "client IDs (phase 3)", frozenset({"phase3", "client_ids"})),
    Capability("score", "resilience score", frozenset({"score"})),
    Capability("leaks", "stability & leaks", frozenset({"stability", "leaks"})),
    Capability("pool", "connection pool under stress", frozenset({"pool", "stress"})),
    Capability("recovery", "recovery from outages and IB errors", frozenset({"recovery", "errors"})),
    Capability("api", "API under load", frozenset({"api"})),
    Capability("cli", "CLI", frozenset({"cli"})),
    Capability("pipeline", "data pipeline", frozenset({"pipeline"})),
    Capability("self_report", "self-reports checked against IB", frozenset({"self_report"})),
    Capability("backend_output", "backend output & shutdown", frozenset({"backend_output"})),
    Capability("nemesis", "overlapping faults (nemesis)", frozenset({"nemesis"})),
)
_BY_CAPABILITY_KEY = {c.key: c for c in CAPABILITIES}

#: Exception types (the claim's, ``support.verdict``; the wait's, ``support.waiting``) that mean a time bound.
BOUND_TYPES = frozenset({"BoundExceeded", "ConditionTimeout", "TimeoutError"})
#: The exception type of a claim about printed warnings, coroutines and tracebacks.
COMPLAINT_TYPES = frozenset({"ComplaintFound"})
_TYPE = re.compile(r"^(?:\[[a-z ]+ / [^\]\n]*\] )?([A-Za-z_][\w.]*): ")
#: The suite could not reach a target (the API driver's transport error, the IB probe's, the OS's).
_UNREACHABLE = re.compile(r"connection failed: \w*Error|[Cc]onnection refused|ConnectionRefusedError"
                          r"|cannot reach IB at|Max retries exceeded|Name or service not known")
_MEASURED_OVER_BOUND = re.compile(r"(\d+(?:\.\d+)?) s > (\d+(?:\.\d+)?) s")
#: Labels the formatter writes on a failed or broken scenario (read back by :func:`load_results`).
KIND_LABEL, CAPABILITY_LABEL = "failure_kind", "capability"
#: The Allure message prefix the formatter writes: ``[<kind token> / <capability name>] ``.
_PREFIX = re.compile(r"^\[[a-z ]+ / [^\]\n]*\] ")


def capability_of(tags: Iterable[str], feature: str = "") -> Capability:
    """The capability a scenario's effective tags name (the feature's name when no tag does)."""
    tags = set(tags)
    found = next((c for c in CAPABILITIES if c.tags & tags), None)
    return found or Capability("other", feature or "other", frozenset())


def error_type(message: str) -> str:
    """The exception type a failure message names (``BoundExceeded: …`` → ``BoundExceeded``; '' when none)."""
    match = _TYPE.match((message or "").strip())
    return match.group(1).rpartition(".")[2] if match else ""


def kind_of(status: str, message: str, step_type: str, in_background: bool = False,
            raised: str = "") -> FailureKind | None:
    """The kind of a failed or broken result (None for passed/skipped ones): from the failing step's keyword and
    the type of what it raised, never from the wording of the message. Only a transport error's text (the OS's,
    not the suite's) and the complaints the backend or CLI printed are read from it.

    Args:
        status: the Allure status.
        message: the failure message (``Type: text``).
        step_type: ``given``, ``when`` or ``then`` of the failing step ('' when no step failed).
        in_background: the failing step belongs to a Background.
        raised: the exception type's name (read from ``message`` when not given).
    """
    if status not in ("failed", "broken"):
        return None
    raised = raised or error_type(message)
    first_line = (message or "").strip().split("\n", 1)[0]
    if status == "failed" and (raised in COMPLAINT_TYPES or complaint_lines(message or "", COROUTINE_PATTERNS)):
        return KINDS["async"]
    if _UNREACHABLE.search(first_line):
        return KINDS["unreachable"]
    if status == "broken":
        return KINDS["suite"]
    if in_background or step_type == "given":
        return KINDS["precondition"]
    if step_type == "when":
        return KINDS["action"]
    if raised in BOUND_TYPES:
        return KINDS["bound"]
    return KINDS["claim"]


def over_bound_pct(message: str) -> float | None:
    """By how much a measured time exceeded its bound (``took 6.20 s > 5.0 s`` → 24.0), None if not stated."""
    match = _MEASURED_OVER_BOUND.search(message or "")
    if not match or float(match.group(2)) <= 0:
        return None
    return 100.0 * (float(match.group(1)) / float(match.group(2)) - 1.0)


@dataclass(frozen=True)
class Category:
    """Why a scenario failed (its kind) and what it was about (its capability)."""

    kind: FailureKind
    capability: Capability
    step: str = ""                      # the failing step, keyword included
    over_bound_pct: float | None = None  # for a bound exceeded: by how much, when the message says

    @property
    def key(self) -> str:
        """The kind's key."""
        return self.kind.key

    @property
    def name(self) -> str:
        """Kind and capability, for the Markdown."""
        return f"{self.kind.name} · {self.capability.name}"

    @property
    def prefix(self) -> str:
        """What the formatter puts before the Allure status message, so Allure's categories can match it."""
        return f"[{self.kind.token} / {self.capability.name}] "


def categorise(status: str, message: str, step: str, step_type: str, tags: Iterable[str],
               feature: str = "", in_background: bool = False, raised: str = "") -> Category | None:
    """The category of a failed or broken scenario (None for passed/skipped ones)."""
    kind = kind_of(status, message, step_type, in_background, raised)
    if kind is None:
        return None
    pct = over_bound_pct(message) if kind.key == "bound" else None
    return Category(kind, capability_of(tags, feature), step, pct)


def strip_prefix(message: str) -> str:
    """A status message without the formatter's category prefix."""
    return _PREFIX.sub("", message or "", count=1)


def allure_categories() -> list[dict[str, Any]]:
    """``categories.json``: one Allure category per failure kind, matched on the formatter's message prefix."""
    categories = [{"name": kind.name, "matchedStatuses": list(kind.statuses),
                   "messageRegex": rf"(?s)\[{kind.token} / .*"} for kind in FAILURE_KINDS]
    categories.append({"name": "Unclassified failures (no category prefix)", "matchedStatuses": ["failed", "broken"],
                       "messageRegex": "(?s).*"})
    return categories


#: Faults after which a backend must notice trouble (silent-detection time is measured for these);
#: ``silent`` / ``unanswered`` count only when they swallow the validation request (or everything).
SILENT_KINDS = kinds_where("silences")
#: Faults that interrupt service (recovery time is measured after these are healed).
DISRUPTIVE_KINDS = kinds_where("disrupts")
#: The request a backend's health check sends (the contract's validation): a fault that spares it spares the check.
PROBE = "reqCurrentTime"
#: API paths whose answer says something about IB.
IB_PATHS = ("/ib/health", "/ib/resilience", "/ib/symbols/discover", "/data/load")


@dataclass(frozen=True)
class Attachment:
    """One file a scenario (or one of its steps, at any depth) attached."""

    name: str
    path: Path
    type: str


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario as Allure recorded it."""

    name: str
    feature: str
    status: str
    message: str
    failing_step: str
    labels: dict[str, tuple[str, ...]]
    attachments: tuple[Attachment, ...]
    duration_s: float
    category: Category | None = None  # None unless failed or broken

    def label(self, name: str) -> str:
        """The first value of a label ('' when absent)."""
        return (self.labels.get(name) or ("",))[0]

    @property
    def skip_reason(self) -> str:
        """Why a skipped scenario did not run (the capability it lacked), '' otherwise."""
        return self.message.removeprefix("skipped: ") if self.status == "skipped" else ""

    def attached(self, name: str) -> list[Attachment]:
        """Attachments with this name, on the scenario or on any of its steps (prefix match for names with a
        suffix, e.g. ``IB history`` or ``API exchanges (outside steps)``)."""
        return [a for a in self.attachments if a.name == name or a.name.startswith(name + " (")]

    def attached_list(self, name: str) -> list[Any]:
        """The items of every JSON-array attachment called ``name``, concatenated (each step attaches its own
        slice of the API exchanges; unreadable or non-array attachments are left out)."""
        items: list[Any] = []
        for attachment in self.attached(name):
            try:
                value = json.loads(attachment.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(value, list):
                items += value
        return items

    def attached_json(self, name: str) -> Any:
        """The parsed JSON of the first attachment called ``name`` (None when absent or unreadable)."""
        for attachment in self.attached(name):
            try:
                return json.loads(attachment.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
        return None

    def attached_text(self, name: str) -> str:
        """The concatenated text of every attachment called ``name``."""
        texts = []
        for attachment in self.attached(name):
            try:
                texts.append(attachment.path.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
        return "\n".join(texts)


@dataclass(frozen=True)
class RunResults:
    """Every scenario result of one run, plus the run's environment properties."""

    directory: Path
    scenarios: tuple[ScenarioResult, ...]
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Scenarios per Allure status (every status present, zero included)."""
        found = Counter(s.status for s in self.scenarios)
        return {status: found.get(status, 0) for status in STATUSES}

    @property
    def total(self) -> int:
        """Number of scenarios."""
        return len(self.scenarios)

    @property
    def problems(self) -> list[ScenarioResult]:
        """Failed and broken scenarios, in the order they ran."""
        return [s for s in self.scenarios if s.status in ("failed", "broken")]

    @property
    def ran(self) -> int:
        """Scenarios that ran (passed, failed, broken or unknown): what behave's JUnit counts as tests."""
        return self.total - self.counts["skipped"]

    @property
    def capability_skips(self) -> list[ScenarioResult]:
        """Selected scenarios skipped because the target lacks a capability (each with its reason)."""
        return [s for s in self.scenarios if s.status == "skipped" and s.skip_reason]

    @property
    def untested(self) -> list[ScenarioResult]:
        """Selected scenarios that never started (no skip reason: the run stopped before them)."""
        return [s for s in self.scenarios if s.status == "skipped" and not s.skip_reason]

    def thresholds(self) -> Thresholds:
        """The bounds the run used (``threshold.*`` properties), the seed's defaults otherwise."""
        values = {}
        for name in Thresholds.__dataclass_fields__:
            raw = self.properties.get(f"threshold.{name}")
            try:
                values[name] = float(raw) if raw is not None else None
            except ValueError:
                values[name] = None
        return Thresholds(**{k: v for k, v in values.items() if v is not None})


#: Escapes a ``.properties`` value may hold (``\\`` for a backslash, ``\:``, ``\=`` …).
def load_results(results_dir: Path) -> RunResults:
    """Read every ``*-result.json`` of an Allure results directory, oldest first.

    Raises:
        FileNotFoundError: the directory does not exist.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"no Allure results directory at {results_dir}")
    raw = []
    for path in sorted(results_dir.glob("*-result.json")):
        try:
            raw.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a half-written file of an interrupted run is not a scenario
    raw.sort(key=lambda r: r.get("start") or 0)
    scenarios = tuple(_scenario(results_dir, r) for r in raw)
    return RunResults(results_dir, scenarios, read_properties(results_dir / ENVIRONMENT_FILE))


def _scenario(results_dir: Path, raw: dict[str, Any]) -> ScenarioResult:
    labels: dict[str, list[str]] = {}
    for label in raw.get("labels") or []:
        labels.setdefault(str(label.get("name")), []).append(str(label.get("value")))
    steps = list(_walk_steps(raw.get("steps") or []))
    failing = next((s for s in steps if s.get("status") in ("failed", "broken")), None)
    message = strip_prefix(((raw.get("statusDetails") or {}).get("message") or "").strip())
    if failing is not None and not message:
        message = ((failing.get("statusDetails") or {}).get("message") or "").strip()
    attachments = [a for item in [raw, *steps] for a in item.get("attachments") or []]
    start, stop = raw.get("start") or 0, raw.get("stop") or 0
    status, feature = str(raw.get("status") or "unknown"), (labels.get("feature") or [""])[0]
    failing_step = str(failing.get("name")) if failing else ""
    return ScenarioResult(
        name=str(raw.get("name") or ""), feature=feature, status=status, message=message,
        failing_step=failing_step, labels={k: tuple(v) for k, v in labels.items()},
        attachments=tuple(Attachment(str(a.get("name")), results_dir / str(a.get("source")), str(a.get("type")))
                          for a in attachments),
        duration_s=max(0.0, (stop - start) / 1000.0),
        category=_recorded_category(status, message, failing_step, labels)
        or categorise(status, message, failing_step, _step_type(raw.get("steps") or []), labels.get("tag", ()),
                      feature))


def _recorded_category(status: str, message: str, step: str, labels: dict[str, list[str]]) -> Category | None:
    """The category the formatter recorded in the labels (None when it recorded none)."""
    kind = KINDS.get((labels.get(KIND_LABEL) or [""])[0])
    if kind is None or status not in kind.statuses:
        return None
    capability = _BY_CAPABILITY_KEY.get((labels.get(CAPABILITY_LABEL) or [""])[0]) \
        or capability_of(labels.get("tag", ()), (labels.get("feature") or [""])[0])
    return Category(kind, capability, step, over_bound_pct(message) if kind.key == "bound" else None)


def _step_type(steps: list[dict[str, Any]]) -> str:
    """``given``/``when``/``then`` of the first failed or broken top-level step ('' if none); And/But inherit."""
    current = ""
    for step in steps:
        keyword = str(step.get("name") or "").split(" ", 1)[0].lower()
        current = keyword if keyword in ("given", "when", "then") else current
        if step.get("status") in ("failed", "broken"):
            return current
    return ""


def _walk_steps(steps: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for step in steps:
        yield step
        yield from _walk_steps(step.get("steps") or [])


#: Characters XML 1.0 forbids; behave copies a CLI's ANSI escapes into JUnit as they are.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xml_safe(text: str) -> str:
    """``text`` without the control characters XML 1.0 forbids."""
    return _XML_FORBIDDEN.sub("", text)


def sanitize_junit(junit_dir: Path) -> None:
    """Rewrite behave's JUnit files so every XML reader (CI included) can parse them."""
    for path in Path(junit_dir).glob("TESTS-*.xml"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if _XML_FORBIDDEN.search(text):
            path.write_text(xml_safe(text), encoding="utf-8")


def junit_counts(junit_dir: Path) -> dict[str, int]:
    """Totals over every ``TESTS-*.xml`` of a JUnit directory: tests, failures, errors, skipped."""
    totals = Counter({"tests": 0, "failures": 0, "errors": 0, "skipped": 0})
    for path in sorted(Path(junit_dir).glob("TESTS-*.xml")):
        try:
            root = ElementTree.fromstring(xml_safe(path.read_text(encoding="utf-8", errors="replace")))
        except (OSError, ElementTree.ParseError):
            continue
        suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
        for suite in suites:
            for key in totals:
                totals[key] += int(suite.get(key) or 0)
    return dict(totals)


def junit_agrees(run: RunResults, junit: dict[str, int]) -> bool:
    """Whether behave's JUnit counts the same scenarios as the Allure results.

    Scenarios skipped for a missing capability are in the Allure results with their reason; JUnit leaves every
    skipped scenario out under ``--no-skipped`` (then ``skipped`` is 0 and never-started ones count as tests)
    and lists them all, other levels included, without it. So the scenarios that ran must match, failures and
    errors exactly.
    """
    executed = junit.get("tests", 0) - junit.get("skipped", 0)
    expected = run.ran + (len(run.untested) if not junit.get("skipped") else 0)
    return (executed == expected and junit.get("failures") == run.counts["failed"]
            and junit.get("errors") == run.counts["broken"])


# ------------------------------------------------------------------------------------------- critical checks

@dataclass(frozen=True)
class Check:
    """One critical check of the seed: what is required, what the run showed, and the verdict."""

    name: str
    requirement: str
    observed: str
    verdict: str  # PASS, FAIL or NOT_EXERCISED


def critical_checks(run: RunResults) -> list[Check]:
    """The seed's critical checks, derived from what the scenarios attached and how they ended."""
    bounds = run.thresholds()
    return [coroutine_check(run), healthy_score_check(run, bounds), score_under_faults_check(run, bounds),
            silent_detection_check(run, bounds), recovery_check(run, bounds), leak_check(run)]


def coroutine_check(run: RunResults) -> Check:
    """No RuntimeWarning, un-awaited coroutine or traceback in any CLI transcript, and no RuntimeWarning or
    un-awaited coroutine in the backend's own output (a traceback there may be an honest report of a fault)."""
    requirement = ("no RuntimeWarning / un-awaited coroutine / traceback in any CLI output, "
                   "no RuntimeWarning / un-awaited coroutine in the backend's output")
    runs, noisy, outputs = 0, [], 0
    for scenario in run.scenarios:
        transcript = scenario.attached_text("CLI transcripts")
        runs += sum(1 for line in transcript.splitlines() if line.startswith("$ "))
        noisy += [f"{scenario.name}: {line}" for line in complaint_lines(transcript, WARNING_PATTERNS)]
        output = scenario.attached_text("Backend output")
        outputs += bool(scenario.attached("Backend output"))
        noisy += [f"{scenario.name} (backend): {line}" for line in complaint_lines(output, COROUTINE_PATTERNS)]
    flagged = [s for s in run.problems if s.category is not None and s.category.key == "async"]
    noisy += [f"{s.name}: {s.message.splitlines()[0] if s.message else 'failed'}" for s in flagged
              if not any(line.startswith(s.name) for line in noisy)]
    if noisy:
        return Check("Async/coroutine errors", requirement, f"DETECTED: {'; '.join(noisy[:3])}"
                     + (f" (+{len(noisy) - 3} more)" if len(noisy) > 3 else ""), FAIL)
    if not runs and not outputs:
        return Check("Async/coroutine errors", requirement,
                     "no CLI command ran and the backend's output was not visible", NOT_EXERCISED)
    scenarios = sum(1 for s in run.scenarios if s.attached("CLI transcripts"))
    return Check("Async/coroutine errors", requirement,
                 f"none detected in {runs} CLI run(s) of {scenarios} scenario(s)"
                 + (f" and the backend's output of {outputs} scenario(s)" if outputs else
                    "; the backend's output was not visible"), PASS)


@dataclass(frozen=True)
class _Exchange:
    """One recorded API exchange, read through the contract's typed values (:mod:`support.contract`)."""

    response: ApiResponse

    @property
    def path(self) -> str:
        return self.response.path

    @property
    def started_s(self) -> float:
        return self.response.started_mono

    @property
    def finished_s(self) -> float:
        return self.response.finished_mono

    @property
    def score(self) -> float | None:
        return ResilienceReport.of(self.response).score if self.path == "/ib/resilience" else None

    @property
    def live_pool(self) -> bool:
        """The report counts at least one healthy connection."""
        return (ResilienceReport.of(self.response).pool_healthy or 0) >= 1

    def troubled(self, score_min: float) -> bool:
        """The answer shows the backend noticed IB trouble (or the call hung / failed)."""
        if not self.response.ok:
            return True
        return ((self.score is not None and self.score < score_min) or IbHealth.of(self.response).healthy is False
                or (self.path == "/data/load" and DataLoad.of(self.response).status == "failed"))

    def healthy(self, score_min: float) -> bool:
        """The answer shows IB working through the backend."""
        if not self.response.ok:
            return False
        if self.path == "/ib/resilience":
            return self.score is not None and self.score >= score_min
        if self.path == "/ib/health":
            return IbHealth.of(self.response).healthy is True
        if self.path == "/ib/symbols/discover":
            return Discovery.of(self.response).symbol_info is not None
        return DataLoad.of(self.response).status in ("success", "partial")


@dataclass(frozen=True)
class _Window:
    kind: str
    applied_s: float
    healed_s: float | None

    def covers(self, at_s: float) -> bool:
        return at_s >= self.applied_s and (self.healed_s is None or at_s < self.healed_s)


def _exchanges(scenario: ScenarioResult) -> list[_Exchange]:
    out = []
    for e in scenario.attached_list("API exchanges"):
        if not isinstance(e, dict) or e.get("started_s") is None or str(e.get("path")) not in IB_PATHS:
            continue
        out.append(_Exchange(ApiResponse(str(e.get("method") or ""), str(e["path"]), None, e.get("status"), e.get("body"),
                                         float(e.get("elapsed_s") or 0.0), float(e["started_s"]))))
    return sorted(out, key=lambda e: e.started_s)


def _counts_as(entry: dict[str, Any], kinds: frozenset[str]) -> bool:
    """Whether a recorded fault is, as configured, one of ``kinds`` in effect: the fault itself answers (a partial
    silence that spares the health probe, or a refuse that keeps open connections, leaves a working path to IB)."""
    try:
        fault = Fault.from_json(str(entry.get("plane", "")), entry.get("definition") or {})
    except FaultError:
        return False
    if fault.kind not in kinds:
        return False
    return fault.silencing(PROBE) if kinds is SILENT_KINDS else fault.disrupting(PROBE)


def _windows(scenario: ScenarioResult, kinds: frozenset[str]) -> list[_Window]:
    out = []
    for w in scenario.attached_list("Fault timeline"):
        if not isinstance(w, dict):
            continue
        kind = str((w.get("definition") or {}).get("kind", ""))
        if _counts_as(w, kinds) and w.get("applied_s") is not None:
            healed = w.get("healed_s")
            out.append(_Window(kind, float(w["applied_s"]), None if healed is None else float(healed)))
    return out


def _span(values: list[float], unit: str = " s") -> str:
    return f"max {max(values):.2f}{unit}, median {statistics.median(values):.2f}{unit} over {len(values)}"


def healthy_score_check(run: RunResults, bounds: Thresholds) -> Check:
    """The score is at least the healthy minimum whenever no fault is on and the pool has a live connection."""
    requirement = f"≥ {bounds.score_min:g}/100 with the gateway healthy"
    scores = []
    for scenario in run.scenarios:
        if scenario.attached_list("Fault timeline"):
            continue  # a scenario with faults says nothing about the healthy score
        for e in _exchanges(scenario):
            if e.path == "/ib/resilience" and e.score is not None and e.live_pool:
                scores.append(e.score)
    if not scores:
        return Check("Resilience score (healthy)", requirement, "no report with a live pool at this level", NOT_EXERCISED)
    low = min(scores)
    verdict = PASS if low >= bounds.score_min else FAIL
    note = " (below 65: infrastructure trouble)" if low < bounds.score_infrastructure else ""
    return Check("Resilience score (healthy)", requirement,
                 f"min {low:g}, max {max(scores):g} over {len(scores)} report(s){note}", verdict)


def score_under_faults_check(run: RunResults, bounds: Thresholds) -> Check:
    """The score falls below the healthy minimum while the gateway is silent or gone."""
    requirement = f"falls below {bounds.score_min:g} within {bounds.silent_detection_s:g} s of a silent/absent gateway"
    lows, stuck = [], []
    for scenario in run.scenarios:
        exchanges = [e for e in _exchanges(scenario) if e.path == "/ib/resilience" and e.score is not None]
        for window in _windows(scenario, DISRUPTIVE_KINDS):
            inside = [e for e in exchanges if window.covers(e.started_s)]
            if not inside:
                continue
            lows.append(min(e.score for e in inside))
            late = any(e.started_s - window.applied_s >= bounds.silent_detection_s for e in inside)
            if lows[-1] >= bounds.score_min and late:
                stuck.append(f"{scenario.name}: stayed {lows[-1]:g} during {window.kind}")
    if not lows:
        return Check("Resilience score (under faults)", requirement, "no report during a fault at this level",
                     NOT_EXERCISED)
    observed = f"lowest {min(lows):g} in {len(lows)} fault window(s)"
    if stuck:
        return Check("Resilience score (under faults)", requirement, observed + "; " + "; ".join(stuck[:3]), FAIL)
    return Check("Resilience score (under faults)", requirement, observed, PASS)


def silent_detection_check(run: RunResults, bounds: Thresholds) -> Check:
    """Time from a silencing fault to the first answer that shows the backend noticed."""
    def measure(window: _Window, exchanges: list[_Exchange], failed: bool) -> tuple[float | None, str]:
        during = [e for e in exchanges if window.covers(e.started_s)]
        noticed = next((e for e in during if e.troubled(bounds.score_min)), None)
        if noticed is not None:
            return noticed.finished_s - window.applied_s, ""
        return None, f"{window.kind} never noticed in {len(during)} answer(s)" if during and failed else ""
    return _timing_check(run, SILENT_KINDS, measure, "Silent-connection detection",
                         f"≤ {bounds.silent_detection_s:g} s, never a hang", bounds.silent_detection_s, "fault(s)",
                         "no silencing fault at this level")


def recovery_check(run: RunResults, bounds: Thresholds) -> Check:
    """Time from a disruptive fault's end to the first answer that shows IB working again."""
    def measure(window: _Window, exchanges: list[_Exchange], failed: bool) -> tuple[float | None, str]:
        if window.healed_s is None:
            return None, ""
        after = [e for e in exchanges if e.started_s >= window.healed_s]
        back = next((e for e in after if e.healthy(bounds.score_min)), None)
        if back is not None:
            return back.finished_s - window.healed_s, ""
        return None, f"not back after {window.kind}" if after and failed else ""
    return _timing_check(run, DISRUPTIVE_KINDS, measure, "Recovery time",
                         f"≤ {bounds.recovery_s:g} s after the gateway is back", bounds.recovery_s, "recover(ies)",
                         "no recovery observed at this level")


def _timing_check(run: RunResults, kinds: frozenset[str],
                  measure: Callable[[_Window, list[_Exchange], bool], tuple[float | None, str]],
                  name: str, requirement: str, bound_s: float, noun: str, unexercised: str) -> Check:
    """A time measured per fault window of ``kinds``; any window past ``bound_s`` or with a problem fails."""
    times, problems = [], []
    for scenario in run.scenarios:
        exchanges = _exchanges(scenario)
        for window in _windows(scenario, kinds):
            took_s, problem = measure(window, exchanges, scenario.status in ("failed", "broken"))
            if took_s is not None:
                times.append(took_s)
            if problem:
                problems.append(f"{scenario.name}: {problem}")
    if not times and not problems:
        return Check(name, requirement, unexercised, NOT_EXERCISED)
    observed = f"{_span(times)} {noun}" if times else "never"
    if problems:
        observed += "; " + "; ".join(problems[:3])
    return Check(name, requirement, observed, FAIL if problems or any(t > bound_s for t in times) else PASS)


def _leak_claim(scenario: ScenarioResult) -> bool:
    """A stability & leaks scenario whose claim (not its precondition) failed."""
    category = scenario.category
    return category is not None and category.capability.key == "leaks" and category.key in ("claim", "bound")


def leak_check(run: RunResults) -> Check:
    """Resource growth over the sampled (stability) scenarios, and any leak-category failure."""
    requirement = "RSS, fds, threads flat; IB connections within the pool; everything closed after cleanup"
    pool_size = int(float(run.properties.get("profile.pool_limit") or 0)) or None
    summaries, failures = [], []
    for scenario in run.scenarios:
        samples = [SimpleNamespace(**s) for s in scenario.attached_list("Backend resource samples")
                   if isinstance(s, dict)]
        if samples:
            peak = max(getattr(s, "ib_connections", 0) for s in samples)
            summaries.append(f"{scenario.name}: RSS {growth(samples, 'rss_mb'):+.1f} MB, "
                             f"fds {growth(samples, 'open_fds'):+g}, threads {growth(samples, 'threads'):+g}, "
                             f"peak {peak} IB connection(s)" + (f" (pool {pool_size})" if pool_size else ""))
            if scenario.status in ("failed", "broken") or (pool_size and peak > pool_size):
                failures.append(scenario.name)
    failures += [s.name for s in run.problems if _leak_claim(s) and s.name not in failures]
    if not summaries and not failures:
        return Check("Leaks", requirement, "no resource sampling at this level (stability scenarios are @standard)",
                     NOT_EXERCISED)
    observed = "; ".join(summaries) or "no samples"
    if failures:
        return Check("Leaks", requirement, observed + "; failed: " + ", ".join(failures[:5]), FAIL)
    return Check("Leaks", requirement, observed, PASS)
