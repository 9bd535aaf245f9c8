"""``make bench-levels``: wall time of each level with 1, 2 and 4 workers, measured in one run.

Two targets (``--targets``): ``embedded`` (the reference backend the suite starts itself) and ``managed`` (the same
reference backend started by a profile, as a user's backend is: its API on the fixed port 8000 that its CLI always
calls, its data in a folder of its working directory — so more than one worker needs a network namespace and an
overlay each, ``ibresilience.isolate``).

For each level the sequential run comes first (``ib-resilience run --level L``), then the worker runs, each
handed the sequential run's durations (``--durations``: what the runner finds in the reports folder of a
machine that ran the level before). Printed, and written to ``reports/bench-levels.md``: wall time, speed-up
over the sequential run, outcome, the floor (below), and the ten slowest scenarios of the highest level.

The floor of a scenario is the sum of the waits its own Gherkin forces, whatever the backend does — read from
the literals of its steps (Background included, outline rows substituted) and the embedded settings:

* an outage or restart of stated length (``refuses connections for 2 seconds``): that long, since the recovery
  claim cannot be judged before the gateway is back — unless a step ends it on command (``When the gateway
  recovers`` heals ``a restart that refuses for 30 s`` as soon as the score has fallen);
* answers the scenario needs delayed by the gateway (``answers everything 1000 ms late``): the delay, once,
  unless the scenario interrupts or silences the delayed request (Ctrl-C, ``goes silent once``);
* ``N idle timeouts late``: N idle timeouts; ``closed before the idle timeout``: one idle timeout (the embedded
  backend's compressed 2 s, or KTRDR's 300 s under ``@fixture.backend.defaults``);
* ``retried the paced request after waiting``: the simulator's strict pacing window (5 s).

Silence detection is not counted (a backend may notice faster than the reference's 3 s validation bound), nor
any work (requests, bursts). A level's floor is the sum over its scenarios; N workers cannot beat
``max(sum / N, the longest scenario floor)``. Time is only measured; nothing is asserted about it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ibresilience import parallel
from ibresilience.runner import LEVELS, RUN_TIMEOUT_S, junit_outcomes
from support.settings import ROOT, EmbeddedTuning, Settings

KTRDR_IDLE_S = 300.0
OUTAGE = re.compile(r"refuses(?: connections)? for (\d+(?:\.\d+)?) (?:s|seconds)\b")
DELAY = re.compile(r"(\d+) ms late")
IDLE_LATE = re.compile(r"(\d+) idle timeouts late")
BEFORE_IDLE = re.compile(r"closed before the idle timeout")
PACED = re.compile(r"retried the paced request after waiting")
INTERRUPTED = re.compile(r"presses Ctrl-C|goes silent once")
ENDED_ON_COMMAND = re.compile(r"^the gateway recovers$", re.MULTILINE)


def scenario_floor(steps: list[str], tags: set[str], tuning: EmbeddedTuning | None = None) -> float:
    """Seconds a scenario cannot beat on any backend, from its steps' literals (module docstring)."""
    tuning = tuning or EmbeddedTuning()
    idle = KTRDR_IDLE_S if "fixture.backend.defaults" in tags else tuning.max_idle_s
    text = "\n".join(steps)
    floor = 0.0 if ENDED_ON_COMMAND.search(text) else sum(float(m.group(1)) for m in OUTAGE.finditer(text))
    if not INTERRUPTED.search(text):
        floor += sum(float(m.group(1)) / 1000.0 for m in DELAY.finditer(text))
    late = [int(m.group(1)) * idle for m in IDLE_LATE.finditer(text)]
    floor += max(late) if late else (idle if BEFORE_IDLE.search(text) else 0.0)
    if PACED.search(text):
        floor += float(Settings().strict_pacing_rules["same_contract_window_s"])
    return floor


def floors(level: str) -> dict[str, float]:
    """Scenario key → floor for every scenario of a level."""
    out = {}
    for model in parallel.selected_models(LEVELS[level]):
        key = parallel.scenario_key(parallel.feature_stem(model.location.filename), model.name)
        out[key] = scenario_floor([step.name for step in model.all_steps], set(model.effective_tags))
    return out


@dataclass(frozen=True)
class Measured:
    target: str
    level: str
    workers: int
    wall_s: float
    code: int
    passed: int
    failed: int
    skipped: int


def managed_reference_profile(folder: Path) -> Path:
    """A profile starting the reference backend as a managed target, configured as the embedded one is (its
    compressed timings as ``backend_tuning_env``), on the fixed port its CLI calls."""
    from ibtargets.common.launch import venv_script
    from support.targets import backend_environment

    env = backend_environment(Settings(), 0)
    tuning = {k: env.pop(k) for k in ("REFBACKEND_MAX_IDLE_S", "REFBACKEND_HEALTH_INTERVAL_S")}
    env |= {"IB_HOST": "{ib_host}", "IB_PORT": "{ib_port}", "REFBACKEND_DATA_DIR": "data"}
    home = folder / "backend-home"
    home.mkdir(parents=True, exist_ok=True)
    refbackend = venv_script("refbackend")
    profile = folder / "managed-reference.toml"
    pairs = lambda values: ",".join(f"{k}={v}" for k, v in values.items())  # noqa: E731
    profile.write_text(f'target = "managed"\nbackend_command = "{refbackend} serve --host 127.0.0.1 --port {{api_port}}"\n'
                       f'backend_cwd = "{home}"\nbackend_env = "{pairs(env)}"\nbackend_tuning_env = "{pairs(tuning)}"\n'
                       f'cli = "{refbackend}"\ncli_api = "fixed:http://localhost:8000"\n', encoding="utf-8")
    return profile


