"""The whole run's evidence: the run-wide invariants' verdicts as their own test cases (``run-invariants.json``, an
Allure result and a JUnit test case each), and the run's history (``history.json.gz``) to judge again later."""

from __future__ import annotations

import gzip
import json
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from support.checks.limits import Limits
from support.checks.run_wide import Judged
from support.run_history import HistoryWindow
from support.verdict import FAIL, NOT_EXERCISED, PASS

INVARIANTS_FILE = "run-invariants.json"
HISTORY_FILE = "history.json.gz"
JUNIT_FILE = "TESTS-run_invariants.xml"
#: The Allure feature (and JUnit suite) the invariants are filed under.
FEATURE = "Run-wide invariants"
_ALLURE_STATUS = {PASS: "passed", FAIL: "failed", NOT_EXERCISED: "skipped"}


def invariant_records(judged: Sequence[Judged], window: HistoryWindow, worker: str = "") -> list[dict[str, Any]]:
    """The verdicts as JSON values (times of violations in seconds from the window's start)."""
    return [{"key": j.invariant.key, "title": j.invariant.title, "source": j.invariant.source, "worker": worker,
             "status": j.verdict.status, "message": j.verdict.message, "exercised": j.verdict.exercised,
             "violations": [{"at_s": round(v.at_mono - window.start_mono, 3), "text": v.text}
                            for v in j.verdict.violations[:200]],
             "violation_count": len(j.verdict.violations), "figures": j.figures} for j in judged]


def _name(record: dict[str, Any]) -> str:
    return record["title"] + (f" ({record['worker']})" if record.get("worker") else "")


def _detail(record: dict[str, Any]) -> str:
    lines = [record["message"], f"requirement: {record['source']}"]
    lines += [f"{v['at_s']:9.2f} s  {v['text']}" for v in record["violations"]]
    if record["violation_count"] > len(record["violations"]):
        lines.append(f"… {record['violation_count'] - len(record['violations'])} more")
    return "\n".join(lines)


def write_allure(results_dir: Path, records: Sequence[dict[str, Any]], started_ms: int, stopped_ms: int) -> None:
    """One Allure result per invariant (the violations as its attachment), filed under :data:`FEATURE`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    for record in records:
        attachment = f"{uuid.uuid4()}-attachment.txt"
        (results_dir / attachment).write_text(_detail(record), encoding="utf-8")
        status = _ALLURE_STATUS[record["status"]]
        message = record["message"] if status != "skipped" else f"not exercised: {record['message']}"
        result = {
            "uuid": str(uuid.uuid4()), "historyId": f"run-invariant-{record['key']}-{record.get('worker', '')}",
            "name": _name(record), "fullName": f"{FEATURE}: {_name(record)}",
            "status": status, "stage": "finished", "start": started_ms, "stop": stopped_ms,
            "statusDetails": {"message": message, "trace": _detail(record)},
            "labels": [{"name": "feature", "value": FEATURE}, {"name": "suite", "value": FEATURE},
                       {"name": "severity", "value": "critical"}, {"name": "tag", "value": "run_wide"},
                       {"name": "capability", "value": "run_wide"}],
            "attachments": [{"name": "Violations", "source": attachment, "type": "text/plain"}],
            "steps": [],
        }
        (results_dir / f"{result['uuid']}-result.json").write_text(json.dumps(result), encoding="utf-8")


def write_junit(junit_dir: Path, records: Sequence[dict[str, Any]], elapsed_s: float) -> Path:
    """``TESTS-run_invariants.xml``: one test case per invariant (a failure, or skipped when not exercised)."""
    junit_dir.mkdir(parents=True, exist_ok=True)
    suite = ElementTree.Element("testsuite", {
        "name": f"run_invariants.{FEATURE}", "tests": str(len(records)), "errors": "0",
        "failures": str(sum(r["status"] == FAIL for r in records)),
        "skipped": str(sum(r["status"] == NOT_EXERCISED for r in records)), "time": f"{elapsed_s:.3f}"})
    for record in records:
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": f"run_invariants.{FEATURE}", "name": _name(record),
            "status": _ALLURE_STATUS[record["status"]], "time": "0"})
        if record["status"] == FAIL:
            failure = ElementTree.SubElement(case, "failure", {"type": "RunInvariantBroken",
                                                               "message": record["message"][:500]})
            failure.text = _detail(record)
        elif record["status"] == NOT_EXERCISED:
            ElementTree.SubElement(case, "skipped", {"message": f"not exercised: {record['message'][:500]}"})
        else:
            ElementTree.SubElement(case, "system-out").text = _detail(record)
    path = junit_dir / JUNIT_FILE
    ElementTree.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_history(path: Path, window: HistoryWindow, limits: Limits) -> Path:
    """The run's history and the limits it was judged by, gzipped JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump({"limits": limits.to_json(), "history": window.to_json()}, out, default=str)
    return path


def read_history(path: Path) -> tuple[HistoryWindow, Limits]:
    """A history written by :func:`write_history`, with its limits."""
    with gzip.open(path, "rt", encoding="utf-8") as data:
        document = json.load(data)
    return HistoryWindow.from_json(document["history"]), Limits.from_json(document["limits"])


def record_run(reports_dir: Path, allure_dir: Path, judged: Sequence[Judged], window: HistoryWindow, limits: Limits,
               worker: str = "") -> list[dict[str, Any]]:
    """Write everything: ``run-invariants.json`` and the history in ``reports_dir``, the Allure results in
    ``allure_dir``, the JUnit file in ``reports_dir/junit``. Returns the records."""
    records = invariant_records(judged, window, worker)
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / INVARIANTS_FILE).write_text(json.dumps(records, indent=2), encoding="utf-8")
    now_ms = int(time.time() * 1000)
    started_ms = now_ms - int((window.end_mono - window.start_mono) * 1000)
    write_allure(allure_dir, records, started_ms, now_ms)
    write_junit(reports_dir / "junit", records, window.end_mono - window.start_mono)
    write_history(reports_dir / HISTORY_FILE, window, limits)
    return records


def read_records(reports_dir: Path) -> list[dict[str, Any]]:
    """The invariants' records a run wrote (empty when it wrote none)."""
    try:
        return json.loads((Path(reports_dir) / INVARIANTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
