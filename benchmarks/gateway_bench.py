"""Gateway simulator throughput versus a minimal TWS-protocol server (the floor), measured in one run.

Run: ``make bench-gateway`` (or ``.venv/bin/python -m benchmarks.gateway_bench``). Prints figures,
asserts nothing about time. Both servers run as separate processes; the ib_insync clients run here.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ibtargets.common.launch import ManagedProcess, announce_ready, venv_script
from ibtargets.common.wire import FrameDecoder, ProtocolError, decode_fields, encode_fields, parse_hello

HOST = "127.0.0.1"
CLIENTS = 32
TARGET_RATIO = 0.80

# --------------------------------------------------------------------------- the floor server

#: Answers of the connect sync (ib_insync 0.9.86) and currentTime; nothing else.
_SYNC_END = {61: lambda f: encode_fields(62, 1), 5: lambda f: encode_fields(53, 1),
             99: lambda f: encode_fields(102), 6: lambda f: encode_fields(54, 1, "DU1234567"),
             76: lambda f: encode_fields(74, 1, f[2]), 7: lambda f: encode_fields(55, 1, f[2]),
             49: lambda f: encode_fields(49, 1, int(time.time()))}


class FloorSession(asyncio.Protocol):
    """Handshake, startApi → accounts + id, connect-sync end markers, currentTime: the least a server does."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder(expect_prefix=True)
        self.version = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            for payload in self.decoder.feed(data):
                if not self.version:
                    self.version = min(176, parse_hello(payload).max_version)
                    self.transport.write(encode_fields(self.version, "20260101 00:00:00 EST"))
                    continue
                fields = decode_fields(payload)
                msg_id = int(fields[0])
                if msg_id == 71:
                    self.transport.write(encode_fields(15, 1, "DU1234567") + encode_fields(9, 1, 1))
                elif msg_id in _SYNC_END:
                    self.transport.write(_SYNC_END[msg_id](fields))
        except (ProtocolError, ValueError, IndexError):
            self.transport.abort()


async def serve_floor(port: int) -> None:
    """Run the floor server until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorSession, HOST, port)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    announce_ready("floor", host=HOST, port=server.sockets[0].getsockname()[1])
    await stop.wait()
    server.close()


# --------------------------------------------------------------------------- measurements


_client_ids = itertools.count(1)


async def _connect(port: int) -> object:
    import ib_insync
    ib = ib_insync.IB()
    ib.client.MaxRequests = 0  # ib_insync throttles to 45 requests/s otherwise
    await ib.connectAsync(HOST, port, clientId=next(_client_ids), timeout=10)
    return ib


async def _round_trips(ib: object, until: float) -> int:
    count = 0
    while time.monotonic() < until:
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), 5)  # type: ignore[attr-defined]
        count += 1
    return count


async def round_trips_per_s(port: int, clients: int, duration_s: float) -> float:
    """reqCurrentTime round trips per second summed over ``clients`` concurrent ib_insync clients."""
    ibs = await asyncio.gather(*(_connect(port) for _ in range(clients)))
    try:
        await asyncio.gather(*(_round_trips(ib, time.monotonic() + 0.3) for ib in ibs))  # warm-up
        started = time.monotonic()
        counts = await asyncio.gather(*(_round_trips(ib, started + duration_s) for ib in ibs))
        return sum(counts) / (time.monotonic() - started)
    finally:
        for ib in ibs:
            ib.disconnect()  # type: ignore[attr-defined]


async def connects_per_s(port: int, duration_s: float) -> float:
    """Complete ib_insync connects (handshake + connect sync) then disconnects, one after another."""
    started = time.monotonic()
    count = 0
    while time.monotonic() < started + duration_s:
        ib = await _connect(port)
        ib.disconnect()  # type: ignore[attr-defined]
        count += 1
    return count / (time.monotonic() - started)


METRICS: dict[str, Callable[[int, float], Awaitable[float]]] = {
    "reqCurrentTime round trips/s, 1 client": lambda port, s: round_trips_per_s(port, 1, s),
    f"reqCurrentTime round trips/s, {CLIENTS} clients": lambda port, s: round_trips_per_s(port, CLIENTS, s),
    "connects/s (sequential)": connects_per_s,
}


def measure(metric: str, port: int, duration_s: float) -> float:
    """One figure against one server, bounded."""
    return asyncio.run(asyncio.wait_for(METRICS[metric](port, duration_s), duration_s + 30))


def main(argv: list[str] | None = None) -> int:
    """Start the floor and the simulator, measure each ``--rounds`` times, print the best figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=0.6, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=8, help="alternate floor/simulator this many times")
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_floor:
        asyncio.run(serve_floor(args.port))
        return 0

    logs = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    floor = ManagedProcess([sys.executable, "-m", "benchmarks.gateway_bench", "--serve-floor"],
                           logs / "floor.log", name="floor")
    simulator = ManagedProcess([venv_script("ib-resilience"), "gateway", "--port", "0", "--control-port", "0",
                                "--log-level", "WARNING", "--no-pacing-enabled"],
                               logs / "gateway.log", name="gateway")
    started = time.monotonic()
    best: dict[str, dict[str, float]] = {"floor": {}, "simulator": {}}
    try:
        ports = {"floor": int(floor.start()["port"]), "simulator": int(simulator.start()["port"])}
        # Short alternating rounds, best of each: the machine is shared, so noise only ever lowers a figure.
        for metric in METRICS:
            for _ in range(args.rounds):
                for name in ("floor", "simulator"):
                    value = measure(metric, ports[name], args.duration_s)
                    best[name][metric] = max(value, best[name].get(metric, 0.0))
    finally:
        simulator.stop()
        floor.stop()

    width = max(map(len, best["floor"]))
    print(f"\n{'metric':<{width}}  {'floor':>9}  {'simulator':>9}  {'ratio':>6}")
    ratios = []
    for metric, floor_value in best["floor"].items():
        value = best["simulator"][metric]
        ratios.append(value / floor_value)
        print(f"{metric:<{width}}  {floor_value:>9.0f}  {value:>9.0f}  {value / floor_value:>6.0%}")
    verdict = "meets" if min(ratios) >= TARGET_RATIO else "BELOW"
    print(f"\nsimulator {verdict} the target of {TARGET_RATIO:.0%} of the floor on every metric "
          f"(best of {args.rounds} rounds of {args.duration_s:g} s; total {time.monotonic() - started:.0f} s)")
    print(f"command: .venv/bin/python -m benchmarks.gateway_bench --duration-s {args.duration_s:g} "
          f"--rounds {args.rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
