"""The spec can fail: every seeded bug is killed by its named scenario, at the right step; the clean
reference passes those same scenarios."""

from pathlib import Path

import pytest
from mutant_catalog import MUTANTS
from mutant_runs import run_spec

KILL_SCENARIOS = sorted({kill.scenario for mutant in MUTANTS for kill in mutant.kills})


@pytest.mark.timeout(900)
def test_clean_reference_passes_the_killing_scenarios(tmp_path: Path):
    run = run_spec(tmp_path, names=KILL_SCENARIOS)
    outcomes = {name.strip(): run.outcomes.get(name.strip()) for name in KILL_SCENARIOS}
    not_passed = {name: o for name, o in outcomes.items() if o is None or o.status != "passed"}
    assert not not_passed and run.exit_code == 0, f"{not_passed}\n{run.output}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_killed_by_its_scenario(mutant, tmp_path: Path):
    run = run_spec(tmp_path, names=[kill.scenario for kill in mutant.kills], mutant=mutant.name)
    for kill in mutant.kills:
        outcome = run.outcomes.get(kill.scenario.strip())
        assert outcome is not None, f"scenario {kill.scenario!r} did not run\n{run.output}"
        assert outcome.status == "failed", f"{mutant.name} survived {kill.scenario!r}\n{run.output}"
        assert kill.step in outcome.step, \
            f"{mutant.name} killed {kill.scenario!r} at the wrong step {outcome.step!r}:\n{outcome.message[:1500]}"
