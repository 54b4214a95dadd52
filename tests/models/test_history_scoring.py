"""Scoring users from given histories: ``score_histories`` / ``recommend_histories``.

Each model is checked against an independent computation: its own stored-history path
(a user whose stored history is the given events), or the formula written out in numpy.
The block world (tests/conftest.py) is the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_conformance import TINY_PARAMS  # tests/models is on the path under pytest

from lifelongrec import DataError, NotFittedError, ParameterError, UnknownIdError
from lifelongrec.data import Dataset, make_events
from lifelongrec.models import MODELS, get_model

#: The conformance suite's small models, the sequential one trained for fewer epochs.
TINY = {**TINY_PARAMS, "sequential": {**TINY_PARAMS["sequential"], "epochs": 3}}
NAMES = sorted(MODELS)
#: Models whose stored user state is not a function of the history (factor models): for
#: them the given-history path is a fold-in, checked against its formula below.
FOLD_IN = {"als", "bpr"}


_FITTED: dict[str, object] = {}  # one fit per model for this module; tests do not mutate


@pytest.fixture
def fitted(blocks_dataset):
    """``fitted(name)``: that model fitted on the block world (``fitted.data``)."""

    def get(name: str):
        if name not in _FITTED:
            _FITTED[name] = get_model(name, **TINY.get(name, {})).fit(blocks_dataset)
        return _FITTED[name]

    get.data = blocks_dataset
    return get


def events_of(data: Dataset, user: str) -> pd.DataFrame:
    ev = data.events
    return ev[ev["user_id"] == user].reset_index(drop=True)


# ------------------------------------------------------------------ every model
@pytest.mark.parametrize("name", sorted(set(NAMES) - FOLD_IN))
def test_stored_history_gives_the_stored_scores(name, fitted):
    model = fitted(name)
    users = ["pA", "uA0", "uB3", "uB7"]
    expected = model.score_items(users)
    got = model.score_histories(users, fitted.data.events)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    rec = model.recommend(users, k=4)
    rec_h = model.recommend_histories(users, fitted.data.events, k=4)
    np.testing.assert_array_equal(rec_h[0], rec[0])
    np.testing.assert_allclose(rec_h[1], rec[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_before_equals_cutting_the_history_by_hand(name, fitted):
    # One user at several moments in one call (the prefix fast path) against one call per
    # moment with the history cut in the test.
    model = fitted(name)
    ev = pd.concat([events_of(fitted.data, "pA"), events_of(fitted.data, "uA1")])
    ev = ev.assign(timestamp=np.arange(len(ev)) * 10)  # distinct, increasing
    moments = [0, 5, 15, 25, 35, 1_000]
    users = ["pA"] * len(moments) + ["uA1"] * 2
    before = moments + [45, 1_000]
    got = model.score_histories(users, ev, before=before)
    for j, (u, t) in enumerate(zip(users, before, strict=True)):
        part = ev[(ev["user_id"] == u) & (ev["timestamp"] < t)]
        expected = model.score_histories(u, part) if len(part) else model.score_items("nobody")
        np.testing.assert_allclose(got[j], expected, rtol=1e-5, atol=1e-5, err_msg=f"query {j}")


@pytest.mark.parametrize("name", NAMES)
def test_empty_history_and_unknown_user_get_cold_scores(name, fitted):
    model = fitted(name)
    cold = model.score_items("nobody")
    empty = make_events([], [], np.array([], dtype=np.int64))
    np.testing.assert_allclose(model.score_histories("nobody", empty), cold, rtol=1e-6)
    # a known user with nothing visible (before their first event) is cold too
    np.testing.assert_allclose(
        model.score_histories("pA", fitted.data.events, before=0), cold, rtol=1e-6
    )


@pytest.mark.parametrize("name", NAMES)
def test_unknown_items_in_a_history_are_ignored(name, fitted):
    model = fitted(name)
    base = make_events(["z", "z"], ["a0", "a1"], [1, 2])
    noisy = make_events(["z", "z", "z"], ["a0", "never-seen", "a1"], [1, 2, 3])
    np.testing.assert_allclose(
        model.score_histories("z", noisy), model.score_histories("z", base), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", NAMES)
def test_history_scoring_does_not_change_the_model(name, fitted):
    model = fitted(name)
    before = model.score_items(["pA", "uB0"])
    X = model.user_items_
    model.score_histories(["pA", "new"], make_events(["pA", "new"], ["b0", "a4"], [1, 2]))
    assert model.user_items_ is X
    np.testing.assert_array_equal(model.score_items(["pA", "uB0"]), before)


# ------------------------------------------------------- independent formulas
def history_row(model, items) -> np.ndarray:
    x = np.zeros(model.n_items)
    x[[model.item_index_[i] for i in items]] = 1.0
    return x


def with_popularity_floor(S: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Zero-evidence items rank below the others by popularity (written out again)."""
    pop = counts / (counts.max() + 1.0) - 1.0
    return np.where(S > 0, S, pop[None, :])


