"""Where a run's time went, from its history."""

from support.run_history import RunHistory
from support.time_budget import time_budget


def test_the_budget_splits_scenarios_failures_starts_stops_and_the_gaps():
    history = RunHistory(started_mono=100.0)
    history.life_began(100.0, 105.0)                      # the first start, before any scenario
    first = history.open_span("scenario", "passes", 105.0)
    history.close_span(first, "passed", 115.0)
    second = history.open_span("scenario", "fails", 116.0)
    history.close_span(second, "failed", 126.0)
    history.life_ending(126.5, 127.5)                     # a restart after the failure, between scenarios
    history.life_began(127.5, 132.5)
    third = history.open_span("scenario", "passes too", 133.0)
    history.close_span(third, "passed", 135.0)
    budget = time_budget(history.window(100.0, 140.0), failing_waits_s=4.0)
    assert (budget.run_s, budget.scenarios, budget.scenarios_s) == (40.0, 3, 22.0)
    assert (budget.failed_scenarios, budget.failed_scenarios_s) == (1, 10.0)
    assert (budget.backend_starts, budget.starting_s, budget.stopping_s) == (2, 10.0, 1.0)
    assert budget.starts_between_scenarios == 1 and budget.between_scenarios_s == 8.0
    assert budget.failing_waits_s == 4.0
    assert "2 starts, 1 between scenarios" in "\n".join(budget.lines())


def test_a_scenario_run_again_on_a_fresh_backend_is_counted_as_such():
    history = RunHistory(started_mono=100.0)
    history.life_began(100.0, 101.0)
    for start, status in ((101.0, "failed"), (105.0, "passed")):   # the first attempt, then the one on a fresh backend
        history.close_span(history.open_span("scenario", "owed a fresh backend", start), status, start + 2.0)
    history.close_span(history.open_span("scenario", "another", 108.0), "passed", 108.5)
    history.close_span(history.open_span("scenario", "another", 109.0), "passed", 109.5)  # same name, no retry
    budget = time_budget(history.window(100.0, 110.0))
    assert (budget.scenarios, budget.second_attempts) == (4, 1)
    assert "1 of them run again on a fresh backend" in "\n".join(budget.lines())
