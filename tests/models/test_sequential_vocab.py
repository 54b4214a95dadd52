"""The sequential model's dynamic vocabulary: admission threshold, expiry, row reuse,
save/load of all of it, a new item recommended mid-stream from its content, and flat
memory on a churning stream (through benchmarks/churn.py)."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_sequential import TINY, catalogue, two_worlds

from lifelongrec import DataError, ParameterError, UnknownIdError
from lifelongrec.data import Dataset, make_events, synthetic
from lifelongrec.models import ItemKNN, Recommender, SequentialRecommender
from lifelongrec.models.sequential import OOV_ROW, FreeRow

#: Structure, not quality, is under test in most places: a few epochs do.
FAST = {**TINY, "epochs": 3}
FAR = 10**6  # seconds after the world's last event: beyond every time-to-live below
TTL = dict(user_ttl=1000, item_ttl=1000.0)


def _stored_items(model, user):
    """Stored history of ``user`` as item ids (``"<oov>"`` for an OOV event)."""
    row = model.user_histories_["items"][model.user_rows(user)[0]]
    return ["<oov>" if r == OOV_ROW else model.item_ids_[r - 1] for r in row if r != 0]


# ------------------------------------------------------------------ admission
def rare_world():
    """two_worlds plus two items seen once: ``rare1`` in the middle of auser0's history
    (so it is an input of training windows), ``rare2`` as buser1's last event."""
    world = two_worlds()
    ev = world.events
    a0 = ev[ev["user_id"] == "auser0"]["timestamp"].to_numpy()
    b1 = ev[ev["user_id"] == "buser1"]["timestamp"].to_numpy()
    extra = make_events(["auser0", "buser1"], ["rare1", "rare2"], [a0[3] + 1, b1[-1] + 1])
    events = pd.concat([ev, extra], ignore_index=True).sort_values("timestamp", kind="stable")
    return Dataset(events=events.reset_index(drop=True), items=world.items)


def test_items_below_min_count_get_no_row_but_stay_as_context():
    data = rare_world()
    model = SequentialRecommender(**{**FAST, "item_min_count": 3}).fit(data)
    counts = data.events["item_id"].value_counts()
    want = set(counts.index[counts >= 3])
    assert set(model.item_ids_) == want and model.n_items == len(want)
    pending = model.item_vocab_.pending
    assert set(pending) == set(counts.index[counts < 3])
    last = data.events.groupby("item_id")["timestamp"].max()
    assert pending["rare1"] == (1, last["rare1"])
    assert model.n_oov_events_ == int(counts[counts < 3].sum())
    # the events are kept, in place, through the OOV row
    hist = data.events[data.events["user_id"] == "auser0"]["item_id"].tolist()[-TINY["max_len"] :]
    assert _stored_items(model, "auser0") == [i if i in want else "<oov>" for i in hist]
    # ... whose vector was learned from them (rare1 is an input of auser0's windows)
    assert torch.count_nonzero(model.module_.item_tower.oov) > 0
    ids, _ = model.recommend(["auser0", "buser1"], k=model.n_items + 3, exclude_seen=False)
    assert not (set(ids.ravel()) & set(pending))
    with pytest.raises(UnknownIdError, match="rare2"):
        model.score_items("buser1", items=["a1", "rare2"])


def test_a_pending_event_moves_the_user_vector_and_admission_comes_with_the_count():
    model = SequentialRecommender(**{**FAST, "item_min_count": 2, "partial_fit_epochs": 0})
    model.fit(two_worlds())
    before = model.user_vectors("auser0")
    n_items = model.n_items
    t = int(model.last_timestamp_)
    model.partial_fit(make_events(["auser0"], ["fresh"], [t + 1]))
    assert "fresh" not in model.item_index_ and model.item_vocab_.pending["fresh"] == (1, t + 1)
    assert _stored_items(model, "auser0")[-1] == "<oov>"
    assert not np.allclose(model.user_vectors("auser0"), before)  # something happened
    assert model.n_oov_events_ == 1 and model.n_items == n_items
    model.partial_fit(make_events(["auser2"], ["fresh"], [t + 2]))  # the second event
    row = model.item_index_["fresh"]
    assert row == n_items and model.item_vocab_.n_pending == 0
    assert model.item_counts_[row] == 1  # only the admitted event has a column
    assert _stored_items(model, "auser2")[-1] == "fresh"
    assert _stored_items(model, "auser0")[-1] == "<oov>"  # stored as it was
    ids, _ = model.recommend("buser1", k=model.n_items, exclude_seen=False)
    assert "fresh" in set(ids)


