"""The targets the specification runs against when no real system is named: the TWS-protocol IB Gateway
simulator (:mod:`ibtargets.gateway`), the IB-frame-aware fault proxy (:mod:`ibtargets.proxy`), the reference
backend (:mod:`ibtargets.refbackend`, a correct implementation of the contract) and their shared kernel
(:mod:`ibtargets.common`: wire framing, fault values, the control server and client, process launch).

Nothing here imports the specification (``support``), the report (``ibreport``) or the tools (``ibresilience``):
a target is a system under test, and the suite reaches it only through its doors (tests/spec/test_wings.py).
"""

from importlib import metadata

try:
    __version__ = metadata.version("ib-resilience")
except metadata.PackageNotFoundError:  # a checkout on sys.path without `pip install -e .`
    __version__ = "0+unknown"
