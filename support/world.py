"""The suite's world: settings, targets and the drivers bound to them, shared by every step."""

from __future__ import annotations

import dataclasses
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibtargets.common.control_client import ControlClient
from support.checks.limits import Limits
from support.drivers.api import ApiDriver, ApiResponse
from support.drivers.backend_output import BackendOutput, Position
from support.drivers.cli import CliDriver, CliRun
from support.drivers.faults import FaultDriver
from support.drivers.history import IbHistory, OwnConnections
from support.drivers.ib import IbDriver
from support.drivers.processes import ProcessDriver, ProcessNotFound
from support.run_history import HistoryWindow, RunHistory
from support.settings import Settings
from support.symbols import SymbolRotation
from support.targets import EmbeddedTargets, Targets
from support.timeline import Timeline
from support.waiting import Bound


@dataclass
class Observations:
    """What one scenario has seen so far (reset before every scenario): typed, one field per kind of fact."""

    started_mono: float = field(default_factory=time.monotonic)
    responses: list[ApiResponse] = field(default_factory=list)
    cli_runs: list[CliRun] = field(default_factory=list)
    acting_from: int = 0               # index of the first answer recorded once the When steps began
    acting: bool = False               # a When step has begun
    acting_mono: float | None = None   # when it began
    output_from: Position | int = 0    # position in the backend's output where the scenario (then its When) began
    history_positions: dict[str, int] = field(default_factory=dict)  # the IB history's records at the start
    operation_id: str = ""             # the asynchronous operation the scenario started
    last_use_mono: float | None = None  # when a client last used IB before the backend was left idle
    accounts: tuple[str, ...] = ()     # the accounts the gateway reported to the suite's check
    refusal: Exception | None = None   # the suite's refusal of a live account
    live_ib: Any = None                # the IB driver of a lone gateway the scenario started
    shutdown: Shutdown | None = None   # what the suite saw when it stopped the backend
    nemesis: Any = None                # the nemesis run the scenario judges
    claim_limits: dict[str, float] = field(default_factory=dict)  # limits the claims stated (resource plot)
    step_marks: dict[str, float] = field(default_factory=dict)    # where the per-step evidence slices resume

    @property
    def acted(self) -> list[ApiResponse]:
        """The answers recorded since the scenario's first When step (what the claims judge)."""
        return self.responses[self.acting_from:]

    @property
    def last_response(self) -> ApiResponse:
        """The most recent API answer a step recorded.

        Raises:
            LookupError: no step recorded one (a suite bug: a Then-step before its When).
        """
        if not self.responses:
            raise LookupError("no API request was made in this scenario")
        return self.responses[-1]

    @property
    def last_cli_run(self) -> CliRun:
        """The most recent CLI run a step recorded.

        Raises:
            LookupError: no step recorded one.
        """
        if not self.cli_runs:
            raise LookupError("no CLI command was run in this scenario")
        return self.cli_runs[-1]


@dataclass(frozen=True)
class Shutdown:
    """What the suite saw when it told the backend to stop (SIGTERM)."""

    started_mono: float
    finished_mono: float
    exit_code: int | None
    held: frozenset[int]       # the gateway's IDs of the backend's connections open at the signal
    output_from: Position      # the backend's output written while it stopped: [output_from, output_to)
    output_to: Position

    @property
    def elapsed_s(self) -> float:
        """Seconds from the signal to the process's end."""
        return self.finished_mono - self.started_mono

    @property
    def killed(self) -> bool:
        """Whether it ignored SIGTERM and had to be killed."""
        return self.exit_code == -signal.SIGKILL

    def describe(self) -> str:
        """Exit and time, for failure messages."""
        how = "killed (SIGKILL) after ignoring SIGTERM" if self.killed else f"exit {self.exit_code}"
        return f"backend {how} {self.elapsed_s:.1f} s after SIGTERM; held connections {sorted(self.held)}"


