"""``ib-resilience proxy``: run the fault proxy as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ..launch import announce_ready
from .core import FaultProxy, ProxyConfig, check_address


def host_port(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (argparse type).

    Raises:
        argparse.ArgumentTypeError: not HOST:PORT with a port in 0..65535.
    """
    host, sep, port = text.rpartition(":")
    try:
        if not sep:
            raise ValueError("missing ':'")
        return check_address(host.strip("[]"), int(port))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT ({exc})") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``ib-resilience proxy``."""
    parser = argparse.ArgumentParser(
        prog="ib-resilience proxy",
        description="IB-aware TCP fault proxy: forwards TWS API traffic to the upstream gateway "
                    "and injects transport faults on command (JSON control API).")
    parser.add_argument("--listen", type=host_port, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="address clients connect to (default 127.0.0.1:0, port 0 = a free port)")
    parser.add_argument("--upstream", type=host_port, required=True, metavar="HOST:PORT",
                        help="the gateway (simulated or real) to forward to")
    parser.add_argument("--control-port", type=int, default=0, metavar="PORT",
                        help="control API port on --control-host (default 0 = a free port)")
    parser.add_argument("--control-host", default="127.0.0.1", metavar="HOST",
                        help="control API address (default 127.0.0.1)")
    parser.add_argument("--connect-timeout-s", type=float, default=ProxyConfig.upstream_connect_timeout_s,
                        help="bound on each upstream connect (default %(default)s)")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (default WARNING)")
    return parser


async def serve(args: argparse.Namespace) -> int:
    """Run the proxy until SIGINT or SIGTERM; close every socket; return the exit code."""
    (up_host, up_port), (host, port) = args.upstream, args.listen
    proxy = FaultProxy(ProxyConfig(upstream_host=up_host, upstream_port=up_port,
                                   upstream_connect_timeout_s=args.connect_timeout_s))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await proxy.start(host, port, args.control_port, args.control_host)
    except OSError as exc:
        print(f"ib-resilience proxy: cannot listen: {exc}", file=sys.stderr)
        await proxy.stop()
        return 1
    announce_ready("proxy", host=host, port=proxy.port, control_port=proxy.control_port,
                   upstream=f"{up_host}:{up_port}")
    await stop.wait()
    await proxy.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ib-resilience proxy``."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.control_port < 0 or args.control_port > 65535:
        parser.error("--control-port must be in 0..65535")
    if not isinstance(logging.getLevelName(args.log_level.upper()), int):
        parser.error(f"--log-level {args.log_level!r} is not a logging level")
    if args.connect_timeout_s <= 0:
        parser.error("--connect-timeout-s must be > 0")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
