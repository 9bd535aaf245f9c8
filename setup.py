"""Which packages the build carries: the metadata is in pyproject.toml; this file only lays the packages out.

A clone keeps the spec at the repository's top (``features/``, ``support/``) and an editable install maps
``support`` there, as it always has. A wheel (or an sdist, which builds one) must not install a top-level
``support`` that could collide with another distribution's, so it carries the spec inside the tool:
``ibresilience/_spec/support`` and ``ibresilience/_spec/features``. ``ibresilience.spec_home`` finds it there and
lets the tool (and only the tool) import it as ``support`` (docs/ci.md, "Installing the suite as a tool").
"""

import sys

from setuptools import find_packages, setup

TOOLS = ["ibtargets", "ibtargets.*", "ibreport", "ibreport.*", "ibresilience", "ibresilience.*"]
#: Where the wheel carries the spec (``ibresilience.spec_home.PACKAGED``).
SPEC = "ibresilience._spec"
#: setuptools' commands that build an editable install (PEP 660, and the legacy one).
EDITABLE_COMMANDS = {"editable_wheel", "develop"}


def editable() -> bool:
    """Whether this build is an editable install (setuptools runs ``setup.py editable_wheel`` for PEP 660)."""
    return bool(EDITABLE_COMMANDS & set(sys.argv[1:]))


def layout() -> dict:
    """``packages``, ``package_dir`` and ``package_data`` for this build."""
    if editable():
        return {"packages": find_packages(include=[*TOOLS, "support", "support.*"]),
                "package_data": {"support": ["profiles/*.toml", "profiles/*.json"]}}
    spec_support = [f"{SPEC}.support", f"{SPEC}.support.profiles"] + [f"{SPEC}.support.{name}"
                                                                        for name in find_packages("support")]
    return {"packages": find_packages(include=TOOLS) + spec_support + [f"{SPEC}.features", f"{SPEC}.features.steps"],
            "package_dir": {f"{SPEC}.support": "support", f"{SPEC}.features": "features"},
            "package_data": {f"{SPEC}.support.profiles": ["*.toml", "*.json"], f"{SPEC}.features": ["*.feature"]}}


setup(**layout())