def test_itemknn_history_scores_are_the_row_times_the_similarity(fitted):
    model = fitted("itemknn")
    hist = make_events(["z", "z", "z"], ["a0", "b1", "a0"], [1, 2, 3])  # a0 twice: binary
    x = history_row(model, ["a0", "b1"])
    expected = with_popularity_floor(x[None, :] @ model.similarity_.toarray(), model.item_counts_)
    np.testing.assert_allclose(model.score_histories(["z"], hist), expected, rtol=1e-5)


def test_ease_history_scores_are_the_row_times_b(fitted):
    model = fitted("ease")
    hist = make_events(["z", "z"], ["a1", "a3"], [1, 2])
    x = history_row(model, ["a1", "a3"])[model.ease_items_]
    np.testing.assert_allclose(
        model.score_histories("z", hist), x @ model.weights_, rtol=1e-5, atol=1e-6
    )


def test_content_history_scores_are_the_profile_cosine(fitted):
    model = fitted("content")
    hist = make_events(["z", "z"], ["a0", "b2"], [1, 2])
    V = model.item_vectors_.toarray()
    p = history_row(model, ["a0", "b2"]) @ V
    p /= np.linalg.norm(p)
    np.testing.assert_allclose(model.score_histories("z", hist), V @ p, rtol=1e-5, atol=1e-6)


def test_content_half_life_weights_the_history_by_its_own_timestamps(blocks_dataset):
    model = get_model("content", half_life=10.0).fit(blocks_dataset)
    hist = make_events(["z", "z", "z"], ["b0", "a0", "b0"], [0, 10, 20])  # b0's latest: 20
    V = model.item_vectors_.toarray()
    w = {"a0": 0.5, "b0": 1.0}  # a0 is one half-life older than the latest event
    p = sum(w[i] * V[model.item_index_[i]] for i in w)
    p /= np.linalg.norm(p)
    np.testing.assert_allclose(model.score_histories("z", hist), V @ p, rtol=1e-5, atol=1e-6)


def test_userknn_finds_neighbours_among_stored_users_without_itself():
    # u alone has y; a stranger with history {x} has u as a neighbour and so gets y, but
    # u itself (whose stored row holds y, e.g. a later event) must not be its own
    # neighbour: for u, y has no evidence.
    ev = make_events(["u", "u", "v", "v", "w"], ["x", "y", "x", "q", "q"], [1, 2, 3, 4, 5])
    model = get_model("userknn").fit(ev)
    hist = make_events(["u", "s"], ["x", "x"], [1, 1])
    S = model.score_histories(["u", "s"], hist)
    y = model.item_index_["y"]
    assert S[1, y] > 0  # from neighbour u
    assert S[0, y] < 0  # no evidence: below every item with some
    # brute force for the stranger: cosine to every stored user, all neighbours kept
    X = model.user_items_.toarray()
    x = history_row(model, ["x"])
    sims = (X @ x) / np.sqrt(X.sum(axis=1) * x.sum())
    expected = with_popularity_floor((sims @ X)[None, :], model.item_counts_)[0]
    np.testing.assert_allclose(S[1], expected, rtol=1e-5)


