"""The wire contract: every bad input is a 4xx naming the field (never a 5xx, never a
crash of the error answer itself), the key is checked before the body is read, and the
answers carry what a client expects."""

import json
import time

import pytest

from lifelongrec.serving import KeyRing, create_app

WRITE_KEY = "write-key-0123456789"  # the keys fixture of conftest.py
READ_KEY = "read-key-0123456789"
JSON = {"content-type": "application/json"}


def _raw(client, method, url, body: bytes, **headers):
    return client.request(method, url, content=body, headers={**JSON, **headers})


def _error(r, status, field=None):
    assert r.status_code == status, r.text
    doc = r.json()  # the answer is valid JSON whatever was sent
    assert isinstance(doc["detail"], str) and doc["detail"]
    if field is not None:
        assert field in (doc.get("field") or ""), doc
    return doc


# ------------------------------------------------------------------ events
EVENT_CASES = [
    # (raw JSON body, the field the 422 must name)
    (b'{"user_id":"u","item_id":"i","timestamp":9223372036854775808}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":1e30}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":7258118400}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":-1}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":true}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":"5"}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":5.5}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":NaN}', "timestamp"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"value":NaN}', "value"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"value":Infinity}', "value"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"value":-Infinity}', "value"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"value":"5"}', "value"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"value":true}', "value"),
    (b'{"user_id":"\\ud800","item_id":"i","timestamp":5}', "user_id"),
    (b'{"user_id":"u","item_id":"\\udfff","timestamp":5}', "item_id"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"event_type":"\\ud800"}', "event_type"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"event_id":"\\ud800"}', "event_id"),
    (b'{"user_id":NaN,"item_id":"i","timestamp":5}', "user_id"),
    (b'{"user_id":5,"item_id":"i","timestamp":5}', "user_id"),
    (b'{"user_id":"","item_id":"i","timestamp":5}', "user_id"),
    (b'{"user_id":"u","item_id":"i","timestamp":5,"colour":"red"}', "colour"),
    (b'{"events":[{"user_id":"u","item_id":"i","timestamp":5,"value":NaN}]}', "value"),
    (b'{"events":[]}', "events"),
]


@pytest.mark.parametrize("body, field", EVENT_CASES)
def test_a_bad_event_is_a_422_naming_the_field(client, service, body, field):
    n0 = service.store.n_events
    _error(_raw(client, "POST", "/events", body), 422, field)
    assert service.store.n_events == n0


def test_the_error_answer_echoes_bad_input_safely(client):
    r = _raw(client, "POST", "/events", b'{"user_id":"\\ud800x","item_id":NaN,"timestamp":5}')
    doc = _error(r, 422)
    inputs = {tuple(e["loc"]): e.get("input") for e in doc["errors"]}
    assert inputs[("body", "one", "user_id")] == "\\ud800x"  # escaped, not a lone surrogate
    assert inputs[("body", "one", "item_id")] == "nan"


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"user_id": "u", ', b"[1, 2", b'"just a string"', b"null", b"\xff\xfe"],
)
def test_a_body_that_is_not_an_event_object_is_a_4xx(client, body):
    r = _raw(client, "POST", "/events", body)
    assert r.status_code in (400, 422), r.text
    r.json()


def test_a_whole_number_written_with_a_point_is_an_integer_timestamp(client, service):
    r = _raw(client, "POST", "/events", b'{"user_id":"u-f","item_id":"i000001","timestamp":1.7e9}')
    assert r.status_code == 201, r.text
    assert service.store.user_events("u-f")["timestamp"].tolist() == [1_700_000_000]


def test_an_event_without_timestamp_gets_the_servers_receive_time(client, service):
    t0 = int(time.time())
    r = client.post("/events", json={"user_id": "u-now", "item_id": "i000001"})
    assert r.status_code == 201, r.text
    t1 = int(time.time())
    stored = service.store.user_events("u-now")
    assert len(stored) == 1 and t0 <= int(stored["timestamp"].iloc[0]) <= t1


