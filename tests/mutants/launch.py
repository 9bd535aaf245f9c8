"""Run the reference backend (server or CLI) with one mutant applied: ``launch.py NAME <refbackend args>``; ``A+B``
applies two (a backend with both bugs)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

from mutant_catalog import BY_NAME  # noqa: E402


def main() -> int:
    names = sys.argv[1].split("+") if len(sys.argv) > 1 else []
    if not names or any(name not in BY_NAME for name in names):
        print(f"usage: launch.py MUTANT[+MUTANT] <refbackend args>; mutants: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    for name in names:
        BY_NAME[name].patch()
    from ibtargets.refbackend.cli import main as refbackend
    return int(refbackend(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
