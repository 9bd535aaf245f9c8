"""What a run produced, read back from Allure result files and JUnit: counts, failures, critical checks."""

from __future__ import annotations

import json
import re
import statistics
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from support.checks.run_wide import INVARIANTS
from support.checks.timing import growth
from support.drivers.complaints import COROUTINE_PATTERNS, complaint_lines
from support.evidence import ENVIRONMENT_FILE, read_properties
from support.run_evidence import FEATURE as INVARIANTS_FEATURE
from support.run_evidence import INVARIANTS_FILE
from support.run_evidence import JUNIT_FILE as INVARIANTS_JUNIT
from support.settings import Thresholds

STATUSES = ("passed", "failed", "broken", "skipped", "unknown")
PASS, FAIL, NOT_EXERCISED = "pass", "fail", "not exercised"
#: The verdict of a check whose run-wide invariant has no record: the run ended before ``after_all`` judged it.
NOT_JUDGED = "not judged"

@dataclass(frozen=True)
class FailureKind:
    """How a scenario failed: where it stopped (precondition, action, claim) or what went wrong around it."""

    key: str
    name: str
    token: str                    # first words of the Allure message prefix (letters and spaces only)
    statuses: tuple[str, ...]     # the Allure statuses this kind applies to


#: Failure kinds, in the order they are tested (see :func:`kind_of`).
FAILURE_KINDS: tuple[FailureKind, ...] = (
    FailureKind("interrupted", "Interrupted (the run was stopped while it ran)", "interrupted", ("broken",)),
    FailureKind("async", "Async/coroutine warnings in the CLI or the backend", "async warning", ("failed",)),
    FailureKind("not_provided", "Contract: not provided (an endpoint or a field the backend lacks)", "not provided",
                ("failed",)),
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
#: The exception types of a claim the backend gave nothing to judge (support.verdict.NotProvided and its kinds).
NOT_PROVIDED_TYPES = frozenset({"NotProvided", "ContractError", "RouteMissing"})
#: The exception type of a claim about printed warnings, coroutines and tracebacks.
COMPLAINT_TYPES = frozenset({"ComplaintFound"})
_TYPE = re.compile(r"^(?:\[[a-z ]+ / [^\]\n]*\] )?([A-Za-z_][\w.]*): ")
#: The suite could not reach a target (the API driver's transport error, the IB probe's, the OS's).
_UNREACHABLE = re.compile(r"connection failed: \w*Error|[Cc]onnection refused|ConnectionRefusedError"
                          r"|cannot reach IB at|Max retries exceeded|Name or service not known")
_MEASURED_OVER_BOUND = re.compile(r"(\d+(?:\.\d+)?) s > (\d+(?:\.\d+)?) s")
#: Labels the formatter writes on a failed or broken scenario (read back by :func:`load_results`).
KIND_LABEL, CAPABILITY_LABEL = "failure_kind", "capability"
#: The label the formatter writes on a failed scenario: the claim its failing step raised from (:func:`claim_in`).
CLAIM_LABEL = "claim"
#: The modules whose functions are claims (``support/claims.py``, ``support/cli_claims.py``).
CLAIM_MODULES = ("support/claims.py", "support/cli_claims.py")
_FRAME = re.compile(r'File "([^"]+)", line \d+, in (\w+)')


def claim_in(frames: Iterable[tuple[str, str]]) -> str:
    """The claim a failure raised from, from its frames (file, function; outermost first): the innermost public
    function of a claim module (the requirement that failed), ``cli.`` before it when the outermost one — the claim
    the step called — is about a CLI run (``support/cli_claims.py``); '' when no claim raised."""
    claims = [(path.replace("\\", "/"), function) for path, function in frames
              if any(path.replace("\\", "/").endswith(m) for m in CLAIM_MODULES) and not function.startswith("_")]
    if not claims:
        return ""
    return ("cli." if claims[0][0].endswith("cli_claims.py") else "") + claims[-1][1]


def frames_of(trace: str) -> list[tuple[str, str]]:
    """The (file, function) of each frame of a Python trace as Allure records it, outermost first."""
    return _FRAME.findall(trace or "")
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
            raised: str = "", interrupted: bool = False) -> FailureKind | None:
    """The kind of a failed or broken result (None for passed/skipped ones): from the failing step's keyword and
    the type of what it raised, never from the wording of the message. Only a transport error's text (the OS's,
    not the suite's) and the complaints the backend or CLI printed are read from it.

    Args:
        status: the Allure status.
        message: the failure message (``Type: text``).
        step_type: ``given``, ``when`` or ``then`` of the failing step ('' when no step failed).
        in_background: the failing step belongs to a Background.
        raised: the exception type's name (read from ``message`` when not given).
        interrupted: the run was stopped (SIGTERM, SIGINT, its time bound) while the scenario ran.
    """
    if status not in ("failed", "broken"):
        return None
    if interrupted and status == "broken":
        return KINDS["interrupted"]
    raised = raised or error_type(message)
    first_line = (message or "").strip().split("\n", 1)[0]
    if status == "failed" and (raised in COMPLAINT_TYPES or complaint_lines(message or "", COROUTINE_PATTERNS)):
        return KINDS["async"]
    if status == "failed" and raised in NOT_PROVIDED_TYPES:
        return KINDS["not_provided"]
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
               feature: str = "", in_background: bool = False, raised: str = "",
               interrupted: bool = False) -> Category | None:
    """The category of a failed or broken scenario (None for passed/skipped ones)."""
    kind = kind_of(status, message, step_type, in_background, raised, interrupted)
    if kind is None:
        return None
    pct = over_bound_pct(message) if kind.key == "bound" else None
    return Category(kind, capability_of(tags, feature), step, pct)


