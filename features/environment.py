"""Lifecycle of the specification: settings, targets, drivers, fault reset/heal, evidence."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from behave import fixture, use_fixture
from behave.model import Scenario

from ibtargets.common.launch import run_log_dir
from support import evidence, gherkin_types, plots, preflight, run_evidence, waiting
from support.checks import run_wide
from support.checks.limits import Limits
from support.contract import ContractError
from support.drivers.api import RouteMissing
from support.observer import Observer
from support.progress import PLAN_SETTING, Progress
from support.run_history import RunHistory
from support.settings import Settings
from support.targets import EmbeddedTargets, external_targets
from support.time_budget import time_budget
from support.verdict import FAIL
from support.world import World

#: Capability tags: a scenario needing what the target lacks is skipped with this reason.
CAPABILITIES = {
    "needs.fault_proxy": (lambda w: bool(w.targets.proxy_control), "no fault proxy in front of the gateway"),
    "needs.gateway_control": (lambda w: bool(w.targets.gateway_control), "the gateway is not the simulator"),
    "needs.ib_history": (lambda w: bool(w.history.source), "neither simulator nor proxy records IB traffic"),
    "needs.backend_restart": (lambda w: w.embedded is not None,
                              "the suite cannot restart an external backend (use a managed target)"),
    "needs.backend_process": (lambda w: w.sut is not None, "the backend's process is not visible"),
    "needs.backend_output": (lambda w: w.backend_output.available,
                             "the backend's output is not visible (use a managed target, or -D backend_log=PATH)"),
    "needs.api_outage": (lambda w: w.embedded is not None or w.cli.can_be_pointed,
                         "the suite can neither stop the backend (not managed) nor point the CLI at another API "
                         "(cli_api=fixed:…)"),
    "needs.real_gateway": (lambda w: not w.targets.gateway_control, "runs only against a real IB Gateway"),
}

#: The tag prefix of what a scenario uses of the backend (support/capabilities.py): ``@uses.sync_data_load``.
USES = "uses."

gherkin_types.register()  # before behave loads the steps (it loads this module first)


def _abort(signum, _frame):
    """SIGTERM ends the run like Ctrl-C: behave aborts, and its cleanups heal faults and stop the servers."""
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def before_all(context):
    signal.signal(signal.SIGTERM, _abort)
    plan = context.config.userdata.get(PLAN_SETTING)
    context.progress = Progress.from_plan(plan) if plan else None
    settings = Settings.from_userdata(context.config.userdata)
    from ibtargets.common.ibclient import use as use_ib_library
    use_ib_library(settings.ib_library)  # before the IB driver makes its first client
    preflight.ensure_reachable(settings)
    history = RunHistory()  # the whole run, from the first backend start (support/run_history.py)
    embedded = None
    if settings.embedded:
        embedded = EmbeddedTargets(settings, run_log_dir(settings.reports_dir), history)
        context.add_cleanup(embedded.stop)
        targets = embedded.start()
    else:
        targets = external_targets(settings)
        history.life_began(history.started_mono, history.started_mono, settings.profile.idle_timeout_s,
                           settings.profile.health_check_interval_s, api_base_url=targets.api_base_url)
    context.world = world = World(settings, targets, embedded, history)
    context.add_cleanup(world.close)
    context.observer = Observer(history, Path(targets.backend_log) if targets.backend_log else None,
                                history.serving_url,
                                settings.bound("API response", extra_s=5.0).seconds,
                                output_from_end=embedded is None,
                                services=tuple((name, Path(path)) for name, path in targets.service_logs)).start()
    context.add_cleanup(context.observer.stop)
    context.add_cleanup(lambda: world.faults.heal_all())  # runs first: an external target is left without faults
    # Safety first: never touch a live account, not even with one scenario.
    world.accounts = world.ib.ensure_paper_account(settings.squatter_client_id_base,
                                                settings.bound_of(10.0, "the account check").seconds)
    sys.__stderr__.write(f"preflight: the gateway is logged in to paper account(s) {', '.join(world.accounts)}\n")
    evidence.record_targets(settings.reports_dir / "allure-results", world)
    context.run_began = True  # the run-wide invariants judge a run that began (not one refused in before_all)


class RunInvariantBroken(AssertionError):
    """A run-wide invariant did not hold (behave prints it as the after_all hook's error: the run fails)."""


def after_all(context):
    """The run-wide invariants over the whole history, the backend's last stop included (support/checks/run_wide)."""
    world = getattr(context, "world", None)
    if world is None or not getattr(context, "run_began", False):
        return
    if world.embedded is not None:
        world.embedded.stop_backend()  # its last stop is part of the run it is judged on
    context.observer.stop()
    settings = world.settings
    limits = Limits.from_settings(settings)
    window = world.run_history.window()
    judged = run_wide.judge(window, limits)
    reports = settings.reports_dir
    worker = reports.name if reports.parent.name == "workers" else ""
    records = run_evidence.record_run(reports, settings.allure_dir, judged, window, limits, worker)
    broken = [r for r in records if r["status"] == FAIL]
    _write_time_budget(window, reports)
    for record in records:
        sys.__stderr__.write(f"RUN-WIDE {record['status'].upper():13} {record['title']}: {record['message']}\n")
    if broken:
        raise RunInvariantBroken(f"{len(broken)} run-wide invariant(s) broken: "
                                 + "; ".join(f"{r['title']} ({r['message']})" for r in broken))


def _write_time_budget(window, reports) -> None:
    """Where the run's time went (support/time_budget.py): on stderr and in ``time-budget.json``."""
    try:
        budget = time_budget(window, waiting.failing_waits_s())
        (reports / "time-budget.json").write_text(json.dumps(budget.to_json(), indent=2), encoding="utf-8")
        sys.__stderr__.write("\n".join(budget.lines()) + "\n")
    except Exception as exc:  # a budget must never change a verdict
        sys.__stderr__.write(f"time budget unavailable: {exc!r}\n")


def before_tag(context, tag):
    if tag == "fixture.backend.defaults":
        use_fixture(backend_with_defaults, context)
    elif tag == "fixture.backend.fresh":
        use_fixture(fresh_backend, context)


@fixture
def backend_with_defaults(context):
    """A backend started with its own default timings (the reference backend: KTRDR's idle timeout and health
    interval; a managed one: without backend_tuning_env); an external one is left as it is."""
    world = context.world
    if world.embedded is None:
        yield
        return
    world.restart_backend(defaults=True)
    try:
        yield
    finally:
        world.restart_backend(defaults=False)


@fixture
def fresh_backend(context):
    """A freshly started backend (embedded); an external one only gets its pool cleaned up."""
    world = context.world
    if world.embedded is not None:
        world.restart_backend(defaults=False)
    else:
        world.api.cleanup()
    yield


def _not_judged(world: World, scenario: Scenario) -> str:
    """Why the scenario cannot run here ('' when it can): the target lacks what a ``@needs.*`` tag names, or the
    backend what a ``@uses.*`` tag names (its profile's ``lacks``, or a route found missing earlier in the run)."""
    for tag in scenario.effective_tags:
        if tag in CAPABILITIES:
            available, reason = CAPABILITIES[tag]
            if not available(world):
                return f"{tag}: {reason}"
        elif tag.startswith(USES):
            lacking = world.lacking(tag.removeprefix(USES))
            if lacking:
                return f"not judged: {lacking}"
    return ""


def before_feature(context, feature):
    if context.world.settings.restart_after_failure == "when-unhealthy":
        for scenario in feature.walk_scenarios():
            _owed_a_fresh_backend(context, scenario)


def _owed_a_fresh_backend(context, scenario: Scenario) -> None:
    """A scenario whose preconditions failed on a backend the suite kept after an earlier failure (instead of the
    restart a restart-every-time run would have made) runs once more, on a fresh backend: the verdict is the second
    attempt's. The first attempt's Allure result is kept apart (``reports/retired-attempts``)."""
    run = scenario.run

    def run_owed(runner, *args, **kwargs):
        failed = run(runner, *args, **kwargs)
        world = context.world
        owed, world.owed_fresh = world.owed_fresh, ""
        if not failed or not owed:
            return failed
        settings = world.settings
        evidence.retire_attempt(settings.allure_dir, scenario.name, f"{scenario.filename}:{scenario.line}",
                                settings.reports_dir / evidence.RETIRED_DIR)
        sys.__stderr__.write(f"running {scenario.name!r} again on a fresh backend: {owed}\n")
        return run(runner, *args, **kwargs)
    scenario.run = run_owed


def before_scenario(context, scenario: Scenario):
    waiting.clear_measurements()
    world = context.world
    reason = _not_judged(world, scenario)
    if reason:
        scenario.skip(reason)
        sys.__stderr__.write(f"SKIPPED {scenario.name!r}: {reason}\n")
        return
    context.scenario_began = True
    world.begin_scenario()
    context.scenario_span = world.run_history.open_span("scenario", scenario.name)
    context.backend_log_offset = world.seen.output_from
    context.history_positions = _history_positions(world)
    world.seen.history_positions = context.history_positions  # claims: this scenario's own connections


def before_step(context, step):
    context.measurement_mark = waiting.measurement_mark()   # the timed claims this step decides
    # What IB saw while the scenario set itself up (Given) is not evidence about its action (When).
    world = context.world
    if step.step_type == "when" and not world.seen.acting:
        world.seen.acting = True
        world.seen.acting_mono = time.monotonic()
        world.seen.acting_from = len(world.seen.responses)
        world.seen.output_from = world.backend_output.position()
        if world.history.source:
            world.history.bookmark()


def after_scenario(context, scenario: Scenario):
    if getattr(context, "progress", None) is not None:
        sys.__stderr__.write(context.progress.finished(scenario.filename, scenario.name, scenario.status.name,
                                                       scenario.duration) + "\n")
        sys.__stderr__.flush()
    if not getattr(context, "scenario_began", False):
        return
    world = context.world
    for step in scenario.all_steps:
        raised = getattr(step, "exception", None)
        if isinstance(raised, RouteMissing):
            world.learn_missing(raised.method, raised.path, str(raised), scenario.name)
        elif isinstance(raised, ContractError):
            world.learn_missing("", "", str(raised).split(": {", 1)[0][:300], scenario.name, raised.field_path)
    try:
        world.end_scenario()
        world.run_history.close_span(context.scenario_span, scenario.status.name)
    finally:
        _attach_evidence(world, getattr(context, "backend_log_offset", 0), getattr(context, "history_positions", {}))
        failed = scenario.status.name in ("failed", "error")
        world.owed_fresh = _owed(world, scenario) if failed else ""
        if world.embedded and (world.embedded.backend is None or not world.embedded.backend.running()):
            _restart_after_failure(world, scenario)  # a scenario stopped it (or it died): the next one needs it
        elif failed and world.embedded and (world.owed_fresh or _needs_restart(world, scenario)):
            _restart_after_failure(world, scenario)


def _owed(world: World, scenario: Scenario) -> str:
    """Why the failed ``scenario`` is owed a run on a fresh backend ('' when it is not): a precondition (a Given
    step) failed on a backend kept after an earlier failure."""
    failing = next((step for step in scenario.all_steps if step.status.name in ("failed", "error")), None)
    if not world.kept_after or failing is None or failing.step_type != "given":
        return ""
    return f"its precondition {failing.name!r} failed on a backend kept after the failed {world.kept_after!r}"


def _needs_restart(world: World, scenario: Scenario) -> bool:
    """After a failed scenario: restart always (the default), never, or only when something says the backend may
    not be in a fresh start's state (:meth:`World.unhealthy_after`; a restart costs a real backend seconds)."""
    policy = world.settings.restart_after_failure
    if policy != "when-unhealthy":
        return policy == "always"
    why = world.unhealthy_after(world.settings.bound("recovery"), world.settings.bound("API response"))
    sys.__stderr__.write(f"after the failed {scenario.name!r}: "
                         + (f"restarting the backend: {why[:200]}\n" if why else "nothing says the backend may have changed; kept\n"))
    if not why:
        world.kept_after = scenario.name
    return bool(why)


def _restart_after_failure(world: World, scenario: Scenario) -> None:
    """A failed scenario may have left the backend broken; the next scenario gets a fresh one."""
    try:
        world.restart_backend()
    except Exception as exc:  # the next scenario's preconditions will say the backend is gone
        sys.__stderr__.write(f"RESTART FAILED after {scenario.name!r}: {exc}\n")


def _history_positions(world: World) -> dict[str, int]:
    try:
        return world.history.positions()
    except Exception:  # evidence must never fail a scenario; the slice then starts at the record's beginning
        return {}


def after_step(context, step):
    # behave runs this hook before it reports the step, so what is attached here hangs on the step in Allure.
    if getattr(context, "scenario_began", False):
        _attach_step_evidence(context.world)
        _attach_measurements(getattr(context, "measurement_mark", 0))


def _attach_measurements(mark: int) -> None:
    """Each timed claim the step decided: the time measured against its bound (passing steps show them too)."""
    measured = waiting.measurements_since(mark)
    if measured:
        evidence.attach_text("Timed claims", "\n".join(m.describe() for m in measured))


def _attach_step_evidence(world: World) -> None:
    """The step's own evidence: the API exchanges and CLI runs recorded while it ran, the faults it changed."""
    try:
        origin, now = world.seen.started_mono, time.monotonic()
        exchanges, runs, since = evidence.step_slice(world.seen.step_marks, world.api.transcript, world.cli.transcripts,
                                                     origin, now)
        evidence.attach_json("API exchanges", evidence.api_exchanges(exchanges, origin))
        evidence.attach_text("CLI transcripts", evidence.cli_transcripts(runs))
        evidence.attach_json("Fault changes", evidence.fault_changes(world.faults.timeline, origin, since, now))
    except Exception as exc:  # evidence must never change a verdict
        evidence.attach_text("Step evidence unavailable", repr(exc))


def _attach_evidence(world: World, log_offset: int, history_positions: dict[str, int]) -> None:
    """The scenario's evidence: what no step recorded (hooks, cleanup), the whole fault timeline, the IB
    history, the resource plot with the claims' limits, and the backend's output."""
    origin = world.seen.started_mono
    exchanges, runs, _ = evidence.step_slice(world.seen.step_marks, world.api.transcript, world.cli.transcripts,
                                             origin, time.monotonic())
    evidence.attach_json("API exchanges" + evidence.OUTSIDE_STEPS, evidence.api_exchanges(exchanges, origin))
    evidence.attach_text("CLI transcripts" + evidence.OUTSIDE_STEPS, evidence.cli_transcripts(runs))
    evidence.attach_json("Fault timeline", evidence.fault_timeline(world.timeline.fault_windows(), origin))
    if world.history.source:
        try:
            for record, events in world.history.slices(history_positions).items():
                evidence.attach_json(f"IB history ({record})", events)
        except Exception as exc:  # evidence must never hide the verdict
            evidence.attach_text("IB history unavailable", str(exc))
    samples = [s for s in world.sut.samples if s.mono >= origin] if world.sut is not None else []
    if samples:
        limits = dict(world.seen.claim_limits)
        evidence.attach_png("Backend resources", plots.resources_png(samples, world.faults.timeline, origin, limits))
        evidence.attach_json("Backend resource samples", evidence.resource_samples(samples, origin))
    if world.backend_output.available:
        evidence.attach_text("Backend output", world.backend_output.since(log_offset)[-200_000:])
