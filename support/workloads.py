"""Workloads: bounded bursts and sequences of API calls (they never assert and never inject faults)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .drivers.api import ApiDriver, ApiResponse

SYMBOLS = ("AAPL", "MSFT", "IBM", "SPY")


def symbol(i: int) -> str:
    """The i-th symbol of the rotation."""
    return SYMBOLS[i % len(SYMBOLS)]


def discover_sequentially(api: ApiDriver, count: int) -> list[ApiResponse]:
    """``count`` discoveries one after another (each forcing a trip to IB)."""
    return [api.discover(symbol(i)) for i in range(count)]


def discover_concurrently(api: ApiDriver, count: int) -> list[ApiResponse]:
    """``count`` discoveries started at the same moment."""
    return api.concurrently([lambda i=i: api.discover(symbol(i)) for i in range(count)], max_workers=count)


def discover_and_cleanup(api: ApiDriver, cycles: int) -> list[ApiResponse]:
    """Rapid create/destroy: a discovery, then a pool cleanup, ``cycles`` times."""
    out: list[ApiResponse] = []
    for i in range(cycles):
        out.append(api.discover(symbol(i)))
        out.append(api.cleanup())
    return out


def mixed_calls(api: ApiDriver, count: int) -> list[Callable[[], ApiResponse]]:
    """A realistic mix: health, status, resilience, discovery (cached and forced), data reads and loads."""
    kinds: list[Callable[[int], ApiResponse]] = [
        lambda i: api.health(),
        lambda i: api.ib_status(),
        lambda i: api.resilience(),
        lambda i: api.discover(symbol(i), force_refresh=False),
        lambda i: api.discover(symbol(i), force_refresh=True),
        lambda i: api.ib_health(),
        lambda i: api.symbols(),
        lambda i: api.discovered(),
    ]
    calls = [lambda i=i: kinds[i % len(kinds)](i) for i in range(count)]
    # Two real data loads in every 40 calls, on different symbols (no pacing trouble).
    for i in range(0, count, 40):
        calls[i] = lambda i=i: api.load_data(symbol(i // 40), "1d", mode="tail")
    return calls


def run_mixed(api: ApiDriver, count: int, workers: int = 5,
              every: int = 0, between: Callable[[int], None] | None = None) -> list[ApiResponse]:
    """``count`` mixed calls on ``workers`` threads; ``between(n)`` runs after each block of ``every``."""
    calls = mixed_calls(api, count)
    out: list[ApiResponse] = []
    block = every or count
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, count, block):
            out += list(pool.map(lambda call: call(), calls[start:start + block]))
            if between is not None and start + block < count:
                between(start + block)
    return out


def burst(api: ApiDriver, count: int) -> list[ApiResponse]:
    """``count`` mixed calls all at once."""
    return api.concurrently(mixed_calls(api, count), max_workers=count)
