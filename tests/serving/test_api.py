"""The HTTP API end to end (in-process client, real service, real store and registry)."""

import math
import time

import numpy as np
import pytest

READ_KEY = "read-key-0123456789"  # the keys fixture of conftest.py


def _known_user(service):
    ids = service.live_model.known_users()
    return sorted(ids)[0]


def _recs(client, user, **params):
    r = client.get(f"/users/{user}/recommendations", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------ events
def test_one_event_is_stored_and_reflected_in_the_next_recommendation(client, service, home):
    user = _known_user(service)
    before = _recs(client, user, k=5)
    top = before["items"][0]["item_id"]
    n0 = service.store.n_events
    r = client.post("/events", json={"user_id": user, "item_id": top, "timestamp": 2_000_000_000})
    assert r.status_code == 201, r.text
    ack = r.json()
    assert ack["n_written"] == 1 and ack["n_duplicates"] == 0
    assert service.store.n_events == n0 + 1
    after = _recs(client, user, k=5)
    # the item is now seen, so it is excluded; the user's vector moved
    assert top not in [i["item_id"] for i in after["items"]]
    assert after["items"] != before["items"]
    with_seen = _recs(client, user, k=50, exclude_seen="false")
    assert len(with_seen["items"]) == 50


def test_event_reflected_latency_p99_is_recorded(client, service):
    """Every acknowledged event is in the user's next recommendation (the item leaves the
    list of unseen items); the time from the POST to that answer is measured (the figure
    goes to docs/benchmarks.md from benchmarks/load.py, not asserted here)."""
    user = _known_user(service)
    waits = []
    for j in range(30):
        top = _recs(client, user, k=1)["items"][0]["item_id"]
        t0 = time.perf_counter()
        client.post(
            "/events", json={"user_id": user, "item_id": top, "timestamp": 2_000_000_000 + j}
        )
        items = [i["item_id"] for i in _recs(client, user, k=10)["items"]]
        waits.append(time.perf_counter() - t0)
        assert top not in items
    print(f"post -> reflected recommendation p99: {1000 * np.quantile(waits, 0.99):.1f} ms")


def test_a_new_user_is_served_from_the_first_event(client, service):
    cold = _recs(client, "brand-new-user", k=5)
    assert cold["cold_start"] is True and len(cold["items"]) == 5
    item = cold["items"][0]["item_id"]
    r = client.post(
        "/events", json={"user_id": "brand-new-user", "item_id": item, "timestamp": 2_000_000_000}
    )
    assert r.status_code == 201
    warm = _recs(client, "brand-new-user", k=5)
    assert warm["cold_start"] is False
    assert item not in [i["item_id"] for i in warm["items"]]


def test_batch_is_idempotent_through_event_ids(client, service):
    user = _known_user(service)
    batch = {
        "events": [
            {"user_id": user, "item_id": "i000001", "timestamp": 2_000_000_000, "event_id": "e1"},
            {
                "user_id": user,
                "item_id": "i000002",
                "timestamp": 2_000_000_001,
                "event_id": "e2",
                "event_type": "purchase",
                "value": 4.5,
            },
        ]
    }
    n0 = service.store.n_events
    first = client.post("/events", json=batch).json()
    again = client.post("/events", json=batch).json()
    assert (first["n_written"], first["n_duplicates"]) == (2, 0)
    assert (again["n_written"], again["n_duplicates"]) == (0, 2)
    assert service.store.n_events == n0 + 2
    stored = service.store.read(after_seq=first["last_seq"] - 2)
    assert stored["event_type"].tolist() == ["interaction", "purchase"]
    assert stored["value"].iloc[1] == 4.5 and math.isnan(stored["value"].iloc[0])
    # a key repeated inside one batch: the first event is written and observed, once
    model = service.live_model
    row = int(model.user_rows([user])[0])
    before = model.user_items_[row].nnz
    twice = {
        "events": [
            {"user_id": user, "item_id": "i000003", "timestamp": 2_000_000_002, "event_id": "e3"},
            {"user_id": user, "item_id": "i000004", "timestamp": 2_000_000_003, "event_id": "e3"},
        ]
    }
    ack = client.post("/events", json=twice).json()
    assert (ack["n_written"], ack["n_duplicates"]) == (1, 1)
    seen_now = set(service.store.user_events(user)["item_id"])
    assert "i000003" in seen_now and "i000004" not in seen_now
    cols = model.user_items_[row].indices
    assert model.item_ids_[cols].tolist().count("i000004") == 0
    assert model.user_items_[row].nnz <= before + 1


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"item_id": "i1", "timestamp": 1}, "user_id"),
        ({"user_id": "", "item_id": "i1", "timestamp": 1}, "user_id"),
        ({"user_id": "u", "item_id": "i1", "timestamp": "yesterday"}, "timestamp"),
        ({"user_id": "u", "item_id": "i1", "timestamp": -5}, "timestamp"),
        ({"user_id": "u", "item_id": "i1", "timestamp": 1, "colour": "red"}, "colour"),
        ({"user_id": "u", "item_id": "i1", "timestamp": 1, "value": "high"}, "value"),
    ],
)
def test_a_malformed_event_is_a_422_naming_the_field_and_nothing_is_written(
    client, service, bad, field
):
    n0 = service.store.n_events
    good = {"user_id": "u", "item_id": "i000001", "timestamp": 2_000_000_000}
    r = client.post("/events", json={"events": [good, good, bad]})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["errors"]]
    assert any(loc[-1] == field and 2 in loc for loc in locs), locs
    assert service.store.n_events == n0


