"""One bound type, scaled once; one verdict convention (docs/reviewers.md, "How a claim is written").

- a :class:`~support.waiting.Bound` comes from the settings, scaled by ``timeout_multiplier`` exactly once;
  ``eventually`` takes nothing else and never scales;
- the spec never makes a bound of its own (``Bound(...)``, ``Bound.exactly``) outside the settings;
- no ``assert`` statement judges anything in the steps or the claims;
- every bound a feature names by meaning is one the settings know.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from support.gherkin_types import parse_bound
from support.settings import BOUNDS, Settings
from support.verdict import BoundExceeded, ClaimFailed, ComplaintFound, Verdict, holds, require, require_within
from support.waiting import Bound, ConditionTimeout, eventually, settled

ROOT = Path(__file__).resolve().parents[2]
SPEC = sorted([*(ROOT / "support").rglob("*.py"), *(ROOT / "features").rglob("*.py")])


def _calls(path: Path) -> list[str]:
    """The dotted names of everything ``path`` calls."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            names.append(ast.unparse(node.func))
    return names


def test_a_bound_is_scaled_once_from_the_settings():
    fast, slow = Settings(), Settings(timeout_multiplier=2.0)
    assert fast.bound("recovery") == Bound(10.0, "the recovery bound")
    assert slow.bound("recovery").seconds == 20.0
    assert slow.bound("validation", extra_s=2).seconds == 10.0
    assert slow.bound("validation", extra_s=2).meaning == "the validation bound plus 2 s"
    assert slow.bound_of(60, "60 s").seconds == 120.0
    assert str(fast.bound("API response")) == "5 s (the API response bound)"
    with pytest.raises(KeyError, match="known: validation, silent-detection"):
        fast.bound("recovery_s")


def test_eventually_takes_only_a_bound_and_never_scales():
    with pytest.raises(TypeError, match="takes a Bound"):
        eventually(lambda: True, 5.0, "a number is not a bound")
    with pytest.raises(ConditionTimeout, match=r"never: not true within 0.05 s \(a test's wait\)") as raised:
        eventually(lambda: False, Bound.exactly(0.05, "a test's wait"), "never")
    assert isinstance(raised.value, BoundExceeded) and isinstance(raised.value, AssertionError)


def test_eventually_judges_when_the_answer_arrived_not_when_it_was_asked():
    import time
    from dataclasses import dataclass

    @dataclass
    class Answer:
        finished_mono: float

        def describe(self) -> str:
            return "the late answer"

    # asked at once, answered after the bound: a true answer that came too late fails, with its arrival time
    with pytest.raises(ConditionTimeout, match=r"arrived 0\.\d\d s after the bound's start, past 0.05 s .*late answer"):
        eventually(lambda: time.sleep(0.1) or Answer(time.monotonic()), Bound.exactly(0.05, "a test's wait"), "late")
    slow = Bound.exactly(0.05, "a test's wait")
    with pytest.raises(ConditionTimeout, match="held only on an answer that arrived"):
        eventually(lambda: time.sleep(0.1) or True, slow, "a probe that returns late")
    # the bound starts when the caller says (when the fault began), not when the wait is called
    with pytest.raises(ConditionTimeout, match="past 1 s"):
        eventually(lambda: True, Bound.exactly(1.0, "a test's wait"), "began long ago", since_mono=time.monotonic() - 2)
    assert eventually(lambda: "ok", Bound.exactly(1.0, "a test's wait"), "in time", since_mono=time.monotonic() - 0.5)


def test_a_claim_judged_once_evidence_settled_fails_as_a_claim_never_as_a_bound():
    """The suite's own grace for evidence to arrive (closes reaching the gateway after the answer) is no bound the
    backend must meet: a count the gateway contradicts is a refuted claim (the placeholder ``ib cleanup`` that prints
    "2 closed" while the gateway saw none is not "time bound exceeded")."""
    grace = Bound.exactly(0.05, "closes reaching the gateway after the answer")
    with pytest.raises(ClaimFailed) as raised:
        settled(lambda: require(False, "reported 2 closed, the gateway saw 0 close"), grace, "the gateway sees 2 close")
    assert not isinstance(raised.value, BoundExceeded)
    assert str(raised.value).startswith("the gateway sees 2 close: reported 2 closed, the gateway saw 0 close")
    with pytest.raises(ClaimFailed, match=r"nothing: not seen \(last: None\)"):
        settled(lambda: None, grace, "nothing")
    assert settled(lambda: 3, grace, "at once") == 3


