"""The run-wide invariants can fail: each seeded bug no scenario sees (it shows between scenarios, in a background
task, or in a request no scenario judges) is killed by its invariant, every scenario of its proof passes, and no
other invariant that holds on the clean reference fails."""

from pathlib import Path

import pytest
from mutant_catalog import RUN_WIDE_MUTANTS
from mutant_runs import run_spec

from support.verdict import FAIL


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kill", RUN_WIDE_MUTANTS, ids=[k.mutant.name for k in RUN_WIDE_MUTANTS])
def test_bug_between_scenarios_is_killed_by_its_invariant_alone(kill, tmp_path: Path):
    run = run_spec(tmp_path, names=kill.scenarios, mutant=kill.mutant.name)
    not_passed = {name: o.status for name, o in run.outcomes.items() if o.status != "passed"}
    assert len(run.outcomes) == len(kill.scenarios) and not not_passed, \
        f"{kill.mutant.name}: a scenario saw it too, or did not run: {not_passed}\n{run.output}"
    assert run.invariants.get(kill.invariant) == FAIL, \
        f"{kill.mutant.name} survived the run-wide invariant {kill.invariant!r}: {run.invariants}\n{run.output}"
    others = {key: run.invariant_messages[key] for key, status in run.invariants.items()
              if status == FAIL and key != kill.invariant and key not in kill.also}
    assert not others, f"{kill.mutant.name} also broke {others}"
    assert run.exit_code != 0


@pytest.mark.timeout(600)
def test_clean_reference_keeps_every_invariant_of_those_scenarios(tmp_path: Path):
    names = sorted({name for kill in RUN_WIDE_MUTANTS for name in kill.scenarios})
    run = run_spec(tmp_path, names=names)
    broken = {key: run.invariant_messages[key] for key, status in run.invariants.items() if status == FAIL}
    assert run.invariants and not broken and run.exit_code == 0, f"{broken}\n{run.output}"
