"""Fault driver: the suite's vocabulary of gateway trouble, mapped onto the proxy and gateway planes."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ibtargets.common.control_client import ControlClient
from ibtargets.common.faults import (
    Blackhole,
    ConnectivityLost,
    Delay,
    DropClients,
    Fault,
    IgnoreStartApi,
    Latency,
    NoHandshake,
    PushError,
    Refuse,
    Reset,
    Restart,
    Silent,
    Unanswered,
)


class FaultUnavailable(RuntimeError):
    """The target lacks the control plane a fault needs (the scenario is skipped, not passed)."""


@dataclass(frozen=True)
class FaultWindow:
    """When a fault was on, in suite monotonic time (``healed_mono`` None while active).

    ``applied_mono`` is when the apply call began (the fault may act from then on: a checker blaming the backend
    for what a fault may have caused starts there); ``confirmed_mono`` when the control API answered (the fault
    acts for sure from then on: a checker relying on the fault's effect starts there).
    """

    label: str
    plane: str
    fault: Fault
    applied_mono: float
    healed_mono: float | None = None
    confirmed_mono: float | None = None

    @property
    def surely_on_mono(self) -> float:
        """From when the fault surely acted (its confirmation, else the call's start for older records)."""
        return self.applied_mono if self.confirmed_mono is None else self.confirmed_mono


@dataclass
class FaultDriver:
    """Applies named gateway conditions through whichever control plane can produce them.

    The transport plane (fault proxy) is preferred because it works in front of a
    real gateway too; the protocol plane (simulator) is used for what only a gateway
    can do (IB error codes, a restart that refuses connections).
    """

    gateway: ControlClient | None = None
    proxy: ControlClient | None = None
    timeline: list[FaultWindow] = field(default_factory=list)
    #: Told of every window that begins (``None``, window) or ends (before, after): the run's history.
    on_change: Callable[[FaultWindow | None, FaultWindow], None] | None = None

    def __post_init__(self) -> None:
        self._saved_rules: dict | None = None
        self._active: dict[str, FaultWindow] = {}
        self._auto: list[FaultWindow] = []
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- vocabulary

    def silence(self, request_types: tuple[str, ...] = ("*",)) -> FaultWindow:
        """The gateway stops answering after the handshake (the seed's silent connection)."""
        if self.proxy is not None:
            return self._apply("silence", "proxy", Silent(request_types=request_types))
        return self._apply("silence", "gateway", Unanswered(request_types=request_types))

    def no_handshake(self) -> FaultWindow:
        """New connections are accepted but the handshake is never answered."""
        if self.proxy is not None:
            return self._apply("no handshake", "proxy", Blackhole())
        return self._apply("no handshake", "gateway", NoHandshake())

    def ignore_start_api(self) -> FaultWindow:
        """The handshake is answered but no API session ever starts (needs the simulator)."""
        return self._apply("API session never starts", "gateway", IgnoreStartApi())

    def latency(self, latency_ms: int) -> FaultWindow:
        """Every answer arrives ``latency_ms`` late (slow, but alive)."""
        if self.proxy is not None:
            return self._apply("latency", "proxy", Latency(latency_ms=latency_ms, direction="downstream"))
        return self._apply("latency", "gateway", Delay(latency_ms=latency_ms))

    def delay_requests(self, latency_ms: int, request_types: tuple[str, ...]) -> FaultWindow:
        """Only the chosen request types are answered late (needs the simulator)."""
        return self._apply("delay", "gateway", Delay(latency_ms=latency_ms, request_types=request_types),
                           name="delay-" + "-".join(request_types))

    def unanswered(self, request_types: tuple[str, ...]) -> FaultWindow:
        """The chosen request types are never answered (needs the simulator)."""
        return self._apply("unanswered", "gateway", Unanswered(request_types=request_types),
                           name="unanswered-" + "-".join(request_types))

    def outage(self) -> FaultWindow:
        """The gateway is gone: open connections are cut and new ones refused."""
        if self.proxy is not None:
            return self._apply("outage", "proxy", Refuse(keep_existing=False))
        return self._apply("outage", "gateway", Restart(down_s=3600.0))

    def restart(self, down_s: float) -> FaultWindow:
        """Every connection dropped, connections refused for ``down_s``, then accepted again."""
        if self.gateway is not None:
            return self._apply("restart", "gateway", Restart(down_s=down_s), auto_heal_s=down_s)
        window = self._apply("restart", "proxy", Refuse(keep_existing=False), auto_heal_s=down_s)
        self._schedule_heal(window, down_s)
        return window

    def connectivity_lost(self, restored_code: int = 1102) -> FaultWindow:
        """IB's nightly reset: 1100, nothing answered, then 1101/1102 on heal (needs the simulator)."""
        return self._apply("connectivity lost", "gateway", ConnectivityLost(restored_code=restored_code))

    def push_error(self, code: int) -> FaultWindow:
        """Push one IB error or notice to every connected client (needs the simulator)."""
        return self._apply(f"error {code}", "gateway", PushError(code=code))

    def restore_connectivity(self) -> None:
        """IB's link comes back: every loss of connectivity still on is healed (the gateway pushes 1101/1102)."""
        for window in self.active:
            if window.fault.ib_restored_code() is not None:
                self.heal(window)

    def drop_clients(self, client_id: int | None = None) -> FaultWindow:
        """The gateway closes its clients' sockets now (a FIN; one client's when ``client_id``; one-shot; needs
        the simulator)."""
        return self._apply("clients dropped", "gateway", DropClients(client_id=client_id))

    def reset_connections(self) -> FaultWindow:
        """Every TCP connection on the way to the gateway is reset now (a RST from the fault proxy; one-shot)."""
        return self._apply("connections reset", "proxy", Reset())

    def drop_connections(self) -> FaultWindow:
        """The suite's own cut of every connection (not a scenario's trouble): a reset at the proxy when there
        is one, else the simulator drops its clients."""
        if self.proxy is not None:
            return self.reset_connections()
        if self.gateway is not None:
            return self.drop_clients()
        raise FaultUnavailable("cutting connections needs the fault proxy's or the simulator's control API")

    def tighten_rules(self, **rules: object) -> dict:
        """Change the simulator's gateway rules (e.g. pacing) until :meth:`heal_all` restores them."""
        gateway = self._plane("gateway")
        if self._saved_rules is None:
            self._saved_rules = gateway.config()
        return gateway.update_config(**rules)

    # ---------------------------------------------------------------- mechanics

    def _plane(self, plane: str) -> ControlClient:
        client = self.proxy if plane == "proxy" else self.gateway
        if client is None:
            raise FaultUnavailable(f"this fault needs the {plane} control API, which the target lacks")
        return client

    def _apply(self, label: str, plane: str, fault: Fault, name: str | None = None,
               auto_heal_s: float | None = None) -> FaultWindow:
        """Apply on ``plane``; a fault the target heals by itself is recorded as ending then."""
        if name is not None:
            fault = type(fault)(**{**_fields(fault), "name": name})
        now = time.monotonic()  # it may act before the control API answers: its window begins with the call
        self._plane(plane).apply(fault)
        confirmed = time.monotonic()
        ends = now if fault.one_shot else (now + auto_heal_s if auto_heal_s and plane == "gateway" else None)
        window = FaultWindow(label, plane, fault, now, ends, confirmed)
        with self._lock:
            self.timeline.append(window)
            if ends is None:
                self._active[f"{plane}/{fault.name}"] = window
            elif ends > now:
                self._auto.append(window)  # ends by itself later, unless healed first
        if self.on_change is not None:
            self.on_change(None, window)
        return window

    def heal(self, window: FaultWindow) -> None:
        """Heal one fault now (idempotent)."""
        self._plane(window.plane).heal(window.fault.name)
        self._mark_healed(window)

    def _mark_healed(self, window: FaultWindow) -> None:
        with self._lock:
            if self._active.pop(f"{window.plane}/{window.fault.name}", None) is None:
                return
            healed = dataclasses.replace(window, healed_mono=time.monotonic())
            if window in self.timeline:
                self.timeline[self.timeline.index(window)] = healed
        if self.on_change is not None:
            self.on_change(window, healed)

    def _end_early(self) -> None:
        """Faults planned to end by themselves later (a restart) ended now: everything was healed."""
        now = time.monotonic()
        with self._lock:
            ending, self._auto = [w for w in self._auto if w.healed_mono is not None and w.healed_mono > now], []
        for window in ending:
            healed = dataclasses.replace(window, healed_mono=now)
            with self._lock:
                if window in self.timeline:
                    self.timeline[self.timeline.index(window)] = healed
            if self.on_change is not None:
                self.on_change(window, healed)

    def _schedule_heal(self, window: FaultWindow, after_s: float) -> None:
        timer = threading.Timer(after_s, lambda: self.heal(window))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def heal_all(self) -> None:
        """Heal every fault on both planes (the verdict never runs with a fault on)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        errors = []
        for client in (self.proxy, self.gateway):
            if client is not None:
                try:
                    client.reset()
                except Exception as exc:  # one plane failing must not keep the other faulted
                    errors.append(str(exc))
        if self._saved_rules is not None and self.gateway is not None:
            try:
                self.gateway.update_config(**self._saved_rules)
                self._saved_rules = None
            except Exception as exc:
                errors.append(f"gateway rules not restored: {exc}")
        for window in list(self._active.values()):
            self._mark_healed(window)
        self._end_early()
        if errors:
            raise RuntimeError("healing failed: " + "; ".join(errors))

    @property
    def active(self) -> list[FaultWindow]:
        """Faults applied and not yet healed."""
        with self._lock:
            return list(self._active.values())

    def capability(self, plane: str) -> bool:
        """Whether faults of ``plane`` can be applied on this target."""
        return (self.proxy if plane == "proxy" else self.gateway) is not None


def _fields(fault: Fault) -> dict:
    return {"client_id": fault.client_id, **{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in fault.attributes().items()}}
