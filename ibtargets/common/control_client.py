"""The control API's client side: :class:`ControlClient`, blocking calls to a gateway's or proxy's control API
(routes in :mod:`ibtargets.common.control`), and :func:`scoped_fault`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import requests

from ibtargets.common.control import WRITE_METHODS, token_from_env
from ibtargets.common.faults import Fault


@contextlib.contextmanager
def scoped_fault(target: Any, fault: Fault) -> Iterator[Fault]:
    """Apply ``fault`` through ``target`` (anything with blocking ``apply``/``heal``) for a ``with`` block.

    Healed in ``finally``; one-shot faults have nothing to heal.
    """
    target.apply(fault)
    try:
        yield fault
    finally:
        if not fault.one_shot:
            target.heal(fault)


class ControlError(RuntimeError):
    """The control API refused a call or could not be reached."""


class ControlClient:
    """Blocking client of a gateway's or proxy's control API.

    Args:
        base_url: e.g. ``http://127.0.0.1:7498``.
        timeout_s: bound on every call.
        token: sent as ``Authorization: Bearer <token>``; None (the default) takes
            :data:`TOKEN_ENV` from the environment, ``""`` sends none.
    """

    def __init__(self, base_url: str, timeout_s: float = 5.0, token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        token = token_from_env() if token is None else token
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"} if method.upper() in WRITE_METHODS else None
        try:
            response = self._session.request(method, self.base_url + path, json=body, headers=headers,
                                             timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise ControlError(f"{method} {self.base_url}{path} failed: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ControlError(f"{method} {path} → {response.status_code}: {message}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return self._call("GET", "/health")

    def apply(self, fault: Fault) -> dict[str, Any]:
        """Apply (or replace) a fault."""
        return self._call("POST", "/faults", fault.to_json())

    def heal(self, fault: Fault | str) -> None:
        """Heal a fault by value or name (no-op if not active)."""
        name = fault if isinstance(fault, str) else fault.name
        self._call("DELETE", f"/faults/{name}")

    def reset(self) -> None:
        """Heal every fault."""
        self._call("POST", "/reset")

    def faults(self) -> list[dict[str, Any]]:
        """The active faults."""
        return self._call("GET", "/faults")["faults"]

    def connections(self) -> list[dict[str, Any]]:
        """Every connection the target has seen (open and closed)."""
        return self._call("GET", "/connections")["connections"]

    def history(self, since: int = 0) -> list[dict[str, Any]]:
        """Events after sequence number ``since``."""
        return self._call("GET", f"/history?since={since}")["events"]

    def last_seq(self) -> int:
        """Sequence number of the newest event (a bookmark for :meth:`history`)."""
        return self._call("GET", "/history?since=999999999999")["last_seq"]

    def listen_address(self) -> tuple[str, int]:
        """``GET /listen``: where the proxy accepts clients (proxy only)."""
        answer = self._call("GET", "/listen")
        return str(answer["host"]), int(answer["port"])

    def config(self) -> dict[str, Any]:
        """``GET /config``: the target's rules (simulator only)."""
        return self._call("GET", "/config")

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """``PUT /config`` with the rules to change; returns the rules now in force."""
        return self._call("PUT", "/config", changes)

    def fault(self, fault: Fault) -> contextlib.AbstractContextManager[Fault]:
        """Apply ``fault`` for the duration of a ``with`` block; heal it in ``finally``."""
        return scoped_fault(self, fault)

    def close(self) -> None:
        """Release the HTTP session."""
        self._session.close()
