"""One scenario's timeline: its window of the run's one history, with the window queries the claims ask.

Every API exchange, CLI run and fault window comes from the run's history (:mod:`support.run_history`), from the
scenario's start until now; what IB saw comes through the history driver (since the scenario's first When step).
:class:`Timeline` answers window queries ("the closes the gateway saw while this request ran"), so no claim
stitches records together with monotonic arithmetic of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from support.drivers.api import ApiResponse
from support.drivers.cli import CliRun
from support.drivers.faults import FaultWindow
from support.drivers.history import IbEvent, IbHistory
from support.run_history import HistoryWindow


@dataclass(frozen=True)
class Window:
    """A span of the suite's monotonic clock, ``[start_mono, end_mono]``."""

    start_mono: float
    end_mono: float

    @classmethod
    def of(cls, span: ApiResponse | CliRun) -> Window:
        """The span of one API exchange or one CLI run."""
        return cls(span.started_mono, span.finished_mono)

    def holds(self, mono: float | None) -> bool:
        """Whether ``mono`` falls inside the window."""
        return mono is not None and self.start_mono <= float(mono) <= self.end_mono

    def widened(self, before_s: float = 0.0, after_s: float = 0.0) -> Window:
        """The window with ``before_s`` added before its start and ``after_s`` after its end."""
        return Window(self.start_mono - before_s, self.end_mono + after_s)


class Timeline:
    """Read-only window queries over one scenario's records.

    Args:
        started_mono: when the scenario began.
        window: the run's history from then until now.
        history: the IB history driver (what the gateway and the proxy saw, since the first When step).
    """

    def __init__(self, started_mono: float, window: HistoryWindow, history: IbHistory):
        self.started_mono = started_mono
        self._window, self._history = window, history

    # ------------------------------------------------------------------------ what the clients saw

    def exchanges(self, path: str | None = None, within: Window | None = None) -> list[ApiResponse]:
        """API exchanges, optionally only those to ``path`` (``/health``) that started inside ``within``."""
        return [r for r in self._window.exchanges if (path is None or r.path == path)
                and (within is None or within.holds(r.started_mono))]

    def runs(self) -> list[CliRun]:
        """CLI runs, in order."""
        return list(self._window.cli_runs)

    def fault_windows(self) -> list[FaultWindow]:
        """Faults applied in the scenario, in order."""
        return [f for f in self._window.faults if f.applied_mono >= self.started_mono]

    def trouble_began(self, now_mono: float) -> float | None:
        """When the latest fault began, if it is still on at ``now_mono`` or acted once (a reset): the start of a
        detection bound. None when no fault is on."""
        windows = self.fault_windows()
        if not windows:
            return None
        latest = max(windows, key=lambda w: w.applied_mono)
        on = latest.healed_mono is None or latest.healed_mono > now_mono or latest.fault.one_shot
        return latest.applied_mono if on else None

    def trouble_ended(self, now_mono: float) -> float | None:
        """When the last fault was healed, if none is on at ``now_mono``: the start of a recovery bound. None when
        a fault is still on or none was applied."""
        windows = [w for w in self.fault_windows() if not w.fault.one_shot]
        if not windows or any(w.healed_mono is None or w.healed_mono > now_mono for w in windows):
            return None
        return max(w.healed_mono for w in windows)

    # ------------------------------------------------------------------------ what IB saw

    def ib_events(self, kind: str | None = None, request_type: str | None = None,
                  within: Window | None = None) -> list[IbEvent]:
        """The backend's IB events (the suite's own probes left out), filtered by kind, request type and time."""
        return [e for e in self._history.events() if (kind is None or e.kind == kind)
                and (request_type is None or e.type == request_type) and (within is None or within.holds(e.mono))]

    def backend_connections(self, since_mono: float | None = None) -> list[dict[str, Any]]:
        """The backend's connections as the gateway side saw them, open at or after ``since_mono`` (default: the
        scenario's start)."""
        return self._history.backend_connections(self.started_mono if since_mono is None else since_mono)

    def closed_within(self, window: Window, since_mono: float | None = None) -> list[dict[str, Any]]:
        """The backend's connections the gateway side saw close inside ``window``."""
        return [c for c in self.backend_connections(window.start_mono if since_mono is None else since_mono)
                if window.holds(c.get("disconnected_mono"))]

    def client_ids(self, connections: Iterable[dict[str, Any]]) -> list[int]:
        """The client IDs of ``connections``, sorted and unique."""
        return sorted({int(c["client_id"]) for c in connections if c.get("client_id") is not None})
