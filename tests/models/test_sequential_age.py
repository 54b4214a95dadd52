"""The item-age bias (``item_age=True``): the tower's bias against an independent
computation, target times in the training windows, and a world where new items are
what users pick next."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lifelongrec.data import Dataset, make_events, make_items
from lifelongrec.models import Recommender, SequentialRecommender
from lifelongrec.models.sequential._modules import (
    AGE_BUCKETS,
    NEVER,
    ItemTower,
    ItemTowerConfig,
)
from lifelongrec.nn import (
    MultiTaskLoss,
    TrainConfig,
    concat_windows,
    training_windows,
    windows_ending_at,
)

HOUR = 3600


def _numpy_age_bias(table, first_h, query_h):
    """The bias by hand: bucket floor(log2(1 + age hours)) for items first seen before
    the query, else table[0] - log(items not seen before the query)."""
    out = np.empty((len(query_h), len(first_h)))
    for p, q in enumerate(query_h):
        n_new = sum(1 for f in first_h if not f < q)
        for j, f in enumerate(first_h):
            if f < q:
                b = min(int(math.floor(math.log2(1.0 + (q - f)))), AGE_BUCKETS - 1)
                out[p, j] = table[1 + b]
            else:
                out[p, j] = table[0] - math.log(max(n_new, 1))
    return out


def test_age_scores_match_a_hand_computation():
    tower = ItemTower(ItemTowerConfig(n_items=6, dim=4, item_age=True))
    with torch.no_grad():
        tower.age_bias.copy_(torch.arange(AGE_BUCKETS + 1, dtype=torch.float32) * 0.1 - 0.5)
    first_s = np.array([0, 1_000 * HOUR, 1_000 * HOUR + 1_800, 1_003 * HOUR, 2_000_000 * HOUR])
    rows = torch.arange(1, 6)
    tower.seen(rows, torch.as_tensor(first_s))
    tower.seen(torch.tensor([1, 0]), torch.tensor([5 * HOUR, -7]))  # later / padding: no change
    first_h = first_s / HOUR
    np.testing.assert_array_equal(tower.first_ts[1:6].numpy(), first_s)
    assert int(tower.first_ts[6]) == int(tower.first_ts[0]) == NEVER
    # queries: before everything, at an item's own first second, one second after it,
    # between, long after
    query_s = np.array([-HOUR, 1_000 * HOUR, 1_000 * HOUR + 1, 1_003 * HOUR + 1, 10**7 * HOUR])
    q = torch.as_tensor(query_s)
    n_new = tower.count_new(q)
    assert n_new.tolist() == [6, 5, 4, 2, 1]  # the unseen sixth row always counts
    norm = tower.new_norm(q)  # without release age: log of the count (at least 1)
    np.testing.assert_allclose(norm.numpy(), np.log([6, 5, 4, 2, 1]), rtol=1e-6)
    got = tower.age_scores(q[:, None], None, norm[:, None])
    table = tower.age_bias.detach().numpy().astype(np.float64)
    want = _numpy_age_bias(table, [*first_h, math.inf], query_s / HOUR)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    # an item first seen at the query's own second is new at that query (its own
    # event), and known (age bucket 0) one second later
    assert float(got[1, 1].detach()) == pytest.approx(table[0] - math.log(5), rel=1e-6)
    assert float(got[2, 1].detach()) == pytest.approx(table[1], rel=1e-6)
    # rows given explicitly: the same bias as the full matrix's columns
    rows = torch.tensor([[2, 5], [6, 1]])
    part = tower.age_scores(q[3:5, None], rows, norm[3:5, None])
    expected = [[want[3, 1], want[3, 4]], [want[4, 5], want[4, 0]]]
    np.testing.assert_allclose(part.detach().numpy(), expected, rtol=1e-5)
    # the gradient reaches the table: each bucket's entry gets one per score in it
    got.sum().backward()
    index = tower.age_index(q[:, None], None).flatten()
    want_grad = torch.bincount(index, minlength=AGE_BUCKETS + 1).float()
    torch.testing.assert_close(tower.age_bias.grad, want_grad)


def test_grown_and_reset_rows_have_no_first_event():
    tower = ItemTower(ItemTowerConfig(n_items=3, dim=4, item_age=True))
    tower.seen(torch.tensor([1, 2, 3]), torch.tensor([10, 20, 30]) * HOUR)
    version = tower.times_version
    tower.grow(None, 2)
    assert tower.first_ts.shape == (6,) and (tower.first_ts[4:] == NEVER).all()
    tower.reset_rows(torch.tensor([2]))
    assert int(tower.first_ts[2]) == NEVER and int(tower.first_ts[1]) == 10 * HOUR
    assert tower.times_version > version
    assert tower.count_new(torch.tensor([100 * HOUR])).item() == 3  # rows 2, 4, 5
    off = ItemTower(ItemTowerConfig(n_items=3, dim=4))
    assert off.first_ts is None and off.age_bias is None
    off.seen(torch.tensor([1]), torch.tensor([5]))  # no-op without item_age


def test_windows_carry_each_targets_time():
    users = np.array([0, 0, 0, 0, 1, 1, 1])
    items = np.array([1, 2, 3, 4, 5, 6, 7])
    ts = np.array([10, 20, 30, 40, 11, 21, 31])
    zeros = np.zeros(7, np.int64)
    w = training_windows(users, items, zeros, zeros, zeros, np.ones(7, np.float32), 3, 1, ts)
    # a target's time sits where the target does
    by_item = dict(zip(items.tolist(), ts.tolist(), strict=True))
    has = w.target_items > 0
    assert has.sum() == 5
    np.testing.assert_array_equal(
        w.target_ts[has], [by_item[i] for i in w.target_items[has].tolist()]
    )
    assert (w.target_ts[~has] == 0).all()
    r = windows_ending_at(users, items, zeros, zeros, zeros, np.array([2, 6]), 3, ts)
    has = r.target_items > 0
    np.testing.assert_array_equal(
        r.target_ts[has], [by_item[i] for i in r.target_items[has].tolist()]
    )
    both = concat_windows(w, r)
    assert both.target_ts.shape == (len(w) + len(r), 3)
    assert set(w.batch(np.arange(len(w)), torch.device("cpu"))) >= {"target_ts"}
    # windows built without times carry none, and a mix of both drops them
    untimed = training_windows(users, items, zeros, zeros, zeros, np.ones(7, np.float32), 3)
    assert untimed.target_ts is None and "target_ts" not in untimed.batch(
        np.arange(len(untimed)), torch.device("cpu")
    )
    assert concat_windows(w, untimed).target_ts is None


def release_world(n_events=600, n_users=30, p_new=0.5, seed=0):
    """Items are released one after another: each event is, with probability
    ``p_new``, the first event of a brand-new item (its release), else an event on an
    item released earlier. Titles are random words: content says nothing about
    newness."""
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    released = 0
    for s in range(n_events):
        users.append(f"u{int(rng.integers(n_users))}")
        if released < 2 or rng.random() < p_new:
            items.append(f"i{released}")
            released += 1
        else:
            items.append(f"i{int(rng.integers(released))}")
        ts.append(1_600_000_000 + s * HOUR)
    words = [f"w{j}" for j in range(40)]
    ids = [f"i{j}" for j in range(released + 20)]
    titles = [" ".join(rng.choice(words, 3)) for _ in ids]
    catalogue = make_items(ids, titles, [["x"]] * len(ids))
    return Dataset(events=make_events(users, items, ts), items=catalogue), ids[released:]


AGE_TINY = dict(
    dim=16,
    n_layers=1,
    n_heads=2,
    max_len=8,
    epochs=8,
    lr=0.01,
    batch_size=4,  # enough optimiser steps for the bias to move
    text_encoder="tfidf",
    validation=False,
    verbose=False,
)


def _cold_share(model, users, cold, k=5):
    ids, _ = model.recommend(users, k=k)
    return float(np.mean([[str(i) in cold for i in row] for row in ids]))


@pytest.fixture(scope="module")
def released():
    data, unreleased = release_world()
    ev = data.events
    known = set(ev["item_id"].astype(str))
    train = Dataset(events=ev, items=data.items[data.items["item_id"].isin(known)])
    return data, train, unreleased[:5]


@pytest.mark.parametrize(
    "loss_params",
    [{}, {"full_softmax_max_items": 0, "n_negatives": 32}, {"loss": "gbce", "n_negatives": 32}],
    ids=["full-softmax", "sampled-softmax", "gbce"],
)
def test_item_age_puts_new_items_where_users_pick_new_items(released, loss_params):
    data, train, cold = released
    users = sorted(set(train.events["user_id"].astype(str)))
    shares = {}
    for age in (False, True):
        model = SequentialRecommender(**{**AGE_TINY, **loss_params, "item_age": age}).fit(train)
        model.add_items(data.items[data.items["item_id"].isin(cold)])
        shares[age] = _cold_share(model, users, set(cold))
    # half the targets are a release: the new items should fill the top of the list
    assert shares[True] >= 0.6, shares
    assert shares[False] <= 0.3, shares


def vectors_reproduce_scores(model, users):
    """User and item vectors, checked: one wider than ``dim`` (a 1 meets the bias) and
    their inner products are ``score_items``."""
    U = model.user_vectors(users)
    ids, V = model.item_vectors()
    width = model.get_params()["dim"] + 1
    assert U.shape[1] == V.shape[1] == width and (U[:, -1] == 1).all()
    order = [model.item_ids_.tolist().index(i) for i in ids]
    np.testing.assert_allclose(U @ V.T, model.score_items(users)[:, order], rtol=1e-5, atol=1e-5)
    return U, ids, V


def test_vectors_scores_save_load_and_first_events(released, tmp_path):
    data, train, cold = released
    model = SequentialRecommender(**{**AGE_TINY, "epochs": 5, "item_age": True}).fit(train)
    model.add_items(data.items[data.items["item_id"].isin(cold)])
    users = ["u0", "u1", "u7"]
    U, ids, V = vectors_reproduce_scores(model, users)
    new_bias = V[list(ids).index(cold[0]), -1]
    assert V[[list(ids).index(c) for c in cold], -1] == pytest.approx(new_bias)
    state = model.user_state(users)
    np.testing.assert_allclose(model.encode_state(state), U, rtol=1e-5, atol=1e-6)
    loaded = Recommender.load(model.save(tmp_path / "aged"))
    np.testing.assert_array_equal(loaded.score_items(users), model.score_items(users))
    # a cold item's first event makes it known (age 0); the other new items share more
    now = int(model.last_timestamp_) + HOUR
    model.observe(make_events(["u0"], [cold[0]], [now]))
    _, after = model.item_vectors(cold)
    assert after[0, -1] != pytest.approx(new_bias)
    assert after[1, -1] == pytest.approx(new_bias + math.log(5 / 4), rel=1e-5)
    np.testing.assert_allclose(
        model.user_vectors(users) @ model.item_vectors(cold)[1].T,
        model.score_items(users, cold),
        rtol=1e-5,
        atol=1e-5,
    )


def test_updates_and_online_steps_train_the_age_bias(released):
    data, train, cold = released
    params = {**AGE_TINY, "epochs": 5, "item_age": True, "partial_fit_epochs": 2}
    params.update(distill_weight=0.5, ewc_weight=1.0)
    model = SequentialRecommender(**params).fit(train)
    before = model.module_.item_tower.age_bias.detach().clone()
    t = int(model.last_timestamp_)
    upd = Dataset(
        events=make_events(["u0", "u1", "u2"], [cold[0], cold[0], "i3"], [t + 1, t + 2, t + 3]),
        items=data.items[data.items["item_id"].isin(cold[:1])],
    )
    model.partial_fit(upd)
    after = model.module_.item_tower.age_bias.detach().clone()
    assert not torch.equal(before, after)
    first = model.module_.item_tower.first_ts
    row = model.item_ids_.tolist().index(cold[0]) + 1
    assert int(first[row]) == t + 1
    model.observe(make_events(["u3", "u3"], ["i4", cold[1]], [t + 10, t + 11]))
    step = model.online_step(1)
    assert step["n_steps"] == 1 and np.isfinite(step["next_item"])
    assert not torch.equal(after, model.module_.item_tower.age_bias.detach())


@pytest.mark.parametrize(
    "loss_params",
    [
        {},
        # 2,000 uniform draws over ~300 items: the item is among the negatives
        {"full_softmax_max_items": 0, "n_negatives": 2_000},
        {"loss": "gbce", "n_negatives": 16},
        {"loss": "gbce", "n_negatives": 10_000},
    ],
    ids=["full-softmax", "sampled-softmax", "gbce-sampled", "gbce-every-item"],
)
def test_an_item_is_scored_by_content_until_its_first_event(released, loss_params):
    """Before its first event an item counts by its content alone: its id row (trained
    on later events) changes no loss of an earlier target, and gets no gradient from it."""
    _, train, _ = released
    params = {**AGE_TINY, **loss_params, "epochs": 1, "item_age": True, "id_dropout": 0.0}
    model = SequentialRecommender(**params).fit(train)
    module = model.module_
    tower = module.item_tower
    # the windows of the earliest users' events, all before the last item's release
    ev = train.events.sort_values("timestamp")
    last_item = ev["item_id"].iloc[-1]
    row = model.item_ids_.tolist().index(last_item) + 1
    release = int(tower.first_ts[row])
    early = Dataset(events=ev[ev["timestamp"] < release].iloc[:200], items=train.items)
    e = early.events.sort_values(["user_id", "timestamp"], kind="stable")
    users = model.user_rows(e["user_id"].astype(str).tolist())
    index = {i: r + 1 for r, i in enumerate(model.item_ids_.tolist())}
    items = np.array([index[i] for i in e["item_id"].astype(str)])
    zeros = np.zeros(len(items), np.int64)
    ones = np.ones(len(zeros), np.float32)
    ts = e["timestamp"].to_numpy(np.int64)
    windows = training_windows(users, items, zeros, zeros, zeros, ones, 8, 1, ts)
    batch = windows.batch(np.arange(len(windows)), torch.device("cpu"))
    assert int(batch["target_ts"][batch["target_items"] > 0].max()) < release
    n_items = len(model.item_ids_)
    config = TrainConfig(
        epochs=1,
        batch_size=len(windows),
        lr=0.01,
        weight_decay=0.0,
        grad_clip=1.0,
        patience=0,
        full_softmax=n_items <= model.full_softmax_max_items,
        n_negatives=model.n_negatives,
        task_weights={"next_item": 1.0},
        loss=model.loss,
    )
    prob = torch.full((len(model.item_ids_),), 1.0 / len(model.item_ids_))
    module.eval()  # no dropout: the same loss twice

    def loss() -> torch.Tensor:
        torch.manual_seed(0)
        return MultiTaskLoss(module, config, None, prob)(batch)[0]

    before = loss()
    module.zero_grad()
    before.backward()
    assert float(tower.id_emb.weight.grad[row].abs().sum()) == 0.0
    with torch.no_grad():
        tower.id_emb.weight[row] += 5.0
    assert float(loss().detach()) == pytest.approx(float(before.detach()), rel=1e-6)


def test_new_for_keeps_an_item_new_that_long_after_its_first_event():
    tower = ItemTower(ItemTowerConfig(n_items=3, dim=4, item_age=True, new_for=2 * HOUR))
    tower.seen(torch.tensor([1, 2]), torch.tensor([0, 10 * HOUR]))
    q = torch.tensor([HOUR, 2 * HOUR + 1, 11 * HOUR, 13 * HOUR])
    known = tower.is_known(q[:, None], None)
    assert known.tolist() == [
        [False, False, False],
        [True, False, False],
        [True, False, False],
        [True, True, False],
    ]
    assert tower.count_new(q).tolist() == [3, 2, 2, 1]
    # a known item's bucket is its age at the query (13 hours: floor(log2(14)) = 3)
    with torch.no_grad():
        tower.age_bias.copy_(torch.arange(AGE_BUCKETS + 1, dtype=torch.float32))
    scores = tower.age_scores(q[3:, None], None, tower.new_norm(q[3:])[:, None])
    assert scores[0, :2].detach().tolist() == [1 + 3, 1 + 2]  # 13 h and 3 h old
    assert float(scores[0, 2].detach()) == pytest.approx(0.0)  # new, alone: 0 - log(1)


def test_new_for_serves_the_items_seen_since_as_new(released):
    data, train, cold = released
    params = {**AGE_TINY, "epochs": 2, "item_age": True, "item_new_for": 100 * HOUR}
    model = SequentialRecommender(**params).fit(train)
    ids, V = model.item_vectors()
    assert list(ids) == model.item_ids_.tolist()  # every row live, in row order
    col = V[:, -1]
    first = model.module_.item_tower.first_ts[1:].numpy()
    recent = first >= int(model.last_timestamp_) + 1
    assert not recent.any()  # every item of the fit has been seen by then: none new
    table = model.module_.item_tower.age_bias.detach().numpy()
    age_h = (int(model.last_timestamp_) + 1 + 100 * HOUR - first) / HOUR
    bucket = np.minimum(np.floor(np.log2(1 + age_h)), AGE_BUCKETS - 1).astype(int)
    np.testing.assert_allclose(col, table[1 + bucket], rtol=1e-5)
