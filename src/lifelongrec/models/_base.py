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
* optionally ``_observe(events, rows, columns, items, n_users_before, n_items_before)``
  for :meth:`Recommender.observe` (state only: grow per-user/per-item tables for new
  rows, keep caches in step, mark users whose per-user parameters are now stale; the
  default does nothing, which is right when ``_score`` reads a user only through
  ``user_items_``);
* optionally ``_forget_rows(rows, ids)`` for :meth:`Recommender.forget_users` (remove
  the per-user parameters of the erased rows; the default does nothing);
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

The class is assembled from parts, each in its own module: id vocabularies and
:class:`FreeRow` (:mod:`~lifelongrec.models._vocabulary`), ``observe`` / ``forget_users``
(:mod:`~lifelongrec.models._observe`), scoring given histories
(:mod:`~lifelongrec.models._given`), save/load (:mod:`~lifelongrec.models._persist`), on
the top-k and sparse helpers of :mod:`~lifelongrec.models._sparse` and the event and
catalogue checks of :mod:`~lifelongrec.models._events`. Every name this module had is
still importable from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec._errors import NotFittedError, ParameterError
from lifelongrec._params import Params, check_k, is_int
from lifelongrec.data._schema import (
    EVENT_COLUMNS,
    Dataset,
    as_dataset,
)
from lifelongrec.models._events import _catalogue_frame
from lifelongrec.models._events import event_columns as event_columns
from lifelongrec.models._given import GivenHistoriesMixin
from lifelongrec.models._history import HistoryBatch as HistoryBatch
from lifelongrec.models._history import _ranges as _ranges
from lifelongrec.models._history import history_batch as history_batch
from lifelongrec.models._observe import ObserveForgetMixin
from lifelongrec.models._persist import _FORMAT_VERSION as _FORMAT_VERSION
from lifelongrec.models._persist import _json_default as _json_default
from lifelongrec.models._persist import _restore_tuples as _restore_tuples
from lifelongrec.models._persist import _rmtree as _rmtree
from lifelongrec.models._persist import load_model, save_model
from lifelongrec.models._sparse import (
    _SCORE_BATCH_CELLS,
    NO_CELLS,
    PendingCells,
    _mask_seen,
    _resize_csr,
    topk_rows,
)
from lifelongrec.models._sparse import clear_rows as clear_rows
from lifelongrec.models._sparse import grow_csr as grow_csr
from lifelongrec.models._sparse import insert_cells as insert_cells
from lifelongrec.models._sparse import map_ids as map_ids
from lifelongrec.models._vocabulary import FreeRow, VocabularyMixin, _is_single

__all__ = ["FreeRow", "Recommender", "insert_cells", "topk_rows"]


