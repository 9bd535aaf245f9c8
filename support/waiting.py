"""Deadlines and polling: the only way the suite waits for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from support.verdict import BoundExceeded

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

    @classmethod
    def exactly(cls, seconds: float, meaning: str = "a bound of the caller's own") -> Bound:
        """A bound of exactly ``seconds``, for code that has no settings (the project's own tests, benchmarks).
        The specification never uses it (tests/spec/test_bounds.py): its bounds come from the settings."""
        return cls(float(seconds), meaning)


class ConditionTimeout(BoundExceeded):
    """A polled condition did not hold before its deadline."""


@dataclass
class Deadline:
    """A point in monotonic time ``within_s`` seconds from creation."""

    within_s: float

    def __post_init__(self) -> None:
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


def eventually(probe: Callable[[], T], within: Bound, describe: str, interval_s: float = 0.05) -> T:
    """Call ``probe`` until it returns a truthy value or raises nothing; return that value.

    A probe that raises ``AssertionError`` or returns a falsy value is retried until
    the deadline; any other exception propagates at once.

    Args:
        probe: the condition; its last falsy value or assertion is quoted on failure.
        within: the bound (already scaled: :class:`Bound` values come from the settings).
        describe: what was awaited, in words, for the failure message.
        interval_s: pause between attempts.

    Raises:
        ConditionTimeout: the condition never held.
    """
    if not isinstance(within, Bound):
        raise TypeError(f"eventually() takes a Bound from the settings, not {within!r}")
    deadline = Deadline(within.seconds)
    last: object = None
    while True:
        try:
            value = probe()
        except AssertionError as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if deadline.expired:
            raise ConditionTimeout(
                f"{describe}: not true within {within} (last seen: {last!s:.500})")
        time.sleep(min(interval_s, deadline.remaining_s))  # pacing the poll, not waiting for the condition
