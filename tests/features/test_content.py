"""TF-IDF item encoder: agrees with scikit-learn, encodes new items, round-trips its state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

import lifelongrec.features as features
from lifelongrec._errors import DataError, NotFittedError, ParameterError
from lifelongrec.data import make_items
from lifelongrec.features import TfidfItemEncoder

TITLES = ["Blue Train", "Kind of Blue", "A Love Supreme", "Back in Black", "Blue Blue Sky"]
CATS = [["Jazz"], ["Jazz", "Modal"], ["Jazz"], ["Rock"], []]


def _items(titles=TITLES, cats=CATS, ids=None):
    ids = ids if ids is not None else [f"i{j}" for j in range(len(titles))]
    return make_items(ids, titles, cats)


def test_all_lists_public_names():
    assert {"CATEGORY_PREFIX", "ItemEncoder", "TfidfItemEncoder"} <= set(features.__all__)
    for name in features.__all__:
        assert hasattr(features, name)


def test_titles_only_equal_sklearn_tfidf():
    items = _items(cats=[[] for _ in TITLES])
    X = TfidfItemEncoder().fit_transform(items)
    ref = TfidfVectorizer()
    R = ref.fit_transform(TITLES)
    enc = TfidfItemEncoder().fit(items)
    assert enc.vocabulary_ == ref.vocabulary_
    assert sp.issparse(X) and X.dtype == np.float32
    np.testing.assert_allclose(X.toarray(), R.toarray(), atol=1e-6)


def test_bigrams_and_min_df_follow_sklearn():
    items = _items(cats=[[] for _ in TITLES])
    X = TfidfItemEncoder(ngram_range=(1, 2), min_df=2).fit_transform(items)
    R = TfidfVectorizer(ngram_range=(1, 2), min_df=2).fit_transform(TITLES)
    np.testing.assert_allclose(X.toarray(), R.toarray(), atol=1e-6)


def test_categories_are_whole_tokens_with_hand_idf():
    items = _items(["Jazz Jazz", "Rock"], [["Jazz"], ["Rock", "Jazz", "Jazz"]])
    enc = TfidfItemEncoder().fit(items)
    assert sorted(enc.vocabulary_) == ["cat:jazz", "cat:rock", "jazz", "rock"]
    X = enc.transform(items).toarray()
    # smoothed idf: ln((1 + n) / (1 + df)) + 1 with n = 2 items
    idf = {
        t: np.log(3 / (1 + df)) + 1
        for t, df in [("jazz", 1), ("rock", 1), ("cat:jazz", 2), ("cat:rock", 1)]
    }
    row0 = np.zeros(4)
    row0[enc.vocabulary_["jazz"]] = 2 * idf["jazz"]  # title word counted twice
    row0[enc.vocabulary_["cat:jazz"]] = idf["cat:jazz"]
    row1 = np.zeros(4)
    row1[enc.vocabulary_["rock"]] = idf["rock"]
    row1[enc.vocabulary_["cat:rock"]] = idf["cat:rock"]
    row1[enc.vocabulary_["cat:jazz"]] = idf["cat:jazz"]  # a repeated category counts once
    expected = np.vstack([row0 / np.linalg.norm(row0), row1 / np.linalg.norm(row1)])
    np.testing.assert_allclose(X, expected, atol=1e-6)


def test_category_weight_scales_category_columns():
    items = _items()
    enc0 = TfidfItemEncoder(category_weight=0.0).fit(items)
    X0 = enc0.transform(items)
    cat_cols = [j for t, j in enc0.vocabulary_.items() if t.startswith("cat:")]
    assert X0[:, cat_cols].nnz == 0
    X1 = TfidfItemEncoder(category_weight=1.0).fit_transform(items).toarray()
    X3 = TfidfItemEncoder(category_weight=3.0).fit_transform(items).toarray()
    # item 0 ("Blue Train", Jazz): the category's share of the vector grows with the weight
    j = enc0.vocabulary_["cat:jazz"]
    assert X3[0, j] > X1[0, j] > 0
    np.testing.assert_allclose(np.linalg.norm(X3, axis=1), 1.0, atol=1e-6)


def test_new_item_after_fit_uses_the_fitted_vocabulary():
    enc = TfidfItemEncoder().fit(_items())
    new = _items(["Blue Note Records", "Unheard Words"], [["Jazz", "Label"], []], ids=["n1", "n2"])
    X = enc.transform(new)
    assert X.shape == (2, enc.n_features_)
    row = X[0].toarray().ravel()
    nonzero = {t for t, j in enc.vocabulary_.items() if row[j] != 0}
    assert nonzero == {"blue", "cat:jazz"}  # "note", "records", "cat:label" are unknown
    assert X[1].nnz == 0  # nothing known: a zero row
    assert "note" not in enc.vocabulary_  # transform does not grow the vocabulary


def test_empty_items_are_zero_rows_and_counted():
    items = _items(["Blue Train", None, ""], [["Jazz"], [], []])
    items.at[2, "categories"] = None  # a reader may leave a missing value
    enc = TfidfItemEncoder().fit(items)
    assert enc.n_empty_ == 2
    X = enc.transform(items)
    assert list(X.getnnz(axis=1)) == [3, 0, 0]  # blue, train, cat:jazz


def test_state_round_trips_through_json_and_arrays():
    items = _items()
    enc = TfidfItemEncoder(ngram_range=(1, 2), category_weight=2.0).fit(items)
    arrays, extra = enc.get_state()
    extra = json.loads(json.dumps(extra))
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    back = TfidfItemEncoder.from_state(arrays, extra)
    assert back.get_params() == enc.get_params()
    np.testing.assert_array_equal(back.transform(items).toarray(), enc.transform(items).toarray())


def test_inputs_not_mutated():
    items = _items()
    before = items.copy(deep=True)
    TfidfItemEncoder().fit_transform(items)
    assert items.equals(before)


def test_errors():
    with pytest.raises(NotFittedError, match="not fitted"):
        TfidfItemEncoder().transform(_items())
    with pytest.raises(DataError, match="no item has a title word or a category"):
        TfidfItemEncoder().fit(_items([None, ""], [[], []]))
    with pytest.raises(DataError, match="no token is left"):
        TfidfItemEncoder(min_df=5).fit(_items())
    with pytest.raises(DataError, match="cannot encode this object"):
        TfidfItemEncoder().fit(["Blue Train"])
    with pytest.raises(DataError, match="lacks columns"):
        TfidfItemEncoder().fit(_items().drop(columns=["title"]))


@pytest.mark.parametrize(
    ("params", "name", "expected"),
    [
        ({"max_features": 0}, "max_features", "None or an integer >= 1"),
        ({"max_features": 2.5}, "max_features", "None or an integer >= 1"),
        ({"min_df": 0}, "min_df", "an integer >= 1 or a float in (0, 1]"),
        ({"min_df": 1.5}, "min_df", "an integer >= 1 or a float in (0, 1]"),
        ({"min_df": "1"}, "min_df", "an integer >= 1 or a float in (0, 1]"),
        ({"ngram_range": (2, 1)}, "ngram_range", "1 <= min_n <= max_n"),
        ({"ngram_range": 1}, "ngram_range", "a pair (min_n, max_n)"),
        ({"category_weight": -1.0}, "category_weight", "a finite number >= 0"),
        ({"category_weight": float("nan")}, "category_weight", "a finite number >= 0"),
    ],
)
def test_parameter_errors(params, name, expected):
    with pytest.raises(ParameterError, match=f"parameter '{name}' must be") as info:
        TfidfItemEncoder(**params).fit(_items())
    assert info.value.name == name
    assert expected in str(info.value)
