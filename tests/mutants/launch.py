"""Run the reference backend (server or CLI) with one mutant applied: ``launch.py NAME <refbackend args>``."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from mutant_catalog import BY_NAME  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in BY_NAME:
        print(f"usage: launch.py MUTANT <refbackend args>; mutants: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    BY_NAME[sys.argv[1]].patch()
    from ibtargets.refbackend.cli import main as refbackend
    return int(refbackend(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
