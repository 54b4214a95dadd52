"""ModelRegistry: versions on disk, champion pointer, rollback, atomicity, corruption."""

from __future__ import annotations

import doctest
import fcntl
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from lifelongrec import NotFittedError, ParameterError, UnknownIdError
from lifelongrec.data import make_events
from lifelongrec.models import EASE, ItemKNN, Popularity
from lifelongrec.registry import (
    CorruptVersionError,
    ModelRegistry,
    RegistryError,
    RegistryWarning,
    version_id,
)
from lifelongrec.registry import _registry as registry_module


def scores(model, users):
    return model.score_items(list(users))


@pytest.fixture(scope="module")
def models(split):
    train = split[0]
    return {
        "pop": Popularity().fit(train),
        "knn": ItemKNN().fit(train),
        "ease": EASE(l2=10.0).fit(train),
    }


@pytest.fixture
def reg(tmp_path):
    return ModelRegistry(tmp_path / "reg")


def probe_users(model):
    return list(model.user_ids_[:7]) + ["never-seen-user"]


# ------------------------------------------------------------------- register
def test_register_writes_a_manifest_and_loads_back_bitwise(reg, models):
    m = models["knn"]
    info = reg.register(
        m,
        window=(10, 20),
        metrics={"ndcg@10": np.float32(0.25), "n": np.int64(3)},
        data={"n_events": 700},
        tags={"run": "t1"},
    )
    assert info.version == "v000001" and info.status == "challenger"
    assert info.registered_as == "challenger" and info.parent is None
    assert info.model == "itemknn" and info.model_class.endswith("knn.ItemKNN")
    assert info.params == m.get_params()
    assert info.window == {"start": 10, "end": 20}
    assert info.metrics == {"ndcg@10": pytest.approx(0.25), "n": 3}
    assert info.data == {"n_events": 700} and info.tags == {"run": "t1"}
    manifest = json.loads((Path(info.path) / "manifest.json").read_text())
    # every model file is listed with its SHA-256, computed here independently
    import hashlib

    model_dir = Path(info.path) / "model"
    on_disk = {
        p.relative_to(model_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in model_dir.rglob("*")
        if p.is_file()
    }
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == on_disk
    assert set(on_disk) == {"arrays.npz", "model.json"}
    loaded = reg.load("v000001")
    users = probe_users(m)
    np.testing.assert_array_equal(scores(loaded, users), scores(m, users))
    assert [v.version for v in reg.versions()] == ["v000001"]
    assert reg.champion() is None


def test_ids_count_up_parents_and_lineage(reg, models):
    a = reg.register(models["pop"], window="week 1")
    b = reg.register(models["knn"], parent=a.version)
    c = reg.register(models["ease"], parent=3 - 1)  # a number is a version too
    assert (a.version, b.version, c.version) == ("v000001", "v000002", "v000003")
    assert a.window == {"label": "week 1"}
    assert reg.lineage("v000003") == ["v000003", "v000002", "v000001"]
    assert reg.lineage(1) == ["v000001"]
    assert [v.model for v in reg.versions()] == ["popularity", "itemknn", "ease"]


def test_register_as_champion_promotes_in_one_step(reg, models):
    info = reg.register(models["pop"], status="champion", reason="first")
    assert info.status == "champion" and reg.champion() == "v000001"
    (record,) = reg.history()
    assert record["action"] == "promote" and record["version"] == "v000001"
    assert record["previous"] is None and record["reason"] == "first"


def test_reopened_registry_sees_the_same_state(tmp_path, models):
    reg = ModelRegistry(tmp_path / "r")
    reg.register(models["pop"], status="champion")
    reg.register(models["knn"], parent=1)
    again = ModelRegistry(tmp_path / "r", create=False)
    assert again.champion() == "v000001"
    assert [v.version for v in again.versions()] == ["v000001", "v000002"]
    assert again.recovered_ == []


# ------------------------------------------------------ promotion and rollback
def test_promote_rollback_restores_the_earlier_version_exactly(reg, models):
    users = probe_users(models["pop"])
    at_registration = scores(models["pop"], users).copy()
    reg.register(models["pop"], status="champion")
    reg.register(models["knn"], parent=1)
    assert reg.promote("v000002", reason="better").status == "champion"
    assert reg.info(1).status == "retired"
    assert not np.array_equal(scores(reg.load_champion(), users), at_registration)
    back = reg.rollback(reason="oops")
    assert back.version == "v000001" and reg.champion() == "v000001"
    assert json.loads((reg.root / "CHAMPION").read_text())["version"] == "v000001"
    restored = scores(reg.load_champion(), users)
    assert restored.dtype == at_registration.dtype
    assert restored.tobytes() == at_registration.tobytes()  # bitwise
    assert [(r["action"], r["version"], r["previous"]) for r in reg.history()] == [
        ("promote", "v000001", None),
        ("promote", "v000002", "v000001"),
        ("rollback", "v000001", "v000002"),
    ]
    assert reg.history()[-1]["reason"] == "oops"


def test_rollback_walks_back_the_stack_of_champions(reg, models):
    for _ in range(3):
        reg.register(models["pop"])
    for v in (1, 2, 3):
        reg.promote(v)
    assert reg.rollback().version == "v000002"
    assert reg.rollback().version == "v000001"  # not back to v000003
    with pytest.raises(RegistryError, match="first champion"):
        reg.rollback()
    assert reg.champion() == "v000001"


def test_rollback_to_any_version(reg, models):
    for _ in range(4):
        reg.register(models["pop"])
    for v in (1, 2, 3):
        reg.promote(v)
    assert reg.rollback(to="v000001").version == "v000001"
    with pytest.raises(RegistryError):  # the champions after v000001 were dropped
        reg.rollback()
    reg.promote(2)
    # a version that was never champion: put on top, the default rollback undoes it
    assert reg.rollback(to=4).version == "v000004"
    assert reg.info(4).status == "champion"
    assert reg.rollback().version == "v000002"


def test_promoting_the_champion_again_changes_nothing(reg, models):
    reg.register(models["pop"], status="champion")
    before = (reg.root / "CHAMPION").read_text()
    assert reg.promote("v000001").status == "champion"
    assert (reg.root / "CHAMPION").read_text() == before
    assert len(reg.history()) == 1


def test_statuses(reg, models):
    reg.register(models["pop"], status="champion")
    reg.register(models["knn"], status="rejected")
    reg.register(models["ease"])
    reg.promote(3)
    assert {v.version: v.status for v in reg.versions()} == {
        "v000001": "retired",
        "v000002": "rejected",
        "v000003": "champion",
    }


# ---------------------------------------------------------------- error paths
def test_rollback_and_load_champion_on_an_empty_registry(reg):
    with pytest.raises(RegistryError, match="no version was ever promoted"):
        reg.rollback()
    with pytest.raises(RegistryError, match="no champion yet"):
        reg.load_champion()
    assert reg.champion() is None and reg.versions() == [] and reg.history() == []


def test_unknown_versions(reg, models):
    reg.register(models["pop"])
    for call in (reg.info, reg.load, reg.verify, reg.promote, reg.lineage):
        with pytest.raises(UnknownIdError, match="v000007.*holds 1 version"):
            call("v000007")
    with pytest.raises(UnknownIdError):
        reg.rollback(to=9)
    with pytest.raises(UnknownIdError):
        reg.register(models["pop"], parent="v000005")
    assert [v.version for v in reg.versions()] == ["v000001"]


@pytest.mark.parametrize(
    "bad",
    ["v1", "latest", "", 0, -3, 1.5, True, None, "v0000001", "²", "٣", "v00000²", "1²"],
)
def test_bad_version_ids(bad):
    # "²".isdigit() and "٣".isdigit() are true, but int() refuses the first: only ASCII
    # digits make a version number (this was a 500 through POST /models/%C2%B2/promote)
    with pytest.raises(ParameterError, match="version"):
        version_id(bad)


def test_version_id_forms():
    assert version_id("v000012") == version_id(12) == version_id("12") == "v000012"
    assert version_id(np.int64(3)) == "v000003"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"status": "live"}, "status"),
        ({"window": (5, 1)}, "window"),
        ({"window": (1.5, 2)}, "window"),
        ({"window": " "}, "window"),
        ({"window": (1, 2, 3)}, "window"),
        ({"metrics": [1, 2]}, "metrics"),
        ({"metrics": {"x": float("nan")}}, "metrics"),
        ({"metrics": {"x": object()}}, "metrics"),
        ({"data": "1000 events"}, "data"),
        ({"tags": {1: {2}}}, "tags"),
        ({"decision": 3}, "decision"),
        ({"reason": 5}, "reason"),
        ({"parent": "first"}, "version"),
    ],
)
def test_register_rejects_bad_arguments(reg, models, kwargs, name):
    with pytest.raises(ParameterError, match=repr(name)):
        reg.register(models["pop"], **kwargs)
    assert reg.versions() == []
    assert list((reg.root / "versions").iterdir()) == []