def test_als_folds_in_with_the_least_squares_user_solve(fitted):
    model = fitted("als")
    hist = make_events(["z", "z", "z"], ["a0", "a2", "b4"], [1, 2, 3])
    Y = model.item_factors_.astype(np.float64)
    x = history_row(model, ["a0", "a2", "b4"])
    alpha, reg = model.alpha, model.regularization
    # implicit ALS: (YᵀY + reg I + Yᵀ(C - I)Y) u = YᵀCp with C = alpha on observed pairs
    A = Y.T @ Y + reg * np.eye(Y.shape[1]) + (alpha - 1.0) * (Y.T * x) @ Y
    u = np.linalg.solve(A, alpha * Y.T @ x)
    np.testing.assert_allclose(model.score_histories("z", hist), Y @ u, rtol=1e-3, atol=1e-4)


def test_bpr_folds_in_by_ridge_regression_on_the_item_factors(fitted):
    model = fitted("bpr")
    hist = make_events(["z", "z"], ["b0", "b3"], [1, 2])
    V = model.item_factors_.astype(np.float64)  # the bias column is a factor here
    x = history_row(model, ["b0", "b3"])
    lam = model.regularization * model.n_items
    # the ridge problem as an augmented least-squares system, solved another way
    A = np.vstack([V, np.sqrt(lam) * np.eye(V.shape[1])])
    u = np.linalg.lstsq(A, np.r_[x, np.zeros(V.shape[1])], rcond=None)[0]
    np.testing.assert_allclose(model.score_histories("z", hist), V @ u, rtol=1e-3, atol=1e-4)
    # and it is a real fold-in: the other B items come first
    top = model.recommend_histories("z", hist, k=3)[0]
    assert set(top) == {"b1", "b2", "b4"}


def test_hybrid_asks_its_components(blocks_dataset):
    hyb = get_model("hybrid", components=["itemknn"], weights=[1.0], normalize="none")
    hyb.fit(blocks_dataset)
    knn = get_model("itemknn").fit(blocks_dataset)
    hist = make_events(["z", "z"], ["a0", "b0"], [1, 2])
    np.testing.assert_allclose(
        hyb.score_histories("z", hist), knn.score_histories("z", hist), rtol=1e-6
    )


def test_popularity_ignores_the_history_except_for_exclusion(fitted):
    model = fitted("popularity")
    hist = make_events(["z"], ["b0"], [1])
    np.testing.assert_allclose(model.score_histories("z", hist), model.scores_, rtol=1e-6)
    masked = model.score_histories("z", hist, exclude_seen=True)
    assert masked[model.item_index_["b0"]] == -np.inf
    assert np.isfinite(np.delete(masked, model.item_index_["b0"])).all()


def test_sequential_reads_the_order_of_the_events(fitted):
    model = fitted("sequential")
    items = ["a0", "b0", "a1", "b1", "a2"]
    forward = make_events(["z"] * 5, items, [1, 2, 3, 4, 5])
    backward = make_events(["z"] * 5, items[::-1], [1, 2, 3, 4, 5])
    S = model.score_histories(["z", "z"], pd.concat([forward, backward.assign(user_id="y")]))
    S2 = model.score_histories(["z", "y"], pd.concat([forward, backward.assign(user_id="y")]))
    assert np.allclose(S, S2[[0, 0]])
    assert not np.allclose(S2[0], S2[1], atol=1e-4)


def test_sequential_reads_only_the_last_max_len_events(fitted):
    model = fitted("sequential")  # max_len 8
    tail = [f"a{i % 5}" for i in range(8)]
    one = make_events(["z"] * 10, ["b0", "b1", *tail], list(range(10)))
    two = make_events(["z"] * 10, ["b3", "b4", *tail], list(range(10)))
    # the first two events fall outside the window of 8 (their gaps are the same too)
    np.testing.assert_allclose(
        model.score_histories("z", one), model.score_histories("z", two), rtol=1e-6
    )
    three = make_events(["z"] * 10, ["b0", "b3", *tail[:-1], "b2"], list(range(10)))
    assert not np.allclose(model.score_histories("z", one), model.score_histories("z", three))


