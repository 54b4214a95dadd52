"""Impressions and online metrics in the service: every answer's request id and logged
items, events that name a request, attribution, the JSON API and its errors, the
impression thread, the buffer's bound, a failed flush, and the settings."""

import time

import pytest

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.serving import RecommenderService, ServiceConfig

READ_KEY = "read-key-0123456789"  # the keys fixture of conftest.py


def _user(service):
    return sorted(service.live_model.known_users())[0]


@pytest.fixture
def reopen(home, service_config):
    """Open the test home with some settings changed."""

    def open_(**settings):
        return RecommenderService.open(home, config={**service_config, **settings})

    return open_


def test_every_answer_has_its_own_request_id_and_its_items_are_logged(service):
    user = _user(service)
    a = service.recommend(user, k=5)
    b = service.recommend(user, k=5)
    assert a["request_id"] != b["request_id"] and len(a["request_id"]) == 32
    assert service.flush_impressions() == 10
    shown = service.store.impressions(request_id=a["request_id"])
    assert shown["item_id"].tolist() == [i["item_id"] for i in a["items"]]
    assert shown["rank"].tolist() == [1, 2, 3, 4, 5]
    assert shown["score"].tolist() == pytest.approx([i["score"] for i in a["items"]])
    assert set(shown["user_id"]) == {user} and set(shown["model_version"]) == {a["model_version"]}
    assert shown["arm"].isna().all()
    assert abs(int(shown["timestamp"].iloc[0]) - time.time()) < 60
    assert service.counters["impressions_logged"] == 10


def test_a_cold_start_answer_is_logged_too(service):
    out = service.recommend("nobody-knows-me", k=3)
    assert out["cold_start"] and len(out["items"]) == 3
    service.flush_impressions()
    assert len(service.store.impressions(user_id="nobody-knows-me")) == 3


def test_events_naming_a_request_are_attributed_to_its_impressions(service):
    user = _user(service)
    out = service.recommend(user, k=4)
    first, second = out["items"][0]["item_id"], out["items"][1]["item_id"]
    now = int(time.time())
    events = [
        {"user_id": user, "item_id": first, "timestamp": now, "event_type": "click"},
        {"user_id": user, "item_id": second, "timestamp": now, "event_type": "purchase"},
        {"user_id": user, "item_id": first, "timestamp": now, "event_type": "click"},
    ]
    service.ingest(events, request_ids=[out["request_id"], out["request_id"], "unknown-request"])
    (row,) = service.online_metrics()
    assert row["model_version"] == out["model_version"] and row["arm"] is None
    assert row["impressions"] == 4 and row["requests"] == 1 and row["users"] == 1
    # the third event names a request that never was: not attributed
    assert row["clicks"] == 2 and row["ctr"] == 0.5 and row["events"] == 2
    assert row["conversions"] == 1 and row["conversion_rate"] == 0.25
    assert row["events_per_user"] == 2.0 and row["coec"] == 1.0  # the only ranker


def test_request_ids_must_match_the_events(service):
    user = _user(service)
    event = {"user_id": user, "item_id": "i000001", "timestamp": 2_000_000_000}
    with pytest.raises(DataError, match="request_ids and events differ"):
        service.ingest([event], request_ids=["r1", "r2"])
    before = service.store.n_events
    with pytest.raises(DataError, match="request id"):
        service.ingest([event], request_ids=[5])
    assert service.store.n_events == before


