"""IB account codes: the one definition of a paper account, shared by the simulator, the suite's guard against
live accounts and the launch of an embedded gateway."""

from __future__ import annotations

#: Paper (simulated-money) account codes start with these (individual, advisor); anything else is live.
PAPER_PREFIXES = ("DU", "DF")


def is_paper_account(account: str) -> bool:
    """Whether ``account`` is an IB paper account code (``DU…``, ``DF…``)."""
    return account.strip().upper().startswith(PAPER_PREFIXES)
