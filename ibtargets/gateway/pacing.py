"""IB's historical-data pacing rules (error 162), enforced across every client of one gateway."""

from __future__ import annotations

import collections
from collections.abc import Hashable

from ibtargets.gateway.config import GatewayConfig


class Pacer:
    """Decides whether a historical request violates pacing; remembers the requests it let through.

    Only requests that were served count towards the windows: a refused request does not extend a
    violation (an assumption; IB does not document it).
    """

    def __init__(self) -> None:
        self._identical: collections.OrderedDict[Hashable, float] = collections.OrderedDict()
        self._per_contract: dict[Hashable, collections.deque[float]] = {}
        self._all: collections.deque[float] = collections.deque()

    def check(self, config: GatewayConfig, now_s: float, identical_key: Hashable, contract_key: Hashable,
              weight: int = 1, bar_s: int = 0) -> str | None:
        """Return the name of the rule this request breaks, or None after recording it as served.

        Args:
            config: the rules in force.
            now_s: monotonic time of the request.
            identical_key: every parameter of the request (same key = identical request).
            contract_key: contract, exchange and whatToShow.
            weight: how many requests this one counts for (BID_ASK counts twice).
            bar_s: the bar size, for ``pacing_max_bar_s``.
        """
        if not config.pacing_enabled or (config.pacing_max_bar_s and bar_s > config.pacing_max_bar_s):
            return None
        self._expire(config, now_s)
        if identical_key in self._identical:
            return f"identical request within {config.identical_window_s:g} s"
        recent = self._per_contract.get(contract_key)
        if recent is not None and len(recent) + weight >= config.same_contract_max:
            return (f"{config.same_contract_max} requests for one contract within "
                    f"{config.same_contract_window_s:g} s")
        if len(self._all) + weight > config.window_max:
            return f"more than {config.window_max} requests within {config.window_s:g} s"
        self._identical[identical_key] = now_s
        self._identical.move_to_end(identical_key)
        if recent is None:
            recent = self._per_contract[contract_key] = collections.deque()
        for _ in range(weight):
            recent.append(now_s)
            self._all.append(now_s)
        return None

    def _expire(self, config: GatewayConfig, now_s: float) -> None:
        while self._identical:
            key, when = next(iter(self._identical.items()))
            if now_s - when < config.identical_window_s:
                break
            del self._identical[key]
        for key in list(self._per_contract):
            recent = self._per_contract[key]
            while recent and now_s - recent[0] >= config.same_contract_window_s:
                recent.popleft()
            if not recent:
                del self._per_contract[key]
        while self._all and now_s - self._all[0] >= config.window_s:
            self._all.popleft()

    def clear(self) -> None:
        """Forget every request (used when the gateway restarts)."""
        self._identical.clear()
        self._per_contract.clear()
        self._all.clear()
