"""Settings of the reference backend, read once from the environment (KTRDR names first)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ibtargets.common.ibclient import LIBRARIES


class SettingsError(ValueError):
    """An environment variable holds a value the backend cannot use."""


def default_data_dir() -> Path:
    """Where bars are cached unless ``REFBACKEND_DATA_DIR`` says otherwise (never the repo root)."""
    return Path(tempfile.gettempdir()) / "refbackend" / "data"


@dataclass(frozen=True)
class EnvVar:
    """One documented environment variable.

    Args:
        name: the variable.
        field: the :class:`Settings` attribute it sets.
        default: the value when unset, as text.
        unit: unit of the value ("s", "connections", ...), empty when none.
        help: one line for docs/contributors.md.
    """

    name: str
    field: str
    default: str
    unit: str
    help: str


#: Every variable the server reads, in the order of docs/contributors.md.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("IB_HOST", "ib_host", "127.0.0.1", "", "IB Gateway / TWS host"),
    EnvVar("IB_PORT", "ib_port", "4002", "", "IB Gateway / TWS API port"),
    EnvVar("IB_CLIENT_ID", "client_id_min", "1", "", "preferred (first) client ID"),
    EnvVar("IB_TIMEOUT", "connect_timeout_s", "4.0", "s", "bound on one connect (handshake + sync), 326 retries included"),
    EnvVar("REFBACKEND_CLIENT_ID_MAX", "client_id_max", "IB_CLIENT_ID + 49", "",
           "highest client ID the pool may use"),
    EnvVar("REFBACKEND_VALIDATION_TIMEOUT_S", "validation_timeout_s", "3.0", "s",
           "bound on the reqCurrentTime validation before every handoff"),
    EnvVar("REFBACKEND_MAX_IDLE_S", "max_idle_s", "300.0", "s", "idle connections are closed after this"),
    EnvVar("REFBACKEND_HEALTH_INTERVAL_S", "health_interval_s", "60.0", "s",
           "period of the health / garbage-collection loop"),
    EnvVar("REFBACKEND_POOL_SIZE", "pool_size", "5", "connections", "most connections the pool opens"),
    EnvVar("REFBACKEND_ACQUIRE_TIMEOUT_S", "acquire_timeout_s", "5.0", "s",
           "how long a caller waits for a free connection when all are busy"),
    EnvVar("REFBACKEND_PROBE_TIMEOUT_S", "probe_timeout_s", "3.5", "s",
           "bound on the probe behind /ib/health and /ib/resilience (connect included)"),
    EnvVar("REFBACKEND_EVIDENCE_MAX_AGE_S", "evidence_max_age_s", "0.25", "s",
           "a successful validation younger than this counts as live evidence for phase 1"),
    EnvVar("REFBACKEND_REQUEST_TIMEOUT_S", "request_timeout_s", "10.0", "s",
           "bound on one IB data request (contract details, one historical chunk)"),
    EnvVar("REFBACKEND_PACING_DELAY_S", "pacing_delay_s", "0.4", "s", "pause between historical requests"),
    EnvVar("REFBACKEND_PACING_BACKOFF_S", "pacing_backoff_s", "2.0", "s",
           "first wait after IB pacing error 162 (doubles each retry)"),
    EnvVar("REFBACKEND_PACING_RETRIES", "pacing_retries", "3", "retries", "retries of a paced-out request"),
    EnvVar("REFBACKEND_RATE_MAX_REQUESTS", "rate_max_requests", "60", "requests",
           "historical requests allowed per rate period (IB: 60 per 10 min)"),
    EnvVar("REFBACKEND_RATE_PERIOD_S", "rate_period_s", "600.0", "s", "the rate-limit window"),
    EnvVar("REFBACKEND_READONLY", "readonly", "true", "", "connect read-only (no order sync)"),
    EnvVar("REFBACKEND_DATA_DIR", "data_dir", "<tmp>/refbackend/data", "", "bar cache directory"),
    EnvVar("REFBACKEND_LOG_LEVEL", "log_level", "info", "", "server log level (debug, info, warning, error)"),
    EnvVar("IB_RESILIENCE_IB_LIBRARY", "ib_library", "ib_insync", "",
           "IB client library: ib_insync (0.9.86) or ib_async (2.x)"),
)


def _number(kind: type, what: str) -> Callable[[str, str], object]:
    """A parser of non-negative ``kind`` values that names the variable in its error."""
    def parse(text: str, name: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise SettingsError(f"{name}={text!r} is not {what}") from None
        if value < 0:
            raise SettingsError(f"{name}={text!r} must be >= 0")
        return value
    return parse


_float = _number(float, "a number")
_int = _number(int, "an integer")


def _bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={text!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with (see :data:`ENV_VARS` for the variables)."""

    ib_host: str = "127.0.0.1"
    ib_port: int = 4002
    client_id_min: int = 1
    client_id_max: int = 50
    connect_timeout_s: float = 4.0
    validation_timeout_s: float = 3.0
    max_idle_s: float = 300.0
    health_interval_s: float = 60.0
    pool_size: int = 5
    acquire_timeout_s: float = 5.0
    probe_timeout_s: float = 3.5
    evidence_max_age_s: float = 0.25
    request_timeout_s: float = 10.0
    pacing_delay_s: float = 0.4
    pacing_backoff_s: float = 2.0
    pacing_retries: int = 3
    rate_max_requests: int = 60
    rate_period_s: float = 600.0
    readonly: bool = True
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    log_level: str = "info"
    ib_library: str = "ib_insync"

    def __post_init__(self) -> None:
        if not 1 <= self.ib_port <= 65535:
            raise SettingsError(f"IB_PORT={self.ib_port} is outside 1..65535")
        if self.client_id_max < self.client_id_min:
            raise SettingsError(f"REFBACKEND_CLIENT_ID_MAX ({self.client_id_max}) must be >= "
                                f"IB_CLIENT_ID ({self.client_id_min})")
        if self.pool_size < 1:
            raise SettingsError("REFBACKEND_POOL_SIZE must be >= 1")
        if self.health_interval_s <= 0:
            raise SettingsError("REFBACKEND_HEALTH_INTERVAL_S must be > 0")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise SettingsError(f"REFBACKEND_LOG_LEVEL={self.log_level!r} is not a log level")
        if self.ib_library not in LIBRARIES:
            raise SettingsError(f"IB_RESILIENCE_IB_LIBRARY={self.ib_library!r} is not "
                                f"{' or '.join(LIBRARIES)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every variable of :data:`ENV_VARS`; unset ones keep their default.

        Raises:
            SettingsError: a value is malformed or out of range.
        """
        env = os.environ if environ is None else environ
        parsers: dict[str, Callable[[str, str], object]] = {}
        for f in dataclasses.fields(cls):
            kind = {"int": _int, "float": _float, "bool": _bool}.get(str(f.type))
            parsers[f.name] = kind or (lambda text, name: text)
        values: dict[str, object] = {}
        for var in ENV_VARS:
            raw = env.get(var.name)
            if raw is None or raw.strip() == "":
                continue
            values[var.field] = parsers[var.field](raw.strip(), var.name)
        if "client_id_max" not in values:
            values["client_id_max"] = int(values.get("client_id_min", cls.client_id_min)) + 49
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"]))
        return cls(**values)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
