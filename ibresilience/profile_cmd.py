"""``ib-resilience profile check PROFILE``: start a target once and say what the suite finds there, before a long run.

The backend is started as a run would start it (the gateway simulator, the fault proxy, the backend and the
services its profile declares); then every contract endpoint is called once, the answers are compared with the
contract's shapes, the gateway says which client IDs the backend used and through which address, the profile's
facts are compared with what the backend reports, the CLI is run once, and after the stop every process and port
is checked. Nothing here judges resilience: it tells a profile's author what to fix or declare (``lacks``) first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Exit codes: everything found as the contract wants; something to fix or declare; the profile cannot be used.
OK, FINDINGS, UNUSABLE = 0, 1, 2


@dataclass
class Findings:
    """What a check found: lines to print, and the problems among them."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def note(self, topic: str, text: str) -> None:
        """A finding that needs nothing from the author."""
        self.lines.append((topic, text))

    def problem(self, topic: str, text: str) -> None:
        """A finding the author must fix or declare."""
        self.lines.append((topic, "✗ " + text))
        self.problems.append(text)

    def render(self) -> str:
        """The findings as aligned lines."""
        width = max((len(topic) for topic, _ in self.lines), default=0)
        return "\n".join(f"  {topic:<{width}}  {text}" for topic, text in self.lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(prog="ib-resilience profile",
                                     description="Check a target profile: start the target once and report what "
                                                 "the suite finds (endpoints, contract fields, IB address, client "
                                                 "IDs, facts, the CLI, ports and processes after the stop).")
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="start the target once and report what the suite finds")
    check.add_argument("profile", help="a named profile (ktrdr) or a .toml file")
    check.add_argument("--backend-cwd", help="the directory the backend starts in ({backend_cwd})")
    check.add_argument("--backend-venv", help="its virtual environment ({backend_venv})")
    check.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                       help="a setting, as for `ib-resilience run`")
    check.add_argument("--logs", type=Path, help="keep the processes' output here (default: a temporary folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Check the profile; print the findings; exit 0 (nothing to fix), 1 (findings) or 2 (unusable)."""
    from support.settings import Settings, SettingsError

    args = build_parser().parse_args(argv)
    userdata: dict[str, str] = {"profile": args.profile}
    for name in ("backend_cwd", "backend_venv"):
        if getattr(args, name):
            userdata[name] = getattr(args, name)
    for definition in args.define:
        name, sep, value = definition.partition("=")
        if not sep or not name.strip():
            print(f"ib-resilience profile: -D {definition!r} is not NAME=VALUE", file=sys.stderr)
            return UNUSABLE
        userdata[name.strip()] = value
    try:
        settings = Settings.from_userdata(userdata)
    except SettingsError as exc:
        print(f"ib-resilience profile: {exc}", file=sys.stderr)
        return UNUSABLE
    if not settings.managed:
        print(f"ib-resilience profile: check starts a managed target; {args.profile!r} is {settings.target!r} "
              "(an external target is checked by `ib-resilience run --level basic` against it)", file=sys.stderr)
        return UNUSABLE
    with tempfile.TemporaryDirectory(prefix="ib-resilience-profile-") as scratch:
        logs = args.logs or Path(scratch)
        findings, started = check(settings, logs)
    print(f"ib-resilience profile check: {args.profile} ({settings.target})")
    print(findings.render())
    if not started:
        return UNUSABLE
    if findings.problems:
        print(f"{len(findings.problems)} finding(s) to fix or declare before a run")
        return FINDINGS
    print("nothing to fix: the suite can run against this target")
    return OK


def check(settings, log_dir: Path) -> tuple[Findings, bool]:  # noqa: ANN001 (Settings, imported late)
    """Start the target, probe it, stop it; return the findings and whether it started."""
    from ibtargets.common.launch import ProcessStartError, wait_ports_free
    from support.targets import EmbeddedTargets

    findings = Findings()
    embedded = EmbeddedTargets(settings, log_dir)
    began = time.monotonic()
    try:
        targets = embedded.start()
    except (ProcessStartError, OSError, ValueError) as exc:
        findings.problem("start", f"the backend did not start: {str(exc).splitlines()[0]}")
        findings.note("log", str(embedded.backend_log_path))
        embedded.stop()
        return findings, False
    try:
        members = embedded.backend.members() if embedded.backend is not None else set()
        findings.note("start", f"ready in {time.monotonic() - began:.1f} s at {targets.api_base_url} "
                               f"(pid {targets.backend_pid}, {len(members)} process(es))")
        _probe(settings, targets, findings)
    finally:
        ports = embedded.backend_ports
        stopping = time.monotonic()
        leader = embedded.backend
        embedded.stop_backend()
        left = leader.leftovers if leader is not None else ()
        held = wait_ports_free(ports, settings.backend_stop_timeout_s)
        embedded.stop()
    took = time.monotonic() - stopping
    if left:
        findings.problem("stop", f"processes {list(left)} outlived SIGKILL")
    elif held:
        findings.problem("stop", "ports still held after the stop: "
                                 + "; ".join(f"{port} by {who}" for port, who in held.items()))
    else:
        findings.note("stop", f"stopped in {took:.1f} s; nothing left running, ports {list(ports)} free")
    return findings, True


@dataclass(frozen=True)
class Probe:
    """One contract call: what it is, how to make it, and the shape its answer must have (if the contract
    gives one)."""

    label: str
    call: Callable  # (ApiDriver) -> ApiResponse
    shape: str = ""
    capability: str = ""   # the name a profile's ``lacks`` gives it (support/capabilities.py)


def _probe(settings, targets, findings: Findings) -> None:  # noqa: ANN001
    from ibtargets.common.control_client import ControlClient
    from support import contract
    from support.drivers.api import ApiDriver

    api = ApiDriver(targets.api_base_url, timeout_s=settings.thresholds.api_response_s * 2)
    symbol = settings.symbols[0]
    probes = [Probe("GET /health", lambda a: a.health(), "the service health"),
              Probe("GET /ib/status", lambda a: a.ib_status(), "the IB status"),
              Probe("GET /ib/health", lambda a: a.ib_health(), "the IB health"),
              Probe("GET /ib/config", lambda a: a.ib_config(), "the IB configuration"),
              Probe("POST /ib/symbols/discover", lambda a: a.discover(symbol)),
              Probe("GET /ib/symbols/discovered", lambda a: a.discovered(), "the discovered symbols"),
              Probe("GET /ib/resilience", lambda a: a.resilience(), "the resilience report", "resilience_report"),
              Probe("POST /data/load (synchronous)", lambda a: a.load_data(symbol, "1d", "tail"),
                    capability="sync_data_load")]
    answers = {}
    for probe in probes:
        response = probe.call(api)
        answers[probe.label] = response
        _judge_answer(probe, response, findings, contract, settings.lacks)
    started = api.load_data(settings.symbols[1], "1h", "tail", async_mode=True)
    if started.route_missing:
        _missing(Probe("POST /data/load (asynchronous)", lambda a: None, capability="async_data_load"), started,
                 findings, settings.lacks)
    else:
        operation_id = contract.DataLoad.of(started).operation_id if started.status == 200 else None
        if operation_id:
            cancel = api.cancel_operation(operation_id)
            status = api.operation(operation_id)
            findings.note("endpoint", f"POST /data/load (asynchronous) → operation {operation_id}; "
                                      f"GET /operations/{{id}} HTTP {status.status}; "
                                      f"DELETE /operations/{{id}} HTTP {cancel.status}")
        else:
            findings.problem("endpoint", f"POST /data/load (asynchronous): no operation ID in {started.describe()}")
    _facts(settings, answers, findings, contract)
    if targets.gateway_control:
        _ib(settings, targets, ControlClient(targets.gateway_control), findings)
    _cli(settings, targets, findings)


def _missing(probe: Probe, response, findings: Findings, lacks: tuple[str, ...]) -> None:  # noqa: ANN001
    """A route the backend does not have: declared in ``lacks`` (a note), or not (a finding naming the name)."""
    if probe.capability and probe.capability in lacks:
        findings.note("endpoint", f"{probe.label}: not provided (HTTP {response.status}), as the profile declares "
                                  f"(lacks {probe.capability}): its scenarios are not judged")
    elif probe.capability:
        findings.problem("endpoint", f"{probe.label}: not provided (HTTP {response.status}); if the backend has "
                                     f'none, add "{probe.capability}" to `lacks` (its scenarios are then not judged)')
    else:
        findings.problem("endpoint", f"{probe.label}: not provided (HTTP {response.status}); every scenario needs it")


def _judge_answer(probe: Probe, response, findings: Findings, contract, lacks: tuple[str, ...] = ()) -> None:  # noqa: ANN001
    if response.route_missing:
        _missing(probe, response, findings, lacks)
        return
    if response.status is None:
        findings.problem("endpoint", f"{probe.label}: {response.error}")
        return
    errors = contract.envelope_errors(response, probe.shape) if probe.shape else []
    allowed = contract.STATUSES.get(probe.shape, (200,))
    if response.status not in allowed:
        findings.problem("endpoint", f"{probe.label}: HTTP {response.status} {str(response.body)[:120]}")
    elif errors:
        shown = "; ".join(errors[:4]) + (f" (+{len(errors) - 4} more)" if len(errors) > 4 else "")
        findings.problem("contract", f"{probe.label}: {shown}")
    else:
        findings.note("endpoint", f"{probe.label}: HTTP {response.status} in {response.elapsed_s * 1000:.0f} ms"
                                  + (", the contract's shape" if probe.shape else ""))


def _facts(settings, answers: dict, findings: Findings, contract) -> None:  # noqa: ANN001
    """The profile's facts against what the backend reports (a fact stated twice must agree)."""
    profile = settings.profile
    findings.note("facts", f"pool_limit {profile.pool_limit} (from the profile: the contract reports no limit)")
    report = answers.get("GET /ib/resilience")
    if report is not None and report.status == 200:
        parsed = contract.ResilienceReport.of(report)
        for name, stated, reported in (("idle_timeout_s", profile.idle_timeout_s, parsed.max_idle_s),
                                       ("health_check_interval_s", profile.health_check_interval_s,
                                        parsed.health_interval_s)):
            if reported is None:
                findings.note("facts", f"{name}: the backend does not report it"
                                       + (f"; the profile's {stated:g} s is used" if stated else
                                          "; state it in the profile or the scenarios needing it are not judged"))
            elif stated and abs(stated - reported) > 1e-6:
                findings.problem("facts", f"{name}: the profile says {stated:g} s, the backend reports "
                                          f"{reported:g} s")
            else:
                findings.note("facts", f"{name}: the backend reports {reported:g} s")
    config = answers.get("GET /ib/config")
    if config is not None and config.status == 200:
        parsed_config = contract.IbConfig.of(config)
        findings.note("facts", f"client-ID range {parsed_config.client_id_min}..{parsed_config.client_id_max} "
                               f"(reported); preferred {settings.preferred_client_id}")


def _ib(settings, targets, gateway, findings: Findings) -> None:  # noqa: ANN001
    """Which client IDs the backend used, and through which address."""
    connections = [c for c in gateway.connections() if c.get("client_id") is not None
                   and int(c["client_id"]) < settings.squatter_client_id_base]
    if not connections:
        findings.problem("IB", f"the backend opened no IB connection through {targets.backend_ib_host}:"
                               f"{targets.backend_ib_port} (the suite's fault proxy): point its IB host and port "
                               "there with the {ib_host} and {ib_port} placeholders")
        return
    ids = sorted({int(c["client_id"]) for c in connections})
    first = int(connections[0]["client_id"])
    text = (f"{len(connections)} connection(s) through {targets.backend_ib_host}:{targets.backend_ib_port}, "
            f"client IDs {ids}")
    if first != settings.preferred_client_id:
        findings.problem("IB", text + f"; the first used ID {first}, not the preferred {settings.preferred_client_id}")
    else:
        findings.note("IB", text)


def _cli(settings, targets, findings: Findings) -> None:  # noqa: ANN001
    from support.drivers.cli import CliDriver

    cli = CliDriver(tuple(targets.cli), targets.api_base_url, api_pointing=settings.cli_api,
                    extra_env=dict(getattr(settings, "cli_env", ()) or ()))
    bound_s = settings.thresholds.cli_command_s
    run = cli.run(["ib", "status"], timeout_s=bound_s)
    said = f"`{' '.join(run.argv[-2:])}` exit {run.exit_code} in {run.elapsed_s:.1f} s"
    if run.exit_code != 0 or run.timed_out:
        findings.problem("CLI", said + (f" (past the {bound_s:g} s bound)" if run.timed_out else "")
                         + f": {run.output.strip().splitlines()[-1][:160] if run.output.strip() else 'no output'}")
    elif run.warnings:
        findings.problem("CLI", said + f", but printed {run.warnings[0][:160]}")
    else:
        findings.note("CLI", said)


if __name__ == "__main__":
    sys.exit(main())
