"""A worker of its own: a private loopback and a private copy of a backend's folders (Linux namespaces).

Two workers that each start a managed backend would otherwise share what the backend fixes for itself: a port
its CLI always calls (KTRDR's ``localhost:8000``), a second process's fixed port, the files it keeps in its
working directory. ``python -m ibresilience.isolate --overlay DIR --state S -- COMMAND…`` runs COMMAND in a new
network namespace (its own loopback: the same fixed ports in every worker, and no route off the machine) and a
new mount namespace where each ``DIR`` is covered by an overlay whose writes go to ``S`` (the backend sees its
usual paths; its files on disk are never changed). The command replaces this process (same PID), so signals
reach it as before.

Needs ``unshare(1)`` and the right to create namespaces (root, or unprivileged user namespaces):
:func:`available` says whether this machine allows it, and why not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

#: Bound on each set-up command (unshare's probe, mount, ip).
SETUP_TIMEOUT_S = 10.0
_INNER = "--inside"


def available() -> str:
    """'' when this machine can give a worker its own network and mount namespaces; else why not (one line)."""
    if sys.platform != "linux":
        return f"network namespaces are Linux's; this is {sys.platform}"
    missing = [tool for tool in ("unshare", "mount", "ip") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (util-linux and iproute2 provide them)"
    try:
        probe = subprocess.run(["unshare", "-m", "-n", "--", "ip", "link", "set", "lo", "up"], capture_output=True,
                               text=True, timeout=SETUP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if probe.returncode != 0:
        return f"unshare -m -n is not allowed here ({(probe.stderr or probe.stdout).strip()[:160]})"
    return ""


def command(inner: list[str], overlays: list[Path], state: Path) -> list[str]:
    """The command line that runs ``inner`` isolated, each of ``overlays`` covered by a writable overlay kept
    in ``state``."""
    argv = ["unshare", "-m", "-n", "--", sys.executable, "-m", "ibresilience.isolate", _INNER, "--state", str(state)]
    for folder in overlays:
        argv += ["--overlay", str(folder)]
    return [*argv, "--", *inner]


def _setup(overlays: list[Path], state: Path) -> None:
    """Inside the new namespaces: mounts stay private, each folder gets its overlay, the loopback comes up."""
    def run(*argv: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SETUP_TIMEOUT_S)
        if done.returncode != 0:
            raise SystemExit(f"ib-resilience isolate: {' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")

    run("mount", "--make-rprivate", "/")
    for number, folder in enumerate(overlays, 1):
        upper, work = state / f"overlay-{number}" / "upper", state / f"overlay-{number}" / "work"
        shutil.rmtree(state / f"overlay-{number}", ignore_errors=True)   # every run starts from the real folder
        upper.mkdir(parents=True)
        work.mkdir(parents=True)
        run("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={folder},upperdir={upper},workdir={work}",
            str(folder))
    run("ip", "link", "set", "lo", "up")


def main(argv: list[str] | None = None) -> int:
    """Set up (inside the namespaces ``unshare`` made) and become the command."""
    parser = argparse.ArgumentParser(prog="python -m ibresilience.isolate")
    parser.add_argument(_INNER, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, required=True, help="where the overlays' writes go")
    parser.add_argument("--overlay", type=Path, action="append", default=[], help="a folder to cover")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    inner = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not inner:
        parser.error("no command after --")
    if not args.inside:
        os.execvp("unshare", command(inner, args.overlay, args.state))
    _setup([folder.resolve() for folder in args.overlay], args.state.resolve())
    os.execvp(inner[0], inner)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
