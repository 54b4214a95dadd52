"""The synthetic world: repeatable, exact in size, canonical, and structured."""

from __future__ import annotations

import dataclasses
import doctest
import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from lifelongrec._errors import ParameterError
from lifelongrec.data import Dataset, SyntheticWorld, make_events, synthetic
from lifelongrec.data import _synthetic as synthetic_module

N = 30_000  # big enough for the structure tests, fast enough to make several times


@pytest.fixture(scope="module")
def world() -> Dataset:
    return synthetic(n_events=N, seed=7)


@pytest.fixture(scope="module")
def shifted() -> Dataset:
    return synthetic(n_events=N, seed=7, shift_at=0.5)


def _with_category(data: Dataset) -> pd.DataFrame:
    category = dict(zip(data.items["item_id"], data.items["categories"].str[0], strict=True))
    return data.events.assign(category=data.events["item_id"].map(category))


def _entropy(counts: np.ndarray) -> np.ndarray:
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


# ---------------------------------------------------------------------- repeatability and size
def test_same_seed_gives_the_same_dataset():
    a = synthetic(n_events=3_000, seed=5, shift_at=0.3)
    b = SyntheticWorld(n_events=3_000, seed=5, shift_at=0.3).generate()
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.users, b.users)
    assert a.meta == b.meta


def test_different_seed_gives_a_different_dataset():
    a = synthetic(n_events=3_000, seed=1)
    b = synthetic(n_events=3_000, seed=2)
    assert not a.events.equals(b.events)
    assert list(a.items["title"]) != list(b.items["title"])


@pytest.mark.parametrize(
    "n_events, kwargs",
    [
        (1, {}),
        (7, {}),
        (1_000, {}),
        (12_345, {}),
        (5_000, {"cart_rate": 1.0, "purchase_rate": 1.0}),
        (5_000, {"mean_session_views": 1.0, "cart_rate": 0.0}),
        (2_000, {"n_users": 3, "n_items": 20, "n_categories": 20}),
        (2_000, {"n_users": 5_000}),
    ],
)
def test_exactly_n_events(n_events, kwargs):
    data = synthetic(n_events=n_events, seed=3, **kwargs)
    assert len(data.events) == n_events


def test_default_sizes_follow_n_events():
    assert SyntheticWorld(n_events=100_000).sizes() == (2_500, 4_000)
    assert SyntheticWorld(n_events=1_000).sizes() == (25, 100)
    assert SyntheticWorld(n_events=1_000, n_users=7, n_items=30).sizes() == (7, 30)
    data = synthetic(n_events=1_000, seed=0)
    assert len(data.items) == 100 and len(data.users) == 25
    assert data.n_users <= 25


# ---------------------------------------------------------------------- schema
def test_events_follow_the_canonical_schema(world):
    ev = world.events
    rebuilt = make_events(
        ev["user_id"].to_numpy(dtype=object),
        ev["item_id"].to_numpy(dtype=object),
        ev["timestamp"].to_numpy(),
        ev["event_type"].to_numpy(dtype=object),
        ev["value"].to_numpy(),
    )
    pd.testing.assert_frame_equal(ev, rebuilt)  # same columns, dtypes and values
    assert ev["timestamp"].dtype == np.int64
    assert ev["timestamp"].is_monotonic_increasing
    assert set(ev["event_type"]) == {"view", "cart", "purchase"}
    assert ev["value"].isna().all()
    assert ev["user_id"].str.fullmatch(r"u\d{5}").all()
    assert ev["item_id"].str.fullmatch(r"i\d{6}").all()
    start, end = world.meta["start"], world.meta["end"]
    assert ev["timestamp"].min() >= start and ev["timestamp"].max() < end
    assert end - start == 90 * 86_400
    # The mix is e-commerce-like: mostly views, a funnel narrowing down.
    share = ev["event_type"].value_counts(normalize=True)
    assert share["view"] > share["cart"] > share["purchase"] > 0


