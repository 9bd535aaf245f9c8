"""Claims about the operator's command line (what a CLI run must show), and the few CLI interactions that take more
than one call. The convention is :mod:`support.verdict`'s, as in :mod:`support.claims`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from support import bars, claims, cli_reading
from support.checks import wire
from support.contract import needed
from support.drivers.cli import CliDriver, CliRun
from support.targets import free_port
from support.timeline import Window
from support.verdict import ComplaintFound, holds, require, require_within
from support.waiting import Bound, eventually
from support.world import World

_CANNOT_CONNECT = re.compile(r"(could not|couldn't|cannot|can't|unable to|failed to) connect|connection refused"
                             r"|is the (api|server|backend) running", re.IGNORECASE)
#: Sentences (not labels) that say how many connections were closed: "Closed 3 IB connection(s)", "3 connections
#: closed". A label with a value ("Connections closed: 3", a table row, JSON) is read by :mod:`support.cli_reading`.
_CLOSED_SAID = re.compile(r"\bclosed\s+(\d+)\b|\b(\d+)\s+(?:IB\s+)?connections?(?:\(s\))?\s+(?:were\s+)?closed",
                          re.IGNORECASE)
#: A sentence naming an operation ("Loading MSFT 1h, operation 5f2c..."); labelled IDs are read by meaning.
#: KTRDR prints "⚡ Started operation: op_data_load_20261207_073500_10d4a095". An ID holds a digit, "_" or "-", so
#: a word ("operation cancelled") is never taken for one.
_OPERATION_SAID = re.compile(r"\boperation(?:[ _]?id)?\W{1,4}((?=[\w-]*[\d_-])[A-Za-z0-9][\w-]{5,})", re.IGNORECASE)
_OPERATION_ID = re.compile(r"[A-Za-z0-9][\w-]{5,}")


def run_without_api(world: World, args: Sequence[str], timeout_s: float) -> CliRun:
    """Run a command while the API is down: the suite stops the backend it started, runs the command and
    starts the backend again; an external backend's CLI is pointed at a port nothing listens on (scenarios
    needing this are skipped when the CLI cannot be pointed: capability ``needs.api_outage``)."""
    if world.embedded is None:
        if not world.cli.can_be_pointed:
            raise RuntimeError("the CLI cannot be pointed elsewhere and the backend is not managed")
        return world.cli.run(args, timeout_s, api_base_url=f"http://127.0.0.1:{free_port()}")
    world.embedded.stop_backend()
    try:
        return world.cli.run(args, timeout_s)
    finally:
        world.restart_backend()


def run_concurrently(cli: CliDriver, args: Sequence[str], count: int, timeout_s: float) -> list[CliRun]:
    """The same command started ``count`` times at once."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: cli.run(args, timeout_s), range(count)))


def interrupt_once_fetching(world: World, args: Sequence[str], bound: Bound) -> CliRun:
    """Start a command, press Ctrl-C once the backend is fetching from IB, and wait (within ``bound``) for the end."""
    session = world.cli.spawn(args)
    try:
        if world.history.source:
            eventually(lambda: world.timeline.ib_events(request_type="reqHistoricalData"), bound,
                       "the backend has started fetching from IB")
        else:
            session.expect(r"(?i)(progress|running|loading|%)", bound.seconds)
    finally:
        session.interrupt()
    return session.finish(bound.seconds)


def succeeded(run: CliRun, bound: Bound) -> None:
    """Exit 0 within ``bound``."""
    require_within(not run.timed_out and run.elapsed_s <= bound.seconds,
                   f"took {run.elapsed_s:.1f} s > {bound}:\n{run.describe()}")
    require(run.exit_code == 0, f"expected exit 0:\n{run.describe()}")


def all_succeeded(runs: Sequence[CliRun], bound: Bound) -> None:
    """There were runs, and every one exited 0 within ``bound``."""
    require(runs, "no command was run")
    for run in runs:
        succeeded(run, bound)


def failed_clearly(run: CliRun, bound: Bound) -> None:
    """Non-zero exit within ``bound`` with a message and no traceback."""
    require_within(not run.timed_out and run.elapsed_s <= bound.seconds,
                   f"took {run.elapsed_s:.1f} s > {bound}:\n{run.describe()}")
    require(run.exit_code not in (0, None), f"expected a non-zero exit:\n{run.describe()}")
    require(run.output.strip() and "Traceback" not in run.output, f"expected a clear message:\n{run.describe()}")


def stopped_within(run: CliRun, bound: Bound) -> None:
    """The command ended (any exit) within ``bound``."""
    require_within(not run.timed_out and run.exit_code is not None and run.elapsed_s <= bound.seconds,
                   f"the command did not stop within {bound}:\n{run.describe()}")


def printed_no_complaint(runs: Sequence[CliRun]) -> None:
    """No run printed a warning, an un-awaited coroutine or a traceback."""
    noisy = {run.argv: run.warnings for run in runs if run.warnings}
    if noisy:
        raise ComplaintFound("the CLI printed:\n" + "\n".join(f"{' '.join(argv)}: {lines}" for argv, lines in noisy.items()))


