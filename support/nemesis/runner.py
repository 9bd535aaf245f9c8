"""One nemesis run: a fresh backend, the workload and the nemesis for the schedule's length, recorded into the
world's run history; its window judged by the checkers of :mod:`support.checks`; the evidence written to a folder.

The run heals every fault and stops every thread it started, whatever happens (``finally``); every wait is
bounded; the only network it touches is the target's loopback addresses. It keeps no record of its own: the
workload's drivers record into the run history, the injector records its fault windows there, the observer (or a
sync at the end) reads what the gateway, the proxy and the backend's output hold.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ibtargets.common.control_client import ControlClient
from support import bars
from support.checks.cache import CacheRead
from support.checks.limits import Limits
from support.contract import Discovery
from support.drivers.api import ApiDriver
from support.drivers.cli import CliDriver
from support.nemesis import judge
from support.nemesis.injector import Nemesis
from support.nemesis.outcome import RunResult
from support.nemesis.record import RunNotes, read_history, write_history
from support.nemesis.schedule import Schedule
from support.nemesis.workload import Client, Pace, Workload
from support.observer import Observer
from support.world import World

#: The final cleanup comes this long before the run's end, so the checker can see its connections close.
FINAL_CLEANUP_BEFORE_END_S = 8.0
#: The evidence files of a run's folder.
HISTORY_FILE, VERDICTS_FILE = "history.json", "verdicts.json"


class RunError(RuntimeError):
    """The run could not be made (the target did not come up healthy); no verdict was taken."""


def prepare(world: World, fresh_backend: bool) -> None:
    """Every fault healed, no squatter, the simulator's pacing record clean, and (embedded or managed) a
    freshly started backend; then the API and a discovery must work.

    Raises:
        RunError: the target did not come up healthy within the recovery bound twice over.
    """
    world.faults.heal_all()
    world.ib.release_all()
    if fresh_backend and world.embedded is not None:
        world.restart_backend()
    deadline = time.monotonic() + world.settings.bound_of(30.0, "a healthy target before a run").seconds
    last = ""
    pause = threading.Event()
    while time.monotonic() < deadline:
        response = world.api.discover("AAPL", force_refresh=True)
        if response.ok and Discovery.of(response).symbol_info:
            return
        last = response.describe()
        pause.wait(0.5)  # the poll's pacing, bounded by the deadline
    raise RunError(f"the backend does not serve a discovery before the run: {last}")


def run_schedule(world: World, schedule: Schedule, out_dir: Path, fresh_backend: bool = True,
                 pace: Pace | None = None, log: Callable[[str], None] = lambda text: None,
                 observer: Observer | None = None) -> RunResult:
    """Run ``schedule`` against the world's targets; write the evidence to ``out_dir``; return the verdicts.

    Args:
        observer: the run's observer (it reads the backend's output and samples its liveness); without one the
            history is synced with the IB records at the end, and the backend's output is not judged.

    Raises:
        RunError: the target was not healthy before the run.
    """
    pace = pace or Pace()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    schedule.write(out_dir / "schedule.json")
    started = time.monotonic()
    history = world.run_history
    notes = RunNotes(schedule)
    prepare(world, fresh_backend)
    limits = Limits.from_settings(world.settings)
    api = ApiDriver(world.targets.api_base_url, timeout_s=pace.api_timeout_s, load_timeout_s=pace.load_timeout_s,
                    record=history.add_exchange)
    cli = CliDriver(world.cli.command, world.targets.api_base_url, api_pointing=world.settings.cli_api,
                    cwd=world.cli.cwd, on_record=history.add_cli_run)
    client = Client(api, cli, notes, pace)
    workload = Workload(schedule.seed, client, world.settings.symbols, pace)
    nemesis = Nemesis(world.targets.gateway_control, world.targets.proxy_control, world.ib, client, history, notes,
                      world.settings.preferred_client_id)
    notes.origin_mono = origin = time.monotonic() + 0.2
    nemesis_thread = threading.Thread(target=nemesis.run, args=(schedule, origin), name="nemesis", daemon=True)
    clock = threading.Event()   # the run's own timeline: waits bounded by the schedule, cut short by an abort

    def until(offset_s: float) -> None:
        clock.wait(max(0.0, origin + offset_s - time.monotonic()))

    try:
        workload.start()
        nemesis_thread.start()
        log(f"seed {schedule.seed}: {len(schedule.faults)} faults over {schedule.duration_s:.0f} s")
        until(schedule.last_heal_s)
        nemesis_thread.join(max(5.0, schedule.duration_s))
        for error in nemesis.heal_everything():
            notes.note(f"final heal: {error}")
        notes.final_heal_mono = time.monotonic()
        _recover(api, notes.final_heal_mono, world.settings.bound("recovery").seconds)
        until(schedule.duration_s - FINAL_CLEANUP_BEFORE_END_S)
        api.cleanup()
        until(schedule.duration_s)
    finally:
        nemesis.stop.set()
        errors = nemesis.heal_everything()
        stragglers = workload.finish(within_s=pace.cli_timeout_s + 10.0)
        nemesis_thread.join(5.0)
        nemesis.close()
        for error in errors:
            notes.note(f"heal at the end: {error}")
        if stragglers:
            notes.note(f"workers still busy at the end: {', '.join(stragglers)}")
    _final_reads(world, api, notes, workload.loaded)
    world.backend_output.settled()
    finished = time.monotonic()
    errors_before = len(history.errors)
    if observer is not None:
        observer.sync()
    else:
        history.sync()
        notes.note("no observer: the backend's output and its liveness samples are not in this history")
    for error in history.errors[errors_before:][:5]:
        notes.note(f"history sync: {error}")
    window = history.window(origin, finished)
    run = notes.frozen(finished)
    result = RunResult(window, run, judge.judge(window, run, limits), out_dir, time.monotonic() - started, limits)
    write_evidence(result)
    return result


def judge_again(folder: Path) -> RunResult:
    """A run's verdicts taken again from its written history (``history.json``: the window, the nemesis's facts and
    the limits it was judged by), without rerunning anything."""
    folder = Path(folder)
    window, run, limits = read_history(folder / HISTORY_FILE)
    return RunResult(window, run, judge.judge(window, run, limits), folder, 0.0, limits)


def _recover(api: ApiDriver, healed_mono: float, recovery_s: float) -> None:
    """After the last heal: a discovery every half second until one succeeds (the recovery verdict's evidence),
    bounded by the recovery bound plus the API bound."""
    deadline = healed_mono + recovery_s + 5.0
    pause = threading.Event()
    while time.monotonic() < deadline:
        if Discovery.of(api.discover("MSFT", force_refresh=True)).symbol_info is not None:
            return
        pause.wait(0.5)  # the poll's pacing, bounded by the deadline


def _final_reads(world: World, api: ApiDriver, notes: RunNotes, loaded: set[tuple[str, str]]) -> None:
    """Jepsen's final read: each series the workload loaded, as cached, against what IB serves for its range.

    The simulator's pacing is switched off while the suite asks it (the oracle is not the system under test:
    a 162 answered to the suite's own request would read as "IB served no bars") and restored after.
    """
    gateway = ControlClient(world.targets.gateway_control) if world.targets.gateway_control else None
    saved = None
    try:
        if gateway is not None:
            saved = gateway.config().get("pacing_enabled")
            gateway.update_config(pacing_enabled=False)
        notes.reads_mono = time.monotonic()
        notes.cache.extend(_compare_caches(world, api, loaded))
    finally:
        if gateway is not None:
            if saved is not None:
                gateway.update_config(pacing_enabled=saved)
            gateway.close()


def _compare_caches(world: World, api: ApiDriver, loaded: set[tuple[str, str]]) -> list[CacheRead]:
    oracle_id = world.settings.squatter_client_id_base + 7
    reads = []
    for symbol, kind in sorted(loaded):
        timeframe, first, last, _ = bars.LOADS[kind]
        response = api.cached_data(symbol, timeframe)
        if response.status == 404:
            reads.append(CacheRead(symbol, kind, timeframe))
            continue
        if not response.ok:
            reads.append(CacheRead(symbol, kind, timeframe, error=f"the cache could not be read: {response.describe()}"))
            continue
        try:
            body = response.data if isinstance(response.data, dict) and "dates" in response.data else response.body
            cached = [b for b in bars.from_cache(body, timeframe == "1d") if first <= b.key[:10] <= last]
            wrong: list[str] = []
            for use_rth in (False, True):
                served = bars.oracle(world.ib, oracle_id, symbol, kind, use_rth)
                wrong = bars.mismatches(cached, served)
                if not wrong:
                    break
            reads.append(CacheRead(symbol, kind, timeframe, len(cached), tuple(wrong)))
        except (AssertionError, ValueError, TimeoutError, ConnectionError) as exc:
            reads.append(CacheRead(symbol, kind, timeframe, error=f"the final read failed: {exc}"))
    return reads


def write_evidence(result: RunResult) -> None:
    """``history.json`` (the window, the nemesis's facts, the limits), ``verdicts.json``, ``timeline.png`` and
    ``report.md`` in the run's folder."""
    from support.nemesis import plot, report

    out = result.out_dir
    write_history(out / HISTORY_FILE, result.window, result.run, result.limits)
    (out / VERDICTS_FILE).write_text(json.dumps(verdicts_json(result), indent=2), encoding="utf-8")
    try:
        plot.write_png(result, out / "timeline.png")
    except Exception as exc:  # a plot must never hide a verdict
        (out / "timeline-error.txt").write_text(f"timeline plot failed: {exc!r}\n", encoding="utf-8")
    (out / "report.md").write_text(report.run_markdown(result), encoding="utf-8")


def verdicts_json(result: RunResult) -> dict:
    """The verdicts as JSON values (times of violations in seconds from the schedule's start)."""
    origin = result.run.origin_mono
    return {family: {"title": judge.title(family), "status": v.status, "message": v.message, "exercised": v.exercised,
                     "violations": [{"at_s": round(x.at_mono - origin, 3), "text": x.text} for x in v.violations[:200]],
                     "violation_count": len(v.violations)}
            for family, v in result.verdicts.items()}


__all__ = ["RunResult", "RunError", "run_schedule", "judge_again", "prepare", "write_evidence"]