def strip_prefix(message: str) -> str:
    """A status message without the formatter's category prefix."""
    return _PREFIX.sub("", message or "", count=1)


#: The Allure category of a broken run-wide invariant.
INVARIANT_CATEGORY = "Run-wide invariant broken"


def allure_categories() -> list[dict[str, Any]]:
    """``categories.json``: one Allure category per failure kind, matched on the formatter's message prefix; a
    broken run-wide invariant (no prefix: its trace names its requirement, ``support/run_evidence.py``) apart."""
    categories = [{"name": kind.name, "matchedStatuses": list(kind.statuses),
                   "messageRegex": rf"(?s)\[{kind.token} / .*"} for kind in FAILURE_KINDS]
    categories.append({"name": INVARIANT_CATEGORY, "matchedStatuses": ["failed"], "messageRegex": "(?s).*",
                       "traceRegex": r"(?s).*\nrequirement: .*"})
    categories.append({"name": "Unclassified failures (no category prefix)", "matchedStatuses": ["failed", "broken"],
                       "messageRegex": "(?s).*"})
    return categories


@dataclass(frozen=True)
class Attachment:
    """One file a scenario (or one of its steps, at any depth) attached."""

    name: str
    path: Path
    type: str


@dataclass(frozen=True)
class StepResult:
    """One top-level step of a scenario as Allure recorded it, with what it attached (its nested steps' too).

    Args:
        keyword: ``given``, ``when`` or ``then`` (``And``/``But`` take the keyword before them).
        offset_s: when it started, in seconds from the scenario's start (None when Allure recorded no times).
    """

    name: str
    status: str
    keyword: str
    attachments: tuple[Attachment, ...] = ()
    offset_s: float | None = None
    duration_s: float = 0.0


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
    steps: tuple[StepResult, ...] = ()
    trace: str = ""                   # the failure's trace (the Python frames the claim raised from)
    start_ms: int = 0                 # when it started (Allure's epoch milliseconds)

    @property
    def failing_index(self) -> int | None:
        """The index in :attr:`steps` of the step that failed (None when no step did: a hook)."""
        return next((i for i, step in enumerate(self.steps) if step.status in ("failed", "broken")), None)

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
class InvariantViolation:
    """One violation of a run-wide invariant, ``at_s`` seconds from the start of the history it was judged on."""

    at_s: float
    text: str


