"""One history of the whole run: what IB saw, what the clients saw, what the backend printed, on one clock.

From the first backend start to the last stop, everything the suite observes goes here as a typed record, stamped
with ``time.monotonic()`` (system-wide on Linux, the clock the simulator and the proxy record with):

- what the gateway and the proxy saw (:class:`IbEvent`, :class:`Connection` with its :class:`Request` s): read from
  their records as the run goes (:meth:`RunHistory.sync`), so nothing is lost from their rings;
- the API exchanges (:class:`~support.drivers.api.ApiResponse`) and CLI runs (:class:`~support.drivers.cli.CliRun`)
  the drivers made, and the liveness samples (:mod:`support.observer`);
- the backend's output lines (:class:`OutputLine`), its lives (:class:`Life`: started, ready, told to stop, ended);
- fault windows (:class:`~support.drivers.faults.FaultWindow`) and the spans the suite declares (:class:`Span`:
  a scenario, a heavy load, a cut of its own).

Drivers append; :meth:`RunHistory.window` gives a frozen :class:`HistoryWindow` of any span, which is all a checker
(:mod:`support.checks`) ever reads. A scenario's evidence is its window; the nemesis's is its schedule's; the
run-wide invariants judge the whole run.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ibtargets.common.control_client import ControlClient, ControlError
from ibtargets.common.faults import Fault, FaultError
from support.drivers.api import ApiResponse
from support.drivers.cli import CliRun
from support.drivers.faults import FaultWindow

#: The request every validation sends (the contract's ``reqCurrentTime``).
VALIDATION_REQUEST = "reqCurrentTime"
#: Requests that need a handed-out connection (anything but the validation itself).
DATA_REQUESTS = ("reqContractDetails", "reqHistoricalData", "reqHeadTimeStamp", "reqMktData")


# ============================================================================================ what IB saw


@dataclass(frozen=True)
class IbEvent:
    """One thing that crossed the IB wire, as the gateway side recorded it.

    ``kind`` is one of ``connect``, ``start_api``, ``rejected`` (client ID refused),
    ``request``, ``response``, ``error`` (an IB error message sent), ``disconnect``.
    """

    kind: str
    mono: float
    conn_id: int
    client_id: int | None = None
    type: str = ""
    req_id: int | None = None
    answered: bool | None = None
    peer: str = ""
    code: int | None = None
    source: str = ""

    def describe(self) -> str:
        """Compact text for failure messages."""
        bits = [f"{self.mono:.3f}", self.kind, f"conn={self.conn_id}"]
        if self.client_id is not None:
            bits.append(f"client={self.client_id}")
        if self.type:
            bits.append(self.type)
        if self.code is not None:
            bits.append(f"code={self.code}")
        return " ".join(bits)


def normalise(raw: dict[str, Any], source: str) -> IbEvent | None:
    """Map a gateway or proxy history event onto :class:`IbEvent` (None if irrelevant)."""
    kind = raw.get("kind")
    common = {"mono": float(raw.get("mono", 0.0)), "conn_id": int(raw.get("conn_id") or 0),
              "client_id": raw.get("client_id"), "source": source}
    if kind == "connect":
        return IbEvent("connect", peer=str(raw.get("peer", "")), **common)
    if kind == "start_api":
        return IbEvent("start_api", **common)
    if kind == "reject":
        return IbEvent("rejected", code=raw.get("code"), **common)
    if kind == "request":
        return IbEvent("request", type=str(raw.get("type", "")), req_id=raw.get("req_id"),
                       answered=raw.get("answered"), **common)
    if kind == "error_sent":
        return IbEvent("error", code=raw.get("code"), req_id=raw.get("req_id"), **common)
    if kind == "response":
        code = raw.get("error_code")
        if source == "proxy" and raw.get("forwarded") is False:
            return None
        if source == "proxy" and code == 326:
            return IbEvent("rejected", code=326, **common)
        # The proxy names the answer's own message; the request it answers is ``answers``.
        answered_type = str(raw.get("answers") or raw.get("type", "")) if source == "proxy" else str(raw.get("type", ""))
        if source == "proxy" and code is not None:
            return IbEvent("error", type=answered_type, code=code, req_id=raw.get("req_id"), **common)
        return IbEvent("response", type=answered_type, req_id=raw.get("req_id"), **common)
    if kind == "disconnect":
        return IbEvent("disconnect", **common)
    return None


@dataclass(frozen=True)
class Request:
    """One request a connection carried, as the gateway side saw it.

    Args:
        arrived_mono: when the read that carried it arrived (requests of one read were all sent before any
            answer to them reached the client); the record's time when it does not say.
        expects_answer: the record will answer it (not swallowed by a fault, not unsupported, not a cancel).
        answered_mono: when its first answer was written (None: never, within the history).
    """

    arrived_mono: float
    type: str
    req_id: int | None
    expects_answer: bool
    answered_mono: float | None = None

    @property
    def validation(self) -> bool:
        """The contract's validation round-trip."""
        return self.type == VALIDATION_REQUEST


