"""One frozen settings object for the suite, read once from behave userdata (pyproject + ``-D``)."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.waiting import Bound

EMBEDDED = "embedded"
MANAGED = "managed"
EXTERNAL = "external"
ROOT = Path(__file__).resolve().parent.parent

#: Level → behave tag expression (basic ⊂ standard ⊂ exhaustive).
LEVELS = {
    "basic": "@basic",
    "standard": "@basic or @standard",
    "exhaustive": "@basic or @standard or @exhaustive",
}


class SettingsError(ValueError):
    """A setting is missing or has a value of the wrong kind."""


@dataclass(frozen=True)
class Thresholds:
    """The seed's requirements, in seconds unless the name says otherwise."""

    validation_s: float = 3.0          # isConnected() + reqCurrentTime() before a handoff
    silent_detection_s: float = 5.0    # a silent gateway is noticed, never a hang
    api_response_s: float = 5.0        # every API answer under normal load
    cli_command_s: float = 30.0        # every CLI command
    recovery_s: float = 10.0           # service back after stress or an outage
    score_min: float = 75.0            # healthy resilience score
    score_infrastructure: float = 65.0  # below: infrastructure trouble
    success_rate_min_pct: float = 95.0  # API under concurrent load
    shutdown_s: float = 10.0           # SIGTERM → every IB connection closed (no seed figure: the recovery bound)
    trouble_detection_s: float = 5.0   # the gateway gone, restarting or cut off from IB is noticed (the seed's
                                       # 5 s for a silent gateway, held for every outage)
    normal_load_callers: float = 5.0   # the contract's 5 pooled API connections: more callers at once is a stress,
                                       # not the normal load the API bound is promised under


#: The bounds a scenario names, by meaning ("within the recovery bound") → the threshold that sets them.
BOUNDS: dict[str, str] = {
    "validation": "validation_s",
    "silent-detection": "silent_detection_s",
    "trouble-detection": "trouble_detection_s",
    "API response": "api_response_s",
    "CLI": "cli_command_s",
    "recovery": "recovery_s",
    "shutdown": "shutdown_s",
}


@dataclass(frozen=True)
class TargetProfile:
    """Facts about the system under test that its API does not report (the README's target profile).

    Everything else the suite needs to know (idle timeout, health interval, client-ID range)
    it reads from the target itself; these settings fill the gaps, and in embedded mode they
    also configure the reference backend, so the suite and the backend never disagree.
    """

    pool_limit: int = 5                # the most IB connections the backend may hold at once (KTRDR: 5)
    client_id_min: int = 0             # 0: the range the backend reports in /ib/config
    client_id_max: int = 0
    connect_timeout_s: float = 3.0     # the backend's bound on one IB connect
    backend_ib_host: str = ""          # where the backend's IB connections go ('': the proxy, else the gateway)
    backend_ib_port: int = 0
    max_wait_s: float = 120.0          # longest a scenario may wait on the target's own timings
    idle_timeout_s: float = 0.0        # 0: the idle timeout the backend reports (resilience phase 2)
    health_check_interval_s: float = 0.0  # 0: the health-check interval the backend reports


@dataclass(frozen=True)
class EmbeddedTuning:
    """Time compression for the embedded reference backend (the defaults stay KTRDR's)."""

    max_idle_s: float = 2.0
    health_interval_s: float = 0.5
    client_id_span: int = 10           # preferred ID .. preferred + span - 1 (more IDs than pool slots)


