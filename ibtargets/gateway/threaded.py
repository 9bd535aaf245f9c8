"""A Gateway running on its own event loop in a daemon thread, for synchronous callers and fixtures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from ibtargets.common.control import control_url
from ibtargets.common.faults import Fault
from ibtargets.gateway.config import GatewayConfig
from ibtargets.gateway.gateway import Gateway

T = TypeVar("T")


class ThreadedGateway:
    """Context manager: start a :class:`Gateway` in a background thread; every call is bounded.

    Args:
        config: the gateway's rules.
        host: interface to bind.
        port: API port (0 = a free one).
        control_port: control API port (0 = a free one, None = none).
        call_timeout_s: bound on every call into the gateway's loop (start and stop included).
        control_host: control API interface (loopback by default; anything else needs ``control_token``).
        control_token: when set, control requests need ``Authorization: Bearer <token>``.
    """

    def __init__(self, config: GatewayConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 control_port: int | None = 0, call_timeout_s: float = 10.0, control_host: str = "127.0.0.1",
                 control_token: str | None = None):
        self.gateway = Gateway(config)
        self.host = host
        self.control_host = control_host
        self._port = port
        self._control_port = control_port
        self._control_token = control_token
        self.call_timeout_s = call_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ThreadedGateway:
        """Start the loop thread and the gateway; return self.

        Raises:
            TimeoutError: the gateway did not start within ``call_timeout_s``.
            OSError: a port could not be bound.
        """
        if self._thread is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gateway-loop", daemon=True)
        self._thread.start()
        try:
            self._call(self.gateway.start(self.host, self._port, self._control_port, self.control_host,
                                          self._control_token))
        except BaseException:
            self._halt_loop()
            raise
        return self

    def stop(self) -> None:
        """Stop the gateway, its sockets and the loop thread (bounded; idempotent)."""
        if self._thread is None or self._loop is None:
            return
        try:
            self._call(self.gateway.stop())
        finally:
            self._halt_loop()

    def _halt_loop(self) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.call_timeout_s)
        if not self._thread.is_alive():
            self._loop.close()
        self._thread = None

    def __enter__(self) -> ThreadedGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Awaitable[T]) -> T:
        if self._loop is None or self._thread is None:
            raise RuntimeError("ThreadedGateway is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(self.call_timeout_s)

    def _call_sync(self, func: Any, *args: Any) -> Any:
        async def run() -> Any:
            return func(*args)
        return self._call(run())

    # ------------------------------------------------------------------ views

    @property
    def port(self) -> int:
        """The API port."""
        return self.gateway.port

    @property
    def control_port(self) -> int | None:
        """The control API port (None when not served)."""
        return self.gateway.control_port

    @property
    def control_url(self) -> str:
        """Base URL of the control API, e.g. ``http://127.0.0.1:40123``."""
        return control_url(self.control_host, self.control_port)

    @property
    def config(self) -> GatewayConfig:
        """The rules in force."""
        return self.gateway.config

    # ------------------------------------------------------------------ calls

    def apply(self, fault: Fault) -> None:
        """Apply a fault (replaces an active one of the same name)."""
        self._call(self.gateway.apply(fault))

    def heal(self, fault: Fault | str) -> None:
        """Heal a fault by value or name (no-op if not active)."""
        self._call(self.gateway.heal(fault if isinstance(fault, str) else fault.name))

    def reset(self) -> None:
        """Heal every fault and forget pacing."""
        self._call(self.gateway.reset())

    def faults(self) -> list[Fault]:
        """The active faults."""
        return self._call_sync(self.gateway.active_faults)

    def connections(self) -> list[dict[str, Any]]:
        """Every remembered connection (see the README's connection schema)."""
        return self._call_sync(self.gateway.connections)

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        """Events after sequence number ``since``."""
        return self.gateway.history.since(since)

    def last_seq(self) -> int:
        """Sequence number of the newest event (a bookmark for :meth:`history`)."""
        return self.gateway.history.last_seq

    def update_config(self, changes: Mapping[str, Any] | None = None, **more: Any) -> GatewayConfig:
        """Change rules at runtime (``ConfigError`` on a bad value); return the new config."""
        return self._call_sync(self.gateway.update_config, {**(changes or {}), **more})
