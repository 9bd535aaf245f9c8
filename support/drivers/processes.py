"""Process driver: resource samples of the system under test (psutil), for leak checks."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class ProcessSample:
    """One reading of a process and its children."""

    mono: float
    rss_bytes: int
    open_fds: int
    threads: int
    tcp_connections: int
    ib_connections: int
    children: int

    @property
    def rss_mb(self) -> float:
        """Resident memory in MiB."""
        return self.rss_bytes / (1024 * 1024)


class ProcessNotFound(RuntimeError):
    """The system's process could not be found or read."""


@dataclass
class ProcessDriver:
    """Samples a process (and its children) by PID.

    Args:
        pid: the backend's process.
        ib_port: remote port of its IB connections (the gateway or the proxy in front of it).
    """

    pid: int
    ib_port: int = 0
    samples: list[ProcessSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            self._process = psutil.Process(self.pid)
        except psutil.Error as exc:
            raise ProcessNotFound(f"no readable process {self.pid}: {exc}") from None
        self._sampling: threading.Thread | None = None
        self._stop = threading.Event()

    def sample(self) -> ProcessSample:
        """Read RSS, fds, threads and sockets now (and keep the reading)."""
        try:
            procs = [self._process] + self._process.children(recursive=True)
            rss = fds = threads = 0
            tcp = ib = 0
            for proc in procs:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    fds += proc.num_fds()
                    threads += proc.num_threads()
                    for conn in proc.net_connections(kind="tcp"):
                        tcp += 1
                        if self.ib_port and conn.raddr and conn.raddr.port == self.ib_port \
                                and conn.status == psutil.CONN_ESTABLISHED:
                            ib += 1
        except psutil.Error as exc:
            raise ProcessNotFound(f"process {self.pid} cannot be read: {exc}") from None
        reading = ProcessSample(time.monotonic(), rss, fds, threads, tcp, ib, len(procs) - 1)
        self.samples.append(reading)
        return reading

    def start_sampling(self, interval_s: float = 0.25) -> None:
        """Sample in the background until :meth:`stop_sampling`."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.sample()
                except ProcessNotFound:
                    return
        self._sampling = threading.Thread(target=loop, name="process-sampler", daemon=True)
        self._sampling.start()

    def stop_sampling(self) -> list[ProcessSample]:
        """Stop background sampling; return every sample so far."""
        self._stop.set()
        if self._sampling is not None:
            self._sampling.join(5.0)
            self._sampling = None
        return list(self.samples)


def listener_pid(port: int) -> int:
    """PID of the local process listening on TCP ``port`` (0 when none is visible)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return 0

