"""One history per nemesis run: every client operation, every fault window, and what IB saw, on one clock.

Everything is stamped with ``time.monotonic()`` (system-wide on Linux, the clock the simulator and the proxy
record with), so a request, the fault that was active during it and the gateway's view of the same moment
line up without translation. The nemesis and the workload only append; the checkers only read.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from support.nemesis.schedule import FaultSpec, Schedule


@dataclass(frozen=True)
class Op:
    """One operation a client made, from invocation to completion.

    Args:
        process: who made it: ``api-1``, ``cli``, ``sampler``, ``nemesis``, ``final``.
        kind: what: ``discover``, ``discover_cached``, ``load_sync``, ``load_async``, ``operation``, ``status``,
            ``health``, ``resilience``, ``config``, ``symbols``, ``discovered``, ``data_read``, ``cleanup``,
            ``cli:<command>`` …
        start, end: monotonic times of the invocation and of the answer (or of giving up).
        ok: the answer was a success.
        status: the HTTP status or the CLI's exit code (None: no answer at all).
        timed_out: the client stopped waiting.
        detail: what the checkers need: ``score``, ``error_code``, ``operation_id``, ``fetched_bars``, ``output``…
    """

    process: str
    kind: str
    start: float
    end: float
    ok: bool
    status: int | None = None
    timed_out: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def elapsed_s(self) -> float:
        """Seconds from invocation to answer."""
        return self.end - self.start

    @property
    def cli(self) -> bool:
        """A command of the backend's CLI (not an HTTP call)."""
        return self.kind.startswith("cli:")

    def describe(self, origin: float = 0.0) -> str:
        """``12.31 s api-2 discover → 503 IB-SILENT in 3.02 s``."""
        outcome = "timed out" if self.timed_out else (f"exit {self.status}" if self.cli else
                                                      (f"HTTP {self.status}" if self.status is not None else "no answer"))
        code = self.detail.get("error_code") or ""
        score = f" score {self.detail['score']:g}" if isinstance(self.detail.get("score"), (int, float)) else ""
        return (f"{self.start - origin:7.2f} s {self.process} {self.kind} → {outcome}"
                f"{' ' + code if code else ''}{score} in {self.elapsed_s:.2f} s")


@dataclass(frozen=True)
class FaultRecord:
    """When a planned fault was really on (``healed`` None: never healed by the schedule; the run's end
    healed it)."""

    spec: FaultSpec
    applied: float
    healed: float | None
    error: str = ""           # the nemesis could not apply it (e.g. no client ID free for a squatter)
    note: str = ""            # what was really done (e.g. the client ID a squatter took)

    @property
    def until(self) -> float:
        """The heal time, or the apply time for a one-shot fault."""
        if self.spec.one_shot:
            return self.applied
        return self.healed if self.healed is not None else float("inf")


