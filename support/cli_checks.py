"""What a CLI transcript must show, and the few CLI interactions that take more than one call."""

from __future__ import annotations

import re
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from .drivers.cli import CliDriver, CliRun
from .waiting import eventually
from .world import World

_CANNOT_CONNECT = re.compile(r"(could not|couldn't|cannot|can't|unable to|failed to) connect|connection refused"
                             r"|is the (api|server|backend) running", re.IGNORECASE)
_SCORE = re.compile(r"(?:resilience[_ ]score|overall_resilience_score)\W{0,6}(\d+(?:\.\d+)?)", re.IGNORECASE)
_OPERATION = re.compile(r"operation(?:[ _]?id)?\W{1,4}([A-Za-z0-9][\w-]{5,})", re.IGNORECASE)


def unused_api_url() -> str:
    """The URL of a loopback port nothing listens on (taken from the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


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
