"""Error paths of the service, its settings, its keys and the serve command."""

import json
import os
import stat

import numpy as np
import pytest
from typer.testing import CliRunner

from lifelongrec import DataError, ParameterError, UnknownIdError
from lifelongrec.cli import app, serve_banner
from lifelongrec.serving import (
    KeyRing,
    LearnerSettings,
    RecommenderService,
    ServiceConfig,
    ServiceError,
)


# ------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"learner_batch": 0}, "learner_batch"),
        ({"max_batch": "many"}, "max_batch"),
        ({"challenger_every": -1}, "challenger_every"),
        ({"background": "yes"}, "background"),
        ({"model_params": [1, 2]}, "model_params"),
        ({"gate_metric": "accuracy"}, "gate_metric"),
        ({"gate_tolerance": -0.5}, "gate_tolerance"),
        ({"gate": {"tolerance": float("nan")}}, "gate_tolerance"),
        ({"learner": {"batch": True}}, "learner_batch"),
        ({"index_max_delta": 0}, "index_max_delta"),
        ({"hnsw_m": 1}, "hnsw_m"),
        ({"hnsw_exact_head": -1}, "hnsw_exact_head"),
        ({"background": 1}, "background"),
        ({"learner_share": True}, "learner_share"),
        ({"learner_priority": "high"}, "learner_priority"),
        ({"learner": {"priority": 10}}, "learner_priority"),
        ({"challenger_min_seconds": float("nan")}, "challenger_min_seconds"),
        ({"synthetic_events": 0}, "synthetic_events"),
        ({"no_such_setting": 1}, "config"),
        ({"learner_share": 0}, "learner_share"),
        ({"learner_share": 1.5}, "learner_share"),
        ({"challenger_min_seconds": -1}, "challenger_min_seconds"),
        ({"holdout_max_events": 10, "holdout_events": 100}, "holdout_max_events"),
        ({"gate_min_users": 0}, "gate_min_users"),
        ({"gate_min_items": 1.5}, "gate_min_items"),
        ({"max_users": -1}, "max_users"),
        ({"max_users": True}, "max_users"),
        ({"rehydrate_events": 0}, "rehydrate_events"),
        ({"event_types": "view"}, "event_types"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["view", ""]}, "event_types"),
        ({"event_types": ["view", 3]}, "event_types"),
        ({"event_types": ["x" * 65]}, "event_types"),
        ({"store_url": "mysql://127.0.0.1/test"}, "store_url"),
        ({"store_url": "events.sqlite"}, "store_url"),
        ({"store": {"url": 5}}, "store_url"),
        ({"bus_url": "nats://127.0.0.1:4222"}, "bus_url"),
        ({"bus_url": ""}, "bus_url"),
    ],
)
def test_bad_settings_name_the_setting(settings, name):
    with pytest.raises(ParameterError) as err:
        ServiceConfig.from_dict(settings)
    assert err.value.name == name


def test_settings_messages_are_the_shared_ones_under_the_flat_name():
    cases = [
        ({"learner_batch": 0}, "'learner_batch' must be an integer >= 1; got 0"),
        ({"learner_share": 1.5}, "'learner_share' must be a number in (0, 1]; got 1.5"),
        ({"background": "yes"}, "'background' must be True or False; got 'yes'"),
        ({"learner_priority": "low"}, "'learner_priority' must be one of"),
        ({"max_users": np.int64(5)}, "'max_users' must be an integer >= 0; got"),  # JSON-ready
        ({"challenger_min_seconds": -1}, "'challenger_min_seconds' must be a finite number >= 0"),
    ]
    for settings, message in cases:
        with pytest.raises(ParameterError) as err:
            ServiceConfig.from_dict(settings)
        assert message in str(err.value)
    # the same bounds as before: open and closed ends, zero where it means "off"
    ok = {
        "learner_share": 1,
        "challenger_min_seconds": 0,
        "challenger_every": 0,
        "max_users": 0,
        "hnsw_exact_head": 0,
        "hnsw_m": 2,
        "event_types": ("view",),
        "gate_tolerance": 0.5,
    }
    config = ServiceConfig.from_dict(ok)
    config.check_params()
    assert config.validate() is config
    LearnerSettings(share=0.25).check_params()
    with pytest.raises(ParameterError, match="'learner_share'"):
        LearnerSettings(share=0).validate()


