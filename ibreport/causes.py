"""Causes: the run's failures grouped by what the backend did, read from typed evidence, never from wording.

One defect of a backend fails many scenarios, each with its own symptom (a bound exceeded here, a claim refuted
there). A cause is one behaviour of the backend; every failed scenario is filed under exactly one. Its *finding*
is read from what the run recorded, in this order — the first that applies decides:

1. the run or the suite, not the backend (interrupted, suite error, target unreachable): the failure's kind;
2. what the backend or the CLI printed (``ComplaintFound``): the complaint, without paths, times and numbers
   (``support.checks.output.complaint_kind``);
3. state an earlier scenario left (the run's history, ``history.json.gz``), flagged *carried over* with the scenario
   that left it: a wait past the API bound the backend announced during the scenario's first request to an endpoint,
   nothing disrupting the gateway, in a backend life that served that endpoint to earlier scenarios (named: the one
   that used it most); a client ID still held by a connection an earlier scenario opened (refused with 326); an error
   code the previous scenario of the same life got after a success there, answered to the scenario's first request;
4. a claim about a CLI run (``support/cli_claims.py``): the command's first two words and how it ended (exit code,
   timed out);
5. the API answer the claim judged (the failing step's own exchanges, else its action's, from its first When step):
   never answered; answered past the API response bound, the time bucketed (≈15 s);
6. the gateway's record, for what it says better than the answer: the client IDs the backend's connections used
   (claims about client IDs), a data load that sent no ``reqHistoricalData`` with nothing disrupting the gateway;
7. an error answer: endpoint, HTTP status, the envelope's ``error.code`` and an error code nested in its details;
8. otherwise the requirement: the claim the failing step calls (the Python frame it raised from, or the formatter's
   ``claim`` label) and the endpoint whose answer it judged, with that answer's typed headline (a score, a port).

A precondition or an action that failed names the requirement that could not be judged (the scenario's first Then
step). The report shows the causes largest first (``ibreport.summary``) and files each failed scenario under its
cause in Allure (:func:`annotate_allure`, :func:`cause_categories`).
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibreport.results import (
    CLAIM_LABEL,
    CombinedInvariant,
    RunResults,
    ScenarioResult,
    claim_in,
    error_type,
    frames_of,
)
from ibtargets.common.faults import Fault, FaultError
from support.checks.output import complaint_kind
from support.contract import DataLoad, Discovery, IbConfig, IbHealth, IbStatus, ResilienceReport
from support.drivers.api import ApiResponse
from support.drivers.complaints import COROUTINE_PATTERNS, TRACEBACK_PATTERN, WARNING_PATTERNS, complaint_lines
from support.run_evidence import HISTORY_FILE, read_history
from support.run_history import HistoryWindow, Life, Span

#: The label :func:`annotate_allure` writes on a failed scenario: its cause's number and words.
CAUSE_LABEL = "cause"
#: The line :func:`annotate_allure` appends to a failed scenario's trace (what the cause's Allure category matches).
CAUSE_MARK = "ib-resilience cause: "
#: Claims about the client IDs the gateway accepted or refused (judged from the gateway's record).
CLIENT_ID_CLAIMS = frozenset({"accepted_first", "accepted_last", "refused_in_order", "phase_3_working_only_with_preferred",
                              "config_range_holds_accepted_ids", "listed_ids_are_open_ones", "preferred_id_listed",
                              "client_id_released"})
#: Claims about one connection carrying two callers (the run-wide ``one_caller`` shares their evidence).
SHARING_CLAIMS = frozenset({"connections_never_shared", "handoffs_validated"})
#: Claims judged on the gateway's record, not on an answer: what the backend did when one fails.
GATEWAY_RECORD_CLAIMS = {
    "connections_never_shared": "hands one IB connection to several callers at once",
    "handoffs_validated": "hands out connections without a validation round-trip first",
    "validated_connections_kept": "discards connections the gateway validated in time",
    "failed_validations_never_used": "uses a connection whose validation failed",
    "pool_limit_respected": "opens more IB connections than the pool allows",
    "backend_connections_closed": "leaves IB connections open that it should have closed",
    "closed_count_matches_gateway": "reports closing connections the gateway never saw close",
    "closed_on_stop": "keeps IB connections open when told to stop",
    "pool_holds_only_live_connections": "keeps dead connections in its pool",
    "answered_during": "answers without the IB request the answer needs",
}
#: Claims about a CLI run: what the command did when one fails (besides how it ended).
CLI_CLAIMS = {
    "asked_ib": "never makes the backend ask IB (no reqContractDetails reached the gateway)",
    "loaded_from_ib": "never makes the backend ask IB for bars (no reqHistoricalData answered)",
    "shows_live_score": "does not show the score the API reports",
    "failed_clearly": "claims success while the gateway is disrupted",
    "printed_cached_bars": "does not print the bars the API has cached",
    "operation_cancelled": "leaves its operation running after Ctrl-C",
}
#: Self-reports the run-wide ``reports_fall`` / ``reports_recover`` judge: their failures share that evidence.
SELF_REPORTS = frozenset({"/ib/resilience", "/ib/health"})
#: The request a validation sends (what a fault must leave answered for the gateway to count as serving).
PROBE = "reqCurrentTime"
#: A wait the backend announces in its output: ``Waiting 506.4s``, ``waiting 30 s before retry``.
_WAIT = re.compile(r"\b[Ww]ait(?:ing)?\s+(?:for\s+)?(\d+(?:\.\d+)?)\s*s(?:ec(?:ond)?s?)?\b")
#: An error code nested in an envelope's details (a dict's ``code``, or one inside a quoted repr of an exception).
_NESTED_CODE = re.compile(r"""['"]code['"]\s*:\s*['"]([A-Z][A-Z0-9_.-]+)['"]""")
_CLI_HEADER = re.compile(r"^\$ (.+?)  \((timed out|exit (-?\d+|None)), (\d+(?:\.\d+)?) s\)$", re.M)
_COMMAND_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")
_KEYWORD = re.compile(r"^(Given|When|Then|And|But)\s+")


# ============================================================================================ what a step recorded

@dataclass(frozen=True)
class Exchange:
    """One API exchange a step recorded (``support.evidence.api_exchanges``), read back typed."""

    response: ApiResponse
    started_s: float | None
    step: int

    @classmethod
    def of(cls, raw: Mapping[str, Any], step: int) -> Exchange | None:
        if not isinstance(raw, Mapping) or not raw.get("method") or not raw.get("path"):
            return None
        status = raw.get("status")
        started = raw.get("started_s")
        response = ApiResponse(str(raw["method"]), str(raw["path"]), raw.get("request"),
                               int(status) if isinstance(status, int) else None, raw.get("body"),
                               float(raw.get("elapsed_s") or 0.0), 0.0, str(raw.get("error") or ""))
        return cls(response, float(started) if isinstance(started, (int, float)) else None, step)

    @property
    def endpoint(self) -> str:
        return f"{self.response.method} {self.response.path}"

    @property
    def answered(self) -> bool:
        return self.response.status is not None

    @property
    def failed(self) -> bool:
        """An answer that says the request failed: HTTP ≥ 400, ``success: false`` or an error code."""
        return self.answered and (not self.response.ok or bool(self.response.error_code))

    @property
    def nested_code(self) -> str:
        """The first error code inside the envelope's error details (KTRDR nests the IB error's code there)."""
        return nested_code(self.response)

    @property
    def answer(self) -> str:
        """``HTTP 200 IB-SYMBOL-DISCOVERY-ERROR (IB-TIMEOUT)``, ``HTTP 503 IB-UNHEALTHY``, ``no answer``."""
        if not self.answered:
            return "no answer"
        code, nested = self.response.error_code, self.nested_code
        return f"HTTP {self.response.status}" + (f" {code}" if code else "") + (f" ({nested})" if nested else "")

    @property
    def headline(self) -> str:
        """What the answer says, typed (``support.contract``), for the endpoints whose claims read one field."""
        reader = _HEADLINES.get(self.response.path)
        try:
            return reader(self.response) if reader and self.answered else ""
        except (TypeError, ValueError, AttributeError):
            return ""


def nested_code(response: ApiResponse) -> str:
    """The first error code inside an answer's ``error.details`` other than its own ``error.code`` ('' when none)."""
    body = response.body
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return next((code for code in _codes_in(details) if code != response.error_code), "")


def _codes_in(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        if isinstance(value.get("code"), str):
            yield value["code"]
        for item in value.values():
            yield from _codes_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _codes_in(item)
    elif isinstance(value, str):
        yield from _NESTED_CODE.findall(value)


def _load_headline(r: ApiResponse) -> str:
    load = DataLoad.of(r)
    if load.operation_id:
        return f"operation {load.status or '?'}"
    return f"status {load.status}, {load.fetched_bars} bar(s), ib_requests_made {load.ib_requests_made}"


_HEADLINES: dict[str, Callable[[ApiResponse], str]] = {
    "/ib/resilience": lambda r: f"score {_number(ResilienceReport.of(r).score)}",
    "/ib/health": lambda r: f"healthy {IbHealth.of(r).healthy}",
    "/ib/status": lambda r: (lambda s: f"connected {s.connected}, client ID {s.client_id}, port {s.port}")(IbStatus.of(r)),
    "/ib/config": lambda r: (lambda c: f"{c.host}:{c.port}, client IDs {c.client_id_range}")(IbConfig.of(r)),
    "/data/load": _load_headline,
    "/ib/symbols/discover": lambda r: "symbol found" if Discovery.of(r).symbol_info else "no symbol_info",
}


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


@dataclass(frozen=True)
class CliCommand:
    """One CLI run a step recorded (the header ``support.drivers.cli.CliRun.describe`` writes), and its output."""

    argv: str
    timed_out: bool
    exit_code: int | None
    seconds: float
    output: str
    step: int

    def words(self, cli_prefix: str = "") -> str:
        """The command's first two words after the CLI itself (``ib test``, ``data load``)."""
        argv = self.argv[len(cli_prefix):] if cli_prefix and self.argv.startswith(cli_prefix) else self.argv
        try:
            tokens = shlex.split(argv)
        except ValueError:
            tokens = argv.split()
        if not cli_prefix and tokens:
            tokens = tokens[1:]
        return " ".join([t for t in tokens if _COMMAND_WORD.match(t)][:2]) or "(no command)"

    @property
    def outcome(self) -> str:
        return "timed out" if self.timed_out else f"exit {self.exit_code}"


def cli_commands(text: str, step: int) -> list[CliCommand]:
    """The CLI runs of one "CLI transcripts" attachment (runs are separated by their headers)."""
    headers = list(_CLI_HEADER.finditer(text))
    out = []
    for index, match in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        code = match.group(3)
        out.append(CliCommand(match.group(1), match.group(2) == "timed out",
                              int(code) if code not in (None, "None") else None, float(match.group(4)),
                              text[match.end():end], step))
    return out


@dataclass(frozen=True)
class FaultSpan:
    """A fault of the scenario's timeline, seconds from its start (``healed_s`` None: still on at its end)."""

    label: str
    applied_s: float
    healed_s: float | None
    disrupting: bool

    def on_at(self, at_s: float) -> bool:
        return self.applied_s <= at_s and (self.healed_s is None or at_s <= self.healed_s)


def fault_spans(raw: Any) -> list[FaultSpan]:
    """The "Fault timeline" attachment, typed (a fault whose definition cannot be read counts as disrupting)."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("applied_s"), (int, float)):
            continue
        try:
            disrupting = Fault.from_json(str(item.get("plane")), item.get("definition")).disrupting(PROBE)
        except (FaultError, TypeError, ValueError):
            disrupting = True
        healed = item.get("healed_s")
        out.append(FaultSpan(str(item.get("fault") or "?"), float(item["applied_s"]),
                             float(healed) if isinstance(healed, (int, float)) else None, disrupting))
    return out


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class Evidence:
    """What one failed scenario recorded, typed: per step its exchanges and CLI runs; its faults; its claim."""

    scenario: ScenarioResult
    exchanges: tuple[Exchange, ...]
    commands: tuple[CliCommand, ...]
    faults: tuple[FaultSpan, ...]
    claim: str          # the claim function the failing step called ('' when it called none)
    claim_module: str   # claims.py or cli_claims.py
    step_function: str  # the step's own function (features/steps), when it raised without a claim

    @classmethod
    def of(cls, scenario: ScenarioResult) -> Evidence:
        exchanges, commands = [], []
        for index, step in enumerate(scenario.steps):
            for attachment in step.attachments:
                if attachment.name.startswith("API exchanges"):
                    value = _json(attachment.path)
                    exchanges += [e for e in (Exchange.of(raw, index) for raw in value or []) if e is not None]
                elif attachment.name.startswith("CLI transcripts"):
                    commands += cli_commands(_text(attachment.path), index)
        claim, module, step_function = claim_of(scenario)
        return cls(scenario, tuple(exchanges), tuple(commands), tuple(fault_spans(scenario.attached_json("Fault timeline"))),
                   claim, module, step_function)

    @property
    def kind(self) -> str:
        """The failure's kind (``ibreport.results.FAILURE_KINDS``)."""
        category = self.scenario.category
        return category.key if category else ("claim" if self.scenario.status == "failed" else "suite")

    @property
    def failing(self) -> int:
        """The failing step's index (the last step when no step failed: a hook)."""
        index = self.scenario.failing_index
        return index if index is not None else max(0, len(self.scenario.steps) - 1)

    def judged_exchanges(self) -> list[Exchange]:
        """The exchanges the failing claim judged: the failing step's own; else its action's (from the first When
        step before it); else every one before it."""
        own = [e for e in self.exchanges if e.step == self.failing]
        if own:
            return own
        steps = self.scenario.steps
        first_when = next((i for i, s in enumerate(steps[:self.failing]) if s.keyword == "when"), None)
        if first_when is not None:
            action = [e for e in self.exchanges if first_when <= e.step < self.failing]
            if action:
                return action
        return [e for e in self.exchanges if e.step < self.failing]

    def judged_commands(self) -> list[CliCommand]:
        """The CLI runs the failing claim judged: the failing step's own, else the last step's before it that ran
        one (all of that step's runs)."""
        before = [c for c in self.commands if c.step <= self.failing]
        if not before:
            return []
        last = max(c.step for c in before)
        return [c for c in before if c.step == last]

    def faults_at(self, at_s: float | None) -> list[str]:
        """The faults in force at ``at_s`` seconds into the scenario (at the failing step's start when None)."""
        if at_s is None:
            steps = self.scenario.steps
            at_s = steps[self.failing].offset_s if steps and steps[self.failing].offset_s is not None else None
        if at_s is None:
            return []
        return [f.label for f in self.faults if f.on_at(at_s)]

    def disrupted_at(self, at_s: float) -> bool:
        """Whether a fault that disrupts the gateway's service was on ``at_s`` seconds into the scenario."""
        return any(f.disrupting and f.on_at(at_s) for f in self.faults)

    def disrupted_before_end(self) -> bool:
        """Whether a fault that disrupts the gateway's service was on at any time before the failing step ended."""
        steps = self.scenario.steps
        end = None
        if steps and steps[self.failing].offset_s is not None:
            end = steps[self.failing].offset_s + steps[self.failing].duration_s
        return any(f.disrupting and (end is None or f.applied_s <= end) for f in self.faults)


def claim_of(scenario: ScenarioResult) -> tuple[str, str, str]:
    """The claim that failed (the innermost frame of a claim module: the requirement), the module of the claim the
    step called (the outermost: ``cli_claims.py`` for a claim about a CLI run, even when it calls one of
    ``claims.py``), and the step function the failure came through (features/steps). The formatter's ``claim``
    label, when written, names the claim (``cli.`` before it when the step called a CLI claim)."""
    frames = frames_of(scenario.trace)
    steps = [function for path, function in frames if "features/steps/" in path.replace("\\", "/")]
    claim = scenario.label(CLAIM_LABEL) or claim_in(frames)
    module = "" if not claim else "cli_claims.py" if claim.startswith("cli.") else "claims.py"
    return claim.removeprefix("cli."), module, steps[-1] if steps else ""


# ============================================================================================ the run's history

@dataclass(frozen=True)
class Lived:
    """Where a scenario sits in the run's history: its span, the backend life serving it, the spans before it in
    that life, and the whole window (one worker's history)."""

    span: Span
    window: HistoryWindow
    life: Life | None
    earlier: tuple[Span, ...]
    preferred_client_id: int

    def at(self, offset_s: float) -> float:
        """The history's clock at ``offset_s`` seconds into the scenario."""
        return self.span.start_mono + offset_s

    def span_at(self, mono: float) -> Span | None:
        return next((s for s in self.window.spans_of("scenario") if s.covers(mono)), None)


class Histories:
    """The run's histories (one per behave process: the run's own, each worker's, each merged shard's), and which
    span of which is each scenario's."""

    def __init__(self, loaded: Sequence[tuple[HistoryWindow, Any]]):
        self.loaded = list(loaded)
        self._spans: dict[str, list[tuple[int, Span]]] = {}
        for index, (window, _) in enumerate(self.loaded):
            for span in window.spans_of("scenario"):
                self._spans.setdefault(span.label.strip(), []).append((index, span))
        for spans in self._spans.values():
            spans.sort(key=lambda item: item[1].start_mono)

    @classmethod
    def near(cls, reports_dir: Path) -> Histories:
        """Every ``history.json.gz`` of a reports folder: its own, its workers', a merge's shards' (unreadable ones
        are left out)."""
        loaded = []
        for path in history_files(reports_dir):
            try:
                loaded.append(read_history(path))
            except (OSError, ValueError, KeyError, TypeError, EOFError):
                continue
        return cls(loaded)

    def __bool__(self) -> bool:
        return bool(self.loaded)

    def lived(self, scenario: ScenarioResult, nth: int) -> Lived | None:
        """The ``nth`` scenario of this name (in the order they ran) in the histories, None when none holds it."""
        spans = self._spans.get(scenario.name.strip(), [])
        if nth >= len(spans):
            return None
        index, span = spans[nth]
        window, limits = self.loaded[index]
        life = next((li for li in window.lives if li.started_mono <= span.start_mono
                     and (li.ended_mono is None or span.start_mono < li.ended_mono)), None)
        earlier = tuple(s for s in window.spans_of("scenario") if life is not None and s.end_mono is not None
                        and life.started_mono <= s.start_mono and s.end_mono <= span.start_mono)
        preferred = int(getattr(limits, "preferred_client_id", 1) or 1)
        return Lived(span, window, life, earlier, preferred)


def history_files(reports_dir: Path) -> list[Path]:
    """The history files of a reports folder: its own, its workers', and (after ``report --merge``) its shards'."""
    reports_dir = Path(reports_dir)
    found = [reports_dir / HISTORY_FILE, *sorted(reports_dir.glob(f"workers/*/{HISTORY_FILE}")),
             *sorted(reports_dir.glob(f"shards/*/{HISTORY_FILE}")),
             *sorted(reports_dir.glob(f"shards/*/workers/*/{HISTORY_FILE}"))]
    return [path for path in found if path.is_file()]


# ============================================================================================ one failure's finding

@dataclass(frozen=True)
class Fact:
    """One typed value of the evidence (numbers are shown as a range over the cause, words with their counts)."""

    name: str
    value: float | str
    unit: str = ""


@dataclass(frozen=True)
class Finding:
    """Why one scenario failed, as a behaviour of the backend.

    Args:
        key: the cause it belongs to (findings with one key are one cause).
        behaviour: what the backend did, in words made of typed values.
        requirement: the requirement it breaks, or ``not judged: …`` the one a failed precondition kept from being
            judged.
        subjects: the run-wide invariants whose evidence is the same kind (``output``, ``bounds`` …).
        carried_from: the earlier scenario that left the state the scenario failed on.
    """

    scenario: ScenarioResult
    key: tuple[str, ...]
    behaviour: str
    facts: tuple[Fact, ...]
    requirement: str
    judged: bool
    subjects: frozenset[str] = frozenset()
    carried_from: str = ""
    layer: str = ""


def requirement_of(scenario: ScenarioResult, kind: str) -> tuple[str, bool]:
    """The requirement the failure breaks (the failing step, keyword off), or — when a precondition or an action
    failed — the one it kept from being judged (the first Then step after it)."""
    failing = scenario.failing_index
    step = scenario.failing_step or "(a hook)"
    if kind in ("precondition", "action") and failing is not None:
        later = next((s.name for s in scenario.steps[failing + 1:] if s.keyword == "then"), "")
        return ("not judged: " + _KEYWORD.sub("", later) if later else "not judged: (no claim after it)"), False
    if kind in ("interrupted", "suite", "unreachable"):
        return f"not judged ({kind}): {_KEYWORD.sub('', step)}", False
    return _KEYWORD.sub("", step), True


def bucket(seconds: float) -> str:
    """A time as the cause names it: whole seconds below 10, else to the nearest 5 (10) s below (above) a minute."""
    if seconds < 10:
        return f"≈{max(1, round(seconds))} s"
    if seconds < 60:
        return f"≈{5 * round(seconds / 5)} s"
    return f"≈{10 * round(seconds / 10)} s"


def find(evidence: Evidence, lived: Lived | None, api_bound_s: float, cli_prefix: str = "") -> Finding:
    """The finding of one failed scenario (see the module's docstring for the order of the evidence)."""
    scenario = evidence.scenario
    kind = evidence.kind
    requirement, judged = requirement_of(scenario, kind)

    def finding(key: tuple[str, ...], behaviour: str, facts: Iterable[Fact], layer: str,
                subjects: Iterable[str] = (), carried: str = "") -> Finding:
        unique = tuple(dict.fromkeys(facts))  # a fact counts once per scenario
        return Finding(scenario, key, behaviour, unique, requirement, judged, frozenset(subjects), carried, layer)

    if kind in ("interrupted", "suite", "unreachable"):
        raised = error_type(scenario.message) or "no exception type"
        words = {"interrupted": "the run was stopped while it ran (no verdict on the backend)",
                 "suite": f"the suite broke ({raised}): not a verdict on the backend",
                 "unreachable": "the suite could not reach the target"}[kind]
        return finding((kind,) + ((raised,) if kind == "suite" else ()), words, [Fact("raised", raised)], kind)
    if kind == "async":
        return _complaint(evidence, finding, cli_prefix)
    judged_exchanges = evidence.judged_exchanges()
    decisive = _decisive(judged_exchanges, api_bound_s)
    carried = _carried_over(evidence, lived, decisive, api_bound_s, finding) if lived is not None else None
    if carried is not None:
        return carried
    commands = evidence.judged_commands()
    if evidence.claim_module == "cli_claims.py" and commands:
        return _cli(evidence, commands, cli_prefix, finding)
    if kind == "not_provided":
        exchange = judged_exchanges[-1] if judged_exchanges else None
        where = exchange.endpoint if exchange else evidence.claim or "?"
        return finding(("not provided", where), f"does not provide what the contract names at {where}",
                       [Fact("answer", exchange.answer)] if exchange else [], "not provided")
    if decisive is not None and (not decisive.answered or decisive.response.elapsed_s > api_bound_s):
        return _slow(evidence, decisive, judged_exchanges, finding)
    gateway = _gateway(evidence, lived, judged_exchanges, finding)
    if gateway is not None:
        return gateway
    if decisive is not None and decisive.failed:
        return _error(evidence, decisive, judged_exchanges, finding)
    return _requirement(evidence, judged_exchanges, finding)


def _decisive(exchanges: Sequence[Exchange], api_bound_s: float) -> Exchange | None:
    """The exchange that says most: one never answered (the longest wait), else the slowest past the bound, else
    the first error answer, else None."""
    unanswered = [e for e in exchanges if not e.answered]
    if unanswered:
        return max(unanswered, key=lambda e: e.response.elapsed_s)
    slow = [e for e in exchanges if e.response.elapsed_s > api_bound_s]
    if slow:
        return max(slow, key=lambda e: e.response.elapsed_s)
    return next((e for e in exchanges if e.failed), None)


def _faults(evidence: Evidence, at_s: float | None) -> Fact:
    found = evidence.faults_at(at_s)
    return Fact("faults in force", ", ".join(found) if found else "none")


def _complaint(evidence: Evidence, finding: Callable[..., Finding], cli_prefix: str) -> Finding:
    """What the backend (or the CLI, when the failing step judged a CLI run) printed: the first coroutine
    complaint, else the first warning, else the exception that ended a traceback."""
    scenario = evidence.scenario
    commands = evidence.judged_commands()
    sources = [(f"the CLI (`{c.words(cli_prefix)}`)", c.output) for c in commands if evidence.claim_module ==
               "cli_claims.py"] + [("the backend", scenario.attached_text("Backend output"))]
    for who, text in sources:
        kind = first_complaint(text)
        if kind:
            return finding(("printed", kind), f"prints `{kind}`", [Fact("printed by", who)], "complaint", {"output"})
    return finding(("printed", "(a complaint the evidence no longer holds)"), "prints a warning, an un-awaited "
                   "coroutine or a traceback", [Fact("printed by", "the backend or the CLI")], "complaint", {"output"})


def first_complaint(text: str) -> str:
    """The first complaint in ``text``, normalised: a coroutine complaint before any other warning, a traceback
    named by the exception that ends it."""
    lines = [line for line in complaint_lines(text, COROUTINE_PATTERNS) if "Enable tracemalloc" not in line]
    if lines:
        return complaint_kind(lines[0])
    lines = complaint_lines(text, WARNING_PATTERNS)
    if not lines:
        return ""
    if not TRACEBACK_PATTERN.search(lines[0]):
        return complaint_kind(lines[0])
    raw = text.splitlines()
    start = next(i for i, line in enumerate(raw) if TRACEBACK_PATTERN.search(line))
    ending = next((line for line in raw[start + 1:start + 80] if line and not line[0].isspace()
                   and not line.startswith("Traceback")), "")
    return complaint_kind("Traceback … " + ending.strip() if ending else lines[0])


def _cli(evidence: Evidence, commands: Sequence[CliCommand], cli_prefix: str,
         finding: Callable[..., Finding]) -> Finding:
    """A CLI claim: the command's words and how it ended (a timed out command counts against the bounds)."""
    worst = next((c for c in commands if c.timed_out), None) or commands[0]
    words = worst.words(cli_prefix)
    verb = "times out" if worst.timed_out else f"exits {worst.exit_code}"
    how = CLI_CLAIMS.get(evidence.claim) or GATEWAY_RECORD_CLAIMS.get(evidence.claim)
    facts = [Fact("took", c.seconds, "s") for c in commands]
    facts += [Fact("claim", evidence.claim)] if evidence.claim else []
    return finding(("cli", words, worst.outcome), f"`{words}` {verb}" + (f" and {how}" if how else ""),
                   [*facts, _faults(evidence, None)], "cli", {"bounds"} if worst.timed_out else ())


def _slow(evidence: Evidence, decisive: Exchange, exchanges: Sequence[Exchange],
          finding: Callable[..., Finding]) -> Finding:
    """An answer never given, or given past the API response bound."""
    endpoint = decisive.endpoint
    facts = [Fact("answers", e.answer) for e in exchanges if e.endpoint == endpoint and e.response.elapsed_s
             >= decisive.response.elapsed_s * 0.8] + [_faults(evidence, decisive.started_s)]
    if not decisive.answered:
        return finding(("api", endpoint, "no answer"), f"never answers {endpoint}",
                       [Fact("waited", decisive.response.elapsed_s, "s"), *facts], "no answer",
                       {"bounds", "liveness"})
    when = bucket(decisive.response.elapsed_s)
    return finding(("api", endpoint, when), f"answers {endpoint} only after {when}",
                   [Fact("answered in", decisive.response.elapsed_s, "s"), *facts], "slow", {"bounds"})


def _gateway(evidence: Evidence, lived: Lived | None, exchanges: Sequence[Exchange],
             finding: Callable[..., Finding]) -> Finding | None:
    """What the gateway's record says better than the answer: the client IDs of a client-ID claim; a data load
    that never asked IB for bars while nothing disrupted the gateway."""
    if lived is None:
        return None
    window = lived.window
    end = lived.span.end_mono if lived.span.end_mono is not None else window.end_mono
    inside = [c for c in window.backend_connections(accepted_only=False)
              if lived.span.start_mono <= c.opened_mono <= end]
    if evidence.claim in CLIENT_ID_CLAIMS:
        accepted = sorted({c.client_id for c in inside if c.accepted and c.client_id is not None})
        refused = [c.client_id for c in inside if c.duplicate_id]
        held = sorted({c.client_id for c in window.backend_connections()
                       if c.client_id is not None and c.open_at(lived.span.start_mono)})
        used = sorted(set(accepted) | set(held))
        preferred = lived.preferred_client_id
        if used and preferred not in used:
            what = f"never the preferred {preferred}; from {used[0]}"
            behaviour = f"its IB connections use client IDs from {used[0]}, never the preferred {preferred}"
        else:
            what = "uses the preferred" if used else "no connection"
            behaviour = (f"its IB connections use client IDs {_ids(used)} (the preferred is {preferred})" if used
                         else "opened no IB connection the gateway accepted")
        facts = [Fact("client IDs accepted", _ids(used) or "none"), Fact("refused with 326", _ids(refused) or "none")]
        return finding(("client IDs", what), behaviour, facts, "client IDs", {"client_ids"})
    loads = [e for e in exchanges if e.response.path == "/data/load" and e.answered]
    if loads and not evidence.disrupted_before_end():
        asked = [r for c in inside for r in c.requests if r.type == "reqHistoricalData"]
        if not asked:
            mode = "asynchronous" if any(DataLoad.of(e.response).operation_id for e in loads) else "synchronous"
            facts = [Fact("answers", f"{e.answer}: {e.headline}" if e.headline and not e.failed else e.answer)
                     for e in loads]
            return finding(("api", "POST /data/load", mode, "no reqHistoricalData"),
                           f"{mode} data loads never ask IB for bars (no reqHistoricalData reached the gateway)",
                           facts, "gateway")
    return None


def _ids(ids: Sequence[int | None]) -> str:
    shown = [str(i) for i in ids if i is not None]
    return "{" + ", ".join(shown) + "}" if len(shown) > 1 else "".join(shown)


def _error(evidence: Evidence, decisive: Exchange, exchanges: Sequence[Exchange],
           finding: Callable[..., Finding]) -> Finding:
    """An error answer: endpoint, status, error code (and the code nested in its details)."""
    endpoint = decisive.endpoint
    same = [e for e in exchanges if e.endpoint == endpoint and e.answer == decisive.answer]
    facts = [Fact("answered in", e.response.elapsed_s, "s") for e in same] + [_faults(evidence, decisive.started_s)]
    key = ("api", endpoint, str(decisive.response.status), decisive.response.error_code, decisive.nested_code)
    # A bound the claim names may be tighter than the API's (the silent-detection bound): say how long it took.
    late = f" after {bucket(decisive.response.elapsed_s)}" if evidence.kind == "bound" and \
        decisive.response.elapsed_s >= 1.0 else ""
    return finding(key, f"answers {endpoint} with {decisive.answer}{late}", facts, "error",
                   _report_subjects(evidence, decisive))


def _report_subjects(evidence: Evidence, exchange: Exchange) -> set[str]:
    """A self-report's failure shares evidence with ``reports_fall`` when the gateway was disrupted, else with
    ``reports_recover``."""
    if exchange.response.path not in SELF_REPORTS:
        return set()
    disrupted = exchange.started_s is not None and evidence.disrupted_at(exchange.started_s)
    return {"reports_fall"} if disrupted else {"reports_recover"}


def _requirement(evidence: Evidence, exchanges: Sequence[Exchange], finding: Callable[..., Finding]) -> Finding:
    """The claim judged an ordinary answer (or the gateway's record) and found it wrong: the claim and the endpoint,
    with the answer's typed headline."""
    claim = evidence.claim or evidence.step_function or "(no claim)"
    judged = exchanges[-1] if exchanges else None
    subjects = _report_subjects(evidence, judged) if judged else set()
    if claim in SHARING_CLAIMS:
        subjects.add("one_caller")
    record = GATEWAY_RECORD_CLAIMS.get(claim)
    if judged is None:
        words = record or "does not meet: " + _KEYWORD.sub("", evidence.scenario.failing_step or claim)
        return finding(("requirement", claim), words, [_faults(evidence, None)], "requirement", subjects)
    same = [e for e in exchanges if e.endpoint == judged.endpoint]
    facts = [Fact("answers", f"{e.answer}: {e.headline}" if e.headline else e.answer) for e in same[-3:]]
    facts += [Fact("claim", claim), _faults(evidence, judged.started_s)]
    headline = f" ({_headlines(evidence, same)})" if judged.headline else ""
    behaviour = f"{record} (the gateway's record, during {judged.endpoint})" if record else \
        f"answers {judged.endpoint} with {judged.answer}{headline}"
    return finding(("requirement", claim, judged.endpoint, str(judged.response.status)), behaviour, facts,
                   "requirement", subjects)


def _headlines(evidence: Evidence, answers: Sequence[Exchange]) -> str:
    """What the answers said: one headline (``score 100``), or the first and the last with when it changed (``score
    100, then score 30 from 0.6 s after silence began``: the claim's bound may have been the problem)."""
    said = [e for e in answers if e.headline]
    first, last = said[0], said[-1]
    if first.headline == last.headline:
        return last.headline
    change = next(e for e in said if e.headline == last.headline)
    if change.started_s is None:
        return f"{first.headline}, then {last.headline}"
    fault = next((f for f in evidence.faults if f.on_at(change.started_s)), None)
    if fault is not None:
        return f"{first.headline}, then {last.headline} from {change.started_s - fault.applied_s:.1f} s after " \
               f"{fault.label} began"
    return f"{first.headline}, then {last.headline} at {change.started_s:.1f} s"


# ============================================================================================ carried over

def _carried_over(evidence: Evidence, lived: Lived, decisive: Exchange | None, api_bound_s: float,
                  finding: Callable[..., Finding]) -> Finding | None:
    """State an earlier scenario of the same backend life left, which this failure stems from (None: none)."""
    if lived.life is None or not lived.earlier:
        return None
    return (_carried_wait(evidence, lived, decisive, api_bound_s, finding)
            or _carried_client_id(evidence, lived, decisive, finding)
            or _carried_error(evidence, lived, decisive, finding))


def _first_to(evidence: Evidence, exchange: Exchange) -> bool:
    """Whether ``exchange`` is the scenario's first request to its endpoint."""
    return not any(e.endpoint == exchange.endpoint and e is not exchange and (e.step, e.started_s or 0.0)
                   < (exchange.step, exchange.started_s or 0.0) for e in evidence.exchanges)


def _earlier_use(lived: Lived, method: str, path: str) -> tuple[int, Counter[str]]:
    """How often the backend life served ``method path`` before the scenario, and to which earlier scenarios."""
    by_scenario: Counter[str] = Counter()
    for exchange in lived.window.exchanges:
        if exchange.method == method and exchange.path == path and lived.life is not None \
                and lived.life.started_mono <= exchange.started_mono < lived.span.start_mono:
            span = lived.span_at(exchange.started_mono)
            by_scenario[span.label.strip() if span else "(between scenarios)"] += 1
    return sum(by_scenario.values()), by_scenario


def _carried_wait(evidence: Evidence, lived: Lived, decisive: Exchange | None, api_bound_s: float,
                  finding: Callable[..., Finding]) -> Finding | None:
    """The backend announced, during the scenario's first request to an endpoint and with nothing disrupting the
    gateway (a wait for a gateway that is gone is the backend's answer to this scenario's fault), a wait longer than
    the API response bound, while the same backend life had served that endpoint to earlier scenarios: the wait is
    theirs."""
    if decisive is None or decisive.started_s is None or not _first_to(evidence, decisive) \
            or evidence.disrupted_at(decisive.started_s):
        return None
    start = lived.at(decisive.started_s)
    end = start + decisive.response.elapsed_s
    waits = [float(m.group(1)) for line in lived.window.output if line.after_mono <= end and line.mono >= start
             for m in [_WAIT.search(line.text)] if m]
    waits = [w for w in waits if w > api_bound_s]
    if not waits:
        return None
    method, path = decisive.response.method, decisive.response.path
    count, by_scenario = _earlier_use(lived, method, path)
    if not count:
        return None
    left_by, used = max(by_scenario.items(), key=lambda item: (item[1], item[0] != "(between scenarios)"))
    facts = [Fact("wait announced", max(waits), "s"), Fact("at", decisive.started_s, "s into the scenario"),
             Fact(f"earlier {decisive.endpoint} in this backend life", count),
             Fact("most of them by", f"{left_by} ({used})"), Fact("answer", decisive.answer)]
    return finding(("carried over", "wait", decisive.endpoint),
                   f"makes a scenario's first {decisive.endpoint} wait out requests earlier scenarios made in the "
                   "same backend life (a wait past the API bound, announced at once)", facts, "carried over",
                   {"bounds"}, carried=left_by)


def _carried_client_id(evidence: Evidence, lived: Lived, decisive: Exchange | None,
                       finding: Callable[..., Finding]) -> Finding | None:
    """The gateway refused the backend a client ID (326) that a connection of the backend opened before the
    scenario still held, and the failure is about client IDs or happened during that refusal."""
    window, span = lived.window, lived.span
    end = span.end_mono if span.end_mono is not None else window.end_mono
    mine = window.backend_connections(accepted_only=False)
    for refused in (c for c in mine if c.duplicate_id and span.start_mono <= c.opened_mono <= end):
        holder = next((c for c in mine if c.accepted and c.client_id == refused.client_id
                       and c.opened_mono < span.start_mono and c.open_at(refused.opened_mono)), None)
        if holder is None:
            continue
        during = decisive is not None and decisive.started_s is not None and \
            lived.at(decisive.started_s) <= refused.opened_mono <= lived.at(decisive.started_s) + \
            decisive.response.elapsed_s
        if evidence.claim not in CLIENT_ID_CLAIMS and not during:
            continue
        opened_in = lived.span_at(holder.opened_mono)
        left_by = opened_in.label.strip() if opened_in else "(between scenarios)"
        return finding(("carried over", "client ID held"),
                       "keeps a client ID held by a connection an earlier scenario opened, so the gateway refuses "
                       "it (326) to the next",
                       [Fact("client ID", str(refused.client_id)), Fact("held by", holder.describe()),
                        Fact("opened during", left_by)], "carried over", {"client_ids"}, carried=left_by)
    return None


def _carried_error(evidence: Evidence, lived: Lived, decisive: Exchange | None,
                   finding: Callable[..., Finding]) -> Finding | None:
    """The scenario's first request to an endpoint got an error code the previous scenario of the same life got
    there after a success (a state it entered then: an open breaker)."""
    if decisive is None or not decisive.failed or not decisive.response.error_code or not _first_to(evidence, decisive):
        return None
    previous = lived.earlier[-1]
    before = [e for e in lived.window.exchanges if e.method == decisive.response.method
              and e.path == decisive.response.path and previous.start_mono <= e.started_mono <= (previous.end_mono or 0)]
    codes = [(e.ok, e.error_code, nested_code(e)) for e in before]
    target = (decisive.response.error_code, decisive.nested_code)
    flipped = next((i for i, (ok, _, _) in enumerate(codes) if ok), None)
    if flipped is None or not codes or (codes[-1][1], codes[-1][2]) != target:
        return None
    return finding(("carried over", "error state", decisive.endpoint, *target),
                   f"answers a scenario's first {decisive.endpoint} with {decisive.answer}, a state it entered "
                   "during the previous scenario", [Fact("answer", decisive.answer),
                                                             Fact("entered during", previous.label.strip())],
                   "carried over", carried=previous.label.strip())


# ============================================================================================ causes

@dataclass(frozen=True)
class Cause:
    """One behaviour of the backend, with every failed scenario it explains (largest first: :func:`group`)."""

    number: int
    key: tuple[str, ...]
    findings: tuple[Finding, ...]
    of: int = 0   # how many causes the run has (their numbers are as wide, so Allure sorts them by name)

    @property
    def ident(self) -> str:
        """``C01`` … ``C18`` (``C1`` … ``C9`` when there are fewer than ten)."""
        return f"C{self.number:0{len(str(max(self.of, self.number)))}d}"

    @property
    def scenarios(self) -> list[ScenarioResult]:
        return [f.scenario for f in self.findings]

    @property
    def behaviour(self) -> str:
        """What the backend did: the words most of its findings say."""
        return Counter(f.behaviour for f in self.findings).most_common(1)[0][0]

    @property
    def carried_from(self) -> list[str]:
        return sorted({f.carried_from for f in self.findings if f.carried_from})

    @property
    def subjects(self) -> frozenset[str]:
        return frozenset().union(*(f.subjects for f in self.findings))

    @property
    def requirements(self) -> list[str]:
        """The requirements it breaks (or kept from being judged), most frequent first."""
        return [r for r, _ in Counter(f.requirement for f in self.findings).most_common()]

    @property
    def evidence(self) -> str:
        """One line of typed values over every finding: numbers as ranges, words with their counts."""
        order: list[str] = []
        values: dict[str, list[Fact]] = {}
        for f in self.findings:
            for fact in f.facts:
                if fact.name not in values:
                    order.append(fact.name)
                values.setdefault(fact.name, []).append(fact)
        parts = []
        for name in order:
            facts = values[name]
            numbers = [float(f.value) for f in facts if isinstance(f.value, (int, float))]
            if numbers and len(numbers) == len(facts):
                low, high = min(numbers), max(numbers)
                shown = f"{low:.3g}" if round(low, 1) == round(high, 1) else f"{low:.3g}–{high:.3g}"
                parts.append(f"{name} {shown}{(' ' + facts[0].unit) if facts[0].unit else ''}")
                continue
            counted = Counter(str(f.value) for f in facts).most_common()
            words = [f"{value}" + (f" ×{count}" if count > 1 and len(self.findings) > 1 else "")
                     for value, count in counted[:4]]
            if len(counted) > 4:
                words.append(f"… {len(counted) - 4} more")
            parts.append(f"{name}: {', '.join(words)}")
        return "; ".join(parts)

    def rerun_first(self) -> Finding:
        """The scenario to re-run first: one whose claim was judged, not carried over, quickest."""
        return min(self.findings, key=lambda f: (not f.judged, bool(f.carried_from), f.scenario.duration_s,
                                                 f.scenario.name))


def group(findings: Sequence[Finding]) -> list[Cause]:
    """The findings by key, largest first (ties: the one met first), numbered from 1."""
    by_key: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        by_key.setdefault(f.key, []).append(f)
    ordered = sorted(by_key.values(), key=lambda fs: -len(fs))
    return [Cause(index, fs[0].key, tuple(fs), len(ordered)) for index, fs in enumerate(ordered, 1)]


def findings_of(run: RunResults, histories: Histories | None = None) -> list[Finding]:
    """One finding per failed or broken scenario of the run, in the order they ran."""
    api_bound_s = run.thresholds().api_response_s
    cli_prefix = run.properties.get("cli", "")
    seen: Counter[str] = Counter()
    order = {id(s): i for i, s in enumerate(sorted(run.scenarios, key=lambda s: s.start_ms))}
    nth: dict[int, int] = {}
    for scenario in sorted(run.scenarios, key=lambda s: order[id(s)]):
        if scenario.status in ("skipped",):
            continue
        nth[id(scenario)] = seen[scenario.name.strip()]
        seen[scenario.name.strip()] += 1
    out = []
    for scenario in run.problems:
        lived = histories.lived(scenario, nth.get(id(scenario), 0)) if histories else None
        out.append(find(Evidence.of(scenario), lived, api_bound_s, cli_prefix))
    return out


def causes_of(run: RunResults, histories: Histories | None = None) -> list[Cause]:
    """The run's causes, largest first; the run's histories are read from its reports folder when not given."""
    if histories is None:
        histories = Histories.near(run.directory.parent)
    return group(findings_of(run, histories))


# ============================================================================================ invariants

#: The scenario causes whose evidence a broken run-wide invariant shares: the subjects their findings name.
INVARIANT_SUBJECTS = {"output": "output", "bounds": "bounds", "liveness": "liveness", "client_ids": "client_ids",
                      "one_caller": "one_caller", "reports_fall": "reports_fall", "reports_recover": "reports_recover"}


def linked_causes(invariant: CombinedInvariant, causes: Sequence[Cause]) -> list[Cause]:
    """The scenario causes whose evidence is of the invariant's kind (an un-awaited coroutine for ``output``, a
    slow answer for ``bounds`` …)."""
    subject = INVARIANT_SUBJECTS.get(invariant.key)
    return [c for c in causes if subject and subject in c.subjects]


# ============================================================================================ Allure

def category_name(cause: Cause) -> str:
    """The Allure category of a cause: its number, size and behaviour."""
    flag = " (carried over)" if cause.carried_from else ""
    return f"{cause.ident} ({len(cause.findings)} scenario(s)){flag}: {cause.behaviour}"[:240]


def cause_categories(causes: Sequence[Cause]) -> list[dict[str, Any]]:
    """One Allure category per cause, matched on the cause line :func:`annotate_allure` writes into the trace.
    Allure files a result under the first category it matches, so these come before the kinds'."""
    return [{"name": category_name(c), "matchedStatuses": ["failed", "broken"],
             "traceRegex": rf"(?s).*\n{re.escape(CAUSE_MARK)}{c.ident}\b.*"} for c in causes]


def annotate_allure(results_dir: Path, causes: Sequence[Cause]) -> int:
    """Write each failed scenario's cause into its Allure result: a ``cause`` label and a last trace line (what
    its category matches). Earlier annotations are replaced. Returns how many results were annotated."""
    by_identity = {(f.scenario.name, f.scenario.start_ms): c for c in causes for f in c.findings}
    written = 0
    for path in sorted(Path(results_dir).glob("*-result.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(raw, dict):
            continue
        labels = [label for label in raw.get("labels") or [] if label.get("name") != CAUSE_LABEL]
        details = dict(raw.get("statusDetails") or {})
        trace = str(details.get("trace") or "")
        cleaned = "\n".join(line for line in trace.split("\n") if not line.startswith(CAUSE_MARK)).rstrip("\n")
        cause = by_identity.get((str(raw.get("name") or ""), int(raw.get("start") or 0)))
        if cause is not None:
            labels.append({"name": CAUSE_LABEL, "value": category_name(cause)})
            cleaned += f"\n{CAUSE_MARK}{cause.ident} {cause.behaviour}\n"
            written += 1
        elif cleaned == trace.rstrip("\n") and len(labels) == len(raw.get("labels") or []):
            continue
        if details or cause is not None:
            details["trace"] = cleaned
            raw["statusDetails"] = details
        raw["labels"] = labels
        path.write_text(json.dumps(raw), encoding="utf-8")
    return written
