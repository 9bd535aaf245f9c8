"""One frozen settings object for the suite, read once from behave userdata (pyproject + ``-D``)."""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
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
    """Facts about the system under test that its API does not report (the target profile of docs/backend-authors.md).

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


#: A service's readiness check: an open port, an HTTP answer below 500, or a command that exits 0.
READY_KINDS = ("port", "http", "command")
#: How long a service lives: the whole run, or one life of the backend (started before it, stopped after it).
LIFETIMES = ("run", "backend")


@dataclass(frozen=True)
class Service:
    """A process the backend needs (a database, a data store), started before it and stopped after it.

    Placeholders as in ``backend_command``; ``{port:NAME}`` is a free loopback port allotted once per run.
    """

    name: str
    command: tuple[str, ...]
    cwd: str = ""
    env: tuple[tuple[str, str], ...] = ()
    ready_kind: str = "port"           # one of READY_KINDS
    ready: str = ""                    # the port, URL or shell command
    lifetime: str = "run"              # one of LIFETIMES
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0


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
    fixed_ports: tuple[int, ...] = ()      # managed: ports the backend takes by itself (not from a placeholder); each
                                           # must be free before every start, and is checked free after every stop
    backend_remove: tuple[str, ...] = ()   # managed: files and directories removed before every start
    backend_log: str = ""                # external: a file the backend writes its output to (the suite reads it)
    services: tuple[Service, ...] = ()   # managed: processes started before the backend (a profile's [[services]])
    cli_env: tuple[tuple[str, str], ...] = ()  # extra environment of every CLI command (placeholders too)
    lacks: tuple[str, ...] = ()          # capabilities the backend does not provide (support/capabilities.py)
    profile_dir: str = ""                # the folder of the profile file (the {profile_dir} placeholder)
    cli_api: str = "env:KTRDR_API_URL"   # how the CLI is pointed at the API: env:NAME, option:--flag or fixed:URL
    restart_after_failure: str = "always"  # managed/embedded, after a failed scenario: "always" restart the backend
                                           # (a failed scenario's damage is not the next one's), "when-unhealthy"
                                           # (only if it is not healthy again within the recovery bound), "never"
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
        """Build settings from behave's userdata (strings) over a profile's values (TOML: strings, numbers, lists,
        tables); formatter options (``Name.option``) are ignored.

        Threshold and tuning fields are addressed by their own names (``recovery_s``, ``max_idle_s`` …).

        Raises:
            SettingsError: a value cannot be converted, is out of range, or does nothing for the chosen target.
        """
        data = {str(k): v for k, v in userdata.items()}
        reject_unknown(data, "setting")
        profile_dir = ""
        if str(data.get("profile", "")).strip():
            path = profile_path(str(data["profile"]))
            profile = load_profile(str(data["profile"]))
            reject_unknown(profile, f"profile {data['profile']!r}: setting")
            data = {**profile, **data}
            profile_dir = str(path.resolve().parent)
        data = {k: _fill_deep(v, {"profile_dir": profile_dir}) for k, v in data.items()} if profile_dir else data
        absent = _declared_absent(data)   # health_check_interval_s = "none": 0, and the loop lacked
        top = _convert_fields(cls, data, skip={"thresholds", "profile", "tuning", "cli", "backend_command", "symbols",
                                               "backend_env", "backend_tuning_env", "restart_after_failure",
                                               "backend_restore", "backend_remove", "services", "cli_env", "lacks",
                                               "profile_dir", "fixed_ports"})
        if "restart_after_failure" in data:
            top["restart_after_failure"] = restart_policy(data["restart_after_failure"])
        for name in ("backend_env", "backend_tuning_env", "cli_env"):
            if name in data:
                top[name] = env_pairs(name, data[name])
        for name in ("cli", "backend_command"):
            if name in data and _words(data[name]):
                top[name] = _words(data[name])
        for name in ("backend_restore", "backend_remove"):
            if name in data:
                top[name] = _names(data[name])
        if "fixed_ports" in data:
            try:
                top["fixed_ports"] = tuple(int(port) for port in _names(data["fixed_ports"]))
            except ValueError:
                raise SettingsError(f"fixed_ports must be port numbers: {data['fixed_ports']!r}") from None
        if _names(data.get("symbols", "")):
            top["symbols"] = tuple(name.upper() for name in _names(data["symbols"]))
        top["lacks"] = check_lacks(_names(data.get("lacks", "")) + absent)
        if "services" in data:
            top["services"] = parse_services(data["services"])
        settings = cls(thresholds=Thresholds(**_convert_fields(Thresholds, data)),
                       profile=TargetProfile(**_convert_fields(TargetProfile, data)),
                       tuning=EmbeddedTuning(**_convert_fields(EmbeddedTuning, data)), profile_dir=profile_dir, **top)
        uses = settings.placeholders_used()
        settings = settings.with_paths_filled()
        settings.check()
        settings.check_relevant(set(data), uses)
        return settings

    def facts(self) -> dict[str, str]:
        """The suite's facts by name, as a backend's environment or command may use them (``{pool_limit}``): every
        threshold and target-profile field and the preferred client ID; a timing left 0 ("ask the backend") is no fact and is left out."""
        values = {**dataclasses.asdict(self.thresholds), **dataclasses.asdict(self.profile),
                  "preferred_client_id": self.preferred_client_id}
        unstated = {name for name in ("idle_timeout_s", "health_check_interval_s", "client_id_min", "client_id_max",
                                      "backend_ib_port") if not values[name]}
        return {name: _fact_text(value) for name, value in values.items() if name not in unstated}

    def launch_texts(self) -> dict[str, list[str]]:
        """Every text a start fills placeholders in, by the setting it comes from."""
        texts: dict[str, list[str]] = {
            "backend_command": list(self.backend_command), "cli": list(self.cli),
            "backend_cwd": [self.backend_cwd], "backend_venv": [self.backend_venv], "backend_reset": [self.backend_reset],
            "backend_env": [v for _, v in self.backend_env], "backend_tuning_env": [v for _, v in self.backend_tuning_env],
            "cli_env": [v for _, v in self.cli_env]}
        for service in self.services:
            texts[f"services.{service.name}"] = [*service.command, service.cwd, service.ready,
                                                 *(v for _, v in service.env)]
        return texts

    def placeholders_used(self) -> set[str]:
        """The placeholder names the launch texts use (``pool_limit``, ``port:store`` …)."""
        return {name for texts in self.launch_texts().values() for text in texts for name in PLACEHOLDER.findall(text)}

    @property
    def port_names(self) -> tuple[str, ...]:
        """The ``{port:NAME}`` names, in the order first used (each gets a free port once per run)."""
        names = [name.split(":", 1)[1] for texts in self.launch_texts().values() for text in texts
                 for name in PLACEHOLDER.findall(text) if name.startswith("port:")]
        return tuple(dict.fromkeys(names))

    def with_paths_filled(self) -> Settings:
        """The ``{profile_dir}``, ``{backend_cwd}``, ``{backend_venv}`` placeholders and the facts (``{pool_limit}``
        …) replaced in commands and environments (``{ib_host}`` ``{ib_port}`` ``{api_port}`` ``{port:NAME}`` and
        ``{run_dir}`` are filled when the targets start).

        Raises:
            SettingsError: a placeholder names nothing the suite knows, or a fact left unstated.
        """
        fixed = {"python": sys.executable, **({"profile_dir": self.profile_dir} if self.profile_dir else {})}
        cwd = fill_placeholders(self.backend_cwd, fixed)
        venv = fill_placeholders(self.backend_venv, {**fixed, "backend_cwd": cwd})
        values = {**fixed, "backend_cwd": cwd, "backend_venv": venv, **self.facts()}
        fill = lambda text: fill_placeholders(text, values)  # noqa: E731
        pairs = lambda env: tuple((k, fill(v)) for k, v in env)  # noqa: E731
        services = tuple(dataclasses.replace(s, command=tuple(fill(w) for w in s.command), cwd=fill(s.cwd),
                                             env=pairs(s.env), ready=fill(s.ready)) for s in self.services)
        filled = dataclasses.replace(
            self, backend_venv=venv, backend_cwd=cwd,
            backend_command=tuple(fill(w) for w in self.backend_command), cli=tuple(fill(w) for w in self.cli),
            backend_env=pairs(self.backend_env), backend_tuning_env=pairs(self.backend_tuning_env),
            cli_env=pairs(self.cli_env), backend_reset=fill(self.backend_reset), services=services)
        filled._check_placeholders()
        return filled

    def _check_placeholders(self) -> None:
        """Only the placeholders a start fills are left; a name close to a known one is a misspelling, a fact left 0
        is unstated (other braces, ``awk '{print}'``, are the command's own and left alone)."""
        import difflib

        known = sorted({*LAUNCH_PLACEHOLDERS, "python", "profile_dir", "backend_cwd", "backend_venv", *self.facts()})
        for setting, texts in self.launch_texts().items():
            for text in texts:
                for name in PLACEHOLDER.findall(text):
                    if name in LAUNCH_PLACEHOLDERS or name.startswith("port:"):
                        continue
                    if name == "profile_dir":
                        raise SettingsError(f"{setting} uses {{profile_dir}}, but no profile file was given (--profile)")
                    if name in UNSTATED_HINTS:
                        raise SettingsError(f"{setting} uses {{{name}}}, but {name} is not stated "
                                            f"(0: {UNSTATED_HINTS[name]}); set it in the profile or with -D {name}=…")
                    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
                    if close:
                        raise SettingsError(f"{setting} uses an unknown placeholder {{{name}}}: did you mean "
                                            f"{{{close[0]}}}? known: " + ", ".join(f"{{{k}}}" for k in known)
                                            + ", {port:NAME}")

    def check_relevant(self, given: set[str], uses: set[str]) -> None:
        """Refuse a setting given for a target it does nothing for (one line naming it and why).

        Args:
            given: the names the profile and ``-D`` set.
            uses: the placeholders the launch texts use (a fact used there acts on any target).
        """
        for name in sorted(given):
            rule = ONLY_FOR.get(name)
            if rule is None or self.target in rule[0] or name in uses:
                continue
            if name == "services" and not self.services:
                continue
            raise SettingsError(f"{name} does nothing for the {self.target} target: {rule[1]}")

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
        ports = {"ib_port": self.ib_port, "api_port": self.api_port, "backend_ib_port": self.profile.backend_ib_port,
                 **{f"fixed_ports[{i}]": port for i, port in enumerate(self.fixed_ports)}}
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


#: After a failed scenario: restart the backend always, only when it is not healthy again, or never.
RESTART_POLICIES = ("always", "when-unhealthy", "never")


def restart_policy(value: object) -> str:
    """``restart_after_failure`` from a setting (``true``/``false`` are ``always``/``never``).

    Raises:
        SettingsError: not a policy.
    """
    text = str(value).strip().lower()
    text = {"1": "always", "true": "always", "yes": "always", "on": "always",
            "0": "never", "false": "never", "no": "never", "off": "never"}.get(text, text)
    if text not in RESTART_POLICIES:
        raise SettingsError(f"restart_after_failure must be one of {', '.join(RESTART_POLICIES)} (or true/false), "
                            f"not {value!r}")
    return text


#: The largest client ID IB accepts (a signed 32-bit integer).
CLIENT_ID_MAX = 2**31 - 1


def known_settings() -> list[str]:
    """Every setting name ``-D`` (or a profile) may use."""
    names = {f.name for cls in (Settings, Thresholds, TargetProfile, EmbeddedTuning) for f in dataclasses.fields(cls)}
    return sorted(names - {"thresholds", "tuning", "profile_dir"})   # ``profile`` names a profile file


#: A placeholder in a command or an environment value: ``{name}`` or ``{port:NAME}`` (``${HOME}`` is the shell's).
PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z_][a-z0-9_]*(?::[A-Za-z0-9_-]+)?)\}")
#: The placeholders a start fills: the proxy's address, the API's port, the run's log folder (``{port:NAME}`` too).
LAUNCH_PLACEHOLDERS = frozenset({"ib_host", "ib_port", "api_port", "run_dir"})
#: A fact whose 0 means "not stated" → where the suite reads it instead.
UNSTATED_HINTS = {"idle_timeout_s": "the idle timeout the backend reports",
                  "health_check_interval_s": "the health interval the backend reports",
                  "client_id_min": "the range the backend reports", "client_id_max": "the range the backend reports",
                  "backend_ib_port": "the fault proxy's listener"}

