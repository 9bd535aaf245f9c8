"""Added round-trip latency of the fault proxy: reqCurrentTime through the proxy versus direct, in one run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ib_insync import IB

from ibtargets.common.launch import ManagedProcess, venv_script
from support.waiting import Deadline

#: The whole run stops measuring past this, whatever the arguments say.
BUDGET_S = 50.0
REQUEST_TIMEOUT_S = 5.0


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def round_trips(ib: IB, count: int, out: list[float], deadline: Deadline) -> None:
    """Append ``count`` reqCurrentTime round trips (milliseconds) to ``out``."""
    for _ in range(count):
        if deadline.expired:
            return
        started = time.perf_counter()
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), REQUEST_TIMEOUT_S)
        out.append((time.perf_counter() - started) * 1000.0)


async def measure(gateway_port: int, proxy_port: int, rounds: int, per_round: int,
                  warmup: int) -> dict[str, list[float]]:
    """Interleave direct and proxied batches so both see the same machine load."""
    deadline = Deadline(BUDGET_S)
    clients = {"direct": IB(), "proxy": IB()}
    ports = {"direct": gateway_port, "proxy": proxy_port}
    samples: dict[str, list[float]] = {"direct": [], "proxy": []}
    try:
        for client_id, (path, ib) in enumerate(clients.items(), start=1):
            ib.client.MaxRequests = 0  # no client-side throttling: measure the wire
            await ib.connectAsync("127.0.0.1", ports[path], clientId=client_id, timeout=10)
            await round_trips(ib, warmup, [], deadline)
        for index in range(rounds):
            order = ("direct", "proxy") if index % 2 == 0 else ("proxy", "direct")
            for path in order:
                await round_trips(clients[path], per_round, samples[path], deadline)
    finally:
        for ib in clients.values():
            ib.disconnect()
    return samples


def report(samples: dict[str, list[float]], upstream: str) -> str:
    """The table of figures."""
    rows = []
    for path in ("direct", "proxy"):
        values = samples[path]
        rows.append((path, len(values), percentile(values, 0.50), percentile(values, 0.99),
                     statistics.fmean(values)))
    (_, _, d50, d99, dmean), (_, _, p50, p99, pmean) = rows
    lines = [f"reqCurrentTime round trip, ib_insync client (MaxRequests=0), upstream: {upstream}",
             f"{'path':<8} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"]
    lines += [f"{name:<8} {n:>6} {a:>8.3f} {b:>8.3f} {c:>8.3f}" for name, n, a, b, c in rows]
    lines.append(f"{'added':<8} {'':>6} {p50 - d50:>8.3f} {p99 - d99:>8.3f} {pmean - dmean:>8.3f}")
    verdict = "meets" if p50 - d50 <= 0.3 else "MISSES"
    lines.append(f"target: added p50 <= 0.300 ms -> {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start the simulator and the proxy as processes, measure, print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proxy_bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved batches per path")
    parser.add_argument("--per-round", type=int, default=200, help="round trips per batch")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured round trips per path")
    args = parser.parse_args(argv)
    logging.getLogger("ib_insync").setLevel(logging.WARNING)
    tool = venv_script("ib-resilience")
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        gateway = ManagedProcess([tool, "gateway", "--port", "0", "--control-port", "0", "--log-level", "WARNING"],
                                 Path(tmp) / "gateway.log", name="gateway")
        proxy: ManagedProcess | None = None
        try:
            gateway_port = int(gateway.start(ready_timeout_s=20.0)["port"])
            proxy = ManagedProcess([tool, "proxy", "--listen", "127.0.0.1:0", "--upstream",
                                    f"127.0.0.1:{gateway_port}", "--control-port", "0"],
                                   Path(tmp) / "proxy.log", name="proxy")
            proxy_port = int(proxy.start(ready_timeout_s=20.0)["port"])
            started = time.monotonic()
            samples = asyncio.run(measure(gateway_port, proxy_port, args.rounds, args.per_round, args.warmup))
            elapsed_s = time.monotonic() - started
        finally:
            for process in (proxy, gateway):
                if process is not None:
                    process.stop()
    if not samples["direct"] or not samples["proxy"]:
        print("proxy_bench: no samples measured", file=sys.stderr)
        return 1
    print(report(samples, "gateway simulator (separate process); proxy as `ib-resilience proxy` process"))
    print(f"measured in {elapsed_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
