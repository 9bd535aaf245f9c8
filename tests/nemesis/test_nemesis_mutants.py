"""The bugs only overlapping faults show are catalogued apart: never in the per-scenario kill test."""

import subprocess
import sys
from pathlib import Path

MUTANTS_DIR = Path(__file__).resolve().parents[1] / "mutants"
sys.path.insert(0, str(MUTANTS_DIR))

from mutant_catalog import BY_NAME, MUTANTS, NEMESIS_MUTANTS  # noqa: E402


def test_nemesis_mutants_are_apart_from_the_scenario_killed_ones():
    assert len(NEMESIS_MUTANTS) == 3
    assert not {m.name for m in NEMESIS_MUTANTS} & {m.name for m in MUTANTS}
    assert all(not m.kills for m in NEMESIS_MUTANTS), "a nemesis mutant names a scenario that kills it"
    assert all(BY_NAME[m.name] is m for m in NEMESIS_MUTANTS), "launch.py cannot start a nemesis mutant"


def test_each_nemesis_mutant_patches_the_reference_backend():
    # In a child process: a patch changes the reference backend's classes for the whole process.
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "from mutant_catalog import NEMESIS_MUTANTS\n"
            "for m in NEMESIS_MUTANTS: m.patch()\n")
    done = subprocess.run([sys.executable, "-c", code, str(MUTANTS_DIR.parents[1]), str(MUTANTS_DIR)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
