"""What keeps a recommendation request short: the live model observes a batch of events
in parts (a request waits for one part of the model lock, not for the batch), and the
titles shown beside recommended items are read from the store once and kept until the
item is upserted (here or in another replica)."""

import copy

import numpy as np
import pytest

from lifelongrec.data import make_events, make_items
from lifelongrec.serving import RecommenderService
from lifelongrec.serving._details import ItemDetails
from lifelongrec.serving._ingest import observe_parts
from lifelongrec.serving._live import popularity

TS = 2_000_000_000


def _batch(model, n_known_users=30, per_user=5, new_users=3):
    """Events of known users on known items, plus new users' and one unknown item's."""
    rng = np.random.default_rng(1)
    users = model.known_users()[:n_known_users]
    items = model.known_items()
    rows = []
    for j, u in enumerate(users):
        rows += [
            (u, items[int(rng.integers(len(items)))], TS + j * per_user + t)
            for t in range(per_user)
        ]
    rows += [(f"new-user-{j}", items[j], TS + 10_000 + j) for j in range(new_users)]
    rows.append((users[4], "never-seen-item", TS + 20_000))  # this user grows the model too
    # Shuffled: users interleave, and a user's events are not in time order (the
    # model orders them; the parts must keep the order they came in).
    rows = [rows[i] for i in rng.permutation(len(rows))]
    frame = make_events(*(list(c) for c in zip(*rows, strict=True)))
    return frame, users


def test_observe_parts_keep_each_users_events_together_in_order(service):
    model = service.live_model
    frame, users = _batch(model)
    frame["pos"] = np.arange(len(frame))  # each event's place in the batch, carried along
    parts = observe_parts(model, frame, 16)
    assert len(parts) > 3
    assert all(isinstance(p, dict) and set(p) == set(frame.columns) for p in parts)
    pos = np.concatenate([p["pos"] for p in parts])
    assert sorted(pos) == list(range(len(frame)))  # every event once
    for p in parts:  # the columns stay aligned: each row is the batch's row at its place
        for c in ("user_id", "item_id", "timestamp"):
            np.testing.assert_array_equal(p[c], frame[c].to_numpy()[p["pos"]])
    owner = {}
    for j, part in enumerate(parts):
        for u in set(part["user_id"]):
            assert owner.setdefault(u, j) == j, f"{u} split over parts"
            mine = part["pos"][part["user_id"] == u]
            assert list(mine) == sorted(mine)  # their order kept
    # The events that grow the model (new users; a user with an unknown item) come
    # first and together: one growing call, not one per part.
    growing = {u for u in frame["user_id"] if int(model.user_rows([u])[0]) < 0} | {users[4]}
    assert set(parts[0]["user_id"]) == growing
    assert all(not growing & set(p["user_id"]) for p in parts[1:])
    assert all(len(p["user_id"]) <= 16 + 5 for p in parts[1:])  # about size: whole users
    small = observe_parts(model, frame.iloc[:10], 16)  # a small batch: one call
    assert len(small) == 1 and list(small[0]["pos"]) == list(range(10))


def test_observing_in_parts_gives_the_state_observing_at_once_gives(service):
    whole = copy.deepcopy(service.live_model)
    parts = copy.deepcopy(service.live_model)
    frame, _ = _batch(whole)
    index = whole.item_index_
    before = {i: float(whole.item_counts_[index[i]]) for i in whole.known_items()}
    whole.observe(frame)
    for part in observe_parts(parts, frame, 16):
        parts.observe(part)
    added = frame["item_id"].value_counts()  # counted independently
    for model in (whole, parts):
        for item, n in added.items():
            assert model.item_counts_[model.item_index_[item]] == before.get(item, 0) + n, item
    users = sorted(set(frame["user_id"]))
    assert whole.known_users() and sorted(whole.known_users()) == sorted(parts.known_users())
    assert sorted(whole.known_items()) == sorted(parts.known_items())
    a, b = whole.user_state(users), parts.user_state(users)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_allclose(whole.user_vectors(users), parts.user_vectors(users), rtol=1e-5)


def test_a_batch_through_the_service_is_reflected_for_every_user(service):
    """Vectors cached before the batch are dropped part by part: each answer after it
    comes from the user's new state."""
    frame, users = _batch(service.live_model)
    for u in users:
        service.recommend(u, k=3)
    old = {u: service.live.cached_vector(u).copy() for u in users}
    service.ingest(frame)
    model = service.live_model
    for u in set(frame["user_id"]):
        assert int(model.user_rows([u])[0]) >= 0
    assert "never-seen-item" in model.known_items()
    for u in users:
        assert service.live.cached_vector(u) is None
        service.recommend(u, k=3)
        now = service.live.cached_vector(u)
        np.testing.assert_allclose(now, model.user_vectors([u])[0], rtol=1e-5, atol=1e-6)
        assert not np.allclose(now, old[u])


