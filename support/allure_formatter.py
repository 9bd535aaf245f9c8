"""Allure formatter for behave 1.3 that also reports scenarios inside ``Rule:`` blocks, labelled from tags.

allure-behave 2.16 wraps only ``feature.scenarios``; behave 1.3 keeps the scenarios of a
Rule on the rule, so without this they would run unreported (and attachments would fail).
It also reads only feature and scenario tags (not rule or outline tags) and drops scenarios
skipped for a missing capability when ``--no-skipped`` is given; both are put right here.
"""

from __future__ import annotations

import allure_commons
from allure_behave.formatter import AllureFormatter as _AllureFormatter
from allure_behave.listener import AllureListener
from allure_behave.utils import TEST_PLAN_SKIP_REASON
from allure_commons.model2 import Label, StatusDetails
from allure_commons.types import LabelType, Severity
from allure_commons.utils import host_tag, thread_tag
from behave.model import Feature, Rule

#: Level tag → Allure severity: what fails at a lower level hurts more.
SEVERITY_BY_LEVEL = {"basic": Severity.CRITICAL, "standard": Severity.NORMAL, "exhaustive": Severity.MINOR}
#: Phase tag → the phase's name in ``/api/v1/ib/resilience``.
PHASES = {"phase1": "Phase 1: systematic validation", "phase2": "Phase 2: garbage collection",
          "phase3": "Phase 3: client ID preference"}
#: Custom label names (read back by :mod:`support.results`).
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
    level = next((name for name in SEVERITY_BY_LEVEL if name in tags), "")
    if level:
        labels += [Label(name=LEVEL_LABEL, value=level), Label(name=LabelType.PARENT_SUITE, value=f"level {level}"),
                   Label(name=LabelType.SEVERITY, value=SEVERITY_BY_LEVEL[level])]
    for tag, phase in PHASES.items():
        if tag in tags:
            labels += [Label(name=PHASE_LABEL, value=phase), Label(name=LabelType.EPIC, value=phase)]
    labels.append(Label(name=LabelType.SUITE, value=scenario.feature.name))
    rule = _rule_of(scenario)
    if rule is not None:
        labels += [Label(name=LabelType.STORY, value=rule.name), Label(name=LabelType.SUB_SUITE, value=rule.name)]
    labels += [Label(name=LabelType.TAG, value=tag) for tag in sorted(tags)]
    return labels


def _rule_of(scenario) -> Rule | None:
    node = scenario.parent
    while node is not None and not isinstance(node, (Rule, Feature)):
        node = getattr(node, "parent", None)
    return node if isinstance(node, Rule) else None


class ResilienceListener(AllureListener):
    """allure-behave's listener with labels from effective tags and capability skips kept, with their reason."""

    def start_scenario(self, scenario):
        super().start_scenario(scenario)
        test = self.logger.get_test(self.current_scenario_uuid)
        replaced = {LabelType.SEVERITY, LabelType.TAG}
        test.labels = [label for label in test.labels if label.name not in replaced] + scenario_labels(scenario)

    def stop_scenario(self, scenario):
        # A scenario the run selected but skipped (a capability the target lacks) is evidence:
        # keep it, with the reason, even under --no-skipped; tag-excluded ones stay hidden.
        reason = scenario.skip_reason or ""
        selected = scenario.should_run_with_tags(self.behave_config.tag_expression) \
            and scenario.should_run_with_name_select(self.behave_config)
        keep = (scenario.status == "skipped" and self.hide_excluded and selected and reason
                and reason != TEST_PLAN_SKIP_REASON)
        if not keep:
            super().stop_scenario(scenario)
            return
        self.flush_steps()
        test = self.logger.get_test(self.current_scenario_uuid)
        test.stop = allure_commons.utils.now()
        test.status = "skipped"
        test.statusDetails = StatusDetails(message=f"skipped: {reason}")
        self.logger.close_test(self.current_scenario_uuid)
        self.current_step_uuid = None
        self.group_context.append_test(self.current_scenario_uuid)
        self.group_context.exit()
        self.current_scenario_uuid = None


class AllureFormatter(_AllureFormatter):
    """allure-behave's formatter, seeing every scenario of a feature (rules and outlines included)."""

    def __init__(self, stream_opener, config):
        super().__init__(stream_opener, config)
        allure_commons.plugin_manager.unregister(self.listener)
        self.listener = ResilienceListener(config)
        allure_commons.plugin_manager.register(self.listener)

    def feature(self, feature):
        self._wrap_scenario(feature.walk_scenarios())