def test_an_event_type_outside_the_vocabulary_is_a_422_listing_the_accepted(client, service):
    n0 = service.store.n_events
    good = {"user_id": "u", "item_id": "i000001", "timestamp": 2_000_000_000}
    r = client.post("/events", json={"events": [good, {**good, "event_type": "purchse"}]})
    doc = _error(r, 422, "event_type")
    assert "purchse" in doc["detail"] and "'purchase'" in doc["detail"]
    assert service.store.n_events == n0
    for t in ("view", "purchase", "interaction", "cart"):  # synthetic's and standard types
        r = client.post("/events", json={**good, "event_type": t})
        assert r.status_code == 201, (t, r.text)


def test_event_types_are_configurable(home, service_config, keys):
    from fastapi.testclient import TestClient

    from lifelongrec.serving import RecommenderService

    cfg = {**service_config, "event_types": ["play", "skip"]}
    service = RecommenderService.open(home, config=cfg)
    try:
        with TestClient(create_app(service, keys)) as c:
            c.headers["X-API-Key"] = WRITE_KEY
            ev = {"user_id": "u", "item_id": "i000001", "timestamp": 2_000_000_000}
            assert c.post("/events", json={**ev, "event_type": "play"}).status_code == 201
            _error(c.post("/events", json={**ev, "event_type": "view"}), 422, "event_type")
            assert c.get("/health").json()["event_types"] == ["play", "skip"]
    finally:
        service.close()


# ------------------------------------------------------------------- items
ITEM_CASES = [
    (b'{"title":"\\ud800"}', "title"),
    (b'{"title":NaN}', "title"),
    (b'{"title":5}', "title"),
    (b'{"categories":["\\ud800"]}', "categories"),
    (b'{"categories":"Health"}', "categories"),
    (b'{"categories":[""]}', "categories"),
    (b'{"attributes":{"price":NaN}}', "attributes"),
    (b'{"attributes":{"price":Infinity}}', "attributes"),
    (b'{"attributes":{"\\ud800":1}}', "attributes"),
    (b'{"attributes":{"p":"\\ud800"}}', "attributes"),
    (b'{"attributes":{"p":[1,2]}}', "attributes"),
    (b'{"attributes":{"p":{"q":1}}}', "attributes"),
    (b'{"attributes":[1]}', "attributes"),
    (b'{"colour":"red"}', "colour"),
]


@pytest.mark.parametrize("body, field", ITEM_CASES)
def test_a_bad_item_is_a_422_naming_the_field(client, service, body, field):
    n0 = service.store.n_items
    _error(_raw(client, "PUT", "/items/new-item", body), 422, field)
    batch = b'{"items":[{"item_id":"new-item",' + body[1:] + b"]}"
    _error(_raw(client, "PUT", "/items", batch), 422, field)
    assert service.store.n_items == n0


def test_items_in_a_batch_are_created_and_updated_all_or_nothing(client, service):
    n0 = service.store.n_items
    body = {
        "items": [
            {"item_id": "b-1", "title": "First", "categories": ["Zz-Test"], "attributes": {"p": 2}},
            {"item_id": "b-2", "title": "Second", "categories": ["Zz-Test"]},
        ]
    }
    r = client.put("/items", json=body, params={"wait": "true"})
    assert r.status_code == 200
    assert r.json() == {"n_received": 2, "n_created": 2, "n_updated": 0, "live": True}
    body["items"][0]["title"] = "First, revised"
    r = client.put("/items", json=body, params={"wait": "true"})
    assert r.json() == {"n_received": 2, "n_created": 0, "n_updated": 2, "live": True}
    assert service.store.n_items == n0 + 2
    assert client.get("/items/b-1").json() == {
        "item_id": "b-1",
        "title": "First, revised",
        "categories": ["Zz-Test"],
        "attributes": {"p": 2},
    }
    twice = {"items": [{"item_id": "b-3", "title": "one"}, {"item_id": "b-3", "title": "two"}]}
    r = client.put("/items", json=twice, params={"wait": "true"})
    assert r.json() == {"n_received": 2, "n_created": 1, "n_updated": 0, "live": True}
    assert client.get("/items/b-3").json()["title"] == "two"  # the later entry counts
    _error(client.get("/items/never-heard-of"), 404)
    assert service.store.n_items == n0 + 3
    # new items are recommendable at once, with their category
    recs = client.get("/users/cold-user/recommendations", params={"k": 5, "category": "Zz-Test"})
    assert {i["item_id"] for i in recs.json()["items"]} == {"b-1", "b-2"}


