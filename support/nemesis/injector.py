"""The nemesis: applies a schedule's faults on both planes at their planned times, and heals every one.

It never asserts. A fault of a plane becomes a :class:`~support.drivers.faults.FaultWindow` of the run's history
(a one-shot fault's window ends where it begins); a squatter is one of the suite's own connections (the IB driver's,
which the history marks as its own); a cleanup is an API exchange or a CLI run the drivers record; the simulator's
strict pacing rules are a declared span (``gateway_rules``). Only which planned fault each of them was, and what was
done, is the nemesis's own (:class:`~support.nemesis.record.FaultNote`). Its "final generator" heals everything —
the proxy's and the simulator's faults, the simulator's rules, the squatted client IDs — whatever happened, so no
verdict is ever taken with a fault on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ibtargets.common.control_client import ControlClient, ControlError
from ibtargets.common.faults import (
    GATEWAY,
    PushError,
)
from support.drivers.faults import FaultWindow
from support.drivers.ib import IbDriver
from support.nemesis.record import FaultNote, RunNotes
from support.nemesis.schedule import FaultSpec, Schedule
from support.nemesis.workload import Client
from support.run_history import RunHistory, Span

#: The simulator's rules while a ``pacing`` fault is on: a third historical request for one contract within
#: 5 s is refused with error 162 (the rules of the standard pacing scenario).
STRICT_PACING = {"pacing_enabled": True, "same_contract_max": 3, "same_contract_window_s": 5.0}


class Nemesis:
    """Applies the faults of one schedule.

    Args:
        gateway_control, proxy_control: control URLs of the simulator and the proxy.
        ib: the suite's IB driver (squatters).
        client: the workload's client (its drivers record the cleanup calls).
        history: the run's history (fault windows, the rules' span).
        notes: the nemesis's own facts (planned versus applied).
        preferred_client_id: the backend's first client ID (squatters take IDs above it).
    """

    def __init__(self, gateway_control: str, proxy_control: str, ib: IbDriver, client: Client, history: RunHistory,
                 notes: RunNotes, preferred_client_id: int):
        self.gateway = ControlClient(gateway_control)
        self.proxy = ControlClient(proxy_control)
        self.ib, self.client, self.history, self.notes = ib, client, history, notes
        self.preferred_client_id = preferred_client_id
        self.stop = threading.Event()
        self._open: dict[int, FaultWindow | Span | None] = {}      # fault id → its window, span, or None (squatter)
        self._squatted: dict[int, int] = {}                         # fault id → client ID held
        self._saved_rules: dict[str, Any] | None = None
        self._helpers: list[threading.Thread] = []
        self._keyed: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the schedule

    def run(self, schedule: Schedule, origin: float) -> None:
        """Apply and heal every fault at its time (``origin`` = the schedule's second 0); returns after the
        last planned action, or at once when :attr:`stop` is set. Call :meth:`heal_everything` afterwards."""
        actions: list[tuple[float, int, str, FaultSpec]] = []
        for spec in schedule.faults:
            actions.append((spec.start_s, 1, "apply", spec))
            if not spec.one_shot:
                actions.append((spec.end_s, 0, "heal", spec))
        for at_s, _, action, spec in sorted(actions, key=lambda a: (a[0], a[1], a[3].id)):
            # A planned time is waited for, bounded by the schedule; the stop event cuts it short.
            if self.stop.wait(max(0.0, origin + at_s - time.monotonic())):
                return
            if action == "apply":
                self._apply(spec)
            else:
                self._heal(spec)

    def _apply(self, spec: FaultSpec) -> None:
        name = f"nemesis-{spec.id}-{spec.kind}"
        started = time.monotonic()
        try:
            if spec.builds_fault:
                fault = spec.fault(name)
                self._plane(fault.plane).apply(fault)
                applied = started  # it may act before the control API answers: its window begins with the call
                # The schedule's window, not the value's: a notice (one push) lasts until IB is said to be back.
                opened = FaultWindow(f"nemesis #{spec.id} {spec.label()}", fault.plane, fault, applied,
                                     applied if spec.one_shot else None)
                self.history.fault_changed(None, opened)
            elif spec.kind == "pacing":
                if self._saved_rules is None:
                    current = self.gateway.config()
                    self._saved_rules = {k: current[k] for k in STRICT_PACING if k in current}
                self.gateway.update_config(**STRICT_PACING)
                opened = self.history.open_span("gateway_rules", f"nemesis #{spec.id} {spec.label()}")
            elif spec.kind == "squatter":
                self._spawn(lambda: self._squat(spec), key=spec.id)  # a squatter's connect never delays the schedule
                return
            elif spec.kind == "cleanup":
                self._cleanup(spec)
                return
            else:
                raise ValueError(f"the nemesis cannot apply a fault of kind {spec.kind!r}")
        except (ControlError, ConnectionError, TimeoutError) as exc:
            self.notes.fault(FaultNote(spec.id, started, started, error=str(exc)[:300]))
            self.notes.note(f"fault {spec.describe()} not applied: {exc}")
            return
        applied = opened.applied_mono if isinstance(opened, FaultWindow) else opened.start_mono
        self.notes.fault(FaultNote(spec.id, applied, applied if spec.one_shot else None))
        if not spec.one_shot:
            with self._lock:
                self._open[spec.id] = opened

    def _heal(self, spec: FaultSpec) -> None:
        if spec.kind == "squatter":
            self._join(spec.id)  # its connect may still be under way (bounded)
        with self._lock:
            if spec.id not in self._open:
                return
            opened = self._open.pop(spec.id)
        name = f"nemesis-{spec.id}-{spec.kind}"
        error = ""
        try:
            if spec.kind == "ib_notice":  # a notice is healed by the notice that IB is back
                self.gateway.apply(PushError(name=name + "-restored", code=int(spec.params.get("restored_code", 1102))))
            elif spec.builds_fault:
                self._plane(spec.fault(name).plane).heal(name)
            elif spec.kind == "pacing":
                self._restore_rules()
            elif spec.kind == "squatter":
                client_id = self._squatted.pop(spec.id, None)
                if client_id is not None:
                    self.ib.release(client_id)
        except (ControlError, ConnectionError, TimeoutError) as exc:
            error = f"heal failed: {exc}"[:300]
            self.notes.note(f"fault {spec.describe()}: {error}")
        self._healed(spec.id, opened, time.monotonic(), error)

    def _healed(self, fault_id: int, opened: FaultWindow | Span | None, now: float, error: str = "",
                suffix: str = "") -> None:
        """Close a fault's window (or span) in the history, and its note."""
        if isinstance(opened, FaultWindow):
            self.history.fault_changed(opened, FaultWindow(opened.label, opened.plane, opened.fault,
                                                           opened.applied_mono, now))
        elif isinstance(opened, Span):
            self.history.close_span(opened, end_mono=now)
        self.notes.healed(fault_id, now, error, suffix)

    def _plane(self, plane: str) -> ControlClient:
        """The control client of ``plane`` (``gateway`` or ``proxy``)."""
        return self.gateway if plane == GATEWAY else self.proxy

    def _squat(self, spec: FaultSpec) -> None:
        """Hold a client ID above the preferred one — the first from ``client_offset`` up that no open connection
        holds at the gateway. The window is open from the moment the ID is held; a gateway that answers nothing
        lets no squatter in (the fault is then recorded as not applied)."""
        offset = int(spec.params.get("client_offset", 1))
        started = time.monotonic()
        try:
            held = {c.get("client_id") for c in self.gateway.connections() if c.get("state") == "open"}
            client_id = next(i for i in range(self.preferred_client_id + offset, self.preferred_client_id + offset + 50)
                             if i not in held)
            self.ib.squat(client_id, timeout_s=3.0)
        except (ControlError, ConnectionError, TimeoutError) as exc:
            self.notes.fault(FaultNote(spec.id, started, started, error=f"no client ID squatted: {exc}"[:300]))
            self.notes.note(f"fault {spec.describe()} not applied: {exc}")
            return
        with self._lock:
            self._squatted[spec.id] = client_id
            self._open[spec.id] = None
        self.notes.fault(FaultNote(spec.id, time.monotonic(), note=f"client ID {client_id}"))

    def _cleanup(self, spec: FaultSpec) -> None:
        """A cleanup call, as the backend's operators make it: the API's, or the CLI's ``ib cleanup``. The CLI
        runs on a helper thread so a slow command never delays the schedule."""
        def call() -> None:
            if spec.params.get("via") == "cli":
                run = self.client.command(["ib", "cleanup"])
                outcome = "timed out" if run.timed_out else f"exit {run.exit_code}"
                self.notes.fault(FaultNote(spec.id, run.started_mono, run.finished_mono, note=f"ib cleanup → {outcome}"))
            else:
                response = self.client.api.cleanup()
                outcome = f"HTTP {response.status}" if response.status is not None else (response.error or "no answer")
                self.notes.fault(FaultNote(spec.id, response.started_mono, response.finished_mono,
                                           note=f"POST /ib/cleanup → {outcome}"))
        if spec.params.get("via") == "cli":
            self._spawn(call)
        else:
            call()

    def _spawn(self, target: Callable[[], None], key: int | None = None) -> None:
        thread = threading.Thread(target=target, name="nemesis-helper", daemon=True)
        self._helpers.append(thread)
        if key is not None:
            self._keyed[key] = thread
        thread.start()

    def _join(self, key: int, within_s: float = 10.0) -> None:
        """Wait (bounded) for the helper that applies fault ``key``."""
        thread = self._keyed.pop(key, None)
        if thread is not None:
            thread.join(within_s)

    def _restore_rules(self) -> None:
        if self._saved_rules is not None:
            self.gateway.update_config(**self._saved_rules)

    # ------------------------------------------------------------------ the final generator

    def heal_everything(self, within_s: float = 60.0) -> list[str]:
        """Heal every fault on both planes, restore the simulator's rules, give back squatted IDs and wait
        (bounded) for helper threads; return what could not be done (never raises)."""
        errors: list[str] = []
        deadline = time.monotonic() + within_s
        for thread in self._helpers:  # first let squatters and cleanup commands finish, so none acts after this
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._helpers):
            errors.append("a squatter or a cleanup command did not end in time")
        now = time.monotonic()
        for action, label in ((self.proxy.reset, "proxy faults"), (self.gateway.reset, "gateway faults"),
                              (self._restore_rules, "gateway rules"), (self.ib.release_all, "squatted client IDs")):
            try:
                action()
            except Exception as exc:  # one failure must not keep another plane faulted
                errors.append(f"{label}: {exc}")
        with self._lock:
            still_open, self._open = list(self._open.items()), {}
        self._squatted.clear()
        for fault_id, opened in still_open:
            self._healed(fault_id, opened, now, suffix=" (healed at the end)")
        return errors

    def close(self) -> None:
        """Release the control clients' sessions."""
        self.gateway.close()
        self.proxy.close()
