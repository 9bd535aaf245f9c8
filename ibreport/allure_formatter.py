"""Allure formatter for behave 1.3 that also reports scenarios inside ``Rule:`` blocks, labelled from tags.

allure-behave 2.16 wraps only ``feature.scenarios``; behave 1.3 keeps the scenarios of a
Rule on the rule, so without this they would run unreported (and attachments would fail).
It also reads only feature and scenario tags (not rule or outline tags), drops scenarios
skipped for a missing capability when ``--no-skipped`` is given, and reports a scenario whose
hook failed as passed or skipped where behave's JUnit says error; all are put right here.
Each failed or broken scenario also gets its failure category (:mod:`ibreport.results`): two
labels and a prefix of its status message, which Allure's ``categories.json`` matches; a failed one
also the claim its failing step raised from (label ``claim``), which the report's causes read. A scenario
broken because the run was stopped while it ran (SIGTERM, Ctrl-C, the run's time bound) is
filed as interrupted, with a message that says so, never as a suite error.
"""

from __future__ import annotations

import traceback

import allure_commons
from allure_behave.formatter import AllureFormatter as _AllureFormatter
from allure_behave.listener import AllureListener
from allure_behave.utils import TEST_PLAN_SKIP_REASON, scenario_status, scenario_status_details
from allure_commons.model2 import Label, Status, StatusDetails
from allure_commons.types import LabelType, Severity
from allure_commons.utils import host_tag, thread_tag
from behave.model import Feature, Rule

from ibreport.results import (
    BOUND_TYPES,
    CAPABILITY_LABEL,
    CLAIM_LABEL,
    COMPLAINT_TYPES,
    KIND_LABEL,
    Category,
    capability_of,
    categorise,
    claim_in,
)

#: The levels, as tags.
LEVELS = ("basic", "standard", "exhaustive")
#: Feature tag → Allure severity, by the requirement the feature guards (never by the level it runs at: an
#: exhaustive scenario that catches a silent connection handed out is as critical as a basic one). The seed's
#: two bugs (silent connections handed out, un-awaited coroutines) and the claims the user trusts to find them
#: (validation, the honest score, client IDs) are critical; the rest is normal.
SEVERITY_BY_FEATURE = {tag: Severity.CRITICAL for tag in ("silent", "validation", "score", "self_report",
                                                           "client_ids", "backend_output", "cli")}
#: A scenario's own ``@severity.<blocker|critical|normal|minor|trivial>`` tag wins.
SEVERITY_TAG = "severity."


def severity_of(tags: set[str]) -> Severity:
    """A scenario's Allure severity from its effective tags."""
    for tag in tags:
        if tag.startswith(SEVERITY_TAG):
            try:
                return Severity(tag[len(SEVERITY_TAG):])
            except ValueError:
                pass
    return next((SEVERITY_BY_FEATURE[tag] for tag in sorted(tags) if tag in SEVERITY_BY_FEATURE), Severity.NORMAL)
#: Phase tag → the phase's name in ``/api/v1/ib/resilience``.
PHASES = {"phase1": "Phase 1: systematic validation", "phase2": "Phase 2: garbage collection",
          "phase3": "Phase 3: client ID preference"}
#: Custom label names (read back by :mod:`ibreport.results`).
LEVEL_LABEL, PHASE_LABEL, LOCATION_LABEL = "level", "phase", "location"


