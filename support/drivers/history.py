"""History driver: what IB saw, as the claims ask it, read from the run's one history (synced first)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from support.run_history import Connection, IbEvent, RunHistory, normalise

__all__ = ["IbEvent", "IbHistory", "OwnConnections", "normalise"]


@dataclass
class OwnConnections:
    """Tells the suite's own IB connections (probes, squatters) from the backend's: by the local port the suite
    used and the moment it connected (a port the suite used once and the OS later gave the backend is the
    backend's).

    Args:
        ports: the local ports of the suite's own connections.
        connects: (local port, monotonic time opened) of each; None: the port alone decides.
    """

    ports: set[int] = field(default_factory=set)
    connects: list[tuple[int, float]] | None = None

    #: How far apart the suite's connect and the record's accept of one connection may be (same machine).
    MATCH_S = 2.0

    def __call__(self, peer: str, opened_mono: float) -> bool:
        port = _port(peer)
        if port not in self.ports:
            return False
        if self.connects is None:
            return True
        return any(p == port and abs(at - opened_mono) <= self.MATCH_S for p, at in list(self.connects))


@dataclass
class IbHistory:
    """What IB saw, read from the run's history since a bookmark (the simulator's record preferred: it sees every
    client, the suite's own squatters included; the proxy's sees only the backend's but works in front of a real
    gateway). Every read syncs the history with the records first, so a claim sees what happened until now."""

    run: RunHistory

    def __post_init__(self) -> None:
        self._marks: dict[str, int] = {}

    @property
    def source(self) -> str:
        """Which record is read: ``gateway``, ``proxy`` or '' (none: history scenarios skip)."""
        return self.run.source

    def _sources(self) -> list[str]:
        return [name for name in ("gateway", "proxy") if name in self.run.attached]

    def bookmark(self) -> None:
        """Forget what happened before now."""
        self.run.sync()
        self._marks[self.source] = self.run.position(self.source)

    def positions(self) -> dict[str, int]:
        """The last sequence number of every record (the simulator's and the proxy's), by record name."""
        self.run.sync()
        return {name: self.run.position(name) for name in self._sources()}

    def slices(self, since: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
        """Raw events of every record after ``since`` (from :meth:`positions`), by record name (evidence)."""
        self.run.sync()
        return {name: self.run.raw_since(name, since.get(name, 0)) for name in self._sources()}

    def raw(self) -> list[dict[str, Any]]:
        """Raw events of the preferred record since the bookmark."""
        if not self.source:
            raise RuntimeError("no gateway or proxy control API: IB history is not observable")
        self.run.sync()
        return self.run.raw_since(self.source, self._marks.get(self.source, 0))

    def events(self, include_own: bool = False) -> list[IbEvent]:
        """Normalised events since the bookmark, the suite's own connections left out."""
        events = [e for e in (normalise(r, self.source) for r in self.raw()) if e is not None]
        if include_own:
            return events
        own = {c.conn_id for c in self.run.connections(self.source) if c.own}
        return [e for e in events if e.conn_id not in own]

    def _connections(self) -> list[Connection]:
        if not self.source:
            raise RuntimeError("no gateway or proxy control API: IB history is not observable")
        self.run.sync()
        return self.run.connections(self.source)

    def connections(self) -> list[dict[str, Any]]:
        """The record's connection table (the control API's shape), the suite's own included."""
        return [c.table_row() for c in self._connections()]

    def backend_connections(self, since_mono: float) -> list[dict[str, Any]]:
        """Accepted connections of the backend (not the suite's own) that were open at or after ``since_mono``."""
        return [c.table_row() for c in self._connections()
                if not c.own and c.client_id is not None and not c.rejected
                and (c.closed_mono is None or c.closed_mono >= since_mono)]

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