@dataclass(frozen=True)
class InvariantResult:
    """One run-wide invariant as the run judged it (``features/environment.py`` ``after_all``): its Allure result,
    with the key, figures and violations of its record in ``run-invariants.json``. The report never judges again:
    this is the verdict it shows.

    Args:
        worker: who judged it ('' for a run of one behave process; ``w2`` for a worker, ``shard 1/3`` after a merge).
        status: :data:`PASS`, :data:`FAIL` or :data:`NOT_EXERCISED`.
        recorded: its ``run-invariants.json`` record was found (else key, source and violations are read back from
            the Allure result, and there are no figures).
    """

    key: str
    title: str
    source: str
    worker: str
    status: str
    message: str
    violations: tuple[InvariantViolation, ...] = ()
    violation_count: int = 0
    figures: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    exercised: int = 0
    recorded: bool = True

    @property
    def name(self) -> str:
        """Its name in Allure and JUnit: the title, and the worker in parentheses when there is one."""
        return record_name(self.title, self.worker)

    def to_record(self, worker: str | None = None) -> dict[str, Any]:
        """As a ``run-invariants.json`` record (``support/run_evidence.py``), under another worker if given."""
        return {"key": self.key, "title": self.title, "source": self.source,
                "worker": self.worker if worker is None else worker, "status": self.status, "message": self.message,
                "exercised": self.exercised,
                "violations": [{"at_s": v.at_s, "text": v.text} for v in self.violations],
                "violation_count": self.violation_count,
                "figures": {name: list(values) for name, values in self.figures.items()}}


def record_name(title: str, worker: str) -> str:
    """The Allure and JUnit name of an invariant judged by ``worker`` (as ``support/run_evidence.py`` names it)."""
    return title + (f" ({worker})" if worker else "")


@dataclass(frozen=True)
class CombinedInvariant:
    """The verdicts of one invariant by every worker (or shard) that judged it, as one: failed if any failed,
    passed if any passed and none failed, else not exercised."""

    key: str
    title: str
    source: str
    parts: tuple[InvariantResult, ...]

    @property
    def status(self) -> str:
        statuses = {part.status for part in self.parts}
        return FAIL if FAIL in statuses else PASS if PASS in statuses else NOT_EXERCISED

    @property
    def message(self) -> str:
        """The message of each part (prefixed with its worker when there are several, or it has one)."""
        if len(self.parts) == 1 and not self.parts[0].worker:
            return self.parts[0].message
        return "; ".join(f"{part.worker or 'run'}: {part.message}" for part in self.parts)

    def figures(self, name: str) -> list[float]:
        """One figure of every part, together."""
        return [value for part in self.parts for value in part.figures.get(name, ())]

    @property
    def violations(self) -> list[tuple[str, InvariantViolation]]:
        """Every violation recorded (with the worker that saw it), earliest first within each worker."""
        return [(part.worker, v) for part in self.parts for v in part.violations]

    @property
    def violation_count(self) -> int:
        return sum(max(part.violation_count, len(part.violations)) for part in self.parts)


def combine_invariants(invariants: Iterable[InvariantResult]) -> list[CombinedInvariant]:
    """The invariants by key, in the order of the run-wide catalogue (``support/checks/run_wide.py``), unknown
    keys after; the parts of each in worker order."""
    by_key: dict[str, list[InvariantResult]] = {}
    for invariant in invariants:
        by_key.setdefault(invariant.key, []).append(invariant)
    order = {invariant.key: index for index, invariant in enumerate(INVARIANTS)}
    keys = sorted(by_key, key=lambda k: (order.get(k, len(order)), k))
    out = []
    for key in keys:
        parts = tuple(sorted(by_key[key], key=lambda i: _worker_order(i.worker)))
        out.append(CombinedInvariant(key, parts[0].title, parts[0].source, parts))
    return out