def scenario_labels(scenario) -> list[Label]:
    """Labels from the scenario's effective tags (feature, rule, outline and example tags included).

    Args:
        scenario: a behave scenario (or an outline's generated scenario).
    """
    tags = set(scenario.effective_tags)
    labels = [Label(name=name, value=value) for name, value in (
        (LabelType.HOST, host_tag()), (LabelType.THREAD, thread_tag()),
        (LOCATION_LABEL, f"{scenario.filename}:{scenario.line}"))]
    level = next((name for name in LEVELS if name in tags), "")
    if level:
        labels += [Label(name=LEVEL_LABEL, value=level), Label(name=LabelType.PARENT_SUITE, value=f"level {level}")]
    labels.append(Label(name=LabelType.SEVERITY, value=severity_of(tags)))
    labels += [Label(name=PHASE_LABEL, value=phase) for tag, phase in PHASES.items() if tag in tags]
    labels.append(Label(name=LabelType.EPIC, value=feature_epic(scenario.feature)))
    labels.append(Label(name=LabelType.SUITE, value=scenario.feature.name))
    rule = _rule_of(scenario)
    if rule is not None:
        labels += [Label(name=LabelType.STORY, value=rule.name), Label(name=LabelType.SUB_SUITE, value=rule.name)]
    labels += [Label(name=LabelType.TAG, value=tag) for tag in sorted(tags)]
    return labels


def feature_epic(feature) -> str:
    """The Allure epic of every scenario of a feature, from the feature's own tags: its phase's name
    (``@phase1..3``), else its capability's (``@pipeline`` → "Data pipeline"), else the feature's name."""
    tags = set(feature.tags)
    phase = next((name for tag, name in PHASES.items() if tag in tags), None)
    if phase:
        return phase
    name = capability_of(tags, feature.name).name
    return name[:1].upper() + name[1:]


def _rule_of(scenario) -> Rule | None:
    node = scenario.parent
    while node is not None and not isinstance(node, (Rule, Feature)):
        node = getattr(node, "parent", None)
    return node if isinstance(node, Rule) else None


class ResilienceListener(AllureListener):
    """allure-behave's listener with labels from effective tags and capability skips kept, with their reason."""

    #: behave's runner of the scenario being run (the formatter notes it): it says whether the run was aborted.
    runner = None

    def start_scenario(self, scenario):
        super().start_scenario(scenario)
        test = self.logger.get_test(self.current_scenario_uuid)
        replaced = {LabelType.SEVERITY, LabelType.TAG}
        test.labels = [label for label in test.labels if label.name not in replaced] + scenario_labels(scenario)

    def stop_scenario(self, scenario):
        # A scenario the run selected but skipped (a capability the target lacks) is evidence:
        # keep it, with the reason, even under --no-skipped; tag-excluded ones stay hidden.
        reason = scenario.skip_reason or ""
        if scenario.status == "skipped" and self.hide_excluded and self._selected(scenario) and reason \
                and reason != TEST_PLAN_SKIP_REASON:
            self._close(Status.SKIPPED, StatusDetails(message=f"skipped: {reason}"))
        elif self._dropped(scenario):
            self.logger.drop_test(self.current_scenario_uuid)
            self.current_scenario_uuid = None
        else:
            self._close(*judged(scenario, aborted=bool(getattr(self.runner, "aborted", False))))

    def _selected(self, scenario) -> bool:
        """Whether the run's tag expression and ``--name`` select the scenario."""
        expression = getattr(self.behave_config, "tag_expression", None) or self.behave_config.tags
        return scenario.should_run_with_tags(expression) and scenario.should_run_with_name_select(self.behave_config)

    def _dropped(self, scenario) -> bool:
        """allure-behave's rule: skipped under ``--no-skipped``, or excluded with ``hide_excluded``."""
        skipped_by_option = scenario.status == "skipped" and not self.behave_config.show_skipped
        excluded = self.hide_excluded and (scenario.skip_reason == TEST_PLAN_SKIP_REASON
                                           or not self._selected(scenario))
        return skipped_by_option or excluded

    def _close(self, status: str, details: StatusDetails | None, labels: list[Label] = ()) -> None:
        """Finish the current test result with this status, details and extra labels, and report it."""
        self.flush_steps()
        test = self.logger.get_test(self.current_scenario_uuid)
        test.stop = allure_commons.utils.now()
        test.status, test.statusDetails = status, details
        test.labels += list(labels)
        self.logger.close_test(self.current_scenario_uuid)
        self.current_step_uuid = None
        self.group_context.append_test(self.current_scenario_uuid)
        self.group_context.exit()
        self.current_scenario_uuid = None


