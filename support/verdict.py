"""The one verdict convention of the specification.

A Then-step calls one claim (:mod:`support.claims`, :mod:`support.cli_claims`). A claim either returns quietly or
raises :class:`ClaimFailed` (an ``AssertionError``, so behave reports a failed claim, not an error) with what was
expected and what was seen; :class:`BoundExceeded` when what failed was a time bound, :class:`ComplaintFound` when
it was the output. The report files failures by these types and by the failing step's keyword, never by wording. Pure checkers (:mod:`support.checks`) return a
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


class NotProvided(ClaimFailed):
    """The backend does not provide what the contract names (an endpoint, a field of an answer): the claim could not
    be judged. Never retried and never a time bound: waiting does not make an endpoint appear."""


PASS, FAIL, NOT_EXERCISED = "pass", "fail", "not exercised"


@dataclass(frozen=True)
class Violation:
    """One counterexample a checker found: when (the suite's monotonic clock) and what."""

    at_mono: float
    text: str


@dataclass(frozen=True)
class Verdict:
    """A checker's answer: pass, fail with evidence, or not exercised (nothing in the history gave it a chance).

    Only a pass is ``ok``: a claim that judged nothing proved nothing, so :func:`holds` fails it too; a run-wide
    invariant that judged nothing is reported as not exercised, neither passed nor failed.
    """

    status: str
    message: str
    violations: tuple[Violation, ...] = ()
    exercised: int = 0

    @classmethod
    def passed(cls, message: str, exercised: int = 1) -> Verdict:
        """It held, over ``exercised`` cases."""
        return cls(PASS, message, (), max(1, exercised))

    @classmethod
    def failed(cls, message: str, violations: tuple[Violation, ...] | list[Violation] = (), exercised: int = 1) -> Verdict:
        """It did not hold: the message says how, the violations when."""
        return cls(FAIL, message, tuple(sorted(violations, key=lambda v: v.at_mono)), exercised)

    @classmethod
    def unexercised(cls, message: str) -> Verdict:
        """Nothing in the history gave it a chance."""
        return cls(NOT_EXERCISED, message)

    @classmethod
    def over(cls, violations: list[Violation], exercised: int, failed: str, unexercised: str, passed: str) -> Verdict:
        """A checker's usual end: failed with ``violations`` if any, else not exercised when it judged nothing
        (``exercised`` 0), else passed."""
        if violations:
            return cls.failed(failed, violations, exercised)
        if not exercised:
            return cls.unexercised(unexercised)
        return cls.passed(passed, exercised)

    @classmethod
    def of(cls, ok: bool, message: str) -> Verdict:
        """A plain yes/no verdict of a scenario check."""
        return cls.passed(message) if ok else cls.failed(message)

    @property
    def ok(self) -> bool:
        """Whether it passed."""
        return self.status == PASS

    def __bool__(self) -> bool:
        return self.ok

    def first_at(self) -> float | None:
        """The earliest violation (monotonic), None when there is none."""
        return min((v.at_mono for v in self.violations), default=None)

    def detail(self, origin_mono: float = 0.0, limit: int = 12) -> str:
        """The message and the first violations, times relative to ``origin_mono``."""
        lines = [self.message]
        lines += [f"  {v.at_mono - origin_mono:8.2f} s  {v.text}" for v in self.violations[:limit]]
        if len(self.violations) > limit:
            lines.append(f"  … {len(self.violations) - limit} more")
        return "\n".join(lines)


def require(ok: object, message: str) -> None:
    """Raise :class:`ClaimFailed` with ``message`` unless ``ok`` is truthy."""
    if not ok:
        raise ClaimFailed(message)


def require_within(ok: object, message: str) -> None:
    """Raise :class:`BoundExceeded` with ``message`` unless ``ok``: the claim was about time."""
    if not ok:
        raise BoundExceeded(message)


def holds(verdict: Verdict, context: str = "") -> Verdict:
    """A checker's verdict as a claim: returns it when it passed, else raises with its evidence (and ``context``);
    a verdict that judged nothing fails too (the scenario proved nothing)."""
    if not verdict.ok:
        text = verdict.detail() if verdict.violations else verdict.message
        if verdict.status == NOT_EXERCISED:
            text = f"not exercised: {text}"
        raise ClaimFailed(text + (f"\n{context}" if context else ""))
    return verdict