_STARTED = ("embedded", "managed")
_MANAGED_ONLY = "the suite starts no backend of yours (--target managed does)"
#: A setting that acts only on some targets → (those targets, why it does nothing on the others).
ONLY_FOR: dict[str, tuple[tuple[str, ...], str]] = {
    **{name: (("managed",), _MANAGED_ONLY) for name in (
        "backend_cwd", "backend_env", "backend_tuning_env", "backend_reset", "api_port", "backend_start_timeout_s",
        "backend_ready_path", "backend_venv", "backend_restore", "backend_remove", "services", "fixed_ports")},
    **{name: (_STARTED, "the suite starts no backend (an external one is yours)") for name in (
        "backend_command", "backend_stop_timeout_s", "restart_after_failure", "gateway_account")},
    **{name: (("embedded",), "it tunes the reference backend only; a managed backend's timings are its own "
              "(state them as facts: idle_timeout_s, health_check_interval_s, pool_limit, client_id_min/max)")
       for name in ("max_idle_s", "health_interval_s", "client_id_span")},
    "connect_timeout_s": (("embedded",), "it configures the reference backend only (a managed backend may use it as "
                          "{connect_timeout_s} in its backend_env)"),
    **{name: (("external",), "the suite starts its own gateway, proxy and backend and knows where they are") for name in (
        "api_base_url", "ib_port", "gateway_control", "proxy_control", "backend_pid", "backend_ib_host",
        "backend_ib_port")},
    "backend_log": (("external",), "the suite captures the output of the backend it starts itself"),
}


