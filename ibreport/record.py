"""One record of a run, and every verdict of the run read from it.

After behave ends, the runner (and ``ib-resilience report --merge``, and the merge of ``--workers``) builds one
:class:`RunRecord` from the Allure results (the single source, :func:`ibreport.results.load_results`) and what only
the runner knows: the selection, the signal or timeout that stopped the run, its wall time, its level, behave's
exit code. The exit code, the console's last lines, the JUnit files (:func:`rewrite_junit`), the Markdown summary
and the Allure metadata are all computed from it, so they say the same counts (passed, failed, errors, skipped
with their reasons, not run), the same failures and the same interruption. It is written as
``<reports>/run-result.json`` (:data:`RESULT_FILE`).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ibreport.results import FAIL, NOT_EXERCISED, PASS, RunResults, ScenarioResult, scenario_suites, strip_prefix
from support.settings import ROOT

#: The record, in the run's reports folder.
RESULT_FILE = "run-result.json"
#: The record's outcomes of a scenario (``broken`` is Allure's word for what JUnit and the Markdown call an error).
PASSED, FAILED, BROKEN, SKIPPED, NOT_RUN = "passed", "failed", "broken", "skipped", "not_run"
OUTCOMES = (PASSED, FAILED, BROKEN, SKIPPED, NOT_RUN)
#: Exit codes: a run that selected nothing; a run stopped by a signal or by its time bound.
NOTHING_SELECTED_EXIT = 2
INTERRUPTED_EXIT = {"SIGTERM": 143, "SIGINT": 130, "timeout": 124}
FEATURES = ROOT / "features"


def feature_stem(feature_file: str | Path) -> str:
    """``features/cli.feature`` → ``cli`` (sub-folders as dots), as behave names its JUnit files."""
    path = Path(feature_file)
    try:
        relative = (path if path.is_absolute() else ROOT / path).resolve().relative_to(FEATURES.resolve())
    except ValueError:
        relative = Path(path.name)
    return ".".join(relative.with_suffix("").parts)


def scenario_key(stem: str, name: str) -> str:
    """A scenario's identity across runs and reports: ``<feature stem>::<name>``."""
    return f"{stem}::{name.strip()}"


@dataclass(frozen=True)
class Selected:
    """One scenario the run selected (behave's own selection: ``ibresilience.parallel.select``)."""

    location: str   # features/cli.feature:31
    name: str
    feature: str    # the feature's name

    @property
    def stem(self) -> str:
        return feature_stem(self.location.rsplit(":", 1)[0])

    @property
    def key(self) -> str:
        return scenario_key(self.stem, self.name)


@dataclass(frozen=True)
class Outcome:
    """How one selected scenario ended, as the record says it.

    Args:
        status: one of :data:`OUTCOMES`.
        reason: why it was skipped or not run; for a failure, the first line of its message.
        step: the failing step of a failure ('' when a hook failed).
        interrupted: an error because the run was stopped while it ran (not a verdict on the backend).
    """

    name: str
    feature: str
    stem: str
    location: str
    status: str
    reason: str = ""
    step: str = ""
    interrupted: bool = False

    @property
    def key(self) -> str:
        return scenario_key(self.stem, self.name)


@dataclass(frozen=True)
class Interruption:
    """What stopped the run before its end: a signal (``SIGTERM``, ``SIGINT``) or its time bound (``timeout``)."""

    by: str
    after_s: float

    @property
    def code(self) -> int:
        return INTERRUPTED_EXIT.get(self.by, 1)

    @property
    def words(self) -> str:
        return "its time bound" if self.by == "timeout" else self.by


@dataclass(frozen=True)
class Invariants:
    """The run-wide invariants as the run judged them, combined over its workers or shards."""

    held: int = 0
    broken: int = 0
    not_exercised: int = 0
    broken_names: tuple[str, ...] = ()
    unjudged_workers: tuple[str, ...] = ()

    @property
    def judged(self) -> bool:
        return bool(self.held + self.broken + self.not_exercised)


