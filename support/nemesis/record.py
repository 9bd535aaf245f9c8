"""What only the nemesis knows about a run, beside the run's one history.

Everything a run observes — the API exchanges and CLI runs of its workload and of its cleanups, the fault windows of
both planes, what the gateway and the proxy saw, the squatters (the suite's own connections), the backend's output
and lives — goes into the world's :class:`~support.run_history.RunHistory`; the run's evidence is its window
(:meth:`~support.run_history.RunHistory.window`). :class:`NemesisRun` holds the rest: the schedule, when each planned
fault was really applied and healed and what was done (:class:`FaultNote`), the final heal, the final cache reads
and the notes. :func:`write_history` and :func:`read_history` keep both, with the limits they were judged by, in one
``history.json``, so a run can be judged and drawn again without rerunning it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from support.checks.cache import CacheRead
from support.checks.limits import Limits
from support.nemesis.schedule import FaultSpec, Schedule
from support.run_history import HistoryWindow

#: ``history.json`` format version (2: the run's history window plus the nemesis's own facts).
FORMAT = 2


@dataclass(frozen=True)
class FaultNote:
    """When a planned fault was really on, and what was done.

    Args:
        fault_id: the schedule's fault (:attr:`FaultSpec.id`).
        applied_mono: when it took effect (a cleanup: when its call began).
        healed_mono: when it was healed (a one-shot fault: when it acted; a cleanup: its answer; None: never
            healed by the schedule, the final heal did it).
        error: it could not be applied (e.g. no client ID free for a squatter).
        note: what was really done (the client ID a squatter took, a cleanup's outcome).
    """

    fault_id: int
    applied_mono: float
    healed_mono: float | None = None
    error: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return {"fault_id": self.fault_id, "applied_mono": self.applied_mono, "healed_mono": self.healed_mono,
                "error": self.error, "note": self.note}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> FaultNote:
        """A note written by :meth:`to_json`."""
        return FaultNote(int(data["fault_id"]), float(data["applied_mono"]),
                         None if data.get("healed_mono") is None else float(data["healed_mono"]),
                         str(data.get("error") or ""), str(data.get("note") or ""))


@dataclass(frozen=True)
class NemesisRun:
    """The nemesis's own facts about one run (its history is the run history's window ``[origin, finished]``).

    Args:
        schedule: what was planned.
        origin_mono: the schedule's second 0.
        finished_mono: when the run's history ends (the workload stopped, the final reads made).
        final_heal_mono: when the final generator healed everything (0: it never ran).
        faults: planned versus applied, one note per fault acted on.
        cache: the final reads (:func:`support.checks.cache.cached_bars_true`).
        reads_mono: when the final reads were made.
        notes: what the run wants the report to say.
    """

    schedule: Schedule
    origin_mono: float
    finished_mono: float
    final_heal_mono: float = 0.0
    faults: tuple[FaultNote, ...] = ()
    cache: tuple[CacheRead, ...] = ()
    reads_mono: float = 0.0
    notes: tuple[str, ...] = ()

    def rel(self, mono: float) -> float:
        """Seconds since the schedule's start."""
        return mono - self.origin_mono

    def spec(self, fault_id: int) -> FaultSpec | None:
        """The planned fault of a note."""
        return next((f for f in self.schedule.faults if f.id == fault_id), None)

    def applied(self) -> list[tuple[FaultSpec, FaultNote]]:
        """Every planned fault that was acted on, with its note, in the order they were applied."""
        out = [(self.spec(n.fault_id), n) for n in sorted(self.faults, key=lambda n: n.applied_mono)]
        return [(spec, note) for spec, note in out if spec is not None]

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return {"schedule": self.schedule.to_json(), "origin_mono": self.origin_mono,
                "finished_mono": self.finished_mono, "final_heal_mono": self.final_heal_mono,
                "faults": [n.to_json() for n in self.faults], "cache": [r.to_json() for r in self.cache],
                "reads_mono": self.reads_mono, "notes": list(self.notes)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> NemesisRun:
        """A run written by :meth:`to_json`."""
        return NemesisRun(Schedule.from_json(data["schedule"]), float(data["origin_mono"]),
                          float(data["finished_mono"]), float(data.get("final_heal_mono") or 0.0),
                          tuple(FaultNote.from_json(n) for n in data.get("faults", [])),
                          tuple(CacheRead.from_json(r) for r in data.get("cache", [])),
                          float(data.get("reads_mono") or 0.0), tuple(data.get("notes", [])))


@dataclass
class RunNotes:
    """The nemesis's facts as a run makes them (thread-safe appends); :meth:`frozen` gives the :class:`NemesisRun`."""

    schedule: Schedule
    origin_mono: float = 0.0
    final_heal_mono: float = 0.0
    faults: list[FaultNote] = field(default_factory=list)
    cache: list[CacheRead] = field(default_factory=list)
    reads_mono: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def fault(self, note: FaultNote) -> None:
        """A planned fault was acted on (or could not be)."""
        with self._lock:
            self.faults.append(note)

    def healed(self, fault_id: int, healed_mono: float, error: str = "", suffix: str = "") -> None:
        """A planned fault still open was healed (its note gains the heal time, an error, more text)."""
        with self._lock:
            for index in range(len(self.faults) - 1, -1, -1):
                note = self.faults[index]
                if note.fault_id == fault_id and note.healed_mono is None:
                    self.faults[index] = replace(note, healed_mono=healed_mono, error=note.error or error,
                                                 note=note.note + suffix)
                    return

    def note(self, text: str) -> None:
        """Something the run wants the report to say, stamped with seconds since the schedule's start."""
        with self._lock:
            self.notes.append(f"{time.monotonic() - self.origin_mono:7.2f} s {text}" if self.origin_mono else text)

    def frozen(self, finished_mono: float) -> NemesisRun:
        """The run's facts, its history ending at ``finished_mono``."""
        with self._lock:
            return NemesisRun(self.schedule, self.origin_mono, finished_mono, self.final_heal_mono,
                              tuple(self.faults), tuple(self.cache), self.reads_mono, tuple(self.notes))


def write_history(path: Path, window: HistoryWindow, run: NemesisRun, limits: Limits) -> Path:
    """``history.json``: the run's window of the run history, the nemesis's facts and the limits it was judged by."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, "limits": limits.to_json(), "nemesis": run.to_json(),
                                "history": window.to_json()}, default=str), encoding="utf-8")
    return path


def read_history(path: Path) -> tuple[HistoryWindow, NemesisRun, Limits]:
    """What :func:`write_history` wrote.

    Raises:
        ValueError: not a nemesis history of this format.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT or "nemesis" not in data:
        raise ValueError(f"{path}: not a nemesis history of format {FORMAT}")
    return (HistoryWindow.from_json(data["history"]), NemesisRun.from_json(data["nemesis"]),
            Limits.from_json(data["limits"]))
