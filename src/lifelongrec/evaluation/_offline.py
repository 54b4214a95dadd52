"""The offline protocol: fit on a split's training part, rank for its test users, score.

:func:`evaluate_model` drives any recommender from outside through its public contract
(``fit``, ``recommend``, ``score_items``, ``user_rows``, ``user_items_``, ``item_ids_``);
:func:`evaluate_recommendations` turns ranked lists into the aggregated report and is
shared with the streaming evaluator.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_int, check_k
from lifelongrec.data._schema import as_dataset
from lifelongrec.metrics import (
    RANKING_METRICS,
    auc,
    coverage_at_k,
    ranking_metrics,
)

__all__ = ["evaluate_model", "evaluate_recommendations"]

_SCORE_BATCH_CELLS = 16_000_000  # float32 score cells held at once (64 MB)


def _mean(values: np.ndarray) -> float:
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def evaluate_recommendations(
    recommended: Any, relevant: Any, k: int, n_catalogue: int
) -> dict[str, Any]:
    """Aggregate ranked lists against relevant sets into one flat report.

    Parameters
    ----------
    recommended
        One ranked id list per user (sequence of lists or a 2-d object array ``(U, K')``
        padded with ``None``), as in :func:`lifelongrec.evaluation.metrics.precision_at_k`.
    relevant
        ``U`` collections of relevant ids.
    k
        Cut-off, a positive int; it names the keys (``k=5`` gives ``"ndcg@5"``).
    n_catalogue
        Number of recommendable items, the denominator of coverage.

    Returns
    -------
    dict
        ``precision@k, recall@k, f1@k, hr@k, ndcg@k, mrr@k, map@k`` (means over the users
        with at least one relevant item; ``NaN`` when there are none), ``coverage@k``,
        ``n_users_evaluated`` (users in the means) and ``n_users_without_relevant`` (users
        left out of them). Plain Python numbers, so ``json.dumps`` takes it.

    Examples
    --------
    >>> r = evaluate_recommendations([["a", "b"], ["c", None]], [{"b"}, {"d"}], 2, 4)
    >>> r["hr@2"], r["coverage@2"], r["n_users_evaluated"]
    (0.5, 0.75, 2)
    """
    k = check_k(k)
    per_user = ranking_metrics(recommended, relevant, k)
    report: dict[str, Any] = {f"{name}@{k}": _mean(per_user[name]) for name in RANKING_METRICS}
    report[f"coverage@{k}"] = float(coverage_at_k(recommended, n_catalogue, k))
    n_eval = int((~np.isnan(per_user["precision"])).sum())
    report["n_users_evaluated"] = n_eval
    report["n_users_without_relevant"] = int(len(per_user["precision"]) - n_eval)
    return report


# ------------------------------------------------------------------ evaluate_model
def _split_parts(split: Any) -> tuple[Any, Any, str]:
    try:
        train, test = split.train_full, split.test
    except AttributeError:
        raise ParameterError(
            "split",
            type(split).__name__,
            "a lifelongrec.data.Split (an object with train_full and test datasets)",
        ) from None
    protocol = getattr(split, "protocol", None) or "custom"
    return train, as_dataset(test, name="test"), str(protocol)


def _check_model(model: Any, need_scores: bool) -> None:
    needed = ["fit", "recommend", "user_rows"] + (["score_items"] if need_scores else [])
    missing = [m for m in needed if not callable(getattr(model, m, None))]
    if missing:
        raise ParameterError(
            "model",
            type(model).__name__,
            "a lifelongrec Recommender (with " + ", ".join(needed) + f"; lacks {missing})",
        )


def _test_pairs(model: Any, test_events: pd.DataFrame) -> pd.DataFrame:
    """Distinct (user, item) test pairs with the model's row/column and a ``seen`` flag."""
    pairs = pd.DataFrame(
        {
            "user_id": test_events["user_id"].astype(str).to_numpy(dtype=object),
            "item_id": test_events["item_id"].astype(str).to_numpy(dtype=object),
        }
    ).drop_duplicates(ignore_index=True)
    rows = model.user_rows(pairs["user_id"].to_numpy())
    cols = pd.Index(np.asarray(model.item_ids_, dtype=object)).get_indexer(pairs["item_id"])
    known = (rows >= 0) & (cols >= 0)
    seen = np.zeros(len(pairs), dtype=bool)
    if known.any():
        X = model.user_items_
        seen[known] = np.asarray(X[rows[known], cols[known]]).ravel() > 0
    pairs["row"], pairs["col"], pairs["seen"] = rows, cols, seen
    return pairs


def _seen_cols(model: Any, row: int) -> np.ndarray:
    if row < 0:
        return np.empty(0, dtype=np.int64)
    X = model.user_items_
    return X.indices[X.indptr[row] : X.indptr[row + 1]].astype(np.int64)


def _sampled_lists(
    S: np.ndarray,
    user_rows: np.ndarray,
    rel_cols: list[np.ndarray],
    model: Any,
    n_neg: int,
    k: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, int]:
    """Top-``k`` ids among each user's known relevant items plus ``n_neg`` sampled negatives.

    Negatives are items neither seen in training nor relevant; ties in score are broken
    at random (seeded), so a constant scorer is not credited with putting hits first.
    Returns the ``(B, k)`` id array and how many users had fewer than ``n_neg`` negatives.
    """
    n_items = S.shape[1]
    cands: list[np.ndarray] = []
    short = 0
    for row, rel in zip(user_rows, rel_cols, strict=True):
        if len(rel) == 0:
            cands.append(rel)
            continue
        forbidden = np.union1d(_seen_cols(model, int(row)), rel)
        n_eligible = n_items - len(forbidden)
        if n_eligible <= n_neg:
            short += n_eligible < n_neg
            neg = np.setdiff1d(np.arange(n_items), forbidden, assume_unique=True)
        else:
            draw = rng.choice(n_items, size=min(n_items, n_neg + len(forbidden)), replace=False)
            neg = draw[~np.isin(draw, forbidden)][:n_neg]
        cands.append(np.concatenate([rel, neg]))
    width = max((len(c) for c in cands), default=0)
    C = np.zeros((len(cands), width), dtype=np.int64)
    valid = np.zeros((len(cands), width), dtype=bool)
    for i, c in enumerate(cands):
        C[i, : len(c)] = c
        valid[i, : len(c)] = True
    cand_scores = np.take_along_axis(S, C, axis=1).astype(np.float64)
    tie_break = rng.random(C.shape)
    order = np.lexsort((tie_break, -cand_scores, ~valid), axis=1)[:, :k]
    top = np.take_along_axis(C, order, axis=1)
    top_valid = np.take_along_axis(valid, order, axis=1)
    ids = np.full((len(cands), k), None, dtype=object)
    ids[:, : top.shape[1]] = np.where(
        top_valid, np.asarray(model.item_ids_, dtype=object)[top], None
    )
    return ids, short


def evaluate_model(
    model: Any,
    split: Any,
    k: int = 10,
    *,
    exclude_seen: bool = True,
    sampled_negatives: int | None = None,
    seed: int = 0,
    compute_auc: bool = False,
    batch_size: int = 1024,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit ``model`` on ``split.train_full`` and rank for every test user: the offline report.

    For each user with test events (in batches of ``batch_size``) the model's
    ``recommend(users, k=k, exclude_seen=exclude_seen)`` is compared with the user's test
    items (distinct; binary relevance) by full ranking over the model's catalogue. Test
    items the model never saw stay relevant and count as misses.

    Parameters
    ----------
    model
        An unfitted or fitted :class:`~lifelongrec.models.Recommender`; it is (re)fitted.
    split
        A :class:`~lifelongrec.data.Split` (``train_full``, ``test``, ``protocol``).
    k
        Cut-off, a positive int; it names the keys (``k=5`` gives ``"ndcg@5"``).
    exclude_seen
        Passed to ``recommend``. Because a user's training items then cannot be
        recommended, they are also removed from that user's relevant set; the number of
        (user, item) test pairs seen in training is reported either way as
        ``n_test_items_seen_in_train``.
    sampled_negatives
        Also rank each user's relevant items among this many sampled items (uniform over
        the catalogue, never seen by the user in training nor relevant; seeded) with
        ``model.score_items``; those figures get keys prefixed ``sampled{N}_`` (e.g.
        ``sampled100_ndcg@10``) so they cannot pass for full-ranking ones. Score ties
        are broken at random (seeded).
    seed
        Seed of the negative sampling and tie breaking.
    compute_auc
        Also report ``auc``: per-user ROC AUC of ``score_items`` over the whole catalogue
        (training items left out when ``exclude_seen``; tie-aware), averaged over the
        ``auc_n_users`` users having a relevant item the model knows and a negative.
    batch_size
        Users per ``recommend`` call.
    progress
        Show a progress bar over user batches (hidden when not on a terminal).

    Returns
    -------
    dict
        Flat and JSON-serialisable: ``precision@k recall@k f1@k hr@k ndcg@k mrr@k map@k``
        (means over users with a relevant item), ``coverage@k`` (distinct recommended ids
        / ``model.n_items``), ``fit_seconds``, ``recommend_seconds``,
        ``n_users_evaluated``, ``n_users_without_relevant``,
        ``n_test_items_seen_in_train``, ``protocol`` (``split.protocol`` or ``"custom"``),
        ``ranking`` (``"full"`` or ``"full+sampled-N"``); with ``compute_auc`` also
        ``auc`` and ``auc_n_users``; with ``sampled_negatives=N`` also
        ``sampledN_<metric>@k`` and ``sampledN_n_users_with_fewer_negatives``.

    Raises
    ------
    ParameterError
        A bad ``k``, ``sampled_negatives``, ``batch_size`` or ``seed``, a ``split``
        without ``train_full``/``test``, or a ``model`` lacking the contract's methods.
    """
    k = check_k(k)
    batch_size = check_int("batch_size", batch_size, 1)
    sampled_negatives = check_int("sampled_negatives", sampled_negatives, 1, none=True)
    check_int("seed", seed, None, none=True)
    need_scores = compute_auc or sampled_negatives is not None
    _check_model(model, need_scores)
    train, test, protocol = _split_parts(split)

    t0 = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - t0

    pairs = _test_pairs(model, test.events)
    n_seen = int(pairs["seen"].sum())
    users = pd.unique(pairs["user_id"].to_numpy())
    rel_pairs = pairs[~pairs["seen"]] if exclude_seen else pairs
    groups = rel_pairs.groupby("user_id", sort=False)
    rel_items = groups["item_id"].agg(list).to_dict()
    known = rel_pairs[rel_pairs["col"] >= 0].groupby("user_id", sort=False)["col"]
    rel_known_cols = {u: np.asarray(c, dtype=np.int64) for u, c in known.agg(list).items()}
    relevant = [rel_items.get(u, []) for u in users]
    user_rows = model.user_rows(users)
    n_items = int(len(model.item_ids_))

    rng = np.random.default_rng(seed)
    recommended: list[np.ndarray] = []
    sampled: list[np.ndarray] = []
    auc_values: list[np.ndarray] = []
    n_short = 0
    recommend_seconds = 0.0
    n_batches = -(-len(users) // batch_size)
    bar = tqdm(
        total=n_batches,
        desc="evaluating",
        unit="batch",
        disable=None if progress else True,
        leave=False,
    )
    try:
        for start in range(0, len(users), batch_size):
            batch = list(users[start : start + batch_size])
            t0 = time.perf_counter()
            ids, _ = model.recommend(batch, k=k, exclude_seen=exclude_seen)
            recommend_seconds += time.perf_counter() - t0
            recommended.append(np.asarray(ids, dtype=object).reshape(len(batch), -1))
            if need_scores:
                chunk = max(1, _SCORE_BATCH_CELLS // max(n_items, 1))
                for c0 in range(0, len(batch), chunk):
                    sub = batch[c0 : c0 + chunk]
                    rows = user_rows[start + c0 : start + c0 + len(sub)]
                    cols = [rel_known_cols.get(u, np.empty(0, np.int64)) for u in sub]
                    S = np.asarray(model.score_items(sub)).reshape(len(sub), n_items)
                    if compute_auc:
                        pos = np.zeros(S.shape, dtype=bool)
                        ex = np.zeros(S.shape, dtype=bool) if exclude_seen else None
                        for i, (row, c) in enumerate(zip(rows, cols, strict=True)):
                            pos[i, c] = True
                            if ex is not None:
                                ex[i, _seen_cols(model, int(row))] = True
                        auc_values.append(auc(S, pos, ex))
                    if sampled_negatives is not None:
                        ids_s, short = _sampled_lists(
                            S, rows, cols, model, sampled_negatives, k, rng
                        )
                        sampled.append(ids_s)
                        n_short += short
            bar.update(1)
    finally:
        bar.close()

    def _stack(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.empty((0, k), dtype=object)

    report = evaluate_recommendations(_stack(recommended), relevant, k, max(n_items, 1))
    if sampled_negatives is not None:
        prefix = f"sampled{sampled_negatives}_"
        s_report = evaluate_recommendations(_stack(sampled), relevant, k, max(n_items, 1))
        for name in RANKING_METRICS:
            report[f"{prefix}{name}@{k}"] = s_report[f"{name}@{k}"]
        report[f"{prefix}n_users_with_fewer_negatives"] = int(n_short)
    if compute_auc:
        values = np.concatenate(auc_values) if auc_values else np.empty(0)
        report["auc"] = _mean(values)
        report["auc_n_users"] = int((~np.isnan(values)).sum())
    report["n_test_items_seen_in_train"] = n_seen
    report["fit_seconds"] = float(fit_seconds)
    report["recommend_seconds"] = float(recommend_seconds)
    report["protocol"] = protocol
    report["ranking"] = "full" if sampled_negatives is None else f"full+sampled-{sampled_negatives}"
    return report