@dataclass(frozen=True)
class RunRecord:
    """Everything the run's verdicts are computed from.

    Args:
        scenarios: every selected scenario's outcome in feature order (a result outside the selection after them).
        selection_known: the runner knew what was selected (else only the scenarios with a result are known).
        names: the ``--name`` patterns of the selection.
        behave_exit: behave's own exit code (None when unknown): a non-zero one nothing else explains fails the run.
    """

    level: str
    scenarios: tuple[Outcome, ...]
    invariants: Invariants
    elapsed_s: float
    interrupted: Interruption | None = None
    selection_known: bool = True
    names: tuple[str, ...] = ()
    behave_exit: int | None = None
    workers: int = 1
    shard: str = ""

    # ------------------------------------------------------------------------------------------- counts

    def with_status(self, status: str) -> list[Outcome]:
        return [s for s in self.scenarios if s.status == status]

    @property
    def counts(self) -> dict[str, int]:
        """Scenarios per outcome (every outcome, zero included) and ``selected``, their total."""
        found = {status: len(self.with_status(status)) for status in OUTCOMES}
        return {**found, "selected": len(self.scenarios)}

    @property
    def ran(self) -> int:
        """Scenarios that ran to a verdict or an error (passed, failed, errors)."""
        c = self.counts
        return c[PASSED] + c[FAILED] + c[BROKEN]

    @property
    def skips(self) -> list[Outcome]:
        return self.with_status(SKIPPED)

    @property
    def not_run(self) -> list[Outcome]:
        return self.with_status(NOT_RUN)

    @property
    def failures(self) -> list[Outcome]:
        """Failed scenarios and errors, in the order of the record."""
        return [s for s in self.scenarios if s.status in (FAILED, BROKEN)]

    @property
    def nothing_selected(self) -> bool:
        """The selection was known and empty: an error, not a pass."""
        return self.selection_known and not self.scenarios and not self.shard

    # ------------------------------------------------------------------------------------------- the verdict

    @property
    def problems(self) -> list[str]:
        """Why the run is not green, one sentence each (empty: it is)."""
        return [text for _, text in self.problems_by_kind()]

    def problems_by_kind(self) -> list[tuple[str, str]]:
        """The problems, each with its kind (what the console says on a line of its own already, or not)."""
        if self.selection_known and not self.scenarios:  # a shard's empty part of a partition is no error
            return [("nothing selected", self.nothing_selected_text)] if self.nothing_selected else []
        out = []
        if self.interrupted is not None:
            out.append(("interrupted", self.interruption_text))
        failed = self.with_status(FAILED)
        broken = [s for s in self.with_status(BROKEN) if not s.interrupted]
        if failed:
            out.append(("failed", f"{len(failed)} scenario(s) failed: {_names(failed)}"))
        if broken:
            out.append(("failed", f"{len(broken)} scenario(s) broke (an error, not an assertion): {_names(broken)}"))
        if self.invariants.broken:
            out.append(("invariants", f"{self.invariants.broken} run-wide invariant(s) broken: "
                                      + "; ".join(self.invariants.broken_names)))
        if self.not_run and self.interrupted is None:
            out.append(("not run", f"{len(self.not_run)} selected scenario(s) have no result "
                                   f"({self.not_run[0].reason}): {_names(self.not_run)}"))
        if not self.scenarios:
            out.append(("nothing ran", "no scenario result was recorded"))
        elif not self.ran and self.interrupted is None:
            out.append(("nothing ran", f"no selected scenario ran: all {len(self.scenarios)} were skipped or not run"))
        if self.scenarios and not self.invariants.judged and self.interrupted is None:
            out.append(("unjudged", "the run-wide invariants were not judged (the run ended before `after_all`)"))
        elif self.invariants.unjudged_workers:
            out.append(("unjudged", "the run-wide invariants were not judged by worker(s) "
                                    + ", ".join(self.invariants.unjudged_workers)))
        if not out and self.behave_exit not in (0, None):
            out.append(("behave", f"behave exited {self.behave_exit} although no scenario failed: a hook or the "
                                  "set-up broke (see the console output and the targets' logs)"))
        return out

    @property
    def exit_code(self) -> int:
        """0 only if something ran, nothing failed or broke, no invariant broke and the run was not interrupted;
        2 when nothing was selected; 130/143 (124 on its time bound) when interrupted; else 1."""
        if self.nothing_selected:
            return NOTHING_SELECTED_EXIT
        if self.interrupted is not None:
            return self.interrupted.code
        return 1 if self.problems else 0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    @property
    def verdict(self) -> str:
        """``PASSED``, ``FAILED``, ``INTERRUPTED`` or ``NOTHING SELECTED``."""
        if self.nothing_selected:
            return "NOTHING SELECTED"
        if self.interrupted is not None:
            return "INTERRUPTED"
        return "PASSED" if self.passed else "FAILED"

    @property
    def interruption_text(self) -> str:
        """What the interruption left undone ('' when the run was not interrupted)."""
        if self.interrupted is None:
            return ""
        cut = [s for s in self.failures if s.interrupted]
        return (f"the run was interrupted by {self.interrupted.words} after {self.interrupted.after_s:.1f} s: "
                f"{len(cut)} scenario(s) stopped mid-way, {len(self.not_run)} of {len(self.scenarios)} selected "
                "never ran; the results are partial, not a verdict on the backend")

    @property
    def nothing_selected_text(self) -> str:
        names = " ".join(f"--name {n!r}" for n in self.names)
        return f"nothing selected: no scenario of level {self.level} matches {names or 'the selection'}"

    # ------------------------------------------------------------------------------------------- the console

    @property
    def counts_text(self) -> str:
        """``14 scenarios passed, 0 failed, 0 errors, 1 skipped, 0 not run``."""
        c = self.counts
        return (f"{c[PASSED]} scenarios passed, {c[FAILED]} failed, {c[BROKEN]} errors, {c[SKIPPED]} skipped, "
                f"{c[NOT_RUN]} not run")

    def summary_line(self) -> str:
        """The run's last line: the level's scenarios by outcome, the wall time, the verdict and the exit code."""
        where = (f" (shard {self.shard})" if self.shard else "") + (f" on {self.workers} workers"
                                                                     if self.workers > 1 else "")
        if self.nothing_selected:
            return f"ib-resilience: level {self.level}{where}: {self.nothing_selected_text}: exit {self.exit_code}"
        verdict = self.verdict + (f" by {self.interrupted.words}" if self.interrupted else "")
        return (f"ib-resilience: level {self.level}{where}: {self.counts_text} in {self.elapsed_s:.1f} s: "
                f"{verdict}, exit {self.exit_code}")

    def invariants_line(self) -> str:
        i = self.invariants
        if not i.judged:
            return "ib-resilience: run-wide invariants: not judged (the run ended before they were)"
        return (f"ib-resilience: run-wide invariants: {i.held} held, {i.broken} broken"
                + (f" ({'; '.join(i.broken_names)})" if i.broken_names else "") + f", {i.not_exercised} not exercised")

    def console_lines(self, shown: int = 10) -> list[str]:
        """The console's last lines: the invariants, each skip with its reason, each failure, what did not run,
        why the run is not green when no line above says it, and the summary line."""
        if self.nothing_selected:
            return [self.summary_line()]
        out = [self.invariants_line()] if self.scenarios else []
        out += [f"ib-resilience: skipped: {s.name} — {s.reason}" for s in self.skips[:shown]]
        out += [f"ib-resilience: {'interrupted' if s.interrupted else 'failed' if s.status == FAILED else 'error'}: "
                f"{s.name} — " + ("stopped mid-way, no verdict" if s.interrupted else
                                  (f"at {s.step}: " if s.step else "") + (s.reason or "no message"))
                for s in self.failures[:shown]]
        more = len(self.skips[shown:]) + len(self.failures[shown:])
        if more:
            out.append(f"ib-resilience: … and {more} more skipped or failed (see run-result.json)")
        if self.not_run:
            out.append(f"ib-resilience: not run: {len(self.not_run)} selected scenario(s) ({self.not_run[0].reason}): "
                       f"{_names(self.not_run)}")
        for kind, problem in self.problems_by_kind():
            if kind == "interrupted":
                out.append(f"ib-resilience: INTERRUPTED: {problem}")
            elif kind not in ("failed", "invariants", "not run"):  # those have their lines above
                out.append(f"ib-resilience: not green: {problem}")
        return out + [self.summary_line()]

    # ------------------------------------------------------------------------------------------- Allure

    def allure_properties(self) -> dict[str, str]:
        """What Allure's Environment widget shows of the verdict (``environment.properties``)."""
        properties = {"run.verdict": f"{self.verdict}, exit {self.exit_code}",
                      "run.counts": f"{self.counts_text} of {self.counts['selected']} selected",
                      "run.interrupted": self.interruption_text or "no"}
        if self.skips:
            properties["run.skipped"] = "; ".join(f"{s.name}: {s.reason}" for s in self.skips)
        return properties

    # ------------------------------------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "verdict": self.verdict, "exit_code": self.exit_code,
                "counts": self.counts, "elapsed_s": round(self.elapsed_s, 1),
                "interrupted": None if self.interrupted is None else {
                    "by": self.interrupted.by, "after_s": round(self.interrupted.after_s, 1),
                    "stopped_mid_way": sum(s.interrupted for s in self.failures), "not_run": len(self.not_run)},
                "nothing_selected": self.nothing_selected, "problems": self.problems,
                "skipped": [{"scenario": s.name, "reason": s.reason} for s in self.skips],
                "failures": [{"scenario": s.name, "feature": s.feature, "status": s.status, "step": s.step,
                              "message": s.reason, "interrupted": s.interrupted} for s in self.failures],
                "invariants": {**asdict(self.invariants), "judged": self.invariants.judged},
                "scenarios": [asdict(s) for s in self.scenarios],
                "selection_known": self.selection_known, "names": list(self.names),
                "behave_exit": self.behave_exit, "workers": self.workers, "shard": self.shard}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        interrupted = data.get("interrupted")
        invariants = {k: v for k, v in (data.get("invariants") or {}).items() if k in Invariants.__dataclass_fields__}
        return cls(str(data["level"]), tuple(Outcome(**s) for s in data.get("scenarios") or []),
                   Invariants(**{k: tuple(v) if isinstance(v, list) else v for k, v in invariants.items()}),
                   float(data.get("elapsed_s") or 0.0),
                   Interruption(str(interrupted["by"]), float(interrupted["after_s"])) if interrupted else None,
                   bool(data.get("selection_known", True)), tuple(data.get("names") or ()), data.get("behave_exit"),
                   int(data.get("workers") or 1), str(data.get("shard") or ""))