def test_items_and_users_are_complete(world):
    items, users = world.items, world.users
    n_users, n_items = SyntheticWorld(n_events=N).sizes()
    assert list(items.columns) == ["item_id", "title", "categories", "attributes"]
    assert len(items) == n_items and items["item_id"].is_unique
    assert list(items["item_id"]) == sorted(items["item_id"])
    assert set(world.events["item_id"]) <= set(items["item_id"])
    names = set(world.meta["categories"])
    assert len(names) == 20 and "Electronics" in names
    for title, cats, attrs in zip(
        items["title"], items["categories"], items["attributes"], strict=True
    ):
        assert isinstance(title, str) and len(title.split()) >= 3
        assert len(cats) == 2 and cats[0] in names and cats[1] in title
        assert set(attrs) == {"price", "brand", "arrival"}
        assert attrs["price"] > 0 and attrs["brand"] in title
    assert len(users) == n_users and users["user_id"].is_unique
    assert set(world.events["user_id"]) <= set(users["user_id"])
    first_seen = world.events.groupby("user_id")["timestamp"].min()
    joined = users.set_index("user_id")["joined"]
    assert (first_seen >= joined[first_seen.index]).all()
    assert (joined > world.meta["start"]).any()  # some users join later


def test_meta_describes_the_world(world, shifted):
    assert world.name == "synthetic"
    assert world.meta["format"] == "synthetic" and world.meta["timestamps"] == "epoch"
    assert world.meta["config"] == dataclasses.asdict(SyntheticWorld(n_events=N, seed=7))
    assert world.meta["shift_timestamp"] is None and world.meta["shift_permutation"] is None
    start, end = shifted.meta["start"], shifted.meta["end"]
    assert shifted.meta["shift_timestamp"] == start + (end - start) // 2
    perm = shifted.meta["shift_permutation"]
    assert sorted(perm) == sorted(perm.values()) == sorted(shifted.meta["categories"])
    assert all(a != b for a, b in perm.items())  # every category's fans move elsewhere


def test_more_categories_than_the_vocabulary():
    data = synthetic(n_events=2_000, seed=0, n_categories=45)
    names = data.meta["categories"]
    assert len(set(names)) == 45
    assert "Kids Electronics" in names and "Travel Electronics" in names
    kids = data.items[data.items["categories"].str[0] == "Kids Electronics"]
    assert kids["title"].str.contains("Kids").all()


def test_start_and_duration_are_respected():
    data = synthetic(n_events=2_000, seed=0, start=1_000_000, duration_days=1)
    ts = data.events["timestamp"]
    assert ts.min() >= 1_000_000 and ts.max() < 1_000_000 + 86_400


# ---------------------------------------------------------------------- behaviour
def _funnel_ok(events: pd.DataFrame) -> None:
    """Every purchase has an earlier cart, every cart an earlier view (same user, item)."""
    rank = events["event_type"].map({"view": 0, "cart": 1, "purchase": 2}).to_numpy()
    ev = events.assign(rank=rank, neg_rank=-rank)
    # At equal timestamps the later funnel step sorts first, so it is not counted as "earlier".
    ev = ev.sort_values(["user_id", "item_id", "timestamp", "neg_rank"], kind="stable")
    steps = ev.assign(v=ev["rank"] == 0, c=ev["rank"] == 1, p=ev["rank"] == 2)
    running = steps.groupby(["user_id", "item_id"], sort=False)[["v", "c", "p"]].cumsum()
    views, carts, buys = running["v"], running["c"], running["p"]
    is_cart, is_buy = ev["rank"] == 1, ev["rank"] == 2
    assert (views[is_cart] >= carts[is_cart]).all()
    assert (carts[is_buy] >= buys[is_buy]).all()
    # Strictly earlier, not at the same second.
    first = ev.groupby(["user_id", "item_id", "rank"])["timestamp"].min().unstack()
    assert (first[1].dropna() > first[0][first[1].notna()]).all()
    assert (first[2].dropna() > first[1][first[2].notna()]).all()


@pytest.mark.parametrize("kwargs", [{}, {"cart_rate": 0.9, "purchase_rate": 0.9}])
def test_funnel_order_in_time(kwargs):
    data = synthetic(n_events=4_000, seed=11, **kwargs)
    _funnel_ok(data.events)


def test_items_appear_only_after_their_arrival(world):
    items = world.items
    arrival = {i: a["arrival"] for i, a in zip(items["item_id"], items["attributes"], strict=True)}
    arr = world.events["item_id"].map(arrival)
    assert (world.events["timestamp"] >= arr).all()
    start = world.meta["start"]
    late = arr > start
    assert 0.02 < late.mean() < 0.6  # new items do get traffic
    n_new = sum(a > start for a in arrival.values())
    assert 0.1 < n_new / len(arrival) < 0.3  # new_item_rate=0.2


