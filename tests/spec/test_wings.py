"""The house in three wings, as the folder layout shows it (docs/contributors.md, "The project's layout"):

- the spec (``features/`` and ``support/``, only what ``features/`` needs) reaches the targets through their
  doors and imports only their shared kernel, ``ibtargets.common``;
- the targets (``ibtargets``: simulator, proxy, reference backend, kernel) never import the spec, the report or
  the tools: a target is a system under test;
- the report (``ibreport``) reads run outputs and never imports the tools (``ibresilience``) or a target;
- the tools (``ibresilience``) sit on top and may import any wing.

The graph is read from the source (every ``import``, at any depth), not from what happens to be loaded; the
wings' walls count type-only imports too, the cycles only what runs.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("support", "features", "ibtargets", "ibreport", "ibresilience")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _type_only(tree: ast.AST) -> set[ast.AST]:
    """The import statements inside ``if TYPE_CHECKING:`` blocks (names for annotations, never run)."""
    return {node for block in ast.walk(tree) if isinstance(block, ast.If)
            and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}


def _imports(name: str, path: Path, known: set[str], runtime: bool = False) -> set[str]:
    """The project modules ``name`` imports (``from a import b`` counts as ``a.b`` when that is a module).

    Args:
        runtime: leave out the imports made only for type checking.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_only(tree) if runtime else set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                found.add(target)
    return found - {name}


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items()}
#: What runs: the cycles that matter are those an interpreter walks (a type named for an annotation is not one).
RUNTIME = {name: _imports(name, path, set(_modules()), runtime=True) for name, path in _modules().items()}


def _wing(module: str) -> str:
    top = module.split(".")[0]
    if top == "features":
        return "support"
    if top == "ibtargets" and module.split(".")[1:2] == ["common"]:
        return "kernel"
    return top


#: wing → the wings it may import (its own always allowed).
ALLOWED = {
    "support": {"kernel"},
    "kernel": set(),
    "ibtargets": {"kernel"},
    "ibreport": {"support", "kernel"},
    "ibresilience": {"support", "kernel", "ibtargets", "ibreport"},
}


def test_the_graph_is_read():
    assert len(GRAPH) > 80
    assert "ibtargets.common.wire" in GRAPH["ibtargets.gateway.session"]
    assert "support.drivers.api" in GRAPH["support.world"]


def _crossings(graph: dict[str, set[str]], wing: str) -> list[str]:
    """The imports from ``wing`` into a wing it may not import."""
    return sorted(f"{source} → {target}" for source, targets in graph.items() if _wing(source) == wing
                  for target in targets if _wing(target) != wing and _wing(target) not in ALLOWED[wing])


@pytest.mark.parametrize("wing", sorted(ALLOWED))
def test_each_wing_imports_only_what_it_may(wing):
    crossings = _crossings(GRAPH, wing)
    assert not crossings, f"{wing} may import only {sorted(ALLOWED[wing]) or 'itself'}:\n" + "\n".join(crossings)


def test_the_walls_would_catch_a_breach():
    """The checks themselves can fail: a target importing the spec, a report importing a tool, a spec importing a
    target's insides, and a three-module circle are all caught."""
    breach = {"ibtargets.refbackend.cli": {"support.waiting"}, "ibreport.summary": {"ibresilience.runner"},
              "support.targets": {"ibtargets.gateway.config", "ibtargets.common.accounts"},
              "support.a": {"support.b"}, "support.b": {"support.c"}, "support.c": {"support.a"},
              "ibtargets.gateway.gateway": {"ibtargets.gateway.session"},
              "ibtargets.gateway.session": {"ibtargets.gateway.gateway"}}
    assert _crossings(breach, "ibtargets") == ["ibtargets.refbackend.cli → support.waiting"]
    assert _crossings(breach, "ibreport") == ["ibreport.summary → ibresilience.runner"]
    assert _crossings(breach, "support") == ["support.targets → ibtargets.gateway.config"]
    assert sorted(map(sorted, _cycles(breach))) == [["ibtargets.gateway.gateway", "ibtargets.gateway.session"],
                                                    ["support.a", "support.b", "support.c"]]
    assert _unallowed_cycles(breach) == [["support.a", "support.b", "support.c"]]


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _unallowed_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle but a target's owner/child pair (two modules of one package under ``ibtargets``)."""
    def owner_and_child(cycle: set[str]) -> bool:
        return (len(cycle) == 2 and len({m.rpartition(".")[0] for m in cycle}) == 1
                and all(m.startswith("ibtargets.") for m in cycle))
    return sorted(sorted(c) for c in _cycles(graph) if not owner_and_child(c))


def test_no_import_cycle_but_a_targets_owner_and_child():
    """An owner and the one child it hands itself to (the gateway and its session, the proxy and its pair) may
    know each other; nothing else may go round in a circle. Cycles are of what runs (type-only imports aside)."""
    others = _unallowed_cycles(RUNTIME)
    assert not others, f"import cycles: {others}"


def test_no_two_modules_of_the_suite_share_a_name_within_a_wing():
    by_leaf: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in GRAPH:
        if not name.endswith("__init__") and "." in name and name.rpartition(".")[2] != "__main__":
            by_leaf[(_wing(name), name.rpartition(".")[2])].append(name)
    clashes = {leaf: names for (wing, leaf), names in by_leaf.items() if len(names) > 1 and wing != "ibtargets"}
    assert not clashes, clashes