def test_open_needs_data_or_a_champion(tmp_path):
    with pytest.raises(ServiceError, match="no champion model yet; start once with data"):
        RecommenderService.open(tmp_path / "empty", config={"background": False})
    assert not (tmp_path / "empty" / "service.json").exists()  # nothing to shadow a retry
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="a folder"):
        RecommenderService.open(tmp_path / "file")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "service.json").write_text("{oops")
    with pytest.raises(DataError, match="service.json.*not valid JSON"):
        RecommenderService.open(tmp_path / "bad")
    with pytest.raises(ParameterError, match="ServiceConfig or a dict"):
        RecommenderService.open(tmp_path / "x", config=42)


# -------------------------------------------------------------------- service
def test_service_input_errors(service):
    user = service.live_model.known_users()[0]
    n0 = service.store.n_events
    ev = {"user_id": user, "item_id": "i000001", "timestamp": 2_000_000_000}
    with pytest.raises(DataError, match="at most 500 events"):
        service.ingest([ev] * 501)
    with pytest.raises(DataError, match="event_ids and events differ"):
        service.ingest([ev, ev], event_ids=["a"])
    with pytest.raises(DataError, match="timestamp"):
        service.ingest([ev, {**ev, "timestamp": "soon"}])
    assert service.store.n_events == n0
    with pytest.raises(ParameterError, match="'k'"):
        service.recommend(user, k=0)
    with pytest.raises(ParameterError, match="'k'"):
        service.similar("i000001", k=True)
    with pytest.raises(UnknownIdError, match="unknown item id: .nope."):
        service.similar("nope")
    with pytest.raises(UnknownIdError, match="category"):
        service.recommend(user, category="nope")
    with pytest.raises(UnknownIdError, match="no events or state"):
        service.delete_user("nobody")


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"item_id": ""}, "item_id"),
        ({"item_id": 5}, "item_id"),
        ({"item_id": "x", "title": 3}, "title"),
        ({"item_id": "x", "categories": "shoes"}, "categories"),
        ({"item_id": "x", "categories": ["", "a"]}, "categories"),
        ({"item_id": "x", "attributes": ["price"]}, "attributes"),
    ],
)
def test_bad_items_name_the_field(service, item, field):
    n = service.store.n_items
    with pytest.raises(DataError) as err:
        service.upsert_item(item)
    assert err.value.column == field
    assert service.store.n_items == n


# ----------------------------------------------------------------------- keys
def test_keys_from_the_environment_and_their_errors():
    ring = KeyRing.from_env("abcdefgh12:read,write; zyxwvut987:read")
    assert ring.scopes_of("abcdefgh12") == {"read", "write"}
    assert ring.scopes_of("zyxwvut987") == {"read"}
    assert ring.scopes_of("abcdefgh1") is None and ring.scopes_of(None) is None
    with pytest.raises(DataError, match="entry 1.*no scopes"):
        KeyRing.from_env("abcdefgh12")
    with pytest.raises(DataError, match="entry 2.*unknown or missing key scope"):
        KeyRing.from_env("abcdefgh12:read;zyxwvut987:admin")
    with pytest.raises(DataError, match="too short"):
        KeyRing.from_env("short:read")
    with pytest.raises(DataError, match="holds no key"):
        KeyRing.from_env(" ; ")


