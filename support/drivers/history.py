"""History driver: what IB saw, read from the simulator's or the proxy's record, normalised."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ibtargets.common.control_client import ControlClient


@dataclass(frozen=True)
class IbEvent:
    """One thing that crossed the IB wire, as the gateway side recorded it.

    ``kind`` is one of ``connect``, ``start_api``, ``rejected`` (client ID refused),
    ``request``, ``response``, ``error`` (an IB error message sent), ``disconnect``.
    """

    kind: str
    mono: float
    conn_id: int
    client_id: int | None = None
    type: str = ""
    req_id: int | None = None
    answered: bool | None = None
    peer: str = ""
    code: int | None = None
    source: str = ""

    def describe(self) -> str:
        """Compact text for failure messages."""
        bits = [f"{self.mono:.3f}", self.kind, f"conn={self.conn_id}"]
        if self.client_id is not None:
            bits.append(f"client={self.client_id}")
        if self.type:
            bits.append(self.type)
        if self.code is not None:
            bits.append(f"code={self.code}")
        return " ".join(bits)


def normalise(raw: dict[str, Any], source: str) -> IbEvent | None:
    """Map a gateway or proxy history event onto :class:`IbEvent` (None if irrelevant)."""
    kind = raw.get("kind")
    common = {"mono": float(raw.get("mono", 0.0)), "conn_id": int(raw.get("conn_id") or 0),
              "client_id": raw.get("client_id"), "source": source}
    if kind == "connect":
        return IbEvent("connect", peer=str(raw.get("peer", "")), **common)
    if kind == "start_api":
        return IbEvent("start_api", **common)
    if kind == "reject":
        return IbEvent("rejected", code=raw.get("code"), **common)
    if kind == "request":
        return IbEvent("request", type=str(raw.get("type", "")), req_id=raw.get("req_id"),
                       answered=raw.get("answered"), **common)
    if kind == "error_sent":
        return IbEvent("error", code=raw.get("code"), req_id=raw.get("req_id"), **common)
    if kind == "response":
        code = raw.get("error_code")
        if source == "proxy" and raw.get("forwarded") is False:
            return None
        if source == "proxy" and code == 326:
            return IbEvent("rejected", code=326, **common)
        if source == "proxy" and code is not None:
            return IbEvent("error", type=str(raw.get("type", "")), code=code, req_id=raw.get("req_id"), **common)
        return IbEvent("response", type=str(raw.get("type", "")), req_id=raw.get("req_id"), **common)
    if kind == "disconnect":
        return IbEvent("disconnect", **common)
    return None


@dataclass
class IbHistory:
    """Reads IB-side history since a bookmark, preferring the simulator's record.

    The simulator sees every client (the suite's own squatters included); the proxy
    sees only the backend's connections but works in front of a real gateway.
    Connections opened by the suite itself are excluded by their local port.
    """

    gateway: ControlClient | None = None
    proxy: ControlClient | None = None
    own_ports: set[int] = field(default_factory=set)
    own_connects: list[tuple[int, float]] | None = None   # (local port, monotonic time opened) of the suite's own

    def __post_init__(self) -> None:
        self._marks: dict[str, int] = {}

    @property
    def source(self) -> str:
        """Which record is read: ``gateway``, ``proxy`` or '' (none: history scenarios skip)."""
        return "gateway" if self.gateway is not None else ("proxy" if self.proxy is not None else "")

    def _client(self) -> ControlClient:
        client = self.gateway or self.proxy
        if client is None:
            raise RuntimeError("no gateway or proxy control API: IB history is not observable")
        return client

    def bookmark(self) -> None:
        """Forget what happened before now."""
        self._marks[self.source] = self._client().last_seq()

    def _records(self) -> dict[str, ControlClient]:
        return {name: client for name, client in (("gateway", self.gateway), ("proxy", self.proxy)) if client}

    def positions(self) -> dict[str, int]:
        """The last sequence number of every record (the simulator's and the proxy's), by record name."""
        return {name: client.last_seq() for name, client in self._records().items()}

    def slices(self, since: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
        """Raw events of every record after ``since`` (from :meth:`positions`), by record name (evidence)."""
        return {name: client.history(since.get(name, 0)) for name, client in self._records().items()}

    def raw(self) -> list[dict[str, Any]]:
        """Raw events of the preferred record since the bookmark."""
        return self._client().history(self._marks.get(self.source, 0))

    def events(self, include_own: bool = False) -> list[IbEvent]:
        """Normalised events since the bookmark, the suite's own connections left out."""
        events = [e for e in (normalise(r, self.source) for r in self.raw()) if e is not None]
        if include_own:
            return events
        own = {int(c.get("conn_id") or 0) for c in self.connections() if self._is_own(c)}
        return [e for e in events if e.conn_id not in own]

    def connections(self) -> list[dict[str, Any]]:
        """The record's connection table."""
        return self._client().connections()

    def backend_connections(self, since_mono: float) -> list[dict[str, Any]]:
        """Accepted connections of the backend (not the suite's own) that were open at or after ``since_mono``."""
        out = []
        for c in self.connections():
            if self._is_own(c) or c.get("client_id") is None:
                continue
            if c.get("state") == "rejected":
                continue
            closed = c.get("disconnected_mono")
            if closed is not None and closed < since_mono:
                continue
            out.append(c)
        return out


    #: How far apart the suite's connect and the record's accept of one connection may be (same machine).
    OWN_MATCH_S = 2.0

    def _is_own(self, connection: dict[str, Any]) -> bool:
        """Whether a connection of the record is one of the suite's own: its port, opened at that time (a port the
        suite used once and the OS later gave the backend is the backend's)."""
        port = _port(str(connection.get("peer", "")))
        if port not in self.own_ports:
            return False
        if self.own_connects is None:
            return True
        opened = float(connection.get("connected_mono") or 0.0)
        return any(p == port and abs(at - opened) <= self.OWN_MATCH_S for p, at in list(self.own_connects))

    def backend_open_ids(self) -> set[int]:
        """The record's IDs of the connections the backend has open now."""
        return {int(c["conn_id"]) for c in self.backend_connections(time.monotonic())
                if c.get("disconnected_mono") is None}


def _port(peer: str) -> int:
    """The port of a ``host:port`` peer text (0 when there is none)."""
    try:
        return int(str(peer).rsplit(":", 1)[-1])
    except ValueError:
        return 0
