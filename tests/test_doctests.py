"""Every docstring example in the package runs (and gives what it shows)."""

import doctest
import importlib
import pkgutil

import pytest

import lifelongrec

MODULES = sorted(m.name for m in pkgutil.walk_packages(lifelongrec.__path__, prefix="lifelongrec."))


def _examples(name: str) -> int:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    return sum(len(t.examples) for t in finder.find(module, name, module=module))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("LIFELONGREC_CACHE_DIR", str(tmp_path / "cache"))
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_package_has_examples():
    assert sum(_examples(n) for n in MODULES) >= 100