@dataclass(frozen=True)
class Connection:
    """One connection the gateway side saw, from its accept to its close.

    Args:
        closed_by: ``client`` (the client closed it), ``gateway`` (the simulator dropped it: a restart, a drop),
            ``proxy`` (the fault proxy cut it), ``reset`` (the socket failed), or '' while it is open.
        own: one of the suite's own connections (a probe, a squatter), not the backend's.
    """

    source: str
    conn_id: int
    peer: str
    opened_mono: float
    client_id: int | None = None
    api_mono: float | None = None
    rejected: bool = False
    reject_code: int | str | None = None
    closed_mono: float | None = None
    close_reason: str = ""
    closed_by: str = ""
    own: bool = False
    requests: tuple[Request, ...] = ()

    def open_at(self, mono: float) -> bool:
        """Whether the connection was open at ``mono``."""
        return self.opened_mono <= mono and (self.closed_mono is None or self.closed_mono > mono)

    @property
    def accepted(self) -> bool:
        """Its API session started (a client ID was accepted)."""
        return self.api_mono is not None and not self.rejected

    @property
    def duplicate_id(self) -> bool:
        """Its client ID was refused as already in use (IB error 326)."""
        return self.rejected and self.reject_code == 326

    def table_row(self) -> dict[str, Any]:
        """The control API's connection-table shape (what the claims read)."""
        state = "rejected" if self.rejected else ("closed" if self.closed_mono is not None else "open")
        return {"conn_id": self.conn_id, "peer": self.peer, "client_id": self.client_id, "state": state,
                "connected_mono": self.opened_mono, "disconnected_mono": self.closed_mono,
                "close_reason": self.close_reason}

    def describe(self) -> str:
        """``conn 7 (client 2)``."""
        return f"conn {self.conn_id}" + (f" (client {self.client_id})" if self.client_id is not None else "")


class _ConnectionBuilder:
    """A connection's record as its events arrive (mutable; frozen into :class:`Connection` on read)."""

    def __init__(self, source: str, conn_id: int, peer: str, opened_mono: float):
        self.row = Connection(source, conn_id, peer, opened_mono)
        self.requests: list[Request] = []
        self.pending: list[int] = []   # indexes of requests still waiting for their first answer

    def add(self, raw: dict[str, Any], source: str) -> None:
        kind, mono = raw.get("kind"), float(raw.get("mono", 0.0))
        if kind == "start_api":
            self.row = replace(self.row, client_id=raw.get("client_id"), api_mono=mono)
        elif kind == "reject" or (source == "proxy" and kind == "response" and raw.get("error_code") == 326):
            code = raw.get("code", raw.get("error_code"))
            self.row = replace(self.row, client_id=raw.get("client_id", self.row.client_id), api_mono=mono,
                               rejected=True, reject_code=code)
        elif kind == "request":
            expects = bool(raw.get("answered", True)) and not raw.get("reason") and "cancel" not in str(raw.get("type", "")).lower()
            self.requests.append(Request(float(raw.get("read_mono") or mono), str(raw.get("type", "")),
                                         raw.get("req_id"), expects))
            if expects:
                self.pending.append(len(self.requests) - 1)
        elif kind == "response" and not (source == "proxy" and raw.get("forwarded") is False):
            answered = str(raw.get("answers") or "") if source == "proxy" else str(raw.get("type", ""))
            req_id = raw.get("req_id")
            for position, index in enumerate(self.pending):
                request = self.requests[index]
                if (req_id is not None and request.req_id == req_id) or (req_id is None and request.type == answered):
                    self.requests[index] = replace(request, answered_mono=mono)
                    del self.pending[position]
                    break
        elif kind == "disconnect":
            reason = str(raw.get("reason") or "")
            if source == "proxy":
                side = str(raw.get("side") or "")
                by = {"client": "client", "upstream": "gateway", "proxy": "proxy"}.get(side, side)
            else:
                by = "client" if reason in ("client closed", "") else ("reset" if reason.startswith("connection error")
                                                                        else "gateway")
            self.row = replace(self.row, closed_mono=mono, close_reason=reason, closed_by=by)

    def frozen(self, own: bool) -> Connection:
        return replace(self.row, own=own, requests=tuple(self.requests))


