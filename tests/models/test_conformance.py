"""One suite every recommender in ``lifelongrec.models.MODELS`` passes.

Add a model to ``MODELS`` and it gets every check here. A model that raises
``NotImplementedError`` anywhere in the contract fails it (nothing is skipped).
Fixtures ``blocks_dataset`` / ``blocks_update`` (tests/conftest.py) are the tiny world
with a known answer: two disjoint user groups and item blocks.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from lifelongrec import NotFittedError, ParameterError, UnknownIdError
from lifelongrec.models import MODELS, Recommender, get_model

#: Small hyperparameters so the suite stays fast; models not named use their defaults.
TINY_PARAMS: dict[str, dict] = {
    "ease": {"l2": 10.0},
    "als": {"factors": 8, "iterations": 10},
    "bpr": {"factors": 8, "iterations": 200, "learning_rate": 0.05},
    "sequential": {
        "dim": 16,
        "n_layers": 1,
        "max_len": 8,
        "epochs": 30,
        "lr": 0.01,
        "batch_size": 16,
        "validation": False,
        "text_encoder": "tfidf",
        "verbose": False,
    },
}

#: Models that rank the same for everyone, so no personalised known answer applies.
NOT_PERSONALISED = {"popularity"}

NAMES = sorted(MODELS)


def make(name: str) -> Recommender:
    return get_model(name, **TINY_PARAMS.get(name, {}))


def fitted(name: str, data) -> Recommender:
    model = make(name)
    out = model.fit(data)  # a NotImplementedError fails the contract, it is not skipped
    assert out is model
    return model


def _assert_recs_equal(a, b) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-6)


USERS = ["pA", "uA0", "uB0", "uB7"]


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_vocabulary(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    assert model.is_fitted
    assert set(model.item_ids_) == set(blocks_dataset.events["item_id"])
    assert model.n_users == blocks_dataset.n_users


@pytest.mark.parametrize("name", NAMES)
def test_seeded_fits_repeat(name, blocks_dataset, blocks_update):
    a = fitted(name, blocks_dataset)
    b = fitted(name, blocks_dataset)
    _assert_recs_equal(a.recommend(USERS, k=5), b.recommend(USERS, k=5))
    _assert_recs_equal(a.similar_items(["a0", "b0"], k=3), b.similar_items(["a0", "b0"], k=3))
    a.partial_fit(blocks_update)
    b.partial_fit(blocks_update)
    _assert_recs_equal(a.recommend(USERS + ["nA"], k=5), b.recommend(USERS + ["nA"], k=5))


@pytest.mark.parametrize("name", NAMES)
def test_inputs_not_mutated(name, blocks_dataset, blocks_update):
    before = copy.deepcopy(blocks_dataset.events), copy.deepcopy(blocks_dataset.items)
    upd_before = copy.deepcopy(blocks_update.events), copy.deepcopy(blocks_update.items)
    model = fitted(name, blocks_dataset)
    users = ["pA", "uB1"]
    cands = ["a4", "b1", "b2"]
    model.recommend(users, k=3, items=cands)
    model.partial_fit(blocks_update)
    model.recommend(users, k=3)
    model.similar_items(["a1"], k=2)
    pd.testing.assert_frame_equal(blocks_dataset.events, before[0])
    pd.testing.assert_frame_equal(blocks_dataset.items, before[1])
    pd.testing.assert_frame_equal(blocks_update.events, upd_before[0])
    pd.testing.assert_frame_equal(blocks_update.items, upd_before[1])
    assert users == ["pA", "uB1"] and cands == ["a4", "b1", "b2"]


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, blocks_dataset, blocks_update, tmp_path):
    model = fitted(name, blocks_dataset)
    path = model.save(tmp_path / "m")
    for loaded in (type(model).load(path), Recommender.load(path)):
        assert type(loaded) is type(model)
        assert loaded.get_params() == model.get_params()
        _assert_recs_equal(loaded.recommend(USERS, k=5), model.recommend(USERS, k=5))
        _assert_recs_equal(
            loaded.recommend("ghost", k=3), model.recommend("ghost", k=3)
        )  # cold start
        _assert_recs_equal(
            loaded.similar_items(["a0", "b3"], k=4), model.similar_items(["a0", "b3"], k=4)
        )
    # A loaded model keeps learning like the original, and saves again.
    loaded = Recommender.load(path)
    model.partial_fit(blocks_update)
    loaded.partial_fit(blocks_update)
    _assert_recs_equal(loaded.recommend(USERS + ["nA"], k=5), model.recommend(USERS + ["nA"], k=5))
    again = Recommender.load(loaded.save(tmp_path / "m"))  # overwrite in place
    _assert_recs_equal(again.recommend(USERS + ["nA"], k=5), model.recommend(USERS + ["nA"], k=5))


@pytest.mark.parametrize("name", NAMES)
def test_one_id_or_batch_shapes(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    ids, scores = model.recommend("uB0", k=3)
    assert ids.shape == (3,) and scores.shape == (3,)
    ids, scores = model.recommend(["uB0", "pA"], k=3)
    assert ids.shape == (2, 3) and scores.shape == (2, 3)
    single = model.recommend("pA", k=3)
    _assert_recs_equal(single, (ids[1], scores[1]))
    ids, scores = model.similar_items("a0", k=2)
    assert ids.shape == (2,) and scores.shape == (2,)
    ids, scores = model.similar_items(["a0", "b0", "b1"], k=2)
    assert ids.shape == (3, 2) and scores.shape == (3, 2)
    assert model.recommend([], k=2)[0].shape == (0, 2)


@pytest.mark.parametrize("name", NAMES)
def test_scores_sorted_and_ids_valid(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    ids, scores = model.recommend(USERS, k=4)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert np.isfinite(scores).all()
    assert set(ids.ravel()) <= set(model.item_ids_)
    for row in ids:
        assert len(set(row)) == len(row)


@pytest.mark.parametrize("name", NAMES)
def test_exclude_seen(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    ev = blocks_dataset.events
    for user in USERS:
        seen = set(ev.loc[ev["user_id"] == user, "item_id"])
        ids, _ = model.recommend(user, k=model.n_items)
        got = {i for i in ids if i is not None}
        assert not got & seen
        assert got == set(model.item_ids_) - seen
        assert sum(i is None for i in ids) == len(seen)  # padded, not invented
    ids, _ = model.recommend("pA", k=model.n_items, exclude_seen=False)
    assert set(ids) == set(model.item_ids_)


@pytest.mark.parametrize("name", NAMES)
def test_candidate_items(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    cands = ["b4", "a4", "a0"]
    ids, scores = model.recommend(["pA", "uB9"], k=3, items=cands)
    assert set(ids[0]) == {"a4", "b4", None}  # a0 seen by pA
    assert set(ids[1]) == {"a4", "a0", "b4"}  # uB9 saw b0..b3 only
    assert np.isneginf(scores[0][2])
    with pytest.raises(UnknownIdError):
        model.recommend("pA", k=3, items=["a4", "no-such-item"])


@pytest.mark.parametrize("name", NAMES)
def test_unknown_user_gets_cold_start(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    ids, scores = model.recommend("never-seen", k=4)
    assert all(i in set(model.item_ids_) for i in ids)
    assert np.isfinite(scores).all()
    ids, _ = model.recommend(["never-seen", "pA"], k=4)
    assert None not in ids[0].tolist()


@pytest.mark.parametrize("name", NAMES)
def test_unknown_item_errors(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    with pytest.raises(UnknownIdError, match="zzz"):
        model.similar_items("zzz")
    with pytest.raises(UnknownIdError):
        model.similar_items(["a0", "zzz"])
    with pytest.raises(KeyError):  # UnknownIdError is a KeyError
        model.recommend("pA", items=["zzz"])


@pytest.mark.parametrize("name", NAMES)
def test_partial_fit_new_users_and_items(name, blocks_dataset, blocks_update):
    model = fitted(name, blocks_dataset)
    n_users, n_items = model.n_users, model.n_items
    assert model.partial_fit(blocks_update) is model
    assert model.n_users == n_users + 1 and model.n_items == n_items + 2
    assert {"na0", "nb0"} <= set(model.item_ids_)
    ids, scores = model.recommend("nA", k=4)
    assert not {"a0", "a1", "a2"} & set(ids)  # the new history counts as seen at once
    assert set(ids) <= set(model.item_ids_) and np.isfinite(scores).all()
    if name not in NOT_PERSONALISED:
        assert ids[0] in {"a3", "a4", "na0"}, ids
    ids, _ = model.recommend("pA", k=2, items=["na0", "nb0", "b0"])
    assert "na0" not in ids  # seen in the update
    assert model.similar_items("na0", k=3)[0].shape == (3,)
    ids, _ = model.recommend("uB0", k=model.n_items, exclude_seen=False)
    assert {"na0", "nb0"} <= set(ids)


@pytest.mark.parametrize("name", NAMES)
def test_partial_fit_on_unfitted_model_is_fit(name, blocks_dataset):
    model = make(name)
    model.partial_fit(blocks_dataset)
    ref = fitted(name, blocks_dataset)
    _assert_recs_equal(model.recommend(USERS, k=3), ref.recommend(USERS, k=3))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
def test_k_is_validated(name, k, blocks_dataset):
    model = fitted(name, blocks_dataset)
    with pytest.raises(ParameterError, match="'k'"):
        model.recommend("pA", k=k)
    with pytest.raises(ParameterError, match="'k'"):
        model.similar_items("a0", k=k)


@pytest.mark.parametrize("name", NAMES)
def test_not_fitted(name, tmp_path):
    model = make(name)
    assert not model.is_fitted
    with pytest.raises(NotFittedError):
        model.recommend("pA")
    with pytest.raises(NotFittedError):
        model.similar_items("a0")
    with pytest.raises(NotFittedError):
        model.score_items("pA")
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "m")
    with pytest.raises(NotFittedError):
        _ = model.n_items


@pytest.mark.parametrize("name", NAMES)
def test_known_answer(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    ids, _ = model.recommend("pA", k=1)
    if name in NOT_PERSONALISED:
        ev = blocks_dataset.events
        counts = ev["item_id"].value_counts()
        seen = set(ev.loc[ev["user_id"] == "pA", "item_id"])
        counts = counts[~counts.index.isin(seen)]
        assert ids[0] in set(counts[counts == counts.max()].index)
    else:
        assert ids[0] == "a4"
        # and a B user is served B items
        ids, _ = model.recommend("uB7", k=1)
        assert ids[0] == "b4"


@pytest.mark.parametrize("name", NAMES)
def test_get_params_round_trip(name):
    model = make(name)
    params = model.get_params()
    clone = type(model)(**params)
    assert clone.get_params() == params
    assert repr(clone) == repr(model)
    assert type(model).name == name