def test_users_concentrate_on_few_categories(world):
    ev = _with_category(world)
    counts = pd.crosstab(ev["user_id"], ev["category"]).to_numpy().astype(float)
    rng = np.random.default_rng(0)
    shuffled = ev.assign(category=rng.permutation(ev["category"].to_numpy()))
    base = pd.crosstab(shuffled["user_id"], shuffled["category"]).to_numpy().astype(float)
    busy = counts.sum(axis=1) >= 20
    assert busy.sum() > 100
    assert _entropy(counts[busy]).mean() < 0.6 * _entropy(base[busy]).mean()


def test_popularity_is_skewed_and_tunable():
    def top_item_share(skew: float) -> float:
        """Median over categories of the share of views that the category's top item gets."""
        data = synthetic(n_events=10_000, seed=2, popularity_skew=skew)
        views = _with_category(data)
        views = views[views["event_type"] == "view"]
        counts = views.groupby(["category", "item_id"]).size()
        by_cat = counts.groupby(level="category")
        return float((by_cat.max() / by_cat.sum()).median())

    assert top_item_share(1.5) > top_item_share(1.0) > top_item_share(0.0) + 0.1


def _top_transition_share(data: Dataset) -> float:
    """How often a user's next view is the most common successor of their current one."""
    views = data.events[data.events["event_type"] == "view"]
    views = views.sort_values(["user_id", "timestamp"], kind="stable")
    u, i = views["user_id"].to_numpy(), views["item_id"].to_numpy()
    pairs = pd.DataFrame({"a": i[:-1], "b": i[1:]})[u[:-1] == u[1:]]
    counts = pairs.value_counts()
    return counts.groupby(level="a").max().sum() / len(pairs)


def test_sequences_carry_learnable_transitions():
    strong = synthetic(n_events=20_000, seed=4, sequential_strength=0.6)
    none = synthetic(n_events=20_000, seed=4, sequential_strength=0.0)
    assert _top_transition_share(strong) > _top_transition_share(none) + 0.2


def _top_successors(views: pd.DataFrame) -> pd.Series:
    """Each item's most common next view (items followed at least three times)."""
    u, i = views["user_id"].to_numpy(), views["item_id"].to_numpy()
    pairs = pd.DataFrame({"a": i[:-1], "b": i[1:]})[u[:-1] == u[1:]]
    counts = pairs.value_counts().reset_index(name="n")
    best = counts.sort_values("n", ascending=False).drop_duplicates("a")
    return best[best["n"] >= 3].set_index("a")["b"]


def test_a_redrawn_chain_changes_what_follows_each_item_per_period():
    day, period = 86_400, 30.0
    kwargs = {"n_events": N, "seed": 8, "sequential_strength": 0.6}
    fixed = synthetic(**kwargs)
    redrawn = synthetic(**kwargs, chain_redraw_days=period)
    # Only the items differ, and only in sessions after the first period.
    a, b = fixed.events, redrawn.events
    for column in ("user_id", "timestamp", "event_type"):
        assert a[column].equals(b[column])
    first = a["timestamp"].to_numpy() < fixed.meta["start"] + period * day
    assert a["item_id"][first].equals(b["item_id"][first])
    assert (a["item_id"][~first] != b["item_id"][~first]).mean() > 0.2

    def agreement(data: Dataset) -> tuple[float, float]:
        """Share of items whose top successor is the same in periods 0 and 1, and the
        share of period 1's next views that are the top successor of period 1."""
        views = data.events[data.events["event_type"] == "view"]
        views = views.sort_values(["user_id", "timestamp"], kind="stable")
        slot = (views["timestamp"] - data.meta["start"]) // int(period * day)
        tops = [_top_successors(views[slot == p]) for p in (0, 1)]
        both = tops[0].index.intersection(tops[1].index)
        assert len(both) >= 100
        return float((tops[0][both] == tops[1][both]).mean()), _top_transition_share(
            Dataset(events=views[slot == 1], name="period 1")
        )

    same_fixed, within_fixed = agreement(fixed)
    same_redrawn, within_redrawn = agreement(redrawn)
    assert same_fixed > 0.8 and same_redrawn < 0.1
    # Within a period the redrawn chain is as learnable as the fixed one.
    assert abs(within_redrawn - within_fixed) < 0.05


