"""Stopping a managed process stops everything it started (issue 23, item 1).

The backend here is a wrapper that exits at once on SIGTERM and leaves a child that ignores SIGTERM and holds a
port: the shape that left "address already in use" and error 326 behind when only the leader was waited for.
"""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from ibtargets.common.launch import TAG_VARIABLE, ManagedProcess, port_holder, process_tree, wait_ports_free

WRAPPER = textwrap.dedent("""
    import os, signal, subprocess, sys
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))      # exits first, children left to themselves
    subprocess.Popen([sys.executable, sys.argv[1], *sys.argv[2:]])
    signal.pause()
""")

STUBBORN = textwrap.dedent("""
    import os, signal, socket, sys, time
    port, shape = int(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)                # only SIGKILL ends it
    if shape == "own-session":
        os.setsid()                                              # leaves the wrapper's group and session
    if shape == "orphan" and os.fork():
        os._exit(0)                                              # its parent gone: re-parented, ancestry lost
    server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port)); server.listen()
    print(f"READY stubborn pid={os.getpid()} port={port}", flush=True)
    while True:
        signal.pause()
""")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("shape", ["same-group", "own-session", "orphan"])
def test_a_child_that_outlives_its_wrapper_is_stopped_and_its_port_freed(tmp_path: Path, shape: str) -> None:
    (tmp_path / "wrapper.py").write_text(WRAPPER)
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    port = free_port()
    process = ManagedProcess([sys.executable, str(tmp_path / "wrapper.py"), str(tmp_path / "stubborn.py"),
                              str(port), shape], tmp_path / "backend.log", name="wrapper")
    ready = process.start(ready_timeout_s=10.0)
    child = psutil.Process(int(ready["pid"]))
    assert port_holder(port), "the child listens"
    assert child.pid in {p.pid for p in process.members()}, "the child is one of the process's members"

    started = time.monotonic()
    process.stop(grace_s=1.0)
    took_s = time.monotonic() - started

    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, "the child outlived the stop"
    assert process.leftovers == ()
    assert port_holder(port) == "", f"port {port} still held after the stop"
    assert 1.0 <= took_s < 1.0 + 5.0, f"SIGTERM ignored: killed after the 1 s grace, took {took_s:.2f} s"


def test_a_process_that_obeys_sigterm_is_not_killed(tmp_path: Path) -> None:
    script = tmp_path / "polite.py"
    script.write_text("import signal,sys\nprint('READY polite ok=1', flush=True)\nsignal.pause()\n")
    process = ManagedProcess([sys.executable, str(script)], tmp_path / "polite.log", name="polite")
    process.start(ready_timeout_s=10.0)
    started = time.monotonic()
    code = process.stop(grace_s=5.0)
    assert code == -15, "ended by SIGTERM, not SIGKILL"
    assert time.monotonic() - started < 2.0, "no wait past the process's own end"


def test_the_tree_is_found_by_the_inherited_tag(tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import os,signal\nprint('READY sleeper ok=1', flush=True)\nsignal.pause()\n")
    process = ManagedProcess([sys.executable, str(script)], tmp_path / "s.log", name="sleeper")
    process.start(ready_timeout_s=10.0)
    try:
        assert psutil.Process(process.pid).environ()[TAG_VARIABLE] == process.tag
        assert {p.pid for p in process_tree(0, process.tag)} == {process.pid}, "found by its tag alone"
        assert TAG_VARIABLE not in os.environ, "the suite itself carries no tag"
    finally:
        process.stop(grace_s=2.0)


def test_wait_ports_free_names_the_holder(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        held = wait_ports_free([port], within_s=0.2)
        assert set(held) == {port} and str(os.getpid()) in held[port]
    assert wait_ports_free([port], within_s=2.0) == {}


def test_a_process_in_the_group_gets_one_sigterm_not_two(tmp_path: Path) -> None:
    """A second SIGTERM makes servers like uvicorn abandon their graceful shutdown (a traceback in the output)."""
    script = tmp_path / "counts.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, threading
        done = threading.Event()
        def term(*_):
            print("TERM", flush=True)
            threading.Timer(0.3, done.set).start()       # a graceful shutdown takes a moment
        signal.signal(signal.SIGTERM, term)
        print("READY counts ok=1", flush=True)
        done.wait(30)
    """))
    process = ManagedProcess([sys.executable, str(script)], tmp_path / "counts.log", name="counts")
    process.start(ready_timeout_s=10.0)
    process.stop(grace_s=5.0)
    assert (tmp_path / "counts.log").read_text().count("TERM") == 1


def test_a_tree_whose_starter_was_killed_is_swept_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL gives the starter no chance to stop anything: a wrapper's children outlive it. The next run finds
    them by the starter token they inherited and stops them; a tree whose starter lives is left alone."""
    import subprocess

    from ibtargets.common.launch import sweep_orphans

    (tmp_path / "wrapper.py").write_text(WRAPPER)
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    port = free_port()
    starter = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import signal, sys
        from pathlib import Path
        from ibtargets.common.launch import ManagedProcess
        p = ManagedProcess([sys.executable, {str(tmp_path / 'wrapper.py')!r}, {str(tmp_path / 'stubborn.py')!r},
                            "{port}", "own-session"], Path({str(tmp_path / 'w.log')!r}), name="wrapper")
        print(p.start(ready_timeout_s=10.0)["pid"], flush=True)
        signal.pause()
    """)], stdout=subprocess.PIPE, text=True)
    try:
        child = psutil.Process(int(starter.stdout.readline()))
        assert sweep_orphans() == [] and child.is_running(), "its starter lives: not an orphan"
        starter.kill()
        starter.wait(5.0)
        assert child.pid in sweep_orphans()
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert wait_ports_free([port], within_s=2.0) == {}
    finally:
        starter.kill()
        sweep_orphans()
