"""Deadlines and polling: the only way the suite waits for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: Scales every bound; set once from settings (``timeout_multiplier``).
_multiplier = 1.0


def set_timeout_multiplier(value: float) -> None:
    """Scale every :func:`eventually` bound by ``value`` (CI on a slow machine: > 1)."""
    global _multiplier
    if value <= 0:
        raise ValueError("timeout multiplier must be > 0")
    _multiplier = value


def scaled(seconds: float) -> float:
    """A bound in seconds after the timeout multiplier."""
    return seconds * _multiplier


class ConditionTimeout(AssertionError):
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


def eventually(probe: Callable[[], T], within_s: float, describe: str,
               interval_s: float = 0.05, scale: bool = True) -> T:
    """Call ``probe`` until it returns a truthy value or raises nothing; return that value.

    A probe that raises ``AssertionError`` or returns a falsy value is retried until
    the deadline; any other exception propagates at once.

    Args:
        probe: the condition; its last falsy value or assertion is quoted on failure.
        within_s: the bound, scaled by the timeout multiplier unless ``scale`` is False.
        describe: what was awaited, in words, for the failure message.
        interval_s: pause between attempts.

    Raises:
        ConditionTimeout: the condition never held.
    """
    deadline = Deadline(scaled(within_s) if scale else within_s)
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
                f"{describe}: not true within {deadline.within_s:.1f} s (last seen: {last!s:.500})")
        time.sleep(min(interval_s, deadline.remaining_s))  # pacing the poll, not waiting for the condition