def test_register_rejects_what_is_not_a_fitted_model(reg):
    with pytest.raises(ParameterError, match="Recommender"):
        reg.register({"weights": [1]})
    with pytest.raises(NotFittedError, match="unfitted ItemKNN"):
        reg.register(ItemKNN())
    assert reg.versions() == []


def test_promote_and_rollback_reason_must_be_text(reg, models):
    reg.register(models["pop"], status="champion")
    with pytest.raises(ParameterError, match="reason"):
        reg.promote(1, reason=None)
    with pytest.raises(ParameterError, match="reason"):
        reg.rollback(reason=3)


def test_opening_what_is_not_a_registry(tmp_path):
    with pytest.raises(RegistryError, match="not a model registry"):
        ModelRegistry(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(RegistryError, match="not empty and not a model registry"):
        ModelRegistry(tmp_path / "busy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RegistryError, match="not a folder"):
        ModelRegistry(tmp_path / "file")
    ModelRegistry(tmp_path / "new")
    (tmp_path / "new" / "registry.json").write_text('{"format_version": 99}')
    with pytest.raises(RegistryError, match="format version 99"):
        ModelRegistry(tmp_path / "new")
    (tmp_path / "new" / "registry.json").write_text("{")
    with pytest.raises(CorruptVersionError, match="registry marker"):
        ModelRegistry(tmp_path / "new")


@pytest.mark.parametrize("bad", [-1, float("inf"), "10", True])
def test_bad_lock_timeout(tmp_path, bad):
    with pytest.raises(ParameterError, match="lock_timeout"):
        ModelRegistry(tmp_path / "r", lock_timeout=bad)


def test_a_composite_model_keeps_its_nested_files(reg, split):
    from lifelongrec.models import Hybrid

    model = Hybrid(component_params=[{"l2": 10.0}, {}]).fit(split[0])
    info = reg.register(model)
    assert "component-0-ease/arrays.npz" in info.files
    users = probe_users(model)
    assert scores(reg.load(1), users).tobytes() == scores(model, users).tobytes()
    nested = Path(info.path) / "model" / "component-1-content" / "model.json"
    nested.write_text(nested.read_text() + " ")
    with pytest.raises(CorruptVersionError, match="component-1-content/model.json"):
        reg.verify(1)


# ------------------------------------------------------------------ corruption
def test_a_changed_file_is_detected_and_never_loaded_or_promoted(reg, models):
    reg.register(models["pop"], status="champion")
    info = reg.register(models["knn"])
    reg.verify(info.version)  # intact
    npz = Path(info.path) / "model" / "arrays.npz"
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    for call in (reg.verify, reg.load, reg.promote):
        with pytest.raises(CorruptVersionError, match=r"v000002.*changed.*arrays\.npz"):
            call(info.version)
    with pytest.raises(CorruptVersionError):
        reg.rollback(to=info.version)
    assert reg.champion() == "v000001"


def test_missing_and_unexpected_files_are_named(reg, models):
    info = reg.register(models["knn"])
    model_dir = Path(info.path) / "model"
    (model_dir / "model.json").unlink()
    (model_dir / "stray.bin").write_bytes(b"x")
    with pytest.raises(CorruptVersionError, match=r"missing \['model.json'\].*unexpected"):
        reg.verify(info.version)


def test_a_corrupt_champion_is_not_loaded(reg, models):
    info = reg.register(models["knn"], status="champion")
    (Path(info.path) / "model" / "model.json").write_text("{}")
    with pytest.raises(CorruptVersionError, match="model.json"):
        reg.load_champion()


def test_broken_manifests_are_not_listed(reg, models):
    for _ in range(4):
        reg.register(models["pop"])
    vdir = reg.root / "versions"
    (vdir / "v000001" / "manifest.json").write_text('{"id": "v000001", "par')
    (vdir / "v000002" / "manifest.json").unlink()
    manifest = json.loads((vdir / "v000003" / "manifest.json").read_text())
    del manifest["files"]
    (vdir / "v000003" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(RegistryWarning, match="skipped"):
        listed = reg.versions()
    assert [v.version for v in listed] == ["v000004"]
    with pytest.raises(CorruptVersionError, match="unreadable"):
        reg.info(1)
    with pytest.raises(CorruptVersionError, match="missing"):
        reg.load(2)
    with pytest.raises(CorruptVersionError, match=r"lacks \['files'\]"):
        reg.info(3)
    with pytest.raises(CorruptVersionError):
        reg.promote(3)
    manifest["files"] = {}
    manifest["id"] = "v000009"
    (vdir / "v000003" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptVersionError, match="names version 'v000009'"):
        reg.info(3)


def test_a_corrupt_champion_pointer_is_reported(reg, models):
    reg.register(models["pop"], status="champion")
    (reg.root / "CHAMPION").write_text("v000001")
    with pytest.raises(CorruptVersionError, match="champion pointer"):
        reg.champion()


def test_history_with_a_cut_last_line_and_a_bad_middle_line(reg, models):
    reg.register(models["pop"], status="champion")
    reg.register(models["pop"])
    reg.promote(2)
    log = reg.root / "history.jsonl"
    good = log.read_text()
    log.write_text(good + '{"time": "2026')
    with pytest.warns(RegistryWarning, match="incomplete last line"):
        assert len(reg.history()) == 2
    log.write_text("not json\n" + good)
    with pytest.raises(CorruptVersionError, match="line 1"):
        reg.history()


# ---------------------------------------------------------------- atomicity
def test_a_failure_mid_register_leaves_nothing_behind(reg, models, monkeypatch):
    model = ItemKNN().fit(make_events(["a", "a", "b"], ["x", "y", "y"], [1, 2, 3]))
    reg.register(models["pop"], status="champion")

    def half_save(path):
        path = Path(path)
        path.mkdir(parents=True)
        (path / "arrays.npz").write_bytes(b"half of the arrays")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", half_save)
    with pytest.raises(OSError, match="disk full"):
        reg.register(model, status="champion")
    assert [v.version for v in reg.versions()] == ["v000001"]
    assert reg.champion() == "v000001"
    assert sorted(p.name for p in (reg.root / "versions").iterdir()) == ["v000001"]
    monkeypatch.undo()
    again = ModelRegistry(reg.root)
    assert again.register(model).version == "v000002"
    again.verify(2)


def test_a_process_killed_mid_register_leaves_no_version(tmp_path):
    """A real crash: the child process dies (os._exit) after the model files are written,
    before the version is renamed into place. A reopened registry lists nothing new,
    removes the leftover and goes on with the next id."""
    root = tmp_path / "reg"
    child = textwrap.dedent(
        f"""
        import os
        from lifelongrec.data import make_events
        from lifelongrec.models import Popularity
        from lifelongrec.registry import ModelRegistry, _registry

        reg = ModelRegistry({str(root)!r})
        m = Popularity().fit(make_events(["a", "b"], ["x", "y"], [1, 2]))
        reg.register(m, status="champion")
        # a crash halfway through the manifest write: the one durable-write function dies
        real = _registry._write_durable

        def die(path, text):
            if path.name == "manifest.json":
                real(path.with_name("manifest.json.part"), text[: len(text) // 2])
                os._exit(17)
            real(path, text)

        _registry._write_durable = die
        reg.register(m, status="champion")
        """
    )
    res = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert res.returncode == 17, res.stderr
    leftovers = [p.name for p in (root / "versions").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-v000002")
    with pytest.warns(RegistryWarning, match="leftover"):
        reg = ModelRegistry(root)
    assert reg.recovered_ == [f"versions/{leftovers[0]}"]
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["v000001"]
    assert [v.version for v in reg.versions()] == ["v000001"]
    assert reg.champion() == "v000001"
    reg.load_champion()
    assert reg.register(reg.load(1)).version == "v000002"


def test_a_stray_version_folder_never_lets_an_id_be_reused(reg, models):
    reg.register(models["pop"])
    (reg.root / "versions" / "v000005").mkdir()  # e.g. a copy gone wrong
    with pytest.warns(RegistryWarning):
        assert [v.version for v in reg.versions()] == ["v000001"]
    assert reg.register(models["pop"]).version == "v000006"


def test_the_champion_pointer_is_replaced_not_rewritten(reg, models, monkeypatch):
    """A crash while writing the new pointer leaves the old one whole."""
    reg.register(models["pop"], status="champion")
    reg.register(models["knn"])

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(registry_module.os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        reg.promote(2)
    monkeypatch.undo()
    assert reg.champion() == "v000001"
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp-")]
    assert len(reg.history()) == 1


# ---------------------------------------------------------------- concurrency
def test_writers_wait_for_the_lock_and_time_out(tmp_path, models):
    reg = ModelRegistry(tmp_path / "r", lock_timeout=0.1)
    fd = os.open(reg.root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another writer
        with pytest.raises(RegistryError, match="lock"):
            reg.register(models["pop"])
        assert reg.versions() == []  # readers need no lock
    finally:
        os.close(fd)
    assert reg.register(models["pop"]).version == "v000001"


def test_opening_never_waits_for_a_writer(tmp_path, models):
    reg = ModelRegistry(tmp_path / "r", lock_timeout=0.1)
    reg.register(models["pop"], status="champion")
    busy = reg.root / "versions" / ".tmp-v000002-123-abc"  # a writer's folder, in use
    busy.mkdir()
    fd = os.open(reg.root / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        reader = ModelRegistry(reg.root, create=False, lock_timeout=30)
        assert reader.recovered_ == [] and busy.is_dir()  # not taken for a leftover
        assert reader.champion() == "v000001"
    finally:
        os.close(fd)
    with pytest.warns(RegistryWarning):
        assert ModelRegistry(reg.root).recovered_ == ["versions/.tmp-v000002-123-abc"]


def test_a_folder_holding_only_a_lock_file_becomes_a_registry(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".lock").touch()  # another process is creating it
    assert ModelRegistry(tmp_path / "r").versions() == []


def test_concurrent_writers_get_distinct_versions(tmp_path, models):
    root = tmp_path / "r"
    ModelRegistry(root)
    errors = []

    def work():
        try:
            own = ModelRegistry(root)  # like another process: its own object and lock
            for _ in range(3):
                own.register(models["pop"])
                own.promote(own.versions()[-1].version)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reg = ModelRegistry(root)
    assert [v.version for v in reg.versions()] == [f"v{i:06d}" for i in range(1, 10)]
    for v in reg.versions():
        reg.verify(v.version)
    assert len(reg.history()) >= 3


def test_docstring_examples_run():
    from lifelongrec.registry import _continuous, _gate

    for module in (registry_module, _gate, _continuous):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted >= 2 and result.failed == 0, module.__name__


# ------------------------------------------------------------------ rewrite
def test_rewrite_replaces_the_files_and_keeps_the_version(reg, models, tmp_path):
    m = models["knn"]
    v1 = reg.register(m, window=(1, 2), metrics={"ndcg@10": 0.3}, status="champion")
    v2 = reg.register(models["knn"], parent=v1.version, window=(2, 3))
    smaller = ItemKNN().fit(make_events(["a", "b"], ["x", "y"], [1, 2]))
    before = reg.info(v2.version)
    info = reg.rewrite(v2.version, smaller, reason="erased 1 user(s) on request")
    assert info.version == v2.version and info.parent == v1.version
    assert info.window == before.window and info.created_at == before.created_at
    assert info.files != before.files
    reg.verify(v2.version)
    assert sorted(reg.load(v2.version).user_ids_) == ["a", "b"]
    assert reg.saved_user_ids(v2.version) == ["a", "b"]
    folder = Path(info.path)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model-r1"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rewrites"][0]["reason"] == "erased 1 user(s) on request"
    reg.rewrite(v2.version, m, reason="again")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model-r2"]
    assert reg.champion() == v1.version and reg.history()[-1]["version"] == v1.version
    np.testing.assert_allclose(scores(reg.load(v2.version), ["u1"]), scores(m, ["u1"]))


def test_rewrite_refuses_another_model_class_and_bad_arguments(reg, models):
    v = reg.register(models["knn"])
    with pytest.raises(ParameterError, match="model"):
        reg.rewrite(v.version, models["pop"], reason="x")
    with pytest.raises(ParameterError, match="model"):
        reg.rewrite(v.version, ItemKNN(), reason="x")
    with pytest.raises(ParameterError, match="reason"):
        reg.rewrite(v.version, models["knn"], reason="")
    with pytest.raises(UnknownIdError):
        reg.rewrite("v000009", models["knn"], reason="x")
    reg.verify(v.version)


def test_a_rewrite_interrupted_before_the_manifest_leaves_the_old_version(reg, models, monkeypatch):
    v = reg.register(models["knn"])
    folder = Path(v.path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(registry_module, "_replace_durable", crash)
    with pytest.raises(OSError, match="disk full"):
        reg.rewrite(v.version, models["knn"], reason="x")
    monkeypatch.undo()
    assert (folder / "model-r1").is_dir()  # the new files, never pointed at
    reg.verify(v.version)
    with pytest.warns(RegistryWarning, match="model-r1"):
        again = ModelRegistry(reg.root)  # opening removes the leftover
    assert "versions/v000001/model-r1" in again.recovered_
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model"]
    again.verify(v.version)


def test_a_manifest_naming_a_strange_model_folder_is_corrupt(reg, models):
    v = reg.register(models["knn"])
    path = Path(v.path) / "manifest.json"
    manifest = json.loads(path.read_text())
    for bad in ("../../elsewhere", "model-x", 5):
        path.write_text(json.dumps({**manifest, "model_dir": bad}))
        with pytest.raises(CorruptVersionError, match="model folder"):
            reg.load(v.version)


def test_saved_user_ids_of_a_broken_version(reg, models):
    v = reg.register(models["knn"])
    (Path(v.path) / "model" / "arrays.npz").write_bytes(b"not a zip")
    with pytest.raises(CorruptVersionError, match="user ids"):
        reg.saved_user_ids(v.version)