# ---------------------------------------------------------------- item details
class _CountingStore:
    """The store, counting catalogue reads (and, with ``racing``, an upsert that lands
    while a read is under way)."""

    def __init__(self, store):
        self.store = store
        self.reads = 0
        self.racing = None

    def item_details(self, ids):
        self.reads += 1
        got = self.store.item_details(ids)
        if self.racing is not None:
            self.racing.forget(ids)
        return got


def test_item_details_are_read_once_and_forgotten_on_upsert(service):
    items = service.store.items()["item_id"].tolist()[:3]
    store = _CountingStore(service.store)
    details = ItemDetails(store)
    first = details.get(items + ["no-such-item"])
    assert first["no-such-item"] == (None, [])
    for i in items:
        assert first[i] == service.store.item_details([i])[i]
    assert store.reads == 1
    assert details.get(items[:2] + ["no-such-item"]) == {
        k: first[k] for k in items[:2] + ["no-such-item"]
    }
    assert store.reads == 1  # all kept, the absent id too
    service.store.upsert_items(make_items([items[0]], ["Renamed"], [["x"]], [{}]))
    assert details.get(items[:1])[items[0]][0] == first[items[0]][0]  # not forgotten yet
    details.forget([items[0]])
    assert details.get(items[:1])[items[0]] == ("Renamed", ["x"])
    assert store.reads == 2


def test_a_read_that_raced_an_upsert_is_not_kept(service):
    items = service.store.items()["item_id"].tolist()[:2]
    store = _CountingStore(service.store)
    details = store.racing = ItemDetails(store)
    details.get(items)
    details.get(items)
    assert store.reads == 2  # the upsert during the read: read again next time
    store.racing = None
    details.get(items)
    details.get(items)
    assert store.reads == 3


def test_item_details_stay_bounded(service):
    items = service.store.items()["item_id"].tolist()[:50]
    details = ItemDetails(service.store, size=20)
    for j in range(0, 50, 10):
        details.get(items[j : j + 10])
        assert len(details) <= 20
    assert details.get(items[:1])[items[0]] == service.store.item_details(items[:1])[items[0]]


def _shown(service, user, item):
    out = service.recommend(user, k=20, details=True)["items"]
    return next((i["title"] for i in out if i["item_id"] == item), "not shown")


def test_an_upserted_title_is_in_the_next_answer(service):
    """Regression guard: the kept titles must not outlive an upsert."""
    user = sorted(service.live_model.known_users())[0]
    item = service.recommend(user, k=1, details=True)["items"][0]["item_id"]
    assert _shown(service, user, item) != "New title"
    service.upsert_items([{"item_id": item, "title": "New title", "categories": ["c"]}])
    assert _shown(service, user, item) == "New title"


@pytest.mark.parametrize("wait", [True, False])
def test_an_upsert_in_another_replica_reaches_the_titles_when_followed(home, service_config, wait):
    cfg = {**service_config, "background": True, "learner_mode": "external"}
    a = RecommenderService.open(home, config=cfg, start=False)
    b = RecommenderService.open(home, config=cfg, start=False)
    try:
        user = sorted(a.live_model.known_users())[0]
        item = a.recommend(user, k=1, details=True)["items"][0]["item_id"]
        old = _shown(a, user, item)
        b.upsert_items([{"item_id": item, "title": "From B", "categories": ["c"]}], wait=wait)
        assert _shown(a, user, item) == old  # A has not looked yet
        assert a.follow_store() == 1
        assert _shown(a, user, item) == "From B"
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------ cold-start ranking
class _Rows:
    """What ``popularity`` reads of a model: ids per row, counts, the id -> row index."""

    def __init__(self, ids, counts, free=()):
        self.item_ids_ = np.asarray(ids, dtype=object)
        self.item_counts_ = np.asarray(counts, dtype=float)
        self.item_index_ = {i: r for r, i in enumerate(ids) if r not in set(free)}


@pytest.mark.parametrize("free", [(), (1, 4)])
def test_popularity_ranks_the_rows_holding_an_item(free):
    rng = np.random.default_rng(3)
    ids = [f"i{j}" for j in range(40)]
    counts = rng.integers(0, 6, 40).astype(float)
    counts[[1, 4]] = 99  # free rows keep stale counts: they must not rank
    model = _Rows(ids, counts, free)
    live = [r for r in range(40) if r not in free]
    want = sorted(live, key=lambda r: (-counts[r], r))[:12]
    assert popularity(model, 12) == [(ids[r], float(counts[r])) for r in want]
    assert len(popularity(model, None)) == len(live)
