"""Gateway trouble in the user's words, mapped onto faults (the phrases Scenario Outlines use)."""

from __future__ import annotations

import re
from collections.abc import Callable

from support.drivers.faults import FaultDriver, FaultWindow

_FIXED: dict[str, Callable[[FaultDriver], FaultWindow]] = {
    "silence after the handshake": lambda faults: faults.silence(),
    "an outage": lambda faults: faults.outage(),
    "a loss of connectivity to IB": lambda faults: faults.connectivity_lost(),
    "no answer to the handshake": lambda faults: faults.no_handshake(),
}
_RESTART = re.compile(r"^a restart that refuses for (\d+(?:\.\d+)?) s$")


def inflict(faults: FaultDriver, trouble: str) -> FaultWindow:
    """Apply the trouble named by ``trouble``.

    Raises:
        KeyError: the phrase is not in the vocabulary (the message lists it).
    """
    if trouble in _FIXED:
        return _FIXED[trouble](faults)
    match = _RESTART.match(trouble)
    if match:
        return faults.restart(float(match.group(1)))
    raise KeyError(f"unknown gateway trouble {trouble!r}; known: {', '.join(_FIXED)}, "
                   "'a restart that refuses for N s'")


def silent_blip(faults: FaultDriver, api_probe: Callable[[], bool], silent_s: float, recovery_s: float) -> None:
    """Nemesis for long runs: silence the gateway for about ``silent_s``, heal, let the service recover.

    Never asserts: the workload's own results are the verdict. Waits are bounded.
    """
    from support.waiting import ConditionTimeout, eventually

    window = faults.silence()
    try:
        eventually(lambda: not api_probe(), silent_s, "the silence is noticed")
    except ConditionTimeout:
        pass
    finally:
        faults.heal(window)
    try:
        eventually(api_probe, recovery_s, "service is back after the silence", interval_s=0.2)
    except ConditionTimeout:
        pass
