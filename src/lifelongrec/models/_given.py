"""Scoring users given by their history instead of their stored row.

:class:`GivenHistoriesMixin` is the part of :class:`~lifelongrec.models.Recommender`
that holds :meth:`~GivenHistoriesMixin.score_histories` and
:meth:`~GivenHistoriesMixin.recommend_histories`, and the hook ``_score_history`` that
models with per-user state override. The queries and their events become a
:class:`~lifelongrec.models._history.HistoryBatch` (see
:mod:`lifelongrec.models._history`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec._params import check_k
from lifelongrec.data._schema import Dataset
from lifelongrec.models._history import HistoryBatch, history_batch
from lifelongrec.models._sparse import _SCORE_BATCH_CELLS, _mask_seen
from lifelongrec.models._vocabulary import _is_single

__all__ = ["GivenHistoriesMixin"]


class GivenHistoriesMixin:
    """Scoring given histories for :class:`~lifelongrec.models.Recommender` (a part of
    that class, not usable alone)."""

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        """Scores ``(len(hist), n_items)`` float32 of queries whose history is not empty.

        Default: ``_score`` on a shallow copy of the model whose ``user_items_`` holds
        exactly the history rows ``hist.matrix()``. That is right for a model whose
        ``_score(rows)`` reads a user only through ``user_items_[rows]`` (and item-side
        state); models with per-user state (factors, sequences, neighbours among the
        stored users) override it.
        """
        view = copy.copy(self)
        view.user_items_ = hist.matrix()
        return view._score(np.arange(len(hist)))

    def _history_scores(self, hist: HistoryBatch) -> np.ndarray:
        """Scores of every query: cold-start scores for an empty history, else
        ``_score_history`` in batches of bounded size."""
        n_items = len(self.item_ids_)
        S = np.empty((len(hist), n_items), dtype=np.float32)
        has = hist.lengths > 0
        if (~has).any():
            S[~has] = self._cold_scores()
        todo = np.flatnonzero(has)
        size = max(1, _SCORE_BATCH_CELLS // max(n_items, 1))
        for start in range(0, len(todo), size):
            index = todo[start : start + size]
            S[index] = self._score_history(hist.subset(index))
        return S

    def _histories(self, users: Any, history: Any, before: Any) -> HistoryBatch:
        self._check_fitted()
        ids = [str(u) for u in ([users] if _is_single(users) else list(users))]
        return history_batch(self, ids, history, before)

    def score_histories(
        self,
        users: Any,
        history: Dataset | pd.DataFrame,
        before: Any = None,
        items: Any = None,
        exclude_seen: bool = False,
    ) -> np.ndarray:
        """Raw scores for users *as if their history were exactly the given events*.

        The model's learned parameters are used, but not what it stored about these
        users: each query is scored from its events in ``history`` alone (for
        prequential evaluation, where a user must be ranked from what happened before a
        moment, and for serving a session the model has not learned). Each model does
        this its own way: item-item models (``itemknn``, ``ease``, ``content``) score
        the history row, ``userknn`` finds neighbours for it among the stored users
        (the user's own stored row left out), ``als`` folds it in with implicit's
        ``recalculate_user``, ``bpr`` by a least-squares fold-in on its item factors,
        ``sequential`` encodes the event sequence, ``hybrid`` asks its components,
        ``popularity`` ignores it.

        Parameters
        ----------
        users
            One external user id or a sequence of ``n`` (the queries; an id may repeat,
            e.g. one user at several moments). Unknown ids are fine.
        history
            Events (a DataFrame with ``user_id, item_id, timestamp``, optionally
            ``event_type`` and ``value``; or a :class:`~lifelongrec.data.Dataset`). A
            query sees the events of its user id, in time order (stable). Events on items
            the model does not know are left out (it cannot use them).
        before
            ``None`` (every event of the user), one timestamp for all queries, or one per
            query: a query sees only its user's events with ``timestamp < before``.
        items
            Optional item ids selecting (and ordering) the returned columns.
        exclude_seen
            Set the scores of the items in each query's history to ``-inf``.

        Returns
        -------
        ndarray of float32
            ``(n_items,)`` for one user, ``(n, n_items)`` for a batch; columns follow
            ``items`` or ``self.item_ids_``. A query with no visible event on a known item
            gets the cold-start scores (those of an unknown user in :meth:`score_items`).

        Raises
        ------
        DataError
            ``history`` is not an events frame, lacks a required column, or has missing
            ids or non-integer timestamps.
        ParameterError
            ``before`` is neither ``None``, one number, nor one number per query.
        UnknownIdError
            ``items`` names an item the model does not know.

        Examples
        --------
        >>> from lifelongrec.data import make_events
        >>> from lifelongrec.models import ItemKNN
        >>> ev = make_events(["a", "a", "b", "b"], ["x", "y", "x", "y"], [1, 2, 3, 4])
        >>> m = ItemKNN().fit(ev)
        >>> new = make_events(["z"], ["x"], [9])
        >>> m.score_histories("z", new, items=["y"]).round(3).tolist()
        [1.0]
        """
        hist = self._histories(users, history, before)
        S = self._history_scores(hist)
        if exclude_seen:
            _mask_seen(S, hist.matrix())
        return self._shaped(S, users, items)

    def recommend_histories(
        self,
        users: Any,
        history: Dataset | pd.DataFrame,
        before: Any = None,
        k: int = 10,
        exclude_seen: bool = True,
        items: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for users given by their history (see :meth:`score_histories`).

        ``exclude_seen`` leaves out the items in each query's visible history (not what
        the model stored about the user). ``k`` and ``items`` and the returned shapes are
        as in :meth:`recommend`.
        """
        self._check_fitted()
        k = check_k(k)
        hist = self._histories(users, history, before)

        def batch(index: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix | None]:
            sub = hist.subset(index)
            return self._history_scores(sub), (sub.matrix() if exclude_seen else None)

        ids, scores = self._ranked(len(hist), batch, k, items)
        return (ids[0], scores[0]) if _is_single(users) else (ids, scores)
