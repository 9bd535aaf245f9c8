"""The contract's reference tables, generated from the code the claims use (``docs/contract.md`` holds them).

``docs/contract.md`` is prose for backend authors around two generated blocks — the answers' shapes
(:data:`support.contract.SHAPES`) and the bounds (:class:`support.settings.Thresholds`) — between
``<!-- generated:NAME -->`` markers. ``ib-resilience contract`` prints them; a test checks the page holds exactly
what this module generates, so the page and the claims cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from support import contract
from support.settings import BOUNDS, Thresholds

#: The endpoint a shape belongs to: the user's name → method and path (under ``/api/v1``).
PATHS: dict[str, str] = {
    "the service health": "GET /api/v1/health",
    "the IB status": "GET /api/v1/ib/status",
    "the IB health": "GET /api/v1/ib/health",
    "the resilience report": "GET /api/v1/ib/resilience",
    "the IB configuration": "GET /api/v1/ib/config",
    "the discovered symbols": "GET /api/v1/ib/symbols/discovered",
}

#: What each threshold means to a backend author (every field of :class:`Thresholds` has a line).
MEANINGS: dict[str, str] = {
    "validation_s": "a pooled connection is validated (`isConnected()` + `reqCurrentTime()`) before every "
                    "handoff, within this bound",
    "silent_detection_s": "a silent gateway (TCP up, IB never answers) is reported unhealthy, and the score "
                          "falls below the healthy minimum, within this bound — never a hang",
    "api_response_s": "every API answer, in every gateway state, under the normal load",
    "cli_command_s": "every CLI command, start to exit",
    "recovery_s": "service back (health, score, requests) after stress or an outage ends",
    "score_min": "the resilience score with a healthy gateway is at least this",
    "score_infrastructure": "a score below this means infrastructure trouble",
    "success_rate_min_pct": "share of API calls that succeed under concurrent load",
    "shutdown_s": "SIGTERM → every IB connection closed (as the gateway sees it) and the process ended",
    "trouble_detection_s": "the gateway gone, restarting or cut off from IB is noticed within this bound",
    "normal_load_callers": "callers at once that still count as the normal load the API bound is promised under",
}

_TYPES = [((int, float), "number"), ((str, type(None)), "string or null"), ((int, float, type(None)), "number or null"),
          ((int, type(None)), "integer or null")]
_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}


def type_name(expected: Any) -> str:
    """The JSON type a shape entry asks for, in words."""
    for types, name in _TYPES:
        if expected == types:
            return name
    return _NAMES.get(expected, getattr(expected, "__name__", str(expected)))


def _tree(shape: dict[str, Any], depth: int = 0) -> list[str]:
    lines = []
    for key, expected in shape.items():
        if isinstance(expected, dict):
            lines.append(f"{'  ' * depth}- `{key}`: object")
            lines += _tree(expected, depth + 1)
        else:
            lines.append(f"{'  ' * depth}- `{key}`: {type_name(expected)}")
    return lines


def shapes_block() -> str:
    """Every endpoint's required fields and JSON types (what the shape claims check), in Markdown."""
    out = []
    for name, shape in contract.SHAPES.items():
        statuses = ", ".join(map(str, contract.STATUSES.get(name, (200,))))
        where = "the body itself (no envelope)" if name == "the service health" else "`data` of the envelope"
        out += [f"#### `{PATHS[name]}` ({name})", "", f"HTTP {statuses}; {where}:", "", *_tree(shape), ""]
    return "\n".join(out).rstrip() + "\n"


def bounds_block() -> str:
    """The bounds and thresholds with their default values, in Markdown."""
    named = {field: name for name, field in BOUNDS.items()}
    rows = ["| setting | default | scenarios call it | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Thresholds):
        unit = " s" if f.name.endswith("_s") else (" %" if f.name.endswith("_pct") else "")
        called = f"the {named[f.name]} bound" if f.name in named else "–"
        rows.append(f"| `{f.name}` | {f.default:g}{unit} | {called} | {MEANINGS[f.name]} |")
    return "\n".join(rows) + "\n"


BLOCKS = {"shapes": shapes_block, "bounds": bounds_block}
_MARKED = re.compile(r"<!-- generated:(?P<name>\w+) -->\n(?P<body>.*?)<!-- end:(?P=name) -->", re.S)


def blocks_in(page: str) -> dict[str, str]:
    """The generated blocks a page holds, by name."""
    return {m.group("name"): m.group("body") for m in _MARKED.finditer(page)}


def regenerate(page: str) -> str:
    """The page with every generated block replaced by what the code says now."""
    return _MARKED.sub(lambda m: f"<!-- generated:{m.group('name')} -->\n{BLOCKS[m.group('name')]()}"
                                 f"<!-- end:{m.group('name')} -->", page)


def main() -> None:
    """Rewrite ``docs/contract.md``'s generated blocks from the code (``make contract-doc``)."""
    from support.settings import ROOT

    page = ROOT / "docs" / "contract.md"
    page.write_text(regenerate(page.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote the generated blocks of {page}")


if __name__ == "__main__":
    main()