def check_lacks(names: tuple[str, ...]) -> tuple[str, ...]:
    """``lacks`` checked against the capability names (support/capabilities.py).

    Raises:
        SettingsError: an unknown name (the message lists the valid ones).
    """
    from support.capabilities import CAPABILITIES

    for name in names:
        if name not in CAPABILITIES:
            raise SettingsError(f"lacks: unknown capability {name!r}; valid: {', '.join(CAPABILITIES)}")
    return tuple(dict.fromkeys(names))


def absent_facts(data: Mapping[str, Any]) -> list[str]:
    """The facts declared absent (``health_check_interval_s = "none"``)."""
    from support.capabilities import ABSENT, ABSENT_FACTS

    return [name for name in ABSENT_FACTS if str(data.get(name, "")).strip().lower() in ABSENT]


def _declared_absent(data: dict[str, Any]) -> tuple[str, ...]:
    """Turn facts declared absent into 0 (the suite then asks nothing of them); return the capabilities lacked."""
    from support.capabilities import ABSENT_FACTS

    names = absent_facts(data)
    for name in names:
        data[name] = 0
    return tuple(ABSENT_FACTS[name] for name in names)


def _fact_text(value: object) -> str:
    """A fact as a command or an environment takes it (300.0 → ``300``, 0.5 → ``0.5``)."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value)


def _fill_deep(value: Any, values: Mapping[str, object]) -> Any:
    """``value`` with placeholders filled in every string it holds (lists and tables too)."""
    if isinstance(value, str):
        return fill_placeholders(value, values)
    if isinstance(value, list):
        return [_fill_deep(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill_deep(v, values) for k, v in value.items()}
    return value


def _scalar_text(value: Any) -> str:
    """A TOML scalar as an environment takes it (true → ``true``, [2, 5, 15] → ``2,5,15``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _fact_text(value)
    if isinstance(value, list):
        return ",".join(_scalar_text(v) for v in value)
    return str(value)


#: Where a ``K=V,K=V`` string splits: at a comma followed by the next ``NAME=`` (a value may hold commas).
_NEXT_PAIR = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*=)")