class History:
    """The run's history. Thread-safe appends; read it after the run."""

    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.origin = 0.0                 # monotonic time of the schedule's second 0
        self.finished = 0.0               # when the history stops (observation end)
        self.final_heal = 0.0             # when the nemesis healed everything
        self.ops: list[Op] = []
        self.faults: list[FaultRecord] = []
        self.gateway_events: list[dict[str, Any]] = []
        self.proxy_events: list[dict[str, Any]] = []
        self.own_ports: set[int] = set()  # the suite's own IB connections (squatters, oracle), left out
        self.backend_output = ""
        self.cache: list[dict[str, Any]] = []   # final reads: cached bars vs what IB serves, per series
        self.notes: list[str] = []
        self.settings: dict[str, Any] = {}      # the bounds the checkers judged by
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ appends

    def add_op(self, op: Op) -> Op:
        """Record one client operation."""
        with self._lock:
            self.ops.append(op)
        return op

    def add_fault(self, record: FaultRecord) -> None:
        """Record a fault window (once it is healed, or when the run ends)."""
        with self._lock:
            self.faults.append(record)

    def add_ib_events(self, source: str, events: Iterable[dict[str, Any]]) -> None:
        """Append raw events of the simulator's (``gateway``) or the proxy's (``proxy``) record."""
        with self._lock:
            (self.gateway_events if source == "gateway" else self.proxy_events).extend(events)

    def note(self, text: str) -> None:
        """Something the run wants the report to say (e.g. a fault it could not apply)."""
        with self._lock:
            self.notes.append(f"{time.monotonic() - self.origin:7.2f} s {text}")

    # ------------------------------------------------------------------ views

    def rel(self, mono: float) -> float:
        """Seconds since the schedule's start."""
        return mono - self.origin

    def resilience_reads(self) -> list[Op]:
        """Resilience reports that carried a score."""
        return [op for op in self.ops if op.kind == "resilience" and isinstance(op.detail.get("score"), (int, float))]

    def own_conn_ids(self) -> set[int]:
        """The simulator's connection IDs of the suite's own connections."""
        out = set()
        for event in self.gateway_events:
            if event.get("kind") == "connect" and _port(event.get("peer", "")) in self.own_ports:
                out.add(int(event.get("conn_id") or 0))
        return out

    def backend_connections(self) -> list[Connection]:
        """The backend's IB connections the simulator accepted (its API session started), with what each
        carried; the suite's own and those refused with 326 left out."""
        own = self.own_conn_ids()
        conns: dict[int, Connection] = {}
        rejected: set[int] = set()
        for e in self.gateway_events:
            conn_id = int(e.get("conn_id") or 0)
            if not conn_id or conn_id in own:
                continue
            kind = e.get("kind")
            if kind == "start_api":
                conns[conn_id] = Connection(conn_id, e.get("client_id"), float(e["mono"]))
            elif kind == "reject":
                rejected.add(conn_id)
            elif conn_id in conns:
                conn = conns[conn_id]
                if kind == "request":
                    conn.requests.append((float(e["mono"]), str(e.get("type", "")), e.get("req_id")))
                elif kind in ("response", "error_sent"):
                    conn.answers.append((float(e["mono"]), str(e.get("type", "")), e.get("req_id")))
                elif kind == "disconnect":
                    conn.closed = float(e["mono"])
        return [c for c in conns.values() if c.conn_id not in rejected]

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        """Everything, for ``history.json`` (times relative to the schedule's start)."""
        origin = self.origin
        return {
            "schedule": self.schedule.to_json(),
            "origin_mono": origin, "finished_s": self.rel(self.finished), "final_heal_s": self.rel(self.final_heal),
            "settings": self.settings,
            "faults": [{**f.spec.to_json(), "applied_s": round(f.applied - origin, 3),
                        "healed_s": None if f.healed is None else round(f.healed - origin, 3),
                        "error": f.error, "note": f.note} for f in self.faults],
            "ops": [{**asdict(op), "start_s": round(op.start - origin, 3), "end_s": round(op.end - origin, 3)}
                    for op in self.ops],
            "notes": self.notes,
            "cache": self.cache,
            "backend_output": self.backend_output[-400_000:],
            "own_ports": sorted(self.own_ports),
            "gateway_events": self.gateway_events,
            "proxy_events": self.proxy_events,
        }

    def write(self, path: Path) -> Path:
        """Write :meth:`to_json` to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), default=str), encoding="utf-8")
        return path

    @staticmethod
    def read(path: Path) -> History:
        """A history written by :meth:`write` (to judge or draw it again without rerunning anything)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        history = History(Schedule.from_json(data["schedule"]))
        origin = history.origin = float(data["origin_mono"])
        history.finished, history.final_heal = origin + data["finished_s"], origin + data["final_heal_s"]
        history.settings = dict(data.get("settings") or {})
        for f in data["faults"]:
            healed = f.get("healed_s")
            history.faults.append(FaultRecord(FaultSpec.from_json(f), origin + f["applied_s"],
                                              None if healed is None else origin + healed, f.get("error", ""),
                                              f.get("note", "")))
        history.ops = [Op(o["process"], o["kind"], o["start"], o["end"], o["ok"], o["status"], o["timed_out"],
                          o["detail"]) for o in data["ops"]]
        history.gateway_events, history.proxy_events = data["gateway_events"], data.get("proxy_events", [])
        history.own_ports, history.cache = set(data.get("own_ports", [])), data.get("cache", [])
        history.notes = list(data.get("notes", []))
        history.backend_output = str(data.get("backend_output", ""))
        return history


@dataclass
class Connection:
    """One backend connection as the simulator saw it."""

    conn_id: int
    client_id: int | None
    opened: float
    closed: float | None = None
    requests: list[tuple[float, str, Any]] = field(default_factory=list)
    answers: list[tuple[float, str, Any]] = field(default_factory=list)

    def open_at(self, mono: float) -> bool:
        """Whether the connection was open at ``mono``."""
        return self.opened <= mono and (self.closed is None or self.closed > mono)


def _port(peer: Any) -> int:
    try:
        return int(str(peer).rsplit(":", 1)[-1])
    except ValueError:
        return 0


def op_counts(history: History) -> dict[str, int]:
    """How many operations of each kind the run made (for the report)."""
    counts: dict[str, int] = {}
    for op in history.ops:
        counts[op.kind] = counts.get(op.kind, 0) + 1
    return dict(sorted(counts.items()))
