"""``ib-resilience rehearse``: start a real backend behind the suite's simulator and proxy, run a level against it.

The backend is the user's own, already built (KTRDR in its own venv, say): this tool only starts it by
command, points it at the fault proxy, waits for its API, runs the specification in external mode and
stops everything, whatever happens. Placeholders in the command, the reset command and ``--backend-env``
values: ``{ib_host}``, ``{ib_port}`` (the proxy's listener), ``{api_port}``.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from .launch import ManagedProcess, venv_script
from .settings import ROOT


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(prog="ib-resilience rehearse", description=__doc__.splitlines()[0])
    parser.add_argument("--backend-command", required=True, help="how to start the backend's API (shell words)")
    parser.add_argument("--backend-cwd", help="directory to start it in")
    parser.add_argument("--backend-env", action="append", default=[], metavar="K=V", help="extra environment")
    parser.add_argument("--reset-command", help="run (bounded, 60 s) before the backend starts")
    parser.add_argument("--api-port", type=int, default=8000, help="the port the backend's API listens on")
    parser.add_argument("--cli", required=True, help="the backend's CLI command")
    parser.add_argument("--ready-timeout-s", type=float, default=120.0, help="bound on the backend's start")
    parser.add_argument("--level", default="standard", help="basic, standard or exhaustive")
    parser.add_argument("--reports-dir", type=Path, required=True, help="where this rehearsal's reports go")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="after --: more `ib-resilience run` options")
    return parser


def _fill(text: str, values: dict[str, object]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def main(argv: list[str] | None = None) -> int:
    """Start gateway → proxy → the user's backend, run the level in external mode, stop everything."""
    args = build_parser().parse_args(argv)
    logs = args.reports_dir / "logs"
    tool = venv_script("ib-resilience")
    gateway = ManagedProcess([tool, "gateway", "--host", "127.0.0.1", "--port", "0", "--control-port", "0",
                              "--identical-window-s", "2", "--window-max", "100000"], logs / "gateway.log", name="gateway")
    proxy = backend = None
    try:
        g = gateway.start()
        proxy = ManagedProcess([tool, "proxy", "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{g['port']}",
                                "--control-port", "0"], logs / "proxy.log", name="proxy")
        p = proxy.start()
        values = {"ib_host": "127.0.0.1", "ib_port": p["port"], "api_port": args.api_port}
        if args.reset_command:
            subprocess.run(_fill(args.reset_command, values), shell=True, cwd=args.backend_cwd, timeout=60, check=True)
        env = {"IB_HOST": "127.0.0.1", "IB_PORT": str(p["port"]),
               **dict(_fill(kv, values).split("=", 1) for kv in args.backend_env)}
        backend = ManagedProcess(shlex.split(_fill(args.backend_command, values)), logs / "backend.log", env=env,
                                 name="backend", cwd=args.backend_cwd)
        backend.start_until_url(f"http://127.0.0.1:{args.api_port}/api/v1/health", args.ready_timeout_s)
        run = [tool, "run", "--level", args.level, "--report",
               "--reports-dir", str(args.reports_dir), "--target", "external",
               "--api-base-url", f"http://localhost:{args.api_port}", "--cli", args.cli,
               "--ib-host", "127.0.0.1", "--ib-port", g["port"],
               "--gateway-control", f"http://127.0.0.1:{g['control_port']}",
               "--proxy-control", f"http://127.0.0.1:{p['control_port']}",
               "-D", f"backend_pid={backend.pid}", *[a for a in args.run_args if a != "--"]]
        print("$ " + shlex.join(run), flush=True)
        return subprocess.run(run, cwd=ROOT).returncode
    finally:
        for process in (backend, proxy, gateway):
            if process is not None:
                process.stop(grace_s=10.0)