def test_keys_file_created_once_private_and_read_back(tmp_path):
    ring = KeyRing.for_home(tmp_path, environ={})
    assert ring.created and len(ring.keys()) == 2
    path = tmp_path / "keys.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = KeyRing.for_home(tmp_path, environ={})
    assert not again.created and again.keys() == ring.keys()
    admin = next(k for k in ring.keys() if k["name"] == "admin")
    assert again.scopes_of(admin["key"]) == {"read", "write"}
    env = KeyRing.for_home(tmp_path, environ={"LIFELONGREC_API_KEYS": "abcdefgh12:read"})
    assert env.keys()[0]["key"] == "abcdefgh12"  # the environment wins


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{nope", "not valid JSON"),
        ('{"keys": []}', "no keys"),
        ('{"keys": [5]}', "not an object"),
        ('{"keys": [{"key": "abcdefgh12", "scopes": ["root"]}]}', "scope"),
    ],
)
def test_bad_keys_file(tmp_path, text, match):
    (tmp_path / "keys.json").write_text(text)
    with pytest.raises(DataError, match=match):
        KeyRing.for_home(tmp_path, environ={})


# ---------------------------------------------------------------------- serve
def test_serve_refuses_open_access_off_loopback(tmp_path):
    r = CliRunner().invoke(app, ["serve", "--home", str(tmp_path), "--open", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "loopback" in r.output


def test_serve_without_data_or_champion_fails_clearly(tmp_path):
    r = CliRunner().invoke(app, ["serve", "--home", str(tmp_path / "h"), "--port", "0"])
    assert r.exit_code == 2 and "start once with data" in r.output


def test_a_home_keeps_the_store_it_started_with(home, service_config):
    """A home whose models learned from its SQLite file is not opened on another store
    (their positions in the log would mean other events): the error names both."""
    url = "postgresql://127.0.0.1/test?schema=elsewhere"
    with pytest.raises(ParameterError, match="keeps its store") as err:
        RecommenderService.open(home, config={**service_config, "store_url": url})
    assert err.value.name == "store_url" and "elsewhere" in str(err.value)
    r = CliRunner().invoke(app, ["serve", "--home", str(home), "--store", url, "--port", "0"])
    assert r.exit_code == 2 and "keeps its store" in r.output


def test_serve_names_a_bad_store_url(tmp_path):
    r = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path / "h"), "--store", "mysql://x/y", "--port", "0"]
    )
    assert r.exit_code == 2 and "store_url" in r.output and "postgresql://" in r.output


def test_serve_names_a_bad_bus_url(tmp_path):
    r = CliRunner().invoke(
        app, ["serve", "--home", str(tmp_path / "h"), "--bus", "amqp://x", "--port", "0"]
    )
    assert r.exit_code == 2 and "bus_url" in r.output and "redis://" in r.output


def test_serve_rejects_an_unreadable_config(tmp_path):
    bad = tmp_path / "settings.json"
    bad.write_text("{")
    r = CliRunner().invoke(app, ["serve", "--home", str(tmp_path / "h"), "--config", str(bad)])
    assert r.exit_code == 2 and "--config" in r.output


def test_banner_says_where_to_point_a_browser_and_curl(tmp_path):
    ring = KeyRing.for_home(tmp_path, environ={})
    text = serve_banner("127.0.0.1", 8000, ring, "v000001")
    admin = next(k for k in ring.keys() if k["name"] == "admin")["key"]
    assert "http://127.0.0.1:8000/docs" in text
    assert f"curl -H 'X-API-Key: {admin}' http://127.0.0.1:8000/users/" in text
    assert "no API key needed" in serve_banner("::1", 9, KeyRing.open_access(), "v2")
    assert "http://[::1]:9/docs" in serve_banner("::1", 9, KeyRing.open_access(), "v2")
    json.dumps(ring.keys())  # printable


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ({"item_id": "x"}, "items"),
        ("x", "items"),
        ([{"item_id": "ok"}, {"item_id": ""}], "item_id"),
    ],
)
def test_bad_item_batches_name_the_field(service, items, field):
    n = service.store.n_items
    with pytest.raises(DataError) as err:
        service.upsert_items(items)
    assert err.value.column == field
    assert service.store.n_items == n  # nothing of the batch was written


def test_a_bad_wait_flag_is_refused(service):
    with pytest.raises(ParameterError, match="wait"):
        service.upsert_items([{"item_id": "w"}], wait="yes")
