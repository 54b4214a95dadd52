"""Model-specific checks for the classical recommenders (popularity, kNN, EASE, ALS, BPR)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lifelongrec import ParameterError
from lifelongrec.data import make_events
from lifelongrec.models import ALS, BPR, EASE, ItemKNN, Popularity, Recommender, UserKNN
from lifelongrec.models.knn import prune_rows

DAY = 86_400


def random_events(n_users=40, n_items=30, n_events=400, seed=0, t0=0, prefix=""):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_events)
    # a skewed item distribution, so popularity means something
    items = np.minimum(rng.geometric(0.08, n_events) - 1, n_items - 1)
    ts = t0 + np.sort(rng.integers(0, 30 * DAY, n_events))
    return make_events([f"{prefix}u{u}" for u in users], [f"i{i}" for i in items], ts)


def dense(model: Recommender) -> np.ndarray:
    return model.user_items_.toarray().astype(np.float64)


def same_order(model: Recommender, ref: Recommender, M: np.ndarray) -> np.ndarray:
    """``M`` (indexed by ``ref``'s items on both axes) reindexed to ``model``'s item order."""
    pos = np.array([ref.item_index_[i] for i in model.item_ids_])
    return M[np.ix_(pos, pos)]


# ------------------------------------------------------------------ popularity
def test_popularity_counts_events():
    ev = random_events()
    model = Popularity().fit(ev)
    counts = ev["item_id"].value_counts()
    np.testing.assert_array_equal(model.scores_, counts[model.item_ids_].to_numpy())
    ids, _ = model.recommend("nobody", k=3)
    assert list(ids) == list(counts.sort_values(ascending=False, kind="stable").index[:3])


def test_popularity_time_decay_halves_per_half_life():
    ev = make_events(["u", "v", "w"], ["old", "new", "new"], [0, 10 * DAY, 10 * DAY])
    model = Popularity(time_decay_days=10).fit(ev)
    scores = dict(zip(model.item_ids_, model.scores_, strict=True))
    assert scores == pytest.approx({"old": 0.5, "new": 2.0})


def test_popularity_partial_fit_equals_fit_on_all():
    first = random_events(seed=1)
    second = random_events(seed=2, t0=40 * DAY, n_items=40)
    for decay in (None, 7.0):
        inc = Popularity(time_decay_days=decay).fit(first).partial_fit(second)
        full = Popularity(time_decay_days=decay).fit(pd.concat([first, second]))
        got = dict(zip(inc.item_ids_, inc.scores_, strict=True))
        want = dict(zip(full.item_ids_, full.scores_, strict=True))
        assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "7", True])
def test_popularity_rejects_bad_decay(bad):
    with pytest.raises(ParameterError, match="time_decay_days"):
        Popularity(time_decay_days=bad).fit(random_events())


# ---------------------------------------------------------------------- ItemKNN
def brute_item_similarity(X: np.ndarray, k: int, shrink: float, similarity: str) -> np.ndarray:
    C = X.T @ X
    n = np.diag(C)
    if similarity == "cosine":
        den = np.sqrt(np.outer(n, n)) + shrink
    else:
        den = n[:, None] + n[None, :] - C + shrink
    S = np.divide(C, den, out=np.zeros_like(C), where=den > 0)
    np.fill_diagonal(S, 0.0)
    out = np.zeros_like(S)
    for j in range(S.shape[1]):  # each target item keeps its k best neighbours
        col = S[:, j]
        order = np.lexsort((np.arange(len(col)), -col))[:k]
        out[order, j] = col[order]
    return out


@pytest.mark.parametrize("similarity", ["cosine", "jaccard"])
@pytest.mark.parametrize("shrink", [0.0, 5.0])
def test_itemknn_similarity_matches_brute_force(similarity, shrink):
    ev = random_events()
    model = ItemKNN(k_neighbors=4, shrink=shrink, similarity=similarity).fit(ev)
    want = brute_item_similarity(dense(model), 4, shrink, similarity)
    np.testing.assert_allclose(model.similarity_.toarray(), want, rtol=1e-5, atol=1e-7)
    rows = model.user_rows(["u0", "u1"])
    np.testing.assert_allclose(
        model.score_items(["u0", "u1"]),
        with_popularity_floor(dense(model)[rows] @ want, event_counts(ev, model)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_itemknn_partial_fit_equals_fit_on_all(tmp_path):
    first = random_events(seed=3)
    second = pd.concat(
        [random_events(seed=4, n_users=60, n_items=45, t0=40 * DAY), first.iloc[:50]]
    )  # new users, new items, and pairs that were already there
    inc = ItemKNN(k_neighbors=5).fit(first).partial_fit(second)
    full = ItemKNN(k_neighbors=5).fit(pd.concat([first, second]))
    np.testing.assert_allclose(
        inc.similarity_.toarray(), same_order(inc, full, full.similarity_.toarray()), atol=1e-6
    )
    # after a load the co-occurrence cache is rebuilt, with the same result
    loaded = Recommender.load(ItemKNN(k_neighbors=5).fit(first).save(tmp_path / "m"))
    loaded.partial_fit(second)
    np.testing.assert_allclose(loaded.similarity_.toarray(), inc.similarity_.toarray())


def test_prune_rows_keeps_k_largest():
    M = sp.csr_matrix(np.array([[0.1, 0.5, 0.3, 0.5], [0, 0, 0.2, 0], [0.4, 0.1, 0.9, 0.8]]))
    got = prune_rows(M, 2).toarray()
    want = np.array([[0, 0.5, 0, 0.5], [0, 0, 0.2, 0], [0, 0, 0.9, 0.8]])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("param", "bad"),
    [("k_neighbors", 0), ("k_neighbors", 2.5), ("shrink", -1), ("similarity", "pearson")],
)
def test_itemknn_rejects_bad_params(param, bad):
    with pytest.raises(ParameterError, match=param):
        ItemKNN(**{param: bad}).fit(random_events())


# ---------------------------------------------------------------------- UserKNN
def test_userknn_scores_match_brute_force():
    ev = random_events()
    model = UserKNN(k_neighbors=3, shrink=1.0).fit(ev)
    X = dense(model)
    C = X @ X.T
    n = np.diag(C)
    S = C / (np.sqrt(np.outer(n, n)) + 1.0)
    np.fill_diagonal(S, 0.0)
    users = ["u0", "u5", "u9"]
    rows = model.user_rows(users)
    want = np.zeros((len(rows), X.shape[1]))
    for j, r in enumerate(rows):
        top = np.lexsort((np.arange(len(S)), -S[r]))[:3]
        want[j] = S[r, top] @ X[top]
    np.testing.assert_allclose(
        model.score_items(users),
        with_popularity_floor(want, event_counts(ev, model)),
        rtol=1e-5,
        atol=1e-6,
    )


def event_counts(ev, model):
    """Events per item (duplicates included), in the model's item order, from the frame."""
    return ev["item_id"].value_counts().reindex(model.item_ids_).to_numpy(dtype=np.float64)


def with_popularity_floor(scores, counts):
    """Independent restatement of the KNN floor: a zero score becomes pop / (max + 1) - 1."""
    out = scores.astype(np.float64).copy()
    for i, j in zip(*np.nonzero(out <= 0), strict=True):
        out[i, j] = counts[j] / (counts.max() + 1.0) - 1.0
    return out


def test_knn_items_without_evidence_follow_popularity():
    # u0 and u1 have identical histories: u1 is u0's only neighbour and adds nothing, so
    # every unseen item has score 0; they must come in popularity order, not index order.
    # Item "d" is the most popular of the unseen items, then "c", then "e".
    ev = make_events(
        ["u0", "u0", "u1", "u1", "u2", "u3", "u3", "u4", "u5", "u6"],
        ["a", "b", "a", "b", "e", "c", "d", "c", "d", "d"],
        np.arange(10),
    )
    ids, _ = UserKNN(k_neighbors=1).fit(ev).recommend("u0", k=3)
    assert list(ids) == ["d", "c", "e"]
    # ItemKNN: a and b co-occur only with each other, so c, d, e have no evidence for u0.
    ids, _ = ItemKNN(k_neighbors=1).fit(ev).recommend("u0", k=3)
    assert list(ids) == ["d", "c", "e"]


def test_userknn_new_user_is_a_neighbour_at_once():
    ev = make_events(["a", "a", "b"], ["x", "y", "z"], [1, 2, 3])
    model = UserKNN().fit(ev)
    assert model.recommend("a", k=1)[0][0] == "z"  # the only unseen item (b is no neighbour)
    model.partial_fit(make_events(["c", "c", "c"], ["x", "y", "w"], [4, 5, 6]))
    assert model.recommend("a", k=1)[0][0] == "w"  # c is now a's neighbour
    assert model.recommend("c", k=1)[0][0] == "z"  # the only item c has not seen


@pytest.mark.parametrize(("param", "bad"), [("k_neighbors", 0), ("shrink", float("inf"))])
def test_userknn_rejects_bad_params(param, bad):
    with pytest.raises(ParameterError, match=param):
        UserKNN(**{param: bad}).fit(random_events())


# ------------------------------------------------------------------------- EASE
def brute_ease(X: np.ndarray, l2: float) -> np.ndarray:
    P = np.linalg.inv(X.T @ X + l2 * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


def test_ease_weights_match_closed_form():
    ev = random_events()
    model = EASE(l2=3.0).fit(ev)
    np.testing.assert_allclose(model.weights_, brute_ease(dense(model), 3.0), atol=1e-5)
    assert model.n_uncovered_ == 0


def test_ease_max_items_keeps_the_most_popular():
    ev = random_events(n_items=30)
    model = EASE(l2=3.0, max_items=10).fit(ev)
    assert model.n_uncovered_ == model.n_items - 10
    top = np.argsort(-model.item_counts_, kind="stable")[:10]
    assert set(model.ease_items_) == set(top)
    X = dense(model)[:, np.sort(top)]
    np.testing.assert_allclose(model.weights_, brute_ease(X, 3.0), atol=1e-5)
    # uncovered items rank below every EASE item, among themselves by popularity
    S = model.score_items(["u0", "u1"])
    covered = np.zeros(model.n_items, dtype=bool)
    covered[model.ease_items_] = True
    assert (S[:, ~covered].max(axis=1) < S[:, covered].min(axis=1)).all()
    pop = model.item_counts_[~covered]
    for row in S[:, ~covered]:
        assert np.all(np.diff(row[np.argsort(-pop, kind="stable")]) <= 1e-7)
    # and can still be asked for as candidates
    ids, _ = model.recommend("u0", k=2, items=list(model.item_ids_[~covered][:2]))
    assert set(ids) - {None}


def test_ease_refit_threshold():
    first = random_events(seed=5)
    second = random_events(seed=6, n_users=50, n_items=35, t0=40 * DAY, prefix="n")
    full = EASE(l2=3.0).fit(pd.concat([first, second]))
    lazy = EASE(l2=3.0, refit_threshold=1.0).fit(first)
    w_before = lazy.weights_.copy()
    lazy.partial_fit(second)
    np.testing.assert_array_equal(lazy.weights_, w_before)  # B kept ...
    assert lazy.n_uncovered_ == lazy.n_items - len(w_before)  # ... new items uncovered
    assert lazy.recommend("nu0", k=3)[0][0] is not None  # new users served at once
    eager = EASE(l2=3.0, refit_threshold=0.01).fit(first).partial_fit(second)
    assert eager.n_uncovered_ == 0
    np.testing.assert_allclose(
        eager.weights_, same_order(eager, full, full.weights_.astype(np.float64)), atol=1e-5
    )


@pytest.mark.parametrize(
    ("param", "bad"),
    [("l2", 0), ("l2", -5.0), ("max_items", 0), ("refit_threshold", 0), ("refit_threshold", 2)],
)
def test_ease_rejects_bad_params(param, bad):
    with pytest.raises(ParameterError, match=param):
        EASE(**{param: bad}).fit(random_events())


# ---------------------------------------------------------------- ALS and BPR
def test_als_scores_are_factor_products():
    model = ALS(factors=4, iterations=3).fit(random_events())
    rows = model.user_rows(["u0", "u3"])
    np.testing.assert_allclose(
        model.score_items(["u0", "u3"]),
        model.user_factors_[rows] @ model.item_factors_.T,
        rtol=1e-6,
    )
    assert model.user_factors_.shape == (model.n_users, 4)


def test_als_partial_fit_updates_touched_rows_only():
    first = random_events(seed=7)
    model = ALS(factors=4, iterations=5).fit(first)
    uf, itf = model.user_factors_.copy(), model.item_factors_.copy()
    new = make_events(["u0", "u0", "fresh"], ["i0", "brand-new", "i1"], [10**8] * 3)
    model.partial_fit(new)
    touched_users = model.user_rows(["u0", "fresh"])
    untouched = np.setdiff1d(np.arange(len(uf)), touched_users)
    np.testing.assert_array_equal(model.user_factors_[untouched], uf[untouched])
    touched_items = [model.item_index_[i] for i in ("i0", "i1", "brand-new")]
    untouched_items = np.setdiff1d(np.arange(len(itf)), touched_items)
    np.testing.assert_array_equal(model.item_factors_[untouched_items], itf[untouched_items])
    assert np.abs(model.item_factors_[model.item_index_["brand-new"]]).sum() > 0
    assert np.abs(model.user_factors_[model.user_rows("fresh")]).sum() > 0


def test_bpr_bias_column_and_incremental_rows():
    model = BPR(factors=4, iterations=20).fit(random_events(seed=8))
    assert model.item_factors_.shape == (model.n_items, 5)
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)
    # similar_items compares the items' factors, without the bias column
    V = model.item_factors_[:, :-1].astype(np.float64)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    row = model.item_index_["i0"]
    expected = np.delete(V @ V[row], row)
    _, sims = model.similar_items("i0", k=model.n_items - 1)
    np.testing.assert_allclose(sims, np.sort(expected)[::-1], rtol=1e-4, atol=1e-5)
    uf = model.user_factors_.copy()
    model.partial_fit(make_events(["fresh", "fresh"], ["i0", "brand-new"], [10**8] * 2))
    assert model.user_factors_.shape == (len(uf) + 1, 5)
    assert model.item_factors_.shape[0] == model.n_items
    np.testing.assert_array_equal(model.user_factors_[:, -1], 1.0)
    np.testing.assert_array_equal(model.user_factors_[: len(uf)], uf)  # others untouched
    rows = model.user_rows(["fresh", "u1"])
    np.testing.assert_allclose(
        model.score_items(["fresh", "u1"]),
        model.user_factors_[rows] @ model.item_factors_.T,
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("cls", "param", "bad"),
    [
        (ALS, "factors", 0),
        (ALS, "regularization", -1.0),
        (ALS, "alpha", 0),
        (ALS, "iterations", 0),
        (ALS, "random_state", -3),
        (BPR, "factors", 1.5),
        (BPR, "learning_rate", 0),
        (BPR, "regularization", float("nan")),
        (BPR, "iterations", "10"),
        (BPR, "random_state", 1.0),
    ],
)
def test_factor_models_reject_bad_params(cls, param, bad):
    with pytest.raises(ParameterError, match=param):
        cls(**{param: bad}).fit(random_events())


# ------------------------------------------------------------ real data, quality
def _ndcg_at_10(model, train, test_users, test_items) -> float:
    ids, _ = model.fit(train).recommend(test_users, k=10)
    hit = ids == np.asarray(test_items, dtype=object)[:, None]
    pos = np.argmax(hit, axis=1)
    return float(np.where(hit.any(axis=1), 1.0 / np.log2(pos + 2), 0.0).mean())


@pytest.mark.slow
def test_defaults_beat_popularity_on_movielens_100k(shared_data):
    path = shared_data / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    df = pd.read_csv(path, sep="\t", names=["u", "i", "r", "t"])
    df = df.reset_index().sort_values(["t", "index"], kind="stable")
    last = df.groupby("u").tail(1)  # leave the last event of each user out
    rest = df.drop(last.index)
    train = make_events(rest["u"], rest["i"], rest["t"].to_numpy(np.int64))
    users = list(last["u"].astype(str))
    items = list(last["i"].astype(str))
    pop = _ndcg_at_10(Popularity(), train, users, items)
    for model in (EASE(), ALS(), ItemKNN()):
        assert _ndcg_at_10(model, train, users, items) > 1.3 * pop, model


def test_ease_weights_are_c_contiguous_after_fit_and_load(tmp_path):
    # scipy's sparse @ dense copies a Fortran-ordered operand on every call: with B from
    # LAPACK's potri (Fortran order) that made scoring on beauty take minutes per batch.
    rng = np.random.default_rng(0)
    ev = make_events(rng.integers(0, 50, 400), rng.integers(0, 30, 400), np.arange(400))
    model = EASE(l2=10.0).fit(ev)
    assert model.weights_.flags["C_CONTIGUOUS"]
    model.save(tmp_path / "ease")
    assert Recommender.load(tmp_path / "ease").weights_.flags["C_CONTIGUOUS"]
