"""Start and stop the project's servers as real processes, with bounds on every wait.

Every server of this project (gateway, proxy, reference backend) prints one line
``READY <role> key=value ...`` on stdout once it listens; :class:`ManagedProcess`
waits for it, parses it, keeps the whole output in a log file, and stops the
process group with SIGTERM then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import psutil

READY_RE = re.compile(r"^READY (?P<role>\S+)(?P<rest>(?: \S+=\S*)*)\s*$")


def ready_line(role: str, **values: object) -> str:
    """The line a server prints when it listens, e.g. ``READY gateway host=127.0.0.1 port=4002``."""
    return "READY " + role + "".join(f" {k}={v}" for k, v in values.items())


def announce_ready(role: str, **values: object) -> None:
    """Print :func:`ready_line` on stdout and flush it."""
    print(ready_line(role, **values), flush=True)


def parse_ready(line: str) -> tuple[str, dict[str, str]] | None:
    """``(role, values)`` from a READY line, or None for any other line."""
    match = READY_RE.match(line.strip())
    if not match:
        return None
    values = dict(part.split("=", 1) for part in match.group("rest").split())
    return match.group("role"), values


#: Inherited by every process a :class:`ManagedProcess` starts, so its whole tree can be found and stopped.
TAG_VARIABLE = "IB_RESILIENCE_PROCESS_TAG"
#: Inherited too: ``<pid>:<start time>`` of the process that started the tree, so a tree whose starter was
#: killed (SIGKILL leaves no chance to stop anything) is found and stopped by the next one (:func:`sweep_orphans`).
OWNER_VARIABLE = "IB_RESILIENCE_OWNER"


def owner_token(pid: int | None = None) -> str:
    """``<pid>:<start time>`` of a process (this one by default): unique even when PIDs are reused."""
    proc = psutil.Process(pid or os.getpid())
    return f"{proc.pid}:{proc.create_time():.3f}"


def _owner_alive(token: str) -> bool:
    try:
        return owner_token(int(token.partition(":")[0])) == token
    except (ValueError, psutil.Error):
        return False


def sweep_orphans(grace_s: float = 5.0) -> list[int]:
    """Stop every process a run of this suite started whose starter is gone (a run killed with SIGKILL, whose
    servers' children outlived the parent-death signal their leaders got); return their PIDs."""
    orphans = set()
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            token = proc.environ().get(OWNER_VARIABLE)
            if token and not _owner_alive(token) and _alive(proc):
                orphans.add(proc)
    for proc in orphans:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    left = wait_gone(orphans, grace_s)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_gone(left, KILL_WAIT_S)
    return sorted(p.pid for p in orphans)
#: How long to wait for processes to die after SIGKILL.
KILL_WAIT_S = 5.0


def process_tree(leader_pid: int, tag: str = "") -> set[psutil.Process]:
    """The live processes a leader started: the leader, its descendants, the members of its process group and
    session (a leader started with ``start_new_session`` heads both), and every process whose environment
    carries ``tag`` in :data:`TAG_VARIABLE`. Zombies are left out (they hold nothing)."""
    found: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        leader = psutil.Process(leader_pid)
        for proc in [leader, *leader.children(recursive=True)]:
            found[proc.pid] = proc
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if leader_pid and (os.getpgid(proc.pid) == leader_pid or os.getsid(proc.pid) == leader_pid):
                found[proc.pid] = proc
                continue
            if tag and proc.environ().get(TAG_VARIABLE) == tag:
                found[proc.pid] = proc
    for proc in list(found.values()):
        with contextlib.suppress(psutil.Error):
            found.update({child.pid: child for child in proc.children(recursive=True)})
    return {proc for proc in found.values() if _alive(proc)}


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(members: Iterable[psutil.Process], within_s: float,
              leader: subprocess.Popen[str] | None = None) -> set[psutil.Process]:
    """Wait (bounded by ``within_s``) until every member has ended; return those still alive. The leader, a
    child of this process, is reaped as it ends."""
    deadline = time.monotonic() + within_s
    pause = threading.Event()
    left = set(members)
    while True:
        if leader is not None:
            leader.poll()
        left = {proc for proc in left if _alive(proc)}
        if not left or time.monotonic() >= deadline:
            return left
        pause.wait(0.05)  # the poll's pacing, bounded by the deadline


def port_holder(port: int, host: str = "127.0.0.1") -> str:
    """Who holds a TCP port on ``host`` ('' when it is free to listen on): ``pid 1234 (uvicorn …)`` when the
    holder is visible, else ``an unknown process``."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed socket's TIME_WAIT is no holder
        try:
            probe.bind((host, port))
            return ""
        except OSError:
            pass
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid and conn.status == psutil.CONN_LISTEN:
                with contextlib.suppress(psutil.Error):
                    return f"pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline())[:120]})"
                return f"pid {conn.pid}"
    return "an unknown process"


def wait_ports_free(ports: Iterable[int], within_s: float) -> dict[int, str]:
    """Wait (bounded) until every port is free to listen on; return ``{port: holder}`` for those still held."""
    deadline = time.monotonic() + within_s
    pause = threading.Event()
    while True:
        held = {port: holder for port in ports if port and (holder := port_holder(port))}
        if not held or time.monotonic() >= deadline:
            return held
        pause.wait(0.05)  # the poll's pacing, bounded by the deadline


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so no server outlives a killed run (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def venv_script(name: str) -> str:
    """Path of a console script installed beside the running interpreter."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class ProcessStartError(RuntimeError):
    """A server did not report READY in time (its output is in the message)."""


class ManagedProcess:
    """One server process: started in its own process group, stopped with a bound.

    Args:
        argv: the command.
        log_path: where stdout and stderr go (kept for evidence).
        env: extra environment variables.
        name: for messages.
    """

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 name: str | None = None, cwd: str | None = None):
        self.argv = list(argv)
        self.cwd = cwd
        self.log_path = Path(log_path)
        self.tag = uuid.uuid4().hex
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {}), TAG_VARIABLE: self.tag,
                    OWNER_VARIABLE: owner_token()}
        self.leftovers: tuple[int, ...] = ()   # PIDs still alive after the SIGKILL (none, normally)
        self.name = name or Path(self.argv[0]).name
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, str] = {}
        self._ready_event = threading.Event()
        self._pump: threading.Thread | None = None
        self._log: IO[str] | None = None

    @property
    def pid(self) -> int:
        """The process ID (the process must have been started)."""
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    def start(self, ready_timeout_s: float = 20.0) -> dict[str, str]:
        """Start the process and wait for its READY line; return the values it printed.

        Raises:
            ProcessStartError: it exited or stayed silent past ``ready_timeout_s``.
        """
        self._spawn()
        if not self._ready_event.wait(ready_timeout_s) or not self.ready:
            self.stop()
            tail = self.log_tail()
            raise ProcessStartError(f"{self.name} not ready within {ready_timeout_s} s:\n{tail}")
        return self.ready

    def start_until_url(self, url: str, timeout_s: float = 120.0) -> None:
        """Start a process that prints no READY line; wait until ``url`` answers below HTTP 500.

        Raises:
            ProcessStartError: it exited, or ``url`` did not answer within ``timeout_s``.
        """
        import requests

        self._spawn()
        deadline, pause = time.monotonic() + timeout_s, threading.Event()
        while time.monotonic() < deadline and self.running():
            try:
                if requests.get(url, timeout=2.0).status_code < 500:
                    self.ready = {"url": url}
                    return
            except requests.RequestException:
                pass
            pause.wait(0.1)  # the poll's pacing, bounded by the deadline
        self.stop()
        raise ProcessStartError(f"{self.name}: {url} did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def spawn(self) -> None:
        """Start the process without waiting for it: the caller judges when it is ready (a service's own check)."""
        self._spawn()

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")
        self._log.write(f"$ {shlex.join(self.argv)}\n")
        self._log.flush()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, text=True, cwd=self.cwd,
                                     start_new_session=True, bufsize=1, preexec_fn=_die_with_parent)
        self._pump = threading.Thread(target=self._read_output, name=f"{self.name}-output", daemon=True)
        self._pump.start()

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self._log is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            if not self.ready:
                parsed = parse_ready(line)
                if parsed:
                    self.ready = parsed[1]
                    self._ready_event.set()
        self._ready_event.set()  # EOF: wake a waiting start()

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        """Send a signal to the process (not its group)."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signum)

    def stop(self, grace_s: float = 5.0) -> int | None:
        """Stop every process this one started: SIGTERM to its group and to each descendant, wait for all of them
        up to ``grace_s``, then SIGKILL what is left (and wait again, bounded); return the leader's exit code.

        A wrapper that exits at once on SIGTERM leaves its children running: they are found by their process
        group and session (the leader's PID), by their ancestry, and by the environment tag every descendant
        inherits (:data:`TAG_VARIABLE`), so one that called ``setsid`` or was re-parented is stopped too.
        """
        if self.proc is None:
            return None
        members = self.members()
        self._signal_all(members, signal.SIGTERM)
        left = wait_gone(members, grace_s, self.proc)
        if left:
            left = left | self.members()  # children started while stopping
            self._signal_all(left, signal.SIGKILL)
            left = wait_gone(left, KILL_WAIT_S, self.proc)
        self.leftovers = tuple(sorted(p.pid for p in left))
        if self._pump is not None:
            self._pump.join(2.0)
        if self._log is not None:
            if self.leftovers:
                self._log.write(f"# processes left after SIGKILL: {self.leftovers}\n")
            self._log.close()
            self._log = None
        return self.proc.returncode

    def members(self) -> set[psutil.Process]:
        """Every live process this one started (itself included while it lives)."""
        return process_tree(self.proc.pid if self.proc is not None else 0, self.tag)

    def _signal_all(self, members: set[psutil.Process], signum: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
        for member in members:  # those that left the group (setsid, or their own group); one signal each
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(member.pid) != self.proc.pid:
                    member.send_signal(signum)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's output."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ManagedProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()



#: How many runs' server logs ``reports/logs`` keeps (the oldest folders go first).
KEEP_RUN_LOGS = 10


def run_log_dir(reports_dir: Path, keep: int = KEEP_RUN_LOGS) -> Path:
    """A fresh folder for this run's server logs, ``<reports_dir>/logs/<YYYYmmdd-HHMMSS>``, with ``logs/latest``
    pointing at it; only the ``keep`` newest run folders are kept."""
    import shutil

    logs = Path(reports_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = logs / stamp, 1
    while folder.exists():
        n += 1
        folder = logs / f"{stamp}-{n}"
    folder.mkdir()
    latest = logs / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink() if latest.is_symlink() else shutil.rmtree(latest, ignore_errors=True)
    latest.symlink_to(folder.name)
    runs = sorted(p for p in logs.iterdir() if p.is_dir() and not p.is_symlink() and p.name[:8].isdigit())
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in logs.glob("*.log"):  # the flat layout of earlier versions
        stale.unlink(missing_ok=True)
    return folder
