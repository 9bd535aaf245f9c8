"""``ib-resilience judge``: the run-wide invariants over a run's recorded history again, without rerunning anything."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from support.checks import run_wide
from support.run_evidence import HISTORY_FILE, invariant_records, read_history
from support.verdict import FAIL


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(prog="ib-resilience judge",
                                     description="Judge a run's recorded history (history.json.gz) again with this "
                                                 "version's run-wide invariants; exit 1 if one is broken.")
    parser.add_argument("history", type=Path, help=f"a reports folder (its {HISTORY_FILE}) or the file itself")
    parser.add_argument("--only", action="append", default=[], metavar="KEY",
                        help="only this invariant (repeatable): " + ", ".join(i.key for i in run_wide.INVARIANTS))
    parser.add_argument("--json", type=Path, help="also write the verdicts as run-invariants.json records here")
    parser.add_argument("--violations", type=int, default=5, help="violations shown per broken invariant (5)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Judge the history; print one line per invariant and the first violations of a broken one."""
    args = build_parser().parse_args(argv)
    path = args.history / HISTORY_FILE if args.history.is_dir() else args.history
    unknown = [key for key in args.only if key not in run_wide.BY_KEY]
    if unknown:
        print(f"ib-resilience judge: unknown invariant(s) {', '.join(unknown)}; known: "
              + ", ".join(run_wide.BY_KEY), file=sys.stderr)
        return 2
    try:
        window, limits = read_history(path)
    except (OSError, ValueError, KeyError) as exc:
        print(f"ib-resilience judge: cannot read a run history from {path}: {exc}", file=sys.stderr)
        return 2
    judged = run_wide.judge(window, limits, tuple(args.only) or None)
    for j in judged:
        print(f"{j.verdict.status.upper():13} {j.invariant.key:16} {j.verdict.message}")
        if j.verdict.status == FAIL:
            for v in j.verdict.violations[:args.violations]:
                print(f"{'':14}{v.at_mono - window.start_mono:9.2f} s  {v.text[:300]}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(invariant_records(judged, window), indent=2), encoding="utf-8")
    return 1 if any(j.verdict.status == FAIL for j in judged) else 0


if __name__ == "__main__":
    sys.exit(main())