# ============================================================================================ the rest of the run


@dataclass(frozen=True)
class OutputLine:
    """One line the backend printed: written after ``after_mono`` and read by ``mono``."""

    text: str
    mono: float
    after_mono: float
    source: str = "backend"


@dataclass(frozen=True)
class Life:
    """One life of the backend: started, ready (its API answered), told to stop, ended.

    ``idle_timeout_s`` and ``health_interval_s`` are the timings it was started with, when the suite knows them
    (0: it does not; the checkers then read what the backend itself reports).
    """

    started_mono: float
    ready_mono: float | None = None
    stopping_mono: float | None = None
    ended_mono: float | None = None
    idle_timeout_s: float = 0.0
    health_interval_s: float = 0.0
    api_base_url: str = ""

    def serving(self, start_mono: float, end_mono: float) -> bool:
        """Whether the backend was ready and not told to stop for all of ``[start_mono, end_mono]``."""
        return (self.ready_mono is not None and self.ready_mono <= start_mono
                and (self.stopping_mono is None or self.stopping_mono >= end_mono))


@dataclass(frozen=True)
class Span:
    """A stretch the suite declares: ``scenario`` (its name and how it ended), ``heavy_load`` (more callers at once
    than normal load), ``cut`` (the suite cut the backend's connections itself)."""

    kind: str
    label: str
    start_mono: float
    end_mono: float | None = None
    status: str = ""

    def covers(self, mono: float, after_s: float = 0.0) -> bool:
        """Whether ``mono`` falls inside the span (``after_s`` longer)."""
        return self.start_mono <= mono <= (float("inf") if self.end_mono is None else self.end_mono + after_s)


# ============================================================================================ the store


