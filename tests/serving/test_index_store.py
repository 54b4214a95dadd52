"""The live version's HNSW graph kept on disk: reused on the next start when it fits the
model, rebuilt (and saved again) when anything does not."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lifelongrec.serving import ItemIndex
from lifelongrec.serving._index_store import INDEX_DIR, IndexStore

SETTINGS = dict(ann_threshold=50, m=8, ef_construction=40, ef_search=64, exact_head=0)


def catalogue(n=400, d=8, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.array([f"i{j}" for j in range(n)], dtype=object)
    return ids, rng.normal(size=(n, d)).astype(np.float32)


def queries(d=8, n=30, seed=1):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def answers(index, qs, k=10):
    return [index.search(q, k=k)[0].tolist() for q in qs]


def test_adopting_a_built_graph_searches_as_the_fresh_build(tmp_path):
    ids, vecs = catalogue()
    fresh = ItemIndex(**SETTINGS).build(ids, vecs)
    graph, graph_ids = fresh.graph()
    assert graph is not None and graph_ids.tolist() == ids.tolist()
    again = ItemIndex(**SETTINGS).adopt(ids, graph)
    assert again.kind == "hnsw"
    qs = queries()
    assert answers(again, qs) == answers(fresh, qs)
    with pytest.raises(ValueError, match="graph holds 400 vectors; expected 10"):
        ItemIndex(**SETTINGS).adopt(ids[:10], graph)


def test_a_saved_graph_is_reused_for_its_version_and_extra_items_join_the_delta(tmp_path):
    store = IndexStore(tmp_path / INDEX_DIR)
    ids, vecs = catalogue()
    fresh = ItemIndex(**SETTINGS).build(ids, vecs)
    assert store.save("v000001", fresh)
    assert sorted(p.name for p in store.folder.iterdir()) == ["v000001.faiss", "v000001.json"]
    more_ids = np.concatenate([ids, np.array(["new1", "new2"], dtype=object)])
    extra = np.zeros((2, 8), dtype=np.float32)
    extra[:, 0] = 100.0  # far ahead of every other item on the first axis
    more_vecs = np.concatenate([vecs, extra])
    loaded = store.load("v000001", ItemIndex(**SETTINGS), more_ids[::-1].copy(), more_vecs[::-1])
    assert loaded is not None and loaded.kind == "hnsw" and len(loaded) == 402
    qs = queries()
    q = np.zeros(8, dtype=np.float32)
    q[0] = 1.0
    assert set(loaded.search(q, k=2)[0].tolist()) == {"new1", "new2"}
    # without the new items, every answer is the fresh build's
    plain = store.load("v000001", ItemIndex(**SETTINGS), ids, vecs)
    assert answers(plain, qs) == answers(fresh, qs)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("version", None),  # another version: no file, nothing to say
        ("vectors", "0.0 % of its vectors are the model's now"),
        ("items", "holds items the model does not"),
        ("m", "m 8, expected 16"),
        ("damaged", "unreadable"),
    ],
)
def test_a_graph_that_does_not_fit_is_not_used(tmp_path, caplog, change, reason):
    store = IndexStore(tmp_path / INDEX_DIR)
    ids, vecs = catalogue()
    store.save("v000001", ItemIndex(**SETTINGS).build(ids, vecs))
    version, settings = "v000001", dict(SETTINGS)
    if change == "version":
        version = "v000002"
    elif change == "vectors":
        vecs = vecs + 0.01
    elif change == "items":
        ids, vecs = ids[1:], vecs[1:]
    elif change == "m":
        settings["m"] = 16
    elif change == "damaged":
        path = store.folder / "v000001.faiss"
        path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.INFO, logger="lifelongrec.serving"):
        assert store.load(version, ItemIndex(**settings), ids, vecs) is None
    if reason is not None:
        assert reason in caplog.text


def test_items_whose_vector_changed_are_served_from_the_delta(tmp_path):
    store = IndexStore(tmp_path / INDEX_DIR)
    ids, vecs = catalogue()
    store.save("v000001", ItemIndex(**SETTINGS).build(ids, vecs))
    moved = vecs.copy()
    moved[7] = 0.0
    moved[7, 0] = 100.0  # item i7 now leads the first axis
    loaded = store.load("v000001", ItemIndex(**SETTINGS), ids, moved)
    assert loaded is not None and len(loaded) == 400
    q = np.zeros(8, dtype=np.float32)
    q[0] = 1.0
    assert loaded.search(q, k=1)[0].tolist() == ["i7"]
    assert np.array_equal(loaded.vector("i7"), moved[7])


def test_exact_indexes_are_not_saved_and_a_new_save_replaces_the_old(tmp_path):
    store = IndexStore(tmp_path / INDEX_DIR)
    ids, vecs = catalogue(n=30)
    assert not store.save("v000001", ItemIndex(**SETTINGS).build(ids, vecs))  # 30 <= 50: exact
    assert not store.folder.exists()
    ids, vecs = catalogue()
    store.save("v000001", ItemIndex(**SETTINGS).build(ids, vecs))
    store.save("v000002", ItemIndex(**SETTINGS).build(ids, vecs))
    assert sorted(p.name for p in store.folder.iterdir()) == ["v000002.faiss", "v000002.json"]


def _first_start(home, cfg):
    """Open the home once and close it: its version, ten users, their top 5 and the
    graph file that start saved."""
    from lifelongrec.serving import RecommenderService

    first = RecommenderService.open(home, config=cfg)
    try:
        version = first.live_version
        users = sorted(first.live.model.known_users())[:10]
        before = [[i["item_id"] for i in first.recommend(u, k=5)["items"]] for u in users]
    finally:
        first.close()
    graph = home / INDEX_DIR / f"{version}.faiss"
    assert graph.exists()
    return version, users, before, graph


def test_a_restarted_service_serves_from_the_saved_graph(home, service_config):
    """The second start reads the graph the first start saved (the file is not written
    again) and answers as the first did."""
    from lifelongrec.serving import RecommenderService

    cfg = {**service_config, "ann_threshold": 10}
    version, users, before, graph = _first_start(home, cfg)
    stamp = graph.stat().st_mtime_ns
    second = RecommenderService.open(home, config=cfg)
    try:
        assert second.live_version == version and second.live.index.kind == "hnsw"
        after = [[i["item_id"] for i in second.recommend(u, k=5)["items"]] for u in users]
    finally:
        second.close()
    assert graph.stat().st_mtime_ns == stamp
    assert after == before


def test_a_restart_gives_items_met_first_in_caught_up_events_their_catalogue_content(
    home, service_config, monkeypatch
):
    """The catalogue is admitted before the events after the champion are caught up, so
    an item whose first event came after the champion was registered is served with its
    content, as the start that admitted it from the catalogue served it (before, the
    event gave it a row without content, and the catalogue admission skipped it)."""
    from lifelongrec.models import Recommender
    from lifelongrec.serving import RecommenderService

    first = RecommenderService.open(home, config=service_config)
    try:
        version = first.live_version
        category = first.live.model.categories_[0]
        first.upsert_item({"item_id": "late-item", "categories": [category]}, wait=True)
        want = first.live.model.item_vectors(["late-item"])[1][0]
        user = sorted(first.live.model.known_users())[0]
        first.ingest({"user_id": user, "item_id": "late-item", "timestamp": 2_100_000_000})
    finally:
        first.close()
    champion = Recommender.load(home / "registry" / "versions" / version / "model")
    assert "late-item" not in set(champion.item_ids_)  # only the live copy had it
    from lifelongrec.serving import _live

    # the events after the champion are caught up in chunks this long before the
    # catalogue (a large catch-up; the last, short chunk comes after it either way)
    monkeypatch.setattr(_live, "READ_CHUNK", 1)
    second = RecommenderService.open(home, config=service_config)
    try:
        assert second.live_version == version
        got = second.live.model.item_vectors(["late-item"])[1][0]
    finally:
        second.close()
    assert np.abs(want).sum() > 0 and np.allclose(got, want, atol=1e-6)


def test_an_exact_index_above_the_threshold_is_rebuilt_from_the_saved_graph(tmp_path):
    """A lazy start's index: exact although the catalogue is above the threshold (so
    it needs a rebuild), then rebuilt from the saved graph, with what was upserted in
    between carried over."""
    ids, vecs = catalogue()
    store = IndexStore(tmp_path / INDEX_DIR)
    assert not store.has("v1")
    store.save("v1", ItemIndex(**SETTINGS).build(ids, vecs))
    assert store.has("v1") and not store.has("v2")
    lazy = ItemIndex(**SETTINGS).build(ids, vecs, exact=True)
    assert lazy.kind == "exact" and lazy.needs_rebuild
    qs = queries()
    exact = answers(lazy, qs)
    extra = np.random.default_rng(3).normal(size=(1, 8)).astype(np.float32) * 10
    lazy.upsert(["late"], extra)
    made = []

    def from_saved(got_ids, got_vecs):
        made.append(len(got_ids))
        return store.load("v1", ItemIndex(**SETTINGS), got_ids, got_vecs)

    fresh = lazy.rebuilt(from_saved)
    assert made == [len(ids) + 1] and fresh.kind == "hnsw" and not fresh.needs_rebuild
    assert "late" in fresh and fresh.search(extra[0], k=1)[0].tolist() == ["late"]
    lazy.upsert(["later"], -extra)  # written to the old index after: passed on
    assert "later" in fresh
    hits = [fresh.search(q, k=10)[0].tolist() for q in qs]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hits, exact, strict=True)])
    assert overlap >= 0.9  # the graph's answers, close to the exact ones


def test_a_start_with_background_work_answers_before_reading_the_graph(home, service_config):
    """With background work on, a start serves by exact search at once and the
    housekeeping reads the saved graph back (not written again). (With it off the
    graph is read before ``open`` returns: the test above.)"""
    import time

    from lifelongrec.serving import RecommenderService

    cfg = {**service_config, "ann_threshold": 10}
    version, users, before, graph = _first_start(home, cfg)
    stamp = graph.stat().st_mtime_ns
    lazy_cfg = {**cfg, "background": True, "learner_mode": "thread", "challenger_every": 10**9}
    second = RecommenderService.open(home, config=lazy_cfg, start=False)
    try:
        assert second.live.index.kind == "exact"  # answering already, exactly
        exact = [[i["item_id"] for i in second.recommend(u, k=5)["items"]] for u in users]
        second.start_learner()  # its housekeeping reads the graph back
        end = time.monotonic() + 60
        while second.live.index.kind != "hnsw" and time.monotonic() < end:
            time.sleep(0.05)
        assert second.live.index.kind == "hnsw"
        after = [[i["item_id"] for i in second.recommend(u, k=5)["items"]] for u in users]
    finally:
        second.close()
    assert graph.stat().st_mtime_ns == stamp  # read back, not rebuilt
    assert after == before
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, before, strict=True)])
    assert overlap >= 0.8
