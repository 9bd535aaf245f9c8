"""docs/contract.md cannot drift from the code the claims use."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from support import contract, contract_doc
from support.settings import Thresholds

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "contract.md"


def test_the_generated_blocks_are_what_the_code_says_now():
    page = PAGE.read_text(encoding="utf-8")
    assert set(contract_doc.blocks_in(page)) == set(contract_doc.BLOCKS), "a generated block is missing"
    assert contract_doc.regenerate(page) == page, "docs/contract.md is stale: run `make contract-doc`"


def test_every_shape_and_threshold_has_its_words():
    assert set(contract_doc.PATHS) == set(contract.SHAPES), "an endpoint shape without its method and path"
    assert set(contract_doc.MEANINGS) == {f.name for f in dataclasses.fields(Thresholds)}, \
        "a threshold without its meaning for backend authors"


def test_every_endpoint_the_api_driver_calls_is_on_the_page():
    driver = (ROOT / "support" / "drivers" / "api.py").read_text(encoding="utf-8")
    called = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in re.findall(r'self\.call\("(\w+)", f?"([^"]+)"', driver)}
    page = re.sub(r"\{[^}]+\}", "{}", PAGE.read_text(encoding="utf-8"))
    missing = [f"{m} {p}" for m, p in sorted(called) if f"{m} `{p}" not in page and f"{m} /api/v1{p}" not in page]
    assert not missing, f"endpoints the suite calls but the contract page does not list: {missing}"


def test_every_cli_command_the_features_run_is_on_the_page():
    features = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "features").glob("*.feature"))
    commands = {" ".join(c.split()[:2]) for c in re.findall(r'"((?:ib|data) [a-z]+)[^"]*"', features)}
    page = PAGE.read_text(encoding="utf-8")
    assert commands and all(f"`{c}" in page for c in commands), f"CLI commands not on the page: {commands}"


def test_a_changed_shape_makes_the_page_stale(monkeypatch):
    page = PAGE.read_text(encoding="utf-8")
    monkeypatch.setitem(contract.SHAPES, "the IB health", {**contract.SHAPES["the IB health"], "new_field": str})
    assert contract_doc.regenerate(page) != page
