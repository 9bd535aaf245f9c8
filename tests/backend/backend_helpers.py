"""Helpers of the reference-backend tests: the backend as a process, a timed API client, gateway events."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from ibtargets.common.launch import ManagedProcess
from support.drivers.api import ApiDriver, ApiResponse

T = TypeVar("T")
HOST = "127.0.0.1"
#: Bound on a whole in-process async test body.
BODY_TIMEOUT_S = 60.0
#: Every API call of a test is bounded by this (the contract's own bound is 5 s).
API_TIMEOUT_S = 15.0

#: Time compressed for tests: GC every 0.5 s, long idle unless a test shortens it, no pacing pause.
COMPRESSED_ENV = {
    "IB_TIMEOUT": "3.0",
    "REFBACKEND_HEALTH_INTERVAL_S": "0.5",
    "REFBACKEND_MAX_IDLE_S": "60",
    "REFBACKEND_PACING_DELAY_S": "0",
    "REFBACKEND_PACING_BACKOFF_S": "0.5",
    "REFBACKEND_LOG_LEVEL": "info",
}


def run(body: Awaitable[T], timeout_s: float = BODY_TIMEOUT_S) -> T:
    """Run an async test body on a fresh event loop, bounded."""
    return asyncio.run(asyncio.wait_for(body, timeout_s))  # type: ignore[arg-type]


class Api(ApiDriver):
    """The suite's API driver with the shorthands these tests use."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> ApiResponse:
        """``GET``."""
        return self.call("GET", path, params=params)

    def post(self, path: str, json: Any = None, params: dict[str, Any] | None = None) -> ApiResponse:
        """``POST`` with a JSON body."""
        return self.call("POST", path, json, params)

    def score(self) -> float:
        """The current resilience score."""
        answer = self.get("/ib/resilience")
        assert answer.status == 200, answer.describe()
        return answer.data["overall_resilience_score"]


class BackendProcess:
    """``refbackend serve`` as a real process, with its API client.

    Args:
        ib_port: where its IB connections go (gateway or proxy).
        log_dir: its log file and data directory go here.
        env: extra environment (overrides :data:`COMPRESSED_ENV`).
        argv: the command; the console script by default.
    """

    def __init__(self, ib_port: int, log_dir: Path, env: dict[str, str] | None = None,
                 argv: list[str] | None = None):
        full_env = {**COMPRESSED_ENV, "IB_HOST": HOST, "IB_PORT": str(ib_port),
                    "REFBACKEND_DATA_DIR": str(log_dir / "data"), "PYTHONWARNINGS": "default", **(env or {})}
        command = argv or [str(Path(sys.executable).parent / "refbackend"), "serve", "--host", HOST, "--port", "0"]
        self.process = ManagedProcess(command, log_dir / "backend.log", env=full_env, name="refbackend")
        self.url = ""
        self.api: Api | None = None

    def start(self) -> BackendProcess:
        """Start and wait for READY."""
        ready = self.process.start(ready_timeout_s=30.0)
        self.url = ready["url"]
        self.api = Api(self.url, timeout_s=API_TIMEOUT_S)
        return self

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after 5 s); the exit code."""
        return self.process.stop()

    def log(self) -> str:
        """Everything the process printed."""
        return self.process.log_path.read_text(encoding="utf-8", errors="replace")


def events(target: Any, kind: str, since: int = 0, **match: Any) -> list[dict[str, Any]]:
    """History events of a gateway or proxy of one kind whose fields equal ``match``."""
    return [e for e in target.history(since) if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())]


def open_connections(gateway: Any) -> list[dict[str, Any]]:
    """The gateway's connections that are still open."""
    return [c for c in gateway.connections() if c["disconnected_mono"] is None]


def cli_env(api_url: str) -> dict[str, str]:
    """Environment for the CLI under test: the API address, warnings on, no colour."""
    return {**os.environ, "KTRDR_API_URL": api_url, "PYTHONWARNINGS": "default", "NO_COLOR": "1",
            "TERM": "dumb", "COLUMNS": "120"}


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def past_weekday_utc(hour: int) -> dt.datetime:
    """``hour``:00 UTC on a weekday at least a week ago (a day with trading sessions)."""
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=7)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)