def test_oov_only_when_needed_and_defaults_admit_everything():
    plain = SequentialRecommender(**{**FAST, "epochs": 1}).fit(two_worlds())
    assert plain.module_.item_tower.oov is None  # the default model is as before
    assert plain.item_vocab_.n_pending == 0 and plain.n_oov_events_ == 0
    with_ttl = SequentialRecommender(**{**FAST, "epochs": 1, **TTL}).fit(two_worlds())
    assert with_ttl.module_.item_tower.oov is not None


def test_no_admitted_item_is_a_data_error():
    with pytest.raises(DataError, match=r"no item has enough events.*item_min_count=100"):
        SequentialRecommender(**{**TINY, "item_min_count": 100}).fit(two_worlds())


# ------------------------------------------------------------------ expiry
@pytest.fixture(scope="module")
def aged():
    """A fitted model with time-to-live, and the update FAR later in which only auser0,
    auser2 (on a1, a2), a new user and a new item act: everything else expires."""
    world = two_worlds()
    model = SequentialRecommender(**{**FAST, **TTL, "partial_fit_epochs": 0}).fit(world)
    t = int(world.events["timestamp"].max()) + FAR
    update = Dataset(
        events=make_events(
            ["auser0", "auser2", "newbie", "auser2"], ["a1", "a2", "a2", "a_new"], [t, t, t, t + 1]
        ),
        items=catalogue(10, ["a_new"]),
    )
    return world, model, update


def test_expiry_frees_rows_and_new_ids_reuse_them(aged):
    world, fitted, update = aged
    model = copy.deepcopy(fitted)
    n_users, n_items = model.n_users, model.n_items
    old_rows = {i: model.item_index_[i] for i in model.item_ids_}
    model.partial_fit(update)
    alive_items, alive_users = {"a1", "a2", "a_new"}, {"auser0", "auser2", "newbie"}
    assert set(model.expired_["items"]) == set(world.events["item_id"]) - alive_items
    assert set(model.expired_["users"]) == set(world.events["user_id"]) - alive_users
    assert model.expired_["now"] == int(update.events["timestamp"].max())
    # tables keep their size: the new user and item took the lowest freed rows
    assert (model.n_items, model.n_users) == (n_items, n_users)
    freed = sorted(old_rows[i] for i in model.expired_["items"])
    assert model.item_index_["a_new"] == freed[0]
    assert model.item_vocab_.free_rows.tolist() == freed[1:]
    assert model.user_rows("newbie")[0] < n_users
    assert set(model.known_items()) == alive_items
    # free rows hold placeholders equal to no id: the id arrays stay unique, so an index
    # on them (as the evaluation protocols build) maps expired ids nowhere
    for ids in (model.item_ids_, model.user_ids_):
        assert pd.Index(ids).is_unique and len(ids) == len(set(ids))
    rows = pd.Index(model.item_ids_).get_indexer(["a1", "b3", "a_new"])
    assert rows.tolist() == [model.item_index_["a1"], -1, model.item_index_["a_new"]]
    assert model.item_ids_[freed[1]] == FreeRow(freed[1]) != FreeRow(freed[2])
    assert model.n_expired_items_ == len(freed) and model.n_expired_users_ == n_users - 2


