"""``make flaky``: run a level N times on the clean reference and report failures per scenario.

Usage: python tests/mutants/flakiness.py [--runs 10] [--level standard]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from mutant_runs import ROOT, run_spec  # noqa: E402
from prove import LEVEL_TAGS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--level", choices=sorted(LEVEL_TAGS), default="standard")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "flakiness.md")
    args = parser.parse_args(argv)
    failures: collections.Counter[str] = collections.Counter()
    messages: dict[str, str] = {}
    times = []
    work = Path(tempfile.mkdtemp(prefix="flaky-"))
    total = 0
    for i in range(args.runs):
        run = run_spec(work / f"run-{i + 1}", tags=LEVEL_TAGS[args.level], timeout_s=1800)
        times.append(run.elapsed_s)
        total = max(total, len(run.outcomes))
        failed = [s for s, o in run.outcomes.items() if o.status == "failed"]
        for scenario in failed:
            failures[scenario] += 1
            messages[scenario] = f"{run.outcomes[scenario].step}: {run.outcomes[scenario].message[:300]}"
        print(f"run {i + 1}/{args.runs}: {len(run.outcomes)} scenarios, {len(failed)} failed, "
              f"{run.elapsed_s:.0f} s", flush=True)
    lines = [f"# Flakiness: {args.level} level, {args.runs} runs on the clean reference", "",
             f"Scenarios per run: {total}. Wall time per run: min {min(times):.0f} s, max {max(times):.0f} s.", "",
             f"Scenarios that failed at least once: {len(failures)}", ""]
    lines += [f"- {s}: {n}/{args.runs} — {messages[s]}" for s, n in failures.most_common()]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
