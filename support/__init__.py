"""The specification's support: what ``features/`` imports (settings, drivers, world, claims and verdicts,
the contract, workloads, evidence). It drives the targets only through their doors and may import only the
targets' shared kernel (:mod:`ibtargets.common`), never a target's insides (tests/spec/test_wings.py)."""

from importlib import metadata

try:
    __version__ = metadata.version("ib-resilience")
except metadata.PackageNotFoundError:  # a checkout on sys.path without `pip install -e .`
    __version__ = "0+unknown"
