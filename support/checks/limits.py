"""What the checkers judge by: the contract's bounds (as :class:`~support.waiting.Bound` values from the settings,
scaled once) and the target profile's facts, in one value a history can be judged with again later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from support.waiting import Bound


@dataclass(frozen=True)
class Limits:
    """The bounds and facts of one run.

    Args:
        load: a data load that really receives bars from IB (the contract's one exception to the API bound).
        connect: how recently a connection's API session began for it to count as still opening, not pooled.
        pool_limit: the most IB connections the backend may hold at once (the target profile's).
        normal_load_callers: more API callers at once than this (or than the pool) is a stress, not normal load.
        preferred_client_id: the client ID the backend must try first.
        client_id_max: the highest it may use (0: what its ``/ib/config`` reports).
        probe_client_ids_from: the suite's own probes use client IDs from here up (below it, the suite's own
            connections are squatters: they hold IDs the backend would use).
    """

    api_response: Bound
    cli_command: Bound
    load: Bound
    validation: Bound
    silent_detection: Bound
    recovery: Bound
    connect: Bound
    score_min: float = 75.0
    pool_limit: int = 5
    preferred_client_id: int = 1
    normal_load_callers: int = 5
    client_id_max: int = 0
    probe_client_ids_from: int = 900

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        """The limits of a run with these :class:`~support.settings.Settings`."""
        s = settings
        return cls(api_response=s.bound("API response"), cli_command=s.bound("CLI"),
                   load=s.bound_of(90.0, "a data load receiving bars"), validation=s.bound("validation"),
                   silent_detection=s.bound("silent-detection"), recovery=s.bound("recovery"),
                   connect=s.bound_of(s.thresholds.api_response_s, "a connection still opening"),
                   score_min=s.thresholds.score_min, pool_limit=s.profile.pool_limit,
                   normal_load_callers=int(s.thresholds.normal_load_callers),
                   preferred_client_id=s.preferred_client_id, client_id_max=s.profile.client_id_max,
                   probe_client_ids_from=s.squatter_client_id_base)

    def to_json(self) -> dict[str, Any]:
        """As JSON values (written with a history, so it can be judged again)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            out[name] = value.to_json() if isinstance(value, Bound) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        """Limits written by :meth:`to_json`."""
        return cls(**{k: Bound.from_json(v) if isinstance(v, dict) else v for k, v in data.items()})
