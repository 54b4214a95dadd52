"""Content recommender and hybrid blend: known answers, updates, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import Number
from lifelongrec.data import Dataset, make_events, make_items
from lifelongrec.features import TfidfItemEncoder
from lifelongrec.models import MODELS, ContentRecommender, Hybrid, Recommender, get_model
from lifelongrec.models.hybrid import normalize_rows


# ----------------------------------------------------------------- helpers
class CoCount(Recommender):
    """Tiny interaction model for blends: score = co-occurrence with the user's items."""

    name = "cocount"
    _constraints = {"shrink": Number(0)}

    def __init__(self, shrink: float = 0.0) -> None:
        self.shrink = shrink

    def _fit(self, X, data):
        pass

    def _partial_fit(self, delta, data, n_users_before, n_items_before):
        pass

    def _score(self, rows):
        X = self.user_items_
        C = (X.T @ X).toarray()
        np.fill_diagonal(C, 0.0)
        return (X[rows] @ C / (1.0 + self.shrink)).astype(np.float32)


class ReversedCoCount(CoCount):
    """The same scores with the item vocabulary in reverse order (tests id mapping)."""

    name = "revcocount"

    def _set_vocab(self, user_ids, item_ids):
        # the hook every model's id rows come from (a subclass's extension point)
        super()._set_vocab(user_ids, np.asarray(item_ids, dtype=object)[::-1])


@pytest.fixture(autouse=True)
def _register_helpers(monkeypatch):
    monkeypatch.setitem(MODELS, "cocount", CoCount)
    monkeypatch.setitem(MODELS, "revcocount", ReversedCoCount)


IDS = ["j1", "j2", "j3", "r1", "r2", "r3", "x1"]
TITLES = [
    "Blue Train",
    "Kind of Blue",
    "A Love Supreme",
    "Back in Black",
    "Highway to Hell",
    "Paranoid",
    "Silence",
]
CATS = [["Jazz"], ["Jazz"], ["Jazz"], ["Rock"], ["Rock"], ["Rock"], []]


def catalogue(ids=IDS, titles=TITLES, cats=CATS):
    return make_items(ids, titles, cats)


def toy(items=None):
    """u1 likes jazz, u2 rock, u3 mixed (jazz long ago, rock lately), u4 only x1."""
    users = ["u1", "u1", "u2", "u2", "u3", "u3", "u3", "u4", "u5", "u5", "u5"]
    things = ["j1", "j2", "r1", "r2", "j3", "j2", "r3", "x1", "r1", "j1", "r2"]
    ts = [10, 11, 10, 12, 1, 2, 100, 5, 3, 4, 6]
    events = make_events(users, things, np.asarray(ts, dtype=np.int64))
    return Dataset(events, catalogue() if items is None else items, name="toy")


