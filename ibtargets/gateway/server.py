"""``ib-resilience gateway``: run the IB Gateway simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
import typing

from ibtargets.common.control_server import OneLineArgumentParser, add_control_arguments, control_token, port_number
from ibtargets.common.launch import announce_ready
from ibtargets.gateway.config import ConfigError, GatewayConfig
from ibtargets.gateway.gateway import Gateway

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command line: host/ports plus one flag per :class:`GatewayConfig` rule."""
    parser = OneLineArgumentParser(
        prog="ib-resilience gateway",
        description="IB Gateway simulator: TWS socket protocol, protocol faults, JSON control API.")
    parser.add_argument("--host", default="127.0.0.1", help="API interface to bind (default: loopback)")
    parser.add_argument("--port", type=port_number, default=4002, metavar="PORT",
                        help="API port; 0 picks a free one (default 4002)")
    add_control_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    rules = parser.add_argument_group("gateway rules (see docs/contributors.md: Gateway simulator)")
    hints = typing.get_type_hints(GatewayConfig)
    for field in dataclasses.fields(GatewayConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if kind is bool:
            rules.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=field.default)
        else:
            rules.add_argument(flag, dest=field.name, type=kind, default=field.default, metavar=kind.__name__.upper(),
                               help=f"(default {field.default})")
    return parser


async def serve(args: argparse.Namespace, config: GatewayConfig, token: str | None = None) -> int:
    """Run the gateway until a stop signal; close every socket before returning."""
    gateway = Gateway(config)
    try:
        await gateway.start(args.host, args.port, args.control_port, control_host=args.control_host,
                            control_token=token)
    except BaseException:
        await gateway.stop()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    announce_ready("gateway", host=args.host, port=gateway.port, control_port=gateway.control_port,
                   control_host=args.control_host)
    await stop.wait()
    log.info("gateway stopping")
    await gateway.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ib-resilience gateway``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    token = control_token(parser, args)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = GatewayConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GatewayConfig)})
    except ConfigError as exc:
        print(f"ib-resilience gateway: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(args, config, token))
    except OSError as exc:
        print(f"ib-resilience gateway: cannot listen: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
