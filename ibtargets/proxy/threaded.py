"""Run a :class:`FaultProxy` on its own event loop in a daemon thread, with a blocking, bounded API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ibtargets.common.control import control_url
from ibtargets.common.control_client import scoped_fault
from ibtargets.common.faults import Fault
from ibtargets.proxy.core import FaultProxy, ProxyConfig

T = TypeVar("T")


class ThreadedProxy:
    """A fault proxy for tests and benchmarks in the same process; a context manager.

    Args:
        upstream_host: the gateway's host.
        upstream_port: the gateway's port.
        config: further settings (its upstream is replaced by the two above).
        listen_host: the proxy's listener address.
        listen_port: its port, 0 = a free one.
        control_port: control API port, 0 = a free one.
        timeout_s: bound on starting, stopping and every call.
        control_host: control API address (loopback by default; anything else needs ``control_token``).
        control_token: when set, control requests need ``Authorization: Bearer <token>``.
    """

    def __init__(self, upstream_host: str, upstream_port: int, config: ProxyConfig | None = None,
                 listen_host: str = "127.0.0.1", listen_port: int = 0, control_port: int = 0,
                 timeout_s: float = 10.0, control_host: str = "127.0.0.1", control_token: str | None = None):
        config = dataclasses.replace(config or ProxyConfig(), upstream_host=upstream_host,
                                     upstream_port=upstream_port)
        self.proxy = FaultProxy(config)
        self.timeout_s = timeout_s
        self.control_host = control_host
        self._listen = (listen_host, listen_port, control_port, control_host, control_token)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ThreadedProxy:
        """Start the loop thread and the proxy; return self.

        Raises:
            RuntimeError: the proxy did not start within the bound (the cause is chained).
        """
        if self._thread is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        try:
            self._call(self.proxy.start(*self._listen))
        except BaseException as exc:
            self.stop()
            raise RuntimeError(f"fault proxy did not start: {exc!r}") from exc
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join the thread (each step bounded)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self.proxy.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout_s)
        if not thread.is_alive():
            loop.close()
        self._loop, self._thread = None, None

    def __enter__(self) -> ThreadedProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the proxy is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    # ------------------------------------------------------------------ properties

    @property
    def port(self) -> int:
        """The proxy's listening port."""
        assert self.proxy.port is not None, "proxy not started"
        return self.proxy.port

    @property
    def control_port(self) -> int:
        """The control API's port."""
        assert self.proxy.control_port is not None, "proxy not started"
        return self.proxy.control_port

    @property
    def control_url(self) -> str:
        """Base URL of the control API (for :class:`ibtargets.common.control_client.ControlClient`)."""
        return control_url(self.control_host, self.control_port)

    # ------------------------------------------------------------------ faults and observation

    def apply(self, fault: Fault) -> None:
        """Apply (or replace) a proxy fault."""
        self._call(self.proxy.apply(fault))

    def heal(self, fault: Fault | str) -> None:
        """Heal a fault by value or name (no-op if not active)."""
        self._call(self.proxy.heal(fault if isinstance(fault, str) else fault.name))

    def reset(self) -> None:
        """Heal every fault."""
        self._call(self.proxy.reset())

    def faults(self) -> list[Fault]:
        """The active faults."""
        return self._call(self._run(self.proxy.active_faults))

    def connections(self) -> list[dict[str, Any]]:
        """Every open connection and the recent closed ones."""
        return self._call(self._run(self.proxy.connections))

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        """Events with a sequence number above ``since``."""
        return self.proxy.history.since(since)

    def last_seq(self) -> int:
        """Sequence number of the newest event (a bookmark for :meth:`history`)."""
        return self.proxy.history.last_seq

    def set_upstream(self, host: str, port: int) -> None:
        """Forward new connections to ``host:port``."""
        self._call(self._run(self.proxy.set_upstream, host, port))

    def fault(self, fault: Fault) -> contextlib.AbstractContextManager[Fault]:
        """Apply ``fault`` for the duration of a ``with`` block; heal it in ``finally``."""
        return scoped_fault(self, fault)
