"""Run scenarios of the specification (optionally against a mutant) and read back each scenario's outcome."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "tests" / "mutants" / "launch.py"


@dataclass(frozen=True)
class Outcome:
    """How one scenario ended: ``passed``, ``failed``, ``skipped``, and the first step that did not pass."""

    scenario: str
    status: str
    step: str = ""
    message: str = ""


@dataclass(frozen=True)
class SpecRun:
    """One behave run: outcomes by scenario name, exit code, wall time, and the run-wide invariants' statuses."""

    outcomes: dict[str, Outcome]
    exit_code: int
    elapsed_s: float
    output: str
    invariants: dict[str, str] = field(default_factory=dict)   # key → pass / fail / not exercised
    invariant_messages: dict[str, str] = field(default_factory=dict)


def mutant_command(mutant: str) -> str:
    """The command that runs the reference backend (server and CLI) with ``mutant`` applied."""
    return shlex.join([sys.executable, str(LAUNCH), mutant])


def run_spec(out_dir: Path, names: Iterable[str] = (), tags: str | None = None, mutant: str | None = None,
             timeout_s: float = 900.0, defines: Iterable[str] = ()) -> SpecRun:
    """Run behave on the embedded targets; ``names`` are exact scenario names (regex-escaped here)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result_file = out_dir / "behave.json"
    command = [sys.executable, "-m", "behave", str(ROOT / "features"), "--no-skipped", "--no-capture",
               "-f", "json", "-o", str(result_file), "-f", "progress", "-D", f"reports_dir={out_dir}"]
    command += ["--tags", tags or "not @wip"]   # every level unless told (plain behave runs only @basic)
    for name in names:
        command += ["--name", "^" + re.escape(name.strip())]
    if mutant:
        command += ["-D", f"backend_command={mutant_command(mutant)}", "-D", f"cli={mutant_command(mutant)}"]
    for definition in defines:
        command += ["-D", definition]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    elapsed_s = time.monotonic() - started
    outcomes = read_outcomes(result_file) if result_file.exists() else {}
    invariants = _read_invariants(out_dir)
    return SpecRun(outcomes, done.returncode, elapsed_s, done.stdout[-6000:] + done.stderr[-4000:],
                   {r["key"]: r["status"] for r in invariants},
                   {r["key"]: r["message"] + "".join(f"\n  {v['at_s']} s {v['text']}" for v in r["violations"][:5])
                    for r in invariants})


def _read_invariants(out_dir: Path) -> list[dict[str, Any]]:
    """The run-wide invariants' records the run wrote (support/run_evidence.py), empty when it wrote none."""
    try:
        return json.loads((out_dir / "run-invariants.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def read_outcomes(result_file: Path) -> dict[str, Outcome]:
    """Scenario outcomes from behave's JSON formatter output (rules and outlines included)."""
    outcomes: dict[str, Outcome] = {}
    for node in _walk(json.loads(result_file.read_text() or "[]")):
        if node.get("type") != "scenario":
            continue
        status, step, message = "passed", "", ""
        steps = node.get("steps", [])
        for s in steps:
            result = s.get("result") or {}
            if result.get("status") in ("failed", "error", "undefined"):
                status, step = "failed", s.get("name", "")
                message = result.get("error_message") or ""
                message = "\n".join(message) if isinstance(message, list) else str(message)
                break
        else:
            if not steps or all((s.get("result") or {}).get("status") in (None, "skipped") for s in steps):
                status = "skipped"
        outcomes[node.get("name", "").strip()] = Outcome(node.get("name", "").strip(), status, step, message)
    return outcomes


def _walk(value: Any):
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child)
