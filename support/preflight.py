"""Preflight: before the first scenario, the API, the gateway and the CLI of an external target answer."""

from __future__ import annotations

import os
import shutil
import socket
from urllib.parse import urlsplit

import requests

from support.settings import Settings

#: Bound on each preflight check; the three together stay under 5 s.
CHECK_TIMEOUT_S = 1.5


class PreflightError(RuntimeError):
    """A target the run needs does not answer; the message is one line for the operator."""


def _executable(program: str) -> bool:
    return bool(shutil.which(program) or (os.path.isfile(program) and os.access(program, os.X_OK)))


def programs_missing(settings: Settings) -> list[str]:
    """The CLI and (managed) the backend's command, if they are not executable programs."""
    out = []
    if settings.cli and not _executable(settings.cli[0]):
        out.append(f"the CLI {settings.cli[0]!r} is not an executable program")
    if settings.managed and settings.backend_cwd and not os.path.isdir(settings.backend_cwd):
        out.append(f"the backend's directory {settings.backend_cwd!r} does not exist (--backend-cwd)")
    elif settings.managed and not _executable(settings.backend_command[0]):
        out.append(f"the backend command {settings.backend_command[0]!r} is not an executable program"
                   + (" (check --backend-cwd and --backend-venv)" if not settings.backend_cwd else ""))
    for service in settings.services if settings.managed else ():
        program = service.command[0]
        if "{" not in program and not (_executable(program) or (service.cwd and not os.path.isabs(program)
                                                                and _executable(os.path.join(service.cwd, program)))):
            out.append(f"service {service.name}'s command {program!r} is not an executable program")
    return out


def problems(settings: Settings) -> list[str]:
    """What is unreachable, one line each (empty when the run can start)."""
    out = programs_missing(settings)
    api = settings.api_base_url.rstrip("/") + "/api/v1/health"
    try:
        answer = requests.get(api, timeout=CHECK_TIMEOUT_S)
        if answer.status_code >= 500:
            out.append(f"the API at {api} answers HTTP {answer.status_code}")
    except requests.RequestException as exc:
        out.append(f"the API at {api} does not answer ({exc.__class__.__name__})")
    try:
        with socket.create_connection((settings.ib_host, settings.ib_port), timeout=CHECK_TIMEOUT_S):
            pass
    except OSError as exc:
        out.append(f"the IB gateway at {settings.ib_host}:{settings.ib_port} does not accept connections ({exc.strerror or exc})")
    parsed = urlsplit(settings.api_base_url)
    if not parsed.scheme or not parsed.hostname:
        out.append(f"api_base_url {settings.api_base_url!r} is not a URL")
    return out


def ensure_reachable(settings: Settings) -> None:
    """Raise :class:`PreflightError` naming everything unreachable (programs only for a managed target)."""
    if settings.target == "embedded":
        return
    found = programs_missing(settings) if settings.managed else problems(settings)
    if found:
        raise PreflightError("preflight failed: " + "; ".join(found))
