"""Tests go through the public API: private-attribute accesses from tests stay few.

Counted, in every test file (and in the Python scripts tests hold as strings, run in a
child process): ``obj._name`` where ``obj`` is not a third-party module and ``_name``
is not a module (``lifelongrec.models._base`` is a module path, not an access), and the
string-named forms ``setattr(obj, "_name", ...)`` / ``monkeypatch.setattr(obj, "_name",
...)`` / ``getattr`` / ``hasattr`` / ``delattr``. The remaining ones are deliberate
(fault injection, spies on paths with no public trace, parts tests) and each says why
next to it. A test that needs to look inside should rather get a public, read-only way
to observe the thing (``module_``, ``user_histories_``, ``item_index_``, ...); if it
really must look inside, raise the budget here in the same change and say why there.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import importlib.util
import re
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

#: ``obj._name`` accesses, and string-named private attributes set, read or probed.
ATTRIBUTE_BUDGET = 17
NAMED_BUDGET = 11

_PRIVATE = re.compile(r"^_[A-Za-z]")
_NAMED_CALLS = {"setattr", "getattr", "hasattr", "delattr"}


@functools.cache
def _spec(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module (found without importing anything but packages)."""
    parent, _, _ = name.rpartition(".")
    if parent:
        spec = _spec(parent)
        if spec is None or spec.submodule_search_locations is None:
            return False  # only a package has submodules
    return _spec(name) is not None


def _imported_modules(tree: ast.AST) -> dict[str, str]:
    """Local name -> module path of every name an import statement binds to a module."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    root = a.name.split(".")[0]
                    out[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if _is_module(f"{node.module}.{a.name}"):
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _module_path(node: ast.AST, modules: dict[str, str]) -> str | None:
    """The module path an expression names (``lifelongrec.models``, an imported alias),
    or ``None`` when it is not a module."""
    if isinstance(node, ast.Name):
        return modules.get(node.id)
    if isinstance(node, ast.Attribute):
        parent = _module_path(node.value, modules)
        if parent is not None and _is_module(f"{parent}.{node.attr}"):
            return f"{parent}.{node.attr}"
    return None


def _third_party(module: str | None) -> bool:
    """A module from outside this repository (the standard library, numpy, torch...)."""
    if module is None:
        return False
    root = module.split(".")[0]
    if root == "lifelongrec":
        return False
    spec = _spec(root)
    if spec is None:
        return False
    if not spec.origin or not Path(spec.origin).is_absolute():
        return True  # built-in or frozen: the standard library
    ours = (TESTS, REPO / "benchmarks")
    return not any(Path(spec.origin).resolve().is_relative_to(d) for d in ours)


def _scripts(tree: ast.AST) -> list[tuple[int, ast.AST]]:
    """Multi-line string constants (f-strings too) that parse as Python (child scripts),
    with the line each starts on."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "0" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if "\n" not in text:
            continue
        try:
            out.append((node.lineno, ast.parse(textwrap.dedent(text))))
        except SyntaxError:
            pass
    return out


def private_accesses(tree: ast.AST) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(attribute accesses, string-named ones)`` of a module, as ``(line, text)``."""
    modules = _imported_modules(tree)
    attrs: list[tuple[int, str]] = []
    named: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _PRIVATE.match(node.attr):
            owner = _module_path(node.value, modules)
            if _third_party(owner) or _module_path(node, modules) is not None:
                continue  # a third-party module's internals, or a module path
            attrs.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            target, attr = node.args[0], node.args[1]
            if (
                name in _NAMED_CALLS
                and isinstance(attr, ast.Constant)
                and isinstance(attr.value, str)
                and _PRIVATE.match(attr.value)
                and not _third_party(_module_path(target, modules))
            ):
                named.append((node.lineno, f"{ast.unparse(target)}.{attr.value}"))
    attrs.sort()
    named.sort()
    for line, script in _scripts(tree):
        more, more_named = private_accesses(script)
        attrs += [(line, f"(in a script) {text}") for _, text in more]
        named += [(line, f"(in a script) {text}") for _, text in more_named]
    return attrs, named


@functools.cache
def scan(root: Path = TESTS) -> tuple[list[str], list[str]]:
    """Every counted access under ``root``, as ``file:line: text``."""
    attrs, named = [], []
    for path in sorted(root.rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        a, n = private_accesses(ast.parse(path.read_text(), filename=str(path)))
        rel = path.relative_to(root.parent)
        attrs += [f"{rel}:{line}: {text}" for line, text in a]
        named += [f"{rel}:{line}: {text}" for line, text in n]
    return attrs, named


def test_private_attribute_accesses_stay_within_budget():
    attrs, _ = scan()
    assert len(attrs) <= ATTRIBUTE_BUDGET, (
        f"{len(attrs)} private-attribute accesses from tests (budget {ATTRIBUTE_BUDGET}); "
        "use the public API or a public read-only view instead:\n" + "\n".join(attrs)
    )


def test_string_named_private_attributes_stay_within_budget():
    _, named = scan()
    assert len(named) <= NAMED_BUDGET, (
        f"{len(named)} string-named private attributes patched or read from tests (budget "
        f"{NAMED_BUDGET}):\n" + "\n".join(named)
    )


def test_the_counter_sees_what_it_should():
    source = textwrap.dedent(
        '''
        import numpy as np
        import lifelongrec.models
        from lifelongrec.features import _text
        from lifelongrec.models import Recommender

        model._module.eval()                     # counted
        _text._get_model("cpu")                  # counted: a private function of a module
        Recommender._item_rows                   # counted
        lifelongrec.models._base                 # a module path: not counted
        np._NoValue                              # third-party internals: not counted
        model.__class__, model.module_           # dunder and public: not counted
        monkeypatch.setattr(_text, "_MODELS", {})  # string-named: counted apart
        getattr(np, "_NoValue")                  # third-party: not counted
        child = """
        import os
        from lifelongrec.registry import _registry
        _registry._write_durable = print
        """
        '''
    )
    attrs, named = private_accesses(ast.parse(source))
    texts = [t for _, t in attrs]
    assert texts == [
        "model._module",
        "_text._get_model",
        "Recommender._item_rows",
        "(in a script) _registry._write_durable",
    ]
    assert [t for _, t in named] == ["_text._MODELS"]
