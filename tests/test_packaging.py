"""The package installs what it promises: pinned torch, a console script, public names."""

import importlib
import importlib.metadata as md
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pinned_torch_is_installed():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"torch==2\.13\.0"', pyproject), "torch must be pinned to 2.13.0"
    assert md.version("torch").split("+")[0] == "2.13.0"


def test_console_script_declared():
    eps = [e for e in md.entry_points(group="console_scripts") if e.name == "lifelongrec"]
    assert eps and eps[0].value == "lifelongrec.cli:main"


@pytest.mark.parametrize(
    "module", ["lifelongrec", "lifelongrec.data", "lifelongrec.models", "lifelongrec.evaluation"]
)
def test_all_names_exist(module):
    mod = importlib.import_module(module)
    assert mod.__all__, f"{module} exports nothing"
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which it lacks"


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest -q -n 2"
    )
    assert test_cmd in readme and test_cmd in ci