def measure(level: str, workers: int, out: Path, durations: Path | None, profile: Path | None = None) -> Measured:
    """One ``ib-resilience run`` as a process, timed from start to exit."""
    command = [sys.executable, "-m", "ibresilience.main", "run", "--level", level, "--reports-dir", str(out)]
    if profile is not None:
        command += ["--profile", str(profile)]
    if workers > 1:
        command += ["--workers", str(workers)] + (["--durations", str(durations)] if durations else [])
    started = time.monotonic()
    with open(out.with_suffix(".log"), "w", encoding="utf-8") as log:
        try:
            code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=RUN_TIMEOUT_S[level] + 60).returncode
        except subprocess.TimeoutExpired:
            code = 124
    wall = time.monotonic() - started
    counts = junit_outcomes(out / "junit")
    return Measured("managed" if profile else "embedded", level, workers, wall, code, counts.get("passed", 0),
                    counts.get("failed", 0), counts.get("skipped", 0))


def slowest(results: Path, level_floors: dict[str, float], count: int = 10) -> list[tuple[str, float, float]]:
    """The ``count`` slowest scenarios of a run: (key, seconds, floor)."""
    durations = parallel.read_durations(results)
    ranked = sorted(durations.items(), key=lambda kv: -kv[1])[:count]
    return [(key, seconds, level_floors.get(key, 0.0)) for key, seconds in ranked]


def markdown(rows: list[Measured], level_floors: dict[str, dict[str, float]],
             slow: list[tuple[str, float, float]], slow_level: str) -> str:
    lines = ["| target | level | workers | wall s | speed-up | scenarios | exit | floor s (sum / N, or longest) |",
             "|---|---|---|---|---|---|---|---|"]
    sequential = {(r.target, r.level): r.wall_s for r in rows if r.workers == 1}
    for r in rows:
        level_floor = level_floors[r.level]
        bound = max(sum(level_floor.values()) / r.workers, max(level_floor.values(), default=0.0))
        base = sequential.get((r.target, r.level))
        ratio = f"{base / r.wall_s:.2f}×" if base and r.wall_s else "–"
        lines.append(f"| {r.target} | {r.level} | {r.workers} | {r.wall_s:.1f} | {ratio} | {r.passed} passed, "
                     f"{r.failed} failed"
                     f"{f', {r.skipped} skipped' if r.skipped else ''} | {r.code} | {bound:.1f} |")
    lines += ["", f"Ten slowest scenarios ({slow_level}, sequential run):", "",
              "| scenario | s | floor s |", "|---|---|---|"]
    lines += [f"| {key.replace('::', ': ')} | {seconds:.1f} | {floor:.1f} |" for key, seconds, floor in slow]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="basic,standard",
                        help="comma-separated levels (exhaustive takes about 25 minutes with 1, 2 and 4 workers)")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (1 is the baseline)")
    parser.add_argument("--targets", default="embedded,managed",
                        help="comma-separated: embedded (the reference started by the suite), managed (the same "
                             "reference by a profile, fixed port, isolated workers)")
    parser.add_argument("--out", type=Path, default=Path.cwd() / "reports" / "bench-levels.md")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - {"embedded", "managed"}
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}: embedded, managed")
    levels = [lvl.strip() for lvl in args.levels.split(",") if lvl.strip()]
    counts = sorted({int(n) for n in args.workers.split(",")} | {1})
    work = Path(tempfile.mkdtemp(prefix="bench-levels-"))
    rows: list[Measured] = []
    level_floors = {level: floors(level) for level in levels}
    for level in levels:
        total = sum(level_floors[level].values())
        print(f"{level}: {len(level_floors[level])} scenarios, floor {total:.1f} s sequential "
              f"(longest scenario floor {max(level_floors[level].values(), default=0):.1f} s)", flush=True)
        for target in targets:
            profile = managed_reference_profile(work / target) if target == "managed" else None
            for workers in counts:
                row = measure(level, workers, work / f"{target}-{level}-w{workers}", work / f"{target}-{level}-w1",
                              profile)
                rows.append(row)
                print(f"  {target}, {workers} worker(s): {row.wall_s:.1f} s, {row.passed} passed, {row.failed} failed, "
                      f"exit {row.code}", flush=True)
    top = levels[-1]
    text = markdown(rows, level_floors, slowest(work / f"{targets[0]}-{top}-w1", level_floors[top]), top)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# Levels × workers ({time.strftime('%Y-%m-%d %H:%M')})\n\n{text}", encoding="utf-8")
    print("\n" + text)
    print(f"results of every run: {work}; table: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