class RunHistory:
    """The run's history: thread-safe appends from the drivers and the observer, frozen windows for the checkers.

    Args:
        started_mono: when the history begins (default: now).
    """

    def __init__(self, started_mono: float | None = None):
        self.started_mono = time.monotonic() if started_mono is None else started_mono
        self._lock = threading.RLock()
        self._records: dict[str, ControlClient] = {}
        self._seq: dict[str, int] = {}
        self.raw: dict[str, list[dict[str, Any]]] = {"gateway": [], "proxy": []}
        self._seqs: dict[str, list[int]] = {"gateway": [], "proxy": []}
        self._normal: dict[str, list[IbEvent | None]] = {"gateway": [], "proxy": []}
        self._conns: dict[str, dict[int, _ConnectionBuilder]] = {"gateway": {}, "proxy": {}}
        self.exchanges: list[ApiResponse] = []
        self.samples: list[ApiResponse] = []
        self.cli_runs: list[CliRun] = []
        self.faults: list[FaultWindow] = []
        self.output: list[OutputLine] = []
        self.lives: list[Life] = []
        self.spans: list[Span] = []
        self.errors: list[str] = []
        self.is_own: Callable[[str, float], bool] = lambda peer, opened_mono: False

    # ------------------------------------------------------------------ the records of IB

    def attach_records(self, gateway: ControlClient | None, proxy: ControlClient | None) -> None:
        """Read the simulator's and the proxy's records from now on (from their beginning, the first time)."""
        with self._lock:
            for name, client in (("gateway", gateway), ("proxy", proxy)):
                if client is None:
                    continue
                known = self._records.get(name)
                if known is None or known.base_url != client.base_url:
                    self._records[name] = client
                    self._seq.setdefault(name, 0)

    @property
    def attached(self) -> tuple[str, ...]:
        """The records the history reads (``gateway``, ``proxy``)."""
        return tuple(self._records)

    @property
    def source(self) -> str:
        """The preferred record: ``gateway`` (the simulator sees every client), else ``proxy``, else ''."""
        return "gateway" if "gateway" in self._records else ("proxy" if "proxy" in self._records else "")

    def sync(self) -> None:
        """Read what the records hold beyond what the history has (an unreachable record is noted, not raised)."""
        with self._lock:
            for name, client in list(self._records.items()):
                try:
                    events = client.history(self._seq.get(name, 0))
                except ControlError as exc:
                    self.errors.append(f"{time.monotonic():.3f} {name}: {exc}")
                    continue
                for raw in events:
                    self._add_raw(name, raw)
                if events:
                    self._seq[name] = int(events[-1]["seq"])

    def add_raw(self, source: str, events: Iterable[dict[str, Any]]) -> None:
        """Append events of a record read elsewhere (a history written to a file, a test)."""
        with self._lock:
            for raw in events:
                self._add_raw(source, raw)

    def _add_raw(self, source: str, raw: dict[str, Any]) -> None:
        self.raw[source].append(raw)
        self._seqs[source].append(int(raw.get("seq", 0)))
        self._normal[source].append(normalise(raw, source))
        conn_id = int(raw.get("conn_id") or 0)
        if not conn_id:
            return
        conns = self._conns[source]
        if raw.get("kind") == "connect" or conn_id not in conns:
            conns[conn_id] = _ConnectionBuilder(source, conn_id, str(raw.get("peer", "")), float(raw.get("mono", 0.0)))
        conns[conn_id].add(raw, source)

    def position(self, source: str) -> int:
        """The last sequence number of a record the history holds (0: none)."""
        with self._lock:
            records = self.raw.get(source) or []
            return int(records[-1].get("seq", 0)) if records else 0

    def raw_since(self, source: str, seq: int) -> list[dict[str, Any]]:
        """A record's raw events after sequence number ``seq``."""
        with self._lock:
            return self.raw.get(source, [])[bisect.bisect_right(self._seqs.get(source, []), seq):]

    def events_since(self, source: str, seq: int) -> list[IbEvent]:
        """A record's events (normalised) whose raw sequence number is after ``seq``."""
        with self._lock:
            normal = self._normal.get(source, [])[bisect.bisect_right(self._seqs.get(source, []), seq):]
        return [e for e in normal if e is not None]

    def connections(self, source: str | None = None) -> list[Connection]:
        """Every connection of a record (default: the preferred one), the suite's own marked."""
        source = source or self.source
        with self._lock:
            builders = list(self._conns.get(source, {}).values())
        return [b.frozen(self.is_own(b.row.peer, b.row.opened_mono)) for b in builders]

    # ------------------------------------------------------------------ the clients, the output, the lives

    def add_exchange(self, response: ApiResponse) -> None:
        """An API exchange the suite made."""
        with self._lock:
            self.exchanges.append(response)

    def add_sample(self, response: ApiResponse) -> None:
        """A liveness sample (:mod:`support.observer`)."""
        with self._lock:
            self.samples.append(response)

    def add_cli_run(self, run: CliRun) -> None:
        """A CLI command the suite ran, finished."""
        with self._lock:
            self.cli_runs.append(run)

    def fault_changed(self, before: FaultWindow | None, after: FaultWindow) -> None:
        """A fault window began (``before`` None) or ended (``before`` is what it was)."""
        with self._lock:
            if before is not None:
                for index in range(len(self.faults) - 1, -1, -1):
                    if self.faults[index] is before:
                        self.faults[index] = after
                        return
            self.faults.append(after)

    def add_output(self, lines: Iterable[OutputLine]) -> None:
        """Lines the backend printed."""
        with self._lock:
            self.output.extend(lines)

    def life_began(self, started_mono: float, ready_mono: float | None, idle_timeout_s: float = 0.0,
                   health_interval_s: float = 0.0, api_base_url: str = "") -> None:
        """The backend was started at ``started_mono`` and answered at ``ready_mono`` (None: it never did) on
        ``api_base_url``."""
        with self._lock:
            self.lives.append(Life(started_mono, ready_mono, idle_timeout_s=idle_timeout_s,
                                   health_interval_s=health_interval_s, api_base_url=api_base_url))

    def serving_url(self) -> str:
        """Where the backend's API is while it serves ('' while it is starting, stopping or gone)."""
        with self._lock:
            life = self.lives[-1] if self.lives else None
        return life.api_base_url if life is not None and life.ready_mono is not None and life.stopping_mono is None \
            else ""

    def life_ending(self, stopping_mono: float, ended_mono: float | None) -> None:
        """The backend was told to stop at ``stopping_mono`` and ended at ``ended_mono``."""
        with self._lock:
            if self.lives and self.lives[-1].stopping_mono is None:
                self.lives[-1] = replace(self.lives[-1], stopping_mono=stopping_mono, ended_mono=ended_mono)

    def open_span(self, kind: str, label: str, start_mono: float | None = None) -> Span:
        """Begin a declared span; :meth:`close_span` ends it."""
        span = Span(kind, label, time.monotonic() if start_mono is None else start_mono)
        with self._lock:
            self.spans.append(span)
        return span

    def close_span(self, span: Span, status: str = "", end_mono: float | None = None) -> Span:
        """End a span (its status: a scenario's outcome)."""
        ended = replace(span, end_mono=time.monotonic() if end_mono is None else end_mono, status=status)
        with self._lock:
            for index in range(len(self.spans) - 1, -1, -1):
                if self.spans[index] is span:
                    self.spans[index] = ended
                    break
        return ended

    # ------------------------------------------------------------------ windows

    def window(self, start_mono: float | None = None, end_mono: float | None = None) -> HistoryWindow:
        """Everything that happened in ``[start_mono, end_mono]`` (default: the whole run up to now), frozen.

        A connection, a fault window, a life or a span is in the window if it overlapped it (whole, with what it
        carried before and after); exchanges, CLI runs, samples and output lines if they began inside it.
        """
        start = self.started_mono if start_mono is None else start_mono
        end = time.monotonic() if end_mono is None else end_mono
        inside = lambda t: start <= t <= end  # noqa: E731
        overlaps = lambda a, b: a <= end and (b is None or b >= start)  # noqa: E731
        source = self.source
        conns = [c for c in self.connections(source) if overlaps(c.opened_mono, c.closed_mono)]
        with self._lock:
            return HistoryWindow(
                start_mono=start, end_mono=end, source=source,
                connections=tuple(conns),
                ib_events=tuple(e for e in self._normal.get(source, []) if e is not None and inside(e.mono)),
                exchanges=tuple(r for r in self.exchanges if inside(r.started_mono)),
                samples=tuple(r for r in self.samples if inside(r.started_mono)),
                cli_runs=tuple(r for r in self.cli_runs if inside(r.started_mono)),
                faults=tuple(f for f in self.faults if overlaps(f.applied_mono, f.healed_mono)),
                output=tuple(line for line in self.output if line.mono >= start and line.after_mono <= end),
                lives=tuple(life for life in self.lives if overlaps(life.started_mono, life.ended_mono)),
                spans=tuple(s for s in self.spans if overlaps(s.start_mono, s.end_mono)),
                errors=tuple(self.errors))


