"""``python -m ibresilience.spec_behave``: behave, with the spec importable as ``support`` wherever it is installed."""

import sys

from behave.__main__ import main

import ibresilience  # noqa: F401  (importing the package lets an installed wheel's spec be found: spec_home)

if __name__ == "__main__":
    sys.exit(main())