class World:
    """Everything steps reach the system through. One per run; rebound when the backend restarts.

    Args:
        settings: the frozen settings.
        embedded: the suite's own targets (None in external mode).
        run_history: the run's one history (a fresh one when not given).
    """

    def __init__(self, settings: Settings, targets: Targets, embedded: EmbeddedTargets | None = None,
                 run_history: RunHistory | None = None):
        self.settings = settings
        self.embedded = embedded
        self.run_history = run_history or RunHistory()
        self.ib = IbDriver(targets.ib_host, targets.ib_port)
        self.run_history.is_own = OwnConnections(self.ib.own_ports, self.ib.own_connects)
        self.symbols = SymbolRotation(settings.symbols)
        self.seen = Observations()
        #: Capabilities found missing during the run (a route the API does not have) → why, said once: a later
        #: scenario needing one is not judged again (features/environment.py).
        self.missing: dict[str, str] = {}
        #: The failed scenario after which the backend was kept rather than restarted ('' since its last start):
        #: a later scenario whose preconditions fail on it is owed a fresh backend (features/environment.py).
        self.kept_after = ""
        #: Why the scenario that just failed is owed a second run on a fresh backend ('' when it is not).
        self.owed_fresh = ""
        self.bind(targets)

    def lacking(self, capability: str) -> str:
        """Why the backend is known not to provide ``capability`` ('' when it is not known to lack it): its profile
        says so (``lacks``), or a scenario of this run found its route missing."""
        from support.capabilities import CAPABILITIES

        if capability in self.settings.lacks:
            return f"the backend does not provide {capability} ({CAPABILITIES[capability]}): its profile says so"
        return self.missing.get(capability, "")

    def learn_missing(self, method: str, path: str, message: str, scenario: str, field_path: str = "") -> None:
        """A scenario found the API without ``method path`` (or an answer of it without ``field_path``): the
        capabilities that route (or field) carries are missing."""
        from support.capabilities import CAPABILITIES, FIELDS, taken_by_route

        for name in FIELDS.get(field_path, ()) if field_path else taken_by_route(method, path):
            self.missing.setdefault(name, f"the backend does not provide {name} ({CAPABILITIES[name]}): "
                                          f"{message.removeprefix('contract: not provided: ')} "
                                          f"(found by {scenario!r})")

    def bind(self, targets: Targets) -> None:
        """(Re)create the drivers that depend on where the system is."""
        self.targets = targets
        # A restart keeps the scenario's evidence: its API exchanges, CLI runs and fault windows.
        previous = getattr(self, "api", None), getattr(self, "cli", None), getattr(self, "faults", None)
        # Longer than any bound a scenario claims (a hang shows as a timed-out answer, not a stuck run).
        self.api = ApiDriver(targets.api_base_url, timeout_s=self.settings.bound_of(20.0, "the API driver's give-up").seconds,
                             load_timeout_s=self.settings.bound_of(max(90.0, self.settings.profile.max_wait_s + 30.0),
                                                                   "the API driver's give-up on a load").seconds,
                             transcript=previous[0].transcript if previous[0] else [],
                             record=self.run_history.add_exchange, strict=True)
        self.cli = CliDriver(targets.cli, targets.api_base_url, api_pointing=self.settings.cli_api,
                             extra_env=dict(targets.cli_env),
                             transcripts=previous[1].transcripts if previous[1] else [],
                             on_record=self.run_history.add_cli_run)
        self.backend_output = BackendOutput(Path(targets.backend_log) if targets.backend_log else None,
                                            tuple((name, Path(path)) for name, path in targets.service_logs))
        gateway = ControlClient(targets.gateway_control) if targets.gateway_control else None
        proxy = ControlClient(targets.proxy_control) if targets.proxy_control else None
        self.faults = FaultDriver(gateway, proxy, timeline=previous[2].timeline if previous[2] else [],
                                  on_change=self.run_history.fault_changed)
        self.run_history.attach_records(gateway, proxy)
        self.history = IbHistory(self.run_history)
        try:
            self.sut = ProcessDriver(targets.backend_pid, targets.backend_ib_port) if targets.backend_pid else None
        except ProcessNotFound:
            self.sut = None

    @property
    def limits(self) -> Limits:
        """The bounds and facts the checkers judge by (:class:`support.checks.limits.Limits`)."""
        return Limits.from_settings(self.settings)

    def window(self, since_mono: float | None = None) -> HistoryWindow:
        """The run's history from ``since_mono`` (default: the scenario's start) until now, read up to now."""
        self.run_history.sync()
        return self.run_history.window(self.seen.started_mono if since_mono is None else since_mono)

    @property
    def timeline(self) -> Timeline:
        """The scenario's records, read together (:class:`support.timeline.Timeline`)."""
        return Timeline(self.seen.started_mono, self.window(), self.history)

    def restart_backend(self, defaults: bool = False) -> None:
        """Restart the embedded backend (KTRDR's default timings if ``defaults``) and rebind."""
        if self.embedded is None:
            raise RuntimeError("only the embedded backend can be restarted by the suite")
        self.kept_after = ""
        self.bind(self.embedded.start_backend(defaults=defaults))

    def stop_backend(self) -> Shutdown:
        """Stop the backend the suite started (SIGTERM; SIGKILL after ``backend_stop_timeout_s``); the scenario's
        end starts it again."""
        if self.embedded is None:
            raise RuntimeError("only a backend the suite started can be stopped by the suite")
        held = frozenset(self.history.backend_open_ids()) if self.history.source else frozenset()
        output_from, started = self.backend_output.position(), time.monotonic()
        code = self.embedded.stop_backend()
        return Shutdown(started, time.monotonic(), code, held, output_from, self.backend_output.position())

    def begin_scenario(self) -> None:
        """A clean slate: no faults, no squatters, fresh transcripts, a history bookmark."""
        self.seen = Observations(output_from=self.backend_output.position())
        self.api.transcript.clear()
        self.cli.transcripts.clear()
        self.faults.timeline.clear()
        self.faults.heal_all()
        self.ib.release_all()
        if self.sut is not None:
            self.sut.samples.clear()  # leak growth is judged over this scenario's samples only
        if self.history.source:
            self.history.bookmark()

    def end_scenario(self) -> None:
        """Heal every fault and give back every squatted ID, whatever happened."""
        try:
            self.faults.heal_all()
        finally:
            self.ib.release_all()
            if self.sut is not None:
                self.sut.stop_sampling()

    def unhealthy_after(self, recovery: Bound, api: Bound) -> str:
        """Why the backend may not be in the state a fresh start gives ('' when nothing says so). Asked after a
        failed scenario, its faults healed and its squatters gone, to decide whether the next scenario needs a
        restart (``restart_after_failure = "when-unhealthy"``). It needs one when:

        - its process is not running, or it holds more IB connections at the gateway than the pool allows;
        - its IB health (a bounded round-trip to the gateway, by the contract) has said healthy in this run and
          does not say so again within the ``recovery`` bound — never waiting longer than its last start took
          (past that, a restart is the quicker road to a fresh state);
        - its IB health never said healthy in this run (KTRDR be94b8f4 answers 503 even on a fresh start), so
          nothing can show it recovered: then it is kept only when its whole life so far (failed scenarios and
          passed ones) met no fault and no heavy load and had every request and command answered within its bound
          (:func:`doubt_after_failure`), and its health answers in the contract's shape within the ``api`` bound
          (the server is not stuck).

        A backend whose IB health cannot be read (not provided, not the contract's shape) needs a restart: only
        evidence spares one. The probe's exchanges are not recorded in the run's history (keeping a backend never
        adds evidence a restart-every-time run would not have)."""
        from support import contract
        from support.waiting import ConditionTimeout, eventually

        if self.embedded is None or self.embedded.backend is None or not self.embedded.backend.running():
            return "its process is not running"
        window = self.run_history.window()
        lives = [life for life in window.lives if life.ready_mono is not None]
        life_start = lives[-1].started_mono if lives else self.seen.started_mono
        doubt = doubt_after_failure(window, self.run_history.window(life_start), self.limits)
        if doubt:
            return doubt
        if not ever_healthy(window):
            response = ApiDriver(self.api.base_url, timeout_s=api.seconds).ib_health()
            readable = response.status in (200, 503) and contract.IbHealth.of(response).healthy is not None
            return "" if readable else f"its health cannot be read: {response.describe()}"[:300]

        start_s = lives[-1].ready_mono - lives[-1].started_mono if lives else recovery.seconds
        # The recovery bound, shortened to what a restart would take (a measured time, already real seconds).
        wait = dataclasses.replace(recovery, seconds=min(recovery.seconds, max(1.0, start_s)),
                                   meaning=f"{recovery.meaning}, or a restart's time")
        probe = ApiDriver(self.api.base_url, timeout_s=recovery.seconds)

        def healthy() -> bool:
            response = probe.ib_health()
            assert says_healthy(response), f"not healthy: {response.describe()}"
            return True
        try:
            eventually(healthy, wait, "the backend is healthy again", interval_s=0.2, measure=False)
        except (AssertionError, ConditionTimeout) as exc:
            return str(exc)[:300]
        except Exception as exc:  # NotProvided, or anything unreadable: no evidence of health
            return f"its health cannot be read: {exc}"[:300]
        return ""

    def close(self) -> None:
        """Stop the IB driver's loop."""
        self.ib.close()