def _worker_order(worker: str) -> tuple[Any, ...]:
    """``w2`` before ``w10``; shards by number."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", worker))


@dataclass(frozen=True)
class RunResults:
    """Every scenario result of one run, the run-wide invariants it judged, and the run's environment properties.

    Args:
        directory: the Allure results folder (its parent is the run's reports folder).
        scenarios: behave's scenarios only (the invariants' Allure results are not scenarios).
        invariants: the run-wide invariants as the run judged them, one per worker (or shard) that judged each.
    """

    directory: Path
    scenarios: tuple[ScenarioResult, ...]
    properties: dict[str, str] = field(default_factory=dict)
    invariants: tuple[InvariantResult, ...] = ()

    def invariant(self, key: str) -> CombinedInvariant | None:
        """The invariant ``key`` as every worker that judged it judged it (None: no record, never judged)."""
        return next((c for c in combine_invariants(self.invariants) if c.key == key), None)

    @property
    def combined_invariants(self) -> list[CombinedInvariant]:
        """Every invariant judged, combined over the workers, in the catalogue's order."""
        return combine_invariants(self.invariants)

    @property
    def broken_invariants(self) -> list[CombinedInvariant]:
        """The invariants some worker judged broken."""
        return [c for c in self.combined_invariants if c.status == FAIL]

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


def load_results(results_dir: Path) -> RunResults:
    """Read every ``*-result.json`` of an Allure results directory, oldest first: behave's scenarios, and apart
    from them the run-wide invariants (the results filed under the feature ``Run-wide invariants``) with their
    records of ``run-invariants.json`` next to the results (the reports folder's and each worker's).

    Raises:
        FileNotFoundError: the directory does not exist.
    """
    results_dir = Path(results_dir)
    raw = [r for _, r in _raw_results(results_dir)]
    scenarios = tuple(_scenario(results_dir, r) for r in raw if not is_invariant_result(r))
    invariants = _invariants_of(results_dir, [r for r in raw if is_invariant_result(r)])
    return RunResults(results_dir, scenarios, read_properties(results_dir / ENVIRONMENT_FILE), invariants)


def load_invariants(results_dir: Path) -> list[tuple[Path, InvariantResult]]:
    """The run-wide invariants of an Allure results directory, each with its result file (see :func:`load_results`).

    Raises:
        FileNotFoundError: the directory does not exist.
    """
    found = [(path, r) for path, r in _raw_results(Path(results_dir)) if is_invariant_result(r)]
    return list(zip([path for path, _ in found], _invariants_of(Path(results_dir), [r for _, r in found]),
                    strict=True))


