"""``make prove``: run every mutant against the scenarios of its bug class; print and save the kill matrix.

Usage: python tests/mutants/prove.py [--out reports/kill_matrix.md] [--level standard] [MUTANT ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from mutant_catalog import MUTANTS  # noqa: E402
from mutant_runs import ROOT, SpecRun, run_spec  # noqa: E402

LEVEL_TAGS = {"basic": "@basic", "standard": "(@basic or @standard)", "exhaustive": "(@basic or @standard or @exhaustive)"}


def matrix_markdown(clean: SpecRun, runs: dict[str, SpecRun]) -> str:
    """Scenario × mutant table: ✗ = killed (scenario failed), · = survived, blank = not run."""
    scenarios = sorted(set(clean.outcomes) | {s for run in runs.values() for s in run.outcomes})
    names = list(runs)
    lines = ["# Kill matrix", "",
             "Rows: scenarios of the specification. Columns: the clean reference, then each seeded bug",
             "(tests/mutants/mutant_catalog.py). ✗ = the scenario failed (bug caught), · = passed, blank = not run.", "",
             "| scenario | clean | " + " | ".join(f"{i + 1}" for i in range(len(names))) + " |",
             "|---|---|" + "---|" * len(names)]
    for scenario in scenarios:
        clean_outcome = clean.outcomes.get(scenario)
        cells = ["pass" if clean_outcome and clean_outcome.status == "passed"
                 else (clean_outcome.status if clean_outcome else "")]
        for name in names:
            outcome = runs[name].outcomes.get(scenario)
            cells.append("" if outcome is None or outcome.status == "skipped"
                         else ("✗" if outcome.status == "failed" else "·"))
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += ["", "| # | mutant | bug | killed by | run time |", "|---|---|---|---|---|"]
    for i, name in enumerate(names):
        mutant = next(m for m in MUTANTS if m.name == name)
        killers = [s for s, o in runs[name].outcomes.items() if o.status == "failed"]
        lines.append(f"| {i + 1} | `{name}` | {mutant.bug} | {len(killers)} scenario(s) | {runs[name].elapsed_s:.0f} s |")
    survivors = [name for name in names if not any(o.status == "failed" for o in runs[name].outcomes.values())]
    never_killed = [s for s in scenarios if not any(run.outcomes.get(s) and run.outcomes[s].status == "failed"
                                                    for run in runs.values())]
    clean_failures = [s for s, o in clean.outcomes.items() if o.status == "failed"]
    lines += ["", f"Mutants killed: {len(names) - len(survivors)} of {len(names)}"
              + (f" (survivors: {', '.join(survivors)})" if survivors else ""),
              f"Clean reference: {sum(o.status == 'passed' for o in clean.outcomes.values())} passed, "
              f"{len(clean_failures)} failed" + (f" ({', '.join(clean_failures)})" if clean_failures else ""),
              f"Scenarios no mutant here kills ({len(never_killed)}): they guard bugs outside this catalogue.", ""]
    lines += [f"- {s}" for s in never_killed]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", nargs="*", help="only these mutants (default: all)")
    parser.add_argument("--level", choices=sorted(LEVEL_TAGS), default="standard")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "kill_matrix.md")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.mutants or m.name in args.mutants]
    union = " or ".join(f"({m.tags})" for m in chosen)
    work = Path(tempfile.mkdtemp(prefix="prove-"))
    print(f"clean reference against {union} ...", flush=True)
    clean = run_spec(work / "clean", tags=f"{LEVEL_TAGS[args.level]} and ({union})")
    runs: dict[str, SpecRun] = {}
    for mutant in chosen:
        runs[mutant.name] = run = run_spec(work / mutant.name, tags=f"{LEVEL_TAGS[args.level]} and ({mutant.tags})",
                                           mutant=mutant.name)
        killed = sum(o.status == "failed" for o in run.outcomes.values())
        ran = sum(o.status != "skipped" for o in run.outcomes.values())
        print(f"{mutant.name:<36} killed by {killed:>2} of {ran:>2} scenarios ({run.elapsed_s:.0f} s)", flush=True)
    text = matrix_markdown(clean, runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {args.out}")
    survivors = [n for n, r in runs.items() if not any(o.status == "failed" for o in r.outcomes.values())]
    clean_failed = any(o.status == "failed" for o in clean.outcomes.values())
    return 1 if survivors or clean_failed else 0


if __name__ == "__main__":
    sys.exit(main())
