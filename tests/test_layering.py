"""DESIGN's one-way flow: a package imports only from packages to its left.

data -> features -> models -> training -> registry -> serving; evaluation drives models
and training from outside, so nothing but the registry (its promotion gate), serving
and the CLI may import it.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lifelongrec"
FLOW = ["data", "features", "models", "training", "registry", "serving"]
# What each package may import from lifelongrec (besides itself and lifelongrec._errors).
ALLOWED = {pkg: set(FLOW[:i]) for i, pkg in enumerate(FLOW)}
ALLOWED["serving"] |= {"evaluation"}
# The promotion gate evaluates models; evaluation imports nothing to the right of
# training, so no cycle.
ALLOWED["registry"] |= {"evaluation"}
# Evaluation protocols drive data, models and training from outside, never the reverse.
ALLOWED["evaluation"] = {"data", "features", "models", "training"}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "lifelongrec" and len(parts) > 1 and parts[1] != "_errors":
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_from_its_left(package):
    bad = {}
    for path in sorted((SRC / package).rglob("*.py")):
        wrong = imported_packages(path) - ALLOWED[package] - {package}
        if wrong:
            bad[str(path.relative_to(SRC))] = sorted(wrong)
    assert not bad, f"imports against the flow: {bad}"
