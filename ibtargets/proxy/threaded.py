"""Run a :class:`FaultProxy` on its own event loop in a daemon thread, with a blocking, bounded API."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Coroutine
from typing import Any

from ibtargets.common.control_client import scoped_fault
from ibtargets.common.faults import Fault
from ibtargets.common.loop_thread import ThreadedTarget
from ibtargets.proxy.core import FaultProxy, ProxyConfig


class ThreadedProxy(ThreadedTarget[FaultProxy]):
    """A fault proxy for tests and benchmarks in the same process; a context manager.

    The loop thread, the lifecycle and the fault and observation calls (``apply``, ``heal``, ``reset``,
    ``faults``, ``connections``, ``history``, ``last_seq``) are :class:`ibtargets.common.loop_thread.ThreadedTarget`'s.
    A failed start raises ``RuntimeError`` with the cause chained; an error while stopping the proxy is ignored
    (the loop thread is stopped all the same).

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
        super().__init__(self.proxy, "fault-proxy", control_host)
        self.timeout_s = timeout_s
        self._listen = (listen_host, listen_port, control_port, control_host, control_token)

    @property
    def bound_s(self) -> float:
        """The bound on every call (``timeout_s``)."""
        return self.timeout_s

    def _start_target(self) -> Coroutine[Any, Any, None]:
        return self.proxy.start(*self._listen)

    def _start_failed(self, exc: BaseException) -> None:
        self.stop()
        raise RuntimeError(f"fault proxy did not start: {exc!r}") from exc

    def _stop_target(self) -> None:
        with contextlib.suppress(Exception):
            super()._stop_target()

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

    # ------------------------------------------------------------------ the proxy's own

    def set_upstream(self, host: str, port: int) -> None:
        """Forward new connections to ``host:port``."""
        self._call_sync(self.proxy.set_upstream, host, port)

    def fault(self, fault: Fault) -> contextlib.AbstractContextManager[Fault]:
        """Apply ``fault`` for the duration of a ``with`` block; heal it in ``finally``."""
        return scoped_fault(self, fault)
