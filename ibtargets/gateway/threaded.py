"""A Gateway running on its own event loop in a daemon thread, for synchronous callers and fixtures."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from ibtargets.common.loop_thread import ThreadedTarget
from ibtargets.gateway.config import GatewayConfig
from ibtargets.gateway.gateway import Gateway


class ThreadedGateway(ThreadedTarget[Gateway]):
    """Context manager: start a :class:`Gateway` in a background thread; every call is bounded.

    The loop thread, the lifecycle and the fault and observation calls (``apply``, ``heal``, ``reset``,
    ``faults``, ``connections``, ``history``, ``last_seq``) are :class:`ibtargets.common.loop_thread.ThreadedTarget`'s.
    A failed start raises the gateway's own error (``TimeoutError``, ``OSError``, ...).

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
        super().__init__(self.gateway, "gateway-loop", control_host)
        self.host = host
        self._port = port
        self._control_port = control_port
        self._control_token = control_token
        self.call_timeout_s = call_timeout_s

    @property
    def bound_s(self) -> float:
        """The bound on every call (``call_timeout_s``)."""
        return self.call_timeout_s

    def _start_target(self) -> Coroutine[Any, Any, None]:
        return self.gateway.start(self.host, self._port, self._control_port, self.control_host, self._control_token)

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
    def config(self) -> GatewayConfig:
        """The rules in force."""
        return self.gateway.config

    # ------------------------------------------------------------------ calls

    def update_config(self, changes: Mapping[str, Any] | None = None, **more: Any) -> GatewayConfig:
        """Change rules at runtime (``ConfigError`` on a bad value); return the new config."""
        return self._call_sync(self.gateway.update_config, {**(changes or {}), **more})