def env_pairs(name: str, raw: Any) -> tuple[tuple[str, str], ...]:
    """An environment from a TOML table (any value) or a ``K=V,K=V`` string (``-D``; a value may hold commas:
    ``IB_PACING_WAITS_S=2,5,15,LOG=info``).

    Raises:
        SettingsError: neither.
    """
    if isinstance(raw, dict):
        bad = [k for k, v in raw.items() if isinstance(v, dict)]
        if bad:
            raise SettingsError(f"{name}: {bad[0]} must be a value, not a table")
        return tuple((str(k), _scalar_text(v)) for k, v in raw.items())
    text = str(raw).strip()
    if not text:
        return ()
    pairs = [part.split("=", 1) for part in _NEXT_PAIR.split(text)]
    if any(len(kv) != 2 or not kv[0].strip() for kv in pairs):
        raise SettingsError(f"{name} must be a table or K=V,K=V: {raw!r}")
    return tuple((k.strip(), v) for k, v in pairs)


def _words(raw: Any) -> tuple[str, ...]:
    """A command: a TOML list of words, or a string split as a shell would."""
    if isinstance(raw, list):
        return tuple(str(word) for word in raw)
    return tuple(shlex.split(str(raw)))


def _names(raw: Any) -> tuple[str, ...]:
    """A list of names: a TOML list, or a comma-separated string."""
    parts = raw if isinstance(raw, list) else str(raw).split(",")
    return tuple(str(part).strip() for part in parts if str(part).strip())