def test_freed_rows_are_reset_and_never_recommended(aged):
    _, fitted, update = aged
    model = copy.deepcopy(fitted)
    model.partial_fit(update)
    free = model.item_vocab_.free_rows
    tower = model.module_.item_tower
    t = torch.as_tensor(free + 1)
    assert torch.count_nonzero(tower.id_emb.weight[t]) == 0
    assert torch.count_nonzero(tower.content[t]) == 0
    state = model.optimizer_.state[tower.id_emb.weight]
    assert all(torch.count_nonzero(state[k][t]) == 0 for k in ("exp_avg", "exp_avg_sq"))
    assert model.item_categories_[free].nnz == 0
    assert model.user_items_[:, free].nnz == 0 and (model.item_counts_[free] == 0).all()
    free_users = model.user_vocab_.free_rows
    assert model.user_items_[free_users].nnz == 0
    assert all((m[free_users] == 0).all() for m in model.user_histories_.values())
    # scores: -inf exactly at the free rows
    S = model.score_items(["auser0", "ghost"])
    assert np.isneginf(S[:, free]).all() and np.isfinite(np.delete(S, free, axis=1)).all()
    ids, scores = model.recommend("auser0", k=5, exclude_seen=False)
    assert set(ids[:3]) == {"a1", "a2", "a_new"} and np.isfinite(scores[:3]).all()
    assert ids[3:].tolist() == [None, None] and np.isneginf(scores[3:]).all()
    assert set(model.recommend("ghost", k=3)[0]) == {"a1", "a2", "a_new"}  # cold start too
    ids, _ = model.similar_items("a1", k=3)
    assert set(ids[:2]) == {"a2", "a_new"} and ids[2] is None
    hist = pd.DataFrame({"user_id": ["q"], "item_id": ["a1"], "timestamp": [1]})
    S = model.score_histories("q", hist)
    assert np.isneginf(S[free]).all()


def test_expired_ids_are_unknown_and_come_back_as_new(aged):
    world, fitted, update = aged
    model = copy.deepcopy(fitted)
    old_emb = model.module_.item_tower.id_emb.weight[model.item_index_["b3"] + 1].clone()
    assert torch.count_nonzero(old_emb) > 0  # b3 had learned an id embedding
    model.partial_fit(update)
    with pytest.raises(UnknownIdError, match="b3"):
        model.similar_items("b3")
    with pytest.raises(UnknownIdError, match="b3"):
        model.score_items("auser0", items=["a1", "b3"])
    with pytest.raises(UnknownIdError, match="buser1"):
        model.predict_event_type("buser1")
    assert model.user_rows(["buser1", "auser0"])[0] == -1
    # auser0 keeps its history; events on expired items became OOV events
    hist = world.events[world.events["user_id"] == "auser0"]["item_id"].tolist()
    want = [i if i in {"a1", "a2"} else "<oov>" for i in hist][-(TINY["max_len"] - 1) :]
    assert _stored_items(model, "auser0") == [*want, "a1"]
    # seen again: a new row, a fresh start (zero id embedding, empty history)
    t = model.last_timestamp_ + 1
    model.partial_fit(make_events(["buser1"], ["b3"], [t]))
    row = model.item_index_["b3"]
    assert torch.count_nonzero(model.module_.item_tower.id_emb.weight[row + 1]) == 0
    assert _stored_items(model, "buser1") == ["b3"]
    assert model.item_vocab_.counts[row] == 1


