"""Targets: where the system under test and its IB gateway are, and (embedded) starting them.

Embedded mode starts, as real processes on free loopback ports::

    gateway simulator  ◀── fault proxy  ◀── reference backend (API)  ◀── CLI
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ibtargets.common.accounts import is_paper_account
from ibtargets.common.launch import ManagedProcess, ProcessStartError, sweep_orphans, venv_script, wait_ports_free
from support.settings import Settings, fill_placeholders

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

    def describe(self) -> dict[str, str]:
        """Flat text view (for reports and environment.properties)."""
        return {k: " ".join(v) if isinstance(v, tuple) else str(v) for k, v in dataclasses.asdict(self).items()}


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
                   settings.gateway_control, settings.proxy_control, pid, port, host, settings.backend_log)


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
        self._backend_ports: tuple[int, ...] = ()
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
        return self.start_backend()

    def start_backend(self, defaults: bool = False) -> Targets:
        """(Re)start the backend; ``defaults``: with its own default timings (the reference backend: KTRDR's idle
        and health timings; yours: without ``backend_tuning_env``).

        The reference backend (embedded) and yours (managed) take the same road: a command with the
        addresses filled in, output captured to ``backend.log``, ready once its API answers.
        """
        self.stop_backend()
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

    def _launch(self, launch: BackendLaunch) -> Targets:
        """Reset the backend's state, start it, wait until its API answers."""
        values = {"ib_host": "127.0.0.1", "ib_port": self._proxy_port, "api_port": launch.api_port or free_port()}
        fill = lambda text: fill_placeholders(text, values)  # noqa: E731
        self._backend_ports = (int(values["api_port"]),)
        self._check_ports_free(self._backend_ports)
        self._state.restore()
        if launch.reset:
            subprocess.run(fill(launch.reset), shell=True, cwd=launch.cwd or None, timeout=60, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Every un-awaited coroutine is printed, not only the first one at each place in the code.
        env = {"PYTHONWARNINGS": "always::RuntimeWarning", **{k: fill(v) for k, v in launch.env.items()}}
        self.backend = ManagedProcess([fill(word) for word in launch.command], self.backend_log_path,
                                      env=env, name="backend", cwd=launch.cwd or None)
        url = f"http://localhost:{values['api_port']}"
        self.backend.start_until_url(url + launch.ready_path, launch.start_timeout_s)
        return self.targets(url)

    def _check_ports_free(self, ports: tuple[int, ...]) -> None:
        """Every port a start is given must be free (a process of an earlier start may still be letting go of
        it, for up to the stop bound); a port still held is a clear refusal, never a backend that fails to bind.

        Raises:
            ProcessStartError: a port is held, naming the process that holds it.
        """
        held = wait_ports_free(ports, self.settings.backend_stop_timeout_s)
        if held:
            who = "; ".join(f"port {port} is held by {holder}" for port, holder in held.items())
            raise ProcessStartError(f"backend not started: {who} (a process of an earlier start, or another "
                                    "program, still listens there)")

    @property
    def backend_ports(self) -> tuple[int, ...]:
        """The ports the backend's last start was given (each checked free before the next start)."""
        return self._backend_ports

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
        return Targets(url, cli, "127.0.0.1", self._gateway_port, self._gateway_control, self._proxy_control,
                       self.backend.pid, self._proxy_port, backend_log=str(self.backend_log_path))

    def stop_backend(self) -> int | None:
        """Stop the backend (SIGTERM, bounded); return its exit code."""
        if self.backend is None:
            return None
        stopping = time.monotonic()
        code = self.backend.stop(grace_s=self.settings.backend_stop_timeout_s)
        leftovers = self.backend.leftovers
        self.backend = None
        held = wait_ports_free(self._backend_ports, self.settings.backend_stop_timeout_s)
        if leftovers or held:
            with open(self.backend_log_path, "a", encoding="utf-8") as log:
                log.write(f"# ib-resilience: after the stop, processes left {list(leftovers)}, ports held {held}\n")
        if self.history is not None:
            self.history.life_ending(stopping, time.monotonic())
        return code

    def stop(self) -> None:
        """Stop everything, backend first; the backend's state files are left as they were before the run."""
        self.stop_backend()
        self._state.restore()
        for process in (self.proxy, self.gateway):
            if process is not None:
                process.stop()
        self.proxy = self.gateway = None


def free_port() -> int:
    """A loopback port nothing listens on now (taken from the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