class Recommender(VocabularyMixin, ObserveForgetMixin, GivenHistoriesMixin, Params):
    """Base class: id vocabularies, seen-item masks, top-k, cold fallback, save/load."""

    #: Short name used by the CLI and ``get_model``.
    name: ClassVar[str] = "base"

    # ------------------------------------------------------------------ params
    # get_params, repr, clone and check_params come from Params: a model declares its
    # settings' constraints in ``_constraints`` and cross-setting rules in
    # ``_check_params``; ``fit`` checks them before any work.

    # -------------------------------------------------------------- vocabulary
    @property
    def is_fitted(self) -> bool:
        return "_seen" in self.__dict__

    # ------------------------------------------------------------ seen items
    @property
    def user_items_(self) -> sp.csr_matrix:
        """Users x items, 1 where the user has an event on the item (``csr_matrix``).

        The cells :meth:`observe` added since the matrix was last rebuilt are kept apart
        (:class:`~lifelongrec.models._sparse.PendingCells`; a few events then do not copy
        the whole matrix) and merged in by this read; :meth:`seen_items` reads a user's
        row without merging. Setting it replaces the matrix and drops what was pending.
        """
        d = self.__dict__
        if "_seen" not in d:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute 'user_items_'")
        pending = self._pending_cells()
        if pending.n:
            d["_seen"] = pending.merged(d["_seen"])
            d["_seen_pending"] = NO_CELLS
        return d["_seen"]

    @user_items_.setter
    def user_items_(self, X: sp.csr_matrix) -> None:
        self.__dict__["_seen"] = X
        self.__dict__["_seen_pending"] = NO_CELLS

    def _pending_cells(self) -> PendingCells:
        """The seen cells :meth:`observe` added that ``user_items_`` does not hold yet."""
        return self.__dict__.get("_seen_pending", NO_CELLS)

    def _seen_rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """``user_items_[rows]`` (``-1``: an empty row, a user without one has seen
        nothing), the pending cells included, without merging them."""
        X = self.__dict__["_seen"]
        known = np.flatnonzero(rows >= 0)
        pick = sp.csr_matrix(
            (np.ones(len(known), np.float32), (known, rows[known])), shape=(len(rows), X.shape[0])
        )
        out = (pick @ X).tocsr()
        at, cols = self._pending_cells().of_rows(rows[known])
        if len(at):
            extra = sp.csr_matrix((np.ones(len(at), out.dtype), (known[at], cols)), shape=out.shape)
            out = (out + extra).tocsr()
            out.data[:] = 1
        return out

    def seen_items(self, row: int) -> np.ndarray:
        """Sorted item columns of the user in ``row`` (their row of ``user_items_``,
        e.g. from :meth:`user_rows`), without merging the cells :meth:`observe` left
        pending.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        ParameterError
            ``row`` is not an integer row of ``user_items_``.
        """
        self._check_fitted()
        X = self.__dict__["_seen"]
        n = X.shape[0]
        if not is_int(row) or not 0 <= int(row) < n:
            raise ParameterError("row", row, f"an integer user row in [0, {n})")
        row = int(row)
        _, more = self._pending_cells().of_rows(np.array([row]))
        return np.union1d(X.indices[X.indptr[row] : X.indptr[row + 1]], more).astype(np.int64)

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

    def known_users(self) -> list[str]:
        """The ids of the users that hold a row, in row order (``user_ids_`` without the
        placeholders of free rows, e.g. of erased users)."""
        self._check_fitted()
        return [u for u in self.user_ids_ if not isinstance(u, FreeRow)]

    def known_items(self) -> list[str]:
        """The ids of the items that hold a row, in row order (``item_ids_`` without the
        placeholders of free rows, e.g. of expired items)."""
        self._check_fitted()
        return [i for i in self.item_ids_ if not isinstance(i, FreeRow)]

    @property
    def user_index_(self) -> MappingProxyType[str, int]:
        """Read-only view of ``user id -> row`` (the row of the user in ``user_ids_``
        and in the rows of ``user_items_``); the ids that hold a row. An update may
        replace the mapping: read the attribute again after one."""
        self._check_fitted()
        return MappingProxyType(self._user_index)

    @property
    def item_index_(self) -> MappingProxyType[str, int]:
        """Read-only view of ``item id -> row`` (the item's position in ``item_ids_``,
        the columns of :meth:`score_items` and of ``user_items_``); the ids that hold a
        row. An update may replace the mapping: read the attribute again after one."""
        self._check_fitted()
        return MappingProxyType(self._item_index)

    # --------------------------------------------------------------- training
    def fit(self, interactions: Dataset | pd.DataFrame) -> Recommender:
        """Learn from ``interactions`` (a :class:`~lifelongrec.data.Dataset` or events frame).

        Forgets anything learned before. Returns ``self``.
        """
        self.check_params()
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

        ``partial_fit`` adds its events: to the users' histories (``user_items_``), to
        ``item_counts_`` and to what the parameters learn. :meth:`observe` takes events
        into the state only. Give one model each event once, through one of the two: a
        model that observed events and is then ``partial_fit`` on the same events counts
        them twice in ``item_counts_`` (the parameters learn them once). A service lets a
        live copy observe and a separate trainer copy ``partial_fit`` the same events,
        which is the intended use.
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
        self._add_event_counts(counts, ev)
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

    def prepare_items(self, items: pd.DataFrame | Dataset) -> None:
        """Do the slow, side-effect-free part of a coming :meth:`add_items` of ``items``
        now (e.g. encoding their text into the encoder's cache), changing nothing the
        model serves from. A service calls it outside the lock it holds for
        ``add_items``, so that requests never wait for a text encoder. The default does
        nothing (most models have no such part).

        Raises
        ------
        NotFittedError, DataError
            As :meth:`add_items`.
        """
        self._check_fitted()
        _catalogue_frame(items)

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
        k = check_k(k)
        rows = self.user_rows(users)

        def batch(index: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix | None]:
            r = rows[index]
            if not exclude_seen:
                return self._scores_for(r), None
            return self._scores_for(r), self._seen_rows(r)

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
        k = check_k(k)
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

        The format is JSON plus ``.npz`` (no pickle), so loading runs no stored code
        (see :mod:`lifelongrec.models._persist`).
        """
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recommender:
        """Read a model written by :meth:`save`. ``Recommender.load`` loads any model class."""
        return load_model(cls, path)
