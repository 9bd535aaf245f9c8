"""The custom parameter types the steps' phrases use (registered with behave once, before the steps load).

``{bound:Bound}`` matches a bound by its meaning ("the recovery bound", "the API response bound" …, the keys of
:data:`support.settings.BOUNDS`) and hands the step the key, which :meth:`support.settings.Settings.bound`
turns into a scaled :class:`support.waiting.Bound`.
"""

from __future__ import annotations

import re

from behave import register_type
from parse import with_pattern

from support.settings import BOUNDS

_NAMES = "|".join(re.escape(name) for name in sorted(BOUNDS, key=len, reverse=True))


@with_pattern(rf"the (?:{_NAMES}) bound")
def parse_bound(text: str) -> str:
    """``the recovery bound`` → ``recovery``."""
    return text[len("the "):-len(" bound")]


def register() -> None:
    """Make the types known to behave's step matcher (idempotent)."""
    register_type(Bound=parse_bound)