@dataclass(frozen=True)
class HistoryWindow:
    """A frozen window of the run's history: what every checker reads (it never asks a live system)."""

    start_mono: float
    end_mono: float
    source: str = ""
    connections: tuple[Connection, ...] = ()
    ib_events: tuple[IbEvent, ...] = ()
    exchanges: tuple[ApiResponse, ...] = ()
    samples: tuple[ApiResponse, ...] = ()
    cli_runs: tuple[CliRun, ...] = ()
    faults: tuple[FaultWindow, ...] = ()
    output: tuple[OutputLine, ...] = ()
    lives: tuple[Life, ...] = ()
    spans: tuple[Span, ...] = ()
    errors: tuple[str, ...] = ()

    # ------------------------------------------------------------------ views

    def backend_connections(self, accepted_only: bool = True) -> list[Connection]:
        """The backend's connections (not the suite's own), with an accepted API session unless told otherwise."""
        return [c for c in self.connections if not c.own and (c.accepted or not accepted_only)]

    def backend_events(self) -> list[IbEvent]:
        """The IB events of the backend's connections (the suite's own left out)."""
        own = {c.conn_id for c in self.connections if c.own}
        return [e for e in self.ib_events if e.conn_id not in own]

    def exchanges_to(self, path: str) -> list[ApiResponse]:
        """The suite's exchanges with one API path (``/ib/resilience``)."""
        return [r for r in self.exchanges if r.path == path]

    def spans_of(self, kind: str) -> list[Span]:
        """The declared spans of one kind."""
        return [s for s in self.spans if s.kind == kind]

    def rel(self, mono: float) -> float:
        """Seconds since the window's start."""
        return mono - self.start_mono

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        """Everything, as JSON values (``history.json``)."""
        return {"format": 1, "start_mono": self.start_mono, "end_mono": self.end_mono, "source": self.source,
                "connections": [{**asdict(c), "requests": [asdict(r) for r in c.requests]} for c in self.connections],
                "ib_events": [asdict(e) for e in self.ib_events],
                "exchanges": [_exchange_json(r) for r in self.exchanges],
                "samples": [_exchange_json(r) for r in self.samples],
                "cli_runs": [asdict(r) for r in self.cli_runs],
                "faults": [{"label": f.label, "plane": f.plane, "definition": f.fault.to_json(),
                            "applied_mono": f.applied_mono, "healed_mono": f.healed_mono,
                            "confirmed_mono": f.confirmed_mono} for f in self.faults],
                "output": [asdict(line) for line in self.output],
                "lives": [asdict(life) for life in self.lives],
                "spans": [asdict(s) for s in self.spans],
                "errors": list(self.errors)}

    @staticmethod
    def from_json(data: dict[str, Any]) -> HistoryWindow:
        """A window written by :meth:`to_json`."""
        faults = []
        for f in data.get("faults", []):
            try:
                faults.append(FaultWindow(f["label"], f["plane"], Fault.from_json(f["plane"], f["definition"]),
                                          f["applied_mono"], f.get("healed_mono"), f.get("confirmed_mono")))
            except FaultError:
                continue
        return HistoryWindow(
            start_mono=data["start_mono"], end_mono=data["end_mono"], source=data.get("source", ""),
            connections=tuple(Connection(**{**c, "requests": tuple(Request(**r) for r in c["requests"])})
                              for c in data.get("connections", [])),
            ib_events=tuple(IbEvent(**e) for e in data.get("ib_events", [])),
            exchanges=tuple(ApiResponse(**e) for e in data.get("exchanges", [])),
            samples=tuple(ApiResponse(**e) for e in data.get("samples", [])),
            cli_runs=tuple(CliRun(**{**r, "argv": tuple(r["argv"])}) for r in data.get("cli_runs", [])),
            faults=tuple(faults),
            output=tuple(OutputLine(**line) for line in data.get("output", [])),
            lives=tuple(Life(**life) for life in data.get("lives", [])),
            spans=tuple(Span(**s) for s in data.get("spans", [])),
            errors=tuple(data.get("errors", [])))

    def write(self, path: Path) -> Path:
        """Write :meth:`to_json` to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), default=str), encoding="utf-8")
        return path

    @staticmethod
    def read(path: Path) -> HistoryWindow:
        """A window written by :meth:`write`."""
        return HistoryWindow.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def _exchange_json(response: ApiResponse) -> dict[str, Any]:
    return asdict(response)

