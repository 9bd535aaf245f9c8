"""What a CLI transcript must show, and the few CLI interactions that take more than one call."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from support import bars, checkers, claims
from support.drivers.cli import CliDriver, CliRun
from support.targets import free_port
from support.waiting import eventually
from support.world import World

_CANNOT_CONNECT = re.compile(r"(could not|couldn't|cannot|can't|unable to|failed to) connect|connection refused"
                             r"|is the (api|server|backend) running", re.IGNORECASE)
_SCORE = re.compile(r"(?:resilience[_ ]score|overall_resilience_score)\W{0,6}(\d+(?:\.\d+)?)", re.IGNORECASE)
_CLOSED = re.compile(r"closed\W{0,3}(\d+)|(\d+)\s+(?:IB\s+)?connections?\W{0,3}closed|connections_closed\W{0,4}(\d+)",
                     re.IGNORECASE)
_OPERATION = re.compile(r"operation(?:[ _]?id)?\W{1,4}([A-Za-z0-9][\w-]{5,})", re.IGNORECASE)


def run_without_api(world: World, args: Sequence[str], timeout_s: float) -> CliRun:
    """Run a command while the API is down: the suite stops the backend it started, runs the command and
    starts the backend again; an external backend's CLI is pointed at a port nothing listens on (scenarios
    needing this are skipped when the CLI cannot be pointed: capability ``needs.api_outage``)."""
    if world.embedded is None:
        assert world.cli.can_be_pointed, "the CLI cannot be pointed elsewhere and the backend is not managed"
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


def interrupt_once_fetching(world: World, args: Sequence[str], bound_s: float) -> CliRun:
    """Start a command, press Ctrl-C once the backend is fetching from IB, and wait for the end."""
    session = world.cli.spawn(args)
    try:
        if world.history.source:
            eventually(lambda: any(e.type == "reqHistoricalData" for e in world.history.events()), bound_s,
                       "the backend has started fetching from IB")
        else:
            session.expect(r"(?i)(progress|running|loading|%)", bound_s)
    finally:
        session.interrupt()
    return session.finish(world.settings.scaled(bound_s))


def succeeded(run: CliRun, bound_s: float) -> None:
    """Exit 0 within ``bound_s``."""
    assert run.exit_code == 0 and not run.timed_out, f"expected exit 0:\n{run.describe()}"
    assert run.elapsed_s <= bound_s, f"took {run.elapsed_s:.1f} s > {bound_s:.0f} s:\n{run.describe()}"


def failed_clearly(run: CliRun, bound_s: float) -> None:
    """Non-zero exit within ``bound_s`` with a message and no traceback."""
    assert not run.timed_out and run.exit_code not in (0, None), f"expected a non-zero exit:\n{run.describe()}"
    assert run.elapsed_s <= bound_s, f"took {run.elapsed_s:.1f} s > {bound_s:.0f} s:\n{run.describe()}"
    assert run.output.strip() and "Traceback" not in run.output, f"expected a clear message:\n{run.describe()}"


def says_cannot_connect(text: str) -> bool:
    """Whether the output tells the operator the API could not be reached."""
    return bool(_CANNOT_CONNECT.search(text))


def score_in(text: str) -> str | None:
    """The resilience score a CLI printed (None if it printed none)."""
    match = _SCORE.search(text)
    return match.group(1) if match else None


def operation_id_in(text: str) -> str | None:
    """The operation ID a CLI printed (None if it printed none)."""
    match = _OPERATION.search(text)
    return match.group(1) if match else None


def closed_count_in(text: str) -> int | None:
    """The number of closed connections a cleanup printed (None if it printed none)."""
    match = _CLOSED.search(text)
    return int(next(g for g in match.groups() if g is not None)) if match else None


def asked_ib(world: World, run: CliRun, request_type: str = "reqContractDetails") -> None:
    """The gateway received ``request_type`` from the backend while the command ran."""
    asked = checkers.requests_between(world.history.events(), request_type, run.started_mono, run.finished_mono)
    assert asked, f"the gateway received no {request_type} from the backend while the command ran:\n{run.describe()}"


def shows_live_score(world: World, run: CliRun) -> None:
    """The command printed the resilience score the API reports now."""
    shown, actual = score_in(run.output), claims.resilience_value(world, "overall_resilience_score")
    assert shown is not None and float(shown) == float(actual), \
        f"the CLI shows score {shown}, the API reports {actual}:\n{run.describe()}"


def reported_gateway_closes(world: World, run: CliRun) -> None:
    """The count of closed connections the command printed is the count the gateway saw close."""
    claims.closed_count_matches_gateway(world, closed_count_in(run.output), run.started_mono, run.finished_mono,
                                        run.describe())


def loaded_from_ib(world: World, run: CliRun) -> None:
    """A data load: the gateway received and answered historical-data requests while the command ran."""
    verdict = checkers.answered_between(world.history.events(), "reqHistoricalData", run.started_mono, run.finished_mono)
    assert verdict, f"{verdict.message}\n{run.describe()}"


#: What each command must have done, by its first two words.
JOBS = {"ib test": asked_ib, "ib status": shows_live_score, "ib cleanup": reported_gateway_closes,
        "data load": loaded_from_ib}


def did_its_job(world: World, run: CliRun) -> None:
    """The command did what its name says (judged from what IB saw or the API reports)."""
    words = " ".join(world.cli.arguments(run)[:2])
    assert words in JOBS, f"no judge for {words!r}; known: {', '.join(JOBS)}"
    JOBS[words](world, run)


def printed_cached_bars(world: World, run: CliRun, symbol: str, kind: str, rows: int) -> None:
    """The command printed the closes of the last ``rows`` bars the API has cached."""
    timeframe = bars.LOADS[kind][0]
    cached = claims.cached_bars(world, symbol, timeframe)
    assert len(cached) >= rows, f"only {len(cached)} {symbol} {timeframe} bars cached"
    numbers = {round(float(n), 2) for n in re.findall(r"-?\d+\.\d+", run.output)}
    missing = [b.key for b in cached[-rows:] if round(b.ohlcv[3], 2) not in numbers]
    assert not missing, f"the CLI did not print the close of the cached bars {missing}:\n{run.describe()}"