def test_a_reused_row_starts_exactly_as_a_new_row(aged):
    world, fitted, update = aged
    reuse = copy.deepcopy(fitted)
    reuse.partial_fit(update)
    # the same model without time-to-live appends a_new at the end instead
    grow = SequentialRecommender(**{**FAST, "partial_fit_epochs": 0}).fit(world)
    grow.partial_fit(update)
    assert grow.item_index_["a_new"] == grow.n_items - 1 != reuse.item_index_["a_new"]
    r, g = reuse.item_index_["a_new"], grow.item_index_["a_new"]
    tr, tg = reuse.module_.item_tower, grow.module_.item_tower
    assert torch.equal(tr.content[r + 1], tg.content[g + 1])
    assert torch.count_nonzero(tr.content[r + 1]) > 0
    assert torch.count_nonzero(tr.id_emb.weight[r + 1]) == 0
    (_, v_reuse), (_, v_grow) = reuse.item_vectors("a_new"), grow.item_vectors("a_new")
    np.testing.assert_allclose(v_reuse, v_grow, atol=1e-6)
    assert (
        reuse.item_categories_[r].toarray().tolist() == grow.item_categories_[g].toarray().tolist()
    )
    assert reuse.item_counts_[r] == grow.item_counts_[g] == 1


def test_a_row_freed_during_training_is_reset_again_when_reused():
    world = two_worlds()
    params = {**FAST, **TTL, "partial_fit_epochs": 2, "ewc_weight": 1.0, "distill_weight": 1.0}
    model = SequentialRecommender(**params).fit(world)
    t = int(world.events["timestamp"].max()) + FAR
    users = ["auser0", "auser2", "auser4"] * 3
    items = ["a1", "a2", "a3", "a2", "a3", "a4", "a3", "a4", "a5"]
    model.partial_fit(make_events(users, items, range(t, t + 9)))  # frees, then trains
    tower = model.module_.item_tower
    weight, name = tower.id_emb.weight, "item_tower.id_emb.weight"
    row = int(model.item_vocab_.free_rows[0]) + 1
    adam = model.optimizer_.state[weight]
    # while free, the row was a negative of the full softmax: it moved, and so did its
    # optimiser state and (estimated after the update) its Fisher information
    assert torch.count_nonzero(weight[row]) > 0 and torch.count_nonzero(adam["exp_avg"][row]) > 0
    assert torch.count_nonzero(model.ewc_.fisher[name][row]) > 0
    model.add_items(catalogue(10, ["a_late"]).tail(1))
    assert model.item_index_["a_late"] + 1 == row
    assert torch.count_nonzero(weight[row]) == 0
    assert torch.count_nonzero(adam["exp_avg"][row]) == 0
    assert torch.count_nonzero(adam["exp_avg_sq"][row]) == 0
    assert torch.count_nonzero(model.ewc_.fisher[name][row]) == 0
    assert torch.count_nonzero(model.ewc_.anchor[name][row]) == 0
    assert torch.count_nonzero(tower.content[row]) > 0  # from its catalogue row


def test_explicit_expire_and_its_errors():
    world = two_worlds()  # spans about 10^4 seconds
    params = {**FAST, "user_ttl": 10**5, "item_ttl": 10**5, "epochs": 1}
    model = SequentialRecommender(**params).fit(world)
    assert model.expire() == {  # now = the newest event: nothing is that old
        "now": model.last_timestamp_,
        "users": [],
        "items": [],
        "n_pending_items_dropped": 0,
    }
    last = world.events.groupby("item_id")["timestamp"].max()
    last_u = world.events.groupby("user_id")["timestamp"].max()
    median = int(last.median())
    out = model.expire(now=median + 10**5)
    assert set(out["items"]) == set(last.index[last < median]) and out["items"]
    assert set(out["users"]) == set(last_u.index[last_u < median])
    assert out is model.expired_ and model.n_items == 20  # rows kept, freed
    assert model.item_vocab_.n_free == len(out["items"])
    for bad in ("tomorrow", 1.5, float("nan"), True):
        with pytest.raises(ParameterError, match="'now' must be None or an integer timestamp"):
            model.expire(now=bad)
    plain = SequentialRecommender(**{**FAST, "epochs": 1}).fit(world)
    assert plain.expire(now=10**12)["items"] == []  # no time-to-live: nothing expires
    with pytest.raises(NotImplementedError, match="ItemKNN keeps every id"):
        ItemKNN().fit(world).expire()