def _halves_distance(data: Dataset) -> float:
    """Mean total-variation distance of a user's category mix before vs after mid-span."""
    ev = _with_category(data)
    mid = (data.meta["start"] + data.meta["end"]) // 2
    before = pd.crosstab(ev["user_id"][ev["timestamp"] < mid], ev["category"])
    after = pd.crosstab(ev["user_id"][ev["timestamp"] >= mid], ev["category"])
    cols = before.columns.union(after.columns)
    users = before.index.intersection(after.index)
    a = before.reindex(index=users, columns=cols, fill_value=0).to_numpy(float)
    b = after.reindex(index=users, columns=cols, fill_value=0).to_numpy(float)
    busy = (a.sum(axis=1) >= 10) & (b.sum(axis=1) >= 10)
    assert busy.sum() >= 50
    a, b = a[busy], b[busy]
    return float(
        0.5 * np.abs(a / a.sum(1, keepdims=True) - b / b.sum(1, keepdims=True)).sum(1).mean()
    )


def test_sudden_shift_changes_user_interests(world, shifted):
    calm, jumped = _halves_distance(world), _halves_distance(shifted)
    assert jumped > calm + 0.25
    assert jumped > 0.75


def test_drift_moves_interests_gradually():
    static = synthetic(n_events=N, seed=7, interest_drift=0.0)
    drifting = synthetic(n_events=N, seed=7, interest_drift=0.8)
    assert _halves_distance(drifting) > _halves_distance(static) + 0.1


# ---------------------------------------------------------------------- shift share and timing
def _checksum(data: Dataset) -> str:
    e = data.events
    rows = zip(e["user_id"], e["item_id"], e["timestamp"], e["event_type"], strict=True)
    return hashlib.sha256("\n".join(f"{u},{i},{t},{x}" for u, i, t, x in rows).encode()).hexdigest()


@pytest.mark.parametrize(
    "kwargs, expected",
    [  # recorded before shift_share and shift_days existed
        ({}, "abe7db63a441338e1f16330c0319e2d8e2c0718b14d4625c3ba01dd60199ea76"),
        ({"shift_at": 0.5}, "5baa9a80441e3147729284770e6df6fbd9586a60e0026e2517d7afde9ff5c33b"),
        (
            {"shift_at": 0.5, "shift_share": 1.0, "shift_days": 0.0},
            "5baa9a80441e3147729284770e6df6fbd9586a60e0026e2517d7afde9ff5c33b",
        ),
    ],
)
def test_the_default_shift_is_the_same_data_as_before_the_knobs(kwargs, expected):
    assert _checksum(synthetic(n_events=2_000, seed=11, **kwargs)) == expected


def test_one_off_visitors_come_only_in_their_active_days():
    day = 86_400
    kwargs = {"n_events": N, "seed": 5, "new_user_rate": 1.0}
    for active, longest in ((2.0, 2.5 * day), (None, None)):
        data = synthetic(**kwargs, user_active_days=active)
        joined = data.users.set_index("user_id")["joined"]
        ev = data.events
        since = ev["timestamp"].to_numpy() - joined.loc[ev["user_id"]].to_numpy()
        assert since.min() >= 0  # never before joining
        span = ev.groupby("user_id")["timestamp"].agg(lambda t: t.max() - t.min())
        if longest is None:  # the whole span: many users come back days later
            assert (span > 10 * day).mean() > 0.2
        else:  # a session starts within the active days and lasts under 12 hours
            assert since.max() < longest and span.max() < longest
            assert len(ev) == N and span.median() > 0  # a spree, not a single visit


def _fading_world(half_life: float | None, n_categories: int) -> Dataset:
    """Uniform popularity, no chains, no novelty boost: an item's age is the only thing
    that weighs in a draw."""
    return synthetic(
        n_events=20_000,
        seed=8,
        n_categories=n_categories,
        n_items=400,
        new_item_rate=0.5,
        popularity_skew=0.0,
        novelty_boost=0.0,
        sequential_strength=0.0,
        item_half_life_days=half_life,
    )


