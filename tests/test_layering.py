"""DESIGN's layers, and no import circle anywhere.

* **Bottom layers**, importable by every layer: ``_errors`` (the typed errors),
  ``_params`` (the one parameter mechanism: declared constraints, ``get_params``,
  ``repr``, validation), the package root ``lifelongrec`` (those errors and the
  version), ``metrics`` (pure metric functions) and ``nn`` (the torch toolkit:
  sequences, losses, forgetting, optimiser state, loops). Each imports only the bottom layers before it.
* **The flow** runs one way: ``data -> features -> models -> training -> registry ->
  serving``; a package imports only from packages to its left (and the bottom layers).
* **Evaluation drives from outside**: its protocols use data, features, models and
  training; nothing in the flow imports it but the registry (the promotion gate
  evaluates a challenger) and serving.
* **Entry point**: ``cli`` may import everything (it parses, calls and prints).

Every import counts, wherever it is written: at module level, inside a function, or
under ``if TYPE_CHECKING`` (a circle that only type checkers see is still a circle a
reader has to untangle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lifelongrec"
BOTTOM = ["_errors", "_params", "__init__", "metrics", "nn"]  # "__init__": the package root
FLOW = ["data", "features", "models", "training", "registry", "serving"]

# What each top-level part may import from lifelongrec, besides itself.
ALLOWED: dict[str, set[str]] = {part: set(BOTTOM[:i]) for i, part in enumerate(BOTTOM)}
ALLOWED.update({pkg: set(BOTTOM) | set(FLOW[:i]) for i, pkg in enumerate(FLOW)})
ALLOWED["evaluation"] = set(BOTTOM) | {"data", "features", "models", "training"}
# The promotion gate evaluates models; evaluation imports nothing to the right of
# training, so no circle.
ALLOWED["registry"] |= {"evaluation"}
ALLOWED["serving"] |= {"evaluation"}
ALLOWED["cli"] = set(BOTTOM) | set(FLOW) | {"evaluation"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The lifelongrec modules ``name`` imports (``from a.b import c`` names ``a.b.c``
    when that is a module, else ``a.b``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def known(dotted: str) -> str | None:
        while dotted and dotted not in MODULES:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        for target in targets:
            if target.split(".")[0] == "lifelongrec":
                module = known(target)
                if module and module != name:
                    found.add(module)
    return found


GRAPH = {name: imports(name) for name in MODULES}


def part_of(name: str) -> str:
    parts = name.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_every_part_has_a_layer():
    parts = {part_of(name) for name in MODULES}
    assert parts <= set(ALLOWED), f"put these in a layer: {sorted(parts - set(ALLOWED))}"


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_part_imports_only_what_its_layer_allows(part):
    bad = {}
    for name in MODULES:
        if part_of(name) != part:
            continue
        wrong = {part_of(m) for m in GRAPH[name]} - ALLOWED[part] - {part}
        if wrong:
            bad[str(MODULES[name].relative_to(SRC))] = sorted(wrong)
    assert not bad, f"imports against the layers: {bad}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each
    sorted, plus modules that import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_lifelongrec_modules():
    found = cycles(GRAPH)
    assert not found, f"import cycles (each a set of modules that import each other): {found}"
