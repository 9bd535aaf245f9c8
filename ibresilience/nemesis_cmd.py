"""``ib-resilience nemesis``: seeded fault schedules against the embedded (or managed) targets, recorded into one
run history and judged by the checkers of ``support/checks``, a written schedule and history for every run, and
shrinking of a failure to a minimal schedule.

Examples::

    ib-resilience nemesis --minutes 5 --seed 7                 # one schedule
    ib-resilience nemesis --minutes 5 --seed 1 --seeds 10      # seeds 1..10, every one run
    ib-resilience nemesis --minutes 3 --seed 1 --hunt-minutes 10   # seeds 1, 2, … until one fails or 10 min pass
    ib-resilience nemesis --replay reports/nemesis/…/schedule.json  # (or a run's history.json)
    ib-resilience nemesis --judge reports/nemesis/…/seed-7     # judge a written history again, nothing rerun

Exit status: 0 no verdict failed in any run (pass or not exercised); 1 a run failed (its seed, schedule file and,
unless ``--no-shrink``, the minimal schedule are printed and written to the report); 2 bad options or a target
that did not come up; 130/143 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from ibtargets.common.control_server import OneLineArgumentParser
from support.settings import Settings, SettingsError

DESCRIPTION = ("Seeded fault schedules over both planes against the embedded (or managed) targets, the checkers of "
               "support/checks over each run's history, a schedule and a history file per run, shrinking of a failure "
               "to a minimal schedule.")
EPILOG = "\n".join(__doc__.split("\n\n", 1)[1].splitlines()).strip()


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="ib-resilience nemesis", description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="length of each generated schedule (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds to run (default 1)")
    parser.add_argument("--hunt-minutes", type=float, default=0.0,
                        help="run consecutive seeds until one fails or this many minutes have passed")
    parser.add_argument("--replay", type=Path,
                        help="run the schedule in this file (a schedule.json, or a run's history.json)")
    parser.add_argument("--judge", type=Path, metavar="RUN_DIR",
                        help="judge a run's written history (RUN_DIR/history.json) again and print the verdicts; "
                             "nothing is started or rerun")
    parser.add_argument("--no-shrink", action="store_true", help="do not shrink a failing schedule")
    parser.add_argument("--shrink-runs", type=int, default=40, help="most reruns spent shrinking (default 40)")
    parser.add_argument("--shrink-minutes", type=float, default=60.0, help="most minutes spent shrinking (default 60)")
    parser.add_argument("--shrink-tries", type=int, default=1,
                        help="runs of a candidate before it counts as passing (default 1; 2 for racy bugs)")
    parser.add_argument("--out", type=Path, help="folder for the evidence (default reports/nemesis/<time>)")
    parser.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the suite (docs/backend-authors.md, Settings), e.g. -D backend_command=…")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.seeds < 1 or args.shrink_runs < 0 or args.hunt_minutes < 0 or args.shrink_tries < 1:
        parser.error("--minutes must be > 0, --seeds and --shrink-tries ≥ 1, --shrink-runs and --hunt-minutes ≥ 0")
    if args.replay is not None and not args.replay.is_file():
        parser.error(f"--replay: no such file: {args.replay}")
    if args.judge is not None:
        return _judge(args.judge)
    defines = {}
    for pair in args.defines:
        name, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"-D {pair}: expected NAME=VALUE")
        defines[name.strip()] = value
    try:
        settings = Settings.from_userdata(defines)
    except SettingsError as exc:
        print(f"ib-resilience nemesis: {exc}", file=sys.stderr)
        return 2
    if not settings.embedded:
        print("ib-resilience nemesis: needs a target the suite starts (embedded or managed): it restarts the "
              "backend before every schedule and faults both planes", file=sys.stderr)
        return 2
    out = args.out or settings.reports_dir / "nemesis" / time.strftime("%Y%m%d-%H%M%S")
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM,)}
    signal.signal(signal.SIGTERM, _abort)
    try:
        return _run(args, settings, Path(out))
    except KeyboardInterrupt as exc:
        print(f"ib-resilience nemesis: stopped ({exc or 'SIGINT'}); faults healed, servers stopped", file=sys.stderr)
        return 143 if "SIGTERM" in str(exc) else 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _abort(signum, _frame):
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def say(text: str) -> None:
    print(text, flush=True)


def _judge(folder: Path) -> int:
    """The verdicts of a written run, taken again (exit 0 none failed, 1 one failed, 2 no such history)."""
    from support.nemesis.runner import HISTORY_FILE, judge_again

    try:
        result = judge_again(folder)
    except (OSError, ValueError, KeyError) as exc:
        print(f"ib-resilience nemesis: --judge: cannot read {Path(folder) / HISTORY_FILE}: {exc}", file=sys.stderr)
        return 2
    say(("PASS" if result.ok else "FAIL") + f" seed {result.schedule.seed} judged again from {folder}\n"
        + result.summary())
    for family in result.failed:
        say(result.explain(family))
    return 0 if result.ok else 1


def _schedule_of(path: Path):
    """The schedule of a schedule file, or of a run's written history."""
    import json

    from support.nemesis.record import read_history
    from support.nemesis.schedule import Schedule

    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "nemesis" in data:
        return read_history(path)[1].schedule
    return Schedule.from_json(data)