#: The message of a scenario the run was stopped in (its own error was the interruption, not the backend).
INTERRUPTED_MESSAGE = "interrupted: the run was stopped while this scenario ran; it has no verdict"


def judged(scenario, aborted: bool = False) -> tuple[str, StatusDetails | None, list[Label]]:
    """Allure status, details and category labels of a finished scenario.

    A failed hook makes it broken (behave's JUnit counts it as an error); a failed or broken scenario's
    message starts with its category's prefix, and its kind and capability become labels. ``aborted``: the run
    was stopped (behave's runner aborted) by the time the scenario ended; if it broke, that is why.
    """
    status, details = scenario_status(scenario), scenario_status_details(scenario)
    if status is None:   # a step left untested or executing (the run stopped in a hook): no verdict of its own
        status = Status.BROKEN if aborted or scenario.hook_failed else Status.SKIPPED
    if scenario.hook_failed and status not in (Status.FAILED, Status.BROKEN):
        status = Status.BROKEN
        details = StatusDetails(message=(scenario.error_message or "a hook failed").strip())
    if aborted and status == Status.BROKEN:
        details = StatusDetails(message=INTERRUPTED_MESSAGE, trace=details.trace if details else None)
    category = failure_category(scenario, status, details.message if details else "", aborted)
    if category is None:
        return status, details, []
    details = StatusDetails(message=category.prefix + (details.message if details else ""),
                            trace=details.trace if details else None)
    labels = [Label(name=KIND_LABEL, value=category.kind.key), Label(name=CAPABILITY_LABEL, value=category.capability.key)]
    claim = failing_claim(scenario)
    return status, details, labels + ([Label(name=CLAIM_LABEL, value=claim)] if claim else [])


def failing_claim(scenario) -> str:
    """The claim the failing step raised from (``ibreport.results.claim_in`` over its exception's frames), '' when
    it raised from none (a step's own wait, a hook): the report groups failures by the requirement it names."""
    step = next((s for s in scenario.all_steps if s.status.name in ("failed", "error")), None)
    exception = getattr(step, "exception", None) if step is not None else None
    if exception is None or exception.__traceback__ is None:
        return ""
    return claim_in((frame.filename, frame.name) for frame in traceback.extract_tb(exception.__traceback__))


def failure_category(scenario, status: str, message: str, aborted: bool = False) -> Category | None:
    """The category of a failed or broken scenario, from its failing step and its effective tags."""
    step = next((s for s in scenario.all_steps if s.status.name in ("failed", "error", "undefined")), None)
    in_background = step is not None and any(step is s for s in scenario.background_steps)
    raised = _raised(getattr(step, "exception", None)) if step else ""
    return categorise(status, message, f"{step.keyword} {step.name}" if step else "",
                      step.step_type if step else "", scenario.effective_tags, scenario.feature.name, in_background,
                      raised, interrupted=aborted)


def _raised(exception: BaseException | None) -> str:
    """The most telling type name of what a step raised: a bound or a complaint if it is one (by class, not name
    alone, so a subclass still counts), else its own type's name."""
    if exception is None:
        return ""
    for cls in type(exception).__mro__:
        if cls.__name__ in BOUND_TYPES | COMPLAINT_TYPES:
            return cls.__name__
    return type(exception).__name__


class AllureFormatter(_AllureFormatter):
    """allure-behave's formatter, seeing every scenario of a feature (rules and outlines included)."""

    def __init__(self, stream_opener, config):
        super().__init__(stream_opener, config)
        allure_commons.plugin_manager.unregister(self.listener)
        self.listener = ResilienceListener(config)
        allure_commons.plugin_manager.register(self.listener)

    def feature(self, feature):
        scenarios = feature.walk_scenarios()
        self._wrap_scenario(scenarios)
        for scenario in scenarios:
            self._note_runner(scenario)

    def _note_runner(self, scenario) -> None:
        """Let the listener see the runner of each scenario it reports (whether the run was aborted)."""
        run = scenario.run

        def noted(runner, *args, **kwargs):
            self.listener.runner = runner
            return run(runner, *args, **kwargs)
        scenario.run = noted
