"""Where the spec (``support/`` and ``features/``) lives: a clone's top, or inside an installed wheel."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

#: Where a wheel carries the spec (setup.py): ``ibresilience/_spec/support`` and ``ibresilience/_spec/features``.
PACKAGED = Path(__file__).resolve().parent / "_spec"
#: The directory holding ``support/`` and ``features/``: the packaged copy when there is one, else the clone's top.
SPEC_ROOT = PACKAGED if (PACKAGED / "support" / "__init__.py").is_file() else Path(__file__).resolve().parent.parent
#: The one name the spec is imported by (``support.settings``, … in features/steps and every wing).
ALIASED = "support"


class _SpecFinder(importlib.abc.MetaPathFinder):
    """Finds the top-level ``support`` in :data:`PACKAGED` (its submodules follow its ``__path__``), ahead of
    anything on ``sys.path``: a ``support/`` in the working directory is never mistaken for the spec."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ALIASED:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(PACKAGED)])


def install() -> None:
    """In an installed wheel, let this process import the packaged spec as ``support`` (a clone needs nothing:
    its editable install maps ``support`` to the clone). The name exists only in the tool's own processes, so
    ``python -c "import support"`` still fails where the wheel is installed."""
    if SPEC_ROOT != PACKAGED or any(isinstance(finder, _SpecFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _SpecFinder())