def _run(args: argparse.Namespace, settings: Settings, out: Path) -> int:
    from ibtargets.common.ibclient import use as use_ib_library
    from support.nemesis import report
    from support.nemesis.runner import RunError, run_schedule
    from support.nemesis.schedule import generate
    from support.nemesis.shrink import shrink
    from support.observer import Observer
    from support.run_history import RunHistory
    from support.targets import EmbeddedTargets
    from support.world import World

    use_ib_library(settings.ib_library)
    for name in ("ib_insync", "ib_async"):  # the squatters' and the oracle's own IB chatter (326, pacing) is noise
        logging.getLogger(name).setLevel(logging.CRITICAL)
    out.mkdir(parents=True, exist_ok=True)
    if args.replay is not None:
        try:
            replayed = _schedule_of(args.replay)
        except (OSError, ValueError, KeyError) as exc:
            print(f"ib-resilience nemesis: --replay: {args.replay} holds no schedule: {exc}", file=sys.stderr)
            return 2
    history = RunHistory()  # the whole command's one history; each run judges its own window of it
    embedded = EmbeddedTargets(settings, out / "logs", history)
    world = observer = None
    started = time.monotonic()
    runs, shrunk, found_after_s = [], None, None
    try:
        targets = embedded.start()
        world = World(settings, targets, embedded, run_history=history)
        observer = Observer(history, Path(targets.backend_log) if targets.backend_log else None,
                            history.serving_url, settings.bound("API response", extra_s=5.0).seconds,
                            services=tuple((name, Path(path)) for name, path in targets.service_logs)).start()
        world.ib.ensure_paper_account(settings.squatter_client_id_base,
                                       settings.bound_of(10.0, "the account check").seconds)
        if args.replay is not None:
            schedules = iter([replayed])
        else:
            count = 10_000 if args.hunt_minutes else args.seeds
            schedules = (generate(seed, args.minutes * 60.0) for seed in range(args.seed, args.seed + count))
        for schedule in schedules:
            if args.hunt_minutes and runs and time.monotonic() - started + schedule.duration_s > args.hunt_minutes * 60:
                say(f"hunt: {args.hunt_minutes:g} min spent without a failure")
                break
            folder = out / (f"replay-seed-{schedule.seed}" if args.replay else f"seed-{schedule.seed}")
            say(f"seed {schedule.seed}: {len(schedule.faults)} fault(s) over {schedule.duration_s:.0f} s → {folder}")
            result = run_schedule(world, schedule, folder, fresh_backend=bool(runs), log=say,  # the first: just started
                                  observer=observer)
            runs.append(result)
            say(("PASS" if result.ok else "FAIL") + f" seed {schedule.seed} in {result.elapsed_s:.0f} s "
                f"({(time.monotonic() - started) / 60:.1f} min since the start)\n{result.summary()}")
            if not result.ok:
                found_after_s = found_after_s or time.monotonic() - started
                say(f"seed {schedule.seed} FAILED {', '.join(result.failed)}; schedule: {folder / 'schedule.json'}; "
                    f"replay: ib-resilience nemesis --replay {folder / 'schedule.json'}")
                if args.hunt_minutes or args.replay:
                    break
        failing = next((r for r in runs if not r.ok), None)
        if failing is not None and not args.no_shrink:
            say(f"shrinking seed {failing.schedule.seed} ({len(failing.schedule.faults)} faults) while it still "
                f"fails {', '.join(failing.failed)} …")
            shrunk = shrink(failing, lambda s, label: run_schedule(world, s, failing.out_dir / label, observer=observer),
                            max_runs=args.shrink_runs, budget_s=args.shrink_minutes * 60.0, log=say,
                            tries=args.shrink_tries)
            minimal = shrunk.minimal
            minimal.schedule.write(out / f"minimal-seed-{failing.schedule.seed}.json")
            say(f"minimal schedule ({len(minimal.schedule.faults)} fault(s), {shrunk.runs} reruns): "
                f"{out / f'minimal-seed-{failing.schedule.seed}.json'}\n{minimal.schedule.describe()}")
    except RunError as exc:
        print(f"ib-resilience nemesis: {exc}", file=sys.stderr)
        return 2
    finally:
        if world is not None:
            try:
                world.faults.heal_all()
            except Exception as exc:  # the servers are stopped next anyway
                print(f"ib-resilience nemesis: healing at the end failed: {exc}", file=sys.stderr)
        if observer is not None:
            observer.stop()
        if world is not None:
            world.close()
        embedded.stop()
        if runs:
            title = "Nemesis: replay" if args.replay else f"Nemesis: seeds from {args.seed}, {args.minutes:g} min each"
            (out / "report.md").write_text(report.hunt_markdown(runs, shrunk, time.monotonic() - started, title,
                                                                found_after_s), encoding="utf-8")
            report.write_json_summary(out / "summary.json", runs, shrunk, found_after_s)
            say(f"report: {out / 'report.md'}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