def could_not_connect(run: CliRun) -> None:
    """Exit 1 with a message that the API could not be reached."""
    require(run.exit_code == 1 and says_cannot_connect(run.output),
            f"expected exit 1 and a could-not-connect message:\n{run.describe()}")


def output_changed(before: CliRun, after: CliRun) -> None:
    """Two runs of one command printed different things (the output follows the system's state)."""
    require(cli_reading.plain(before.output).split() != cli_reading.plain(after.output).split(),
            f"the same output before and after the fault:\n{after.describe()}")


def operation_cancelled(world: World, run: CliRun) -> None:
    """The operation the command printed ends up cancelled (within 10 s)."""
    operation_id = operation_id_in(run.output)
    require(operation_id, f"the CLI printed no operation ID:\n{run.describe()}")
    claims.operation_state(world, str(operation_id), ("cancelled",),
                           world.settings.bound_of(10.0, "a cancelled operation settling"))


def says_cannot_connect(text: str) -> bool:
    """Whether the output tells the operator the API could not be reached."""
    return bool(_CANNOT_CONNECT.search(cli_reading.plain(text)))


def score_in(text: str) -> float | None:
    """The resilience score a CLI printed, read by its label in any layout (None if it printed none)."""
    return cli_reading.number_of(text, ("resilience", "score"))


def operation_id_in(text: str) -> str | None:
    """The operation ID a CLI printed: labelled ("Operation ID: …", JSON ``operation_id``) or in a sentence
    ("…, operation 5f2c…") (None if it printed none)."""
    labelled = cli_reading.value_of(text, ("operation", "id"))
    if labelled is not None:
        match = _OPERATION_ID.match(labelled.strip())
        return match.group(0) if match else None
    match = _OPERATION_SAID.search(cli_reading.plain(text))
    return match.group(1) if match else None


def closed_count_in(text: str) -> int | None:
    """The number of closed connections a cleanup printed: labelled ("Connections closed: 3", a table row, JSON
    ``connections_closed``) or in a sentence ("Closed 3 IB connection(s)") (None if it printed none)."""
    labelled = cli_reading.value_of(text, ("connections", "closed"))
    if labelled is not None:
        number = cli_reading.number_in(labelled)
        return int(number) if number is not None and number == int(number) else None
    match = _CLOSED_SAID.search(cli_reading.plain(text))
    return int(next(g for g in match.groups() if g is not None)) if match else None


def asked_ib(world: World, run: CliRun, request_type: str = "reqContractDetails") -> None:
    """The gateway received ``request_type`` from the backend while the command ran."""
    asked = world.timeline.ib_events("request", request_type, within=Window.of(run))
    require(asked, f"the gateway received no {request_type} from the backend while the command ran:\n{run.describe()}")


def each_asked_ib(world: World, runs: Sequence[CliRun], request_type: str = "reqContractDetails") -> None:
    """There were runs, and the gateway received ``request_type`` from the backend while each one ran."""
    require(runs, "no command was run")
    for run in runs:
        asked_ib(world, run, request_type)


def shows_live_score(world: World, run: CliRun) -> None:
    """The command printed the resilience score the API reports now."""
    state, response = claims.report(world)
    shown, actual = score_in(run.output), needed(state.score, "overall_resilience_score", response)
    said = "no resilience score (no label with the words 'resilience score' and a number)" if shown is None \
        else f"score {shown:g}"
    require(shown == actual, f"the CLI shows {said}, the API reports {actual:g}:\n{run.describe()}")


def reported_gateway_closes(world: World, run: CliRun) -> None:
    """The count of closed connections the command printed is the count the gateway saw close."""
    claims.closed_count_matches_gateway(world, closed_count_in(run.output), Window.of(run), run.describe())


def loaded_from_ib(world: World, run: CliRun) -> None:
    """A data load: the gateway received and answered historical-data requests while the command ran."""
    holds(wire.answered_between(world.history.events(), "reqHistoricalData", run.started_mono, run.finished_mono),
          run.describe())


#: What each command must have done, by its first two words.
def printed_cached_bars(world: World, run: CliRun, symbol: str, kind: str, rows: int) -> None:
    """The command printed the closes of the last ``rows`` bars the API has cached."""
    timeframe = bars.LOADS[kind][0]
    cached = claims.cached_bars(world, symbol, timeframe)
    require(len(cached) >= rows, f"only {len(cached)} {symbol} {timeframe} bars cached")
    numbers = {round(float(n), 2) for n in re.findall(r"-?\d+\.\d+", cli_reading.plain(run.output))}
    missing = [b.key for b in cached[-rows:] if round(b.ohlcv[3], 2) not in numbers]
    require(not missing, f"the CLI did not print the close of the cached bars {missing}:\n{run.describe()}")