def test_batch_limits(client, service):
    ev = {"user_id": "u", "item_id": "i000001", "timestamp": 1}
    r = client.post("/events", json={"events": [ev] * 501})  # max_batch is 500
    assert r.status_code == 422 and "at most 500" in r.json()["detail"]
    r = client.post("/events", json={"events": []})
    assert r.status_code == 422
    big = "x" * 250_000  # over the 200,000-byte body limit
    r = client.post("/events", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    r = client.post("/events", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


# ------------------------------------------------------------- recommendations
def test_unknown_user_gets_cold_start_items_not_an_error(client, service):
    out = _recs(client, "nobody-ever", k=7, explain="true")
    assert out["cold_start"] is True and len(out["items"]) == 7
    model = service.live_model
    counts = dict(zip(model.item_ids_, model.item_counts_, strict=False))
    popular = max(counts, key=counts.get)
    assert popular in [i["item_id"] for i in out["items"]]
    assert all(i["reason"] in {"popular", "new in the catalogue"} for i in out["items"])


def test_recommendations_equal_an_exact_computation(client, service):
    user = _known_user(service)
    model = service.live_model
    for step in range(3):  # computed, then from the cache, then after an event
        got = _recs(client, user, k=10)["items"]
        ids, scores = model.recommend(user, k=10, exclude_seen=True)
        assert [i["item_id"] for i in got] == list(ids)
        np.testing.assert_allclose([i["score"] for i in got], scores, rtol=1e-4, atol=1e-5)
        assert service.live.cached_vector(user) is not None
        if step == 1:
            event = {"user_id": user, "item_id": ids[0], "timestamp": 2_000_000_000}
            assert client.post("/events", json=event).status_code == 201
            assert service.live.cached_vector(user) is None


def test_category_filter_and_explanations(client, service):
    items = service.store.items()
    cat = items["categories"].iloc[0][0]
    in_cat = set(items.loc[[cat in c for c in items["categories"]], "item_id"])
    user = _known_user(service)
    out = _recs(client, user, k=5, category=cat, explain="true")
    assert out["items"] and all(i["item_id"] in in_cat for i in out["items"])
    assert all(i["reason"] for i in out["items"])
    seen = set(service.store.user_events(user)["item_id"])
    for item in out["items"]:  # the most similar item of the user's own history, by cosine
        named = item["reason"].split()[2]
        assert item["reason"].startswith("similar to ") and named in seen
        model = service.live_model
        _, v = model.item_vectors([item["item_id"]])
        _, h = model.item_vectors(sorted(seen))
        cos = (h @ v[0]) / (np.linalg.norm(h, axis=1) * np.linalg.norm(v[0]))
        best = float(cos.max())
        assert f"(cosine {best:.2f})" in item["reason"] or len(seen) > 50
    r = client.get(f"/users/{user}/recommendations", params={"category": "no-such-category"})
    assert r.status_code == 404 and "no-such-category" in r.json()["detail"]
    assert client.get(f"/users/{user}/recommendations", params={"k": 0}).status_code == 422


def test_similar_items_and_unknown_item_404(client, service):
    item = service.store.items()["item_id"].iloc[3]
    out = client.get(f"/items/{item}/similar", params={"k": 4}).json()
    assert len(out["items"]) == 4 and item not in [i["item_id"] for i in out["items"]]
    r = client.get("/items/no-such-item/similar")
    assert r.status_code == 404
    assert "no-such-item" in r.json()["detail"]


# ------------------------------------------------------------------ catalogue
def test_a_new_item_is_recommendable_at_once(client, service):
    body = {
        "title": "A brand new thing",
        "categories": ["launch-2026"],
        "attributes": {"price": 9.5},
    }
    wait = {"wait": "true"}
    r = client.put("/items/new-item-1", json=body, params=wait)
    assert r.status_code == 201
    assert r.json() == {"item_id": "new-item-1", "created": True, "live": True}
    assert client.put("/items/new-item-1", json=body, params=wait).status_code == 200
    user = _known_user(service)
    out = _recs(client, user, k=3, category="launch-2026")
    assert [i["item_id"] for i in out["items"]] == ["new-item-1"]
    cold = _recs(client, "someone-new", k=3, category="launch-2026")
    assert [i["item_id"] for i in cold["items"]] == ["new-item-1"]
    assert service.store.item("new-item-1")["attributes"] == {"price": 9.5}
    # an update moves it to its new category
    client.put("/items/new-item-1", json={**body, "categories": ["launch-2027"]}, params=wait)
    assert [i["item_id"] for i in _recs(client, user, k=3, category="launch-2027")["items"]] == [
        "new-item-1"
    ]
    assert _recs(client, user, k=3, category="launch-2026")["items"] == []
    r = client.put("/items/x", json={"categories": "not-a-list"})
    assert r.status_code == 422


def test_an_item_sent_without_waiting_goes_live_when_published(client, service):
    """Without wait the answer comes after the durable write; the item goes live when
    the catalogue thread (here, with background=False, the next learner round) has
    encoded it."""
    body = {"title": "Later thing", "categories": ["launch-2028"]}
    r = client.put("/items/later-1", json=body)
    assert r.status_code == 201
    assert r.json() == {"item_id": "later-1", "created": True, "live": False}
    assert service.store.item("later-1")["title"] == "Later thing"  # stored already
    assert client.get("/items/later-1/similar").status_code == 404  # not live yet
    service.learn_step()
    assert client.get("/items/later-1/similar").status_code == 200
    out = _recs(client, "someone-else", k=3, category="launch-2028")
    assert [i["item_id"] for i in out["items"]] == ["later-1"]


# ------------------------------------------------------------------- deletion
def test_delete_user_erases_events_and_state(client, service, home):
    user = _known_user(service)
    assert len(service.store.user_events(user)) > 0
    r = client.delete(f"/users/{user}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["events_erased"] > 0 and body["state_erased"] is True
    assert len(service.store.user_events(user)) == 0
    assert _recs(client, user, k=3)["cold_start"] is True
    assert int(service.learner.trainer.user_rows([user])[0]) == -1
    assert client.delete(f"/users/{user}").status_code == 404


# ------------------------------------------------------------------- security
def test_keys_and_scopes(client):
    anon = {"X-API-Key": ""}
    assert client.get("/health", headers=anon).status_code == 200
    r = client.get("/users/u/recommendations", headers={"X-API-Key": "wrong-key-123"})
    assert r.status_code == 401
    client.headers.pop("X-API-Key")
    assert client.get("/users/u/recommendations").status_code == 401
    read = {"X-API-Key": READ_KEY}
    assert client.get("/users/u/recommendations", headers=read).status_code == 200
    ev = {"user_id": "u", "item_id": "i000001", "timestamp": 1}
    r = client.post("/events", json=ev, headers=read)
    assert r.status_code == 403 and "write" in r.json()["detail"]
    assert client.delete("/users/u", headers=read).status_code == 403
    assert client.post("/models/rollback", headers=read).status_code == 403
    bearer = {"Authorization": "Bearer write-key-0123456789"}
    assert client.post("/events", json=ev, headers=bearer).status_code == 201


# ------------------------------------------------------------ ops and schema
def test_metrics_in_prometheus_format(client):
    client.get("/users/u/recommendations")
    client.post("/events", json={"user_id": "u", "item_id": "i000001", "timestamp": 1})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'lifelongrec_request_seconds_bucket{le="0.01",method="GET",route="/users/{user_id}/recommendations",status="200"}'
        in text
    )
    assert "lifelongrec_events_ingested 1.0" in text
    assert 'lifelongrec_model_info{version="v000001"} 1.0' in text
    assert "lifelongrec_online_lag_events" in text


def test_metrics_count_the_collectors_work(client):
    import gc
    import re

    def collections(generation: int) -> float:
        text = client.get("/metrics").text
        pattern = rf'python_gc_collections_total{{generation="{generation}"}} (\S+)'
        return float(re.search(pattern, text).group(1))

    before = collections(2)
    gc.collect()
    assert collections(2) == before + 1
    text = client.get("/metrics").text
    assert "python_gc_frozen_objects 0.0" in text  # frozen only by run_server
    gc.freeze()
    try:
        # frozen objects that other threads free meanwhile leave the count: the metric
        # lies between the counts read before and after it
        first = gc.get_freeze_count()
        frozen = float(
            re.search(r"^python_gc_frozen_objects (\S+)", client.get("/metrics").text, re.M)[1]
        )
        last = gc.get_freeze_count()
        assert first >= frozen >= last > 0
    finally:
        gc.unfreeze()


def test_openapi_schema_validates(client):
    from openapi_spec_validator import validate

    schema = client.get("/openapi.json").json()
    validate(schema)
    paths = schema["paths"]
    for p in (
        "/events",
        "/users/{user_id}/recommendations",
        "/items/{item_id}/similar",
        "/items/{item_id}",
        "/users/{user_id}",
        "/models",
        "/models/{version}/promote",
        "/models/rollback",
        "/health",
        "/metrics",
    ):
        assert p in paths, p


# ------------------------------------------------------------------- models
def test_learner_makes_a_gated_challenger_and_models_endpoints(client, service, feed):
    feed(client, service, 300)
    for _ in range(10):
        service.learn_step()
    assert service.learner_stats()["n_trained_events"] >= 256
    feed(client, service, 120, start=2_000_100_000)  # the held-out slice
    for _ in range(5):
        service.learn_step()
    listing = client.get("/models").json()
    versions = [v["version"] for v in listing["versions"]]
    assert versions == ["v000001", "v000002"], listing
    second = listing["versions"][1]
    assert second["parent"] == "v000001" and second["status"] in {"champion", "rejected"}
    assert listing["live"] == listing["champion"]
    # by hand: promote the rejected one and roll back, or roll the promoted one back
    # and promote it again; the live model follows the registry every time
    steps = (
        [("promote", "v000002"), ("rollback", "v000001")]
        if listing["champion"] == "v000001"
        else [("rollback", "v000001"), ("promote", "v000002")]
    )
    for action, expected in steps:
        url = "/models/rollback" if action == "rollback" else f"/models/{expected}/promote"
        r = client.post(url)
        assert r.status_code == 200, r.text
        assert client.get("/health").json()["model_version"] == expected
        assert client.get("/models").json()["live"] == expected
    assert client.post("/models/v000099/promote").status_code == 404


def test_rollback_with_nothing_to_roll_back_to_is_409(client):
    r = client.post("/models/rollback")
    assert r.status_code == 409 and r.json()["detail"]


def test_restart_serves_the_same_champion_with_every_event(home, service, keys):
    from lifelongrec.serving import RecommenderService

    user = _known_user(service)
    service.ingest([{"user_id": user, "item_id": "i000003", "timestamp": 2_000_000_000}])
    expected = service.recommend(user, k=10)
    service.close()
    again = RecommenderService.open(home, config=service.config.to_dict())
    try:
        assert again.live_version == expected["model_version"]
        answer = again.recommend(user, k=10)
        assert answer.pop("request_id") != expected.pop("request_id")  # one per answer
        assert answer == expected
    finally:
        again.close()


def test_an_erased_user_stays_erased_after_a_restart(home, service):
    """The champion on disk was trained with the user's sequence; loading it again must
    not bring the user back (the erasure log), while their later events count."""
    from lifelongrec.serving import RecommenderService

    user = _known_user(service)
    service.delete_user(user)
    service.close()
    again = RecommenderService.open(home)
    try:
        assert again.recommend(user, k=3)["cold_start"] is True
        again.ingest([{"user_id": user, "item_id": "i000005", "timestamp": 2_000_000_000}])
    finally:
        again.close()
    third = RecommenderService.open(home)
    try:
        out = third.recommend(user, k=3)
        assert out["cold_start"] is False  # the event after the erasure is theirs again
        assert third.store.user_events(user)["item_id"].tolist() == ["i000005"]
        assert "i000005" not in [i["item_id"] for i in out["items"]]
    finally:
        third.close()


def test_hnsw_index_serves_upserts_and_is_compacted_by_the_learner(home, service_config):
    """Above ann_threshold the service searches an HNSW graph: results agree with exact
    scoring, upserted items are found at once, and the learner thread swaps in a rebuilt
    graph once upserts pile up beside it."""
    from lifelongrec.serving import RecommenderService

    cfg = {**service_config, "ann_threshold": 10, "index_max_delta": 2, "challenger_every": 0}
    service = RecommenderService.open(home, config=cfg)
    try:
        live = service.live
        assert live.index.kind == "hnsw"
        model = live.model
        users = sorted(model.known_users())[:20]
        hits = 0
        for u in users:
            got = [i["item_id"] for i in service.recommend(u, k=10)["items"]]
            want = model.recommend(u, k=10, exclude_seen=True)[0].tolist()
            hits += len(set(got) & set(want))
        assert hits / (10 * len(users)) >= 0.95
        for j in range(3):
            service.upsert_item({"item_id": f"hot{j}", "categories": ["hot"]})
        assert live.index.needs_rebuild
        assert {
            i["item_id"] for i in service.recommend(users[0], k=5, category="hot")["items"]
        } == {"hot0", "hot1", "hot2"}
        service.learn_step()
        assert service.live_index is not live.index and not service.live_index.needs_rebuild
        assert "hot1" in service.live_index
        assert len(service.similar("hot1", k=3)["items"]) == 3
    finally:
        service.close()
