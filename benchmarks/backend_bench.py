"""Reference backend figures: silent-gateway detection, API latency under 20 clients, RSS over acquire cycles."""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

from benchmarks.proxy_bench import percentile
from ibtargets.common.control_client import ControlClient
from ibtargets.common.faults import Silent
from ibtargets.common.launch import ManagedProcess, venv_script
from support.waiting import Bound, Deadline, eventually

#: The whole run stops measuring past this, whatever the arguments say.
BUDGET_S = 110.0
REQUEST_TIMEOUT_S = 15.0
HEALTHY_MIN = 75.0
MIB = 1024 * 1024


@dataclass
class Targets:
    """The three processes under measurement and their addresses."""

    api: str
    backend_pid: int
    proxy: ControlClient
    processes: list[ManagedProcess] = field(default_factory=list)


def start_targets(tmp: Path) -> Targets:
    """Gateway simulator, fault proxy and backend (KTRDR default timings) as processes."""
    tool = venv_script("ib-resilience")
    processes: list[ManagedProcess] = []
    try:
        gateway = ManagedProcess([tool, "gateway", "--port", "0", "--control-port", "0", "--log-level", "WARNING"],
                                 tmp / "gateway.log", name="gateway")
        processes.append(gateway)
        gateway_port = gateway.start(ready_timeout_s=20.0)["port"]
        proxy = ManagedProcess([tool, "proxy", "--listen", "127.0.0.1:0", "--upstream",
                                f"127.0.0.1:{gateway_port}", "--control-port", "0"], tmp / "proxy.log", name="proxy")
        processes.append(proxy)
        proxy_ready = proxy.start(ready_timeout_s=20.0)
        backend = ManagedProcess([venv_script("refbackend"), "serve", "--host", "127.0.0.1", "--port", "0"],
                                 tmp / "backend.log", name="backend",
                                 env={"IB_PORT": proxy_ready["port"], "REFBACKEND_DATA_DIR": str(tmp / "data"),
                                      "REFBACKEND_LOG_LEVEL": "warning"})
        processes.append(backend)
        api = backend.start(ready_timeout_s=30.0)["url"] + "/api/v1"
    except BaseException:
        for process in reversed(processes):
            process.stop()
        raise
    return Targets(api, backend.pid, ControlClient(f"http://127.0.0.1:{proxy_ready['control_port']}"), processes)


def score(session: requests.Session, api: str) -> float:
    """The current resilience score."""
    return session.get(f"{api}/ib/resilience", timeout=REQUEST_TIMEOUT_S).json()["data"]["overall_resilience_score"]


def detection_trial(targets: Targets, with_traffic: bool) -> dict[str, float]:
    """Make the gateway silent; time the first failed request and the first score below 75, then heal."""
    session = requests.Session()
    eventually(lambda: score(session, targets.api) >= HEALTHY_MIN, within=Bound.exactly(15), describe="healthy score")
    stop = threading.Event()
    marks: dict[str, float] = {}
    silent_at: list[float] = []

    def traffic() -> None:
        client = requests.Session()
        while not stop.is_set():
            answer = client.post(f"{targets.api}/ib/symbols/discover", json={"symbol": "AAPL", "force_refresh": True},
                                 timeout=REQUEST_TIMEOUT_S)
            ended = time.monotonic()
            if answer.status_code != 200 and silent_at and "first_failed_request_s" not in marks:
                marks["first_failed_request_s"] = ended - silent_at[0]

    def monitor() -> None:
        client = requests.Session()
        while not stop.is_set():
            value = score(client, targets.api)
            ended = time.monotonic()
            if value < HEALTHY_MIN and silent_at and "score_below_75_s" not in marks:
                marks["score_below_75_s"] = ended - silent_at[0]
            time.sleep(0.1)  # the monitor's polling period

    workers = [threading.Thread(target=monitor, daemon=True)]
    if with_traffic:
        workers.append(threading.Thread(target=traffic, daemon=True))
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # let both loops run healthy first
    targets.proxy.apply(Silent())
    silent_at.append(time.monotonic())
    wanted = 2 if with_traffic else 1
    try:
        eventually(lambda: len(marks) >= wanted, within=Bound.exactly(10), describe="failure and low score observed")
    finally:
        targets.proxy.heal("silent")
        healed = time.monotonic()
        eventually(lambda: score(session, targets.api) >= HEALTHY_MIN, within=Bound.exactly(15), describe="recovered score")
        marks["recovery_to_75_s"] = time.monotonic() - healed
        stop.set()
        for worker in workers:
            worker.join(REQUEST_TIMEOUT_S)
    return marks


def latency(api: str, method: str, path: str, body: Any, clients: int, per_client: int) -> list[float]:
    """Milliseconds of ``clients`` concurrent clients each making ``per_client`` requests."""
    def one_client() -> list[float]:
        session = requests.Session()
        out = []
        for _ in range(per_client):
            started = time.perf_counter()
            answer = session.request(method, api + path, json=body, timeout=REQUEST_TIMEOUT_S)
            out.append((time.perf_counter() - started) * 1000.0)
            if answer.status_code != 200:
                raise RuntimeError(f"{method} {path} answered {answer.status_code}: {answer.text[:200]}")
        return out

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: one_client(), range(clients)))
    return [value for result in results for value in result]