def test_the_http_api_carries_request_ids_and_serves_online_metrics(service, client):
    user = _user(service)
    r = client.get(f"/users/{user}/recommendations", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    item = body["items"][2]["item_id"]
    event = {"user_id": user, "item_id": item, "event_type": "click"}
    r = client.post("/events", json={**event, "request_id": body["request_id"]})
    assert r.status_code == 201, r.text
    client.headers["X-API-Key"] = READ_KEY  # reading the metrics needs the read scope
    r = client.get("/online-metrics")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["by"] == "total" and got["conversion_types"] == ["purchase"]
    assert "click" in got["click_types"] and got["attribution_window"] == 86_400
    (row,) = got["rows"]
    assert row["impressions"] == 3 and row["clicks"] == 1 and row["hour"] is None
    hourly = client.get("/online-metrics", params={"by": "hour"}).json()["rows"]
    assert len(hourly) == 1 and hourly[0]["hour"] % 3600 == 0
    later = client.get("/online-metrics", params={"since": int(time.time()) + 3600})
    assert later.status_code == 200 and later.json()["rows"] == []
    text = client.get("/metrics").text
    assert "lifelongrec_impressions_logged 3.0" in text


@pytest.mark.parametrize(
    "params, field",
    [({"by": "day"}, "by"), ({"since": "yesterday"}, "since"), ({"until": -1}, "until")],
)
def test_bad_online_metric_queries_are_422_naming_the_field(client, params, field):
    r = client.get("/online-metrics", params=params)
    assert r.status_code == 422 and r.json()["field"] == f"query.{field}"


def test_a_bad_request_id_on_an_event_is_422(client, service):
    event = {"user_id": _user(service), "item_id": "i000001", "request_id": ""}
    r = client.post("/events", json=event)
    assert r.status_code == 422 and r.json()["field"] == "body.one.request_id"
    r = client.post("/events", json={**event, "request_id": 17})
    assert r.status_code == 422


def test_the_impression_thread_stores_them_and_close_stores_the_rest(reopen):
    service = reopen(impression_flush_seconds=0.05)
    try:
        out = service.recommend(_user(service), k=4)
        deadline = time.time() + 10
        while service.store.n_impressions < 4 and time.time() < deadline:
            time.sleep(0.02)
        assert service.store.n_impressions == 4
    finally:
        service.close()
    lazy = reopen(impression_flush_seconds=3600)
    try:
        lazy.recommend(_user(lazy), k=2)
        assert lazy.store.n_impressions == 4  # still buffered
    finally:
        lazy.close()
    again = reopen()
    try:
        assert again.store.n_impressions == 6  # close() stored them
        assert out["request_id"] in set(again.store.impressions()["request_id"])
    finally:
        again.close()


def test_a_full_buffer_drops_and_counts_instead_of_growing(reopen):
    service = reopen(impression_buffer=5, impression_flush_seconds=3600)
    try:
        user = _user(service)
        service.recommend(user, k=3)
        service.recommend(user, k=3)  # 6 > 5: not buffered
        assert service.counters["impressions_dropped"] == 3
        assert service.flush_impressions() == 3
    finally:
        service.close()


def test_a_failed_flush_keeps_the_impressions_for_the_next(service, monkeypatch):
    service.recommend(_user(service), k=3)
    real = service.store.append_impression_rows

    def broken(rows):
        raise OSError("disk full")

    monkeypatch.setattr(service.store, "append_impression_rows", broken)
    with pytest.raises(OSError, match="disk full"):
        service.flush_impressions()
    assert service.counters["impression_flush_errors"] == 1
    monkeypatch.setattr(service.store, "append_impression_rows", real)
    assert service.flush_impressions() == 3


def test_logging_can_be_turned_off(reopen):
    service = reopen(log_impressions=False)
    try:
        out = service.recommend(_user(service), k=3)
        assert out["request_id"]  # answers still carry one
        assert service.flush_impressions() == 0 and service.store.n_impressions == 0
    finally:
        service.close()


@pytest.mark.parametrize(
    "setting, value",
    [
        ("impression_flush_seconds", 0),
        ("impression_buffer", 0),
        ("attribution_window", -5),
        ("click_types", "click"),
        ("conversion_types", [""]),
        ("log_impressions", "yes"),
    ],
)
def test_bad_feedback_settings_are_refused_by_name(setting, value):
    with pytest.raises(ParameterError, match=setting):
        ServiceConfig.from_dict({setting: value})


def _steps_until(service, what, rounds=20):
    for _ in range(rounds):
        service.learn_step()
        if what():
            return
    raise AssertionError(f"not reached after {rounds} learner rounds")


def _others(service, left_out, n, t):
    """``n`` events of known users but those ``left_out`` from ``t`` on (they fill the
    learner's batch)."""
    users = [u for u in sorted(service.live_model.known_users()) if u not in left_out][:20]
    items = sorted(service.live_model.known_items())
    return [
        {"user_id": users[j % 20], "item_id": items[j % len(items)], "timestamp": t + j}
        for j in range(n)
    ]


def test_the_learner_hands_what_was_shown_to_a_trainer_that_learns_from_it(service):
    trainer = service.learner.trainer
    assert trainer.exposure_weight > 0 and trainer.exposure_negatives == "above"  # defaults
    user = _user(service)
    out = service.recommend(user, k=5)
    service.flush_impressions()
    shown = [i["item_id"] for i in out["items"]]
    now = int(time.time()) + 5
    click = {"user_id": user, "item_id": shown[2], "timestamp": now, "event_type": "click"}
    service.ingest([click], request_ids=[out["request_id"]])
    service.ingest(_others(service, {user}, 100, now + 10))
    _steps_until(service, lambda: hasattr(trainer, "exposure_counts_"))
    # five shown, the third clicked: the two above it were passed over on the way to it
    assert trainer.exposure_counts_["skipped"] == 2 and trainer.exposure_counts_["used"] == 2


def test_impressions_of_a_user_erased_while_the_learner_reads_are_dropped(service):
    trainer = service.learner.trainer
    users = sorted(service.live_model.known_users())
    victim, other = users[0], users[1]
    for u in (victim, other):
        service.recommend(u, k=5)
    service.flush_impressions()
    read = service.store.read_impressions
    fired = []

    def read_then_delete(after_id=0, limit=20_000):
        out = read(after_id, limit)
        if not fired and (out["user_id"] == victim).any():
            fired.append(service.delete_user(victim))  # between the read and the trainer
        return out

    service.store.read_impressions = read_then_delete
    try:
        service.learn_step()
    finally:
        service.store.read_impressions = read
    assert fired and fired[0]["events_erased"] > 0
    now = int(time.time()) + 5
    item = sorted(service.live_model.known_items())[0]
    last = {"user_id": other, "item_id": item, "timestamp": now + 200}
    service.ingest([*_others(service, {victim, other}, 100, now), last])
    _steps_until(service, lambda: hasattr(trainer, "exposure_counts_"))
    assert trainer.exposure_counts_["impressions"] == 5  # the other user's only