def test_the_prequential_protocol_runs_on_a_model_that_expires_and_admits():
    from lifelongrec.evaluation import prequential

    data = synthetic(n_events=900, seed=2, n_users=40, n_items=60, duration_days=60)
    params = {**FAST, "epochs": 1, "partial_fit_epochs": 1, "text_encoder": None}
    model = SequentialRecommender(**params, item_min_count=2, item_ttl=10 * 86400.0)
    out = prequential(model, data, "finetune", n_windows=3, k=5, progress=False)
    assert len(out["windows"]) == 3
    assert all(0.0 <= w["ndcg@5"] <= 1.0 for w in out["windows"][1:])


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("item_min_count", 0, "an integer >= 1"),
        ("item_min_count", 2.0, "an integer >= 1"),
        ("user_ttl", 0, "None or a finite number > 0"),
        ("user_ttl", "1d", "None or a finite number > 0"),
        ("item_ttl", float("inf"), "None or a finite number > 0"),
        ("item_ttl", True, "None or a finite number > 0"),
    ],
)
def test_bad_vocabulary_parameters(name, value, expected):
    model = SequentialRecommender(**{**TINY, name: value})
    with pytest.raises(ParameterError, match=rf"'{name}' must be {expected}"):
        model.fit(two_worlds())


def test_save_load_round_trips_the_vocabulary(aged, tmp_path):
    world, fitted, update = aged
    params = {**FAST, **TTL, "item_min_count": 2, "partial_fit_epochs": 2}
    model = SequentialRecommender(**params).fit(world)
    t = int(world.events["timestamp"].max()) + FAR
    model.partial_fit(update)  # expires most ids, reuses rows
    model.partial_fit(make_events(["auser0"], ["maybe"], [t + 5]))  # a pending item
    assert set(model.item_vocab_.pending) == {"a_new", "maybe"}  # once each
    back = Recommender.load(model.save(tmp_path / "m"))
    for a, b in ((model.user_vocab_, back.user_vocab_), (model.item_vocab_, back.item_vocab_)):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.last_seen, b.last_seen)
        np.testing.assert_array_equal(a.free_rows, b.free_rows)
        assert a.pending == b.pending
    np.testing.assert_array_equal(back.item_ids_, model.item_ids_)
    assert back.item_vocab_.pending["maybe"] == (1, t + 5) and back.n_items == model.n_items
    assert back.expired_ == model.expired_ and back.last_timestamp_ == model.last_timestamp_
    assert back.n_oov_events_ == model.n_oov_events_ == 2
    for key in model.user_histories_:
        np.testing.assert_array_equal(back.user_histories_[key], model.user_histories_[key])
    users = ["auser0", "auser2", "newbie"]
    np.testing.assert_array_equal(back.score_items(users), model.score_items(users))
    assert back.recommend(users, k=4)[0].tolist() == model.recommend(users, k=4)[0].tolist()
    nxt = make_events(["auser0", "fresh_user"], ["maybe", "b7"], [t + 6, t + 7])
    model.partial_fit(nxt)
    back.partial_fit(nxt)
    assert back.item_index_["maybe"] == model.item_index_["maybe"]
    np.testing.assert_allclose(back.score_items(users), model.score_items(users), atol=1e-6)


# ---------------------------------------------------------------- mid-stream item
@pytest.fixture(scope="module")
def shop():
    """A synthetic shop learned from its first 70% of events, no text (categories and
    numeric attributes are the content), and each user's share of each top category."""
    data = synthetic(
        n_events=3000,
        seed=1,
        n_categories=4,
        new_item_rate=0.0,
        new_user_rate=0.0,
        interest_concentration=0.3,
    )
    ev = data.events
    cut = int(ev["timestamp"].quantile(0.7))
    early = Dataset(events=ev[ev["timestamp"] <= cut].reset_index(drop=True), items=data.items)
    params = {**TINY, "text_encoder": None, "max_len": 20, "epochs": 10, "batch_size": 32}
    model = SequentialRecommender(**params, id_dropout=0.3).fit(early)
    top = data.items.set_index("item_id")["categories"].map(lambda c: c[0])
    share = pd.crosstab(
        early.events["user_id"], early.events["item_id"].map(top), normalize="index"
    )
    return data, model, share, cut