def says_healthy(response: ApiResponse) -> bool:
    """An ``/ib/health`` answer that says healthy (HTTP 200, ``healthy: true``)."""
    from support import contract
    return response.path == "/ib/health" and response.status == 200 and contract.IbHealth.of(response).healthy is True


def ever_healthy(window: HistoryWindow) -> bool:
    """Whether the backend's IB health said healthy to the suite anywhere in ``window``."""
    return any(says_healthy(r) for r in window.exchanges)


def doubt_after_failure(run: HistoryWindow, life: HistoryWindow, limits: Limits) -> str:
    """What the history alone says against keeping the backend after a failed scenario ('' when nothing does;
    :meth:`World.unhealthy_after` then asks the backend itself). ``run`` is the run's history, ``life`` the
    backend's current life (from its last start).

    It holds more IB connections at the gateway than the pool allows; or its IB health never said healthy in the
    run, so nothing could show a recovery, and something in its life may have left it changed, in a failed scenario
    or a passed one: a fault, heavy load, a request or command unanswered or answered past its bound (it may still
    be working on what the suite gave up on, or be remembering it)."""
    from support.checks import spans, timing
    from support.verdict import FAIL

    held = [c for c in run.backend_connections() if c.closed_mono is None]
    if len(held) > limits.pool_limit:
        return f"it holds {len(held)} IB connections at the gateway, more than the pool's {limits.pool_limit}"
    if ever_healthy(run):
        return ""
    never = "its IB health never said healthy in this run, so nothing shows it is over "
    faults = [f.label for f in life.faults if f.applied_mono >= life.start_mono]
    if faults:
        return f"{never}the {faults[0]} it met since its start"
    if spans.heavy_load(life, limits):
        return f"{never}the heavy load it met since its start"
    late = timing.requests_bounded(life, limits)
    if late.status == FAIL:
        return f"{never}what it left unanswered or answered late since its start ({late.message})"[:300]
    return ""
