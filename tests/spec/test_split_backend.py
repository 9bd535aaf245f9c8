"""The split backend (tests/targets/split/): a store service, an IB process, an API process and a wrapper that
leaves its children behind on SIGTERM — each piece checked directly, before the suite runs against the whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from ibtargets.common.launch import ManagedProcess
from support.settings import Settings
from support.targets import backend_environment, free_port

SPLIT = Path(__file__).resolve().parents[1] / "targets" / "split"
#: Every wait of these tests is bounded by this (a start of the reference backend takes about 2 s).
START_S = 30.0
CALL_S = 10.0

pytestmark = pytest.mark.timeout(120)


def eventually(probe: Callable[[], Any], within_s: float, describe: str) -> Any:
    """The first truthy value of ``probe`` within ``within_s``, else a failure naming what was awaited."""
    deadline, pause, last = time.monotonic() + within_s, threading.Event(), None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        pause.wait(0.05)  # the poll's pacing, bounded by the deadline
    raise AssertionError(f"not within {within_s} s: {describe} (last: {last!r})")


def listeners(port: int) -> list[psutil._common.sconn]:
    """Sockets listening on loopback ``port`` (from the kernel's table, whoever owns them)."""
    return [c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of the process group ``pgid`` (zombies are dead)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return found


def get(url: str) -> requests.Response | None:
    """``GET`` bounded; None when nothing answered."""
    try:
        return requests.get(url, timeout=CALL_S)
    except requests.RequestException:
        return None


class Split:
    """The split backend's processes as one test uses them (each in its own process group)."""

    def __init__(self, tmp_path: Path, ib_port: int):
        self.tmp_path, self.ib_port = tmp_path, ib_port
        self.store_port, self.api_port, self.ib_side_port = free_port(), free_port(), free_port()
        self.store: subprocess.Popen[bytes] | None = None
        self.wrapper: subprocess.Popen[bytes] | None = None
        self.log = open(tmp_path / "backend.log", "ab")

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    @property
    def kv(self) -> str:
        return f"http://127.0.0.1:{self.store_port}/kv"

    def start_store(self) -> None:
        self.store = subprocess.Popen([sys.executable, str(SPLIT / "store.py"), "--port", str(self.store_port),
                                       "--dir", str(self.tmp_path / "store")], stdout=self.log, stderr=self.log,
                                      start_new_session=True)
        eventually(lambda: get(f"http://127.0.0.1:{self.store_port}/health"), START_S, "the store answers")

    def start_wrapper(self) -> None:
        env = {**os.environ, **backend_environment(Settings(), self.ib_port), "PYTHONUNBUFFERED": "1"}
        self.wrapper = subprocess.Popen([sys.executable, str(SPLIT / "wrapper.py"), "--api-port", str(self.api_port),
                                         "--ib-side-port", str(self.ib_side_port), "--store-port",
                                         str(self.store_port), "--data-dir", str(self.tmp_path / "ib-data")], stdout=self.log, stderr=self.log, env=env,
                                        start_new_session=True)
        eventually(lambda: (r := get(self.api + "/health")) is not None and r.status_code == 200, START_S,
                   "the split backend's health answers 200")

    def stop_groups(self) -> None:
        """SIGTERM then SIGKILL every process group started here, bounded; wait until each is empty."""
        for proc in (self.wrapper, self.store):
            if proc is None:
                continue
            for signum, within_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, signum)
                except ProcessLookupError:
                    break
                try:
                    eventually(lambda p=proc: not group_members(p.pid), within_s, f"group {proc.pid} is empty")
                    break
                except AssertionError:
                    continue
            proc.wait(5.0)  # reap the leader (it may have exited long ago)
        self.log.close()


@pytest.fixture
def split(tmp_path: Path, gateway) -> Iterator[Split]:
    the_split = Split(tmp_path, gateway.port)
    try:
        yield the_split
    finally:
        the_split.stop_groups()
        if the_split.wrapper is not None or the_split.store is not None:
            print((tmp_path / "backend.log").read_text(errors="replace")[-4000:])


def test_the_store_keeps_values_and_refuses_malformed_requests(split):
    split.start_store()
    assert requests.put(split.kv + "/greeting", data=b"hello", timeout=CALL_S).status_code == 200
    assert requests.get(split.kv + "/greeting", timeout=CALL_S).content == b"hello"
    assert requests.get(split.kv + "/absent", timeout=CALL_S).status_code == 404
    assert requests.put(split.kv + "/bad key!", data=b"x", timeout=CALL_S).status_code == 400
    assert requests.put(split.kv + "/big", data=b"x" * (65 * 1024), timeout=CALL_S).status_code == 400
    assert requests.post(split.kv + "/greeting", data=b"x", timeout=CALL_S).status_code == 405
    raw = subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{split.store_port}; "
                                        "printf 'PUT /kv/k HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; "
                                        "timeout 5 head -c 12 <&3"], capture_output=True, timeout=10)
    assert raw.stdout == b"HTTP/1.0 400", raw
    assert requests.get(split.kv + "/greeting", timeout=CALL_S).content == b"hello"   # nothing else broke
    split.store.send_signal(signal.SIGTERM)
    assert split.store.wait(5.0) == 0
    assert not listeners(split.store_port)


