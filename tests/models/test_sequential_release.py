"""The release-age bias (``release_attribute``): release values read from the catalogue,
the tower's buckets against a hand computation, scoring at the query's time, and a world
where users pick recent releases, cold ones included."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_sequential_age import AGE_TINY as TINY
from test_sequential_age import vectors_reproduce_scores

from lifelongrec import DataError
from lifelongrec.data import Dataset, make_events, make_items
from lifelongrec.models import Recommender, SequentialRecommender
from lifelongrec.models.sequential._ages import release_seconds
from lifelongrec.models.sequential._modules import (
    AGE_BUCKETS,
    NEVER,
    RELEASE_BUCKETS,
    ItemTower,
    ItemTowerConfig,
)

DAY = 86_400
HOUR = 3_600


def _utc(*args):
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def test_release_values_are_read_as_years_seconds_or_dates():
    ids = [f"i{j}" for j in range(9)]
    attributes = [
        {"year": 1995},
        {"year": "1995"},
        {"year": "01-Jan-1995"},
        {"year": "1995-06-30T12:00:00Z"},
        {"year": 1_000_000_000},
        {"year": 2001.0},
        {"year": None},
        {"other": 3},
        {"year": float("nan")},
    ]
    items = make_items(ids, ["t"] * 9, [[]] * 9, attributes)
    got = release_seconds(items, np.array([*ids, "absent"], dtype=object), "year")
    jan95 = _utc(1995, 1, 1)
    want = [jan95, jan95, jan95, _utc(1995, 6, 30, 12), 1_000_000_000, _utc(2001, 1, 1)]
    assert got[:6].tolist() == want
    assert (got[6:] == NEVER).all()  # missing value, no attribute, NaN, no catalogue row
    assert (release_seconds(None, np.array(ids[:2], dtype=object), "year") == NEVER).all()
    # values are parsed through a cache: a bool is not the number it hashes like
    one = make_items(["a", "b"], ["t", "t"], [[], []], [{"year": 1.0}, {"year": True}])
    assert release_seconds(one.iloc[:1], np.array(["a"], dtype=object), "year").tolist() == [1]
    with pytest.raises(DataError, match="'b'"):
        release_seconds(one, np.array(["a", "b"], dtype=object), "year")


@pytest.mark.parametrize("bad", ["next spring", True, float("inf"), 1e30, [1995]])
def test_a_release_not_understood_names_the_item(bad):
    items = make_items(["ok", "bad"], ["a", "b"], [[], []], [{"year": 1990}, {"year": bad}])
    with pytest.raises(DataError) as err:
        release_seconds(items, np.array(["ok", "bad"], dtype=object), "year")
    text = str(err.value)
    assert "'bad'" in text and "attributes.year" in text and "release year" in text


def test_release_buckets_match_a_hand_computation():
    tower = ItemTower(ItemTowerConfig(n_items=6, dim=4, release_age=True))
    with torch.no_grad():
        tower.release_bias.copy_(torch.arange(RELEASE_BUCKETS + 2, dtype=torch.float32) * 0.1)
    t0 = 1_600_000_000  # 12:26:40 UTC
    # the next day, 1 second short of a day before (the day before), a day, 3 days and
    # 40,000 days before; the sixth row's release is unknown
    release = [t0 + DAY, t0 - DAY + 1, t0 - DAY, t0 - 3 * DAY, t0 - 40_000 * DAY]
    tower.set_release(torch.arange(1, 6), torch.as_tensor(release))
    assert int(tower.release_ts[6]) == NEVER and int(tower.release_ts[0]) == NEVER
    queries = torch.tensor([t0 - 44_800, t0, t0 + 5 * DAY])  # midnight of t0's day, ...

    def by_hand(q, r):  # UTC calendar days
        if r is None:
            return 0
        if q // DAY < r // DAY:
            return 1
        days = q // DAY - r // DAY
        return 2 + min(int(math.floor(math.log2(1 + days))), RELEASE_BUCKETS - 1)

    want = [[by_hand(int(q), r) for r in [*release, None]] for q in queries]
    got = tower.release_index(queries[:, None], None)
    assert got.tolist() == want
    assert want[1][:5] == [1, 3, 3, 4, 2 + RELEASE_BUCKETS - 1]  # the edges as meant
    scores = tower.age_scores(queries[:, None], None, torch.zeros(3, 1))
    np.testing.assert_allclose(scores.detach().numpy(), np.array(want) * 0.1, rtol=1e-6)
    # without item age every item counts as known, and nothing is "new"
    assert tower.is_known(queries[:, None], None).all()
    assert tower.count_new(queries).tolist() == [0, 0, 0]
    scores.sum().backward()  # one per score in each bucket
    want_grad = torch.bincount(got.flatten(), minlength=RELEASE_BUCKETS + 2).float()
    torch.testing.assert_close(tower.release_bias.grad, want_grad)
    # grown and reset rows have no release until one is set
    tower.grow(None, 2)
    assert (tower.release_ts[7:] == NEVER).all()
    tower.reset_rows(torch.tensor([1]))
    assert int(tower.release_ts[1]) == NEVER


def test_with_item_age_the_two_biases_add():
    both = ItemTower(ItemTowerConfig(n_items=3, dim=4, item_age=True, release_age=True))
    t0 = 1_600_000_000
    with torch.no_grad():
        both.age_bias.copy_(torch.arange(AGE_BUCKETS + 1, dtype=torch.float32) * 0.01 + 1.0)
        both.release_bias.copy_(torch.arange(RELEASE_BUCKETS + 2, dtype=torch.float32) * -0.1)
    both.set_release(torch.tensor([1, 2, 3]), torch.tensor([t0 - 10 * DAY] * 3))
    both.seen(torch.tensor([1]), torch.tensor([t0 - 5 * HOUR]))  # item 1 is known
    q = torch.tensor([t0, t0 + DAY])
    got = both.age_scores(q[:, None], None, torch.full((2, 1), math.log(2.0)))
    # known: item age (5 h -> bucket 2, 29 h -> 4) + release (10, 11 days -> bucket 3);
    # new: the shared mass less log(2 new items) + release
    new = 1.0 - math.log(2.0) - 0.5
    want = [[1.03 - 0.5, new, new], [1.05 - 0.5, new, new]]
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5)


def _split_tower(t0):
    """Six items: 1 and 2 seen before ``t0``'s day; 3..6 new then, released 2 days, 300
    days and 5 days before it and 3 days after it; the biases set by hand."""
    tower = ItemTower(ItemTowerConfig(n_items=6, dim=4, item_age=True, release_age=True))
    with torch.no_grad():
        tower.age_bias.copy_(torch.linspace(-1.0, 1.0, AGE_BUCKETS + 1))
        tower.release_bias.copy_(torch.linspace(2.0, -1.5, RELEASE_BUCKETS + 2))
        tower.release_bias[1] = -3.0  # not released yet
    release = [t0 - 9 * DAY, t0 - 9 * DAY, t0 - 2 * DAY, t0 - 300 * DAY, t0 - 5 * DAY]
    tower.set_release(torch.arange(1, 7), torch.tensor([*release, t0 + 3 * DAY]))
    tower.seen(torch.tensor([1, 2]), torch.tensor([t0 - 4 * DAY, t0 - 2 * DAY]))
    return tower


def test_with_both_biases_the_new_items_split_their_mass_by_release_age():
    t0 = _utc(2021, 6, 10, 12)
    tower = _split_tower(t0)
    q = torch.tensor([t0, t0 + 40 * DAY])
    norm = tower.new_norm(q)
    # independently: log-sum-exp of the release bias over the rows new at each time
    rb = tower.release_bias.detach().double().numpy()
    index = tower.release_index(q[:, None], None).numpy()
    want = [math.log(sum(math.exp(rb[index[p, j]]) for j in range(2, 6))) for p in range(2)]
    np.testing.assert_allclose(norm.detach().numpy(), want, rtol=1e-5)
    scores = tower.age_scores(q[:, None], None, norm[:, None]).detach().double()
    # the new items' mass is exactly the learned one, exp(age_bias[0]), however many
    # they are, and it goes to them in proportion to exp(release bias)
    mass = float(tower.age_bias[0].detach())
    np.testing.assert_allclose(torch.logsumexp(scores[:, 2:], 1).numpy(), [mass] * 2, rtol=1e-5)
    share = torch.softmax(scores[0, 2:], 0).numpy()
    weight = np.exp(rb[index[0, 2:]])
    np.testing.assert_allclose(share, weight / weight.sum(), rtol=1e-5)
    assert index[0, 5] == 1 and share[3] == share.min()  # not released yet: least
    # serving (to the second, live rows only) agrees where no item is first seen on the
    # query's day; a row that is not live takes no share
    live = torch.ones(6, dtype=torch.bool)
    np.testing.assert_allclose(tower.new_norm(q[:, None], live)[:, 0].detach(), norm.detach())
    live[3] = False  # row 4
    served = tower.new_norm(q[:1, None], live).detach()
    assert float(served) == pytest.approx(
        math.log(sum(math.exp(rb[index[0, j]]) for j in (2, 4, 5)))
    )
    # the gradient reaches the release bias through the normaliser too
    tower.age_scores(q[:, None], None, tower.new_norm(q)[:, None])[:, 2].sum().backward()
    assert torch.isfinite(tower.release_bias.grad).all()
    assert float(tower.release_bias.grad.abs().sum()) > 0


def test_the_day_counts_follow_first_events_and_nothing_new_gives_zero():
    t0 = _utc(2021, 6, 10, 12)
    tower = _split_tower(t0)
    q = torch.tensor([t0])
    before = tower.new_norm(q).item()
    tower.seen(torch.tensor([3, 4, 5]), torch.tensor([t0 - 3 * DAY] * 3))  # cached counts go stale
    rb = tower.release_bias.detach().double().numpy()
    index = tower.release_index(q[:, None], None).numpy()[0]
    after = tower.new_norm(q).item()
    assert after == pytest.approx(rb[index[5]])
    assert after != pytest.approx(before)
    # an item first seen earlier on the query's own day still counts in training's
    # day-wise normaliser (its first second is after the day's first), not in serving's
    tower.seen(torch.tensor([6]), torch.tensor([t0 - HOUR]))
    assert tower.new_norm(q).item() == pytest.approx(rb[index[5]])
    live = torch.ones(6, dtype=torch.bool)
    assert tower.new_norm(q[:, None], live).item() == 0.0  # nothing new: 0, not -inf
    far = torch.tensor([t0 + 10 * DAY])
    norm = tower.new_norm(far)
    assert norm.item() == 0.0
    tower.age_scores(far[:, None], None, norm[:, None]).sum().backward()
    assert torch.isfinite(tower.release_bias.grad).all()


T0 = _utc(2020, 3, 1)


def recency_world(n_days=40, per_day=15, p_recent=0.7, seed=0):
    """Three items are released every day; an event is, with probability
    ``p_recent``, on an item released in the last two days, else on one of 50 old
    items (released 2000-2010). Titles are random words and the release date a string
    attribute (not a content feature): only the release bias can tell new from old."""
    rng = np.random.default_rng(seed)
    old = [f"old{j}" for j in range(50)]
    old_release = [f"{2000 + j % 10}-05-01" for j in range(50)]
    new, new_release = [], []
    users, items, ts = [], [], []
    for day in range(n_days):
        for k in range(3):
            new.append(f"new{day}_{k}")
            new_release.append(T0 + day * DAY)
        recent = new[max(0, len(new) - 6) :]
        for e in range(per_day):
            users.append(f"u{int(rng.integers(30))}")
            pool = recent if rng.random() < p_recent else old
            items.append(pool[int(rng.integers(len(pool)))])
            ts.append(T0 + day * DAY + (e + 1) * HOUR)
    # never used: 5 old items and 5 released on the last day
    cold_old = [f"coldold{j}" for j in range(5)]
    cold_new = [f"coldnew{j}" for j in range(5)]
    ids = old + cold_old + new + cold_new
    stamp = [pd.Timestamp(s, unit="s", tz="UTC").isoformat() for s in new_release]
    last = pd.Timestamp(T0 + (n_days - 1) * DAY, unit="s", tz="UTC").isoformat()
    released = old_release + ["2004-01-01"] * 5 + stamp + [last] * 5
    words = [f"w{j}" for j in range(40)]
    titles = [" ".join(rng.choice(words, 3)) for _ in ids]
    attrs = [{"released": r} for r in released]
    catalogue = make_items(ids, titles, [["x"]] * len(ids), attrs)
    events = make_events(users, items, ts)
    return Dataset(events=events, items=catalogue), cold_new, cold_old


@pytest.fixture(scope="module")
def recency():
    data, cold_new, cold_old = recency_world()
    used = set(data.events["item_id"].astype(str))
    cold = set(cold_new) | set(cold_old)
    train = Dataset(events=data.events, items=data.items[data.items["item_id"].isin(used)])
    late = data.items[data.items["item_id"].isin(cold)]
    return train, late, cold_new, cold_old


def _share(model, users, ids, k=10):
    top, _ = model.recommend(users, k=k)
    return float(np.mean([[str(i) in ids for i in row] for row in top]))


@pytest.mark.parametrize(
    "loss_params",
    [{}, {"full_softmax_max_items": 0, "n_negatives": 32}, {"loss": "gbce", "n_negatives": 32}],
    ids=["full-softmax", "sampled-softmax", "gbce"],
)
def test_release_age_ranks_cold_new_releases_where_users_pick_new_releases(recency, loss_params):
    train, late, cold_new, cold_old = recency
    users = sorted(set(train.events["user_id"].astype(str)))
    shares = {}
    for attribute in (None, "released"):
        params = {**TINY, **loss_params, "release_attribute": attribute}
        model = SequentialRecommender(**params).fit(train)
        model.add_items(late)
        shares[attribute] = (
            _share(model, users, set(cold_new)),
            _share(model, users, set(cold_old)),
        )
    # cold items have zero id rows and uninformative titles: only the release tells
    assert shares["released"][0] >= 0.3, shares
    # cold old releases stay (all but) out: a stray slot in a few hundred at most
    assert shares["released"][1] <= 0.02, shares
    assert shares[None][0] <= 0.15, shares


def test_vectors_scores_query_time_and_save_load(recency, tmp_path):
    train, late, cold_new, cold_old = recency
    model = SequentialRecommender(**{**TINY, "epochs": 4, "release_attribute": "released"})
    model.fit(train).add_items(late)
    users = ["u0", "u1", "u7"]
    vectors_reproduce_scores(model, users)
    # the same history scored at two times differs by the release bias at those times
    tower = model.module_.item_tower
    history = train.events[train.events["user_id"] == "u0"]
    clock = int(model.last_timestamp_)
    late_t = clock + 400 * DAY
    S = model.score_histories(["u0", "u0"], history, before=[clock + 1, late_t + 1])
    rows = torch.arange(1, len(model.item_ids_) + 1)
    bias = [tower.age_scores(torch.tensor([t]), rows, torch.zeros(1)) for t in (clock, late_t)]
    diff = (bias[1] - bias[0]).detach().numpy()
    np.testing.assert_allclose(S[1] - S[0], diff, rtol=1e-4, atol=1e-4)
    assert np.abs(diff).max() > 0.01  # the release ages moved on
    # no `before`: the model's clock, as score_items
    np.testing.assert_allclose(model.score_histories("u0", history), S[0], rtol=1e-5, atol=1e-5)
    loaded = Recommender.load(model.save(tmp_path / "released"))
    np.testing.assert_array_equal(loaded.score_items(users), model.score_items(users))
    np.testing.assert_array_equal(
        loaded.module_.item_tower.release_ts.numpy(), tower.release_ts.numpy()
    )


def test_updates_take_releases_and_bad_ones_change_nothing(recency):
    train, late, cold_new, cold_old = recency
    params = {**TINY, "epochs": 3, "release_attribute": "released", "partial_fit_epochs": 1}
    model = SequentialRecommender(**params).fit(train)
    tower = model.module_.item_tower
    before = tower.release_bias.detach().clone()
    t = int(model.last_timestamp_)
    fresh = make_items(["brand_new"], ["w1 w2"], [["x"]], [{"released": "2020-04-09"}])
    model.partial_fit(Dataset(events=make_events(["u0"], ["brand_new"], [t + 1]), items=fresh))
    row = model.item_ids_.tolist().index("brand_new") + 1
    assert int(tower.release_ts[row]) == _utc(2020, 4, 9)
    assert not torch.equal(before, tower.release_bias.detach())
    n_items = len(model.item_ids_)
    bad = make_items(["x1", "x2"], ["a", "b"], [[], []], [{"released": 2019}, {"released": "?"}])
    with pytest.raises(DataError, match="'x2'"):
        model.add_items(bad)
    with pytest.raises(DataError, match="'x2'"):
        model.partial_fit(Dataset(events=make_events(["u0"], ["x1"], [t + 5]), items=bad))
    assert len(model.item_ids_) == n_items and "x1" not in model.item_ids_.tolist()
    # a known item's catalogue row changes its release
    model.add_items(make_items(["brand_new"], ["w1"], [["x"]], [{"released": 2010}]))
    assert int(tower.release_ts[row]) == _utc(2010, 1, 1)
    with pytest.raises(DataError, match="'old0'"):
        SequentialRecommender(**params).fit(
            Dataset(
                events=train.events, items=make_items(["old0"], ["a"], [[]], [{"released": "x"}])
            )
        )
