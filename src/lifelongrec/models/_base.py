"""The one contract every recommender follows, and the bookkeeping they share.

A subclass stores hyperparameters in ``__init__`` (nothing else) and implements

* ``_fit(X, data)``: learn from ``X``, the binary user x item ``csr_matrix`` (float32)
  built from ``data.events`` with the rows and columns of ``self.user_ids_`` and
  ``self.item_ids_``;
* ``_partial_fit(delta, data, n_users_before, n_items_before)``: update after
  ``self.user_items_`` has grown to hold new rows/columns and ``delta`` (same shape, the
  new events only); the base class has already extended the vocabularies;
* ``_score(rows)``: dense scores ``(B, n_items)`` float32 for known user rows;
* ``_score_history(hist)``: the same for users given by their history instead of their
  stored row (a :class:`~lifelongrec.models._history.HistoryBatch`; see
  :meth:`Recommender.score_histories`). The default scores ``hist.matrix()`` with
  ``_score``, which is right when ``_score`` reads a user only through
  ``user_items_[rows]``; models with per-user state override it;
* optionally ``_item_vectors()`` (for cosine ``similar_items``) or ``_similar_scores``;
* optionally ``_add_items(data, n_items_before, refreshed)`` for :meth:`Recommender.add_items`
  (the default runs ``_partial_fit`` with no events, which grows every item table);
* ``_state()`` / ``_set_state(arrays, extra)`` for save/load;
* optionally a dynamic vocabulary: ``_init_vocab(events)`` (rows of ``fit``),
  ``_grow_vocab(events)`` (rows of ``partial_fit``) and ``_admit_items(ids)`` (rows of
  ``add_items``) decide which ids get rows and where; the defaults give every unseen id a
  new row at the end. A model that admits selectively (``sequential``'s admission
  threshold) leaves some events without a row: ``user_items_`` and ``item_counts_`` then
  hold only the events with a row, and the model accounts for the others itself. Such a
  model may also free rows (``expire``); the default :meth:`Recommender.expire` raises.

External ids (strings) cross every public method; row numbers never leave the model.
One id or a batch is accepted everywhere: a scalar id gives 1-d arrays ``(k,)`` back, a
list gives 2-d ``(n, k)``. When fewer than ``k`` items are eligible a row is padded with
``None`` ids and ``-inf`` scores.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec._errors import DataError, NotFittedError, ParameterError, UnknownIdError
from lifelongrec.data._schema import EVENT_COLUMNS, ITEM_COLUMNS, Dataset, as_dataset, frame_of
from lifelongrec.models._history import HistoryBatch, history_batch

__all__ = ["Recommender", "topk_rows"]

_FORMAT_VERSION = 1
_SCORE_BATCH_CELLS = 16_000_000  # float32 cells scored at once (64 MB)


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the ``k`` largest entries of each row, best first.

    Ties are broken by the lower column index everywhere, including which of several
    items tied at the k-th score make the cut, so results repeat on any numpy version and
    a model that gives many items one score cannot profit from a lucky order.
    """
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff <= 0:
        return np.empty((n_rows, 0), dtype=np.int64), np.empty((n_rows, 0), dtype=scores.dtype)
    if k_eff < n_cols:
        idx = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        part_vals = np.take_along_axis(scores, idx, axis=1)
        kth = part_vals.min(axis=1, keepdims=True)
        # The partition is already the answer unless more items tie at the k-th score
        # than it kept; only those rows need the lowest-index choice among the tied.
        short = (scores == kth).sum(axis=1) > (part_vals == kth).sum(axis=1)
        if short.any():
            sub, sub_kth = scores[short], kth[short]
            above = sub > sub_kth
            at = sub == sub_kth
            need = k_eff - above.sum(axis=1, keepdims=True)
            chosen = above | (at & (np.cumsum(at, axis=1) <= need))
            idx[short] = np.nonzero(chosen)[1].reshape(-1, k_eff)
    else:
        idx = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    vals = np.take_along_axis(scores, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    return idx, vals


def _is_single(ids: Any) -> bool:
    return isinstance(ids, (str, bytes, int, np.integer)) or np.ndim(ids) == 0


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError("k", k, "a positive integer")
    return int(k)


def _mask_seen(S: np.ndarray, seen: sp.csr_matrix) -> None:
    """Set ``S[i, j] = -inf`` for every stored entry ``(i, j)`` of ``seen`` (in place)."""
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    S[rows, seen.indices] = -np.inf


def _resize_csr(X: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    X = X.tocsr(copy=True)
    X.resize(shape)
    return X


def map_ids(ids: pd.Series, index: dict[str, int]) -> np.ndarray:
    """``ids.astype(str).map(index).to_numpy()`` at a cost that follows the batch, not
    the index: pandas builds a lookup table of the whole dict on every ``map``, which for
    a few events against a large catalogue (the online path) costs far more than the
    events. int64 rows when every id has one; float64 with NaN for those without."""
    if len(ids) * 8 >= len(index):
        return ids.astype(str).map(index).to_numpy()
    out = np.fromiter((index.get(str(v), -1) for v in ids.to_numpy()), np.int64, len(ids))
    if (out < 0).any():
        return np.where(out < 0, np.nan, out.astype(np.float64))
    return out


class Recommender:
    """Base class: id vocabularies, seen-item masks, top-k, cold fallback, save/load."""

    #: Short name used by the CLI and ``get_model``.
    name: ClassVar[str] = "base"

    # ------------------------------------------------------------------ params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _validate_params(self) -> None:
        """Check hyperparameters; raise :class:`ParameterError`. Called by ``fit``."""

    # -------------------------------------------------------------- vocabulary
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "user_items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(interactions) first"
            )

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return len(self.user_ids_)

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.item_ids_)

    def _set_vocab(self, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
        self.user_ids_ = np.asarray(user_ids, dtype=object)
        self.item_ids_ = np.asarray(item_ids, dtype=object)
        self._user_index = {u: i for i, u in enumerate(self.user_ids_)}
        self._item_index = {t: i for i, t in enumerate(self.item_ids_)}

    def _init_vocab(self, events: pd.DataFrame) -> None:
        """Rows for ``fit``: every distinct user and item, in order of first appearance."""
        users = pd.unique(events["user_id"].astype(str).to_numpy())
        items = pd.unique(events["item_id"].astype(str).to_numpy())
        self._set_vocab(users, items)

    def _grow_vocab(self, events: pd.DataFrame) -> None:
        """Rows for ``partial_fit``: unseen users and items get new rows at the end."""
        u = pd.unique(events["user_id"].astype(str).to_numpy())
        t = pd.unique(events["item_id"].astype(str).to_numpy())
        new_u = [x for x in u if x not in self._user_index]
        new_t = [x for x in t if x not in self._item_index]
        if new_u or new_t:
            self._set_vocab(
                np.concatenate([self.user_ids_, np.asarray(new_u, dtype=object)]),
                np.concatenate([self.item_ids_, np.asarray(new_t, dtype=object)]),
            )

    def _admit_items(self, ids: np.ndarray) -> None:
        """Rows for ``add_items``: the (unknown) ``ids`` get new rows at the end."""
        self._set_vocab(self.user_ids_, np.concatenate([self.item_ids_, ids]))

    def _event_cells(self, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(user rows, item columns)`` of the events whose user and item have a row."""
        rows = map_ids(events["user_id"], self._user_index)
        cols = map_ids(events["item_id"], self._item_index)
        if rows.dtype.kind != "i" or cols.dtype.kind != "i":
            # NaN where an id has no row (only with a selective vocabulary), or empty
            ok = pd.notna(rows) & pd.notna(cols)
            rows, cols = rows[ok], cols[ok]
        return rows.astype(np.int64), cols.astype(np.int64)

    def _item_event_counts(self, events: pd.DataFrame) -> np.ndarray:
        """Events per item column (float64, ``(n_items,)``) of the events with a row."""
        _, cols = self._event_cells(events)
        return np.bincount(cols, minlength=len(self.item_ids_)).astype(np.float64)

    def _matrix(self, events: pd.DataFrame) -> sp.csr_matrix:
        """Binary user x item matrix of ``events`` on the current vocabularies (events
        whose user or item has no row are not in it)."""
        rows, cols = self._event_cells(events)
        X = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(self.user_ids_), len(self.item_ids_)),
        )
        X.sum_duplicates()
        X.data[:] = 1.0
        return X

    def user_rows(self, users: Any) -> np.ndarray:
        """Internal rows of ``users`` (``-1`` for unknown). For evaluation code and subclasses."""
        self._check_fitted()
        ids = [users] if _is_single(users) else list(users)
        return np.fromiter((self._user_index.get(str(u), -1) for u in ids), np.int64, len(ids))

    def _item_rows(self, items: Any, *, what: str = "item") -> np.ndarray:
        ids = [items] if _is_single(items) else list(items)
        rows = np.fromiter((self._item_index.get(str(i), -1) for i in ids), np.int64, len(ids))
        if (rows < 0).any():
            unknown = [ids[j] for j in np.flatnonzero(rows < 0)]
            raise UnknownIdError(
                what, unknown, hint=f"{type(self).__name__} knows {len(self.item_ids_)} items"
            )
        return rows

    # --------------------------------------------------------------- training
    def fit(self, interactions: Dataset | pd.DataFrame) -> Recommender:
        """Learn from ``interactions`` (a :class:`~lifelongrec.data.Dataset` or events frame).

        Forgets anything learned before. Returns ``self``.
        """
        self._validate_params()
        data = as_dataset(interactions)
        ev = data.events
        self._init_vocab(ev)
        X = self._matrix(ev)
        self.user_items_ = X
        self.item_counts_ = self._item_event_counts(ev)
        self._fit(X, data)
        return self

    def partial_fit(self, new_interactions: Dataset | pd.DataFrame) -> Recommender:
        """Learn from new events without starting over; unseen users and items get rows.

        On an unfitted model this is ``fit``. Returns ``self``.
        """
        if not self.is_fitted:
            return self.fit(new_interactions)
        data = as_dataset(new_interactions)
        ev = data.events
        n_users_before, n_items_before = len(self.user_ids_), len(self.item_ids_)
        self._grow_vocab(ev)
        shape = (len(self.user_ids_), len(self.item_ids_))
        delta = self._matrix(ev)
        X = _resize_csr(self.user_items_, shape) + delta
        X.data[:] = 1.0
        self.user_items_ = X.tocsr()
        counts = np.zeros(shape[1])
        counts[:n_items_before] = self.item_counts_
        counts += self._item_event_counts(ev)
        self.item_counts_ = counts
        self._partial_fit(delta, data, n_users_before, n_items_before)
        return self

    def add_items(self, items: pd.DataFrame | Dataset) -> Recommender:
        """Admit catalogue items that have no events yet; refresh the content of known ones.

        ``items`` is a catalogue frame (columns ``item_id, title, categories, attributes``)
        or a :class:`~lifelongrec.data.Dataset` whose ``items`` are used. Unknown ids get
        rows at the end of ``item_ids_`` at once, with no interactions: content-aware
        models (``content``, ``sequential``, a ``hybrid`` holding one) score them from
        their content, so a new item is recommendable before anyone has touched it;
        collaborative models rank it below every item with evidence. Rows of ids the model
        already knows replace that item's content where the model uses content. Returns
        ``self``.

        Raises
        ------
        NotFittedError
            The model has not been fitted (there is nothing to add to).
        DataError
            ``items`` is not a catalogue frame, lacks columns, has a missing ``item_id``
            or repeats one (each row must name a distinct item).
        """
        self._check_fitted()
        frame = _catalogue_frame(items)
        ids = frame["item_id"].astype(str).to_numpy(dtype=object)
        known = np.fromiter((i in self._item_index for i in ids), bool, len(ids))
        n_items_before = len(self.item_ids_)
        if (~known).any():
            self._admit_items(ids[~known])
            shape = (len(self.user_ids_), len(self.item_ids_))
            self.user_items_ = _resize_csr(self.user_items_, shape).tocsr()
            counts = np.zeros(shape[1])
            counts[:n_items_before] = self.item_counts_
            self.item_counts_ = counts
        data = Dataset(events=pd.DataFrame({c: [] for c in EVENT_COLUMNS}), items=frame)
        self._add_items(data, n_items_before, ids[known])
        return self

    def _add_items(self, data: Dataset, n_items_before: int, refreshed: np.ndarray) -> None:
        """Grow item tables for ``item_ids_[n_items_before:]`` (``data.items`` holds their
        content) and refresh the content of the known ids in ``refreshed``; models without
        content ignore the latter."""
        shape = (len(self.user_ids_), len(self.item_ids_))
        delta = sp.csr_matrix(shape, dtype=np.float32)
        self._partial_fit(delta, data, len(self.user_ids_), n_items_before)

    def expire(self, now: Any = None) -> dict[str, Any]:
        """Free the rows of users and items unseen for longer than the model's
        time-to-live. Only models with a dynamic vocabulary support it (``sequential``:
        see its ``user_ttl`` / ``item_ttl``); the others keep every id for ever.

        Raises
        ------
        NotImplementedError
            This model has no dynamic vocabulary.
        """
        raise NotImplementedError(
            f"{type(self).__name__} keeps every id it has seen: it has no dynamic "
            "vocabulary, so ids cannot expire (SequentialRecommender supports expiry "
            "through user_ttl / item_ttl)"
        )

    def forget_users(self, users: Any) -> list[str]:
        """Erase users' stored state (the right to be forgotten). Only models that keep
        per-user state in a dynamic vocabulary support it (``sequential``); refit the
        others without the users' events.

        Raises
        ------
        NotImplementedError
            This model has no dynamic vocabulary.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot erase a user in place: it has no dynamic "
            "vocabulary; refit it without the user's events (SequentialRecommender "
            "supports forget_users)"
        )

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        raise NotImplementedError

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- scoring
    def _score(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _cold_scores(self) -> np.ndarray:
        """Scores for a user the model has never seen: item popularity."""
        return self.item_counts_.astype(np.float32)

    def _scores_for(self, rows: np.ndarray) -> np.ndarray:
        known = rows >= 0
        S = np.empty((len(rows), len(self.item_ids_)), dtype=np.float32)
        if known.any():
            S[known] = self._score(rows[known])
        if (~known).any():
            S[~known] = self._cold_scores()
        return S

    def score_items(self, users: Any, items: Any = None) -> np.ndarray:
        """Raw scores, ``(n_users, n_items)``; columns follow ``items`` or ``self.item_ids_``.

        Unknown users get the cold-start (popularity) scores. Seen items are not masked.
        """
        self._check_fitted()
        return self._shaped(self._scores_for(self.user_rows(users)), users, items)

    def _shaped(self, S: np.ndarray, users: Any, items: Any) -> np.ndarray:
        """Score rows with the columns of ``items`` (all when None); 1-d for one user."""
        if items is not None:
            S = S[:, self._item_rows(items)]
        return S[0] if _is_single(users) else S

    def recommend(
        self,
        users: Any,
        k: int = 10,
        exclude_seen: bool = True,
        items: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for one user id or a batch, best first.

        Parameters
        ----------
        users
            One external user id or a sequence of them. Unknown users get popular items.
        k
            How many items per user (positive int).
        exclude_seen
            Leave out items the user interacted with in the training data.
        items
            Optional candidate item ids; only these may be returned. Unknown ids raise
            :class:`UnknownIdError`.

        Returns
        -------
        ids, scores
            ``(k,)`` arrays for one user, ``(n, k)`` for a batch; ids are external ids
            (object dtype), padded with ``None`` (score ``-inf``) when fewer are eligible.
        """
        self._check_fitted()
        k = _check_k(k)
        rows = self.user_rows(users)
        X = self.user_items_

        def batch(index: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix | None]:
            r = rows[index]
            if not exclude_seen:
                return self._scores_for(r), None
            known = np.flatnonzero(r >= 0)  # unknown users have seen nothing
            pick = sp.csr_matrix(
                (np.ones(len(known), np.float32), (known, r[known])), shape=(len(r), X.shape[0])
            )
            return self._scores_for(r), (pick @ X).tocsr()

        ids, scores = self._ranked(len(rows), batch, k, items)
        return (ids[0], scores[0]) if _is_single(users) else (ids, scores)

    def _ranked(
        self,
        n: int,
        batch: Any,
        k: int,
        items: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ids and scores ``(n, k)`` of ``n`` score rows made in batches.

        ``batch(index)`` returns the scores ``(len(index), n_items)`` of the rows at
        ``index`` and a csr of the items to leave out per row (or ``None``).
        """
        cand = None if items is None else np.unique(self._item_rows(items))
        n_items = len(self.item_ids_)
        out_ids = np.full((n, k), None, dtype=object)
        out_scores = np.full((n, k), -np.inf, dtype=np.float32)
        size = max(1, _SCORE_BATCH_CELLS // max(n_items, 1))
        for start in range(0, n, size):
            index = np.arange(start, min(n, start + size))
            S, seen = batch(index)
            if cand is not None:
                masked = np.full_like(S, -np.inf)
                masked[:, cand] = S[:, cand]
                S = masked
            if seen is not None:
                _mask_seen(S, seen)
            idx, vals = topk_rows(S, k)
            valid = np.isfinite(vals)
            ids = self.item_ids_[idx]
            ids[~valid] = None
            vals = np.where(valid, vals, -np.inf)
            out_ids[index, : idx.shape[1]] = ids
            out_scores[index, : idx.shape[1]] = vals
        return out_ids, out_scores

    # ------------------------------------------------------ given histories
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
        k = _check_k(k)
        hist = self._histories(users, history, before)

        def batch(index: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix | None]:
            sub = hist.subset(index)
            return self._history_scores(sub), (sub.matrix() if exclude_seen else None)

        ids, scores = self._ranked(len(hist), batch, k, items)
        return (ids[0], scores[0]) if _is_single(users) else (ids, scores)

    # ------------------------------------------------------------ similarity
    def _item_vectors(self) -> np.ndarray:
        """Item embedding ``(n_items, D)`` for cosine ``similar_items``; override."""
        # Default: item-item co-occurrence through the interaction matrix columns.
        return self.user_items_.T.tocsr()

    def _similar_scores(self, rows: np.ndarray) -> np.ndarray:
        V = self._item_vectors()
        if sp.issparse(V):
            norms = np.sqrt(np.asarray(V.multiply(V).sum(axis=1)).ravel())
            norms[norms == 0] = 1.0
            Vn = sp.diags(1.0 / norms) @ V
            S = (Vn[rows] @ Vn.T).toarray()
        else:
            V = np.asarray(V, dtype=np.float32)
            norms = np.linalg.norm(V, axis=1)
            norms[norms == 0] = 1.0
            Vn = V / norms[:, None]
            S = Vn[rows] @ Vn.T
        return np.asarray(S, dtype=np.float32)

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each given item (the item itself left out).

        Unknown item ids raise :class:`UnknownIdError`. Shapes as in :meth:`recommend`.
        """
        self._check_fitted()
        k = _check_k(k)
        rows = self._item_rows(items)
        S = self._similar_scores(rows).astype(np.float32, copy=True)
        S[np.arange(len(rows)), rows] = -np.inf
        idx, vals = topk_rows(S, k)
        out_ids = np.full((len(rows), int(k)), None, dtype=object)
        out_scores = np.full((len(rows), int(k)), -np.inf, dtype=np.float32)
        valid = np.isfinite(vals)
        ids = self.item_ids_[idx]
        ids[~valid] = None
        out_ids[:, : idx.shape[1]] = ids
        out_scores[:, : idx.shape[1]] = np.where(valid, vals, -np.inf)
        if _is_single(items):
            return out_ids[0], out_scores[0]
        return out_ids, out_scores

    # ------------------------------------------------------------- save/load
    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(arrays, extra)``: learned arrays (numpy or scipy sparse) and JSON-able extras."""
        return {}, {}

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        pass

    def _save_children(self, path: Path) -> None:
        """Hook for composite models (hybrid) to save sub-models under ``path``."""

    def _load_children(self, path: Path) -> None:
        pass

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to the folder ``path`` (created; replaced atomically if it exists).

        The format is JSON plus ``.npz`` (no pickle), so loading runs no stored code.
        """
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        arrays, extra = self._state()
        flat: dict[str, np.ndarray] = {
            "_user_ids": np.asarray(self.user_ids_, dtype=str),
            "_item_ids": np.asarray(self.item_ids_, dtype=str),
            "_item_counts": self.item_counts_,
        }
        sparse_keys = ["_user_items"]
        arrays = {"_user_items": self.user_items_, **arrays}
        for key, value in arrays.items():
            if sp.issparse(value):
                value = value.tocsr()
                flat[f"{key}.data"] = value.data
                flat[f"{key}.indices"] = value.indices
                flat[f"{key}.indptr"] = value.indptr
                flat[f"{key}.shape"] = np.asarray(value.shape, dtype=np.int64)
                if key not in sparse_keys:
                    sparse_keys.append(key)
            else:
                flat[key] = np.asarray(value)
        meta = {
            "format_version": _FORMAT_VERSION,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "name": self.name,
            "params": self.get_params(),
            "sparse": sparse_keys,
            "extra": extra,
        }
        with open(tmp / "arrays.npz", "wb") as fh:
            np.savez(fh, **flat)
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=_json_default))
        self._save_children(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                _rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _rmtree(old)
        else:
            os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recommender:
        """Read a model written by :meth:`save`. ``Recommender.load`` loads any model class."""
        path = Path(path)
        meta_file = path / "model.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path}: not a saved lifelongrec model (no model.json)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path}: model format version {meta.get('format_version')!r} is not "
                f"supported; expected {_FORMAT_VERSION}"
            )
        module, _, qual = meta["class"].rpartition(".")
        klass = getattr(importlib.import_module(module), qual)
        if not issubclass(klass, cls):
            raise TypeError(f"{path} holds a {klass.__name__}, not a {cls.__name__}")
        model = klass(**_restore_tuples(klass, meta["params"]))
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files}
        arrays: dict[str, Any] = {}
        for key in meta["sparse"]:
            arrays[key] = sp.csr_matrix(
                (raw.pop(f"{key}.data"), raw.pop(f"{key}.indices"), raw.pop(f"{key}.indptr")),
                shape=tuple(raw.pop(f"{key}.shape")),
            )
        arrays.update(raw)
        model._set_vocab(
            arrays.pop("_user_ids").astype(object), arrays.pop("_item_ids").astype(object)
        )
        model.user_items_ = arrays.pop("_user_items")
        model.item_counts_ = arrays.pop("_item_counts")
        model._load_children(path)
        model._set_state(arrays, meta["extra"])
        return model


def _catalogue_frame(items: Any) -> pd.DataFrame:
    """Validate an ``add_items`` argument and return its catalogue frame."""
    frame = frame_of(
        items,
        ITEM_COLUMNS,
        what="an item catalogue",
        frame_name="items frame",
        accepts=f"a pandas DataFrame with columns {list(ITEM_COLUMNS)} "
        "or a lifelongrec.data.Dataset with items",
        part="items",
    )
    null = frame["item_id"].isna().to_numpy()
    if null.any():
        raise DataError(
            "item_id is missing in the catalogue",
            column="item_id",
            value=f"row {int(np.flatnonzero(null)[0])} (0-based position in the frame)",
            expected="an id in every row",
        )
    ids = frame["item_id"].astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise DataError(
            "the catalogue names an item more than once",
            column="item_id",
            value=sorted(set(ids[dup]))[:10],
            expected="one row per item (merge or drop the repeated rows first)",
        )
    return frame


def _restore_tuples(klass: type, params: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists: give back a tuple where ``__init__``'s default is one."""
    sig = inspect.signature(klass.__init__)
    out = dict(params)
    for name, value in params.items():
        p = sig.parameters.get(name)
        if p is not None and isinstance(p.default, tuple) and isinstance(value, list):
            out[name] = tuple(value)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (tuple, np.ndarray)):
        return list(o)
    raise TypeError(f"cannot store {type(o).__name__} in model.json")


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
