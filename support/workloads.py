"""Workloads: bounded bursts and sequences of API calls (they never assert and never inject faults)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor

from support.drivers.api import ApiDriver, ApiResponse


def discover_sequentially(api: ApiDriver, symbols: Sequence[str]) -> list[ApiResponse]:
    """One discovery per symbol, one after another (each forcing a trip to IB)."""
    return [api.discover(symbol) for symbol in symbols]


def discover_concurrently(api: ApiDriver, symbols: Sequence[str]) -> list[ApiResponse]:
    """One discovery per symbol, all started at the same moment."""
    return api.concurrently([lambda s=s: api.discover(s) for s in symbols], max_workers=len(symbols))


def discover_and_cleanup(api: ApiDriver, symbols: Sequence[str]) -> list[ApiResponse]:
    """Rapid create/destroy: a discovery, then a pool cleanup, once per symbol."""
    out: list[ApiResponse] = []
    for symbol_name in symbols:
        out.append(api.discover(symbol_name))
        out.append(api.cleanup())
    return out


def mixed_calls(api: ApiDriver, count: int, symbols: Sequence[str],
                lacks: Collection[str] = ()) -> list[Callable[[], ApiResponse]]:
    """A realistic mix: health, status, resilience, discovery (cached and forced), data reads and loads; of what the
    backend provides (``lacks``: the capabilities its profile says it lacks, support/capabilities.py)."""
    def symbol(i: int) -> str:
        return symbols[i % len(symbols)]
    kinds: list[Callable[[int], ApiResponse]] = [
        lambda i: api.health(),
        lambda i: api.ib_status(),
        *(() if "resilience_report" in lacks else (lambda i: api.resilience(),)),
        lambda i: api.discover(symbol(i), force_refresh=False),
        lambda i: api.discover(symbol(i), force_refresh=True),
        lambda i: api.ib_health(),
        lambda i: api.symbols(),
        lambda i: api.discovered(),
    ]
    calls = [lambda i=i: kinds[i % len(kinds)](i) for i in range(count)]
    # Two real data loads in every 40 calls, on different symbols (no pacing trouble).
    for i in range(0, count, 40) if "sync_data_load" not in lacks else ():
        calls[i] = lambda i=i: api.load_data(symbol(i // 40), "1d", mode="tail")
    return calls


def run_mixed(api: ApiDriver, count: int, symbols: Sequence[str], workers: int = 5,
              every: int = 0, between: Callable[[int], None] | None = None,
              lacks: Collection[str] = ()) -> list[ApiResponse]:
    """``count`` mixed calls on ``workers`` threads; ``between(n)`` runs after each block of ``every``."""
    calls = mixed_calls(api, count, symbols, lacks)
    out: list[ApiResponse] = []
    block = every or count
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, count, block):
            out += list(pool.map(lambda call: call(), calls[start:start + block]))
            if between is not None and start + block < count:
                between(start + block)
    return out


def burst(api: ApiDriver, count: int, symbols: Sequence[str], lacks: Collection[str] = ()) -> list[ApiResponse]:
    """``count`` mixed calls all at once."""
    return api.concurrently(mixed_calls(api, count, symbols, lacks), max_workers=count)


def load_while_probing(api: ApiDriver, symbol: str, request: dict[str, str], bound_s: float,
                       interval_s: float = 0.25, load_timeout_s: float | None = None
                       ) -> tuple[ApiResponse, list[ApiResponse]]:
    """A synchronous data load, with the service health read every ``interval_s`` while it runs.

    The first health read is under way before the load starts, so at least one overlaps it. The
    probing stops when the load answers (each probe is bounded by twice ``bound_s``, the load by
    ``load_timeout_s``, else the driver's own bound), so the whole call is bounded.
    """
    import threading

    done, first = threading.Event(), threading.Event()
    probes: list[ApiResponse] = []

    def probe() -> None:
        while True:
            first.set()
            probes.append(api.call("GET", "/health", timeout_s=2 * bound_s))
            if done.wait(interval_s):
                return
    with ThreadPoolExecutor(max_workers=1) as pool:
        prober = pool.submit(probe)
        first.wait(bound_s)
        try:
            load = api.load_data(symbol, timeout_s=load_timeout_s, **request)
        finally:
            done.set()
        prober.result()
    return load, probes