# ------------------------------------------------------ exclusion and shapes
def test_recommend_histories_excludes_the_history_and_matches_the_scores(fitted):
    model = fitted("itemknn")
    hist = make_events(["z", "z", "y"], ["a0", "a1", "b0"], [1, 2, 3])
    ids, scores = model.recommend_histories(["z", "y"], hist, k=3)
    assert ids.shape == (2, 3)
    assert not {"a0", "a1"} & set(ids[0]) and "b0" not in set(ids[1])
    S = model.score_histories(["z", "y"], hist, exclude_seen=True)
    for row in range(2):
        best = np.argsort(-S[row], kind="stable")[:3]
        np.testing.assert_allclose(scores[row], S[row, best], rtol=1e-6)
    one_ids, one_scores = model.recommend_histories("z", hist, k=3)
    assert one_ids.shape == (3,) and list(one_ids) == list(ids[0])
    kept = model.recommend_histories("z", hist, k=20, exclude_seen=False)[0]
    assert {"a0", "a1"} <= set(kept)


def test_items_select_columns(fitted):
    model = fitted("itemknn")
    hist = make_events(["z"], ["a0"], [1])
    full = model.score_histories("z", hist)
    sub = model.score_histories("z", hist, items=["b2", "a1"])
    assert sub.tolist() == [full[model.item_index_["b2"]], full[model.item_index_["a1"]]]
    with pytest.raises(UnknownIdError):
        model.score_histories("z", hist, items=["nope"])


# ------------------------------------------------------------------ errors
def test_bad_histories_raise_typed_errors(fitted):
    model = fitted("popularity")
    with pytest.raises(DataError, match="history"):
        model.score_histories("z", [("z", "a0", 1)])
    with pytest.raises(DataError, match="timestamp"):
        model.score_histories("z", pd.DataFrame({"user_id": ["z"], "item_id": ["a0"]}))
    bad_ts = pd.DataFrame({"user_id": ["z"], "item_id": ["a0"], "timestamp": [1.5]})
    with pytest.raises(DataError, match="integers"):
        model.score_histories("z", bad_ts)
    missing = pd.DataFrame({"user_id": ["z"], "item_id": [None], "timestamp": [1]})
    with pytest.raises(DataError, match="item_id"):
        model.score_histories("z", missing)
    hist = make_events(["z"], ["a0"], [1])
    with pytest.raises(ParameterError, match="before"):
        model.score_histories(["z", "y"], hist, before=[1, 2, 3])
    with pytest.raises(ParameterError, match="before"):
        model.score_histories("z", hist, before="yesterday")
    with pytest.raises(ParameterError, match="'k'"):
        model.recommend_histories("z", hist, k=0)


def test_unfitted_model_raises_not_fitted():
    with pytest.raises(NotFittedError):
        get_model("itemknn").score_histories("z", make_events(["z"], ["a0"], [1]))
    with pytest.raises(NotFittedError):
        get_model("itemknn").recommend_histories("z", make_events(["z"], ["a0"], [1]))


def test_default_path_scores_a_copy_with_the_history_rows(blocks_dataset):
    # A model that implements only _score (reading user_items_[rows]) gets history
    # scoring from the base class default.
    from lifelongrec.models import Recommender

    class RowSum(Recommender):
        name = "rowsum"

        def _fit(self, X, data):
            self.W_ = sp.random(X.shape[1], X.shape[1], density=0.5, random_state=0).tocsr()

        def _score(self, rows):
            return (self.user_items_[rows] @ self.W_).toarray().astype(np.float32)

    model = RowSum().fit(blocks_dataset)
    hist = make_events(["z", "z"], ["a0", "b0"], [1, 2])
    x = history_row(model, ["a0", "b0"])
    np.testing.assert_allclose(model.score_histories("z", hist), x @ model.W_.toarray(), rtol=1e-5)
    assert model.user_items_.shape[0] == blocks_dataset.n_users  # untouched