@dataclass(frozen=True)
class Settings:
    """Everything the suite needs to know about its targets.

    In ``embedded`` mode the suite starts the gateway simulator, the fault proxy
    and the reference backend itself; in ``external`` mode it uses the given
    addresses, and scenarios needing a missing capability are skipped with a reason.
    """

    target: str = EMBEDDED
    ib_host: str = "127.0.0.1"
    ib_port: int = 0                     # the gateway itself (probes, client-ID squatters)
    api_base_url: str = ""
    cli: tuple[str, ...] = ()
    backend_command: tuple[str, ...] = ()  # embedded: the reference backend's command; managed: yours, with
                                           # placeholders {ib_host} {ib_port} (the proxy) {api_port}
    backend_cwd: str = ""                # managed: directory the backend starts in
    backend_env: tuple[tuple[str, str], ...] = ()  # managed: extra environment ("K=V,K=V"), placeholders too
    backend_tuning_env: tuple[tuple[str, str], ...] = ()  # managed: environment left out when a scenario needs
                                                            # the backend's own default timings
    backend_reset: str = ""              # managed: shell command run before every start (bounded, 60 s)
    api_port: int = 0                    # managed: the port its API listens on (0: a free one)
    backend_start_timeout_s: float = 120.0  # managed: bound on a start (its API answers backend_ready_path)
    backend_ready_path: str = "/api/v1/health"  # managed: answers below HTTP 500 once the backend is ready
    backend_stop_timeout_s: float = 20.0  # managed/embedded: SIGTERM, then SIGKILL after this long
    backend_venv: str = ""               # managed: a virtual environment, the {backend_venv} placeholder
    backend_restore: tuple[str, ...] = ()  # managed: files (under backend_cwd) restored before every start
    backend_remove: tuple[str, ...] = ()   # managed: files and directories removed before every start
    backend_log: str = ""                # external: a file the backend writes its output to (the suite reads it)
    cli_api: str = "env:KTRDR_API_URL"   # how the CLI is pointed at the API: env:NAME, option:--flag or fixed:URL
    restart_after_failure: bool = True   # managed/embedded: a failed scenario's damage is not the next one's
    preferred_client_id: int = 1
    gateway_control: str = ""            # control URL of a simulator the user started
    proxy_control: str = ""              # control URL of a fault proxy the user started
    backend_pid: int = 0                 # external: the SUT's process, for leak sampling
    gateway_account: str = "DU1234567"   # embedded: the account the simulator presents
    timeout_multiplier: float = 1.0
    squatter_client_id_base: int = 900   # IDs the suite's own probes use
    ib_library: str = "ib_insync"        # the IB client of the suite's driver and the embedded backend: or ib_async
    reports_dir: Path = field(default_factory=lambda: Path.cwd() / "reports")  # the runner always says where
    allure_results: str = ""             # where the Allure results go ('': reports_dir/allure-results)
    symbols: tuple[str, ...] = ("AAPL", "MSFT", "IBM", "SPY", "GOOGL", "AMZN", "NVDA", "TSLA",
                                "META", "JPM", "XOM", "KO", "INTC", "QQQ")  # real symbols, rotated
    thresholds: Thresholds = field(default_factory=Thresholds)
    profile: TargetProfile = field(default_factory=TargetProfile)
    tuning: EmbeddedTuning = field(default_factory=EmbeddedTuning)

    @property
    def allure_dir(self) -> Path:
        """Where this run's Allure results go (a worker's go to the run's shared folder)."""
        return Path(self.allure_results) if self.allure_results else self.reports_dir / "allure-results"

    @property
    def strict_pacing_rules(self) -> dict[str, object]:
        """Simulator rules for the pacing scenario: a third request per contract within 5 s is refused."""
        return {"pacing_enabled": True, "same_contract_max": 3, "same_contract_window_s": 5.0}

    @property
    def embedded(self) -> bool:
        """True when the suite starts its targets itself (the reference backend, or yours when managed)."""
        return self.target in (EMBEDDED, MANAGED)

    @property
    def managed(self) -> bool:
        """True when the suite starts and stops the user's own backend by command."""
        return self.target == MANAGED

    @property
    def cli_api_fixed_port(self) -> int:
        """The port of the one URL a CLI that cannot be pointed always calls (0 when it can be pointed)."""
        from urllib.parse import urlsplit

        kind, _, value = self.cli_api.partition(":")
        if kind != "fixed":
            return 0
        parsed = urlsplit(value)
        return parsed.port or (443 if parsed.scheme == "https" else 80)

    def bound(self, name: str, extra_s: float = 0.0) -> Bound:
        """The bound a scenario names (a key of :data:`BOUNDS`: ``bound("recovery")``), after the multiplier.

        Args:
            extra_s: seconds the Gherkin adds ("the validation bound plus 2 seconds"), scaled with it.

        Raises:
            KeyError: no bound of that name (the message lists them).
        """
        if name not in BOUNDS:
            raise KeyError(f"no bound named {name!r}; known: {', '.join(BOUNDS)}")
        seconds = getattr(self.thresholds, BOUNDS[name]) + extra_s
        meaning = f"the {name} bound" + (f" plus {extra_s:g} s" if extra_s else "")
        return Bound(seconds * self.timeout_multiplier, meaning)

    def bound_of(self, seconds: float, meaning: str) -> Bound:
        """A bound the Gherkin states as a number, or a wait of the suite's own, after the multiplier."""
        return Bound(seconds * self.timeout_multiplier, meaning)

    @classmethod
    def from_userdata(cls, userdata: Mapping[str, Any]) -> Settings:
        """Build settings from behave's userdata (strings); unknown keys are ignored.

        Threshold and tuning fields are addressed by their own names (``recovery_s``,
        ``max_idle_s`` …).

        Raises:
            SettingsError: a value cannot be converted or is out of range.
        """
        data = {str(k): v for k, v in userdata.items()}
        reject_unknown(data, "setting")
        if str(data.get("profile", "")).strip():
            profile = load_profile(str(data["profile"]))
            reject_unknown(profile, f"profile {data['profile']!r}: setting")
            data = {**profile, **data}
        top = _convert_fields(cls, data, skip={"thresholds", "profile", "tuning", "cli", "backend_command", "symbols",
                                               "backend_env", "backend_tuning_env", "restart_after_failure", "backend_restore",
                                               "backend_remove"})
        if "restart_after_failure" in data:
            top["restart_after_failure"] = str(data["restart_after_failure"]).strip().lower() in ("1", "true", "yes", "on")
        for name in ("backend_env", "backend_tuning_env"):
            if str(data.get(name, "")).strip():
                pairs = [kv.split("=", 1) for kv in str(data[name]).split(",") if kv.strip()]
                if any(len(kv) != 2 for kv in pairs):
                    raise SettingsError(f"{name} must be K=V,K=V: {data[name]!r}")
                top[name] = tuple((k.strip(), v) for k, v in pairs)
        for name in ("cli", "backend_command"):
            if name in data and str(data[name]).strip():
                top[name] = tuple(shlex.split(str(data[name])))
        for name in ("backend_restore", "backend_remove"):
            if str(data.get(name, "")).strip():
                top[name] = tuple(part.strip() for part in str(data[name]).split(",") if part.strip())
        if str(data.get("symbols", "")).strip():
            top["symbols"] = tuple(s.strip().upper() for s in str(data["symbols"]).split(",") if s.strip())
        settings = cls(thresholds=Thresholds(**_convert_fields(Thresholds, data)),
                       profile=TargetProfile(**_convert_fields(TargetProfile, data)),
                       tuning=EmbeddedTuning(**_convert_fields(EmbeddedTuning, data)), **top)
        settings = settings.with_paths_filled()
        settings.check()
        return settings

    def with_paths_filled(self) -> Settings:
        """The ``{backend_cwd}`` and ``{backend_venv}`` placeholders replaced in commands and environment
        (the addresses ``{ib_host}`` ``{ib_port}`` ``{api_port}`` are filled when the backend starts)."""
        cwd = self.backend_cwd
        venv = fill_placeholders(self.backend_venv, {"backend_cwd": cwd})
        values = {"backend_cwd": cwd, "backend_venv": venv}
        return dataclasses.replace(
            self, backend_venv=venv,
            backend_command=tuple(fill_placeholders(w, values) for w in self.backend_command),
            cli=tuple(fill_placeholders(w, values) for w in self.cli),
            backend_env=tuple((k, fill_placeholders(v, values)) for k, v in self.backend_env),
            backend_reset=fill_placeholders(self.backend_reset, values))

    def check(self) -> None:
        """Reject inconsistent settings with a message naming the setting."""
        if self.target not in (EMBEDDED, MANAGED, EXTERNAL):
            raise SettingsError(f"target must be {EMBEDDED!r}, {MANAGED!r} or {EXTERNAL!r}, not {self.target!r}")
        if self.target == MANAGED and not (self.backend_command and self.cli):
            missing = [f"{name} (--{name.replace('_', '-')} or -D {name}=…: {what})" for name, what in
                       (("backend_command", "how to start your backend"), ("cli", "your backend's CLI command"))
                       if not getattr(self, name)]
            raise SettingsError(f"a managed target needs {' and '.join(missing)}")
        if self.timeout_multiplier <= 0:
            raise SettingsError("timeout_multiplier must be > 0")
        from ibtargets.common.ibclient import LibraryError, check_library
        try:
            check_library(self.ib_library, "ib_library")
        except LibraryError as exc:
            raise SettingsError(str(exc)) from None
        if self.profile.pool_limit < 1 or self.profile.max_wait_s <= 0:
            raise SettingsError("pool_limit must be ≥ 1 and max_wait_s > 0")
        self._check_ranges()
        if len(self.symbols) < 4:
            raise SettingsError("symbols needs at least 4 comma-separated symbols the gateway knows")
        kind, _, value = self.cli_api.partition(":")
        if kind not in ("env", "option", "fixed") or not value:
            raise SettingsError(f"cli_api must be env:NAME, option:--flag or fixed:URL, not {self.cli_api!r}")
        if self.managed and kind == "fixed" and self.api_port and self.api_port != self.cli_api_fixed_port:
            raise SettingsError(f"the CLI always calls {value} (cli_api), so the backend's API must listen on port "
                                f"{self.cli_api_fixed_port}, not api_port={self.api_port}")
        if self.target == EXTERNAL:
            missing = [name for name in ("api_base_url", "ib_port") if not getattr(self, name)]
            if missing:
                raise SettingsError(f"external target needs {', '.join(missing)} (-D name=value)")
            if not self.cli:
                raise SettingsError("external target needs cli (-D cli='ktrdr') for the CLI scenarios")


    def _check_ranges(self) -> None:
        """Ports within 0..65535, client IDs within IB's 0..2147483647, durations and thresholds positive."""
        ports = {"ib_port": self.ib_port, "api_port": self.api_port, "backend_ib_port": self.profile.backend_ib_port}
        for name, port in ports.items():
            if not 0 <= port <= 65535:
                raise SettingsError(f"{name}={port} is not a TCP port (0..65535)")
        ids = {"preferred_client_id": self.preferred_client_id, "client_id_min": self.profile.client_id_min,
               "client_id_max": self.profile.client_id_max, "squatter_client_id_base": self.squatter_client_id_base}
        for name, value in ids.items():
            if not 0 <= value <= CLIENT_ID_MAX:
                raise SettingsError(f"{name}={value} is not an IB client ID (0..{CLIENT_ID_MAX})")
        if self.profile.client_id_max and self.profile.client_id_min > self.profile.client_id_max:
            raise SettingsError(f"client_id_min={self.profile.client_id_min} > client_id_max={self.profile.client_id_max}")
        positive = {**dataclasses.asdict(self.thresholds), "backend_start_timeout_s": self.backend_start_timeout_s,
                    "backend_stop_timeout_s": self.backend_stop_timeout_s, "connect_timeout_s":
                    self.profile.connect_timeout_s, **dataclasses.asdict(self.tuning)}
        for name, value in positive.items():
            if not value > 0:
                raise SettingsError(f"{name}={value} must be > 0")
        for name in ("idle_timeout_s", "health_check_interval_s"):
            if getattr(self.profile, name) < 0:
                raise SettingsError(f"{name} must be ≥ 0 (0: what the backend reports)")


