"""The service's parts through their public faces: settings grouped by concern (flat and
grouped forms, old flat service.json files), model capabilities as Protocols, the
learner as an object with its own lifecycle, and the app's lifespan."""

import json

import pytest

from lifelongrec import ParameterError
from lifelongrec.models import ItemKNN, get_model
from lifelongrec.serving import (
    Learner,
    LearnerSettings,
    OnlineBuffering,
    RecommenderService,
    ServiceConfig,
    VectorModel,
    create_app,
)


# ------------------------------------------------------------------- settings
def test_settings_are_grouped_and_read_by_flat_names_too():
    cfg = ServiceConfig()
    assert isinstance(cfg.learner, LearnerSettings)
    assert cfg.learner.batch == cfg.learner_batch == 256
    assert cfg.gate.min_users == cfg.gate_min_users == 20
    assert cfg.index.max_delta == cfg.index_max_delta == 10_000
    assert cfg.users.max_users == cfg.max_users == 100_000
    assert cfg.limits.max_batch == cfg.max_batch == 10_000
    assert cfg.store.event_types is None and cfg.event_types is None
    with pytest.raises(AttributeError):
        cfg.no_such_setting  # noqa: B018
    gate = cfg.promotion_gate()
    assert (gate.metric, gate.min_users) == ("ndcg@10", 20)


def test_flat_grouped_and_mixed_dicts_give_the_same_settings():
    flat = ServiceConfig.from_dict({"learner_batch": 64, "max_users": 5, "hnsw_m": 8})
    grouped = ServiceConfig.from_dict(
        {"learner": {"batch": 64}, "users": {"max_users": 5}, "index": {"hnsw_m": 8}}
    )
    mixed = ServiceConfig.from_dict({"learner": {"batch": 64}, "max_users": 5, "hnsw_m": 8})
    assert flat == grouped == mixed
    assert ServiceConfig.from_dict(flat.to_dict()) == flat  # flat round trip
    assert ServiceConfig.from_dict(flat.to_dict(grouped=True)) == flat
    assert flat.to_dict()["learner_batch"] == 64 and "learner" not in flat.to_dict()
    assert flat.to_dict(grouped=True)["learner"]["batch"] == 64


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"learner": {"batch": 0}}, "learner_batch"),  # errors name the flat setting
        ({"gate": {"holdout_max_events": 5}}, "holdout_max_events"),
        ({"learner": {"nope": 1}}, "config"),
        ({"learner": 5}, "learner"),
        ({"learner_batch": 8, "learner": {"batch": 8}}, "learner_batch"),  # given twice
        ({"users": {"max_users": -1}}, "max_users"),
    ],
)
def test_bad_grouped_settings_name_the_setting(settings, name):
    with pytest.raises(ParameterError) as err:
        ServiceConfig.from_dict(settings)
    assert err.value.name == name


def test_an_old_flat_service_json_is_read_and_saved_flat(home, service_config):
    saved = json.loads((home / "service.json").read_text())
    assert "learner_batch" in saved and "learner" not in saved  # flat, as always
    (home / "service.json").write_text(json.dumps(service_config))  # an older home's file
    with RecommenderService.open(home) as service:
        assert service.config.learner.batch == service_config["learner_batch"]
        assert service.config.learner.background is False
        assert service.health()["config"]["learner_batch"] == service_config["learner_batch"]
    again = json.loads((home / "service.json").read_text())
    assert again["learner_batch"] == service_config["learner_batch"]


# --------------------------------------------------------------- capabilities
def test_capabilities_are_protocols_checked_on_the_model():
    tiny = get_model("sequential", dim=8, n_heads=1, n_layers=1, max_len=4, text_encoder=None)
    assert isinstance(tiny, VectorModel) and isinstance(tiny, OnlineBuffering)
    assert not isinstance(ItemKNN(), VectorModel)
    assert not isinstance(ItemKNN(), OnlineBuffering)


# -------------------------------------------------------------------- learner
def test_the_learner_is_an_object_with_its_own_lifecycle(service):
    learner = service.learner
    assert isinstance(learner, Learner) and not learner.running
    assert learner.cursor == service.store.last_seq and learner.lag() == 0
    assert learner.line_version == service.live_version and learner.challenger is None
    user = sorted(service.live_model.known_users())[0]
    service.ingest({"user_id": user, "item_id": "i000001", "timestamp": 2_000_000_000})
    assert learner.lag() == 1
    rounds = learner.rounds
    assert service.learn_step() and learner.rounds == rounds + 1
    assert learner.cursor == service.store.last_seq
    with learner.lock:
        assert learner.trainer.user_rows([user])[0] >= 0
    learner.start()
    try:
        assert learner.running
        learner.start()  # idempotent
        service.ingest({"user_id": user, "item_id": "i000002", "timestamp": 2_000_000_001})
        assert learner.wait_round(timeout=600)  # a round that read the event
        assert learner.cursor == service.store.last_seq
    finally:
        learner.stop()
    assert not learner.running


# -------------------------------------------------------------------- lifespan
def test_an_app_that_owns_the_service_starts_and_closes_it(home, service_config, keys):
    from fastapi.testclient import TestClient

    cfg = {**service_config, "background": True}
    service = RecommenderService.open(home, config=cfg, start=False)
    assert not service.learner.running  # left to the app
    with TestClient(create_app(service, keys, own_service=True)) as client:
        assert service.learner.running
        r = client.get("/health", headers={"X-API-Key": "read-key-0123456789"})
        assert r.json()["learner_running"] is True
    assert not service.learner.running and service.store.closed
    service.close()  # closing again is fine


def test_an_app_around_a_service_it_does_not_own_leaves_it_alone(service, keys):
    from fastapi.testclient import TestClient

    with TestClient(create_app(service, keys)) as client:
        assert client.get("/health").status_code == 200
        assert not service.learner.running  # background=False: nobody starts it
    assert not service.store.closed  # the test still drives it
    assert service.recommend("someone", k=3)["cold_start"]


def test_the_first_champion_holds_the_whole_catalogue(tmp_path, service_config):
    """Catalogue items without events yet are in the first registered version, so a
    start (and the learner process) need not admit them again."""
    import dataclasses

    import pandas as pd

    from lifelongrec.data import make_items, synthetic

    ds = synthetic(n_events=1_500, seed=0)
    extra = make_items(["never-seen"], ["A thing nobody touched"], [["misc"]], [{}])
    ds = dataclasses.replace(ds, items=pd.concat([ds.items, extra], ignore_index=True))
    assert "never-seen" not in set(ds.events["item_id"])
    with RecommenderService.open(tmp_path / "h", data=ds, config=service_config) as s:
        saved = s.registry.load(s.registry.champion())
        assert "never-seen" in saved.known_items()
        assert set(saved.known_items()) == set(ds.items["item_id"])
