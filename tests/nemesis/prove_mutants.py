"""``make nemesis-prove``: the bugs only overlapping faults show survive the standard level and are found by the
nemesis within its hunt time, then shrunk; the results in ``reports/nemesis/prove.md``.

Usage: python tests/nemesis/prove_mutants.py [--hunt-minutes 10] [--minutes 3] [--seed 1] [--skip-standard]
       [--out reports/nemesis/prove] [MUTANT ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "mutants")]

from mutant_catalog import NEMESIS_MUTANTS  # noqa: E402
from mutant_runs import mutant_command, run_spec  # noqa: E402

STANDARD = "@basic or @standard"


def hunt(name: str, out: Path, args: argparse.Namespace) -> dict:
    """``ib-resilience nemesis --hunt-minutes`` against the mutant; the summary it wrote, plus the time taken."""
    command = [sys.executable, "-m", "ibresilience.main", "nemesis", "--minutes", str(args.minutes), "--seed", str(args.seed),
               "--hunt-minutes", str(args.hunt_minutes), "--shrink-runs", str(args.shrink_runs),
               "--shrink-tries", str(args.shrink_tries), "--shrink-minutes", str(args.shrink_minutes),
               "--out", str(out), "-D", f"backend_command={mutant_command(name)}", "-D", f"cli={mutant_command(name)}"]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=(args.hunt_minutes + 120) * 60)
    (out / "console.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {"runs": []}
    found = next((r for r in summary["runs"] if not r["ok"]), None)
    found_after_s = summary.get("found_after_s")  # from the hunt's start (servers started) to the failing verdict
    return {"mutant": name, "exit": done.returncode, "found": found, "found_after_s": found_after_s,
            "minimal": summary.get("minimal"), "elapsed_s": round(time.monotonic() - started, 1), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", nargs="*", help="only these (default: every mutant of NEMESIS_MUTANTS)")
    parser.add_argument("--hunt-minutes", type=float, default=10.0)
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each schedule of the hunt")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shrink-runs", type=int, default=30)
    parser.add_argument("--shrink-tries", type=int, default=2, help="runs of a candidate before it counts as passing")
    parser.add_argument("--shrink-minutes", type=float, default=30.0, help="most minutes spent shrinking one failure")
    parser.add_argument("--skip-standard", action="store_true", help="do not run the standard level first")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "nemesis" / "prove")
    args = parser.parse_args(argv)
    chosen = [m for m in NEMESIS_MUTANTS if not args.mutants or m.name in args.mutants]
    args.out.mkdir(parents=True, exist_ok=True)
    rows, ok = [], True
    for mutant in chosen:
        row: dict = {"mutant": mutant.name, "bug": mutant.bug}
        if not args.skip_standard:
            run = run_spec(args.out / mutant.name / "standard", tags=STANDARD, mutant=mutant.name, timeout_s=1800)
            failed = sorted(s for s, o in run.outcomes.items() if o.status == "failed")
            row["standard"] = {"passed": sum(o.status == "passed" for o in run.outcomes.values()), "failed": failed,
                               "elapsed_s": round(run.elapsed_s)}
            print(f"{mutant.name}: standard level {row['standard']['passed']} passed, {len(failed)} failed "
                  f"{failed if failed else ''}", flush=True)
            ok &= not failed
        row.update(hunt(mutant.name, args.out / mutant.name / "hunt", args))
        minimal = row.get("minimal") or {}
        faults = (minimal.get("schedule") or {}).get("faults", [])
        found = f"after {row['found_after_s']:.0f} s" if row["found"] else "NOT found"
        where = f", seed {row['found']['seed']}, {row['found']['failed']}" if row["found"] else ""
        print(f"{mutant.name}: found {found}{where}; "
              f"minimal schedule {len(faults)} fault(s)", flush=True)
        ok &= bool(row["found"]) and row["found_after_s"] <= args.hunt_minutes * 60 and 0 < len(faults) <= 3
        rows.append(row)
    (args.out / "prove.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    (args.out / "prove.md").write_text(markdown(rows, args), encoding="utf-8")
    print(f"written to {args.out / 'prove.md'}")
    return 0 if ok else 1


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    lines = ["# Bugs only overlapping faults show: survived by the standard level, found by the nemesis", "",
             f"Hunt: schedules of {args.minutes:g} min from seed {args.seed}, at most {args.hunt_minutes:g} min; "
             "then shrinking.", "",
             "| mutant | standard level | found after | seed | invariant | minimal schedule |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        std = row.get("standard")
        std_text = "not run" if std is None else (f"{std['passed']} passed, {len(std['failed'])} failed")
        found = row.get("found")
        minimal = (row.get("minimal") or {}).get("schedule") or {}
        faults = "; ".join(f"{f['kind']} {f['params'] or ''} at {f['start_s']:.1f} s"
                           + (f" for {f['duration_s']:.1f} s" if f["duration_s"] else "")
                           for f in minimal.get("faults", []))
        lines.append(f"| `{row['mutant']}` | {std_text} | "
                     f"{'%.1f min' % (row['found_after_s'] / 60) if found else 'not found'} | "
                     f"{found['seed'] if found else ''} | {', '.join(found['failed']) if found else ''} | "
                     f"{len(minimal.get('faults', []))} fault(s): {faults} |")
    lines += [""] + [f"- `{row['mutant']}`: {row['bug']}. Evidence: `{row['out']}` (report.md, the minimal "
                     "schedule's timeline.png)." for row in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