def _start_item_views(data: Dataset, half_life: float | None) -> tuple[int, float, float]:
    """Views of items present at ``start``: observed, and the expected count and its
    variance when each view is drawn among the items of its category arrived by then
    with weight ``2 ** (-age / half_life)`` (``None``: all alike)."""
    items = data.items.set_index("item_id")
    arrival = items["attributes"].map(lambda a: a["arrival"])
    top = items["categories"].map(lambda c: c[0])  # the top-level category
    views = data.events[data.events["event_type"] == "view"]
    t = views["timestamp"].to_numpy()
    arrived = arrival.to_numpy()
    same = top.to_numpy()[None, :] == top.loc[views["item_id"]].to_numpy()[:, None]
    in_range = (arrived[None, :] <= t[:, None]) & same
    age_days = (t[:, None] - arrived[None, :]) / 86_400
    weight = np.where(in_range, 1.0 if half_life is None else np.exp2(-age_days / half_life), 0)
    at_start = arrived == data.meta["start"]
    p = weight[:, at_start].sum(axis=1) / weight.sum(axis=1)
    observed = int((arrival.loc[views["item_id"]].to_numpy() == data.meta["start"]).sum())
    return observed, float(p.sum()), float((p * (1 - p)).sum())


@pytest.mark.parametrize("half_life, n_categories", [(None, 1), (10.0, 1), (0.5, 3)])
def test_item_popularity_fades_with_age_at_the_half_life(half_life, n_categories):
    # 0.5 days over 90: the oldest weights are 2 ** -180 of the newest; the draw among
    # a category's early items must keep them apart from the other categories' sums
    data = _fading_world(half_life, n_categories)
    observed, expected, variance = _start_item_views(data, half_life)
    assert abs(observed - expected) < 4 * variance**0.5
    # the same views are far from what another half-life (or none) would give
    others = [10.0] if half_life is None else [None, 0.7 * half_life, 1.4 * half_life]
    for other in others:
        _, wrong, wrong_variance = _start_item_views(data, other)
        assert abs(observed - wrong) > 10 * wrong_variance**0.5, other