#: The largest client ID IB accepts (a signed 32-bit integer).
CLIENT_ID_MAX = 2**31 - 1


def known_settings() -> list[str]:
    """Every setting name ``-D`` (or a profile) may use."""
    names = {f.name for cls in (Settings, Thresholds, TargetProfile, EmbeddedTuning) for f in dataclasses.fields(cls)}
    return sorted(names - {"thresholds", "tuning"})   # ``profile`` names a profile file


def reject_unknown(data: Mapping[str, Any], what: str) -> None:
    """Raise :class:`SettingsError` for a name that is no setting (formatter options, ``Name.option``, pass)."""
    import difflib

    known = known_settings()
    for name in data:
        if "." in name or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"valid settings: {', '.join(known)}"
        raise SettingsError(f"unknown {what} {name!r}: {hint}")


def fill_placeholders(text: str, values: Mapping[str, object]) -> str:
    """``text`` with ``{name}`` placeholders replaced (unknown braces are left alone)."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text


#: Where named profiles live (``--profile ktrdr`` reads ``profiles/ktrdr.toml``).
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


def load_profile(name_or_path: str) -> dict[str, str]:
    """The settings of a named profile (``ktrdr``) or of a TOML file, as userdata strings.

    A profile is a flat TOML table of setting names; ``-D`` settings and runner options override it.

    Raises:
        SettingsError: no such profile, or it is not a flat table of settings.
    """
    import tomllib

    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.toml"
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise SettingsError(f"no profile {name_or_path!r} (known: {known}; or a path to a .toml file)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"profile {path}: {exc}") from None
    nested = [key for key, value in table.items() if isinstance(value, dict)]
    if nested:
        raise SettingsError(f"profile {path}: settings must be flat, not tables ({', '.join(nested)})")
    return {key: ",".join(map(str, value)) if isinstance(value, list) else str(value) for key, value in table.items()}


def _convert_fields(cls: type, data: Mapping[str, Any], skip: set[str] = frozenset()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name not in data:
            continue
        raw = data[f.name]
        kind = f.type if isinstance(f.type, type) else {"float": float, "int": int, "str": str,
                                                         "Path": Path}.get(str(f.type), str)
        try:
            out[f.name] = kind(raw) if not isinstance(raw, kind) else raw
        except (TypeError, ValueError):
            raise SettingsError(f"setting {f.name}={raw!r} is not a valid {kind.__name__}") from None
    return out
