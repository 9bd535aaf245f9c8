"""The generator: seeded fault schedules over both planes, as plain values that round-trip through JSON.

A schedule is the whole plan of one nemesis run: the seed (which also seeds the workload), the run's length
and a list of faults, each with a start and a duration (seconds from the run's start) drawn within the
bounds of its kind. Nothing here talks to a target: :mod:`support.nemesis.injector` applies a schedule,
:mod:`support.nemesis.shrink` edits one.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ibtargets.common.faults import (
    ConnectivityLost,
    Delay,
    Fault,
    Latency,
    PushError,
    Refuse,
    Reset,
    Restart,
    Silent,
    Unanswered,
)
from support.run_history import VALIDATION_REQUEST

GATEWAY = "gateway"
PROXY = "proxy"
#: The request a backend's validation sends (a fault that spares it spares the validation).
PROBE = VALIDATION_REQUEST
CLIENT = "client"       # faults the nemesis produces as a client of IB or of the API (squatter, cleanup)

#: Schedule file format version (``Schedule.to_json``).
FORMAT = 1


@dataclass(frozen=True)
class Kind:
    """One fault family the generator draws from.

    Args:
        name: the family (``FaultSpec.kind``).
        plane: where it acts: ``gateway`` (simulator), ``proxy`` (fault proxy) or ``client``.
        one_shot: acts once at its start (duration 0).
        duration_s: (shortest, longest) window.
        weight: relative frequency in a generated schedule.
        min_s: the shortest window the shrinker may cut it to.
        build: the fault value of the catalogue (``ibtargets.common.faults``) a planned fault of this family is,
            from its name and parameters; None for what the nemesis does as a client (a squatter, a cleanup) or
            to the simulator's rules (pacing). What a fault does (its plane, whether it is an outage or cuts open
            connections) is the value's to say, never this family's name.
    """

    name: str
    plane: str
    one_shot: bool = False
    duration_s: tuple[float, float] = (0.0, 0.0)
    weight: float = 1.0
    min_s: float = 1.0
    build: Callable[[str, FaultSpec], Fault] | None = None


#: Every fault family, with the bounds its start-to-end window is drawn within. Latency stays below what keeps
#: a fresh connect, a validation and one request inside the API bound (the contract's "slow is not dead":
#: answers within the 3 s validation bound); silence, outages and restarts last long enough to cross the
#: 5 s detection bound sometimes and not always.
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("silence", PROXY, duration_s=(2.0, 16.0), weight=1.4, min_s=1.0,
         build=lambda name, spec: Silent(name=name)),
    Kind("unanswered", GATEWAY, duration_s=(2.0, 14.0), weight=1.0, min_s=1.0,
         build=lambda name, spec: Unanswered(name=name, request_types=tuple(spec.params.get("request_types", ["*"])))),
    Kind("latency", PROXY, duration_s=(8.0, 45.0), weight=2.0, min_s=2.0,
         build=lambda name, spec: Latency(name=name, latency_ms=int(spec.params.get("latency_ms", 300)),
                                          jitter_ms=int(spec.params.get("jitter_ms", 0)),
                                          direction=str(spec.params.get("direction", "downstream")))),
    # The validation answered late but within its 3 s bound: slow is not dead, and validations are in flight.
    Kind("slow_validation", GATEWAY, duration_s=(6.0, 30.0), weight=1.0, min_s=1.0,
         build=lambda name, spec: Delay(name=name, latency_ms=int(spec.params.get("latency_ms", 1000)),
                                        request_types=("reqCurrentTime",))),
    Kind("restart", GATEWAY, duration_s=(1.0, 6.0), weight=1.0, min_s=0.5,
         build=lambda name, spec: Restart(name=name, down_s=max(0.1, spec.duration_s))),
    Kind("reset", PROXY, one_shot=True, weight=1.3, build=lambda name, spec: Reset(name=name)),
    Kind("refuse", PROXY, duration_s=(1.0, 8.0), weight=0.8, min_s=0.5,
         build=lambda name, spec: Refuse(name=name, keep_existing=bool(spec.params.get("keep_existing", True)))),
    Kind("connectivity_lost", GATEWAY, duration_s=(2.0, 12.0), weight=0.8, min_s=1.0,
         build=lambda name, spec: ConnectivityLost(name=name, restored_code=int(spec.params.get("restored_code", 1102)))),
    Kind("ib_notice", GATEWAY, duration_s=(1.0, 10.0), weight=0.6, min_s=0.5,
         build=lambda name, spec: PushError(name=name, code=1100)),
    Kind("pacing", GATEWAY, duration_s=(10.0, 40.0), weight=0.6, min_s=2.0),
    Kind("squatter", CLIENT, duration_s=(8.0, 50.0), weight=1.2, min_s=2.0),
    # Cleanups are frequent: each one is a moment the "no client ID held" invariant is judged at.
    Kind("cleanup", CLIENT, one_shot=True, weight=2.8),
)}

#: Request types an ``unanswered`` fault may swallow (contract-details requests go unanswered with everything else
#: under ``*``).
UNANSWERED_TYPES = ("reqCurrentTime", "reqHistoricalData", "*")


@dataclass(frozen=True)
class FaultSpec:
    """One planned fault: what, when (seconds from the run's start) and for how long.

    ``params`` are the kind's own attributes (``latency_ms``, ``request_types``, ``keep_existing``,
    ``restored_code``, ``client_offset`` …), JSON values only.
    """

    id: int
    kind: str
    start_s: float
    duration_s: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.start_s < 0 or self.duration_s < 0:
            raise ValueError(f"fault {self.id}: start and duration must not be negative")
        object.__setattr__(self, "params", dict(self.params))

    @property
    def end_s(self) -> float:
        """When the fault is healed (its start for a one-shot fault)."""
        return self.start_s + self.duration_s

    @property
    def plane(self) -> str:
        """``gateway``, ``proxy`` or ``client``."""
        return KINDS[self.kind].plane

    @property
    def one_shot(self) -> bool:
        """Acts once, at its start."""
        return KINDS[self.kind].one_shot

    @property
    def builds_fault(self) -> bool:
        """Whether it is a fault value of the catalogue (not a client's act or a change of the simulator's rules)."""
        return KINDS[self.kind].build is not None

    def fault(self, name: str = "") -> Fault:
        """The fault value of the catalogue this planned fault is (named ``name``, default its kind and id).

        Raises:
            ValueError: its family is no fault value (:attr:`builds_fault`).
        """
        build = KINDS[self.kind].build
        if build is None:
            raise ValueError(f"a {self.kind} is done by the nemesis itself, not a fault value")
        return build(name or f"nemesis-{self.kind}-{self.id}", self)

    @property
    def outage(self) -> bool:
        """Whether the gateway is silent or down while it lasts: the catalogue's :meth:`Fault.outage` of its fault
        value (the score must fall below 75 within 5 s)."""
        return self.builds_fault and self.fault().outage(PROBE)

    @property
    def drops_connections(self) -> bool:
        """Whether it closes the backend's open IB connections: the catalogue's :meth:`Fault.cuts_connections`."""
        return self.builds_fault and self.fault().cuts_connections()

    def label(self) -> str:
        """Short text for plots and reports, e.g. ``latency 400 ms`` or ``unanswered reqCurrentTime``."""
        p = self.params
        if self.kind == "latency":
            return f"latency {p.get('latency_ms')} ms {p.get('direction', 'downstream')}"
        if self.kind == "slow_validation":
            return f"reqCurrentTime answered {p.get('latency_ms')} ms late"
        if self.kind == "unanswered":
            return "unanswered " + ",".join(p.get("request_types", ["*"]))
        if self.kind == "refuse":
            return "refuse" + ("" if p.get("keep_existing", True) else " (cut open ones)")
        if self.kind == "connectivity_lost":
            return f"1100 → {p.get('restored_code', 1102)} (answers nothing)"
        if self.kind == "ib_notice":
            return f"notice 1100 → {p.get('restored_code', 1102)}"
        if self.kind == "squatter":
            return f"squatter on client ID preferred+{p.get('client_offset', 1)}"
        if self.kind == "cleanup":
            return f"cleanup ({p.get('via', 'api')})"
        return self.kind

    def describe(self) -> str:
        """``#3 latency 400 ms downstream at 12.0 s for 9.5 s``."""
        when = f"at {self.start_s:.1f} s" + ("" if self.one_shot else f" for {self.duration_s:.1f} s")
        return f"#{self.id} {self.label()} {when}"

    def to_json(self) -> dict[str, Any]:
        """A JSON object."""
        return {"id": self.id, "kind": self.kind, "start_s": round(self.start_s, 3),
                "duration_s": round(self.duration_s, 3), "params": dict(self.params)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> FaultSpec:
        """The inverse of :meth:`to_json`."""
        return FaultSpec(int(data["id"]), str(data["kind"]), float(data["start_s"]),
                         float(data.get("duration_s", 0.0)), dict(data.get("params") or {}))


@dataclass(frozen=True)
class Bounds:
    """What the generator may draw: the fault families and their weights, how far apart faults start, how
    many may overlap, and the healthy stretches a run begins and ends with."""

    kinds: tuple[str, ...] = tuple(KINDS)
    gap_s: tuple[float, float] = (1.0, 8.0)        # between one fault's start and the next one's
    quiet_chance: float = 0.12                      # chance that a gap is a quiet stretch instead
    overlap_chance: float = 0.4                     # chance that the next fault starts inside the last window
    cleanup_after_drop: float = 0.5                 # chance that an operator cleans up 3–8 s after connections drop
    # Composed faults: the interleavings the issue names, drawn on purpose rather than left to chance.
    cut_while_slow: float = 0.7                     # a reset while the gateway is slow (validations in flight), a cleanup after
    cleanups_while_squatted: float = 0.7            # cleanups while a squatter forces 326 retries on a slow gateway
    silence_after_cut: float = 0.5                  # a silence 0.5–3 s after a reset or restart (reconnects time out)
    quiet_s: tuple[float, float] = (14.0, 25.0)     # a quiet stretch: no fault at all, so recovery is judged
    max_overlap: int = 4                            # faults active at once
    warmup_s: float = 4.0                           # healthy start: the workload runs before the first fault
    tail_s: float = 22.0                            # healthy end: recovery (10 s), then the final cleanup


@dataclass(frozen=True)
class Schedule:
    """A nemesis run's plan. ``seed`` also seeds the workload, so replaying a file replays both."""

    seed: int
    duration_s: float
    faults: tuple[FaultSpec, ...]
    tail_s: float = Bounds.tail_s
    warmup_s: float = Bounds.warmup_s
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(sorted(self.faults, key=lambda f: (f.start_s, f.id))))

    @property
    def last_heal_s(self) -> float:
        """When the last fault ends (0 without faults)."""
        return max((f.end_s for f in self.faults), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """A JSON object (``Schedule.from_json`` reads it back)."""
        return {"format": FORMAT, "seed": self.seed, "duration_s": round(self.duration_s, 3),
                "tail_s": self.tail_s, "warmup_s": self.warmup_s, "note": self.note,
                "faults": [f.to_json() for f in self.faults]}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Schedule:
        """Read a schedule written by :meth:`to_json`.

        Raises:
            ValueError: not a schedule, or a fault of an unknown kind.
        """
        if not isinstance(data, Mapping) or "faults" not in data or "seed" not in data:
            raise ValueError("not a nemesis schedule (no seed or faults)")
        if int(data.get("format", FORMAT)) != FORMAT:
            raise ValueError(f"schedule format {data.get('format')} is not {FORMAT}")
        return Schedule(int(data["seed"]), float(data["duration_s"]),
                        tuple(FaultSpec.from_json(f) for f in data["faults"]),
                        float(data.get("tail_s", Bounds.tail_s)), float(data.get("warmup_s", Bounds.warmup_s)),
                        str(data.get("note", "")))

    def write(self, path: Path) -> Path:
        """Write the schedule as JSON; return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def read(path: Path) -> Schedule:
        """Read a schedule file."""
        return Schedule.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def with_faults(self, faults: Iterable[FaultSpec], note: str | None = None) -> Schedule:
        """The same seed with other faults; the length follows them (last heal + the tail)."""
        faults = tuple(faults)
        end = max((f.end_s for f in faults), default=self.warmup_s)
        return dataclasses.replace(self, faults=faults, duration_s=round(end + self.tail_s, 3),
                                   note=self.note if note is None else note)

    def describe(self) -> str:
        """One line per fault."""
        lines = [f"seed {self.seed}, {self.duration_s:.0f} s, {len(self.faults)} fault(s)"
                 + (f" ({self.note})" if self.note else "")]
        return "\n".join(lines + [f"  {f.describe()}" for f in self.faults])


def generate(seed: int, duration_s: float, bounds: Bounds = Bounds()) -> Schedule:
    """A schedule of ``duration_s`` seconds drawn from ``seed``: the same seed always gives the same schedule.

    Faults start one after another, a gap apart, often inside the window of the one before (so faults
    interleave), sometimes after a quiet stretch (so recovery gets judged); never two of one kind at once and
    never more than ``bounds.max_overlap`` at once; every fault ends ``bounds.tail_s`` before the run does.
    """
    if duration_s < bounds.warmup_s + bounds.tail_s + 5.0:
        raise ValueError(f"a schedule needs at least {bounds.warmup_s + bounds.tail_s + 5.0:.0f} s")
    rng = random.Random(seed)
    kinds = [KINDS[name] for name in bounds.kinds]
    weights = [k.weight for k in kinds]
    last_end = duration_s - bounds.tail_s
    faults: list[FaultSpec] = []
    t = bounds.warmup_s
    while t < last_end - 0.5:
        active = [f for f in faults if f.start_s <= t < f.end_s]
        kind = rng.choices(kinds, weights)[0]
        if len(active) >= bounds.max_overlap or any(f.kind == kind.name for f in active):
            t = round(min(f.end_s for f in active) + rng.uniform(0.2, 2.0), 3) if active else t + 1.0
            continue
        duration = 0.0 if kind.one_shot else min(rng.uniform(*kind.duration_s), last_end - t)
        if not kind.one_shot and duration < kind.min_s:
            break
        faults.append(FaultSpec(len(faults) + 1, kind.name, round(t, 3), round(duration, 3), _params(kind.name, rng)))
        draw = rng.random()
        if draw < bounds.quiet_chance:
            t = max(f.end_s for f in faults) + rng.uniform(*bounds.quiet_s)
        elif draw < bounds.quiet_chance + bounds.overlap_chance and duration > 1.0:
            t += rng.uniform(0.3, 0.8) * duration   # interleave: the next fault lands while this one is on
        else:
            t += rng.uniform(*bounds.gap_s)
    # Operators clean up after an outage: some drops are followed by a cleanup call (a composed generator).
    for drop in [f for f in faults if f.drops_connections]:
        if rng.random() < bounds.cleanup_after_drop:
            at = round(drop.end_s + rng.uniform(3.0, 8.0), 3)
            if at < last_end:
                faults.append(FaultSpec(len(faults) + 1, "cleanup", at, 0.0, {"via": rng.choice(("api", "api", "cli"))}))
    _compose(faults, rng, bounds, last_end)
    return Schedule(seed, float(duration_s), tuple(faults), bounds.tail_s, bounds.warmup_s)


def _compose(faults: list[FaultSpec], rng: random.Random, bounds: Bounds, last_end: float) -> None:
    """Add the composed faults (:class:`Bounds`): each pairs a fault already drawn with one placed against it, so
    the interleavings a single planned fault never makes come up in most schedules, not once in many.

    - a reset while the gateway is slow: validations are in flight when the connections drop, and the backend
      reconnects with the same client IDs a moment later (a timer the lost validation left running finds them);
    - cleanups while a squatter holds a client ID and the gateway is slow: callers wait, the pool opens more
      connections, one of them past a 326 to the next ID, and a cleanup lands while it is under way;
    - silence right after a reset or a restart: the backend's reconnects time out against a gateway that
      accepts and never answers.
    """
    def add(kind: str, start_s: float, duration_s: float = 0.0, params: dict[str, Any] | None = None) -> None:
        if start_s + duration_s >= last_end:
            return
        new = FaultSpec(len(faults) + 1, kind, round(start_s, 3), round(duration_s, 3), params or {})
        clash = any(f.kind == kind and f.start_s < new.end_s + 0.1 and new.start_s < f.end_s
                    for f in faults if not f.one_shot)
        if clash:
            return
        faults.append(new)  # kept only if no start, its own or one inside its window, has too many faults on
        starts = [new.start_s] + [f.start_s for f in faults if new.start_s < f.start_s < new.end_s]
        if any(sum(1 for f in faults if f.start_s <= at < f.end_s and f.start_s != at) >= bounds.max_overlap
               for at in starts):
            faults.pop()

    drawn = list(faults)
    for fault in drawn:
        if fault.kind in ("latency", "slow_validation") and rng.random() < bounds.cut_while_slow:
            at = fault.start_s + rng.uniform(0.5, max(0.6, min(fault.duration_s - 1.0, 10.0)))
            add("reset", at)
            add("cleanup", at + rng.uniform(4.0, 8.0), params={"via": "api"})
        elif fault.kind == "squatter" and rng.random() < bounds.cleanups_while_squatted:
            # A slow gateway keeps callers waiting, so the pool opens more connections, one past the squatted ID
            # (326, then the next); connects are slow too, so a cleanup lands while one of them is under way.
            slow_at = fault.start_s + rng.uniform(0.5, 3.0)
            slow_s = min(rng.uniform(10.0, 20.0), fault.end_s - slow_at)
            if slow_s >= 4.0:
                add("latency", slow_at, slow_s,
                    {"latency_ms": rng.randrange(300, 501, 50), "jitter_ms": 0, "direction": "downstream"})
                at = slow_at + rng.uniform(2.0, 4.0)
                while at < slow_at + slow_s:
                    add("cleanup", at, params={"via": rng.choice(("api", "api", "cli"))})
                    at += rng.uniform(1.5, 4.0)
        elif fault.drops_connections and fault.kind != "refuse" and rng.random() < bounds.silence_after_cut:
            add("silence", fault.end_s + rng.uniform(0.5, 3.0), rng.uniform(4.0, 10.0))


def _params(kind: str, rng: random.Random) -> dict[str, Any]:
    """The attributes of one fault of ``kind``, drawn from ``rng``."""
    if kind == "unanswered":
        return {"request_types": [rng.choice(UNANSWERED_TYPES)]}
    if kind == "latency":
        direction = rng.choice(("downstream", "downstream", "both"))
        high = 500 if direction == "downstream" else 250   # a round trip stays within 0.5 s
        return {"latency_ms": rng.randrange(100, high + 1, 50), "jitter_ms": rng.choice((0, 0, 50)),
                "direction": direction}
    if kind == "slow_validation":
        return {"latency_ms": rng.randrange(500, 1501, 100)}   # well inside the 3 s validation bound
    if kind == "refuse":
        return {"keep_existing": rng.random() < 0.3}
    if kind in ("connectivity_lost", "ib_notice"):
        return {"restored_code": rng.choice((1101, 1102))}
    if kind == "squatter":
        # Never the preferred ID: the contract lets phase 3 say "working" only while the backend holds it, so a
        # squatter on it would make "≥ 75 with a healthy gateway" depend on how a backend reads that rule.
        return {"client_offset": rng.choice((1, 1, 2))}
    if kind == "cleanup":
        return {"via": rng.choice(("api", "api", "cli"))}
    return {}
