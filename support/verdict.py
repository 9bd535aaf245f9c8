"""The one verdict convention of the specification.

A Then-step calls one claim (:mod:`support.claims`, :mod:`support.cli_claims`). A claim either returns quietly or
raises :class:`ClaimFailed` (an ``AssertionError``, so behave reports a failed claim, not an error) with what was
expected and what was seen; :class:`BoundExceeded` when what failed was a time bound, :class:`ComplaintFound` when
it was the output. The report files failures by these types and by the failing step's keyword, never by wording. Pure checkers (:mod:`support.checkers`, the nemesis invariants) return a
:class:`Verdict` the report can reuse; a claim turns one into a pass or a failure with :func:`holds`.
No claim uses the ``assert`` statement: ``python -O`` would remove it.
"""

from __future__ import annotations

from dataclasses import dataclass


class ClaimFailed(AssertionError):
    """A claim of the specification does not hold: the message says what was expected and what was seen."""


class BoundExceeded(ClaimFailed):
    """A time bound of the claim was exceeded (an answer, a command or a condition came too late, or never)."""


class ComplaintFound(ClaimFailed):
    """The CLI or the backend printed a warning, an un-awaited coroutine or a traceback."""


@dataclass(frozen=True)
class Verdict:
    """A checker's answer: ``ok`` and, either way, what was seen."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok


def require(ok: object, message: str) -> None:
    """Raise :class:`ClaimFailed` with ``message`` unless ``ok`` is truthy."""
    if not ok:
        raise ClaimFailed(message)


def require_within(ok: object, message: str) -> None:
    """Raise :class:`BoundExceeded` with ``message`` unless ``ok``: the claim was about time."""
    if not ok:
        raise BoundExceeded(message)


def holds(verdict: Verdict, context: str = "") -> Verdict:
    """A checker's verdict as a claim: returns it when it holds, else raises with its message (and ``context``)."""
    if not verdict.ok:
        raise ClaimFailed(verdict.message + (f"\n{context}" if context else ""))
    return verdict
