"""Targets: where the system under test and its IB gateway are, and (embedded) starting them.

Embedded mode starts, as real processes on free loopback ports::

    gateway simulator  ◀── fault proxy  ◀── reference backend (API)  ◀── CLI
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ibtargets.common.accounts import is_paper_account
from ibtargets.common.launch import ManagedProcess, ProcessStartError, sweep_orphans, venv_script, wait_ports_free
from support.settings import Service, Settings, fill_placeholders

if TYPE_CHECKING:
    from support.run_history import RunHistory


@dataclass(frozen=True)
class Targets:
    """Addresses of everything the suite talks to."""

    api_base_url: str
    cli: tuple[str, ...]
    ib_host: str                 # the gateway itself (probes, squatters)
    ib_port: int
    gateway_control: str = ""    # '' when the target has no simulator
    proxy_control: str = ""      # '' when no fault proxy sits in front of the gateway
    backend_pid: int = 0         # 0 when the backend's process is not visible
    backend_ib_port: int = 0     # where the backend's IB connections go (the proxy, or the gateway)
    backend_ib_host: str = "127.0.0.1"
    backend_log: str = ""        # a file holding the backend's output ('' when it is not visible)
    service_logs: tuple[tuple[str, str], ...] = ()  # (name, file) of each service the suite started
    cli_env: tuple[tuple[str, str], ...] = ()       # extra environment of every CLI command, filled

    def describe(self) -> dict[str, str]:
        """Flat text view (for reports and environment.properties)."""
        def text(value: object) -> str:
            if isinstance(value, tuple):
                return " ".join("=".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value)
            return str(value)
        return {k: text(v) for k, v in dataclasses.asdict(self).items()}


#: Embedded gateway rules: IB's pacing windows compressed so a whole run stays within them.
GATEWAY_COMPRESSION = ("--identical-window-s", "2", "--window-max", "100000")


def external_targets(settings: Settings) -> Targets:
    """The targets a user named with ``-D`` settings."""
    from urllib.parse import urlsplit

    from support.drivers.processes import listener_pid

    api_port = urlsplit(settings.api_base_url).port or 80
    pid = settings.backend_pid or listener_pid(api_port)
    host, port = backend_ib_address(settings)
    return Targets(settings.api_base_url, settings.cli, settings.ib_host, settings.ib_port,
                   settings.gateway_control, settings.proxy_control, pid, port, host, settings.backend_log,
                   cli_env=settings.cli_env)


def backend_ib_address(settings: Settings) -> tuple[str, int]:
    """Where an external backend's IB connections go: the profile's setting, else the fault proxy's
    listener (asked from the proxy), else the gateway itself."""
    profile = settings.profile
    if profile.backend_ib_port:
        return profile.backend_ib_host or settings.ib_host, profile.backend_ib_port
    if settings.proxy_control:
        from ibtargets.common.control_client import ControlClient
        return ControlClient(settings.proxy_control).listen_address()
    return settings.ib_host, settings.ib_port


def backend_environment(settings: Settings, ib_port: int, defaults: bool = False) -> dict[str, str]:
    """Environment of the embedded reference backend: KTRDR's names plus compressed time.

    Args:
        defaults: keep the backend's own (KTRDR) defaults for idle timeout and health interval.
    """
    tuning, profile = settings.tuning, settings.profile
    env = {
        "IB_HOST": "127.0.0.1",
        "IB_PORT": str(ib_port),
        "IB_CLIENT_ID": str(settings.preferred_client_id),
        "IB_TIMEOUT": str(profile.connect_timeout_s),
        "REFBACKEND_POOL_SIZE": str(profile.pool_limit),
        "REFBACKEND_CLIENT_ID_MAX": str(settings.preferred_client_id + tuning.client_id_span - 1),
        "REFBACKEND_VALIDATION_TIMEOUT_S": str(settings.thresholds.validation_s),
        # The embedded gateway's pacing is compressed too; the backend's own throttle follows it.
        "REFBACKEND_RATE_MAX_REQUESTS": "100000",
        "IB_RESILIENCE_IB_LIBRARY": settings.ib_library,  # the IB client library, as the suite's own driver
    }
    if not defaults:
        env["REFBACKEND_MAX_IDLE_S"] = str(tuning.max_idle_s)
        env["REFBACKEND_HEALTH_INTERVAL_S"] = str(tuning.health_interval_s)
    return env


class EmbeddedTargets:
    """Starts and stops the project's own gateway, proxy and backend processes.

    Args:
        settings: the suite's settings.
        log_dir: where each process's output is kept (evidence).
        history: the run's history, told of every life of the backend (started, ready, stopping, ended).
    """

    def __init__(self, settings: Settings, log_dir: Path, history: RunHistory | None = None):
        self.settings = settings
        self.log_dir = Path(log_dir)
        self.history = history
        self.gateway: ManagedProcess | None = None
        self.proxy: ManagedProcess | None = None
        self.backend: ManagedProcess | None = None
        self._gateway_port = 0
        self._proxy_port = 0
        self._backend_runs = 0
        self._api_base_url = ""
        self._api_port = 0
        self.ports = allot_ports(settings.port_names)   # {port:NAME}: free once per run (a worker has its own)
        self.services: dict[str, ManagedProcess] = {}   # the running services, in start order
        self._state = BackendState(Path(settings.backend_cwd or "."), settings.backend_restore,
                                   settings.backend_remove, self.log_dir / "backend-state")

    def start(self) -> Targets:
        """Start the gateway, the proxy in front of it, then the backend behind the proxy."""
        swept = sweep_orphans()
        if swept:
            print(f"ib-resilience: stopped {len(swept)} process(es) left by an earlier run that was killed: {swept}",
                  file=sys.stderr, flush=True)
        tool = venv_script("ib-resilience")
        self._state.snapshot()
        account = self.settings.gateway_account
        self.gateway = ManagedProcess([tool, "gateway", "--host", "127.0.0.1", "--port", "0", "--control-port", "0",
                                       "--account", account, *GATEWAY_COMPRESSION,
                                       *(() if is_paper_account(account) else ("--allow-live-account",))],
                                      self.log_dir / "gateway.log", name="gateway")
        ready = self.gateway.start()
        self._gateway_port = int(ready["port"])
        self._gateway_control = f"http://127.0.0.1:{ready['control_port']}"
        self.proxy = ManagedProcess([tool, "proxy", "--listen", "127.0.0.1:0",
                                     "--upstream", f"127.0.0.1:{self._gateway_port}", "--control-port", "0"],
                                    self.log_dir / "proxy.log", name="proxy")
        ready = self.proxy.start()
        self._proxy_port = int(ready["port"])
        self._proxy_control = f"http://127.0.0.1:{ready['control_port']}"
        self._start_services("run")
        return self.start_backend()

    def start_backend(self, defaults: bool = False) -> Targets:
        """(Re)start the backend; ``defaults``: with its own default timings (the reference backend: KTRDR's idle
        and health timings; yours: without ``backend_tuning_env``).

        The reference backend (embedded) and yours (managed) take the same road: a command with the
        addresses filled in, output captured to ``backend.log``, ready once its API answers.
        """
        self.stop_backend()
        self._values()   # the API's port is allotted once per run: checked from the first start on
        busy = self._backend_ports()
        held = wait_ports_free(busy.values(), self.settings.backend_stop_timeout_s)
        if held:
            named = {port: name for name, port in busy.items()}
            raise ProcessStartError("backend not started: " + "; ".join(
                f"port {port} ({named[port]}) is held by {holder}" for port, holder in held.items())
                + " (a process of an earlier start, or another program, still listens there)")
        self._backend_runs += 1
        launch = self._managed_launch(defaults) if self.settings.managed else self._reference_launch(defaults)
        started, ready, url = time.monotonic(), None, ""
        try:
            targets = self._launch(launch)
            ready, url = time.monotonic(), targets.api_base_url
            return targets
        finally:
            if self.history is not None:
                self.history.life_began(started, ready, *self._timings(defaults), api_base_url=url)

    def _timings(self, defaults: bool) -> tuple[float, float]:
        """The idle timeout and health interval a start gives the backend, when the suite knows them (0: it
        does not, and the backend's own report tells)."""
        s = self.settings
        if not s.managed:
            return (0.0, 0.0) if defaults else (s.tuning.max_idle_s, s.tuning.health_interval_s)
        if defaults and s.backend_tuning_env:
            return 0.0, 0.0
        return s.profile.idle_timeout_s, s.profile.health_check_interval_s

    def _reference_launch(self, defaults: bool) -> BackendLaunch:
        """The reference backend, configured from the settings (and a fresh data directory per start)."""
        env = backend_environment(self.settings, self._proxy_port, defaults)
        env["REFBACKEND_DATA_DIR"] = str(self.log_dir / f"backend-data-{self._backend_runs}")
        command = self.settings.backend_command or (venv_script("refbackend"),)
        return BackendLaunch((*command, "serve", "--host", "127.0.0.1", "--port", "{api_port}"), env)

    def _managed_launch(self, defaults: bool) -> BackendLaunch:
        """Your backend by command, IB pointed at the proxy (``IB_HOST``/``IB_PORT`` and the placeholders);
        ``defaults`` leaves ``backend_tuning_env`` out."""
        s = self.settings
        env = {"IB_HOST": "{ib_host}", "IB_PORT": "{ib_port}", **dict(s.backend_env),
               **({} if defaults else dict(s.backend_tuning_env))}
        return BackendLaunch(s.backend_command, env,
                             cwd=s.backend_cwd, reset=s.backend_reset, ready_path=s.backend_ready_path,
                             start_timeout_s=s.backend_start_timeout_s, api_port=s.api_port or s.cli_api_fixed_port)

    def _values(self) -> dict[str, object]:
        """What a start fills in commands and environments: the proxy's address, the API's port (one per run, unless
        the settings name one), the run's log folder and every ``{port:NAME}``."""
        if not self._api_port:
            self._api_port = self.settings.api_port or self.settings.cli_api_fixed_port or free_port()
        return {"ib_host": "127.0.0.1", "ib_port": self._proxy_port, "api_port": self._api_port,
                "run_dir": str(self.log_dir), **{f"port:{name}": port for name, port in self.ports.items()}}

    def _launch(self, launch: BackendLaunch) -> Targets:
        """Reset the backend's state, start the services living with it, start it, wait until its API answers."""
        values = {**self._values(), **({"api_port": launch.api_port} if launch.api_port else {})}
        fill = lambda text: fill_placeholders(text, values)  # noqa: E731
        self._state.restore()
        if launch.reset:
            subprocess.run(fill(launch.reset), shell=True, cwd=launch.cwd or None, timeout=60, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._start_services("backend")   # after the reset (it may clear their state), before the backend
        # Every un-awaited coroutine is printed, not only the first one at each place in the code.
        env = {"PYTHONWARNINGS": "always::RuntimeWarning", **{k: fill(v) for k, v in launch.env.items()}}
        self.backend = ManagedProcess([fill(word) for word in launch.command], self.backend_log_path,
                                      env=env, name="backend", cwd=launch.cwd or None)
        url = f"http://localhost:{values['api_port']}"
        self.backend.start_until_url(url + launch.ready_path, launch.start_timeout_s)
        return self.targets(url)

    @property
    def backend_ports(self) -> tuple[int, ...]:
        """The ports one life of the backend takes (each checked free before the next start)."""
        return tuple(self._backend_ports().values())

    @property
    def backend_log_path(self) -> Path:
        """Where the backend's stdout and stderr go (one file per run; every start appends)."""
        return self.log_dir / "backend.log"

    def targets(self, api_base_url: str | None = None) -> Targets:
        """The current addresses."""
        assert self.backend is not None, "backend not started"
        url = api_base_url or self._api_base_url
        self._api_base_url = url
        cli = self.settings.cli or self.settings.backend_command or (venv_script("refbackend"),)
        values = self._values()
        return Targets(url, cli, "127.0.0.1", self._gateway_port, self._gateway_control, self._proxy_control,
                       self.backend.pid, self._proxy_port, backend_log=str(self.backend_log_path),
                       service_logs=tuple((s.name, str(self.service_log_path(s.name))) for s in self.settings.services),
                       cli_env=tuple((k, fill_placeholders(v, values)) for k, v in self.settings.cli_env))

    def service_log_path(self, name: str) -> Path:
        """Where a service's stdout and stderr go (one file per run; every start appends)."""
        return self.log_dir / f"service-{name}.log"

    def _start_services(self, lifetime: str) -> None:
        """Start the services of this lifetime ('run' or 'backend') in the profile's order, each once it is ready.

        Raises:
            ProcessStartError: one exited or was not ready within its bound (its output is in the message).
        """
        for service in self.settings.services:
            if service.lifetime == lifetime and service.name not in self.services:
                self._start_service(service)

    def _start_service(self, service: Service) -> None:
        values = self._values()
        fill = lambda text: fill_placeholders(text, values)  # noqa: E731
        process = ManagedProcess([fill(word) for word in service.command], self.service_log_path(service.name),
                                 env={k: fill(v) for k, v in service.env}, name=f"service {service.name}",
                                 cwd=fill(service.cwd) or None)
        self.services[service.name] = process      # registered first: whatever happens, the run's end stops it
        try:
            process.spawn()
        except OSError as exc:
            del self.services[service.name]
            raise ProcessStartError(f"service {service.name} could not start: {exc}") from None
        bound_s = service.ready_timeout_s * self.settings.timeout_multiplier
        check, pause = fill(service.ready), threading.Event()
        deadline = time.monotonic() + bound_s
        while process.running():
            if service_ready(service.ready_kind, check, deadline - time.monotonic(), cwd=fill(service.cwd) or None):
                return
            if time.monotonic() >= deadline:
                break
            pause.wait(0.1)  # the poll's pacing, bounded by the deadline
        exited = not process.running()
        process.stop(grace_s=service.stop_timeout_s)
        del self.services[service.name]
        why = "exited before it was ready" if exited else f"not ready within {bound_s:g} s"
        raise ProcessStartError(f"service {service.name} {why} (ready: {service.ready_kind} {check}):\n"
                                f"{process.log_tail()}")

    def _stop_services(self, lifetime: str) -> None:
        """Stop the running services of this lifetime, the last started first; every one, whatever the others do."""
        declared = {s.name: s for s in self.settings.services}
        failed: list[BaseException] = []
        for name in reversed(list(self.services)):
            if declared[name].lifetime == lifetime:
                try:
                    self.services.pop(name).stop(grace_s=declared[name].stop_timeout_s)
                except Exception as exc:  # the others are stopped all the same; the first failure is raised after
                    failed.append(exc)
        if failed:
            raise failed[0]

    def _named_ports(self, texts: list[str]) -> set[str]:
        from support.settings import PLACEHOLDER

        return {n.split(":", 1)[1] for t in texts for n in PLACEHOLDER.findall(t) if n.startswith("port:")}

    def _backend_ports(self) -> dict[str, int]:
        """The ports one life of the backend takes (its API's, and those only it and its 'backend' services name),
        which must be free before it starts again."""
        s = self.settings
        texts = {**s.launch_texts()}
        run_names = self._named_ports([t for s_ in s.services if s_.lifetime == "run"
                                       for t in texts[f"services.{s_.name}"]])
        life = [*s.backend_command, *(v for _, v in s.backend_env), *(v for _, v in s.backend_tuning_env),
                *(t for s_ in s.services if s_.lifetime == "backend" for t in texts[f"services.{s_.name}"])]
        ports = {name: self.ports[name] for name in self._named_ports(life) - run_names if name in self.ports}
        ports |= {f"fixed {port}": port for port in s.fixed_ports}
        return {**ports, "api": self._api_port} if self._api_port else ports

    def stop_backend(self) -> int | None:
        """Stop the backend (SIGTERM, bounded), then the services living with it; return its exit code."""
        if self.backend is None:
            self._stop_services("backend")   # a start that failed may have left them
            return None
        stopping = time.monotonic()
        try:
            code = self.backend.stop(grace_s=self.settings.backend_stop_timeout_s)
            leftovers = self.backend.leftovers
        finally:
            self.backend = None
            self._stop_services("backend")
        if leftovers:
            with open(self.backend_log_path, "a", encoding="utf-8") as log:
                log.write(f"# ib-resilience: processes left after SIGKILL: {list(leftovers)}\n")
        if self.history is not None:
            self.history.life_ending(stopping, time.monotonic())
        return code

    def stop(self) -> None:
        """Stop everything, backend first, then the services (the last started first), the proxy and the gateway;
        the backend's state files are left as they were before the run. A port still taken is said on stderr."""
        try:
            self.stop_backend()
        finally:
            self._state.restore()
            try:
                self._stop_services("run")
            finally:
                for process in (self.proxy, self.gateway):
                    if process is not None:
                        process.stop()
                self.proxy = self.gateway = None
        taken = {**self.ports, **({"api": self._api_port} if self._api_port else {})}
        held = wait_ports_free(taken.values(), self.settings.backend_stop_timeout_s)
        if held:
            sys.__stderr__.write("LEFT RUNNING: ports still in use after the run: "
                                 + "; ".join(f"{port} by {holder}" for port, holder in held.items()) + "\n")


def free_port() -> int:
    """A loopback port nothing listens on now (taken from the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def allot_ports(names: tuple[str, ...]) -> dict[str, int]:
    """A distinct free loopback port for each name (all held at once while they are chosen, then released)."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in names]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return {name: probe.getsockname()[1] for name, probe in zip(names, probes, strict=True)}
    finally:
        for probe in probes:
            probe.close()


def port_taken(port: int) -> bool:
    """Something accepts connections on loopback ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def service_ready(kind: str, check: str, within_s: float, cwd: str | None = None) -> bool:
    """One readiness check of a service, bounded by ``within_s``: its port accepts a connection, its URL answers
    below HTTP 500, or its command exits 0."""
    bound_s = max(0.2, min(within_s, 5.0))
    if kind == "port":
        try:
            with socket.create_connection(("127.0.0.1", int(check)), timeout=bound_s):
                return True
        except (OSError, ValueError):
            return False
    if kind == "http":
        import requests
        try:
            return requests.get(check, timeout=bound_s).status_code < 500
        except requests.RequestException:
            return False
    try:
        return subprocess.run(check, shell=True, cwd=cwd, timeout=bound_s, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass(frozen=True)
class BackendLaunch:
    """How to start a backend: the command and environment (placeholders ``{ib_host}`` ``{ib_port}``
    ``{api_port}``), where, what to run first, and how to know it is ready."""

    command: tuple[str, ...]
    env: dict[str, str]
    cwd: str = ""
    reset: str = ""
    ready_path: str = "/api/v1/health"
    start_timeout_s: float = 30.0
    api_port: int = 0          # 0: a free port


class BackendState:
    """Files a backend keeps between starts: some restored as they were before the run, some removed.

    Args:
        root: the backend's working directory (paths are relative to it).
        restore: files copied aside at the run's start and put back before every start and at the end.
        remove: files and directories deleted before every start.
        keep_dir: where the copies are kept.
    """

    def __init__(self, root: Path, restore: tuple[str, ...], remove: tuple[str, ...], keep_dir: Path):
        self.root, self.restore_paths, self.remove_paths, self.keep_dir = root, restore, remove, keep_dir

    def snapshot(self) -> None:
        """Copy the files to restore aside (a missing one is removed again before every start)."""
        import shutil

        for index, name in enumerate(self.restore_paths):
            kept = self.keep_dir / f"{index}-{Path(name).name}"
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.unlink(missing_ok=True)
            if (self.root / name).is_file():
                shutil.copy2(self.root / name, kept)

    def restore(self) -> None:
        """Put the kept files back and remove the others."""
        import shutil

        for index, name in enumerate(self.restore_paths):
            kept, target = self.keep_dir / f"{index}-{Path(name).name}", self.root / name
            if kept.is_file():
                shutil.copy2(kept, target)
            else:
                target.unlink(missing_ok=True)
        for name in self.remove_paths:
            target = self.root / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)


def start_lone_gateway(account: str, log_dir: Path) -> ManagedProcess:
    """A throw-away simulator logged in to ``account`` (for the suite's own safety tests); caller stops it."""
    process = ManagedProcess([venv_script("ib-resilience"), "gateway", "--host", "127.0.0.1", "--port", "0",
                              "--control-port", "0", "--account", account, "--allow-live-account"],
                             Path(log_dir) / f"gateway-{account}.log", name=f"gateway-{account}")
    process.start()
    return process
