"""``observe`` (state at once, no learning) and ``forget_users`` (erasure) on every model.

The block world (tests/conftest.py): ``pA`` has seen a0..a3, so a personalised model
ranks ``a4`` first for them. Each model is checked against an independent computation
where there is one: the user's scores after ``observe`` are the scores of
``score_histories`` on their full event history (a separate code path: the events are
given, not stored), the state after ``observe`` is the state after ``partial_fit`` of the
same events, and a model that forgot a user scores others as one fitted without them.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_conformance import TINY_PARAMS  # tests/models is on the path under pytest

from lifelongrec import DataError, NotFittedError, ParameterError
from lifelongrec.data import Dataset, make_events
from lifelongrec.models import MODELS, Hybrid, ItemKNN, Recommender, get_model
from lifelongrec.models import _observe as observe_module
from lifelongrec.models import _sparse as sparse_module
from lifelongrec.models._base import FreeRow, insert_cells
from lifelongrec.models._sparse import PendingCells

#: The conformance suite's small models, the sequential one trained for fewer epochs.
TINY = {**TINY_PARAMS, "sequential": {**TINY_PARAMS["sequential"], "epochs": 3}}
NAMES = sorted(MODELS)
CLASSICAL = [n for n in NAMES if n != "sequential"]
PERSONALISED = [n for n in NAMES if n != "popularity"]

_FITTED: dict[str, Recommender] = {}


@pytest.fixture
def fitted(blocks_dataset):
    """``fitted(name)``: a fresh copy of that model fitted on the block world."""

    def get(name: str, **params) -> Recommender:
        key = f"{name}{sorted(params.items())}"
        if key not in _FITTED:
            _FITTED[key] = get_model(name, **{**TINY.get(name, {}), **params}).fit(blocks_dataset)
        return copy.deepcopy(_FITTED[key])

    get.data = blocks_dataset
    return get


def one_event(user: str, item: str, t: int = 1_000) -> pd.DataFrame:
    return make_events([user], [item], [t])


def seen(model: Recommender, user: str) -> set[str]:
    X = model.user_items_.tocsr()
    r = int(model.user_rows(user)[0])
    return {str(model.item_ids_[c]) for c in X.indices[X.indptr[r] : X.indptr[r + 1]]}


# ------------------------------------------------------------------- observe
@pytest.mark.parametrize("name", NAMES)
def test_observe_is_reflected_in_the_next_recommendation(name, fitted):
    model = fitted(name)
    k = model.n_items
    before = model.recommend("pA", k=k)
    ev = one_event("pA", "a4")
    assert model.observe(ev) is model
    ids, _ = model.recommend("pA", k=k)
    assert "a4" not in set(ids)  # excluded as seen at once
    assert list(ids) != list(before[0])
    assert seen(model, "pA") == {"a0", "a1", "a2", "a3", "a4"}
    # The scores are those of the user's full history, given instead of stored.
    full = pd.concat([fitted.data.events, ev], ignore_index=True)
    np.testing.assert_allclose(
        model.score_items("pA"), model.score_histories("pA", full), rtol=1e-4, atol=1e-5
    )
    rec_h = model.recommend_histories("pA", full, k=5)
    rec = model.recommend("pA", k=5)
    np.testing.assert_array_equal(rec_h[0], rec[0])


@pytest.mark.parametrize("name", [n for n in PERSONALISED if n != "sequential"])
def test_observe_changes_the_ranking_of_a_history_scored_user(name, fitted):
    # uB9 saw b0..b3 (a B user): an A item observed moves A items up their list.
    model = fitted(name)
    before = model.score_items("uB9")
    model.observe(make_events(["uB9", "uB9"], ["a0", "a1"], [1_000, 1_001]))
    after = model.score_items("uB9")
    cols = [int(np.flatnonzero(model.item_ids_ == i)[0]) for i in ("a2", "a3", "a4")]
    b4 = int(np.flatnonzero(model.item_ids_ == "b4")[0])
    gain_a = (after[cols] - after[b4]) - (before[cols] - before[b4])
    assert (gain_a >= -1e-6).all() and gain_a.max() > 0, (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_observe_counts_events_whether_or_not_the_counts_can_be_written(name, fitted):
    """The counts grow in place; a read-only array (e.g. shared with a reader that must
    not see it change) is copied first, and left as it was."""
    model = fitted(name)
    row = int(model.item_index_["a4"])
    start = float(model.item_counts_[row])
    model.observe(make_events(["pA", "pB", "pA"], ["a4", "a4", "a4"], [1_000, 1_001, 1_002]))
    assert model.item_counts_[row] == start + 3
    frozen = model.item_counts_
    frozen.flags.writeable = False
    model.observe(one_event("pB", "a4", 1_003))
    assert model.item_counts_[row] == start + 4 and model.item_counts_ is not frozen
    assert frozen[row] == start + 3  # the read-only array was not changed
    model.observe(one_event("pA", "a4", 1_004))  # and the copy is written from then on
    assert model.item_counts_[row] == start + 5


@pytest.mark.parametrize("name", NAMES)
def test_observe_leaves_the_state_partial_fit_leaves(name, fitted, blocks_update):
    observed, learned = fitted(name), fitted(name)
    observed.observe(blocks_update)
    learned.partial_fit(blocks_update)
    assert list(observed.user_ids_) == list(learned.user_ids_)
    assert list(observed.item_ids_) == list(learned.item_ids_)
    np.testing.assert_array_equal(observed.user_items_.toarray(), learned.user_items_.toarray())
    np.testing.assert_allclose(observed.item_counts_, learned.item_counts_)


@pytest.mark.parametrize("name", NAMES)
def test_observe_new_users_and_items(name, fitted, blocks_update):
    model = fitted(name)
    n_users, n_items = model.n_users, model.n_items
    model.observe(blocks_update)  # nA (a0, a1, a2), items na0 and nb0, with content
    assert model.n_users == n_users + 1 and model.n_items == n_items + 2
    assert int(model.user_rows("nA")[0]) >= 0
    ids, scores = model.recommend("nA", k=4)
    assert not {"a0", "a1", "a2"} & set(ids)
    assert np.isfinite(scores).all()
    if name != "popularity":
        assert ids[0] in {"a3", "a4", "na0"}, ids
    assert model.similar_items("na0", k=3)[0].shape == (3,)
    ids, _ = model.recommend("pA", k=3, items=["na0", "nb0", "b0"])
    assert "na0" not in ids
    # a new user with one event on a new item
    model.observe(one_event("fresh", "brand-new"))
    assert seen(model, "fresh") == {"brand-new"}
    assert "brand-new" not in set(model.recommend("fresh", k=model.n_items)[0])


def test_observe_gives_new_items_their_content(fitted, blocks_update):
    model = fitted("content")
    model.observe(blocks_update)
    row = int(np.flatnonzero(model.item_ids_ == "na0")[0])
    assert model.item_vectors_[row].nnz > 0
    ref = fitted("content").partial_fit(blocks_update)
    np.testing.assert_allclose(model.item_vectors_.toarray(), ref.item_vectors_.toarray())
    s = model.score_items("pA", items=["na0", "nb0"])
    assert s[0] > s[1]  # a space-robot item for a space-robot user, from content alone
    # an item no catalogue describes: a zero vector, counted
    model.observe(one_event("pA", "undescribed"))
    assert model.item_vectors_[model.n_items - 1].nnz == 0
    assert model.n_items_without_content_ == ref.n_items_without_content_ + 1


@pytest.mark.parametrize("params", [{"half_life": 5.0}, {"half_life": 5.0, "category_weight": 2.0}])
def test_content_recency_after_observe_equals_partial_fit(params, fitted, blocks_update):
    observed, learned = fitted("content", **params), fitted("content", **params)
    observed.observe(blocks_update)
    learned.partial_fit(blocks_update)
    early = make_events(["pA"], ["b0"], [0])  # before every stored event
    observed.observe(early)
    learned.partial_fit(early)
    assert observed.time_origin_ == learned.time_origin_
    np.testing.assert_allclose(observed.last_seen_.toarray(), learned.last_seen_.toarray())
    users = ["pA", "nA", "uB0"]
    np.testing.assert_allclose(
        observed.score_items(users), learned.score_items(users), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("decay", [None, 3.0])
def test_popularity_counts_observed_events(decay, fitted, blocks_update):
    observed = fitted("popularity", time_decay_days=decay)
    learned = fitted("popularity", time_decay_days=decay)
    observed.observe(blocks_update)
    learned.partial_fit(blocks_update)
    np.testing.assert_allclose(observed.scores_, learned.scores_)
    assert observed.last_timestamp_ == learned.last_timestamp_


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_factor_models_fold_in_observed_users_until_they_learn(name, fitted, tmp_path):
    model = fitted(name)
    ev = one_event("uB9", "a0")
    model.observe(ev)
    full = pd.concat([fitted.data.events, ev], ignore_index=True)
    folded = model.score_histories("uB9", full)
    np.testing.assert_allclose(model.score_items("uB9"), folded, rtol=1e-5, atol=1e-5)
    # the stored factor row has not learned the event
    r = int(model.user_rows("uB9")[0])
    stored = model.user_factors_[r] @ model.item_factors_.T
    np.testing.assert_allclose(stored, fitted(name).score_items("uB9"), rtol=1e-6, atol=1e-6)
    # survives save / load
    loaded = Recommender.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.score_items("uB9"), folded, rtol=1e-5, atol=1e-5)
    # a partial_fit that touches the user computes their row again: it is used from then
    model.partial_fit(one_event("uB9", "a1", 1_001))
    r_vec = model.user_factors_[r] @ model.item_factors_.T
    np.testing.assert_allclose(model.score_items("uB9"), r_vec, rtol=1e-6, atol=1e-6)


def test_itemknn_similarity_after_observe_then_partial_fit_is_exact(fitted):
    # Observed events are not in the co-occurrence cache; the next partial_fit adds them,
    # so the similarity equals a fit on every event.
    model = fitted("itemknn")
    e1 = make_events(["uB0", "uA3"], ["a0", "b1"], [200, 201])
    e2 = make_events(["uB1"], ["a2"], [202])
    model.observe(e1)
    model.partial_fit(e2)
    ref = ItemKNN(**TINY.get("itemknn", {})).fit(
        pd.concat([fitted.data.events, e1, e2], ignore_index=True)
    )
    np.testing.assert_allclose(model.similarity_.toarray(), ref.similarity_.toarray(), atol=1e-6)


def test_userknn_neighbours_use_observed_events_at_once(fitted):
    model = fitted("userknn")
    model.score_items("uB0")  # builds the item x user cache
    ev = make_events(["uB0", "new"], ["a0", "a1"], [200, 201])
    model.observe(ev)
    ref = get_model("userknn", **TINY.get("userknn", {})).fit(
        pd.concat([fitted.data.events, ev], ignore_index=True)
    )
    users = ["uB0", "uB1", "uA0", "new"]
    np.testing.assert_allclose(model.score_items(users), ref.score_items(users), atol=1e-6)


def test_hybrid_observes_through_its_components(fitted, blocks_update):
    model = fitted("hybrid")
    model.observe(blocks_update)
    for component in model.components_:
        assert list(component.user_ids_) == list(model.user_ids_)
        assert int(component.user_rows("nA")[0]) >= 0
        assert list(component.item_ids_) == list(model.item_ids_)  # no column remapping


def test_hybrid_with_a_sequential_component_keeps_no_training_material(fitted, blocks_update):
    model = Hybrid(
        components=("itemknn", "sequential"),
        weights=(0.5, 0.5),
        component_params=[None, TINY["sequential"]],
    ).fit(fitted.data)
    model.observe(blocks_update)
    seq = model.components_[1]
    assert seq.n_online_pending == 0
    assert "a0" not in set(model.recommend("nA", k=model.n_items)[0])


@pytest.mark.parametrize("name", NAMES)
def test_observe_input_forms_and_errors(name, fitted):
    model = fitted(name)
    ev = one_event("pA", "a4")
    via_cols = fitted(name).observe({c: ev[c].to_numpy() for c in ev.columns})
    via_data = fitted(name).observe(Dataset(events=ev))
    minimal = fitted(name).observe(ev[["user_id", "item_id", "timestamp"]])
    ref = fitted(name).observe(ev)
    for other in (via_cols, via_data, minimal):
        np.testing.assert_allclose(other.score_items("pA"), ref.score_items("pA"), atol=1e-6)
    frozen = ev.copy()
    model.observe(ev)
    pd.testing.assert_frame_equal(ev, frozen)  # the caller's frame is not changed
    X, counts = model.user_items_, model.item_counts_.copy()
    assert model.observe(ev.iloc[:0]) is model
    bad = [
        ([("pA", "a4")], "cannot use this object as events"),
        (ev.drop(columns="timestamp"), "lack required columns"),
        (ev.assign(timestamp=[1.5]), "timestamp is not an integer"),
        (ev.assign(user_id=[None]), "user_id is missing"),
        ({"user_id": ["pA", "pA"], "item_id": ["a4"], "timestamp": [1]}, "differ in length"),
        (ev.assign(value=["high"]), "values must be numbers"),
    ]
    for events, message in bad:
        with pytest.raises(DataError, match=message):
            model.observe(events)
    if name != "sequential":  # it reads ``items`` only for an event on a new item
        with pytest.raises(DataError, match="item catalogue"):
            model.observe(ev, items=[{"item_id": "x"}])
    assert model.user_items_ is X  # nothing of a bad call is taken in
    np.testing.assert_array_equal(model.item_counts_, counts)


@pytest.mark.parametrize("name", NAMES)
def test_observe_and_forget_need_a_fitted_model(name):
    model = get_model(name, **TINY.get(name, {}))
    with pytest.raises(NotFittedError):
        model.observe(one_event("pA", "a0"))
    with pytest.raises(NotFittedError):
        model.forget_users(["pA"])


# -------------------------------------------------------------------- forget
@pytest.mark.parametrize("name", NAMES)
def test_forget_users_erases_the_user(name, fitted, tmp_path):
    model = fitted(name)
    model.observe(one_event("pA", "b0"))
    r = int(model.user_rows("pA")[0])
    assert model.forget_users(["pA", "nobody", "pA"]) == ["pA"]
    cold = model.recommend("never-seen", k=5)
    assert model.forget_users("pA") == []  # already gone
    assert int(model.user_rows("pA")[0]) == -1
    assert "pA" not in set(model.user_ids_.tolist())
    assert model.user_items_[r].nnz == 0
    assert isinstance(model.user_ids_[r], FreeRow)
    ids, scores = model.recommend("pA", k=5)
    np.testing.assert_array_equal(ids, cold[0])  # served as a new user
    # the erasure survives save / load, and the placeholder is no id
    for loaded in (Recommender.load(model.save(tmp_path / "m")), copy.deepcopy(model)):
        assert int(loaded.user_rows("pA")[0]) == -1
        assert isinstance(loaded.user_ids_[r], FreeRow)
        assert int(loaded.user_rows(str(FreeRow(r)))[0]) == -1
        np.testing.assert_array_equal(loaded.recommend("pA", k=5)[0], cold[0])
        np.testing.assert_allclose(loaded.score_items("uB0"), model.score_items("uB0"), atol=1e-6)
    # a later event makes a new user, whose history is that event alone
    model.observe(one_event("pA", "a1", 2_000))
    assert int(model.user_rows("pA")[0]) >= 0
    assert seen(model, "pA") == {"a1"}
    assert "a1" not in set(model.recommend("pA", k=model.n_items)[0])


@pytest.mark.parametrize("name", CLASSICAL)
def test_forget_users_takes_their_items_out_of_the_counts(name, fitted):
    model = fitted(name)
    counts = model.item_counts_.copy()
    r = int(model.user_rows("uA0")[0])
    items = model.user_items_[r].indices
    model.forget_users("uA0")
    expected = counts.copy()
    expected[items] -= 1
    np.testing.assert_allclose(model.item_counts_, expected)


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_forget_users_zeroes_factor_rows(name, fitted):
    model = fitted(name)
    model.observe(one_event("uB3", "a0"))  # stale: scored by fold-in
    r = int(model.user_rows("uB3")[0])
    model.forget_users("uB3")
    if name == "bpr":  # the last column is the constant input of the item bias
        assert not model.user_factors_[r, :-1].any() and model.user_factors_[r, -1] == 1.0
    else:
        assert not model.user_factors_[r].any()
    # the set of rows scored by fold-in has no public view: a forgotten row left in it
    # would be folded in again from an empty history
    assert r not in model._stale_users


def test_forget_users_clears_content_recency(fitted):
    model = fitted("content", half_life=5.0)
    r = int(model.user_rows("pA")[0])
    assert model.last_seen_[r].nnz > 0
    model.forget_users("pA")
    assert model.last_seen_[r].nnz == 0


def test_userknn_forgotten_user_is_nobodys_neighbour(fitted):
    model = fitted("userknn")
    model.score_items("uA0")  # builds the item x user cache
    model.forget_users("pA")
    ev = fitted.data.events
    ref = get_model("userknn", **TINY.get("userknn", {})).fit(ev[ev["user_id"] != "pA"])
    users = ["uA0", "uA3", "uB2"]
    np.testing.assert_allclose(model.score_items(users), ref.score_items(users), atol=1e-6)


def test_itemknn_forgets_users_in_its_next_similarity(fitted):
    model = fitted("itemknn")
    model.observe(one_event("pA", "b0"))
    model.forget_users(["pA", "uB0"])
    update = one_event("uB1", "a0", 300)
    model.partial_fit(update)
    ev = pd.concat([fitted.data.events, update], ignore_index=True)
    ref = ItemKNN(**TINY.get("itemknn", {})).fit(ev[~ev["user_id"].isin(["pA", "uB0"])])
    np.testing.assert_allclose(model.similarity_.toarray(), ref.similarity_.toarray(), atol=1e-6)


def test_hybrid_forgets_in_every_component(fitted):
    model = fitted("hybrid")
    model.forget_users("pA")
    for component in model.components_:
        assert int(component.user_rows("pA")[0]) == -1


def test_a_real_id_that_looks_like_a_placeholder_is_kept(fitted, tmp_path):
    model = fitted("itemknn")
    lo, hi = sorted(int(x) for x in model.user_rows(["pA", "uB0"]))
    model.forget_users(["pA", "uB0"])
    # A real user named as the placeholder of row hi is written to disk (text) exactly
    # as that placeholder is; they take row lo (free rows are taken lowest first).
    lookalike = str(FreeRow(hi))
    model.observe(one_event(lookalike, "a0"))
    assert model.user_ids_[lo] == lookalike and isinstance(model.user_ids_[hi], FreeRow)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    assert int(loaded.user_rows(lookalike)[0]) == lo
    assert isinstance(loaded.user_ids_[hi], FreeRow)
    assert int(loaded.user_rows("pA")[0]) == int(loaded.user_rows("uB0")[0]) == -1
    loaded.observe(one_event("late", "a1"))
    assert int(loaded.user_rows("late")[0]) == hi  # the free row survived the round trip


@pytest.mark.parametrize("name", NAMES)
def test_new_users_take_the_rows_of_erased_ones(name, fitted):
    model = fitted(name)
    n_users = model.n_users
    gone = model.forget_users(["uB0", "uA1", "pA"])
    rows = set(range(n_users)) - set(model.user_rows(model.user_ids_).tolist())
    model.observe(make_events(["n1", "n2", "n3"], ["a0", "b1", "a2"], [500, 501, 502]))
    assert model.n_users == n_users  # no growth: memory stays bounded under churn
    assert set(model.user_rows(["n1", "n2", "n3"]).tolist()) == rows
    assert [seen(model, u) for u in ("n1", "n2", "n3")] == [{"a0"}, {"b1"}, {"a2"}]
    assert all(int(model.user_rows(u)[0]) == -1 for u in gone)
    model.partial_fit(make_events(["uB0"], ["b2"], [503]))  # one more: a new row
    assert model.n_users == n_users + 1 and seen(model, "uB0") == {"b2"}


def test_a_user_who_comes_back_starts_from_nothing(fitted):
    model = fitted("als")
    r = int(model.user_rows("pA")[0])
    model.forget_users("pA")
    back = one_event("pA", "a4", 500)
    model.partial_fit(back)
    assert int(model.user_rows("pA")[0]) == r  # the free row, reused
    assert seen(model, "pA") == {"a4"}
    # the factor row was solved from the new history alone
    np.testing.assert_allclose(
        model.score_items("pA"), model.score_histories("pA", back), rtol=1e-4, atol=1e-5
    )


# ----------------------------------------------------------------- the helper
@pytest.mark.parametrize("n_cells", [1, 5, 40])
@pytest.mark.parametrize("with_values", [False, True])
def test_insert_cells_equals_a_sparse_maximum(n_cells, with_values):
    rng = np.random.default_rng(n_cells)
    X = sp.random(30, 20, density=0.2, format="csr", random_state=1, dtype=np.float64)
    X.data = np.round(X.data * 10) + 1
    rows = rng.integers(0, 30, n_cells)
    cols = rng.integers(0, 20, n_cells)
    rows[-1], cols[-1] = X.nonzero()[0][0], X.nonzero()[1][0]  # an existing cell too
    values = rng.integers(1, 20, n_cells).astype(np.float64) if with_values else None
    before = X.copy()
    Y = insert_cells(X, rows, cols, values)
    expected = X.toarray()
    for r, c, v in zip(rows, cols, values if with_values else [None] * n_cells, strict=True):
        expected[r, c] = max(expected[r, c], v) if with_values else expected[r, c] or 1.0
    np.testing.assert_array_equal(Y.toarray(), expected)
    assert Y.has_sorted_indices
    np.testing.assert_array_equal(X.toarray(), before.toarray())  # X itself untouched
    assert insert_cells(X, rows[-1:], cols[-1:]) is X  # nothing new: the same matrix


def spy_insertions(monkeypatch) -> list[int]:
    """Counts every call of ``insert_cells`` (under any name a models module imported
    it by; before observed cells waited apart, ``observe`` called it on each call)."""
    calls: list[int] = []
    real = sparse_module.insert_cells

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(sparse_module, "insert_cells", spy)
    monkeypatch.setattr(observe_module, "insert_cells", spy, raising=False)
    return calls


def test_pending_cells_find_rows_and_merge_like_one_insertion():
    rng = np.random.default_rng(3)
    X = sp.random(12, 9, density=0.3, format="csr", random_state=2, dtype=np.float32)
    X.data[:] = 1.0
    rows, cols = rng.integers(0, 12, 25), rng.integers(0, 9, 25)
    empty = PendingCells()
    a = empty.plus(rows[:10], cols[:10])
    b = a.plus(rows[10:], cols[10:])
    assert (empty.n, a.n, b.n) == (0, 10, 25)  # a value: plus leaves the old one as it was
    assert a.plus([], []) is a
    np.testing.assert_array_equal(b.merged(X).toarray(), insert_cells(X, rows, cols).toarray())
    asked = np.array([rows[0], 11, rows[0], 99])  # a row twice, a row maybe without any
    at, got = b.of_rows(asked)
    pairs = sorted(zip(at.tolist(), got.tolist(), strict=True))
    expected = sorted(
        (i, int(c))
        for i, r in enumerate(asked)
        for rr, c in zip(rows, cols, strict=True)
        if rr == r
    )
    assert pairs == expected
    assert [len(x) for x in empty.of_rows(asked)] == [0, 0]


@pytest.mark.parametrize("name", NAMES)
def test_observed_cells_wait_apart_until_the_matrix_is_read(name, fitted, monkeypatch):
    """A few observed events do not rebuild ``user_items_`` (one insertion copies all its
    arrays): they wait until it is read whole, while ``seen_items`` and ``recommend``
    see them at once."""
    model = fitted(name)
    calls = spy_insertions(monkeypatch)
    before = model.user_items_
    r = int(model.user_rows("pA")[0])
    col = {str(i): j for j, i in enumerate(model.item_ids_)}
    for t, item in enumerate(["a4", "b0", "a4"]):
        model.observe(one_event("pA", item, 1_000 + t))
    if name != "hybrid":  # a hybrid's components read their matrices to score
        assert calls == []
    assert set(model.seen_items(r).tolist()) == {
        col[i] for i in ("a0", "a1", "a2", "a3", "a4", "b0")
    }
    ids, _ = model.recommend("pA", k=model.n_items)
    assert {"a4", "b0"}.isdisjoint(set(ids))
    assert before[r].nnz == 4  # a reader holding the old matrix is not disturbed
    assert seen(model, "pA") == {"a0", "a1", "a2", "a3", "a4", "b0"}  # the read merges
    assert model.user_items_ is model.user_items_  # once


def test_seen_items_checks_its_row(fitted):
    model = fitted("itemknn")
    n = model.n_users
    for bad in (-1, n, 1.0, True, "0", None):
        with pytest.raises(
            ParameterError, match=rf"'row' must be an integer user row in \[0, {n}\)"
        ):
            model.seen_items(bad)
    r = int(model.user_rows("pA")[0])
    col = {str(i): j for j, i in enumerate(model.item_ids_)}
    assert model.seen_items(np.int64(r)).tolist() == sorted(col[f"a{j}"] for j in range(4))
    with pytest.raises(NotFittedError):
        get_model("itemknn").seen_items(0)


def test_many_observed_cells_merge_during_observe(fitted, monkeypatch):
    model = fitted("itemknn")
    monkeypatch.setattr(observe_module, "PENDING_MIN", 2)
    calls = spy_insertions(monkeypatch)
    model.observe(one_event("pA", "a4"))
    assert calls == []
    model.observe(make_events(["pA", "new"], ["b0", "b1"], [1_001, 1_002]))  # 3 >= 2
    assert calls == [1]
    assert seen(model, "pA") == {"a0", "a1", "a2", "a3", "a4", "b0"}
    assert seen(model, "new") == {"b1"}
    assert calls == [1]  # merged already: the read copies nothing


def test_known_ids_leave_out_free_rows(blocks_dataset):
    """known_users/known_items: the ids with a row, in row order, no free-row placeholder."""
    model = get_model("itemknn").fit(blocks_dataset)
    users = list(model.user_ids_)
    assert model.known_users() == users and model.known_items() == list(model.item_ids_)
    gone = users[1]
    model.forget_users([gone])
    assert model.known_users() == [u for u in users if u != gone]
    assert all(isinstance(u, str) for u in model.known_users())
    with pytest.raises(NotFittedError):
        get_model("itemknn").known_items()
