"""Allure formatter for behave 1.3 that also reports scenarios inside ``Rule:`` blocks.

allure-behave 2.16 wraps only ``feature.scenarios``; behave 1.3 keeps the scenarios of a
Rule on the rule, so without this they would run unreported (and attachments would fail).
"""

from __future__ import annotations

from allure_behave.formatter import AllureFormatter as _AllureFormatter


class AllureFormatter(_AllureFormatter):
    """allure-behave's formatter, seeing every scenario of a feature (rules and outlines included)."""

    def feature(self, feature):
        self._wrap_scenario(feature.walk_scenarios())
