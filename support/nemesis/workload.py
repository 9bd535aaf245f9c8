"""The client: a seeded, mixed workload through the backend's own doors (API and CLI), recorded as operations.

Each worker draws its operations from its own generator seeded by the schedule's seed, so a replay asks for
the same things in the same order (their timing follows the system's answers). The workload never asserts
and never injects a fault; it only records what it asked and what came back.

How many clients use IB at once stays below the pool's limit (two API workers, the CLI worker and the
resilience sampler): the contract lets a backend make callers wait for a free connection, so a workload
above the pool would turn the 5 s API bound into a claim about queueing rather than about faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from support.bars import LOADS
from support.contract import FINISHED, Cleanup, DataLoad, Discovery, Operation, ResilienceReport
from support.drivers.api import ApiDriver, ApiResponse
from support.drivers.cli import CliDriver
from support.nemesis.record import History, Op

#: Symbols the simulator knows (contract details and bars). Loads use the first four, the ranges of
#: :data:`support.bars.LOADS`, so the final read can be compared with what IB serves for the same range.
LOAD_SYMBOLS = ("AAPL", "MSFT", "IBM", "SPY")
LOAD_KINDS = ("daily", "hourly")

#: API operations and their weights.
API_MIX: tuple[tuple[str, float], ...] = (
    ("discover", 24), ("discover_cached", 8), ("load_sync", 7), ("load_async", 5), ("status", 8),
    ("health", 8), ("resilience", 8), ("config", 3), ("symbols", 3), ("discovered", 3), ("data_read", 5))
#: CLI commands and their weights.
CLI_MIX: tuple[tuple[str, float], ...] = (("ib status", 3), ("ib test", 3), ("data show", 2), ("data load", 2))


@dataclass(frozen=True)
class Pace:
    """How the workload is spread over time."""

    api_workers: int = 2
    think_s: tuple[float, float] = (0.15, 1.2)     # between one API operation and the next, per worker
    cli_every_s: tuple[float, float] = (5.0, 11.0)  # between CLI commands
    sample_every_s: float = 1.0                     # resilience reports of the sampler
    api_timeout_s: float = 20.0                     # the client's own patience (a longer wait is a timeout)
    load_timeout_s: float = 120.0
    cli_timeout_s: float = 60.0
    operation_poll_s: float = 0.5


class Client:
    """Makes API calls and CLI commands and records each as an :class:`Op` in the history."""

    def __init__(self, api: ApiDriver, cli: CliDriver, history: History, pace: Pace):
        self.api, self.cli, self.history, self.pace = api, cli, history, pace

    def call(self, process: str, kind: str, call: Callable[[], ApiResponse], **detail: object) -> tuple[Op, ApiResponse]:
        """One HTTP call, recorded."""
        response = call()
        info = {**detail, "error_code": response.error_code, "path": response.path}
        if not response.ok and response.error_message:
            info["error"] = response.error_message[:300]
        if kind == "resilience" and (report := ResilienceReport.of(response)).score is not None:
            info["score"], info["pool_total"] = report.score, report.pool_total
        if kind in ("discover", "discover_cached"):
            info["found"] = Discovery.of(response).symbol_info is not None
        if kind in ("load_sync", "load_async"):
            load = DataLoad.of(response)
            info.update(load_status=load.status, fetched_bars=load.fetched_bars, operation_id=load.operation_id)
        if kind == "cleanup":
            info["connections_closed"] = Cleanup.of(response).connections_closed
        op = Op(process, kind, response.started_mono, response.finished_mono, response.ok, response.status,
                response.timed_out, info)
        return self.history.add_op(op), response

    def command(self, process: str, args: Sequence[str], **detail: object) -> Op:
        """One CLI command to its end (bounded), recorded with its transcript."""
        run = self.cli.run(list(args), timeout_s=self.pace.cli_timeout_s)
        op = Op(process, "cli:" + " ".join(args[:2]), run.started_mono, run.finished_mono,
                run.exit_code == 0 and not run.timed_out, run.exit_code, run.timed_out,
                {**detail, "argv": list(args), "output": run.output[-4000:]})
        return self.history.add_op(op)

    def operation_until_done(self, process: str, operation_id: str, started: float, stop: threading.Event,
                             **detail: object) -> Op:
        """Poll an asynchronous operation until it ends (bounded by the load patience); record its life as one
        ``operation`` op (its polls are recorded as ``operation_poll``)."""
        deadline = started + self.pace.load_timeout_s
        last = Operation(None, 0.0, 0, None, None)
        while time.monotonic() < deadline:
            _, response = self.call(process, "operation_poll", lambda: self.api.operation(operation_id))
            last = Operation.of(response)
            if last.status in FINISHED:
                break
            # The poll's pacing, bounded by the deadline (the run's stop does not cut an operation short).
            threading.Event().wait(min(self.pace.operation_poll_s, max(0.0, deadline - time.monotonic())))
        done = last.status in FINISHED
        op = Op(process, "operation", started, time.monotonic(), done and last.status == "completed",
                200 if done else None, not done, {**detail, "operation_id": operation_id, "op_status": last.status,
                                                  "fetched_bars": last.fetched_bars})
        return self.history.add_op(op)


def loads_asked(seed: int) -> list[tuple[str, str]]:
    """Every (symbol, load kind) a workload of ``seed`` may ask for (the final read checks these)."""
    return [(symbol, kind) for symbol in LOAD_SYMBOLS for kind in LOAD_KINDS]


class Workload:
    """The workers: ``api_workers`` API clients, one CLI client and a resilience sampler, each on a thread.

    Args:
        seed: the schedule's seed (each worker's generator is derived from it).
        client: records what they do.
        symbols: symbols for discoveries.
        pace: timing.
    """

    def __init__(self, seed: int, client: Client, symbols: Sequence[str], pace: Pace = Pace()):
        self.seed, self.client, self.symbols, self.pace = seed, client, tuple(symbols), pace
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.loaded: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every worker."""
        workers: list[tuple[str, Callable[[], None]]] = [
            (f"api-{n}", lambda n=n: self._api_worker(n)) for n in range(1, self.pace.api_workers + 1)]
        workers += [("cli", self._cli_worker), ("sampler", self._sampler)]
        for name, target in workers:
            thread = threading.Thread(target=self._guarded, args=(name, target), name=f"nemesis-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def finish(self, within_s: float) -> list[str]:
        """Tell every worker to stop and wait (bounded) for their current operation; return the stragglers."""
        self.stop.set()
        deadline = time.monotonic() + within_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self._threads if t.is_alive()]

    def _guarded(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception as exc:  # a worker's own crash is recorded, never silent
            self.client.history.note(f"worker {name} stopped: {exc!r}")

    # ------------------------------------------------------------------ workers

    def _pause(self, rng: random.Random, bounds: tuple[float, float]) -> bool:
        """Think time (the stop event ends it early); False once the run stops."""
        return not self.stop.wait(rng.uniform(*bounds))

    def _api_worker(self, number: int) -> None:
        rng = random.Random(self.seed * 1009 + number)
        kinds, weights = zip(*API_MIX, strict=False)
        process = f"api-{number}"
        while not self.stop.is_set():
            self.run_api_op(process, rng.choices(kinds, weights)[0], rng)
            if not self._pause(rng, self.pace.think_s):
                return

    def run_api_op(self, process: str, kind: str, rng: random.Random) -> None:
        """One API operation of ``kind`` (arguments drawn from ``rng``)."""
        api, client = self.client.api, self.client
        symbol = rng.choice(self.symbols)
        if kind == "discover":
            client.call(process, kind, lambda: api.discover(symbol, force_refresh=True), symbol=symbol)
        elif kind == "discover_cached":
            client.call(process, kind, lambda: api.discover(symbol, force_refresh=False), symbol=symbol)
        elif kind in ("load_sync", "load_async"):
            load_symbol, load_kind = rng.choice(LOAD_SYMBOLS), rng.choice(LOAD_KINDS)
            timeframe, first, last, _ = LOADS[load_kind]
            with self._lock:
                self.loaded.add((load_symbol, load_kind))
            body = {"mode": "full", "start_date": first, "end_date": last}
            op, response = client.call(process, kind, lambda: api.load_data(
                load_symbol, timeframe, async_mode=kind == "load_async", timeout_s=self.pace.load_timeout_s
                if kind == "load_sync" else self.pace.api_timeout_s, **body), symbol=load_symbol, load=load_kind)
            operation_id = op.detail.get("operation_id")
            if kind == "load_async" and op.ok and operation_id:
                client.operation_until_done(process, str(operation_id), op.end, self.stop, symbol=load_symbol,
                                            load=load_kind)
        elif kind == "data_read":
            load_symbol, load_kind = rng.choice(LOAD_SYMBOLS), rng.choice(LOAD_KINDS)
            client.call(process, kind, lambda: api.cached_data(load_symbol, LOADS[load_kind][0]))
        else:
            call = {"status": api.ib_status, "health": api.ib_health, "resilience": api.resilience,
                    "config": api.ib_config, "symbols": api.symbols, "discovered": api.discovered}[kind]
            client.call(process, kind, call)

    def _cli_worker(self) -> None:
        rng = random.Random(self.seed * 1009 + 97)
        commands, weights = zip(*CLI_MIX, strict=False)
        while self._pause(rng, self.pace.cli_every_s):
            command = rng.choices(commands, weights)[0]
            symbol = rng.choice(LOAD_SYMBOLS)
            if command == "ib status":
                args = ["ib", "status", "-f", "json"]
            elif command == "ib test":
                args = ["ib", "test", "-s", symbol]
            elif command == "data show":
                args = ["data", "show", symbol, "-t", "1d", "-r", "5"]
            else:
                timeframe, first, last, _ = LOADS["daily"]
                with self._lock:
                    self.loaded.add((symbol, "daily"))
                args = ["data", "load", symbol, "-t", timeframe, "-m", "full", "--start", first, "--end", last,
                        "--no-progress"]
            self.client.command("cli", args)

    def _sampler(self) -> None:
        api = self.client.api
        while not self.stop.is_set():
            started = time.monotonic()
            self.client.call("sampler", "resilience", api.resilience)
            if self.stop.wait(max(0.0, self.pace.sample_every_s - (time.monotonic() - started))):
                return