def unit_rows(M):
    M = np.asarray(M, dtype=np.float64)
    n = np.linalg.norm(M, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return M / n


# ----------------------------------------------------------------- content
def test_content_known_answer_unseen_jazz_first():
    model = ContentRecommender().fit(toy())
    ids, scores = model.recommend("u1", k=3)
    assert ids[0] == "j3"
    assert scores[0] > 0
    ids, _ = model.recommend("u2", k=1)
    assert ids[0] == "r3"


def test_content_scores_are_cosine_to_the_mean_profile():
    data = toy()
    model = ContentRecommender().fit(data)
    V = TfidfItemEncoder().fit(data.items).transform(data.items).toarray()
    V = pd.DataFrame(V, index=IDS).loc[list(model.item_ids_)].to_numpy()
    seen = [model.item_ids_.tolist().index(i) for i in ("j3", "j2", "r3")]
    profile = unit_rows(V[seen].mean(axis=0, keepdims=True))
    expected = (profile @ unit_rows(V).T).ravel()
    np.testing.assert_allclose(model.score_items("u3"), expected, atol=1e-6)
    assert model.n_items_without_content_ == 0
    assert model.n_catalogue_items_ == len(IDS)


def test_half_life_favours_recent_items():
    data = toy()
    plain = ContentRecommender().fit(data)
    recent = ContentRecommender(half_life=5.0).fit(data)
    # u3: two jazz items at t=1,2 and one rock item at t=100
    assert plain.recommend("u3", k=1)[0][0] == "j1"
    assert recent.recommend("u3", k=1)[0][0] in {"r1", "r2"}


def test_items_missing_from_catalogue_get_zero_vectors():
    items = catalogue().iloc[:-1]  # x1 not described
    model = ContentRecommender().fit(toy(items))
    assert model.n_items_without_content_ == 1
    col = model.item_ids_.tolist().index("x1")
    assert model.item_vectors_[col].nnz == 0
    assert model.score_items("u1", ["x1"])[0] == 0.0
    # u4 saw only x1: no profile -> popularity fallback like an unknown user
    np.testing.assert_array_equal(model.score_items("u4"), model.score_items("nobody"))


def test_duplicate_catalogue_rows_first_wins_and_counted():
    items = pd.concat([catalogue(), catalogue(["j1"], ["Paranoid"], [["Rock"]])], ignore_index=True)
    model = ContentRecommender().fit(toy(items))
    assert model.n_duplicate_catalogue_rows_ == 1
    assert model.similar_items("j1", k=1)[0][0] == "j2"


def test_similar_items_by_content():
    model = ContentRecommender().fit(toy())
    ids, scores = model.similar_items(["j1", "r1"], k=2)
    assert set(ids[0]) == {"j2", "j3"}
    assert ids[0][0] == "j2"  # shares the title word "blue" too
    assert set(ids[1]) == {"r2", "r3"}
    assert np.all(scores[:, 0] >= scores[:, 1])


def test_partial_fit_new_item_with_content_is_recommended_at_once():
    model = ContentRecommender().fit(toy())
    new_items = catalogue(["j4"], ["Blue Giant"], [["Jazz"]])
    new_events = make_events(["u9"], ["j4"], np.asarray([200], dtype=np.int64))
    model.partial_fit(Dataset(new_events, new_items, name="new"))
    assert "j4" in set(model.item_ids_)
    assert model.recommend("u1", k=1)[0][0] == "j4"  # "blue" + jazz beats j3
    assert model.n_items_without_content_ == 0


def test_partial_fit_catalogue_item_without_events_gets_its_vector():
    items = pd.concat([catalogue(), catalogue(["j5"], ["Blue Green"], [["Jazz"]])])
    model = ContentRecommender().fit(toy(items))
    assert "j5" not in set(model.item_ids_)  # no events: not in the vocabulary yet
    events = make_events(["u9"], ["j5"], np.asarray([300], dtype=np.int64))
    model.partial_fit(events)  # plain events, no catalogue: known from fit
    assert model.recommend("u1", k=1)[0][0] == "j5"
    # and a new user's first events give them a profile at once
    model.partial_fit(make_events(["u10"], ["r1"], np.asarray([301], dtype=np.int64)))
    assert model.recommend("u10", k=1)[0][0] in {"r2", "r3"}


def test_partial_fit_with_half_life_updates_recency():
    model = ContentRecommender(half_life=5.0).fit(toy())
    assert model.recommend("u1", k=1)[0][0] == "j3"
    model.partial_fit(make_events(["u1"], ["r1"], np.asarray([500], dtype=np.int64)))
    assert model.recommend("u1", k=1)[0][0] in {"r2", "r3"}
    # an event older than anything seen keeps stored times positive
    model.partial_fit(make_events(["u2"], ["j1"], np.asarray([-50], dtype=np.int64)))
    assert model.last_seen_.data.min() >= 1.0


@pytest.mark.parametrize("half_life", [None, 5.0])
def test_content_save_load_round_trip(tmp_path, half_life):
    model = ContentRecommender(ngram_range=(1, 2), half_life=half_life).fit(toy())
    model.partial_fit(
        Dataset(
            make_events(["u9"], ["j4"], np.asarray([200], dtype=np.int64)),
            catalogue(["j4"], ["Blue Giant"], [["Jazz"]]),
        )
    )
    back = Recommender.load(model.save(tmp_path / "content"))
    assert isinstance(back, ContentRecommender)
    assert back.get_params() == model.get_params()
    users = ["u1", "u2", "u3", "u9", "nobody"]
    np.testing.assert_array_equal(back.score_items(users), model.score_items(users))
    np.testing.assert_array_equal(
        back.similar_items(["j1"], k=3)[0], model.similar_items(["j1"], k=3)[0]
    )
    # a loaded model keeps learning the same way
    more = make_events(["u1"], ["r2"], np.asarray([900], dtype=np.int64))
    np.testing.assert_array_equal(
        back.partial_fit(more).score_items(users), model.partial_fit(more).score_items(users)
    )


def test_content_does_not_mutate_inputs():
    data = toy()
    ev, items = data.events.copy(deep=True), data.items.copy(deep=True)
    ContentRecommender(half_life=3.0).fit(data).partial_fit(data)
    assert data.events.equals(ev)
    assert data.items.equals(items)


def test_content_errors_without_content():
    events = toy().events
    with pytest.raises(DataError, match="toy: the dataset has no item catalogue") as info:
        ContentRecommender().fit(Dataset(events, None, name="toy"))
    assert "the content model needs" in str(info.value)
    assert "'ease'" in str(info.value)
    empty = catalogue(titles=[None] * len(IDS), cats=[[] for _ in IDS])
    with pytest.raises(DataError, match="the item catalogue has no content") as info:
        ContentRecommender().fit(toy(empty))
    assert "the content model needs" in str(info.value)
    other = catalogue(ids=[f"other{i}" for i in range(len(IDS))])
    with pytest.raises(DataError, match="do the item ids of events and catalogue match"):
        ContentRecommender().fit(toy(other))


@pytest.mark.parametrize(
    ("params", "name", "expected"),
    [
        ({"half_life": 0}, "half_life", "None or a finite number > 0"),
        ({"half_life": float("inf")}, "half_life", "None or a finite number > 0"),
        ({"half_life": "1d"}, "half_life", "None or a finite number > 0"),
        ({"max_features": -1}, "max_features", "None or an integer >= 1"),
        ({"ngram_range": (0, 1)}, "ngram_range", "1 <= min_n <= max_n"),
    ],
)
def test_content_parameter_errors(params, name, expected):
    with pytest.raises(ParameterError, match=f"parameter '{name}' must be") as info:
        ContentRecommender(**params).fit(toy())
    assert expected in str(info.value)


# ------------------------------------------------------------------ hybrid
def _hand_minmax(S, seen):
    out = np.empty_like(S, dtype=np.float64)
    for j in range(len(S)):
        ref = S[j][~seen[j]]
        lo, hi = ref.min(), ref.max()
        out[j] = (S[j] - lo) / (hi - lo) if hi > lo else 0.0
    return out


def test_hybrid_weight_one_zero_reproduces_first_component():
    data = toy()
    users = ["u1", "u2", "u3", "u4", "u5", "nobody"]
    for first, second in [("content", "cocount"), ("cocount", "content")]:
        alone = get_model(first).fit(data)
        hybrid = Hybrid(components=(first, second), weights=(1.0, 0.0)).fit(data)
        a_ids, _ = alone.recommend(users, k=4)
        h_ids, _ = hybrid.recommend(users, k=4)
        np.testing.assert_array_equal(h_ids, a_ids)


def test_hybrid_blend_equals_hand_blend_of_normalised_scores():
    data = toy()
    hybrid = Hybrid(components=["content", "cocount"], weights=[0.25, 0.5]).fit(data)
    users = ["u1", "u2", "u3", "u5"]
    content = ContentRecommender().fit(data).score_items(users)
    cocount = CoCount().fit(data).score_items(users)
    seen = hybrid.user_items_[hybrid.user_rows(users)].toarray() > 0
    expected = (0.25 * _hand_minmax(content, seen) + 0.5 * _hand_minmax(cocount, seen)) / 0.75
    np.testing.assert_allclose(hybrid.score_items(users), expected, atol=1e-6)


def test_hybrid_cold_users_and_similar_items():
    data = toy()
    hybrid = Hybrid(components=("content", "cocount"), weights=(0.5, 0.5)).fit(data)
    pop = hybrid.item_counts_
    cold = hybrid.score_items("nobody")
    np.testing.assert_array_equal(np.argsort(-cold, kind="stable"), np.argsort(-pop, kind="stable"))
    only_content = Hybrid(components=("content", "cocount"), weights=(1, 0)).fit(data)
    np.testing.assert_array_equal(
        only_content.similar_items(["j1", "r3"], k=3)[0],
        ContentRecommender().fit(data).similar_items(["j1", "r3"], k=3)[0],
    )
    ids, scores = hybrid.similar_items("j1", k=6)
    assert "j1" not in set(ids)
    assert np.all(np.diff(scores[np.isfinite(scores)]) <= 0)


def test_hybrid_maps_components_with_another_item_order():
    data = toy()
    plain = Hybrid(components=("cocount",), weights=(1,)).fit(data)
    rev = Hybrid(components=("cocount", "revcocount"), weights=(0, 1)).fit(data)
    assert not np.array_equal(rev.components_[1].item_ids_, rev.item_ids_)
    users = ["u1", "u3", "nobody"]
    np.testing.assert_allclose(rev.score_items(users), plain.score_items(users), atol=1e-6)
    np.testing.assert_array_equal(
        rev.similar_items("j1", k=3)[0], plain.similar_items("j1", k=3)[0]
    )


def test_hybrid_partial_fit_forwards_to_components():
    hybrid = Hybrid(components=("content", "cocount"), weights=(0.5, 0.5)).fit(toy())
    new = Dataset(
        make_events(["u9", "u9"], ["j4", "j1"], np.asarray([200, 201], dtype=np.int64)),
        catalogue(["j4"], ["Blue Giant"], [["Jazz"]]),
    )
    hybrid.partial_fit(new)
    for comp in hybrid.components_:
        np.testing.assert_array_equal(comp.item_ids_, hybrid.item_ids_)
        np.testing.assert_array_equal(comp.user_ids_, hybrid.user_ids_)
    assert hybrid.recommend("u1", k=1)[0][0] == "j4"


def test_hybrid_save_load_round_trip(tmp_path):
    hybrid = Hybrid(
        components=("content", "cocount"),
        weights=(0.6, 0.4),
        normalize="rank",
        component_params={"content": {"ngram_range": (1, 2), "half_life": 10.0}},
    ).fit(toy())
    path = hybrid.save(tmp_path / "hybrid")
    assert (path / "component-0-content" / "model.json").is_file()
    assert (path / "component-1-cocount" / "model.json").is_file()
    back = Recommender.load(path)
    assert isinstance(back, Hybrid)
    assert json.loads(json.dumps(back.get_params())) == json.loads(json.dumps(hybrid.get_params()))
    users = ["u1", "u2", "u3", "nobody"]
    np.testing.assert_array_equal(back.score_items(users), hybrid.score_items(users))
    np.testing.assert_array_equal(back.recommend(users, k=3)[0], hybrid.recommend(users, k=3)[0])
    more = make_events(["u1"], ["r2"], np.asarray([900], dtype=np.int64))
    np.testing.assert_array_equal(
        back.partial_fit(more).score_items(users), hybrid.partial_fit(more).score_items(users)
    )


@pytest.mark.parametrize("normalize", ["minmax", "zscore", "rank", "none"])
def test_hybrid_is_repeatable_for_every_normalization(normalize):
    a = Hybrid(components=("content", "cocount"), weights=(1, 2), normalize=normalize).fit(toy())
    b = Hybrid(components=("content", "cocount"), weights=(1, 2), normalize=normalize).fit(toy())
    np.testing.assert_array_equal(a.score_items(["u1", "u3"]), b.score_items(["u1", "u3"]))


def test_hybrid_component_error_names_the_component():
    data = Dataset(toy().events, None, name="toy")
    with pytest.raises(DataError) as info:
        Hybrid(components=("cocount", "content"), weights=(0.5, 0.5)).fit(data)
    msg = str(info.value)
    assert "hybrid component 1 ('content') could not fit" in msg
    assert "no item catalogue" in msg
    assert "components=('ease', 'itemknn')" in msg


def test_normalize_rows():
    S = np.array([[1.0, 3.0, 5.0, 9.0], [2.0, 2.0, 2.0, 2.0], [0.0, -np.inf, 4.0, 2.0]])
    ignore = np.array([[False, False, False, True], [False] * 4, [False] * 4])
    mm = normalize_rows(S, "minmax", ignore)
    np.testing.assert_allclose(mm[0], [0.0, 0.5, 1.0, 2.0])  # 9 ignored for the scale
    np.testing.assert_allclose(mm[1], 0.0)  # constant row: no preference
    np.testing.assert_allclose(mm[2], [0.0, 0.0, 1.0, 0.5])  # -inf gets the row's lowest
    z = normalize_rows(S[:1], "zscore")
    np.testing.assert_allclose(z[0], (S[0] - S[0].mean()) / S[0].std())
    r = normalize_rows(np.array([[5.0, 1.0, 5.0, 3.0]]), "rank")
    np.testing.assert_allclose(r[0], [2.5 / 3, 0.0, 2.5 / 3, 1 / 3])
    np.testing.assert_array_equal(normalize_rows(S[:1], "none"), S[:1])
    with pytest.raises(ParameterError, match="parameter 'normalize' must be"):
        normalize_rows(S, "max")


@pytest.mark.parametrize(
    ("params", "name", "expected"),
    [
        ({"components": "content"}, "components", "a non-empty list or tuple of model names"),
        ({"components": (), "weights": ()}, "components", "a non-empty list or tuple"),
        ({"components": ("content", 3)}, "components", "a non-empty list or tuple"),
        ({"components": ("content", "hybrid")}, "components", "no nested hybrids"),
        ({"components": ("content", "nope")}, "components", "names from ["),
        ({"weights": (1.0,)}, "weights", "a list or tuple of 2 numbers, one per component"),
        ({"weights": 1.0}, "weights", "a list or tuple of numbers, one per component"),
        ({"weights": (1.0, -0.5)}, "weights", "finite numbers >= 0"),
        ({"weights": (1.0, float("nan"))}, "weights", "finite numbers >= 0"),
        ({"weights": (True, 1.0)}, "weights", "finite numbers >= 0"),
        ({"weights": (0, 0.0)}, "weights", "numbers >= 0 with a sum > 0"),
        ({"normalize": "softmax"}, "normalize", "one of 'minmax', 'zscore', 'rank', 'none'"),
        ({"component_params": "x"}, "component_params", "None, a dict {component name"),
        ({"component_params": {"ease": {}}}, "component_params", "None, a dict"),
        ({"component_params": {"content": 3}}, "component_params", "None, a dict"),
        ({"component_params": [{}]}, "component_params", "a list of 2 dicts"),
        (
            {"component_params": {"cocount": {"alpha": 1}}},
            "component_params['cocount']",
            "hyperparameters of CoCount (shrink)",
        ),
        (
            {"component_params": [{"half_life": -1}, None]},
            "component_params['content']['half_life'] (component 0)",
            "None or a finite number > 0",
        ),
    ],
)
def test_hybrid_parameter_errors(params, name, expected):
    base = {"components": ("content", "cocount"), "weights": (0.5, 0.5)}
    with pytest.raises(ParameterError) as info:
        Hybrid(**{**base, **params}).fit(toy())
    assert info.value.name == name
    assert str(info.value).startswith(f"parameter {name!r} must be")
    assert expected in str(info.value)


def test_hybrid_accepts_lists_from_json():
    params = json.loads(
        json.dumps(
            {
                "components": ["content", "cocount"],
                "weights": [2, 1],
                "normalize": "zscore",
                "component_params": {"content": {"ngram_range": [1, 2]}},
            }
        )
    )
    hybrid = get_model("hybrid", **params).fit(toy())
    assert hybrid.components_[0].ngram_range == [1, 2]
    assert sp.issparse(hybrid.components_[0].item_vectors_)
