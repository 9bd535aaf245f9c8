"""One nemesis run: a fresh backend, the workload and the nemesis for the schedule's length, one history,
the checkers' verdicts, and the evidence written to a folder.

The run heals every fault and stops every thread it started, whatever happens (``finally``); every wait is
bounded; the only network it touches is the target's loopback addresses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ibtargets.common.control_client import ControlClient, ControlError
from support import bars
from support.contract import Discovery
from support.drivers.api import ApiDriver
from support.drivers.cli import CliDriver
from support.nemesis import invariants
from support.nemesis.injector import Nemesis
from support.nemesis.outcome import RunResult
from support.nemesis.record import History, Op
from support.nemesis.schedule import Schedule
from support.nemesis.workload import Client, Pace, Workload
from support.world import World

#: The final cleanup comes this long before the run's end, so the checker can see its connections close.
FINAL_CLEANUP_BEFORE_END_S = 8.0


class RunError(RuntimeError):
    """The run could not be made (the target did not come up healthy); no verdict was taken."""


def bounds_from(world: World) -> invariants.Bounds:
    """The checkers' bounds from the suite's settings (thresholds after the timeout multiplier, target profile)."""
    s = world.settings
    return invariants.Bounds(api_response_s=s.bound("API response").seconds, cli_command_s=s.bound("CLI").seconds,
                           load_s=s.bound_of(90.0, "a data load").seconds,
                           silent_detection_s=s.bound("silent-detection").seconds,
                           recovery_s=s.bound("recovery").seconds, score_min=s.thresholds.score_min,
                           pool_limit=s.profile.pool_limit, connect_s=s.bound("API response").seconds)


class _Collector:
    """Reads the simulator's and the proxy's records into the history as the run goes (so nothing is lost from
    their rings, however long the run)."""

    def __init__(self, world: World, history: History, every_s: float = 2.0):
        self.history, self.every_s = history, every_s
        self.records = {name: ControlClient(url) for name, url in
                        (("gateway", world.targets.gateway_control), ("proxy", world.targets.proxy_control)) if url}
        self.marks = {name: client.last_seq() for name, client in self.records.items()}
        self.stop = threading.Event()
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._loop, name="nemesis-collector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            self.poll()

    def poll(self) -> None:
        for name, client in self.records.items():
            try:
                events = client.history(self.marks[name])
            except ControlError as exc:
                self.errors.append(f"{name}: {exc}")
                continue
            if events:
                self.marks[name] = int(events[-1]["seq"])
                self.history.add_ib_events(name, events)

    def finish(self) -> None:
        """Stop polling and read what is left (once)."""
        if self.stop.is_set():
            return
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)
        self.poll()
        for client in self.records.values():
            client.close()


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
                 pace: Pace | None = None, log: Callable[[str], None] = lambda text: None) -> RunResult:
    """Run ``schedule`` against the world's targets; write the evidence to ``out_dir``; return the verdicts.

    Raises:
        RunError: the target was not healthy before the run.
    """
    pace = pace or Pace()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    schedule.write(out_dir / "schedule.json")
    started = time.monotonic()
    history = History(schedule)
    # The records are read from before the backend starts, so the connections it opens to get ready (and keeps
    # open into the run) are in the history too: the pool-limit and cleanup invariants judge them as well.
    collector = _Collector(world, history)
    try:
        prepare(world, fresh_backend)
    except BaseException:
        collector.finish()
        raise
    history.settings = dict(vars(bounds_from(world)))
    api = ApiDriver(world.targets.api_base_url, timeout_s=pace.api_timeout_s, load_timeout_s=pace.load_timeout_s)
    cli = CliDriver(world.cli.command, world.targets.api_base_url, api_pointing=world.settings.cli_api,
                    cwd=world.cli.cwd)
    client = Client(api, cli, history, pace)
    workload = Workload(schedule.seed, client, world.settings.symbols, pace)
    nemesis = Nemesis(world.targets.gateway_control, world.targets.proxy_control, world.ib, client, history,
                      world.settings.preferred_client_id)
    output_from = world.backend_output.position()
    history.origin = time.monotonic() + 0.2
    nemesis_thread = threading.Thread(target=nemesis.run, args=(schedule, history.origin), name="nemesis", daemon=True)
    clock = threading.Event()   # the run's own timeline: waits bounded by the schedule, cut short by an abort

    def until(offset_s: float) -> None:
        clock.wait(max(0.0, history.origin + offset_s - time.monotonic()))

    try:
        collector.start()
        workload.start()
        nemesis_thread.start()
        log(f"seed {schedule.seed}: {len(schedule.faults)} faults over {schedule.duration_s:.0f} s")
        until(schedule.last_heal_s)
        nemesis_thread.join(max(5.0, schedule.duration_s))
        for error in nemesis.heal_everything():
            history.note(f"final heal: {error}")
        history.final_heal = time.monotonic()
        _recover(client, history, world.settings.bound("recovery").seconds)
        until(schedule.duration_s - FINAL_CLEANUP_BEFORE_END_S)
        client.call("final", "cleanup", api.cleanup)
        until(schedule.duration_s)
    finally:
        nemesis.stop.set()
        errors = nemesis.heal_everything()
        stragglers = workload.finish(within_s=pace.cli_timeout_s + 10.0)
        nemesis_thread.join(5.0)
        nemesis.close()
        for error in errors:
            history.note(f"heal at the end: {error}")
        if stragglers:
            history.note(f"workers still busy at the end: {', '.join(stragglers)}")
        history.finished = time.monotonic()
        collector.finish()
    history.own_ports = set(world.ib.own_ports)
    _final_reads(world, client, history, workload.loaded)
    world.backend_output.settled()
    history.backend_output = world.backend_output.since(output_from)
    history.own_ports = set(world.ib.own_ports)
    for error in collector.errors[:5]:
        history.note(f"history collection: {error}")
    verdicts = invariants.check(history, bounds_from(world))
    result = RunResult(schedule, history, verdicts, out_dir, time.monotonic() - started)
    write_evidence(result)
    return result


def _recover(client: Client, history: History, recovery_s: float) -> None:
    """After the last heal: a discovery every half second until one succeeds (the recovery invariant's
    evidence), bounded by the recovery bound plus the API bound."""
    deadline = history.final_heal + recovery_s + 5.0
    pause = threading.Event()
    while time.monotonic() < deadline:
        op, _ = client.call("final", "discover", lambda: client.api.discover("MSFT", force_refresh=True),
                            symbol="MSFT")
        if op.ok and op.detail.get("found"):
            return
        pause.wait(0.5)  # the poll's pacing, bounded by the deadline


def _final_reads(world: World, client: Client, history: History, loaded: set[tuple[str, str]]) -> None:
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
        _compare_caches(world, client, history, loaded)
    finally:
        if gateway is not None:
            if saved is not None:
                gateway.update_config(pacing_enabled=saved)
            gateway.close()


def _compare_caches(world: World, client: Client, history: History, loaded: set[tuple[str, str]]) -> None:
    oracle_id = world.settings.squatter_client_id_base + 7
    for symbol, kind in sorted(loaded):
        timeframe, first, last, _ = bars.LOADS[kind]
        op, response = client.call("final", "data_read",
                                   lambda s=symbol, t=timeframe: client.api.cached_data(s, t))
        entry: dict[str, Any] = {"symbol": symbol, "kind": kind, "timeframe": timeframe, "cached": 0, "mismatches": []}
        if response.status == 404:
            history.cache.append(entry)
            continue
        if not response.ok:
            entry["error"] = f"the cache could not be read: {response.describe()}"
            history.cache.append(entry)
            continue
        try:
            body = response.data if isinstance(response.data, dict) and "dates" in response.data else response.body
            cached = [b for b in bars.from_cache(body, timeframe == "1d") if first <= b.key[:10] <= last]
            entry["cached"] = len(cached)
            wrong: list[str] = []
            for use_rth in (False, True):
                served = bars.oracle(world.ib, oracle_id, symbol, kind, use_rth)
                wrong = bars.mismatches(cached, served)
                if not wrong:
                    break
            entry["mismatches"] = wrong
        except (AssertionError, ValueError, TimeoutError, ConnectionError) as exc:
            entry["error"] = f"the final read failed: {exc}"
        history.cache.append(entry)


def write_evidence(result: RunResult) -> None:
    """``history.json``, ``verdicts.json``, ``timeline.png`` and ``report.md`` in the run's folder."""
    from support.nemesis import plot, report

    out = result.out_dir
    result.history.write(out / "history.json")
    (out / "verdicts.json").write_text(json.dumps(
        {f: {"ok": v.ok, "summary": v.summary, "exercised": v.exercised,
             "violations": [{"at_s": round(x.at - result.history.origin, 3), "text": x.text} for x in v.violations]}
         for f, v in result.verdicts.items()}, indent=2), encoding="utf-8")
    try:
        plot.write_png(result.history, result.verdicts, out / "timeline.png")
    except Exception as exc:  # a plot must never hide a verdict
        result.history.note(f"timeline plot failed: {exc!r}")
    (out / "report.md").write_text(report.run_markdown(result), encoding="utf-8")


__all__ = ["RunResult", "RunError", "run_schedule", "prepare", "bounds_from", "Op"]