def _names(outcomes: Sequence[Outcome], shown: int = 5) -> str:
    names = "; ".join(s.name for s in outcomes[:shown])
    return names + (f"; … {len(outcomes) - shown} more" if len(outcomes) > shown else "")


def write_record(record: RunRecord, reports_dir: Path) -> Path:
    path = Path(reports_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_record(reports_dir: Path) -> RunRecord | None:
    """The record a run wrote into ``reports_dir`` (None when there is none, or it is unreadable)."""
    try:
        return RunRecord.from_json(json.loads((Path(reports_dir) / RESULT_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------------------- building it

def build_record(run: RunResults, level: str, elapsed_s: float, selected: Sequence[Selected] | None = None,
                 interrupted: Interruption | None = None, behave_exit: int | None = None, workers: int = 1,
                 shard: str = "", names: Iterable[str] = ()) -> RunRecord:
    """The record of a run from its Allure results and what the runner knows.

    Args:
        run: the run's Allure results (scenarios and run-wide invariants).
        selected: what the run selected, in feature order (None: unknown; then only results count).
        interrupted: what stopped the run (None: it ended on its own). When unknown, behave's exit code of a
            signal or a timeout (130, 143, 124) says it.
        behave_exit: behave's exit code (the runner's, for results read back without it).
    """
    if interrupted is None and behave_exit in INTERRUPTED_EXIT.values():
        interrupted = Interruption(next(k for k, v in INTERRUPTED_EXIT.items() if v == behave_exit), elapsed_s)
    found = [_outcome(s) for s in run.scenarios]
    scenarios: list[Outcome] = []
    if selected is not None:
        by_key: dict[str, list[Outcome]] = {}
        for outcome in found:
            by_key.setdefault(outcome.key, []).append(outcome)
        why = (f"the run was interrupted by {interrupted.words} first" if interrupted is not None
               else "behave stopped first: a hook, the set-up or a worker broke (see the output above)")
        for scenario in selected:
            scenarios += by_key.pop(scenario.key, None) or [
                Outcome(scenario.name.strip(), scenario.feature, scenario.stem, scenario.location, NOT_RUN, why)]
        scenarios += [o for outcomes in by_key.values() for o in outcomes]  # results outside the selection
    else:
        scenarios = found
    return RunRecord(level, tuple(scenarios), _invariants(run, workers), elapsed_s, interrupted,
                     selected is not None, tuple(names), behave_exit, workers, shard)


def _outcome(s: ScenarioResult) -> Outcome:
    location = s.label("location")
    stem = feature_stem(location.rsplit(":", 1)[0]) if location else re.sub(r"\W+", "_", s.feature).strip("_").lower()
    interrupted = s.category is not None and s.category.key == "interrupted"
    if s.status == "skipped":
        status, reason = (SKIPPED, s.skip_reason) if s.skip_reason else (NOT_RUN, "it never started")
    else:
        status = {"passed": PASSED, "failed": FAILED}.get(s.status, BROKEN)
        reason = "" if status == PASSED else (strip_prefix(s.message).strip().splitlines() or [""])[0][:300]
    return Outcome(s.name.strip(), s.feature, stem, location, status, reason,
                   s.failing_step if status in (FAILED, BROKEN) else "", interrupted)


def _invariants(run: RunResults, workers: int) -> Invariants:
    combined = run.combined_invariants
    broken = [c for c in combined if c.status == FAIL]
    named = [c.title + (f" ({', '.join(p.worker for p in c.parts if p.status == FAIL and p.worker)})"
                        if any(p.worker for p in c.parts if p.status == FAIL) else "") for c in broken]
    count = run.properties.get("run.workers", "")
    workers = int(count) if count.isdigit() else workers
    judged = {i.worker for i in run.invariants}
    unjudged = [f"w{k}" for k in range(1, workers + 1) if f"w{k}" not in judged] if workers > 1 and judged else []
    return Invariants(sum(c.status == PASS for c in combined), len(broken),
                      sum(c.status == NOT_EXERCISED for c in combined), tuple(named), tuple(unjudged))


# ------------------------------------------------------------------------------------------- JUnit

#: A JUnit test case's status and child element per outcome (every reader counts ``skipped`` as skipped).
_JUNIT = {PASSED: ("passed", None), FAILED: ("failed", "failure"), BROKEN: ("error", "error"),
          SKIPPED: ("skipped", "skipped"), NOT_RUN: ("untested", "skipped")}


def rewrite_junit(record: RunRecord, junit_dir: Path) -> dict[str, int]:
    """Rewrite the scenarios' ``TESTS-<feature>.xml`` files from the record: one test case per selected scenario,
    its outcome the record's (a skipped or never-run scenario as ``<skipped message="reason"/>``, added to its
    feature's file, created if behave wrote none), behave's test cases of scenarios the record does not hold (other
    levels' ``untested`` ones after an interruption) left out, and each suite's counts recomputed. behave's own
    output and failure text of each test case are kept. The run-wide invariants' file is left as it is.

    Returns:
        test cases per file name.
    """
    junit_dir = Path(junit_dir)
    junit_dir.mkdir(parents=True, exist_ok=True)
    cases: dict[tuple[str, str], ElementTree.Element] = {}
    suites: dict[str, dict[str, str]] = {}
    read = []
    for path, suite in scenario_suites(junit_dir):
        stem = path.name.removeprefix("TESTS-").removesuffix(".xml")
        suites.setdefault(stem, dict(suite.attrib))
        for case in suite.findall("testcase"):
            cases.setdefault((stem, (case.get("name") or "").strip()), case)
        read.append(path)
    for path in set(read):
        path.unlink()
    by_stem: dict[str, list[Outcome]] = {}
    for outcome in record.scenarios:
        by_stem.setdefault(outcome.stem, []).append(outcome)
    written = {}
    for stem, outcomes in by_stem.items():
        classname = f"{stem}.{outcomes[0].feature}"
        suite = ElementTree.Element("testsuite", suites.get(stem) or {"name": classname})
        for outcome in outcomes:
            case = cases.get((stem, outcome.name))
            if case is None:
                case = ElementTree.Element("testcase", {"classname": classname, "name": outcome.name, "time": "0"})
            _set_outcome(case, outcome)
            suite.append(case)
        for key, statuses in (("tests", OUTCOMES), ("failures", (FAILED,)), ("errors", (BROKEN,)),
                              ("skipped", (SKIPPED, NOT_RUN))):
            suite.set(key, str(sum(o.status in statuses for o in outcomes)))
        suite.set("time", f"{sum(float(c.get('time') or 0) for c in suite.findall('testcase')):.3f}")
        name = f"TESTS-{stem}.xml"
        ElementTree.ElementTree(suite).write(junit_dir / name, encoding="utf-8", xml_declaration=True)
        written[name] = len(outcomes)
    return written


def _set_outcome(case: ElementTree.Element, outcome: Outcome) -> None:
    """Give a JUnit test case the record's outcome, keeping behave's failure text where it has one."""
    status, tag = _JUNIT[outcome.status]
    kept = next((child for child in case if child.tag in ("failure", "error")), None)
    for child in [c for c in case if c.tag in ("failure", "error", "skipped")]:
        case.remove(child)
    case.set("status", status)
    if tag is None:
        return
    if tag in ("failure", "error") and kept is not None:
        kept.tag = tag
        case.insert(0, kept)
        return
    reason = f"not run: {outcome.reason}" if outcome.status == NOT_RUN else outcome.reason
    element = ElementTree.Element(tag, {"message": reason[:500]})
    if tag in ("failure", "error"):
        element.set("type", "Interrupted" if outcome.interrupted else "AssertionError" if tag == "failure" else "Error")
        element.text = "\n".join(part for part in (outcome.step and f"Failing step: {outcome.step}", outcome.reason)
                                 if part)
    case.insert(0, element)


def junit_agrees_with(record: RunRecord, junit: Mapping[str, int]) -> bool:
    """Whether JUnit totals (``ibreport.results.junit_counts``) say the record's counts: every selected scenario a
    test case, failures the failed, errors the errors, skipped the skipped and the never-run."""
    c = record.counts
    return (junit.get("tests", 0), junit.get("failures", 0), junit.get("errors", 0), junit.get("skipped", 0)) == \
        (c["selected"], c[FAILED], c[BROKEN], c[SKIPPED] + c[NOT_RUN])

