"""Checkers of service coming back by itself: once every fault is healed, the backend serves a request that needs
IB within the recovery bound, as the gateway saw it."""

from __future__ import annotations

from support.checks.limits import Limits
from support.contract import Discovery
from support.drivers.api import ApiResponse
from support.run_history import HistoryWindow
from support.verdict import Verdict, Violation

#: The request a symbol discovery sends to IB.
DISCOVERY_REQUEST = "reqContractDetails"


def _reached_ib(window: HistoryWindow, response: ApiResponse) -> bool:
    """The gateway received a contract-details request from one of the backend's connections while the discovery
    ran (it asked IB, not its cache)."""
    own = {c.conn_id for c in window.connections if c.own}
    return any(e.kind == "request" and e.type == DISCOVERY_REQUEST and e.conn_id not in own
               and response.started_mono <= e.mono <= response.finished_mono for e in window.ib_events)


def served_after_heal(window: HistoryWindow, limits: Limits, healed_mono: float) -> Verdict:
    """After the last heal (``healed_mono``: every fault on both planes healed), a symbol discovery that reached IB
    succeeded and answered within the recovery bound."""
    bound = limits.recovery
    discoveries = [r for r in window.exchanges if r.method == "POST" and r.path == "/ib/symbols/discover"
                   and r.started_mono >= healed_mono]
    served = [r for r in discoveries if r.ok and Discovery.of(r).symbol_info is not None and _reached_ib(window, r)]
    first = min((r.finished_mono for r in served), default=None)
    due = healed_mono + bound.seconds
    if first is None:
        if not discoveries and window.end_mono < due:
            return Verdict.unexercised("no discovery was asked for after the last heal")
        last = discoveries[-1].describe()[:200] if discoveries else "none asked"
        return Verdict.failed(f"no discovery that reached IB succeeded after the last heal at "
                              f"{window.rel(healed_mono):.1f} s ({len(discoveries)} asked)",
                              [Violation(due, f"the backend never served again; the last discovery: {last}")])
    if first > due:
        return Verdict.failed(f"first successful discovery {first - healed_mono:.1f} s after the last heal, past {bound}",
                              [Violation(due, f"served again only {first - healed_mono:.1f} s after the last heal "
                                              f"({bound})")])
    return Verdict.passed(f"served again {first - healed_mono:.2f} s after the last heal (a discovery that reached IB)")