def _new_item(data, category, cut, item_id):
    """A catalogue row for a brand-new item of ``category``: a sibling of its first item."""
    proto = data.items[data.items["categories"].map(lambda c: c[0]) == category].iloc[0]
    attrs = {**proto["attributes"], "arrival": cut}
    row = {"item_id": item_id, "title": f"{proto['title']} II"}
    return pd.DataFrame([{**row, "categories": list(proto["categories"]), "attributes": attrs}])


def _ranks(model, users, item):
    S = model.score_items(list(users))
    col = model.item_index_[item]
    return (S > S[:, [col]]).sum(axis=1)  # 0 = ranked first


@pytest.mark.parametrize("category", ["Books", "Clothing", "Electronics", "Home & Kitchen"])
def test_new_item_mid_stream_goes_to_users_of_its_category(shop, category):
    data, fitted, share, cut = shop
    model = copy.deepcopy(fitted)
    state = {k: v.clone() for k, v in model.module_.state_dict().items() if "id_emb" not in k}
    model.add_items(_new_item(data, category, cut, "NEW"))
    for k, v in model.module_.state_dict().items():  # no retraining of any kind
        if "id_emb" not in k and k != "item_tower.content":
            assert torch.equal(v, state[k]), k
    fans = share.index[share[category] >= 0.6]
    others = share.index[share[category] <= 0.1]
    assert len(fans) >= 5 and len(others) >= 20
    r_fans, r_others = _ranks(model, fans, "NEW"), _ranks(model, others, "NEW")
    # the users whose history is this category rank the new item far higher
    assert r_fans.mean() < 0.6 * r_others.mean(), (r_fans.mean(), r_others.mean())
    assert np.median(r_fans) < np.median(r_others)


def test_new_item_by_one_event_and_its_catalogue_row(shop):
    data, fitted, share, cut = shop
    model = copy.deepcopy(fitted)
    buyer = share.index[share["Electronics"] >= 0.6][0]
    row = _new_item(data, "Electronics", cut, "NEW")
    new = Dataset(events=make_events([buyer], ["NEW"], [cut + 1]), items=row)
    model.partial_fit(new, epochs=0)  # the history and the row, no gradient step
    fans = share.index[(share["Electronics"] >= 0.6) & (share.index != buyer)]
    others = share.index[share["Electronics"] <= 0.1]
    assert _ranks(model, fans, "NEW").mean() < 0.6 * _ranks(model, others, "NEW").mean()


