"""The offline protocol on hand-made data with a deterministic fake recommender."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import lifelongrec.evaluation as ev
from lifelongrec import ParameterError
from lifelongrec.data._schema import Dataset, make_events
from lifelongrec.evaluation import evaluate_model, evaluate_recommendations
from lifelongrec.evaluation._offline import _sampled_lists
from lifelongrec.models._base import Recommender

LOG3 = math.log2(3)


class FixedOrder(Recommender):
    """Every user, known or new, gets the same ranking: ``ranking[0]`` scores highest."""

    name = "fixed-order"

    def __init__(self, ranking=("a", "b", "c", "d", "e")):
        self.ranking = ranking

    def ranking_scores(self) -> np.ndarray:
        n = len(self.ranking)
        score = {t: float(n - i) for i, t in enumerate(self.ranking)}
        return np.array([score.get(t, 0.0) for t in self.item_ids_], dtype=np.float32)

    def _fit(self, X, data):
        self.n_fit_events_ = len(data.events)

    def _partial_fit(self, delta, data, n_users_before, n_items_before):
        pass

    def _score(self, rows):
        return np.tile(self.ranking_scores(), (len(rows), 1))

    def _cold_scores(self):
        return self.ranking_scores()


class Constant(FixedOrder):
    """Scores every item 0: only tie-breaking decides."""

    name = "constant"

    def ranking_scores(self) -> np.ndarray:
        return np.zeros(len(self.item_ids_), dtype=np.float32)


@dataclass
class FakeSplit:
    train: Dataset
    valid: Dataset
    test: Dataset
    protocol: str = "temporal"

    @property
    def train_full(self) -> Dataset:
        events = pd.concat([self.train.events, self.valid.events], ignore_index=True)
        return self.train.with_events(events)


def _ds(rows):
    users, items = zip(*rows, strict=True)
    return Dataset(make_events(list(users), list(items), np.arange(len(rows))))


def hand_split() -> FakeSplit:
    # train_full (train + valid): u1 {a, b}, u2 {c}, u3 {a}, u5 {d, e}; items a b c d e
    train = _ds([("u1", "a"), ("u1", "b"), ("u2", "c"), ("u3", "a"), ("u5", "d")])
    valid = _ds([("u5", "e")])
    # test: u1 {b (seen), c (twice)}, u2 {a, e}, u3 {a (seen)}, u4 (new user) {d, f (new)}
    test = _ds(
        [
            ("u1", "b"),
            ("u1", "c"),
            ("u1", "c"),
            ("u2", "a"),
            ("u2", "e"),
            ("u3", "a"),
            ("u4", "d"),
            ("u4", "f"),
        ]
    )
    return FakeSplit(train, valid, test)


def test_exact_report_with_exclude_seen():
    model = FixedOrder()
    r = evaluate_model(model, hand_split(), k=2, progress=False)
    assert model.n_fit_events_ == 6  # fitted on train + valid
    # recommend (k=2, seen removed; ranking a > b > c > d > e):
    #   u1 seen {a,b} -> [c, d]; relevant {c} (b removed)  -> hit at 1
    #   u2 seen {c}   -> [a, b]; relevant {a, e}           -> hit at 1
    #   u3 seen {a}   -> relevant {} -> left out (NaN)
    #   u4 new        -> [a, b]; relevant {d, f}           -> no hit
    # precision = (1/2 + 1/2 + 0) / 3; recall = (1 + 1/2 + 0) / 3
    assert r["precision@2"] == pytest.approx(1 / 3)
    assert r["recall@2"] == pytest.approx(0.5)
    # F1: u1 2*(.5*1)/(1.5) = 2/3, u2 .5, u4 0 -> 7/18
    assert r["f1@2"] == pytest.approx(7 / 18)
    assert r["hr@2"] == pytest.approx(2 / 3)
    assert r["mrr@2"] == pytest.approx(2 / 3)
    # NDCG: u1 1; u2 1 / (1 + 1/log2 3); u4 0
    assert r["ndcg@2"] == pytest.approx((1 + 1 / (1 + 1 / LOG3)) / 3)
    # MAP: u1 1/1; u2 (1/1)/min(2,2) = 1/2; u4 0 -> 1/2
    assert r["map@2"] == pytest.approx(0.5)
    # recommended ids {c, d, a, b} of 5 items
    assert r["coverage@2"] == pytest.approx(0.8)
    assert r["n_users_evaluated"] == 3
    assert r["n_users_without_relevant"] == 1
    assert r["n_test_items_seen_in_train"] == 2  # (u1, b) and (u3, a)
    assert r["protocol"] == "temporal"
    assert r["ranking"] == "full"
    assert r["fit_seconds"] >= 0 and r["recommend_seconds"] >= 0
    json.dumps(r, allow_nan=False)


def test_keep_seen_items_relevant_without_exclude_seen():
    r = evaluate_model(FixedOrder(), hand_split(), k=2, exclude_seen=False, progress=False)
    # everyone gets [a, b]:
    #   u1 {b, c}: hit at 2  -> P .5, MRR 1/2, MAP (1/2)/2 = 1/4, NDCG (1/log2 3)/(1 + 1/log2 3)
    #   u2 {a, e}: hit at 1  -> P .5, MRR 1,   MAP 1/2,           NDCG 1/(1 + 1/log2 3)
    #   u3 {a}:    hit at 1  -> P .5, MRR 1,   MAP 1,             NDCG 1
    #   u4 {d, f}: miss
    assert r["n_users_evaluated"] == 4 and r["n_users_without_relevant"] == 0
    assert r["n_test_items_seen_in_train"] == 2  # reported, not removed
    assert r["precision@2"] == pytest.approx(1.5 / 4)
    assert r["hr@2"] == pytest.approx(0.75)
    assert r["mrr@2"] == pytest.approx(2.5 / 4)
    assert r["map@2"] == pytest.approx(1.75 / 4)
    ideal2 = 1 + 1 / LOG3
    assert r["ndcg@2"] == pytest.approx(((1 / LOG3) / ideal2 + 1 / ideal2 + 1) / 4)
    assert r["coverage@2"] == pytest.approx(2 / 5)


def test_keys_follow_k_and_are_exact():
    r = evaluate_model(FixedOrder(), hand_split(), k=5, progress=False)
    metric_keys = {f"{m}@5" for m in ("precision", "recall", "f1", "hr", "ndcg", "mrr", "map")}
    assert set(r) == metric_keys | {
        "coverage@5",
        "fit_seconds",
        "recommend_seconds",
        "n_users_evaluated",
        "n_users_without_relevant",
        "n_test_items_seen_in_train",
        "protocol",
        "ranking",
    }
    assert not any(key.endswith("@10") for key in r)


def test_batch_size_does_not_change_the_result():
    a = evaluate_model(FixedOrder(), hand_split(), k=3, batch_size=1, progress=False)
    b = evaluate_model(FixedOrder(), hand_split(), k=3, batch_size=1024, progress=True)
    for key in a:
        if not key.endswith("_seconds"):
            assert a[key] == b[key], key


def test_auc():
    r = evaluate_model(FixedOrder(), hand_split(), k=2, compute_auc=True, progress=False)
    # scores a5 b4 c3 d2 e1; seen items left out; f unknown to the model, not scored:
    #   u1 items c d e, positive c beats d, e          -> 1
    #   u2 items a b d e, positives a (beats b, d), e (beats none) -> 2/4
    #   u3 no positive                                  -> NaN (left out)
    #   u4 items a..e, positive d beats e only          -> 1/4
    assert r["auc"] == pytest.approx((1 + 0.5 + 0.25) / 3)
    assert r["auc_n_users"] == 3


def test_sampled_negatives_prefix_and_values():
    r = evaluate_model(FixedOrder(), hand_split(), k=2, sampled_negatives=4, progress=False)
    # negatives are items not seen by the user nor relevant:
    #   u1 may use {d, e} (2 < 4: short): candidates c d e -> [c, d], hit at 1
    #   u2 may use {b, d} (short): candidates a e b d -> [a, b], hit at 1
    #   u4 may use {a, b, c, e} (exactly 4): candidates d a b c e -> [a, b], miss
    assert r["ranking"] == "full+sampled-4"
    assert r["sampled4_hr@2"] == pytest.approx(2 / 3)
    assert r["sampled4_mrr@2"] == pytest.approx(2 / 3)
    assert r["sampled4_n_users_with_fewer_negatives"] == 2
    sampled = {key for key in r if key.startswith("sampled")}
    assert sampled == {
        f"sampled4_{m}@2" for m in ("precision", "recall", "f1", "hr", "ndcg", "mrr", "map")
    } | {"sampled4_n_users_with_fewer_negatives"}
    assert "sampled4_coverage@2" not in r
    assert r["hr@2"] == pytest.approx(2 / 3)  # the full-ranking figures are still there
    json.dumps(r, allow_nan=False)


def random_split(seed: int, n_users: int = 120, n_items: int = 60) -> FakeSplit:
    """Each user has 6 distinct items: 4 in train, 2 in test."""
    rng = np.random.default_rng(seed)
    picks = {u: rng.choice(n_items, 6, replace=False) for u in range(n_users)}
    train = _ds([(f"u{u}", f"i{t}") for u, items in picks.items() for t in items[:4]])
    test = _ds([(f"u{u}", f"i{t}") for u, items in picks.items() for t in items[4:]])
    return FakeSplit(train, _ds([("u0", "i0")]), test, protocol="random")


def test_sampled_is_seeded_and_breaks_ties_at_random():
    split = random_split(0)
    a = evaluate_model(Constant(), split, k=1, sampled_negatives=9, seed=3, progress=False)
    b = evaluate_model(Constant(), split, k=1, sampled_negatives=9, seed=3, progress=False)
    assert a["sampled9_hr@1"] == b["sampled9_hr@1"]
    # one relevant item among 9 tied negatives: a hit 1 time in 10 on average; putting the
    # relevant items first on ties would give 1.
    assert a["sampled9_hr@1"] < 0.5


def test_sampled_candidates_avoid_seen_and_relevant():
    split = random_split(1)
    model = FixedOrder(ranking=()).fit(split.train_full)
    users = list(pd.unique(split.test.events["user_id"]))[:20]
    rows = model.user_rows(users)
    assert (rows >= 0).all()
    rng = np.random.default_rng(0)
    rel = [np.array([int(r) % model.n_items]) for r in rows]
    S = model.score_items(users)
    ids, short = _sampled_lists(S, rows, rel, model, 7, 100, rng)
    assert short == 0
    for i, row in enumerate(rows):
        got = [x for x in ids[i] if x is not None]
        assert len(got) == 8 and len(set(got)) == 8
        seen = set(model.item_ids_[model.user_items_[row].indices])
        negatives = set(got) - {model.item_ids_[rel[i][0]]}
        assert len(negatives) == 7 and not negatives & seen


def test_protocol_defaults_to_custom_and_accepts_namespace():
    s = hand_split()
    split = SimpleNamespace(train_full=s.train_full, test=s.test.events)
    r = evaluate_model(FixedOrder(), split, k=2, progress=False)
    assert r["protocol"] == "custom"
    assert r["hr@2"] == pytest.approx(2 / 3)


def test_does_not_mutate_split():
    s = hand_split()
    before = s.test.events.copy()
    evaluate_model(FixedOrder(), s, k=2, compute_auc=True, sampled_negatives=2, progress=False)
    pd.testing.assert_frame_equal(s.test.events, before)


def test_evaluate_recommendations():
    # u0: [a, b] vs {b} -> hit at 2; u1: [c, None] vs {} -> left out; u2: [] vs {a} -> miss
    r = evaluate_recommendations([["a", "b"], ["c", None], []], [{"b"}, set(), {"a"}], 2, 4)
    assert r["hr@2"] == pytest.approx(0.5)
    assert r["mrr@2"] == pytest.approx(0.25)
    assert r["coverage@2"] == pytest.approx(3 / 4)
    assert r["n_users_evaluated"] == 2 and r["n_users_without_relevant"] == 1
    empty = evaluate_recommendations([["a"]], [set()], 1, 1)
    assert math.isnan(empty["ndcg@1"]) and empty["n_users_evaluated"] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "'k'"),
        ({"k": 2.5}, "'k'"),
        ({"sampled_negatives": 0}, "'sampled_negatives'"),
        ({"sampled_negatives": True}, "'sampled_negatives'"),
        ({"batch_size": 0}, "'batch_size'"),
        ({"batch_size": True}, "'batch_size' must be an integer >= 1; got True"),
        ({"seed": "x"}, "'seed'"),
        ({"seed": False}, "'seed' must be None or an integer; got False"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        evaluate_model(FixedOrder(), hand_split(), progress=False, **kwargs)


def test_settings_accepted_as_before():
    for kwargs in ({"seed": None}, {"seed": np.int64(3)}, {"batch_size": np.int64(1)}):
        evaluate_model(FixedOrder(), hand_split(), progress=False, **kwargs)


def test_bad_split_and_model():
    with pytest.raises(ParameterError, match="'split'.*train_full"):
        evaluate_model(FixedOrder(), object(), progress=False)
    with pytest.raises(ParameterError, match="'model'.*Recommender"):
        evaluate_model(object(), hand_split(), progress=False)
    with pytest.raises(TypeError):
        evaluate_model(FixedOrder(), hand_split(), 2, False)  # keyword-only options


def test_public_api():
    assert set(ev.__all__) >= {
        "evaluate_model",
        "evaluate_recommendations",
        "precision_at_k",
        "recall_at_k",
        "f1_at_k",
        "hit_rate_at_k",
        "ndcg_at_k",
        "mrr_at_k",
        "map_at_k",
        "ranking_metrics",
        "coverage_at_k",
        "auc",
        "ndcg_from_scores",
    }
    for name in ev.__all__:
        assert hasattr(ev, name), name
    import lifelongrec.evaluation.metrics as metrics

    for name in metrics.__all__:
        assert getattr(ev, name) is getattr(metrics, name)


def test_empty_test_set_gives_nan_and_zero_counts():
    s = hand_split()
    s.test = s.test.with_events(s.test.events.iloc[:0])
    r = evaluate_model(FixedOrder(), s, k=3, compute_auc=True, sampled_negatives=3, progress=False)
    assert math.isnan(r["ndcg@3"]) and math.isnan(r["sampled3_ndcg@3"]) and math.isnan(r["auc"])
    assert r["n_users_evaluated"] == 0 and r["n_users_without_relevant"] == 0
    assert r["coverage@3"] == 0.0