_SERVICE_KEYS = ("name", "command", "cwd", "env", "ready", "lifetime", "ready_timeout_s", "stop_timeout_s")
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_services(raw: Any) -> tuple[Service, ...]:
    """A profile's ``[[services]]`` (see :class:`Service`).

    Raises:
        SettingsError: not an array of tables, or a service without a name, command or one readiness check.
    """
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise SettingsError("services must be declared in a profile, as [[services]] tables")
    out: list[Service] = []
    for index, table in enumerate(raw, 1):
        name = str(table.get("name", "")).strip()
        where = f"services: {name!r}" if name else f"services #{index}"
        unknown = sorted(set(table) - set(_SERVICE_KEYS))
        if unknown:
            raise SettingsError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(_SERVICE_KEYS)}")
        if not _SERVICE_NAME.match(name):
            raise SettingsError(f"{where}: needs a name of letters, digits, '-' or '_'")
        if any(s.name == name for s in out):
            raise SettingsError(f"{where}: declared twice")
        command = _words(table.get("command", ""))
        if not command:
            raise SettingsError(f"{where}: needs a command")
        ready = table.get("ready")
        if not isinstance(ready, dict) or len(ready) != 1 or next(iter(ready)) not in READY_KINDS:
            raise SettingsError(f"{where}: ready must be one of {{ port = … }}, {{ http = … }}, {{ command = … }}")
        lifetime = str(table.get("lifetime", "run"))
        if lifetime not in LIFETIMES:
            raise SettingsError(f"{where}: lifetime must be 'run' or 'backend', not {lifetime!r}")
        bounds = {}
        for key in ("ready_timeout_s", "stop_timeout_s"):
            if key in table:
                try:
                    bounds[key] = float(table[key])
                except (TypeError, ValueError):
                    raise SettingsError(f"{where}: {key}={table[key]!r} is not a number") from None
                if not bounds[key] > 0:
                    raise SettingsError(f"{where}: {key} must be > 0")
        (kind, value), = ready.items()
        out.append(Service(name, command, str(table.get("cwd", "")), env_pairs(f"{where}: env", table.get("env", {})),
                           kind, _scalar_text(value), lifetime, **bounds))
    return tuple(out)


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
#: The settings a profile may give as a table (environments) or as an array of tables (services).
TABLES = ("backend_env", "backend_tuning_env", "cli_env")


def profile_path(name_or_path: str) -> Path:
    """The file of a named profile (``ktrdr``) or the path given."""
    path = Path(name_or_path)
    return PROFILES_DIR / f"{name_or_path}.toml" if not path.suffix else path


def load_profile(name_or_path: str) -> dict[str, Any]:
    """The settings of a named profile (``ktrdr``) or of a TOML file.

    A profile is a TOML table of setting names: scalars as strings (as ``-D`` gives them), lists as lists,
    environments (``backend_env``, ``backend_tuning_env``, ``cli_env``) as tables and ``[[services]]`` as an array of
    tables; ``{profile_dir}`` is its own folder. ``-D`` settings and runner options override it.

    Raises:
        SettingsError: no such profile, or a table where a value belongs.
    """
    import tomllib

    path = profile_path(name_or_path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise SettingsError(f"no profile {name_or_path!r} (known: {known}; or a path to a .toml file)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"profile {path}: {exc}") from None
    nested = [key for key, value in table.items() if isinstance(value, dict) and key not in TABLES]
    if nested:
        raise SettingsError(f"profile {path}: only {', '.join(TABLES)} may be tables ([[services]] an array of "
                            f"them), not {', '.join(nested)}")
    return {key: value if isinstance(value, list | dict) else _scalar_text(value) for key, value in table.items()}


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
