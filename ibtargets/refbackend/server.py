"""Run the API with uvicorn on a socket we bind ourselves; SIGTERM/SIGINT close every IB connection at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator

import uvicorn

from ibtargets.common import ibclient
from ibtargets.common.launch import announce_ready
from ibtargets.refbackend.api import create_app
from ibtargets.refbackend.service import Backend
from ibtargets.refbackend.settings import Settings

log = logging.getLogger(__name__)

#: Bound on uvicorn's startup (lifespan) before the READY line.
STARTUP_TIMEOUT_S = 30.0
#: In-flight HTTP requests get this long after a signal; IB connections are closed before it starts.
GRACEFUL_SHUTDOWN_S = 1.0


class _Server(uvicorn.Server):
    """uvicorn's server with asyncio signal handlers that also run ``on_signal`` right away."""

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]):
        super().__init__(config)
        self._on_signal = on_signal

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self._signalled, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _signalled(self, sig: int) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        log.info("received %s: closing IB connections and shutting down", signal.Signals(sig).name)
        self._on_signal()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = a free port).

    Raises:
        OSError: the address is taken or invalid.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def configure_logging(level: str) -> None:
    """Log lines on stderr; the IB library's chatter (ib_insync or ib_async) only from warnings up unless debugging."""
    numeric = getattr(logging, level.upper())
    logging.basicConfig(level=numeric, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(ibclient.logger_name()).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)


async def serve(host: str, port: int, settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; print the READY line once listening.

    Args:
        host: interface to bind (loopback by default at the CLI).
        port: TCP port, 0 for a free one.
        settings: the backend's settings.
    """
    sock = bind_socket(host, port)
    backend = Backend(settings)
    config = uvicorn.Config(create_app(settings, backend), log_level=settings.log_level.lower(),
                            lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                            access_log=settings.log_level.lower() == "debug", log_config=None)
    server = _Server(config, on_signal=lambda: asyncio.ensure_future(backend.pool.close()))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while not server.started and not serving.done() and loop.time() < deadline:
        await asyncio.sleep(0.02)  # polling uvicorn's flag: it offers no startup event
    if server.started:
        bound_host, bound_port = sock.getsockname()[:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        announce_ready("backend", host=bound_host, port=bound_port, url=f"http://{url_host}:{bound_port}")
    elif not serving.done():
        server.should_exit = True
    await serving


def run(host: str, port: int, settings: Settings | None = None) -> int:
    """Blocking entry point of ``refbackend serve``; return the exit code."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    log.info("IB client library: %s %s", ibclient.library_name(), ibclient.version())
    try:
        asyncio.run(serve(host, port, settings))
    except OSError as exc:
        print(f"refbackend: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
