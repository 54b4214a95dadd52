"""``lifelongrec models``: names (no subcommand) and the registry commands, end to end
through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lifelongrec.cli import app
from lifelongrec.data import make_events
from lifelongrec.models import MODELS, ItemKNN, Popularity
from lifelongrec.registry import ModelRegistry

runner = CliRunner()
EVENTS = make_events(["a", "a", "b", "b", "c"], ["x", "y", "x", "z", "y"], [1, 2, 3, 4, 5])


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


@pytest.fixture
def reg(tmp_path):
    """v1 popularity (champion, then retired), v2 itemknn (champion), v3 rejected."""
    reg = ModelRegistry(tmp_path / "reg")
    pop = Popularity().fit(EVENTS)
    knn = ItemKNN().fit(EVENTS)
    reg.register(pop, window=(1, 5), metrics={"ndcg@10": 0.2}, status="champion")
    reg.register(knn, parent=1, window=(1, 5), metrics={"ndcg@10": 0.3, "champion_ndcg@10": 0.2})
    reg.promote(2, reason="better")
    reg.register(pop, parent=2, window="late", metrics={"ndcg@10": 0.1}, status="rejected")
    return reg


def test_models_without_a_subcommand_lists_model_names():
    res = invoke("models")
    assert res.exit_code == 0, res.output
    for name in MODELS:
        assert name in res.stdout


def test_list_text_and_json(reg):
    res = invoke("models", "list", "--registry", reg.root)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == [
        "version",
        "status",
        "model",
        "parent",
        "created",
        "window",
        "ndcg@10",
    ]
    assert lines[2].split()[:3] == ["v000001", "retired", "popularity"]
    assert lines[3].split()[:4] == ["v000002", "champion", "itemknn", "v000001"]
    assert "0.3000" in lines[3] and "1-5" in lines[3]
    assert lines[4].split()[1] == "rejected" and "late" in lines[4]
    res = invoke("models", "list", "--registry", reg.root, "--json")
    out = json.loads(res.stdout)
    assert [v["version"] for v in out] == ["v000001", "v000002", "v000003"]
    assert out[1]["status"] == "champion" and out[1]["metrics"]["ndcg@10"] == 0.3


def test_list_empty_registry(tmp_path):
    ModelRegistry(tmp_path / "empty")
    res = invoke("models", "list", "--registry", tmp_path / "empty")
    assert res.exit_code == 0 and "no versions" in res.stdout
    res = invoke("models", "list", "--registry", tmp_path / "empty", "--json")
    assert json.loads(res.stdout) == []


def test_show(reg):
    res = invoke("models", "show", "3", "--registry", reg.root, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["version"] == "v000003" and out["lineage"] == ["v000003", "v000002", "v000001"]
    assert out["window"] == {"label": "late"} and out["status"] == "rejected"
    res = invoke("models", "show", "v000002", "--registry", reg.root)
    assert "lineage: v000002 <- v000001" in res.stdout
    assert "status: champion" in res.stdout and "model: itemknn" in res.stdout
    assert "files: 2 files" in res.stdout


def test_promote_and_rollback(reg):
    res = invoke("models", "promote", "v000003", "--registry", reg.root, "--reason", "manual")
    assert res.exit_code == 0, res.output
    assert "v000003 is now the champion (was v000002)" in res.stdout
    assert reg.champion() == "v000003" and reg.history()[-1]["reason"] == "manual"
    res = invoke("models", "promote", "3", "--registry", reg.root)
    assert "already the champion" in res.stdout
    res = invoke("models", "rollback", "--registry", reg.root)
    assert res.exit_code == 0, res.output
    assert "v000002 is the champion again (was v000003)" in res.stdout
    res = invoke("models", "rollback", "--to", "1", "--registry", reg.root, "--json")
    out = json.loads(res.stdout)
    assert out["version"] == "v000001" and out["previous"] == "v000002"
    assert reg.champion() == "v000001"
    assert [r["action"] for r in reg.history()] == [
        "promote",
        "promote",
        "promote",
        "rollback",
        "rollback",
    ]


def test_the_registry_can_come_from_the_environment(reg):
    res = invoke("models", "list", "--json", env={"LIFELONGREC_REGISTRY": str(reg.root)})
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == 3


def test_verify(reg):
    res = invoke("models", "verify", "2", "--registry", reg.root)
    assert res.exit_code == 0 and "v000002: files match" in res.stdout
    npz = Path(reg.info(2).path) / "model" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    res = invoke("models", "verify", "2", "--registry", reg.root)
    assert res.exit_code == 2 and "arrays.npz" in res.output
    res = invoke("models", "promote", "2", "--registry", reg.root)
    assert res.exit_code == 2 and "do not match the manifest" in res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("show", "v000009"), "unknown version id"),
        (("promote", "9"), "unknown version id"),
        (("rollback", "--to", "v000009"), "unknown version id"),
        (("show", "latest"), "parameter 'version'"),
    ],
)
def test_user_errors_exit_2(reg, args, needle):
    res = invoke("models", *args, "--registry", reg.root)
    assert res.exit_code == 2
    assert needle in res.output


def test_rollback_past_the_first_champion_exits_2(tmp_path):
    r = ModelRegistry(tmp_path / "r")
    r.register(Popularity().fit(EVENTS), status="champion")
    res = invoke("models", "rollback", "--registry", r.root)
    assert res.exit_code == 2 and "first champion" in res.output
    assert r.champion() == "v000001"


def test_a_folder_that_is_no_registry_is_not_created(tmp_path):
    res = invoke("models", "list", "--registry", tmp_path / "nowhere")
    assert res.exit_code == 2 and "not a model registry" in res.output
    assert not (tmp_path / "nowhere").exists()


def test_the_registry_option_is_required():
    res = runner.invoke(app, ["models", "list"], env={"LIFELONGREC_REGISTRY": ""})
    assert res.exit_code == 2 and "--registry" in res.output