def test_more_items_than_max_batch_is_a_422(client, service):
    n = service.config.max_batch + 1
    body = {"items": [{"item_id": f"x{j}"} for j in range(n)]}
    _error(client.put("/items", json=body), 422, "items")


# --------------------------------------------------------------- answers
def test_answers_carry_title_and_categories_unless_turned_off(client, service):
    user = sorted(service.live_model.known_users())[0]
    items = client.get(f"/users/{user}/recommendations", params={"k": 3}).json()["items"]
    for item in items:
        stored = service.store.item(item["item_id"])
        assert item["title"] == stored["title"] and item["categories"] == stored["categories"]
    bare = client.get(f"/users/{user}/recommendations", params={"k": 3, "details": "false"})
    assert all(set(i) == {"item_id", "score"} for i in bare.json()["items"])
    similar = client.get(f"/items/{items[0]['item_id']}/similar", params={"k": 2}).json()
    assert all(i["title"] for i in similar["items"])


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("version", ["%C2%B2", "%D9%A3", "x", "v1", "0000001", "-1"])
def test_a_version_that_is_not_an_id_is_a_422(client, version):
    _error(client.post(f"/models/{version}/promote"), 422, "version")


@pytest.mark.parametrize("version", ["0", "v000000", "000000"])
def test_version_zero_is_unknown(client, version):
    _error(client.post(f"/models/{version}/promote"), 404)


def test_an_unknown_version_is_a_404_without_paths(client, home):
    doc = _error(client.post("/models/v000099/promote"), 404)
    assert str(home) not in json.dumps(doc) and "/" not in doc["detail"]


def test_registry_conflicts_show_no_paths(client, home):
    doc = _error(client.post("/models/rollback"), 409)  # the first champion: nothing before
    assert "nothing to roll back" in doc["detail"]
    assert str(home) not in json.dumps(doc) and str(home.resolve()) not in json.dumps(doc)


# --------------------------------------------------------------- keys first
def test_the_key_is_checked_before_the_body_is_read(client):
    del client.headers["X-API-Key"]
    for headers in ({}, {"X-API-Key": "not-a-key-at-all"}, {"Authorization": "Basic abc"}):
        r = client.post("/events", content=b"this is not json", headers={**JSON, **headers})
        assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer"
        r = client.post("/events", content=b"x" * 300_000, headers={**JSON, **headers})
        assert r.status_code == 401  # over the limit, but nobody may make us read it
    r = client.post("/events", content=b"not json", headers={**JSON, "X-API-Key": READ_KEY})
    assert r.status_code == 403 and "'write'" in r.json()["detail"]
    r = client.get("/users/u/recommendations", headers={"X-API-Key": ""})
    assert r.status_code == 401
    r = client.get("/users/u/recommendations", headers={"Authorization": f"Bearer {READ_KEY}"})
    assert r.status_code == 200


def test_health_is_minimal_without_a_key(client, service):
    r = client.get("/health", headers={"X-API-Key": ""})
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    full = client.get("/health", headers={"X-API-Key": READ_KEY}).json()
    assert full["model_version"] == service.live_version and "config" in full


# ------------------------------------------------------------------- bodies
def test_a_chunked_body_over_the_limit_is_a_413(client, service):
    n0 = service.store.n_events

    def chunks():
        for _ in range(100):
            yield b" " * 5_000  # 500 kB, no Content-Length

    r = client.post("/events", content=chunks(), headers=JSON)
    assert r.status_code == 413 and r.headers["connection"] == "close"
    assert service.store.n_events == n0


def test_a_declared_length_over_the_limit_is_a_413_before_reading(client):
    r = client.post("/events", content=b"{}" * 150_000, headers=JSON)
    assert r.status_code == 413


def test_an_unexpected_error_is_a_json_500(service, keys, monkeypatch):
    from fastapi.testclient import TestClient

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "similar", broken)
    with TestClient(create_app(service, keys), raise_server_exceptions=False) as c:
        r = c.get("/items/i000001/similar", headers={"X-API-Key": READ_KEY})
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error; the server logged it", "error": "RuntimeError"}


def test_open_access_needs_no_key(service):
    from fastapi.testclient import TestClient

    with TestClient(create_app(service, KeyRing.open_access())) as c:
        assert c.post("/events", json={"user_id": "u", "item_id": "i000001"}).status_code == 201
        assert "config" in c.get("/health").json()