def cycles(api: str, count: int, clients: int = 5) -> None:
    """``count`` acquire/validate/release cycles through the pool (forced discovery: one handoff each)."""
    def run(share: int) -> None:
        session = requests.Session()
        for _ in range(share):
            answer = session.post(f"{api}/ib/symbols/discover", json={"symbol": "AAPL", "force_refresh": True},
                                  timeout=REQUEST_TIMEOUT_S)
            if answer.status_code != 200:
                raise RuntimeError(f"discover answered {answer.status_code}: {answer.text[:200]}")

    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, shares))


def handoffs(api: str) -> int:
    """Validated handoffs the pool has made so far (from /ib/status)."""
    return requests.get(f"{api}/ib/status", timeout=REQUEST_TIMEOUT_S).json()["data"]["pool"]["handoffs"]


def main(argv: list[str] | None = None) -> int:
    """Start the targets, measure, print the figures (nothing is asserted about time)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backend_bench", description=__doc__)
    parser.add_argument("--trials", type=int, default=3, help="silent-gateway detection trials with traffic")
    parser.add_argument("--clients", type=int, default=20, help="concurrent API clients")
    parser.add_argument("--per-client", type=int, default=50, help="requests per client per endpoint")
    parser.add_argument("--cycles", type=int, default=1000, help="acquire/release cycles for the RSS figure")
    args = parser.parse_args(argv)
    deadline = Deadline(BUDGET_S)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="backend-bench-") as tmp:
        targets = start_targets(Path(tmp))
        try:
            lines.append("silent gateway (proxy drops gateway->backend after the handshake), default timings")
            lines.append(f"{'trial':<22} {'first failed request s':>23} {'score < 75 s':>13} {'back to >= 75 s':>16}")
            trials = []
            for index in range(args.trials):
                if deadline.remaining_s < 60:
                    break
                marks = detection_trial(targets, with_traffic=True)
                trials.append(marks)
                lines.append(f"{'with traffic #' + str(index + 1):<22} {marks['first_failed_request_s']:>23.2f} "
                             f"{marks['score_below_75_s']:>13.2f} {marks['recovery_to_75_s']:>16.2f}")
            quiet = detection_trial(targets, with_traffic=False)
            lines.append(f"{'monitor only':<22} {'-':>23} {quiet['score_below_75_s']:>13.2f} "
                         f"{quiet['recovery_to_75_s']:>16.2f}")
            if trials:
                worst = max(t["first_failed_request_s"] for t in trials)
                lines.append(f"target: detection <= 3.3 s -> worst {worst:.2f} s "
                             f"({'meets' if worst <= 3.3 else 'MISSES'})")

            requests.post(f"{targets.api}/ib/symbols/discover", json={"symbol": "AAPL"}, timeout=REQUEST_TIMEOUT_S)
            lines.append("")
            lines.append(f"API latency, {args.clients} concurrent clients x {args.per_client} requests, healthy gateway")
            lines.append(f"{'endpoint':<44} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
            for label, method, path, body in (
                    ("GET /ib/status", "GET", "/ib/status", None),
                    ("POST /ib/symbols/discover (cached)", "POST", "/ib/symbols/discover", {"symbol": "AAPL"}),
                    ("POST /ib/symbols/discover (force_refresh)", "POST", "/ib/symbols/discover",
                     {"symbol": "AAPL", "force_refresh": True})):
                samples = latency(targets.api, method, path, body, args.clients, args.per_client)
                p95 = percentile(samples, 0.95)
                lines.append(f"{label:<44} {len(samples):>6} {percentile(samples, 0.5):>8.2f} {p95:>8.2f} "
                             f"{statistics.fmean(samples):>8.2f}" + ("" if "force" in label else
                                                                     f"   (target p95 <= 100 ms: "
                                                                     f"{'meets' if p95 <= 100 else 'MISSES'})"))

            process = psutil.Process(targets.backend_pid)
            lines.append("")
            before = handoffs(targets.api)
            cycles(targets.api, 100)
            rss_100 = process.memory_info().rss
            cycles(targets.api, max(0, args.cycles - 100))
            rss_1000 = process.memory_info().rss
            done = handoffs(targets.api) - before
            growth = (rss_1000 - rss_100) / MIB
            lines.append(f"backend RSS after 100 acquire/release cycles: {rss_100 / MIB:.1f} MiB; after {done} "
                         f"validated handoffs: {rss_1000 / MIB:.1f} MiB; growth {growth:+.2f} MiB "
                         f"(target <= 5 MiB: {'meets' if growth <= 5 else 'MISSES'})")
        finally:
            targets.proxy.close()
            for process_ in reversed(targets.processes):
                process_.stop()
    print("\n".join(lines))
    print(f"measured in {deadline.elapsed_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
