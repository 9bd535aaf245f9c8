"""``make flaky``: run a level N times on the clean reference and report failures per scenario.

Usage: python tests/mutants/flakiness.py [--runs 10] [--level standard] [--workers 4]

With ``--workers N`` (N > 1) each run is ``ib-resilience run --workers N`` (N stacks side by side, the
scenarios dealt out by the previous run's durations), so flakiness is measured at that speed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from mutant_runs import ROOT, Outcome, SpecRun, run_spec  # noqa: E402
from prove import LEVEL_TAGS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--level", choices=sorted(LEVEL_TAGS), default="standard")
    parser.add_argument("--workers", type=int, default=1,
                        help="behave processes per run, each with its own embedded stack (ib-resilience run --workers)")
    parser.add_argument("--durations", type=Path, default=ROOT / "reports",
                        help="with --workers: scenario durations for the first run (later runs use the run before)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "flakiness.md")
    args = parser.parse_args(argv)
    failures: collections.Counter[str] = collections.Counter()
    messages: dict[str, str] = {}
    times = []
    work = Path(tempfile.mkdtemp(prefix="flaky-"))
    total = 0
    for i in range(args.runs):
        if args.workers > 1:
            previous = work / f"run-{i}" if i else args.durations
            run = run_workers(work / f"run-{i + 1}", args.level, args.workers, previous)
        else:
            run = run_spec(work / f"run-{i + 1}", tags=LEVEL_TAGS[args.level], timeout_s=1800)
        times.append(run.elapsed_s)
        total = max(total, len(run.outcomes))
        failed = [s for s, o in run.outcomes.items() if o.status == "failed"]
        for scenario in failed:
            failures[scenario] += 1
            messages[scenario] = f"{run.outcomes[scenario].step}: {run.outcomes[scenario].message[:300]}"
        print(f"run {i + 1}/{args.runs}: {len(run.outcomes)} scenarios, {len(failed)} failed, "
              f"{run.elapsed_s:.0f} s", flush=True)
    spread = f", {args.workers} workers per run" if args.workers > 1 else ""
    lines = [f"# Flakiness: {args.level} level, {args.runs} runs on the clean reference{spread}", "",
             f"Scenarios per run: {total}. Wall time per run: min {min(times):.0f} s, "
             f"median {sorted(times)[len(times) // 2]:.0f} s, max {max(times):.0f} s.", "",
             f"Scenarios that failed at least once: {len(failures)}", ""]
    lines += [f"- {s}: {n}/{args.runs} — {messages[s]}" for s, n in failures.most_common()]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 1 if failures else 0


def run_workers(out_dir: Path, level: str, workers: int, durations: Path) -> SpecRun:
    """One ``ib-resilience run --workers N`` into ``out_dir``; outcomes read back from its merged Allure results."""
    import subprocess
    import time

    from ibreport.results import load_results
    from ibresilience.runner import RUN_TIMEOUT_S

    command = [sys.executable, "-m", "ibresilience.main", "run", "--level", level, "--workers", str(workers),
               "--reports-dir", str(out_dir), "--durations", str(durations)]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S[level] + 60)
        code, output = done.returncode, done.stdout[-6000:] + done.stderr[-4000:]
    except subprocess.TimeoutExpired:
        code, output = 124, "timed out"
    elapsed_s = time.monotonic() - started
    outcomes = {}
    try:
        scenarios = load_results(out_dir / "allure-results").scenarios
    except FileNotFoundError:
        scenarios = ()
    for s in scenarios:
        status = "failed" if s.status in ("failed", "broken") else s.status
        outcomes[s.name] = Outcome(s.name, status, s.failing_step, s.message)
    if code != 0 and not any(o.status == "failed" for o in outcomes.values()):
        outcomes["(the run itself)"] = Outcome("(the run itself)", "failed", "", f"exit {code}: {output[-300:]}")
    return SpecRun(outcomes, code, elapsed_s, output)


if __name__ == "__main__":
    sys.exit(main())