def _raw_results(results_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable ``*-result.json`` with its path, oldest first."""
    if not results_dir.is_dir():
        raise FileNotFoundError(f"no Allure results directory at {results_dir}")
    raw = []
    for path in sorted(results_dir.glob("*-result.json")):
        try:
            raw.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # a half-written file of an interrupted run is not a scenario
    raw.sort(key=lambda item: item[1].get("start") or 0)
    return raw


def _invariants_of(results_dir: Path, judged: list[dict[str, Any]]) -> tuple[InvariantResult, ...]:
    records = invariant_records_near(results_dir.parent) if judged else {}
    return tuple(_invariant(r, records) for r in judged)


def is_invariant_result(raw: Mapping[str, Any]) -> bool:
    """An Allure result of a run-wide invariant (``support/run_evidence.py`` files them under their own feature)."""
    return any(label.get("name") == "feature" and label.get("value") == INVARIANTS_FEATURE
               for label in raw.get("labels") or [] if isinstance(label, dict))


def invariant_records_near(reports_dir: Path) -> dict[str, dict[str, Any]]:
    """The ``run-invariants.json`` records of a reports folder (its own and each worker's,
    ``workers/*/run-invariants.json``), by their Allure name."""
    records: dict[str, dict[str, Any]] = {}
    reports_dir = Path(reports_dir)
    for path in [reports_dir / INVARIANTS_FILE, *sorted(reports_dir.glob(f"workers/*/{INVARIANTS_FILE}"))]:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for record in document if isinstance(document, list) else []:
            if isinstance(record, dict) and record.get("title") and record.get("status"):
                records.setdefault(record_name(str(record["title"]), str(record.get("worker") or "")), record)
    return records


_ALLURE_VERDICT = {"passed": PASS, "failed": FAIL, "skipped": NOT_EXERCISED}
_BY_TITLE = {invariant.title: invariant for invariant in INVARIANTS}
_NAMED_WORKER = re.compile(r"^(.*) \(([^()]*)\)$")
_VIOLATION_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?) s  (.*)$")


def _invariant(raw: Mapping[str, Any], records: Mapping[str, dict[str, Any]]) -> InvariantResult:
    """One invariant's Allure result, with its record when one of the same name says the same verdict (a record
    left from an earlier run into the same folder is never taken for this run's)."""
    name = str(raw.get("name") or "")
    status = _ALLURE_VERDICT.get(str(raw.get("status") or ""), FAIL)  # broken or unknown: never a pass
    details = raw.get("statusDetails") or {}
    message = str(details.get("message") or "").strip()
    if status == NOT_EXERCISED:
        message = message.removeprefix("not exercised: ")
    record = records.get(name)
    if record is not None and record.get("status") == status:
        violations = tuple(InvariantViolation(float(v.get("at_s") or 0.0), str(v.get("text") or ""))
                           for v in record.get("violations") or [] if isinstance(v, dict))
        figures = {str(k): tuple(float(x) for x in v) for k, v in (record.get("figures") or {}).items()
                   if isinstance(v, list)}
        return InvariantResult(str(record.get("key") or ""), str(record["title"]), str(record.get("source") or ""),
                               str(record.get("worker") or ""), status, str(record.get("message") or message),
                               violations, int(record.get("violation_count") or len(violations)), figures,
                               int(record.get("exercised") or 0))
    title, worker = name, ""
    match = _NAMED_WORKER.match(name)
    if name not in _BY_TITLE and match and match.group(1) in _BY_TITLE:
        title, worker = match.group(1), match.group(2)
    known = _BY_TITLE.get(title)
    history_id = str(raw.get("historyId") or "")
    key = known.key if known else history_id.removeprefix("run-invariant-").rpartition("-")[0] or title
    trace = str(details.get("trace") or "").splitlines()
    source = next((line.removeprefix("requirement: ") for line in trace if line.startswith("requirement: ")),
                  known.source if known else "")
    violations = tuple(InvariantViolation(float(m.group(1)), m.group(2))
                       for m in (_VIOLATION_LINE.match(line) for line in trace) if m)
    more = next((int(m.group(1)) for m in (re.match(r"^… (\d+) more$", line) for line in trace) if m), 0)
    return InvariantResult(key, title, source, worker, status, message, violations, len(violations) + more,
                           recorded=False)


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
        attachments=tuple(_attachment(results_dir, a) for a in attachments),
        duration_s=max(0.0, (stop - start) / 1000.0),
        category=_recorded_category(status, message, failing_step, labels)
        or categorise(status, message, failing_step, _step_type(raw.get("steps") or []), labels.get("tag", ()),
                      feature),
        steps=_top_steps(results_dir, raw.get("steps") or [], start),
        trace=str((raw.get("statusDetails") or {}).get("trace") or (failing or {}).get("statusDetails", {}).get(
            "trace") or ""),
        start_ms=int(start))


def _attachment(results_dir: Path, raw: Mapping[str, Any]) -> Attachment:
    return Attachment(str(raw.get("name")), results_dir / str(raw.get("source")), str(raw.get("type")))