def test_shift_knobs_change_nothing_before_the_shift():
    sudden = synthetic(n_events=N, seed=3, shift_at=0.4)
    partial = synthetic(n_events=N, seed=3, shift_at=0.4, shift_share=0.5, shift_days=10.0)
    shift = sudden.meta["shift_timestamp"]
    assert partial.meta["shift_timestamp"] == shift
    pd.testing.assert_frame_equal(
        sudden.events[sudden.events["timestamp"] < shift].reset_index(drop=True),
        partial.events[partial.events["timestamp"] < shift].reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(sudden.items, partial.items)
    pd.testing.assert_frame_equal(sudden.users, partial.users)
    assert not sudden.events.equals(partial.events)


def _share_of_users_moved(data: Dataset) -> float:
    """Among users busy before and after the shift: the share whose post-shift category mix
    is closer to their pre-shift mix moved through the permutation than to it unmoved."""
    names = data.meta["categories"]
    index = {n: i for i, n in enumerate(names)}
    perm = np.zeros((len(names), len(names)))
    for a, b in data.meta["shift_permutation"].items():
        perm[index[a], index[b]] = 1.0
    ev = _with_category(data)
    before = ev[ev["timestamp"] < data.meta["shift_timestamp"]]
    after = ev[ev["timestamp"] >= data.meta["shift_end_timestamp"]]

    def counts(frame: pd.DataFrame) -> pd.DataFrame:
        table = frame.groupby(["user_id", "category"]).size().unstack(fill_value=0)
        return table.reindex(columns=names, fill_value=0)

    a, b = counts(before), counts(after)
    users = a.index.intersection(b.index)
    a, b = a.loc[users].to_numpy(float), b.loc[users].to_numpy(float)
    busy = (a.sum(1) >= 15) & (b.sum(1) >= 15)
    assert busy.sum() >= 100
    a = a[busy] / a[busy].sum(1, keepdims=True)
    b = b[busy] / b[busy].sum(1, keepdims=True)
    unmoved = 0.5 * np.abs(a - b).sum(1)
    moved = 0.5 * np.abs(a @ perm - b).sum(1)
    return float((moved < unmoved).mean())


def test_shift_share_moves_that_share_of_the_users(shifted):
    half = synthetic(n_events=N, seed=7, shift_at=0.5, shift_share=0.5)
    assert shifted.meta["shift_users"] == shifted.meta["n_users"]
    assert half.meta["shift_users"] == round(0.5 * half.meta["n_users"])
    assert _share_of_users_moved(shifted) > 0.85
    assert 0.35 < _share_of_users_moved(half) < 0.65
    assert half.meta["shift_permutation"] == shifted.meta["shift_permutation"]


def _moved_share_of_the_mix(data: Dataset, bins: list[tuple[float, float]]) -> list[float]:
    """Per time bin (days from the start): where the population's category mix lies
    between the pre-shift mix (0) and that mix moved through the permutation (1)."""
    names = data.meta["categories"]
    index = {n: i for i, n in enumerate(names)}
    cat = _with_category(data)["category"].map(index).to_numpy()
    days = (data.events["timestamp"].to_numpy() - data.meta["start"]) / 86_400
    shift_day = (data.meta["shift_timestamp"] - data.meta["start"]) / 86_400
    perm = np.array([index[data.meta["shift_permutation"][n]] for n in names])
    old = np.bincount(cat[days < shift_day], minlength=len(names)).astype(float)
    old /= old.sum()
    new = np.zeros_like(old)
    new[perm] = old
    out = []
    for lo, hi in bins:
        mix = np.bincount(cat[(days >= lo) & (days < hi)], minlength=len(names)).astype(float)
        mix /= mix.sum()
        out.append(float((mix - old) @ (new - old) / ((new - old) @ (new - old))))
    return out


def test_a_gradual_shift_moves_the_category_mix_over_its_window():
    calm = {"interest_drift": 0.0, "new_user_rate": 0.0}  # nothing else moves the mix
    bins = [(27, 36), (36, 45), (45, 54), (54, 63), (63, 90)]  # the window is days 27..63
    gradual = synthetic(n_events=N, seed=1, shift_at=0.3, shift_days=36.0, **calm)
    sudden = synthetic(n_events=N, seed=1, shift_at=0.3, **calm)
    assert gradual.meta["shift_end_timestamp"] == gradual.meta["shift_timestamp"] + 36 * 86_400
    assert sudden.meta["shift_end_timestamp"] == sudden.meta["shift_timestamp"]
    moved = _moved_share_of_the_mix(gradual, bins)
    assert moved[0] < 0.35 and moved[-1] > 0.85
    assert all(b > a for a, b in zip(moved, moved[1:], strict=False))
    assert min(_moved_share_of_the_mix(sudden, bins)) > 0.85  # all at once


def test_titles_let_content_models_find_the_category():
    from sklearn.feature_extraction.text import TfidfVectorizer

    items = synthetic(n_events=10_000, seed=0).items
    tfidf = TfidfVectorizer().fit_transform(items["title"])
    similarity = (tfidf @ tfidf.T).toarray()
    np.fill_diagonal(similarity, -1.0)
    cats = items["categories"].str[0].to_numpy()
    # The nearest title by TF-IDF cosine is almost always from the same category.
    assert (cats[similarity.argmax(axis=1)] == cats).mean() > 0.85


def test_generate_does_not_change_the_config():
    world = SyntheticWorld(n_events=1_000, seed=9)
    before = dataclasses.asdict(world)
    world.generate()
    assert dataclasses.asdict(world) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        world.n_events = 5  # type: ignore[misc]


def test_docstring_examples_run():
    result = doctest.testmod(synthetic_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


# ---------------------------------------------------------------------- bad parameters
_PROBABILITIES = [
    "interest_drift",
    "new_item_rate",
    "new_user_rate",
    "novelty_boost",
    "sequential_strength",
    "cart_rate",
    "purchase_rate",
]


@pytest.mark.parametrize(
    "kwargs, name, expected",
    [
        ({"n_events": 0}, "n_events", "an integer >= 1"),
        ({"n_events": -5}, "n_events", "an integer >= 1"),
        ({"n_events": 10.5}, "n_events", "an integer >= 1"),
        ({"n_events": "100"}, "n_events", "an integer >= 1"),
        ({"n_events": True}, "n_events", "an integer >= 1"),
        ({"n_users": 0}, "n_users", "an integer >= 1"),
        ({"n_users": 2.0}, "n_users", "an integer >= 1"),
        ({"n_items": 10}, "n_items", "an integer >= 20 (n_categories)"),
        ({"n_items": 3, "n_categories": 4}, "n_items", "an integer >= 4 (n_categories)"),
        ({"n_categories": 0}, "n_categories", "an integer >= 1"),
        ({"seed": -1}, "seed", "an integer >= 0"),
        ({"seed": 1.0}, "seed", "an integer >= 0"),
        ({"start": -1}, "start", "an integer >= 0"),
        ({"start": "2024-01-01"}, "start", "an integer >= 0"),
        ({"duration_days": 0.5}, "duration_days", "a finite number >= 1"),
        ({"duration_days": float("nan")}, "duration_days", "a finite number >= 1"),
        ({"duration_days": float("inf")}, "duration_days", "a finite number >= 1"),
        ({"duration_days": "90"}, "duration_days", "a finite number >= 1"),
        ({"interest_concentration": 0.0}, "interest_concentration", "a finite number > 0"),
        ({"shift_at": 0.0}, "shift_at", "a number in (0, 1)"),
        ({"shift_at": 1.0}, "shift_at", "a number in (0, 1)"),
        ({"shift_at": 1.5}, "shift_at", "a number in (0, 1)"),
        ({"shift_at": "half"}, "shift_at", "a number in (0, 1)"),
        ({"shift_at": 0.5, "shift_share": 0.0}, "shift_share", "a number in (0, 1]"),
        ({"shift_at": 0.5, "shift_share": 1.5}, "shift_share", "a number in (0, 1]"),
        ({"shift_at": 0.5, "shift_share": "half"}, "shift_share", "a number in (0, 1]"),
        ({"shift_share": 0.5}, "shift_share", "1.0 (the default) without shift_at"),
        ({"shift_at": 0.5, "shift_days": -1.0}, "shift_days", "a finite number >= 0"),
        ({"shift_at": 0.5, "shift_days": float("nan")}, "shift_days", "a finite number >= 0"),
        ({"shift_days": 7.0}, "shift_days", "0.0 (the default) without shift_at"),
        ({"popularity_skew": -0.5}, "popularity_skew", "a finite number >= 0"),
        ({"user_active_days": 0}, "user_active_days", "a finite number > 0"),
        ({"user_active_days": -1.0}, "user_active_days", "a finite number > 0"),
        ({"user_active_days": float("nan")}, "user_active_days", "a finite number > 0"),
        ({"user_active_days": "2"}, "user_active_days", "a finite number > 0"),
        ({"item_half_life_days": 0}, "item_half_life_days", "a finite number > 0"),
        ({"item_half_life_days": -3.0}, "item_half_life_days", "a finite number > 0"),
        ({"item_half_life_days": float("inf")}, "item_half_life_days", "a finite number > 0"),
        ({"item_half_life_days": "15"}, "item_half_life_days", "a finite number > 0"),
        ({"novelty_days": 0}, "novelty_days", "a finite number > 0"),
        ({"chain_redraw_days": 0}, "chain_redraw_days", "a finite number > 0"),
        ({"chain_redraw_days": -2.0}, "chain_redraw_days", "a finite number > 0"),
        ({"chain_redraw_days": float("nan")}, "chain_redraw_days", "a finite number > 0"),
        ({"chain_redraw_days": "11"}, "chain_redraw_days", "a finite number > 0"),
        ({"mean_session_views": 0.5}, "mean_session_views", "a finite number >= 1"),
    ]
    + [({p: -0.1}, p, "a number in [0, 1]") for p in _PROBABILITIES]
    + [({p: 1.5}, p, "a number in [0, 1]") for p in _PROBABILITIES],
)
def test_bad_parameters_are_named(kwargs, name, expected):
    message = f"parameter {name!r} must be {expected}; got "
    with pytest.raises(ParameterError, match=re.escape(message)) as info:
        SyntheticWorld(**kwargs)
    assert info.value.name == name
    with pytest.raises(ParameterError, match=re.escape(message)):
        synthetic(**kwargs)  # the function validates the same way


def test_bad_parameter_error_is_a_value_error():
    with pytest.raises(ValueError, match="cart_rate"):
        synthetic(n_events=100, cart_rate=2)


def test_unknown_parameter_is_a_type_error():
    with pytest.raises(TypeError, match="cart_prob"):
        synthetic(n_events=100, cart_prob=0.5)
