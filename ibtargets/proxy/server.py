"""``ib-resilience proxy``: run the fault proxy as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ibtargets.common.control_server import OneLineArgumentParser, add_control_arguments, control_token
from ibtargets.common.launch import announce_ready
from ibtargets.proxy.core import FaultProxy, ProxyConfig, check_address


def host_port(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (argparse type).

    Raises:
        argparse.ArgumentTypeError: not HOST:PORT with a port in 0..65535.
    """
    host, sep, port = text.rpartition(":")
    try:
        if not sep:
            raise ValueError("missing ':'")
        try:
            number = int(port, 10)
        except ValueError:
            raise ValueError("port must be an integer in 0..65535") from None
        return check_address(host.strip("[]"), number)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT ({exc})") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``ib-resilience proxy``."""
    parser = OneLineArgumentParser(
        prog="ib-resilience proxy",
        description="IB-aware TCP fault proxy: forwards TWS API traffic to the upstream gateway "
                    "and injects transport faults on command (JSON control API).")
    parser.add_argument("--listen", type=host_port, default=("127.0.0.1", 0), metavar="HOST:PORT",
                        help="address clients connect to (default 127.0.0.1:0, port 0 = a free port)")
    parser.add_argument("--upstream", type=host_port, required=True, metavar="HOST:PORT",
                        help="the gateway (simulated or real) to forward to")
    add_control_arguments(parser)
    parser.add_argument("--allow-remote-upstream", action="store_true",
                        help="let PUT /upstream point at a host that is not loopback (default: loopback only)")
    parser.add_argument("--connect-timeout-s", type=float, default=ProxyConfig.upstream_connect_timeout_s,
                        help="bound on each upstream connect (default %(default)s)")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (default WARNING)")
    return parser


async def serve(args: argparse.Namespace, token: str | None = None) -> int:
    """Run the proxy until SIGINT or SIGTERM; close every socket; return the exit code."""
    (up_host, up_port), (host, port) = args.upstream, args.listen
    proxy = FaultProxy(ProxyConfig(upstream_host=up_host, upstream_port=up_port,
                                   upstream_connect_timeout_s=args.connect_timeout_s,
                                   allow_remote_upstream=args.allow_remote_upstream))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await proxy.start(host, port, args.control_port, args.control_host, token)
    except OSError as exc:
        print(f"ib-resilience proxy: cannot listen: {exc}", file=sys.stderr)
        await proxy.stop()
        return 1
    announce_ready("proxy", host=host, port=proxy.port, control_port=proxy.control_port,
                   upstream=f"{up_host}:{up_port}", control_host=args.control_host)
    await stop.wait()
    await proxy.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ib-resilience proxy``."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    token = control_token(parser, args)
    if not isinstance(logging.getLevelName(args.log_level.upper()), int):
        parser.error(f"--log-level {args.log_level!r} is not a logging level")
    if not 0 < args.connect_timeout_s <= 3600:
        parser.error("--connect-timeout-s must be within 0 (exclusive)..3600")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args, token))


if __name__ == "__main__":
    sys.exit(main())