def _top_steps(results_dir: Path, steps: list[dict[str, Any]], scenario_start_ms: int) -> tuple[StepResult, ...]:
    """The scenario's top-level steps, each with its keyword (And/But inherit) and every attachment under it."""
    out, current = [], ""
    for step in steps:
        name = str(step.get("name") or "")
        keyword = name.split(" ", 1)[0].lower()
        current = keyword if keyword in ("given", "when", "then") else current
        attached = [a for item in [step, *_walk_steps(step.get("steps") or [])] for a in item.get("attachments") or []]
        start, stop = step.get("start"), step.get("stop")
        offset = (start - scenario_start_ms) / 1000.0 if start and scenario_start_ms else None
        duration = max(0.0, (stop - start) / 1000.0) if start and stop else 0.0
        out.append(StepResult(name, str(step.get("status") or ""), current,
                              tuple(_attachment(results_dir, a) for a in attached), offset, duration))
    return tuple(out)


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


def scenario_suites(junit_dir: Path) -> Iterator[tuple[Path, ElementTree.Element]]:
    """Each ``<testsuite>`` of the scenarios' ``TESTS-*.xml`` files of a JUnit directory, with its file (the run-wide
    invariants' file, ``TESTS-run_invariants.xml``, holds no scenario and is left out; an unreadable file too)."""
    for path in sorted(Path(junit_dir).glob("TESTS-*.xml")):
        if path.name == INVARIANTS_JUNIT:
            continue
        try:
            root = ElementTree.fromstring(xml_safe(path.read_text(encoding="utf-8", errors="replace")))
        except (OSError, ElementTree.ParseError):
            continue
        for suite in [root] if root.tag == "testsuite" else root.iter("testsuite"):
            yield path, suite


def junit_counts(junit_dir: Path) -> dict[str, int]:
    """Totals over the scenarios' ``TESTS-*.xml`` of a JUnit directory: tests, failures, errors, skipped (the
    run-wide invariants' file, ``TESTS-run_invariants.xml``, holds no scenario and is left out)."""
    totals = Counter({"tests": 0, "failures": 0, "errors": 0, "skipped": 0})
    for _, suite in scenario_suites(junit_dir):
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
    """One critical check of the seed: what is required, what the run showed, and the run's verdict."""

    name: str
    requirement: str
    observed: str
    verdict: str  # PASS, FAIL, NOT_EXERCISED or NOT_JUDGED


#: What a check shows when its invariant has no record.
NOT_JUDGED_TEXT = "not judged (the run ended before its run-wide invariants were judged)"


def critical_checks(run: RunResults) -> list[Check]:
    """The seed's critical checks: each the verdict the run itself gave (a run-wide invariant of
    ``support/checks/run_wide.py``, combined over the workers that judged it), never judged again here; then
    "Leaks", the outcome of the stability scenarios' own claims; then every other invariant under its own title."""
    bounds = run.thresholds()
    combined = {c.key: c for c in run.combined_invariants}
    detection = lambda c: _figures("noticed after", c.figures("detection_s"), "outage(s)")  # noqa: E731
    recovery = lambda c: _figures("healthy again after", c.figures("recovery_s"), "recovery(ies)")  # noqa: E731
    slowest = lambda c: f"slowest samples {', '.join(f'{v:g}' for v in sorted(c.figures('sample_s'))[-3:])} s" \
        if c.figures("sample_s") else ""  # noqa: E731
    score, detect_s, recover_s = f"{bounds.score_min:g}", f"{bounds.silent_detection_s:g}", f"{bounds.recovery_s:g}"
    seed = (
        ("Async/coroutine errors", "output",
         "no RuntimeWarning / un-awaited coroutine / traceback in any CLI output or the backend's output", None),
        ("Resilience score (healthy)", "reports_recover",
         f"≥ {score}/100 (IB healthy) in every self-report once nothing has disturbed the gateway for {recover_s} s",
         recovery),
        ("Resilience score (under faults)", "reports_fall",
         f"below {score} (IB in trouble) in every self-report arriving ≥ {detect_s} s into a silent/absent gateway",
         detection),
        ("Silent-connection detection", "reports_fall",
         f"every self-report arriving ≥ {detect_s} s into an outage says IB is in trouble", detection),
        ("Recovery time", "reports_recover",
         f"every self-report arriving {recover_s} s after the last disturbance says IB is fine", recovery),
        ("API response time", "bounds",
         f"every API request within {bounds.api_response_s:g} s, every CLI command within {bounds.cli_command_s:g} s, "
         "whatever the gateway does", None),
        ("Responsiveness", "liveness", "the backend stays responsive all run long (no request blocks the others)",
         slowest),
    )
    checks = [_invariant_check(name, requirement, combined.get(key), key, figures)
              for name, key, requirement, figures in seed]
    checks.append(leak_outcome(run))
    shown = {key for _, key, _, _ in seed}
    checks += [_invariant_check(c.title, c.source, c, c.key, None) for c in run.combined_invariants
               if c.key not in shown]
    checks += [_invariant_check(i.title, i.source, None, i.key, None) for i in INVARIANTS
               if i.key not in shown and i.key not in combined]
    return checks


