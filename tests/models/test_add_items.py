"""``Recommender.add_items``: catalogue items without events, for every model.

A new item must get a row at once, be rankable by everyone, survive save/load and later
events; content-aware models must place it by its content (the cold-start promise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_conformance import NAMES, fitted, make

from lifelongrec import DataError, NotFittedError
from lifelongrec.data import make_events
from lifelongrec.models import Recommender

#: Models whose scores come (partly) from item content.
CONTENT_AWARE = {"content", "sequential", "hybrid"}


def _block_items(extra):
    """The block world's catalogue rows of ``extra`` ids (titles/categories by block)."""
    from lifelongrec.data import make_items

    titles = [
        f"space robot adventure {i}" if i.startswith("na") else f"cooking garden recipe {i}"
        for i in extra
    ]
    cats = [["scifi"] if i.startswith("na") else ["home"] for i in extra]
    return make_items(list(extra), titles, cats, [{"price": 0.0} for _ in extra])


def new_catalogue() -> pd.DataFrame:
    """Two brand-new items: ``na0`` reads like the A block, ``nb0`` like the B block (the
    block world prices items by position, A 0..4 and B 5..9: the new ones are priced
    inside their block's range so that no feature points the other way)."""
    cat = _block_items(["na0", "nb0"])
    cat = cat[cat["item_id"].isin(["na0", "nb0"])].reset_index(drop=True)
    cat["attributes"] = [{"price": 2.0}, {"price": 7.0}]
    return cat


@pytest.mark.parametrize("name", NAMES)
def test_new_items_get_rows_and_are_rankable(name, blocks_dataset, tmp_path):
    model = fitted(name, blocks_dataset)
    n_items = model.n_items
    assert model.add_items(new_catalogue()) is model
    assert model.n_items == n_items + 2
    assert list(model.item_ids_[-2:]) == ["na0", "nb0"]
    ids, scores = model.recommend("uB0", k=model.n_items, exclude_seen=False)
    assert {"na0", "nb0"} <= set(ids) and np.isfinite(scores).all()
    assert model.similar_items("na0", k=3)[0].shape == (3,)
    # old items keep their place for users with evidence: pA's best is still a4
    if name != "popularity":
        assert model.recommend("pA", k=1)[0][0] == "a4"
    # save/load keeps the admitted rows and their scores
    back = Recommender.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.item_ids_, model.item_ids_)
    np.testing.assert_allclose(
        back.score_items(["pA", "uB0"]), model.score_items(["pA", "uB0"]), rtol=1e-5, atol=1e-5
    )
    # later events on an admitted item land on its row, not on a second one
    ev = make_events(["uA0", "uA1"], ["na0", "na0"], [500, 501])
    model.partial_fit(ev)
    assert model.n_items == n_items + 2
    assert model.item_counts_[model.item_index_["na0"]] == 2


@pytest.mark.parametrize("name", sorted(CONTENT_AWARE & set(NAMES)))
def test_content_places_a_cold_item(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    model.add_items(new_catalogue())
    # pA likes the A block (space robots): of the two cold items the A-like one wins
    for user, want in [("pA", "na0"), ("uB7", "nb0")]:
        ids, _ = model.recommend(user, k=1, items=["na0", "nb0"])
        assert ids[0] == want, (user, ids)


@pytest.mark.parametrize("name", sorted({"content", "sequential"} & set(NAMES)))
def test_known_item_content_is_refreshed(name, blocks_dataset):
    model = fitted(name, blocks_dataset)
    model.add_items(new_catalogue())
    before = model.score_items("pA", ["nb0"])[0]
    renamed = new_catalogue()
    renamed.loc[renamed["item_id"] == "nb0", "title"] = "space robot adventure nb0"
    renamed.loc[renamed["item_id"] == "nb0", "categories"] = pd.Series([["scifi"]]).values
    model.add_items(renamed[renamed["item_id"] == "nb0"])
    assert model.n_items == len(blocks_dataset.events["item_id"].unique()) + 2
    after = model.score_items("pA", ["nb0"])[0]
    assert after > before


def test_collaborative_model_ranks_cold_items_last(blocks_dataset):
    model = fitted("itemknn", blocks_dataset)
    model.add_items(new_catalogue())
    ids, _ = model.recommend("pA", k=model.n_items, exclude_seen=False)
    assert set(ids[-2:]) == {"na0", "nb0"}


def test_add_items_needs_a_fitted_model():
    with pytest.raises(NotFittedError):
        make("popularity").add_items(new_catalogue())


@pytest.mark.parametrize(
    "bad, match",
    [
        ("not a frame", "cannot use this object as an item catalogue"),
        (pd.DataFrame({"item_id": ["x"]}), "lacks required columns"),
    ],
)
def test_bad_catalogue_is_rejected(bad, match, blocks_dataset):
    model = fitted("popularity", blocks_dataset)
    n = model.n_items
    with pytest.raises(DataError, match=match):
        model.add_items(bad)
    assert model.n_items == n


def test_missing_and_repeated_ids_are_named(blocks_dataset):
    model = fitted("itemknn", blocks_dataset)
    n = model.n_items
    cat = new_catalogue()
    missing = cat.copy()
    missing.loc[1, "item_id"] = None
    with pytest.raises(DataError, match=r"item_id is missing.*row 1"):
        model.add_items(missing)
    twice = pd.concat([cat, cat.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match=r"more than once.*na0"):
        model.add_items(twice)
    assert model.n_items == n  # nothing half-admitted


def test_prepare_items_changes_nothing_and_new_item_vectors_match_the_full_table(
    blocks_dataset,
):
    """``prepare_items`` is the slow, side-effect-free part of ``add_items``; after an
    ``add_items`` the vectors of a few new items (computed for those rows only) equal
    the rows of the whole table."""
    model = fitted("sequential", blocks_dataset)
    before = model.item_vectors()[1].copy()
    model.prepare_items(new_catalogue())
    assert np.array_equal(model.item_vectors()[1], before)
    assert model.n_items == len(before)
    model.add_items(new_catalogue())
    ids, few = model.item_vectors(["nb0", "na0"])
    assert list(ids) == ["nb0", "na0"]
    all_ids, table = model.item_vectors()
    where = {i: j for j, i in enumerate(all_ids)}
    np.testing.assert_allclose(few, table[[where["nb0"], where["na0"]]], rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError):
        model.prepare_items(pd.DataFrame({"title": ["no id column"]}))
    for name in NAMES:  # every model accepts it (most do nothing)
        fitted(name, blocks_dataset).prepare_items(new_catalogue())


def test_prepare_items_encodes_titles_so_add_items_does_not(blocks_dataset, tmp_path, monkeypatch):
    from test_conformance import TINY_PARAMS

    from lifelongrec.models import get_model

    monkeypatch.setenv("LIFELONGREC_CACHE_DIR", str(tmp_path / "cache"))
    params = {**TINY_PARAMS["sequential"], "text_encoder": "minilm"}
    model = get_model("sequential", **params).fit(blocks_dataset)
    encoder = model.text_encoder_
    fresh = _block_items(["na7", "nb7"])
    fresh = fresh[fresh["item_id"].isin(["na7", "nb7"])].reset_index(drop=True)
    model.prepare_items(fresh)
    assert encoder.n_encoded_ == 2  # the two new titles, encoded now
    model.add_items(fresh)
    assert encoder.n_encoded_ == 0 and encoder.n_cached_ == 2  # add_items found them cached
