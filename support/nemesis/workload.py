"""The client: a seeded, mixed workload through the backend's own doors (API and CLI), every exchange and command
recorded by the drivers into the run's history.

Each worker draws its operations from its own generator seeded by the schedule's seed, so a replay asks for
the same things in the same order (their timing follows the system's answers). The workload never asserts
and never injects a fault; its drivers record what it asked and what came back.

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
from support.contract import FINISHED, DataLoad, Operation
from support.drivers.api import ApiDriver
from support.drivers.cli import CliDriver, CliRun
from support.nemesis.record import RunNotes

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
    """The workload's doors to the backend: an API driver and a CLI driver that record every exchange and every
    command into the run's history; the client itself keeps nothing.

    Args:
        notes: where a worker's own trouble is noted (the run's facts).
    """

    def __init__(self, api: ApiDriver, cli: CliDriver, notes: RunNotes, pace: Pace):
        self.api, self.cli, self.notes, self.pace = api, cli, notes, pace

    def command(self, args: Sequence[str]) -> CliRun:
        """One CLI command to its end (bounded); the driver records it."""
        return self.cli.run(list(args), timeout_s=self.pace.cli_timeout_s)

    def operation_until_done(self, operation_id: str, started: float) -> Operation:
        """Poll an asynchronous operation until it ends (bounded by the load patience; the run's stop does not
        cut an operation short); every poll is an exchange of the history."""
        deadline = started + self.pace.load_timeout_s
        last = Operation(None, 0.0, 0, None, None)
        pause = threading.Event()
        while time.monotonic() < deadline:
            last = Operation.of(self.api.operation(operation_id))
            if last.status in FINISHED:
                break
            pause.wait(min(self.pace.operation_poll_s, max(0.0, deadline - time.monotonic())))  # the poll's pacing
        return last


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
            self.client.notes.note(f"worker {name} stopped: {exc!r}")

    # ------------------------------------------------------------------ workers

    def _pause(self, rng: random.Random, bounds: tuple[float, float]) -> bool:
        """Think time (the stop event ends it early); False once the run stops."""
        return not self.stop.wait(rng.uniform(*bounds))

    def _api_worker(self, number: int) -> None:
        rng = random.Random(self.seed * 1009 + number)
        kinds, weights = zip(*API_MIX, strict=False)
        while not self.stop.is_set():
            self.run_api_op(rng.choices(kinds, weights)[0], rng)
            if not self._pause(rng, self.pace.think_s):
                return

    def run_api_op(self, kind: str, rng: random.Random) -> None:
        """One API operation of ``kind`` (arguments drawn from ``rng``; the draws are the same whatever the
        answers, so a replay asks the same things in the same order)."""
        api = self.client.api
        symbol = rng.choice(self.symbols)
        if kind == "discover":
            api.discover(symbol, force_refresh=True)
        elif kind == "discover_cached":
            api.discover(symbol, force_refresh=False)
        elif kind in ("load_sync", "load_async"):
            load_symbol, load_kind = rng.choice(LOAD_SYMBOLS), rng.choice(LOAD_KINDS)
            timeframe, first, last, _ = LOADS[load_kind]
            with self._lock:
                self.loaded.add((load_symbol, load_kind))
            body = {"mode": "full", "start_date": first, "end_date": last}
            response = api.load_data(load_symbol, timeframe, async_mode=kind == "load_async",
                                     timeout_s=self.pace.load_timeout_s if kind == "load_sync" else self.pace.api_timeout_s,
                                     **body)
            operation_id = DataLoad.of(response).operation_id
            if kind == "load_async" and response.ok and operation_id:
                self.client.operation_until_done(str(operation_id), response.finished_mono)
        elif kind == "data_read":
            load_symbol, load_kind = rng.choice(LOAD_SYMBOLS), rng.choice(LOAD_KINDS)
            api.cached_data(load_symbol, LOADS[load_kind][0])
        else:
            call = {"status": api.ib_status, "health": api.ib_health, "resilience": api.resilience,
                    "config": api.ib_config, "symbols": api.symbols, "discovered": api.discovered}[kind]
            call()

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
            self.client.command(args)

    def _sampler(self) -> None:
        api = self.client.api
        while not self.stop.is_set():
            started = time.monotonic()
            api.resilience()
            if self.stop.wait(max(0.0, self.pace.sample_every_s - (time.monotonic() - started))):
                return
