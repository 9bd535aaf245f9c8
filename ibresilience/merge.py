"""``ib-resilience report --merge DIR...``: one Allure HTML and one Markdown summary from shard result folders.

Each DIR is what one ``ib-resilience run`` wrote (its ``--reports-dir``: ``allure-results/`` and ``junit/``), or
an ``allure-results`` folder itself. Allure merges result folders natively (every scenario result, container
and attachment has a unique file name), so the scenario files are copied side by side; the run's own files are
merged: ``environment.properties`` (a value the shards disagree on, such as their ports, is kept per shard),
JUnit (one testsuite per feature), the level, the wall time (the slowest shard, since shards run side by side)
and the exit code (the first shard's failure). The run-wide invariants each shard judged (its Allure results under
"Run-wide invariants" with their ``run-invariants.json`` records) are kept as that shard's verdicts, named after
it (``… (shard 2/3)``): in the Allure results, in ``run-invariants.json`` and in ``junit/TESTS-run_invariants.xml``
of the output; the report combines them (failed if any shard's failed). Each shard's run history (``history.json.gz``,
its workers' too) is copied to ``shards/<n>/`` of the output, where the report reads it (what state an earlier
scenario left, the gateway's record). The folders are only read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ib-resilience report",
                                     description="Render the reports of results written elsewhere (CI shards).")
    parser.add_argument("--merge", nargs="+", type=Path, required=True, metavar="DIR",
                        help="result folders of the shards (each a run's --reports-dir, or its allure-results)")
    parser.add_argument("--out", type=Path, default=Path("reports") / "merged",
                        help="where the merged results and the reports go (default: ./reports/merged)")
    parser.add_argument("--level", choices=("basic", "standard", "exhaustive"),
                        help="the level (default: what the shards recorded)")
    parser.add_argument("--no-html", action="store_true", help="only the Markdown summary (no Allure HTML)")
    return parser


def _results_of(folder: Path) -> Path:
    """A shard's Allure results folder."""
    return folder / "allure-results" if (folder / "allure-results").is_dir() else folder


def _junit_of(folder: Path) -> Path:
    """A shard's JUnit folder (next to its allure-results when given that)."""
    for candidate in (folder / "junit", folder.parent / "junit" if folder.name == "allure-results" else None):
        if candidate is not None and candidate.is_dir():
            return candidate
    return folder / "junit"


def merge(folders: list[Path], out: Path, level: str | None = None) -> tuple[str, float, int | None, list[str], int]:
    """Merge the shards' results into ``out``; return level, wall time, exit code, run arguments and the number
    of scenario results. The run's record is :func:`merged_record`'s.

    Raises:
        ValueError: a folder holds no results, the same folder is given twice, or the levels differ.
    """
    from ibreport.results import read_properties
    from ibreport.summary import read_run_record, write_allure_metadata
    from ibresilience import parallel

    seen: set[Path] = set()
    for folder in folders:
        results = _results_of(folder).resolve()
        if not results.is_dir():
            raise ValueError(f"{folder}: no such folder")
        if not any(results.glob("*-result.json")):
            raise ValueError(f"{folder}: no scenario results there (a run's --reports-dir, or its allure-results "
                             "folder, holds *-result.json files)")
        if results in seen:
            raise ValueError(f"{folder} is given twice (its scenarios would count twice)")
        if results == (out / "allure-results").resolve():
            raise ValueError(f"{folder} is the output folder itself; choose another --out")
        seen.add(results)
    results_out = out / "allure-results"
    results_out.mkdir(parents=True, exist_ok=True)
    for stale in results_out.iterdir():
        if stale.is_file():
            stale.unlink()
    records, documents, judged, copied = [], [], [], 0
    for index, folder in enumerate(folders, 1):
        results = _results_of(folder)
        copied += parallel.copy_results(results, results_out)
        records.append(read_run_record(results) or {})
        documents.append(read_properties(results / "environment.properties"))
        judged += _shard_invariants(results, results_out, documents[-1].get("run.shard", ""), index)
    parallel.merge_junit([_junit_of(folder) for folder in folders], out / "junit")
    _copy_histories(folders, out)
    levels = {str(r.get("level")) for r in records if r.get("level")} | \
        {d["run.level"] for d in documents if d.get("run.level")}
    if level is None:
        if len(levels) > 1:
            raise ValueError(f"the shards ran different levels ({', '.join(sorted(levels))}); say which with --level")
        level = next(iter(levels), "standard")
    properties = parallel.merge_properties(documents)
    shards = [d.get("run.shard", "") for d in documents]
    properties["run.shards"] = ", ".join(s or "whole" for s in shards)
    write_allure_metadata(results_out, properties)
    elapsed = max([float(r.get("elapsed_s") or 0.0) for r in records] or [0.0])
    _write_invariants(out, judged, elapsed)
    codes = [r.get("return_code") for r in records]
    code = next((c for c in codes if c not in (0, None)), 0 if any(c == 0 for c in codes) else None)
    argv = next((list(r["argv"]) for r in records if r.get("argv")), ["--level", level])
    _warn_missing_shards(shards)
    _warn_duplicates(results_out)
    scenarios = copied - len(judged)  # the invariants' results are not scenarios
    return level, elapsed, code, parallel.strip_options(argv, (*parallel.RUN_MECHANICS, "--reports-dir")), scenarios


