"""Helpers of the reporting tests: bounded subprocesses, hand-made Allure results and run-wide invariant records."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from support import run_evidence
from support.checks.run_wide import BY_KEY, INVARIANTS

#: The Critical Checks rows each run-wide invariant gives under the seed's names (the others: under their titles).
SEED_ROWS = {"Async/coroutine errors": "output", "Resilience score (healthy)": "reports_recover",
             "Resilience score (under faults)": "reports_fall", "Silent-connection detection": "reports_fall",
             "Recovery time": "reports_recover", "API response time": "bounds", "Responsiveness": "liveness"}


def table_rows(text: str) -> dict[str, str]:
    """The Markdown's Critical Checks table rows, by check name."""
    table = text.split("### Critical Checks", 1)[1].split("\n### ", 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| ([^|]+?) \|.*$", table, re.M)
            if m.group(1) not in ("Check", "---")}


def section(text: str, title: str) -> str:
    """The body of the Markdown's ``### title`` section."""
    return text.split(f"### {title}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def run_bounded(command: list[str], timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a command in its own process group; on overrun the whole group is killed and the test fails."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, **kwargs)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20.0)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate(timeout=5.0)
        pytest.fail(f"{' '.join(command[:4])} … took more than {timeout_s:.0f} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, "")


class ResultsDir:
    """Writes Allure result files the way allure-behave does (result JSON + attachment files), and the run-wide
    invariants the way ``features/environment.py`` ``after_all`` does (``support/run_evidence.py``)."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.clock_ms = 1_700_000_000_000

    @property
    def reports(self) -> Path:
        """The reports folder the results sit in."""
        return self.path.parent

    def _attach(self, name: str, body: str, kind: str, extension: str) -> dict:
        source = f"{uuid.uuid4()}-attachment.{extension}"
        (self.path / source).write_text(body)
        return {"name": name, "source": source, "type": kind}

    def scenario(self, name: str, status: str = "passed", feature: str = "A feature", message: str = "",
                 failing_step: str = "", exchanges: list | None = None, cli: str = "", samples: list | None = None,
                 labels: dict | None = None, tags: tuple = ()) -> None:
        """One scenario result with its attachments."""
        attachments = []
        steps = [{"name": "Given the backend is serving requests through a healthy gateway", "status": "passed"}]
        if exchanges is not None:
            attachments.append(self._attach("API exchanges", json.dumps(exchanges), "application/json", "json"))
        if cli:
            attachments.append(self._attach("CLI transcripts", cli, "text/plain", "txt"))
        if samples:
            attachments.append(self._attach("Backend resource samples", json.dumps(samples), "application/json", "json"))
        if failing_step:
            steps.append({"name": failing_step, "status": status, "statusDetails": {"message": message}})
        self.clock_ms += 1000
        result = {"name": name, "status": status, "steps": steps, "attachments": attachments,
                  "start": self.clock_ms, "stop": self.clock_ms + 500,
                  "labels": [{"name": "feature", "value": feature},
                             *({"name": k, "value": v} for k, v in (labels or {}).items()),
                             *({"name": "tag", "value": t} for t in tags)]}
        if message:
            result["statusDetails"] = {"message": message}
        (self.path / f"{uuid.uuid4()}-result.json").write_text(json.dumps(result))

    def stepped(self, name: str, steps: Sequence[dict[str, Any]], status: str = "failed", message: str = "",
                trace: str = "", feature: str = "A feature", tags: tuple = (), labels: dict | None = None,
                backend_output: str = "", faults: list | None = None) -> int:
        """One scenario result whose steps carry their own evidence, as ``features/environment.py`` attaches it.

        Args:
            steps: each ``{"name", "status" (passed), "exchanges" (list), "cli" (text), "at_s" (offset, seconds)}``;
                the failing one gets ``message`` and ``trace``.
            backend_output: the scenario's "Backend output" attachment.
            faults: the scenario's "Fault timeline" attachment.

        Returns:
            its start (epoch milliseconds, Allure's clock).
        """
        self.clock_ms += 60_000
        start = self.clock_ms
        raw_steps = []
        for index, step in enumerate(steps):
            attachments = []
            if step.get("exchanges") is not None:
                attachments.append(self._attach("API exchanges", json.dumps(step["exchanges"]), "application/json",
                                                "json"))
            if step.get("cli"):
                attachments.append(self._attach("CLI transcripts", step["cli"], "text/plain", "txt"))
            at_ms = start + int(1000 * step.get("at_s", index))
            raw = {"name": step["name"], "status": step.get("status", "passed"), "attachments": attachments,
                   "start": at_ms, "stop": at_ms + 500}
            if raw["status"] in ("failed", "broken"):
                raw["statusDetails"] = {"message": message, "trace": trace}
            raw_steps.append(raw)
        attachments = []
        if backend_output:
            attachments.append(self._attach("Backend output", backend_output, "text/plain", "txt"))
        if faults is not None:
            attachments.append(self._attach("Fault timeline", json.dumps(faults), "application/json", "json"))
        result = {"name": name, "status": status, "steps": raw_steps, "attachments": attachments,
                  "start": start, "stop": start + 30_000, "uuid": str(uuid.uuid4()),
                  "labels": [{"name": "feature", "value": feature},
                             *({"name": k, "value": v} for k, v in (labels or {}).items()),
                             *({"name": "tag", "value": t} for t in tags)]}
        if status in ("failed", "broken"):
            result["statusDetails"] = {"message": message, "trace": trace}
        (self.path / f"{result['uuid']}-result.json").write_text(json.dumps(result))
        return start

    def judged(self, records: Sequence[dict[str, Any]], json_file: bool = True) -> None:
        """The run-wide invariants' verdicts as a run writes them: ``run-invariants.json`` in the reports folder
        (a worker's in ``workers/<worker>/``), an Allure result each, and the JUnit file (unless ``json_file`` is
        False: then only the Allure results, as if the records were lost)."""
        by_worker: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_worker.setdefault(record["worker"], []).append(record)
        for worker, own in by_worker.items():
            folder = self.reports / "workers" / worker if worker else self.reports
            if json_file:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / run_evidence.INVARIANTS_FILE).write_text(json.dumps(own, indent=2), encoding="utf-8")
            run_evidence.write_allure(self.path, own, self.clock_ms, self.clock_ms + 60_000)
        run_evidence.write_junit(self.reports / "junit", list(records), 60.0)


def checks_by_name(results: ResultsDir) -> dict[str, Any]:
    """The Markdown's critical checks of what ``results`` holds, by name."""
    from ibreport.results import critical_checks, load_results

    return {c.name: c for c in critical_checks(load_results(results.path))}


def record(key: str, status: str = "pass", message: str = "", worker: str = "",
           violations: Iterable[tuple[float, str]] = (), figures: dict[str, list[float]] | None = None,
           violation_count: int | None = None) -> dict[str, Any]:
    """One invariant's record as ``support/run_evidence.py`` writes it."""
    invariant = BY_KEY[key]
    violations = [{"at_s": at_s, "text": text} for at_s, text in violations]
    return {"key": key, "title": invariant.title, "source": invariant.source, "worker": worker, "status": status,
            "message": message or f"{key}: {status} as recorded", "exercised": 0 if status == "not exercised" else 3,
            "violations": violations,
            "violation_count": len(violations) if violation_count is None else violation_count,
            "figures": figures or {}}


def every_invariant(worker: str = "", status: str = "pass", **chosen: dict[str, Any]) -> list[dict[str, Any]]:
    """A record per invariant of the catalogue, ``status`` unless ``chosen`` gives a key its own fields."""
    return [record(i.key, **{"status": status, "worker": worker, **chosen.get(i.key, {})}) for i in INVARIANTS]