# ------------------------------------------------------------------ churn
@pytest.fixture(scope="module")
def churn():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "churn.py"
    spec = importlib.util.spec_from_file_location("bench_churn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_churn_stream_keeps_the_active_set_and_renames_ids(churn):
    windows, info = churn.churn_stream(
        n_windows=6, n_users=30, n_items=40, events_per_window=200, churn=0.3, seed=1
    )
    assert len(windows) == 6 and all(len(w.events) == 200 for w in windows)
    base_items = [w.events["item_id"].str.split("~").str[0] for w in windows]
    assert set().union(*map(set, base_items)) <= {f"i{j:06d}" for j in range(40)}
    ids = [set(w.events["item_id"]) for w in windows]
    assert ids[5] - set().union(*ids[:5])  # new ids keep arriving
    for w in windows:  # every id of a window has its catalogue row
        assert set(w.events["item_id"]) <= set(w.items["item_id"])
    assert info["n_users"] == 30 and info["n_items"] == 40


def test_rows_stay_bounded_with_expiry_and_grow_without(churn):
    windows, info = churn.churn_stream(
        n_windows=8, n_users=30, n_items=40, events_per_window=150, churn=0.3, seed=0
    )
    params = {**FAST, "epochs": 1, "partial_fit_epochs": 1, "text_encoder": None}
    ttl = 1.5 * info["window_seconds"]
    kept = churn.run_stream(windows, params, ttl=None)
    freed = churn.run_stream(windows, params, ttl=ttl)
    for kind, population in (("item", info["n_items"]), ("user", info["n_users"])):
        k = [r[f"{kind}_rows"] for r in kept]
        f = [r[f"{kind}_rows"] for r in freed]
        # without expiry every id ever seen keeps a row; with it, rows are bounded by
        # the ids alive within a time-to-live (the population, plus the renamed ones of
        # at most three windows), however long the stream
        assert k == sorted(k) and k[-1] > population * (1 + 3 * 0.3)
        assert max(f) <= population * (1 + 3 * 0.3), (kind, f)
        assert f[-1] - f[4] < (k[-1] - k[4]) / 4, (kind, f, k)  # flat in the second half
    assert freed[-1]["item_free"] + freed[-1]["item_active"] == freed[-1]["item_rows"]
    assert freed[-1]["total_bytes"] < kept[-1]["total_bytes"]
    assert all(r["rss_bytes"] > 0 for r in freed)


# ------------------------------------------------------------- the right to be forgotten
def test_forget_users_erases_state_frees_the_row_and_pending_material():
    world = two_worlds()
    model = SequentialRecommender(**FAST).fit(world)
    row = int(model.user_rows(["auser0"])[0])
    t = int(world.events["timestamp"].max()) + 1
    model.observe(make_events(["auser0", "auser1"], ["a1", "a2"], [t, t]))
    assert model.n_online_pending == 2
    assert model.forget_users(["auser0", "nobody"]) == ["auser0"]
    assert int(model.user_rows(["auser0"])[0]) == -1
    assert not model.user_histories_["items"][row].any()
    assert model.user_items_[row].nnz == 0
    assert model.n_online_pending == 1  # auser1's event stays, auser0's is gone
    assert model.online_step(1)["n_events"] == 1
    # the row is reused by the next new user, who starts from nothing of auser0's
    model.observe(make_events(["fresh"], ["a3"], [t + 1]))
    assert int(model.user_rows(["fresh"])[0]) == row
    assert _stored_items(model, "fresh") == ["a3"]
    assert model.forget_users("fresh") == ["fresh"]
    # every model erases users now (tests/models/test_observe_forget.py)
    assert ItemKNN().fit(world).forget_users(["auser0"]) == ["auser0"]


def test_item_vectors_score_like_recommend_and_skip_free_rows(aged):
    world, fitted, update = aged
    model = copy.deepcopy(fitted)
    model.partial_fit(update)  # frees rows of expired items
    ids, V = model.item_vectors()
    assert not any(isinstance(i, FreeRow) for i in ids)
    assert set(ids) == set(model.known_items())
    u = model.user_vectors("auser0")
    order = np.argsort(-(V @ u), kind="stable")
    top, scores = model.recommend("auser0", k=3, exclude_seen=False)
    assert list(ids[order[:3]]) == list(top)
    np.testing.assert_allclose(np.sort(V @ u)[::-1][:3], scores, rtol=1e-5)


def test_encode_state_of_a_copy_equals_user_vectors_at_the_copy():
    world = two_worlds()
    model = SequentialRecommender(**FAST).fit(world)  # no time-to-live: nothing expires
    users = ["auser0", "buser1"]
    state = model.user_state(users)
    before = model.user_vectors(users)
    np.testing.assert_allclose(model.encode_state(state), before, rtol=1e-6)
    t = int(world.events["timestamp"].max()) + 1
    model.observe(make_events(["auser0"], ["b1"], [t]))  # the copy does not move
    np.testing.assert_allclose(model.encode_state(state), before, rtol=1e-6)
    assert not np.allclose(model.user_vectors("auser0"), before[0])
    assert model.encode_state(model.user_state([])).shape == (0, model.dim)
    with pytest.raises(UnknownIdError):
        model.user_state(["nobody"])