def _invariant_check(name: str, requirement: str, invariant: CombinedInvariant | None, key: str,
                     figures: Any) -> Check:
    """One row: the invariant's verdict and message (and figures), or "not judged" when it has no record."""
    requirement = f"{requirement} · invariant `{key}`"
    if invariant is None:
        return Check(name, requirement, NOT_JUDGED_TEXT, NOT_JUDGED)
    observed = [figures(invariant) if figures else "", invariant.message]
    observed += [f"at {v.at_s:.2f} s{f' ({worker})' if worker else ''}: {v.text}"
                 for worker, v in invariant.violations[:2]]
    if invariant.violation_count > 2:
        observed.append(f"{invariant.violation_count} violation(s) in all")
    return Check(name, requirement, "; ".join(part for part in observed if part), invariant.status)


def _figures(what: str, values: Sequence[float], noun: str) -> str:
    """``noticed after max 3.25 s, median 3.05 s over 9 outage(s)`` ('' without values): figures the run measured
    beside the verdict (``support/checks/run_wide.py`` ``FIGURES``), shown, never compared with a bound here."""
    if not values:
        return ""
    return f"{what} max {max(values):.2f} s, median {statistics.median(values):.2f} s over {len(values)} {noun}"


def _leaks(scenario: ScenarioResult) -> bool:
    """A stability & leaks scenario (its capability)."""
    return capability_of(scenario.labels.get("tag", ()), scenario.feature).key == "leaks"


def leak_outcome(run: RunResults) -> Check:
    """The stability scenarios' own outcome (failed if any failed or broke, passed if any passed, else not run),
    with the resource figures they sampled: their claims are the verdict, the figures only show it."""
    requirement = "RSS, fds, threads flat; IB connections within the pool; everything closed after cleanup " \
                  "(the stability scenarios' claims)"
    pool_size = int(float(run.properties.get("profile.pool_limit") or 0)) or None
    stability = [s for s in run.scenarios if _leaks(s)]
    summaries = []
    for scenario in stability:
        samples = [SimpleNamespace(**s) for s in scenario.attached_list("Backend resource samples")
                   if isinstance(s, dict)]
        if samples:
            peak = max(getattr(s, "ib_connections", 0) for s in samples)
            summaries.append(f"{scenario.name}: RSS {growth(samples, 'rss_mb'):+.1f} MB, "
                             f"fds {growth(samples, 'open_fds'):+g}, threads {growth(samples, 'threads'):+g}, "
                             f"peak {peak} IB connection(s)" + (f" (pool {pool_size})" if pool_size else ""))
    failed = [s for s in stability if s.status in ("failed", "broken")]
    passed = [s for s in stability if s.status == "passed"]
    if not failed and not passed:
        return Check("Leaks", requirement, "no stability scenario ran at this level (they are @standard)",
                     NOT_EXERCISED)
    observed = "; ".join(summaries) or "no resource samples attached"
    if failed:
        return Check("Leaks", requirement, observed + "; failed: " + ", ".join(s.name for s in failed[:5]), FAIL)
    return Check("Leaks", requirement, f"{len(passed)} stability scenario(s) passed; {observed}", PASS)
