"""Ranking metrics: pure functions on what a recommender returned, on raw scores, or on
the rank of a held-out item.

A bottom layer: it imports nothing of lifelongrec's but its errors, and every layer may
call it (models validate with it during training, evaluation protocols report with it;
:mod:`lifelongrec.evaluation.metrics` re-exports it).

Three families, all with binary relevance and one value per user:

* **list-based** (``precision_at_k`` ... ``map_at_k``, :func:`ranking_metrics`,
  :func:`coverage_at_k`): ``recommended`` holds one ranked list of item ids per user,
  best first, e.g. the ``ids`` array of ``model.recommend(users, k)``; ``relevant`` one
  collection of relevant ids per user (e.g. the user's test items).
* **score-based, tie-aware** (:func:`auc`, :func:`ndcg_from_scores`): a dense score
  matrix ``(U, I)`` and a boolean relevance mask of the same shape, e.g. the output of
  ``model.score_items(users)`` whose columns follow ``model.item_ids_``.
* **rank-based** (:func:`ndcg_from_ranks`, :func:`hit_rate_from_ranks`): one relevant
  item per user, given by its 0-based rank in a full ranking (e.g. from
  :func:`lifelongrec.nn.target_ranks`, which counts items tied with it as above it).

Conventions of the list-based metrics
-------------------------------------
* A list is cut to its first ``k`` entries; a shorter list counts as if padded with
  misses, so precision is always ``hits / k``.
* ``None`` entries are padding (what ``recommend`` writes when fewer than ``k`` items are
  eligible): they keep their position and are never a hit, nor counted by coverage.
* An id repeated within the first ``k`` entries of one list is an error
  (:class:`~lifelongrec.ParameterError` naming the user and the id): a recommender that
  repeats itself is broken, and counting the repeat would inflate every metric.
* ``relevant`` entries are sets: a repeated relevant id counts once; ``None`` is refused.
* A user with no relevant item gets ``NaN`` in every per-user array; aggregates
  (:func:`lifelongrec.evaluation.evaluate_recommendations`) leave such users out and say
  how many there were.

Shapes: ``U`` users, ``K`` the cut-off, ``I`` items.

Examples
--------
>>> recall_at_k([["a", "b", "c"]], [{"c", "z"}], k=3)
array([0.5])
>>> ndcg_at_k([["a", "b", None]], [{"b"}], k=3).round(4)
array([0.6309])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_int, check_k

__all__ = [
    "RANKING_METRICS",
    "auc",
    "coverage_at_k",
    "f1_at_k",
    "hit_rate_at_k",
    "hit_rate_from_ranks",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "ndcg_from_ranks",
    "ndcg_from_scores",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]

#: Short names of the list-based metrics, in the order tables list them; the keys of
#: :func:`ranking_metrics` and (with ``@k``) of the evaluation reports.
RANKING_METRICS = ("precision", "recall", "f1", "hr", "ndcg", "mrr", "map")


# --------------------------------------------------------------------------- checks
def _is_id_list(row: Any) -> bool:
    return not isinstance(row, (str, bytes)) and isinstance(row, (Iterable, np.ndarray))


def _rec_matrix(recommended: Any, k: int) -> np.ndarray:
    """``recommended`` as a ``(U, K)`` object array, cut at ``k`` and padded with ``None``."""
    if isinstance(recommended, np.ndarray) and recommended.ndim == 2:
        n, width = recommended.shape
        out = np.full((n, k), None, dtype=object)
        w = min(width, k)
        out[:, :w] = recommended[:, :w].astype(object)
        return out
    if isinstance(recommended, (str, bytes)) or not isinstance(
        recommended, (Sequence, np.ndarray, pd.Series)
    ):
        raise ParameterError(
            "recommended",
            recommended,
            "a sequence of ranked id lists (one per user) or a 2-d array (U, K)",
        )
    rows = list(recommended)
    out = np.full((len(rows), k), None, dtype=object)
    for i, row in enumerate(rows):
        if not _is_id_list(row):
            raise ParameterError(
                f"recommended[{i}]",
                row,
                "a ranked list of item ids (pass [ids] for a single user)",
            )
        head = list(row)[:k]
        out[i, : len(head)] = head
    return out


def _relevant_sets(relevant: Any, n_users: int) -> list[set[Any]]:
    if isinstance(relevant, (str, bytes)) or not isinstance(
        relevant, (Sequence, np.ndarray, pd.Series)
    ):
        raise ParameterError(
            "relevant", relevant, "a sequence of collections of relevant ids, one per user"
        )
    rows = list(relevant)
    if len(rows) != n_users:
        raise ParameterError(
            "relevant",
            f"{len(rows)} collections",
            f"one collection per list of 'recommended' ({n_users} lists); "
            f"got len(recommended)={n_users}, len(relevant)={len(rows)}",
        )
    sets = []
    for i, row in enumerate(rows):
        if not _is_id_list(row):
            raise ParameterError(
                f"relevant[{i}]", row, "a collection of item ids (a set, list or array)"
            )
        s = set(row)
        if None in s:
            raise ParameterError(f"relevant[{i}]", row, "item ids without None")
        sets.append(s)
    return sets


def _hits(recommended: Any, relevant: Any, k: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Hit matrix ``(U, K)`` bool, relevant counts ``(U,)`` int64 and the checked ``k``."""
    k = check_k(k)
    R = _rec_matrix(recommended, k)
    n = R.shape[0]
    sets = _relevant_sets(relevant, n)
    n_rel = np.fromiter((len(s) for s in sets), np.int64, n)
    present = np.not_equal(R, None).astype(bool)
    rec_user = np.nonzero(present)[0]
    rec_vals = R[present]
    rel_vals = np.empty(int(n_rel.sum()), dtype=object)
    rel_vals[:] = [x for s in sets for x in s]
    codes, uniques = pd.factorize(np.concatenate([rec_vals, rel_vals]))
    n_codes = max(len(uniques), 1)
    rec_key = rec_user * n_codes + codes[: len(rec_vals)]
    rel_key = np.repeat(np.arange(n, dtype=np.int64), n_rel) * n_codes + codes[len(rec_vals) :]
    if len(np.unique(rec_key)) != len(rec_key):
        sorted_key = np.sort(rec_key)
        dup = sorted_key[np.flatnonzero(sorted_key[1:] == sorted_key[:-1])[0]]
        user = int(dup // n_codes)
        raise ParameterError(
            f"recommended[{user}]",
            list(R[user]),
            f"a ranked list without repeated ids within the first k={k} "
            f"(id {uniques[dup % n_codes]!r} appears more than once)",
        )
    H = np.zeros((n, k), dtype=bool)
    H[present] = np.isin(rec_key, rel_key)
    return H, n_rel, k


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _nan_where_no_relevant(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    values[n_rel == 0] = np.nan
    return values


# -------------------------------------------------------------- metrics from hits
def _precision(H: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return _nan_where_no_relevant(H.sum(axis=1) / k, n_rel)


def _recall(H: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_no_relevant(H.sum(axis=1) / n_rel, n_rel)


def _f1(H: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    p, r = _precision(H, n_rel, k), _recall(H, n_rel, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return _nan_where_no_relevant(f, n_rel)


def _hr(H: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    return _nan_where_no_relevant(H.any(axis=1), n_rel)


def _ndcg(H: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    disc = _discounts(k)
    dcg = H @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, k)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_no_relevant(dcg / ideal, n_rel)


def _mrr(H: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    first = H.argmax(axis=1)
    return _nan_where_no_relevant(np.where(H.any(axis=1), 1.0 / (first + 1), 0.0), n_rel)


def _map(H: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    prec_at_i = np.cumsum(H, axis=1) / np.arange(1, k + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = (prec_at_i * H).sum(axis=1) / np.minimum(n_rel, k)
    return _nan_where_no_relevant(ap, n_rel)


_FROM_HITS = {
    "precision": _precision,
    "recall": _recall,
    "f1": _f1,
    "hr": _hr,
    "ndcg": _ndcg,
    "mrr": _mrr,
    "map": _map,
}

_LIST_PARAMS = """
    Parameters
    ----------
    recommended
        One ranked list of item ids per user, best first: a sequence of lists/arrays or a
        2-d object array ``(U, K')`` such as the ids returned by ``recommend``. Lists are
        cut to ``k``; ``None`` entries are padding (never a hit); an id repeated within
        the first ``k`` raises :class:`~lifelongrec.ParameterError`.
    relevant
        ``U`` collections (sets, lists, arrays) of the relevant ids of each user.
    k
        Cut-off, a positive int.

    Returns
    -------
    numpy.ndarray
        ``(U,)`` float64; ``NaN`` for users without relevant items.

    Raises
    ------
    ParameterError
        ``k`` not a positive int, lengths of ``recommended`` and ``relevant`` differ, an
        entry is not a list of ids, or an id repeats within a list.
"""


def precision_at_k(recommended: Any, relevant: Any, k: int) -> np.ndarray:
    """Precision@k: hits in the first ``k`` entries divided by ``k``."""
    H, n_rel, k = _hits(recommended, relevant, k)
    return _precision(H, n_rel, k)


def recall_at_k(recommended: Any, relevant: Any, k: int) -> np.ndarray:
    """Recall@k: hits in the first ``k`` entries divided by the number of relevant ids."""
    H, n_rel, k = _hits(recommended, relevant, k)
    return _recall(H, n_rel, k)


def f1_at_k(recommended: Any, relevant: Any, k: int) -> np.ndarray:
    """F1@k: harmonic mean of precision@k and recall@k (0 when both are 0)."""
    H, n_rel, k = _hits(recommended, relevant, k)
    return _f1(H, n_rel, k)


def hit_rate_at_k(recommended: Any, relevant: Any, k: int) -> np.ndarray:
    """Hit rate@k: 1 if any of the first ``k`` entries is relevant, else 0."""
    H, n_rel, k = _hits(recommended, relevant, k)
    return _hr(H, n_rel, k)


def ndcg_at_k(recommended: Any, relevant: Any, k: int) -> np.ndarray:
    """NDCG@k: DCG (a hit at rank r adds ``1 / log2(r + 1)``) over the ideal DCG.

    The ideal DCG puts ``min(|relevant|, k)`` hits at ranks ``1, 2, ...``.
    """
    H, n_rel, k = _hits(recommended, relevant, k)
    return _ndcg(H, n_rel, k)


def mrr_at_k(recommended: Any, relevant: Any, k: int) -> np.ndarray:
    """MRR@k: ``1 / rank`` of the first hit within the first ``k`` entries (0 if none)."""
    H, n_rel, k = _hits(recommended, relevant, k)
    return _mrr(H, n_rel, k)


def map_at_k(recommended: Any, relevant: Any, k: int) -> np.ndarray:
    """MAP@k (per user: average precision): sum of precision@i over hit ranks ``i <= k``,
    divided by ``min(|relevant|, k)``."""
    H, n_rel, k = _hits(recommended, relevant, k)
    return _map(H, n_rel, k)


for _f in (precision_at_k, recall_at_k, f1_at_k, hit_rate_at_k, ndcg_at_k, mrr_at_k, map_at_k):
    _f.__doc__ = (_f.__doc__ or "") + "\n" + _LIST_PARAMS
del _f


def ranking_metrics(recommended: Any, relevant: Any, k: int) -> dict[str, np.ndarray]:
    """Every list-based metric at once, matching id lists against relevant sets once.

    Parameters and conventions as in :func:`precision_at_k`.

    Returns
    -------
    dict
        ``{"precision", "recall", "f1", "hr", "ndcg", "mrr", "map"}`` (see
        :data:`RANKING_METRICS`), each a ``(U,)`` float64 array, ``NaN`` for users without
        relevant items.

    Examples
    --------
    >>> m = ranking_metrics([["a", "b"], ["x"]], [{"b"}, set()], k=2)
    >>> m["mrr"]
    array([0.5, nan])
    """
    H, n_rel, k = _hits(recommended, relevant, k)
    return {name: fn(H, n_rel, k) for name, fn in _FROM_HITS.items()}


def coverage_at_k(recommended: Any, n_catalogue: int, k: int) -> float:
    """Catalogue coverage: distinct ids in the first ``k`` entries of all lists / catalogue size.

    Parameters
    ----------
    recommended
        Ranked id lists as in :func:`precision_at_k` (``None`` padding not counted).
    n_catalogue
        Number of items that could have been recommended (e.g. ``model.n_items``), a
        positive int at least the number of distinct recommended ids.
    k
        Cut-off, a positive int.

    Returns
    -------
    float
        In ``[0, 1]``.
    """
    k = check_k(k)
    check_int("n_catalogue", n_catalogue, 1)
    R = _rec_matrix(recommended, k)
    values = R[np.not_equal(R, None).astype(bool)]
    n_distinct = len(pd.unique(values)) if len(values) else 0
    if n_distinct > n_catalogue:
        raise ParameterError(
            "n_catalogue",
            n_catalogue,
            f"at least the number of distinct recommended ids ({n_distinct})",
        )
    return n_distinct / int(n_catalogue)


# ------------------------------------------------------------------ score-based
def _check_scores(scores: Any, relevant_mask: Any, exclude_mask: Any = None) -> tuple:
    S = np.asarray(scores, dtype=np.float64)
    if S.ndim != 2:
        raise ParameterError(
            "scores", f"an array of shape {S.shape}", "a 2-d array (n_users, n_items)"
        )
    if np.isnan(S).any():
        raise ParameterError("scores", "NaN entries", "numbers (infinite allowed, not NaN)")
    masks = []
    for name, mask in (("relevant_mask", relevant_mask), ("exclude_mask", exclude_mask)):
        if mask is None:
            masks.append(np.zeros(S.shape, dtype=bool))
            continue
        M = np.asarray(mask)
        if M.shape != S.shape:
            raise ParameterError(name, f"an array of shape {M.shape}", f"shape {S.shape}")
        if M.dtype != bool:
            if not np.isin(M, (0, 1)).all():
                raise ParameterError(name, "values other than 0/1", "a boolean mask")
            M = M.astype(bool)
        masks.append(M)
    return S, masks[0], masks[1]


def _tie_groups(s: np.ndarray, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last position of the tie group of each position of sorted rows ``s``.

    ``breaks[:, j]`` is True where position ``j`` starts a new group (column 0 always).
    """
    n, m = s.shape
    pos = np.broadcast_to(np.arange(m), (n, m))
    start = np.maximum.accumulate(np.where(breaks, pos, 0), axis=1)
    ends = np.ones((n, m), dtype=bool)
    ends[:, :-1] = breaks[:, 1:]
    end = np.minimum.accumulate(np.where(ends, pos, m - 1)[:, ::-1], axis=1)[:, ::-1]
    return start, end


def auc(scores: Any, relevant_mask: Any, exclude_mask: Any = None) -> np.ndarray:
    """Per-user ROC AUC: chance a random relevant item outscores a random non-relevant one.

    Tied scores count one half (Mann-Whitney with mid-ranks), so a constant scorer gets
    0.5. Items in ``exclude_mask`` (e.g. seen in training) are neither positives nor
    negatives.

    Parameters
    ----------
    scores
        ``(U, I)`` numbers; ``±inf`` allowed, ``NaN`` refused.
    relevant_mask
        ``(U, I)`` bool (or 0/1): the relevant items of each user.
    exclude_mask
        Optional ``(U, I)`` bool: items left out of the comparison.

    Returns
    -------
    numpy.ndarray
        ``(U,)`` float64; ``NaN`` for a user without any relevant or any non-relevant
        included item.

    Examples
    --------
    >>> auc([[0.9, 0.5, 0.5, 0.1]], [[False, True, False, False]])
    array([0.5])
    """
    S, pos, ex = _check_scores(scores, relevant_mask, exclude_mask)
    n, m = S.shape
    if m == 0:
        return np.full(n, np.nan)
    order = np.lexsort((S, ex), axis=1)  # included first, then ascending score
    s = np.take_along_axis(S, order, axis=1)
    e = np.take_along_axis(ex, order, axis=1)
    p = np.take_along_axis(pos, order, axis=1) & ~e
    breaks = np.ones((n, m), dtype=bool)
    breaks[:, 1:] = (s[:, 1:] != s[:, :-1]) | (e[:, 1:] != e[:, :-1])
    start, end = _tie_groups(s, breaks)
    midrank = (start + end) / 2.0 + 1.0
    n_pos = p.sum(axis=1).astype(np.float64)
    n_neg = (~e).sum(axis=1) - n_pos
    rank_sum = (midrank * p).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


def ndcg_from_scores(scores: Any, relevant_mask: Any, k: int) -> np.ndarray:
    """Per-user NDCG@k of the ranking the scores induce, averaging over tied orders.

    Equals ``sklearn.metrics.ndcg_score([mask_u], [scores_u], k=k, ignore_ties=False)``
    for each user ``u`` with a relevant item: a group of tied items shares the mean gain
    of the group over the discounts ``1 / log2(rank + 1)`` of the ranks it spans (zero
    past ``k``).

    Parameters
    ----------
    scores
        ``(U, I)`` numbers; ``±inf`` allowed, ``NaN`` refused.
    relevant_mask
        ``(U, I)`` bool (or 0/1).
    k
        Cut-off, a positive int.

    Returns
    -------
    numpy.ndarray
        ``(U,)`` float64; ``NaN`` for users without relevant items (scikit-learn gives 0).

    Examples
    --------
    >>> ndcg_from_scores([[1.0, 1.0, 0.0]], [[True, False, False]], k=1)
    array([0.5])
    """
    k = check_k(k)
    S, rel, _ = _check_scores(scores, relevant_mask)
    n, m = S.shape
    n_rel = rel.sum(axis=1)
    if m == 0:
        return np.full(n, np.nan)
    order = np.argsort(-S, axis=1, kind="stable")
    s = np.take_along_axis(S, order, axis=1)
    g = np.take_along_axis(rel, order, axis=1).astype(np.float64)
    breaks = np.ones((n, m), dtype=bool)
    breaks[:, 1:] = s[:, 1:] != s[:, :-1]
    start, end = _tie_groups(s, breaks)
    kk = min(k, m)
    cum = np.zeros((n, m + 1))
    np.cumsum(g, axis=1, out=cum[:, 1:])
    st, en = start[:, :kk], end[:, :kk]
    rows = np.arange(n)[:, None]
    group_gain = (cum[rows, en + 1] - cum[rows, st]) / (en - st + 1)
    disc = _discounts(kk)
    dcg = group_gain @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, kk)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_no_relevant(dcg / ideal, n_rel)


# ------------------------------------------------------------------- rank-based
def _check_ranks(ranks: Any) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1 or r.dtype.kind not in "iu" or (r < 0).any():
        raise ParameterError(
            "ranks", ranks, "a 1-d array of integers >= 0 (0-based ranks, one per user)"
        )
    return r


def ndcg_from_ranks(ranks: Any, k: int) -> np.ndarray:
    """Per-user NDCG@k of one relevant item at 0-based rank ``ranks[u]``:
    ``1 / log2(rank + 2)`` inside the first ``k``, else 0 (the ideal DCG is 1).

    Parameters
    ----------
    ranks
        ``(U,)`` integers >= 0: where each user's relevant item ranks (0 = first).
    k
        Cut-off, a positive int.

    Returns
    -------
    numpy.ndarray
        ``(U,)`` float64.

    Examples
    --------
    >>> ndcg_from_ranks([0, 1, 10], k=10).round(4)
    array([1.    , 0.6309, 0.    ])
    """
    k = check_k(k)
    r = _check_ranks(ranks)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def hit_rate_from_ranks(ranks: Any, k: int) -> np.ndarray:
    """Per-user hit rate@k of one relevant item at 0-based rank ``ranks[u]``: 1 when
    ``rank < k``, else 0.

    Parameters and shapes as in :func:`ndcg_from_ranks`.

    Examples
    --------
    >>> hit_rate_from_ranks([0, 9, 10], k=10)
    array([1., 1., 0.])
    """
    k = check_k(k)
    r = _check_ranks(ranks)
    return (r < k).astype(np.float64)
