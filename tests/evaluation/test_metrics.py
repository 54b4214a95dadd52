"""Metrics against hand-worked cases, scikit-learn and slow, obviously-correct loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from lifelongrec import ParameterError
from lifelongrec.evaluation import (
    auc,
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    ndcg_from_scores,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from lifelongrec.evaluation import metrics as M

LIST_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "f1": f1_at_k,
    "hr": hit_rate_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}


# ------------------------------------------------------------ reference loops
def ref_metrics(rec: list, rel: set, k: int) -> dict[str, float]:
    """One user, the textbook way, one position at a time."""
    if not rel:
        return dict.fromkeys(LIST_METRICS, math.nan)
    top = list(rec)[:k]
    hits = [x is not None and x in rel for x in top]
    n_hits = sum(hits)
    p = n_hits / k
    r = n_hits / len(rel)
    f1 = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    dcg = sum(1 / math.log2(i + 2) for i, h in enumerate(hits) if h)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
    mrr = 0.0
    for i, h in enumerate(hits):
        if h:
            mrr = 1 / (i + 1)
            break
    ap = 0.0
    for i, h in enumerate(hits):
        if h:
            ap += sum(hits[: i + 1]) / (i + 1)
    ap /= min(len(rel), k)
    return {
        "precision": p,
        "recall": r,
        "f1": f1,
        "hr": float(n_hits > 0),
        "ndcg": dcg / idcg,
        "mrr": mrr,
        "map": ap,
    }


def random_lists(rng: np.random.Generator, n_users: int, n_items: int, max_len: int):
    """Random ranked lists (no repeats; some short, empty or None-padded) and relevant sets."""
    recs, rels = [], []
    for _ in range(n_users):
        length = int(rng.integers(0, max_len + 1))
        ids = [f"i{j}" for j in rng.permutation(n_items)[:length]]
        if rng.random() < 0.3:
            ids = ids + [None] * int(rng.integers(1, 4))
        n_rel = int(rng.integers(0, 6))
        rel = {f"i{j}" for j in rng.choice(n_items, size=n_rel, replace=False)}
        recs.append(ids)
        rels.append(rel)
    return recs, rels


# ------------------------------------------------------------- hand-worked cases
def test_hand_worked_single_user():
    # list a b c d e, relevant {b, d, z}, k = 5: hits at ranks 2 and 4.
    rec, rel = [["a", "b", "c", "d", "e"]], [{"b", "d", "z"}]
    # precision = 2 / 5; recall = 2 / 3; F1 = 2 * 0.4 * (2/3) / (0.4 + 2/3) = 0.5
    assert precision_at_k(rec, rel, 5)[0] == pytest.approx(0.4)
    assert recall_at_k(rec, rel, 5)[0] == pytest.approx(2 / 3)
    assert f1_at_k(rec, rel, 5)[0] == pytest.approx(0.5)
    # HR = 1 (a hit); MRR = 1 / 2 (first hit at rank 2)
    assert hit_rate_at_k(rec, rel, 5)[0] == 1.0
    assert mrr_at_k(rec, rel, 5)[0] == pytest.approx(0.5)
    # MAP = (P@2 + P@4) / min(3, 5) = (1/2 + 2/4) / 3 = 1/3
    assert map_at_k(rec, rel, 5)[0] == pytest.approx(1 / 3)
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161
    # IDCG = 1 + 1/log2(3) + 1/log2(4) = 1 + 0.63093 + 0.5 = 2.13093; NDCG = 0.49819
    assert ndcg_at_k(rec, rel, 5)[0] == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5), abs=1e-12
    )


def test_hand_worked_cut_and_short_lists():
    # k = 2 cuts "a b c" to "a b": relevant {c} -> no hit anywhere.
    assert ranking_metrics([["a", "b", "c"]], [{"c"}], 2)["hr"][0] == 0.0
    # a list of 1 with k = 4: precision = 1 / 4 (short lists count as padded with misses);
    # recall = 1 / 2; MAP = (P@1 = 1) / min(2, 4) = 0.5; NDCG = 1 / (1 + 1/log2(3)) = 0.61315
    m = ranking_metrics([["x"]], [{"x", "y"}], 4)
    assert m["precision"][0] == pytest.approx(0.25)
    assert m["recall"][0] == pytest.approx(0.5)
    assert m["map"][0] == pytest.approx(0.5)
    assert m["ndcg"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # k larger than |relevant|: IDCG and MAP use min(|rel|, k) = 1 ideal hit.
    # "a x": hit at rank 2 -> NDCG = (1/log2 3) / 1 = 0.63093; MAP = (1/2) / 1
    m = ranking_metrics([["a", "x"]], [{"x"}], 10)
    assert m["ndcg"][0] == pytest.approx(1 / math.log2(3))
    assert m["map"][0] == pytest.approx(0.5)
    assert m["mrr"][0] == pytest.approx(0.5)


def test_map_divides_by_min_of_relevant_and_k():
    # 4 relevant, k = 2, both slots hit: AP = (1/1 + 2/2) / min(4, 2) = 1
    assert map_at_k([["a", "b"]], [{"a", "b", "c", "d"}], 2)[0] == pytest.approx(1.0)
    # recall stays 2 / 4
    assert recall_at_k([["a", "b"]], [{"a", "b", "c", "d"}], 2)[0] == pytest.approx(0.5)


def test_f1_zero_when_no_hit():
    assert f1_at_k([["a", "b"]], [{"c"}], 2)[0] == 0.0


def test_empty_list_and_none_padding():
    m = ranking_metrics([[], [None, None], ["a", None, None]], [{"a"}, {"a"}, {"a"}], 3)
    np.testing.assert_array_equal(m["hr"], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(m["precision"], [0.0, 0.0, 1 / 3])


def test_none_keeps_its_rank():
    # a None in the middle is an empty slot: "b" is still at rank 2.
    assert mrr_at_k([[None, "b"]], [{"b"}], 2)[0] == pytest.approx(0.5)


def test_users_without_relevant_get_nan():
    m = ranking_metrics([["a"], ["a"]], [set(), {"a"}], 1)
    for name, values in m.items():
        assert math.isnan(values[0]), name
        assert values[1] == 1.0, name


def test_relevant_duplicates_count_once():
    assert recall_at_k([["a"]], [["a", "a", "b"]], 1)[0] == pytest.approx(0.5)


def test_object_array_input_matches_lists():
    rng = np.random.default_rng(3)
    recs, rels = random_lists(rng, 30, 20, 6)
    arr = np.full((30, 9), None, dtype=object)
    for i, r in enumerate(recs):
        arr[i, : len(r)] = r
    for k in (1, 4, 12):
        a, b = ranking_metrics(recs, rels, k), ranking_metrics(arr, rels, k)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])


def test_numpy_string_and_integer_ids():
    rec = np.array([["a", "b"], ["c", "d"]])  # dtype <U1
    np.testing.assert_array_equal(hit_rate_at_k(rec, [["b"], ["x"]], 2), [1.0, 0.0])
    np.testing.assert_array_equal(hit_rate_at_k([[1, 2], [3]], [[2], [4]], 2), [1.0, 0.0])


def test_empty_batch():
    m = ranking_metrics([], [], 5)
    assert all(v.shape == (0,) for v in m.values())


# --------------------------------------------------------------- property tests
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_list_metrics_match_reference_loops(seed, k):
    rng = np.random.default_rng(seed)
    recs, rels = random_lists(rng, 60, 15, 12)
    got = ranking_metrics(recs, rels, k)
    expected = [ref_metrics(r, s, k) for r, s in zip(recs, rels, strict=True)]
    for name, fn in LIST_METRICS.items():
        want = np.array([e[name] for e in expected])
        np.testing.assert_allclose(got[name], want, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(fn(recs, rels, k), got[name], err_msg=name)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_list_ndcg_matches_sklearn(seed, k):
    """Build a tie-free score vector from the ranks and let scikit-learn score it."""
    rng = np.random.default_rng(100 + seed)
    recs, rels = random_lists(rng, 40, 12, 8)
    got = ndcg_at_k(recs, rels, k)
    for i, (rec, rel) in enumerate(zip(recs, rels, strict=True)):
        if not rel:
            assert math.isnan(got[i])
            continue
        top = list(rec)[:k]
        # positions 0..k-1 hold the list, padded with dummy never-relevant items;
        # relevant items not listed come after position k with distinct lower scores.
        slots = [x if x is not None else f"pad{j}" for j, x in enumerate(top)]
        slots += [f"pad{j}" for j in range(len(slots), k)]
        rest = sorted(rel - set(slots)) + ["extra"]
        universe = slots + rest
        y_score = np.arange(len(universe), 0, -1, dtype=float)
        y_true = np.array([float(x in rel) for x in universe])
        want = ndcg_score([y_true], [y_score], k=k, ignore_ties=False)
        assert got[i] == pytest.approx(want, abs=1e-6)


def test_ranking_metrics_matches_each_function():
    rng = np.random.default_rng(7)
    recs, rels = random_lists(rng, 50, 30, 10)
    m = ranking_metrics(recs, rels, 5)
    assert tuple(m) == M.RANKING_METRICS
    for name, fn in LIST_METRICS.items():
        np.testing.assert_array_equal(m[name], fn(recs, rels, 5))


def test_metrics_do_not_mutate_inputs():
    recs = [["a", "b"], ["c"]]
    rels = [{"a"}, ["c", "c"]]
    ranking_metrics(recs, rels, 3)
    assert recs == [["a", "b"], ["c"]] and rels == [{"a"}, ["c", "c"]]


# ------------------------------------------------------------------- coverage
def test_coverage_counts_distinct_ids_in_top_k():
    # top-2 of the lists: {a, b} and {b, c}; "z" is past k; None not counted -> 3 / 10
    rec = [["a", "b", "z"], ["b", "c"], [None, None]]
    assert coverage_at_k(rec, 10, 2) == pytest.approx(0.3)
    assert coverage_at_k([], 10, 2) == 0.0


def test_coverage_errors():
    with pytest.raises(ParameterError, match="n_catalogue"):
        coverage_at_k([["a"]], 0, 1)
    with pytest.raises(ParameterError, match="'n_catalogue' must be an integer >= 1; got True"):
        coverage_at_k([["a"]], True, 1)
    with pytest.raises(ParameterError, match="n_catalogue"):
        coverage_at_k([["a", "b"]], 1, 2)  # more distinct ids than the catalogue
    with pytest.raises(ParameterError, match="'k'"):
        coverage_at_k([["a"]], 5, 0)


# --------------------------------------------------------------- list errors
@pytest.mark.parametrize("k", [0, -1, 2.0, True, "3", None])
def test_bad_k(k):
    with pytest.raises(ParameterError, match="'k'.*positive integer"):
        precision_at_k([["a"]], [{"a"}], k)


def test_k_accepts_numpy_int():
    assert precision_at_k([["a"]], [{"a"}], np.int64(1))[0] == 1.0


def test_length_mismatch_names_both_lengths():
    with pytest.raises(ParameterError, match=r"len\(recommended\)=2, len\(relevant\)=1"):
        recall_at_k([["a"], ["b"]], [{"a"}], 1)


def test_duplicate_ids_in_a_list_raise():
    with pytest.raises(ParameterError, match=r"recommended\[1\].*'b' appears more than once"):
        ndcg_at_k([["a"], ["b", "c", "b"]], [{"a"}, {"b"}], 3)
    # a repeat past k is cut away before the check
    assert ndcg_at_k([["b", "c", "b"]], [{"b"}], 2)[0] == 1.0


def test_strings_instead_of_lists_raise():
    with pytest.raises(ParameterError, match=r"recommended\[0\]"):
        hit_rate_at_k(np.array(["a", "b"], dtype=object), [{"a"}, {"b"}], 2)
    with pytest.raises(ParameterError, match="'recommended'"):
        hit_rate_at_k("ab", [{"a"}], 2)
    with pytest.raises(ParameterError, match=r"relevant\[0\]"):
        hit_rate_at_k([["a"]], ["a"], 1)
    with pytest.raises(ParameterError, match="'relevant'"):
        hit_rate_at_k([["a"]], 5, 1)


def test_none_in_relevant_raises():
    with pytest.raises(ParameterError, match=r"relevant\[0\]"):
        mrr_at_k([["a"]], [{None, "a"}], 1)


# ----------------------------------------------------------------------- AUC
def ref_auc(scores, pos, excl):
    """Count pairs one by one: 1 for a win, 1/2 for a tie."""
    P = [s for s, p, e in zip(scores, pos, excl, strict=True) if p and not e]
    N = [s for s, p, e in zip(scores, pos, excl, strict=True) if not p and not e]
    if not P or not N:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in P for b in N)
    return wins / (len(P) * len(N))


@pytest.mark.parametrize("seed", range(6))
def test_auc_matches_sklearn_and_pair_counting(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 25, 30
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(float)  # many ties
    scores[0, :3] = [np.inf, -np.inf, -np.inf]
    pos = rng.random((n_users, n_items)) < 0.2
    excl = rng.random((n_users, n_items)) < 0.3
    pos[1] = False  # no positives -> NaN
    pos[2] = True  # no negatives -> NaN
    got = auc(scores, pos, excl)
    for u in range(n_users):
        want = ref_auc(scores[u], pos[u], excl[u])
        if math.isnan(want):
            assert math.isnan(got[u])
            continue
        inc = ~excl[u]
        finite = np.clip(scores[u][inc], -100, 100)  # same order and ties; sklearn refuses inf
        assert got[u] == pytest.approx(roc_auc_score(pos[u][inc], finite), abs=1e-9)
        assert got[u] == pytest.approx(want, abs=1e-9)
    assert math.isnan(got[1]) and math.isnan(got[2])


def test_auc_without_exclusion_and_hand_case():
    # positive scores 3 and 1; negatives 2 and 1: 3>2, 3>1, 1<2, 1=1 -> (1+1+0+0.5)/4
    assert auc([[3.0, 1.0, 2.0, 1.0]], [[1, 1, 0, 0]])[0] == pytest.approx(0.625)
    # excluding the tied negative: pairs 3>2, 1<2 -> 1/2
    assert auc([[3.0, 1.0, 2.0, 1.0]], [[1, 1, 0, 0]], [[0, 0, 0, 1]])[0] == pytest.approx(0.5)
    # a constant scorer is worth 0.5
    assert auc(np.zeros((1, 5)), [[1, 0, 0, 1, 0]])[0] == pytest.approx(0.5)


def test_auc_excluding_does_not_depend_on_excluded_scores():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(4, 20))
    pos = rng.random((4, 20)) < 0.3
    excl = rng.random((4, 20)) < 0.3
    s2 = s.copy()
    s2[excl] = rng.normal(size=excl.sum()) * 100
    np.testing.assert_allclose(auc(s, pos, excl), auc(s2, pos, excl))


def test_score_metric_errors():
    with pytest.raises(ParameterError, match="relevant_mask.*shape"):
        auc(np.zeros((2, 3)), np.zeros((2, 4), bool))
    with pytest.raises(ParameterError, match="exclude_mask.*shape"):
        auc(np.zeros((2, 3)), np.zeros((2, 3), bool), np.zeros((3, 3), bool))
    with pytest.raises(ParameterError, match="scores.*2-d"):
        auc(np.zeros(3), np.zeros(3, bool))
    with pytest.raises(ParameterError, match="scores.*NaN"):
        ndcg_from_scores([[np.nan, 1.0]], [[True, False]], 1)
    with pytest.raises(ParameterError, match="relevant_mask.*boolean"):
        auc([[1.0, 2.0]], [[0.5, 1.0]])
    with pytest.raises(ParameterError, match="'k'"):
        ndcg_from_scores([[1.0, 2.0]], [[True, False]], 0)
    with pytest.raises(ParameterError, match="relevant_mask.*shape"):
        ndcg_from_scores(np.zeros((2, 3)), np.zeros((2, 2), bool), 2)


# ---------------------------------------------------------- NDCG from scores
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 3, 7, 40])
def test_ndcg_from_scores_matches_sklearn_with_ties(seed, k):
    rng = np.random.default_rng(seed)
    n_users, n_items = 20, 25
    scores = rng.integers(0, 4, size=(n_users, n_items)).astype(float)
    scores[0] = 1.0  # one big tie
    scores[1, :5] = -np.inf
    rel = rng.random((n_users, n_items)) < 0.2
    rel[2] = False
    got = ndcg_from_scores(scores, rel, k)
    for u in range(n_users):
        if not rel[u].any():
            assert math.isnan(got[u])
            continue
        finite = np.clip(scores[u], -100, 100)  # same order and ties; sklearn refuses inf
        want = ndcg_score([rel[u].astype(float)], [finite], k=k, ignore_ties=False)
        assert got[u] == pytest.approx(want, abs=1e-6)


def test_ndcg_from_scores_equals_list_ndcg_without_ties():
    rng = np.random.default_rng(11)
    n_items = 30
    item_ids = np.array([f"i{j}" for j in range(n_items)], dtype=object)
    scores = rng.normal(size=(15, n_items))
    rel = rng.random((15, n_items)) < 0.15
    rel[:, 0] = True
    for k in (1, 5, 30):
        top = item_ids[np.argsort(-scores, axis=1)[:, :k]]
        rel_sets = [set(item_ids[r]) for r in rel]
        np.testing.assert_allclose(
            ndcg_from_scores(scores, rel, k), ndcg_at_k(top, rel_sets, k), atol=1e-12
        )


def test_ndcg_from_scores_hand_tie():
    # two items tied at the top, the relevant one among them, k = 1:
    # tie group spans rank 1 (discount 1) and rank 2 (cut by k) -> mean gain 1/2 * 1 = 0.5
    assert ndcg_from_scores([[1.0, 1.0, 0.0]], [[0, 1, 0]], 1)[0] == pytest.approx(0.5)
    # k = 2: (1/2) * (1 + 1/log2 3) / 1
    assert ndcg_from_scores([[1.0, 1.0, 0.0]], [[0, 1, 0]], 2)[0] == pytest.approx(
        0.5 * (1 + 1 / math.log2(3))
    )
