"""CLI driver: runs the system's command-line tool under a pseudo-terminal (pexpect), transcripts kept."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pexpect

from support.drivers.complaints import WARNING_PATTERNS, complaint_lines


@dataclass(frozen=True)
class CliRun:
    """One finished (or abandoned) command."""

    argv: tuple[str, ...]
    exit_code: int | None
    output: str
    elapsed_s: float
    timed_out: bool = False
    interrupted: bool = False
    started_mono: float = 0.0
    interrupted_mono: float | None = None   # when Ctrl-C was pressed

    @property
    def finished_mono(self) -> float:
        """Monotonic time the command ended (or was abandoned)."""
        return self.started_mono + self.elapsed_s

    @property
    def warnings(self) -> list[str]:
        """Lines of the transcript matching :data:`WARNING_PATTERNS`."""
        return complaint_lines(self.output, WARNING_PATTERNS)

    def describe(self, tail_lines: int = 25) -> str:
        """Command, exit code, time and the end of the transcript."""
        tail = "\n".join(self.output.splitlines()[-tail_lines:])
        state = "timed out" if self.timed_out else f"exit {self.exit_code}"
        return f"$ {' '.join(self.argv)}  ({state}, {self.elapsed_s:.1f} s)\n{tail}"


class CliSession:
    """A running command that can be watched and interrupted (Ctrl-C)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: str | None,
                 on_finish: Callable[[CliRun], None] | None = None):
        self.argv = tuple(argv)
        self._on_finish = on_finish
        self.started = time.monotonic()
        self.interrupted = False
        self.interrupted_mono: float | None = None
        self._child = pexpect.spawn(self.argv[0], list(self.argv[1:]), env=env, cwd=cwd,
                                    encoding="utf-8", codec_errors="replace", timeout=None,
                                    dimensions=(50, 200))
        self._output: list[str] = []

    def expect(self, pattern: str, timeout_s: float) -> bool:
        """Wait (bounded) until ``pattern`` (a regex) appears; False if it did not."""
        try:
            self._child.expect(pattern, timeout=timeout_s)
        except (pexpect.TIMEOUT, pexpect.EOF):
            self._collect()
            return False
        self._output.append((self._child.before or "") + (self._child.after or ""))
        return True

    def interrupt(self) -> None:
        """Send Ctrl-C through the terminal, as a user would."""
        self.interrupted = True
        self.interrupted_mono = time.monotonic()
        self._child.sendintr()

    def finish(self, timeout_s: float) -> CliRun:
        """Wait (bounded) for the command to end; kill it if it does not."""
        timed_out = False
        try:
            self._child.expect(pexpect.EOF, timeout=timeout_s)
        except pexpect.TIMEOUT:
            timed_out = True
        self._collect()
        if self._child.isalive():
            self._child.kill(signal.SIGKILL)
        self._child.close(force=True)
        code = self._child.exitstatus
        if code is None and self._child.signalstatus is not None:
            code = 128 + self._child.signalstatus
        result = CliRun(self.argv, code, "".join(self._output).replace("\r\n", "\n"),
                        time.monotonic() - self.started, timed_out, self.interrupted, self.started,
                        self.interrupted_mono)
        if self._on_finish is not None:
            self._on_finish(result)
        return result

    def _collect(self) -> None:
        before = self._child.before
        if isinstance(before, str):
            self._output.append(before)


@dataclass
class CliDriver:
    """Runs ``<cli> <args>`` with ``PYTHONWARNINGS=default`` and keeps every transcript.

    Args:
        command: the CLI's argv prefix, e.g. ``(".venv/bin/refbackend",)`` or ``("ktrdr",)``.
        api_base_url: the API the CLI is pointed at.
        api_pointing: how: ``env:NAME`` (an environment variable), ``option:--flag`` (an option before the
            command's arguments) or ``fixed:URL`` (the CLI always calls that URL and cannot be pointed).
        extra_env: more environment for the CLI.
    """

    command: tuple[str, ...]
    api_base_url: str
    api_pointing: str = "env:KTRDR_API_URL"
    extra_env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    transcripts: list[CliRun] = field(default_factory=list)
    on_record: Callable[[CliRun], None] | None = None   # also hands every run to the run's history

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._how, _, self._where = self.api_pointing.partition(":")

    @property
    def can_be_pointed(self) -> bool:
        """Whether the suite can choose which API the CLI calls."""
        return self._how != "fixed"

    def env(self, api_base_url: str | None = None) -> dict[str, str]:
        """The environment every command runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "PYTEST_"))}
        env.update({"PYTHONWARNINGS": "default", "PYTHONUNBUFFERED": "1", "TERM": "dumb",
                    "NO_COLOR": "1", "COLUMNS": "200"})
        if self._how == "env":
            env[self._where] = api_base_url or self.api_base_url
        env.update(self.extra_env)
        return env

    def argv(self, args: Sequence[str], api_base_url: str | None = None) -> tuple[str, ...]:
        """The full command line for ``args``."""
        pointing = (self._where, api_base_url or self.api_base_url) if self._how == "option" else ()
        return (*self.command, *pointing, *args)

    def arguments(self, run: CliRun) -> tuple[str, ...]:
        """The arguments a step gave ``run`` (its command line without the CLI and the API pointing)."""
        return run.argv[len(self.command) + (2 if self._how == "option" else 0):]

    def spawn(self, args: Sequence[str], api_base_url: str | None = None) -> CliSession:
        """Start a command and return its session (for interactive steps)."""
        return CliSession(self.argv(args, api_base_url), self.env(api_base_url), self.cwd, self.record)

    def run(self, args: Sequence[str], timeout_s: float, api_base_url: str | None = None) -> CliRun:
        """Run a command to completion (bounded) and record its transcript."""
        return self.spawn(args, api_base_url).finish(timeout_s)

    def record(self, result: CliRun) -> None:
        """Keep a transcript (thread-safe)."""
        with self._lock:
            self.transcripts.append(result)
        if self.on_record is not None:
            self.on_record(result)