def test_the_api_forwards_to_the_ib_process_records_in_the_store_and_lacks_the_sync_load(split, gateway):
    split.start_store()
    split.start_wrapper()
    status = requests.get(split.api + "/ib/status", timeout=CALL_S)
    assert status.status_code == 200 and status.headers["Content-Type"] == "application/json"
    config = requests.get(split.api + "/ib/config", timeout=CALL_S).json()["data"]
    assert config["port"] == gateway.port                     # the IB process's own answer, through the API
    discovered = requests.post(split.api + "/ib/symbols/discover", json={"symbol": "AAPL"}, timeout=CALL_S)
    assert discovered.status_code == 200 and discovered.json()["data"]["symbol_info"]["symbol"] == "AAPL"
    invalid = requests.put(split.api + "/ib/config", json={"port": 0}, timeout=CALL_S)
    assert invalid.status_code == 422                         # the IB process's validation, status and body
    def last_request() -> dict[str, Any] | None:
        answer = get(split.kv + "/last-request")
        return json.loads(answer.content) if answer is not None and answer.status_code == 200 else None

    record = eventually(lambda: (r := last_request()) and r["method"] == "PUT" and r, 5.0, "the store holds the PUT")
    assert (record["method"], record["path"], record["status"]) == ("PUT", "/api/v1/ib/config", 422)
    for query in ("?async_mode=false", "", "?async_mode=0"):
        removed = requests.post(split.api + "/data/load" + query, json={"symbol": "AAPL", "mode": "tail"},
                                timeout=CALL_S)
        assert (removed.status_code, removed.json()) == (404, {"detail": "Not Found"}), query
    started = requests.post(split.api + "/data/load?async_mode=true", json={"symbol": "MSFT", "mode": "tail"},
                            timeout=CALL_S)
    assert started.status_code == 200 and started.json()["data"]["status"] == "started"
    assert requests.get(f"http://127.0.0.1:{split.api_port}/docs", timeout=CALL_S).status_code == 404


def test_health_is_503_within_bounds_while_the_store_is_down(split):
    split.start_store()
    split.start_wrapper()
    split.store.send_signal(signal.SIGTERM)
    assert split.store.wait(5.0) == 0
    began = time.monotonic()
    health = requests.get(split.api + "/health", timeout=CALL_S)
    assert health.status_code == 503 and "store" in health.json()["detail"]
    assert time.monotonic() - began < 3.0
    assert requests.get(split.api + "/ib/status", timeout=CALL_S).status_code == 200   # the rest still works
    split.start_store()                                                                   # same port again
    assert requests.get(split.api + "/health", timeout=CALL_S).status_code == 200


def test_sigterm_ends_the_wrapper_first_and_leaves_its_children_to_the_group(split):
    """The shape the suite must handle: the process it started exits at once, its children live on until the
    process group is stopped; only then are the API and IB ports free."""
    split.start_store()
    split.start_wrapper()
    pgid = split.wrapper.pid
    children = [p for p in group_members(pgid) if p.pid != pgid]
    assert len(children) == 2, children
    split.wrapper.send_signal(signal.SIGTERM)                 # the process alone, as a `kill PID` would
    assert split.wrapper.wait(2.0) == 0
    assert all(child.is_running() for child in children)
    assert requests.get(split.api + "/ib/status", timeout=CALL_S).status_code == 200   # orphans still serve
    assert listeners(split.api_port) and listeners(split.ib_side_port)
    os.killpg(pgid, signal.SIGTERM)
    eventually(lambda: not group_members(pgid), 15.0, "every process of the wrapper's group ended")
    assert not listeners(split.api_port) and not listeners(split.ib_side_port)


def test_the_wrapper_exits_non_zero_when_a_child_dies(split):
    split.start_store()
    split.start_wrapper()
    api_child = next(p for p in group_members(split.wrapper.pid) if "forwarder.py" in " ".join(p.cmdline()))
    api_child.kill()
    assert split.wrapper.wait(5.0) == 2


def test_the_suites_stop_ends_the_whole_tree_and_frees_both_ports(split, tmp_path):
    """What the suite does with it (ManagedProcess, as a managed target): the wrapper's early exit does not end
    the stop; the IB and API processes are stopped and waited for, and neither port stays bound."""
    split.start_store()
    env = {**backend_environment(Settings(), split.ib_port), "REFBACKEND_DATA_DIR": str(tmp_path / "data")}
    backend = ManagedProcess([sys.executable, str(SPLIT / "wrapper.py"), "--api-port", str(split.api_port),
                              "--ib-side-port", str(split.ib_side_port), "--store-port", str(split.store_port)],
                             tmp_path / "managed.log", env=env, name="split")
    backend.start_until_url(split.api + "/health", START_S)
    try:
        assert len(backend.members()) == 3
    finally:
        code = backend.stop(grace_s=10.0)
    assert code == 0 and not backend.leftovers and not backend.members()
    assert not listeners(split.api_port) and not listeners(split.ib_side_port)
