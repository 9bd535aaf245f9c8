"""The gateway simulator's rules: one frozen, validated settings object."""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ibtargets.common.accounts import is_paper_account

MAX_CLIENTS_ACTIONS = ("close", "ignore")

#: Allowed range (inclusive) of every numeric setting; a value outside is a :class:`ConfigError` naming it.
RANGES: dict[str, tuple[float, float]] = {
    "server_version_max": (100, 178),
    "max_clients": (1, 1024),                    # IB: 32
    "same_contract_max": (1, 1000),
    "window_max": (1, 1_000_000),
    "max_connections": (1, 65_535),
    "max_frame_bytes": (1, 16 * 1024 * 1024),    # IB's clients refuse frames over 16 MB
    "max_outgoing_bytes": (1, 1024 ** 3),
    "max_bars_per_request": (1, 10_000_000),
    "next_valid_id": (1, 2**31 - 1),             # order IDs are 32-bit signed
    "history_max_events": (1, 10_000_000),
    "identical_window_s": (0, 86_400),
    "same_contract_window_s": (0, 86_400),
    "window_s": (0, 86_400),
    "pacing_max_bar_s": (0, 31 * 86_400),        # up to a one-month bar
    "id_release_delay_s": (0, 3600),
    "handshake_timeout_s": (0.01, 3600),
}


class ConfigError(ValueError):
    """A gateway setting has the wrong type or an out-of-range value."""


@dataclass(frozen=True)
class GatewayConfig:
    """Everything that shapes the simulator's behaviour (units in the names).

    Attributes:
        account: the managed account presented to clients; a paper account (``DU…``/``DF…``) unless
            ``allow_live_account``.
        server_version_max: highest server version offered; each socket gets ``min(this, client max)``.
        max_clients: simultaneous API clients (IB: 32).
        max_clients_action: what the client over the limit sees after its handshake: ``close`` (socket
            closed, no managedAccounts/nextValidId) or ``ignore`` (socket kept, nothing sent).
        pacing_enabled: apply IB's historical-data pacing rules (error 162).
        identical_window_s: an identical historical request within this many seconds is refused.
        same_contract_max: the request that would be the Nth for one contract/exchange/whatToShow within
            ``same_contract_window_s`` is refused (IB: "six or more within two seconds").
        same_contract_window_s: window of the same-contract rule.
        window_max: at most this many historical requests in any ``window_s`` (IB: 60 per 10 min).
        window_s: window of the overall rule.
        pacing_max_bar_s: apply pacing only to bars of at most this many seconds (IB documents 30);
            0 = every bar size.
        id_release_delay_s: a client ID stays "in use" this long after its socket closes.
        handshake_timeout_s: a socket that has not sent a complete hello by then is closed.
        max_connections: flood guard; sockets above this many (any state) are closed at once.
        max_frame_bytes: inbound frames announcing more are refused; client requests are a few kB, so
            1 MiB bounds the memory a socket can hold (IB's clients refuse frames over 16 MB).
        max_outgoing_bytes: a client whose unread output exceeds this is dropped (slow consumer).
        max_bars_per_request: larger historical requests get error 162 "Time length exceed max.".
        next_valid_id: the nextValidId sent after startApi.
        time_zone: the TWS login time zone (handshake time, endDateTime without a zone).
        farm_notices: send the 2104/2106/2158 farm-OK notices after startApi.
        history_max_events: size of the event ring (read at start).
        allow_live_account: present a non-paper account (no money is involved: this is a simulator);
            only so that clients' "never touch a live account" guards can be tested.
    """

    account: str = "DU1234567"
    server_version_max: int = 176
    max_clients: int = 32
    max_clients_action: str = "close"
    pacing_enabled: bool = True
    identical_window_s: float = 15.0
    same_contract_max: int = 6
    same_contract_window_s: float = 2.0
    window_max: int = 60
    window_s: float = 600.0
    pacing_max_bar_s: float = 0.0
    id_release_delay_s: float = 0.0
    handshake_timeout_s: float = 10.0
    max_connections: int = 256
    max_frame_bytes: int = 1024 * 1024
    max_outgoing_bytes: int = 16 * 1024 * 1024
    max_bars_per_request: int = 50_000
    next_valid_id: int = 1
    time_zone: str = "US/Eastern"
    farm_notices: bool = True
    history_max_events: int = 100_000
    allow_live_account: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_type(field.name, _hints()[field.name], getattr(self, field.name))
        if not self.account.isalnum():
            raise ConfigError(f"account {self.account!r} is not an IB account code")
        if not is_paper_account(self.account) and not self.allow_live_account:
            raise ConfigError(f"account {self.account!r} is not a paper account (DU…/DF…); "
                              "--allow-live-account presents it anyway, to test clients' safety guards")
        if self.max_clients_action not in MAX_CLIENTS_ACTIONS:
            raise ConfigError(f"max_clients_action must be one of {', '.join(MAX_CLIENTS_ACTIONS)}")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and low <= value <= high):
                raise ConfigError(f"{name} must be within {_number(low)}..{_number(high)} (got {_shown(value)})")
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except Exception:
            raise ConfigError(f"time_zone {self.time_zone!r} is not a known zone") from None

    def to_json(self) -> dict[str, Any]:
        """The control-API representation (``GET /config``)."""
        return dataclasses.asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> GatewayConfig:
        """A copy with ``changes`` applied (JSON values are coerced: ints are accepted for floats).

        Raises:
            ConfigError: an unknown key, a wrong type or an invalid value.
        """
        if not isinstance(changes, Mapping):
            raise ConfigError("a config update is a JSON object")
        hints = _hints()
        values = {}
        for key, value in changes.items():
            if key not in hints:
                raise ConfigError(f"unknown setting {key!r}; known: {', '.join(hints)}")
            if hints[key] is float and isinstance(value, int) and not isinstance(value, bool):
                low, high = RANGES[key]
                if not low <= value <= high:  # also keeps float() from overflowing on a huge integer
                    raise ConfigError(f"{key} must be within {_number(low)}..{_number(high)} (got {_shown(value)})")
                value = float(value)
            values[key] = value
        return dataclasses.replace(self, **values)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(GatewayConfig)


def _check_type(name: str, hint: type, value: Any) -> None:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if isinstance(value, bool) and hint is not bool:
        raise ConfigError(f"{name} must be {hint.__name__}, not a boolean")
    if not isinstance(value, hint):
        raise ConfigError(f"{name} must be {hint.__name__}, got {type(value).__name__}")