def _copy_histories(folders: list[Path], out: Path) -> None:
    """Each shard's run histories (its own and its workers') to ``out/shards/<n>/``, as the report looks for them
    (``ibreport.causes.history_files``); the previous merge's copies go first."""
    import shutil

    from ibreport.causes import history_files

    shutil.rmtree(out / "shards", ignore_errors=True)
    for index, folder in enumerate(folders, 1):
        reports = folder.parent if folder.name == "allure-results" and not (folder / "allure-results").is_dir() \
            else folder
        for path in history_files(reports):
            target = out / "shards" / str(index) / path.relative_to(reports)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _shard_invariants(results: Path, results_out: Path, shard: str, index: int) -> list[dict]:
    """One shard's run-wide invariants as records named after the shard (``shard 2/3``, or ``shard 2/3 w1`` when
    several of its workers judged; ``run 2`` for a whole run), their copied Allure results renamed alike so that
    no two shards' verdicts share a name or an Allure history."""
    import json

    from ibreport.results import load_invariants, record_name
    from support.checks.run_wide import INVARIANTS
    from support.run_evidence import FEATURE

    order = {invariant.key: index for index, invariant in enumerate(INVARIANTS)}
    judged = sorted(load_invariants(results), key=lambda item: (order.get(item[1].key, len(order)), item[1].worker))
    label = f"shard {shard}" if shard else f"run {index}"
    several = len({invariant.worker for _, invariant in judged}) > 1
    out = []
    for path, invariant in judged:
        worker = f"{label} {invariant.worker}" if several and invariant.worker else label
        copy = results_out / path.name
        try:
            raw = json.loads(copy.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        name = record_name(invariant.title, worker)
        raw.update(name=name, fullName=f"{FEATURE}: {name}", historyId=f"run-invariant-{invariant.key}-{worker}")
        copy.write_text(json.dumps(raw), encoding="utf-8")
        out.append(invariant.to_record(worker))
    return out


def _write_invariants(out: Path, records: list[dict], elapsed_s: float) -> None:
    """The shards' invariants: ``run-invariants.json`` and ``junit/TESTS-run_invariants.xml`` of the output (none
    when no shard judged any: the merged report then says they were not judged)."""
    import json

    from support.run_evidence import INVARIANTS_FILE, JUNIT_FILE, write_junit

    path = out / INVARIANTS_FILE
    if not records:
        path.unlink(missing_ok=True)
        (out / "junit" / JUNIT_FILE).unlink(missing_ok=True)
        return
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    write_junit(out / "junit", records, elapsed_s)


def _warn_duplicates(results: Path) -> None:
    """Say so when a scenario has results from more than one shard (the shards' partitions differed)."""
    from collections import Counter

    from ibresilience.parallel import allure_scenario_results

    seen: Counter[str] = Counter()
    for raw, location in allure_scenario_results(results):
        seen[f"{location} {raw.get('name', '')}"] += 1
    twice = [name for name, n in seen.items() if n > 1]
    if twice:
        print(f"ib-resilience: warning: {len(twice)} scenario(s) ran in more than one shard (shards computed "
              f"different partitions: give every shard the same --durations), e.g. {twice[0]}", file=sys.stderr)


def _warn_missing_shards(shards: list[str]) -> None:
    """Say so when the shards given are not every part of one partition."""
    from ibresilience.parallel import parse_shard

    parts = []
    for shard in shards:
        try:
            parts.append(parse_shard(shard))
        except ValueError:
            return  # a whole run among them: nothing to check
    counts = {n for _, n in parts}
    if len(counts) != 1:
        print(f"ib-resilience: warning: the shards come from different partitions ({', '.join(shards)})",
              file=sys.stderr)
        return
    n = counts.pop()
    missing = sorted(set(range(1, n + 1)) - {i for i, _ in parts})
    if missing:
        print(f"ib-resilience: warning: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing: the merged "
              "report covers only part of the level", file=sys.stderr)


def merged_record(folders: list[Path], out: Path, level: str, elapsed_s: float, code: int | None):
    """The merged run's record: the merged Allure results, with what the shards' own records say (their selection
    — so a scenario no shard ran counts as not run —, an interruption, behave's exit codes). A shard without a
    record (an older run) leaves the selection unknown: then only the results count."""
    from ibreport.record import Interruption, Selected, build_record, read_record
    from ibreport.results import load_results

    shards = [read_record(folder if (folder / "allure-results").is_dir() else folder.parent) for folder in folders]
    known = all(shard is not None for shard in shards)
    selected, seen = [], set()
    for shard in shards if known else []:
        for outcome in shard.scenarios:
            if outcome.key not in seen:
                seen.add(outcome.key)
                selected.append(Selected(outcome.location, outcome.name, outcome.feature))
    interrupted = next((Interruption(s.interrupted.by, s.interrupted.after_s) for s in shards
                        if s is not None and s.interrupted is not None), None)
    names = next((s.names for s in shards if s is not None and s.names), ())
    return build_record(load_results(out / "allure-results"), level, elapsed_s, selected if known else None,
                        interrupted, code, names=names)


def main(argv: list[str] | None = None) -> int:
    """Merge the shards' results, render the reports; exit code, console lines, JUnit, Markdown and Allure
    metadata from one record of the merged run (``ibreport.record``)."""
    from ibreport.record import rewrite_junit, write_record
    from ibreport.summary import render_reports
    from ibresilience import parallel

    args = build_parser().parse_args(argv)
    try:
        level, elapsed, code, run_argv, count = merge(args.merge, args.out, args.level)
    except (ValueError, OSError) as exc:
        print(f"ib-resilience: {exc}", file=sys.stderr)
        return 2
    print(f"ib-resilience: merged {count} scenario result(s) from {len(args.merge)} folder(s) into {args.out}",
          flush=True)
    parallel.remember_durations(args.out, parallel.read_durations(args.out))
    record = merged_record(args.merge, args.out, level, elapsed, code)
    rewrite_junit(record, args.out / "junit")
    write_record(record, args.out)
    html = not args.no_html and record.interrupted is None and bool(record.scenarios)
    if html:
        print("ib-resilience: rendering the Allure HTML report (about 15 s)…", flush=True)
    render_reports(args.out, level, elapsed, html=html, run_argv=run_argv, record=record)
    for line in record.console_lines():
        print(line, flush=True)
    return record.exit_code