def test_what_the_backend_does_not_provide_fails_at_once_and_never_as_a_bound():
    """A missing endpoint or field does not appear by waiting: it is 'contract: not provided', never a time bound."""
    import time

    from ibreport.results import kind_of
    from support.contract import ResilienceReport, needed
    from support.drivers.api import ApiResponse, RouteMissing
    from support.verdict import NotProvided

    calls = []

    def missing_route():
        calls.append(1)
        raise RouteMissing("contract: not provided: the API has no GET /api/v1/ib/resilience (HTTP 404)")
    started = time.monotonic()
    with pytest.raises(NotProvided):
        eventually(missing_route, Bound.exactly(5.0, "a test's wait"), "the score")
    assert len(calls) == 1 and time.monotonic() - started < 1.0
    no_score = ApiResponse("GET", "/ib/resilience", None, 200, {"success": True, "data": {}}, 0.01, 0.0)
    with pytest.raises(NotProvided, match="answers without overall_resilience_score"):
        needed(ResilienceReport.of(no_score).score, "overall_resilience_score", no_score)
    assert kind_of("failed", "RouteMissing: contract: not provided: …", "then").key == "not_provided"
    assert kind_of("failed", "ContractError: contract: not provided: …", "given").key == "not_provided"
    wrapped = ApiResponse("GET", "/ib/config", None, 404, {"success": False, "error": {"code": "X", "message": "Not Found"}},
                          0.01, 0.0)
    unknown_symbol = ApiResponse("POST", "/ib/symbols/discover", None, 404,
                                 {"success": False, "error": {"code": "IB-404", "message": "XYZ not found"}}, 0.01, 0.0)
    assert wrapped.route_missing and not unknown_symbol.route_missing


def test_every_bound_a_feature_names_is_known_and_parses():
    named = set()
    for feature in (ROOT / "features").glob("*.feature"):
        steps = [line for line in feature.read_text(encoding="utf-8").splitlines()
                 if line.strip().split(" ", 1)[0] in ("Given", "When", "Then", "And", "But")]
        named |= {phrase for line in steps for phrase in re.findall(r"within (the [\w -]+? bound)\b", line)}
    assert named, "no feature names a bound"
    pattern = re.compile(parse_bound.pattern)
    for phrase in named:
        assert pattern.fullmatch(phrase), f"{phrase!r} is not a bound the settings know ({', '.join(BOUNDS)})"
        assert parse_bound(phrase) in BOUNDS


@pytest.mark.parametrize("path", SPEC, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_spec_makes_no_bound_of_its_own(path):
    if path.name in ("settings.py", "waiting.py"):
        return
    own = [name for name in _calls(path) if name in ("Bound", "Bound.exactly", "waiting.Bound")]
    assert not own, f"{path.name} makes its own bound ({own}); take it from the settings"


@pytest.mark.parametrize("path", [*(ROOT / "features" / "steps").glob("*.py"), ROOT / "support" / "claims.py",
                                  ROOT / "support" / "cli_claims.py", ROOT / "support" / "verdict.py"],
                         ids=lambda p: p.name)
def test_no_assert_statement_judges_in_the_steps_or_the_claims(path):
    asserts = [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Assert)]
    assert not asserts, f"{path.name}: assert statements at lines {asserts} (use support.verdict)"


def test_the_verdict_convention():
    require(True, "unused")
    with pytest.raises(ClaimFailed, match="what was seen"):
        require(0, "what was seen")
    with pytest.raises(BoundExceeded):
        require_within(False, "6 s > 5 s")
    assert holds(Verdict.passed("fine")).message == "fine"
    with pytest.raises(ClaimFailed, match="bad\nwhere"):
        holds(Verdict.failed("bad"), "where")
    assert issubclass(ComplaintFound, ClaimFailed) and issubclass(ClaimFailed, AssertionError)


def test_every_timed_claim_is_measured_against_its_bound_and_an_allowance_is_not():
    from support.verdict import ClaimFailed
    from support.waiting import (
        ConditionTimeout,
        clear_measurements,
        eventually,
        measurement_mark,
        measurements_since,
        settled,
    )

    clear_measurements()
    bound = Bound.exactly(0.2, "a test bound")
    assert eventually(lambda: True, bound, "true at once")
    with pytest.raises(ConditionTimeout):
        eventually(lambda: False, bound, "never true", interval_s=0.02)
    mark = measurement_mark()
    with pytest.raises(ClaimFailed):
        settled(lambda: False, bound, "a grace of the suite's own", interval_s=0.02)
    held, missed = measurements_since(0)
    assert held.held and held.measured_s < 0.1 and held.describe().startswith("✓ ")
    assert not missed.held and missed.measured_s >= 0.2 and "against 0.2 s (a test bound): never true" in missed.describe()
    assert measurements_since(mark) == []
