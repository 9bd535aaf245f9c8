"""Deadlines and polling: the only way the suite waits for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from support.verdict import BoundExceeded, ClaimFailed, NotProvided

T = TypeVar("T")


@dataclass(frozen=True)
class Bound:
    """A time limit in seconds, already scaled by the timeout multiplier, and what it means.

    The one kind of limit a wait or a claim takes. Only :meth:`support.settings.Settings.bound` and
    :meth:`support.settings.Settings.bound_of` make one, so every bound is scaled exactly once.
    """

    seconds: float
    meaning: str

    def __str__(self) -> str:
        return f"{self.seconds:g} s ({self.meaning})"

    def to_json(self) -> dict[str, object]:
        """As JSON values (a history written with the bounds it was judged by)."""
        return {"seconds": self.seconds, "meaning": self.meaning}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Bound:
        """A bound written by :meth:`to_json` (a recorded one, judged again: never a new figure)."""
        return cls(float(data["seconds"]), str(data["meaning"]))

    @classmethod
    def exactly(cls, seconds: float, meaning: str = "a bound of the caller's own") -> Bound:
        """A bound of exactly ``seconds``, for code that has no settings (the project's own tests, benchmarks).
        The specification never uses it (tests/spec/test_bounds.py): its bounds come from the settings."""
        return cls(float(seconds), meaning)


@dataclass(frozen=True)
class Measured:
    """One timed claim's outcome: what was awaited, its bound, and how long the answer that decided it took
    (from the bound's start to its arrival; for a condition that never held, the time waited)."""

    what: str
    bound: Bound
    measured_s: float
    held: bool

    def describe(self) -> str:
        """``✓ 0.41 s against 3 s (the validation bound): the IB health says unhealthy``."""
        return f"{'✓' if self.held else '✗'} {self.measured_s:.2f} s against {self.bound}: {self.what}"


_measured: list[Measured] = []
_measured_lock = threading.Lock()
_failing_waits_s = [0.0]   # the run's total: seconds spent on timed claims that never held


def failing_waits_s() -> float:
    """Seconds this process spent waiting on timed claims that never held (the run's time budget)."""
    with _measured_lock:
        return _failing_waits_s[0]


def measurements_since(mark: int) -> list[Measured]:
    """The timed claims decided since :func:`measurement_mark` returned ``mark`` (a step's, in its hooks)."""
    with _measured_lock:
        return list(_measured[mark:])


def measurement_mark() -> int:
    """A position in the record of timed claims (the record is cleared by :func:`clear_measurements`)."""
    with _measured_lock:
        return len(_measured)


def clear_measurements() -> None:
    """Forget the timed claims decided so far (a scenario's start)."""
    with _measured_lock:
        _measured.clear()


def _measure(what: str, bound: Bound, measured_s: float, held: bool) -> None:
    with _measured_lock:
        _measured.append(Measured(what, bound, max(0.0, measured_s), held))
        if not held:
            _failing_waits_s[0] += max(0.0, measured_s)


class ConditionTimeout(BoundExceeded):
    """A polled condition did not hold before its deadline (``last``: what the probe said last, its value or the
    assertion it raised)."""

    def __init__(self, message: str, last: object = None):
        super().__init__(message)
        self.last = last


@dataclass
class Deadline:
    """A point in monotonic time ``within_s`` seconds after ``started`` (default: its creation)."""

    within_s: float
    started: float | None = None

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = time.monotonic()
        self.at = self.started + self.within_s

    @property
    def remaining_s(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.at - time.monotonic())

    @property
    def elapsed_s(self) -> float:
        """Seconds since the deadline was set."""
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.at


def arrival_of(value: object, returned_mono: float) -> float:
    """When an observation's answer arrived: its own ``finished_mono`` (an API answer, a CLI run) when it carries
    one, else the moment the probe returned it."""
    finished = getattr(value, "finished_mono", None)
    return float(finished) if isinstance(finished, (int, float)) else returned_mono


def eventually(probe: Callable[[], T], within: Bound, describe: str, interval_s: float = 0.05,
               since_mono: float | None = None, measure: bool = True) -> T:
    """Call ``probe`` until it returns a truthy value or raises nothing; return that value.

    The bound measures the answer, not the question: a value counts only if it arrived (its ``finished_mono``,
    else the moment the probe returned) within ``within`` of the bound's start. A probe sent inside the bound
    whose answer came later fails the wait with the answer's arrival time, however true the answer is.

    A probe that raises ``AssertionError`` or returns a falsy value is retried until
    the deadline; any other exception propagates at once, and so does :class:`~support.verdict.NotProvided` (a
    missing endpoint or field does not appear by waiting).

    Args:
        probe: the condition; its last falsy value or assertion is quoted on failure.
        within: the bound (already scaled: :class:`Bound` values come from the settings).
        describe: what was awaited, in words, for the failure message.
        interval_s: pause between attempts.
        since_mono: the bound's start (e.g. when the fault it is about began); default: now.
        measure: record the outcome against the bound for the step's evidence (:func:`measurements_since`);
            False for the suite's own allowances, which are no bound the backend must meet.

    Raises:
        ConditionTimeout: the condition never held, or held only on an answer that arrived past the bound.
    """
    if not isinstance(within, Bound):
        raise TypeError(f"eventually() takes a Bound from the settings, not {within!r}")
    deadline = Deadline(within.seconds, since_mono)
    last: object = None
    while True:
        try:
            value = probe()
        except NotProvided:
            raise
        except AssertionError as exc:
            last = exc
        else:
            if value:
                arrived = arrival_of(value, time.monotonic())
                if measure:
                    _measure(describe, within, arrived - deadline.started, arrived <= deadline.at)
                if arrived <= deadline.at:
                    return value
                shown = value.describe() if hasattr(value, "describe") else value
                raise ConditionTimeout(
                    f"{describe}: held only on an answer that arrived {arrived - deadline.started:.2f} s after the "
                    f"bound's start, past {within} (that answer: {shown!s:.500})", value)
            last = value
        if deadline.expired:
            if measure:
                _measure(describe, within, time.monotonic() - deadline.started, False)
            raise ConditionTimeout(
                f"{describe}: not true within {within} (last seen: {last!s:.500})", last)
        time.sleep(min(interval_s, deadline.remaining_s))  # pacing the poll, not waiting for the condition


def settled(probe: Callable[[], T], grace: Bound, describe: str, interval_s: float = 0.05) -> T:
    """``probe`` judged once the evidence it reads has had ``grace`` to arrive (closes reach the gateway a moment
    after the answer that made them): a claim about *what* happened, not about *when*, so a condition that never
    held fails as a refuted claim (:class:`~support.verdict.ClaimFailed`, with the probe's last assertion), never as
    a time bound. The grace is the suite's own allowance, not a bound the backend must meet.

    Raises:
        ClaimFailed: the condition did not hold once the grace was over.
    """
    try:
        return eventually(probe, grace, describe, interval_s, measure=False)
    except ConditionTimeout as exc:
        last = exc.last
        seen = str(last) if isinstance(last, AssertionError) else f"not seen (last: {last!s:.500})"
        raise ClaimFailed(f"{describe}: {seen} (what reached the suite within {grace} counted)") from None
