"""The split backend's launcher: ``wrapper.py --api-port A --ib-side-port I --store-port S [--data-dir D]``.

Starts the IB process (the reference backend, ``refbackend serve`` on ``127.0.0.1:I``, the only process that talks
to IB, configured by the environment it inherits), waits (bounded) until it listens, then starts the API process
(``forwarder.py`` on ``127.0.0.1:A``). Both stay in the wrapper's process group and write to its stdout/stderr.

On SIGTERM or SIGINT the wrapper exits at once (status 0) **without** stopping or waiting for its children: that is
the shape this backend exists to test; whoever started it must stop the whole process group. When a child dies,
the wrapper exits non-zero (its children's group is the starter's to stop).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Bound on the IB process's start (import, bind, listen).
IB_START_TIMEOUT_S = 60.0
#: Pause between two checks of the IB process's port while it starts.
POLL_INTERVAL_S = 0.1


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port (bounded)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_listening(child: subprocess.Popen[bytes], port: int, within_s: float) -> str:
    """'' once ``port`` accepts connections, else why not (the child died, or ``within_s`` passed)."""
    deadline, pause = time.monotonic() + within_s, threading.Event()
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return f"the IB process exited with status {child.returncode} before listening on {port}"
        if listening(port):
            return ""
        pause.wait(POLL_INTERVAL_S)  # the poll's pacing, bounded by the deadline
    return f"the IB process did not listen on {port} within {within_s:g} s"


def exit_now(signum: int, _frame: object) -> None:
    """Leave at once: no child is signalled or waited for (the starter stops the group)."""
    print(f"wrapper: {signal.Signals(signum).name}: exiting now, children left to the process group's starter",
          file=sys.stderr, flush=True)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-port", type=int, required=True, help="the API's port on 127.0.0.1")
    parser.add_argument("--ib-side-port", type=int, required=True, help="the IB process's fixed port")
    parser.add_argument("--store-port", type=int, required=True, help="the store's port")
    parser.add_argument("--data-dir", type=Path, help="the IB process's bar cache goes in a fresh folder under this "
                        "one at every start (default: REFBACKEND_DATA_DIR as inherited)")
    parser.add_argument("--keep-sync-load", action="store_true",
                        help="the API process forwards the synchronous load too (the shape without the missing endpoint)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGINT, exit_now)
    if listening(args.ib_side_port):
        print(f"wrapper: port {args.ib_side_port} is taken (an IB process of an earlier start still runs?)",
              file=sys.stderr, flush=True)
        return 3
    # Children inherit stdout/stderr and the process group (no new session), and no parent-death signal:
    # they outlive the wrapper unless the group is stopped.
    env = dict(os.environ)
    if args.data_dir is not None:
        env["REFBACKEND_DATA_DIR"] = str(args.data_dir / f"start-{os.getpid()}")  # a fresh cache, as embedded
    ib = subprocess.Popen([sys.executable, "-m", "ibtargets.refbackend", "serve", "--host", "127.0.0.1",
                           "--port", str(args.ib_side_port)], stdin=subprocess.DEVNULL, env=env)
    problem = wait_listening(ib, args.ib_side_port, IB_START_TIMEOUT_S)
    if problem:
        print(f"wrapper: {problem}", file=sys.stderr, flush=True)
        return 1
    api = subprocess.Popen([sys.executable, str(HERE / "forwarder.py"), "--api-port", str(args.api_port),
                            "--ib-side-port", str(args.ib_side_port), "--store-port", str(args.store_port),
                            *(["--keep-sync-load"] if args.keep_sync_load else [])],
                           stdin=subprocess.DEVNULL)
    names = {ib.pid: "IB process", api.pid: "API process"}
    print(f"wrapper: IB process {ib.pid} on {args.ib_side_port}, API process {api.pid} on {args.api_port}",
          file=sys.stderr, flush=True)
    pid, status = os.wait()  # blocks until a child ends; SIGTERM interrupts it (exit_now)
    code = os.waitstatus_to_exitcode(status)
    print(f"wrapper: the {names.get(pid, pid)} ended (status {code}); exiting", file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
