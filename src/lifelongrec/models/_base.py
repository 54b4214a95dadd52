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
"""

from __future__ import annotations

import copy
import heapq
import importlib
import inspect
import json
import os
import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec._errors import DataError, NotFittedError, UnknownIdError
from lifelongrec._params import Params, check_k
from lifelongrec.data._schema import (
    DEFAULT_EVENT_TYPE,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    Dataset,
    as_dataset,
    frame_of,
)
from lifelongrec.models._history import HistoryBatch, _ranges, history_batch

__all__ = ["FreeRow", "Recommender", "insert_cells", "topk_rows"]

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


class FreeRow:
    """Stands for a free row in ``user_ids_`` / ``item_ids_`` (an erased user, an expired
    id): equal to no id (only to the placeholder of the same row), so the id arrays stay
    unique and an index built on them (``pd.Index(model.item_ids_)``) maps every id to its
    row and no id to a free one."""

    __slots__ = ("row",)

    def __init__(self, row: int) -> None:
        self.row = int(row)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FreeRow) and other.row == self.row

    def __hash__(self) -> int:
        return hash((FreeRow, self.row))

    def __repr__(self) -> str:
        return f"<free row {self.row}>"


def insert_cells(
    X: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None = None
) -> sp.csr_matrix:
    """``X`` with the cells ``(rows[e], cols[e])`` set, by inserting the new cells (each
    row's columns stay sorted) instead of a sparse sum.

    A new cell gets ``values[e]`` (``1`` when ``values`` is None); a cell already stored
    keeps ``max(stored, values[e])`` (with no ``values``: it is left as it is); a cell
    named twice takes the larger value. ``X`` itself is never changed: a new matrix is
    returned, or ``X`` when no cell changes, so a reader holding ``X`` is not disturbed.
    The cost is one search per cell plus a copy of ``X``'s arrays when a cell is new.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    if len(rows) == 0:
        return X
    n_cols = X.shape[1]
    S = X if X.has_sorted_indices else X.sorted_indices()
    indptr, indices = S.indptr, S.indices
    if values is None:
        if len(rows) == 1:  # one cell: is it there already?
            a, b, v = int(indptr[rows[0]]), int(indptr[rows[0] + 1]), int(cols[0])
            p = a + int(np.searchsorted(indices[a:b], v))
            if p < b and indices[p] == v:
                return X
        keys = np.unique(rows * n_cols + cols)
        vals = np.ones(len(keys), dtype=S.data.dtype)
    else:
        values = np.asarray(values, dtype=S.data.dtype)
        raw = rows * n_cols + cols
        order = np.argsort(raw, kind="stable")
        keys, first = np.unique(raw[order], return_index=True)
        vals = np.maximum.reduceat(values[order], first)
    r, c = keys // n_cols, keys % n_cols
    lo, hi = indptr[r].astype(np.int64), indptr[r + 1].astype(np.int64)
    if len(keys) <= 16:  # a few cells: a binary search in each row
        spans = zip(lo.tolist(), hi.tolist(), c.tolist(), strict=True)
        pos = np.fromiter(
            (a + int(np.searchsorted(indices[a:b], v)) for a, b, v in spans), np.int64, len(c)
        )
    else:  # many: one search among the touched rows' (row, column) keys
        touched, first = np.unique(r, return_index=True)
        lengths = hi[first] - lo[first]
        have = np.repeat(touched, lengths) * n_cols + indices[_ranges(lo[first], lengths)]
        offset = np.cumsum(lengths) - lengths  # where each touched row starts in `have`
        pos = lo + np.searchsorted(have, keys) - offset[np.searchsorted(touched, r)]
    fresh = pos >= hi
    inside = ~fresh
    fresh[inside] = indices[pos[inside]] != c[inside]
    data = S.data
    if values is not None:
        at = pos[~fresh]
        bigger = vals[~fresh] > data[at]
        if bigger.any():
            data = data.copy()
            data[at[bigger]] = vals[~fresh][bigger]
    if not fresh.any():
        if data is S.data:
            return X
        Y = sp.csr_matrix((data, indices, indptr), shape=S.shape)
        Y.has_sorted_indices = True
        return Y
    pos, r, c, v = pos[fresh], r[fresh], c[fresh], vals[fresh]
    new_indptr = indptr.copy()
    new_indptr[1:] += np.cumsum(np.bincount(r, minlength=S.shape[0])).astype(indptr.dtype)
    Y = sp.csr_matrix(
        (
            np.insert(data, pos, v),
            np.insert(indices, pos, c.astype(indices.dtype)),
            new_indptr,
        ),
        shape=S.shape,
    )
    Y.has_sorted_indices = True
    return Y


def grow_csr(X: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    """``X`` with empty rows appended and columns widened to ``shape`` (no smaller), as a
    new matrix sharing ``X``'s data and column indices (only ``indptr`` is extended)."""
    n_rows, n_cols = shape
    if (n_rows, n_cols) == X.shape:
        return X
    indptr = X.indptr
    if n_rows > X.shape[0]:
        tail = np.full(n_rows - X.shape[0], indptr[-1], dtype=indptr.dtype)
        indptr = np.concatenate([indptr, tail])
    Y = sp.csr_matrix((X.data, X.indices, indptr), shape=(n_rows, n_cols))
    Y.has_sorted_indices = X.has_sorted_indices
    return Y


def clear_rows(X: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``X`` with every cell of ``rows`` removed (same shape; a new matrix)."""
    counts = np.diff(X.indptr)
    drop = np.zeros(X.shape[0], dtype=bool)
    drop[np.asarray(rows, dtype=np.int64)] = True
    keep = ~np.repeat(drop, counts)
    indptr = np.r_[0, np.cumsum(np.where(drop, 0, counts))].astype(X.indptr.dtype)
    Y = sp.csr_matrix((X.data[keep], X.indices[keep], indptr), shape=X.shape)
    Y.has_sorted_indices = X.has_sorted_indices
    return Y


def event_columns(events: Any) -> tuple[dict[str, np.ndarray], pd.DataFrame | None]:
    """``observe``'s argument as checked column arrays (ids as ``str``) and its items.

    ``events`` is a DataFrame in the event schema, a :class:`~lifelongrec.data.Dataset`
    (whose ``items`` are returned too) or a mapping of column name -> array. Returns
    ``user_id``, ``item_id``, ``event_type`` (object arrays), ``timestamp`` (int64) and
    ``value`` (float64, NaN when absent).

    Raises
    ------
    DataError
        Not one of those forms, a required column missing, columns of different
        lengths, a missing id, a non-integer timestamp or a value that is not a number.
    """
    from collections.abc import Mapping  # noqa: PLC0415

    items = None
    if isinstance(events, Dataset):
        events, items = events.events, events.items
    if not isinstance(events, (pd.DataFrame, Mapping)):
        raise DataError(
            "cannot use this object as events",
            value=type(events).__name__,
            expected="a pandas DataFrame, a lifelongrec.data.Dataset or a mapping of "
            "column name -> array with user_id, item_id, timestamp",
        )
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in events]
    if missing:
        raise DataError(
            "events lack required columns",
            value=missing,
            expected="columns user_id, item_id, timestamp (event_type, value optional)",
        )
    raw = {c: np.asarray(events[c]) for c in EVENT_COLUMNS if c in events}
    n = len(raw["user_id"])
    for name, values in raw.items():
        if values.ndim != 1 or len(values) != n:
            raise DataError(
                "event columns differ in length",
                column=name,
                value=f"shape {values.shape}",
                expected=f"{n} values, one per event (as user_id has)",
            )
    cols: dict[str, np.ndarray] = {}
    for name in ("user_id", "item_id"):
        values = raw[name]
        bad = np.asarray(pd.isna(values), dtype=bool)
        if bad.any():
            raise DataError(
                f"{name} is missing",
                column=name,
                value=f"event {int(np.flatnonzero(bad)[0])} (0-based position)",
                expected="an id in every event",
            )
        cols[name] = values.astype(str).astype(object)
    ts = raw["timestamp"]
    if ts.dtype.kind not in "iu":
        ok = np.fromiter(
            (isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in ts.tolist()),
            bool,
            n,
        )
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise DataError(
                "timestamp is not an integer",
                column="timestamp",
                value=f"{ts[i]!r} in event {i} (0-based position)",
                expected="integer UTC epoch seconds",
            )
    cols["timestamp"] = ts.astype(np.int64)
    et = raw.get("event_type")
    cols["event_type"] = (
        np.full(n, DEFAULT_EVENT_TYPE, dtype=object) if et is None else et.astype(object)
    )
    value = raw.get("value")
    try:
        cols["value"] = np.full(n, np.nan) if value is None else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "values must be numbers", column="value", expected="numbers or NaN"
        ) from None
    return cols, items


class Recommender(Params):
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

    def _set_vocab(self, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
        self.user_ids_ = np.asarray(user_ids, dtype=object)
        self.item_ids_ = np.asarray(item_ids, dtype=object)
        # FreeRow placeholders (erased users) hold a row but no id; new users take them
        # (lowest first) before the tables grow.
        self._user_index = {}
        self._free_user_rows: list[int] = []
        for i, u in enumerate(self.user_ids_):
            if isinstance(u, FreeRow):
                self._free_user_rows.append(i)
            else:
                self._user_index[u] = i
        self._item_index = {
            t: i for i, t in enumerate(self.item_ids_) if not isinstance(t, FreeRow)
        }

    def _extend_vocab(self, users: list[str], items: list[str]) -> None:
        """Rows for the unknown ``users`` (free rows of erased users first, lowest first,
        then new rows at the end) and ``items`` (new rows at the end): new id arrays, the
        indexes updated in place (a cost that follows the new ids, not the vocabulary)."""
        if users:
            free = getattr(self, "_free_user_rows", [])
            reused = [heapq.heappop(free) for _ in range(min(len(users), len(free)))]
            ids = self.user_ids_
            if reused:
                ids = ids.copy()
                ids[reused] = np.asarray(users[: len(reused)], dtype=object)
                for r, u in zip(reused, users, strict=False):
                    self._user_index[u] = r
            rest = users[len(reused) :]
            if rest:
                start = len(ids)
                ids = np.concatenate([ids, np.asarray(rest, dtype=object)])
                for j, u in enumerate(rest):
                    self._user_index[u] = start + j
            self.user_ids_ = ids
        if items:
            start = len(self.item_ids_)
            self.item_ids_ = np.concatenate([self.item_ids_, np.asarray(items, dtype=object)])
            for j, i in enumerate(items):
                self._item_index[i] = start + j

    def _init_vocab(self, events: pd.DataFrame) -> None:
        """Rows for ``fit``: every distinct user and item, in order of first appearance."""
        users = pd.unique(events["user_id"].astype(str).to_numpy())
        items = pd.unique(events["item_id"].astype(str).to_numpy())
        self._set_vocab(users, items)

    def _grow_vocab(self, events: pd.DataFrame) -> None:
        """Rows for ``partial_fit``: unseen users take the free rows of erased users, then
        new rows at the end; unseen items get new rows at the end."""
        u = pd.unique(events["user_id"].astype(str).to_numpy())
        t = pd.unique(events["item_id"].astype(str).to_numpy())
        new_u = [x for x in u if x not in self._user_index]
        new_t = [x for x in t if x not in self._item_index]
        if new_u or new_t:
            self._extend_vocab(new_u, new_t)

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

    def observe(self, events: Any, items: pd.DataFrame | None = None) -> Recommender:
        """Take new events into the users' state at once, without learning.

        The events' users and items get rows when new (at the end of ``user_ids_`` /
        ``item_ids_``, as :meth:`partial_fit` gives them; a new item takes its content
        from ``items`` where the model uses content), ``user_items_`` and
        ``item_counts_`` include the events exactly as after ``partial_fit``, and the
        user's next :meth:`recommend` reflects them: the items are excluded as seen and
        the scores follow the user's current history. Models that score a user from
        their history (``itemknn``, ``userknn``, ``ease``, ``content``) read it at scoring
        time; models with per-user parameters (``als``, ``bpr``) score a user whose
        history changed since those were computed by folding the current history in (the
        path of :meth:`score_histories`) until a :meth:`partial_fit` or :meth:`fit`
        computes them again; ``popularity`` adds the events to its counts; ``hybrid``
        lets each component observe them. Parameters shared by all users (item factors,
        similarities, weights) do not change: that is :meth:`partial_fit`'s work.

        The cost follows the events, not the data: a search per new (user, item) cell,
        one copy of the interaction matrix's arrays when a cell is new, and the model's
        own per-event bookkeeping; no sparse sum, no refit.

        Rule: observe is state, :meth:`partial_fit` is learning (state included). Give
        one model an event once, through one of the two; a model that observes events
        and is then ``partial_fit`` on the same events counts them twice in
        ``item_counts_``. (A service lets its live copy observe and a separate trainer
        copy ``partial_fit`` the same events: two copies, each sees each event once.)

        Parameters
        ----------
        events
            New events: a DataFrame in the event schema (``user_id, item_id,
            timestamp``; ``event_type`` and ``value`` optional), a
            :class:`~lifelongrec.data.Dataset` (its ``items`` describe new items), or a
            mapping of those column names to equal-length arrays.
        items
            Catalogue rows (``item_id, title, categories, attributes``) of new items;
            overrides a Dataset's ``items``.

        Returns
        -------
        Recommender
            ``self``.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        DataError
            ``events`` is not one of the accepted forms, lacks a required column, has
            columns of different lengths, a missing id, a non-integer timestamp or a
            value that is not a number; ``items`` is not a catalogue frame.

        Examples
        --------
        >>> from lifelongrec.data import make_events
        >>> from lifelongrec.models import ItemKNN
        >>> ev = make_events(["a", "a", "b", "b"], ["x", "y", "x", "z"], [1, 2, 3, 4])
        >>> m = ItemKNN().fit(ev)
        >>> m.recommend("a", k=1)[0].tolist()
        ['z']
        >>> m.observe(make_events(["a"], ["z"], [5])).recommend("a", k=1)[0].tolist()
        [None]
        """
        self._check_fitted()
        cols, data_items = event_columns(events)
        if items is None:
            items = data_items
        if items is not None:
            items = frame_of(
                items,
                ITEM_COLUMNS,
                what="an item catalogue",
                frame_name="items frame",
                accepts=f"None, a pandas DataFrame with columns {list(ITEM_COLUMNS)} "
                "or a lifelongrec.data.Dataset with items",
                part="items",
            )
        n = len(cols["user_id"])
        if n == 0:
            return self
        n_users_before, n_items_before = len(self.user_ids_), len(self.item_ids_)
        uidx, iidx = self._user_index, self._item_index
        users, item_ids = cols["user_id"], cols["item_id"]
        rows = np.fromiter((uidx.get(u, -1) for u in users), np.int64, n)
        columns = np.fromiter((iidx.get(i, -1) for i in item_ids), np.int64, n)
        if (rows < 0).any() or (columns < 0).any():
            self._extend_vocab(
                list(dict.fromkeys(users[rows < 0].tolist())),
                list(dict.fromkeys(item_ids[columns < 0].tolist())),
            )
            shape = (len(self.user_ids_), len(self.item_ids_))
            rows = np.fromiter((uidx[u] for u in users), np.int64, n)
            columns = np.fromiter((iidx[i] for i in item_ids), np.int64, n)
            self.user_items_ = grow_csr(self.user_items_, shape)
            counts = np.zeros(shape[1])
            counts[:n_items_before] = self.item_counts_
            self.item_counts_ = counts
        self._add_seen(rows, columns)
        self._observe(cols, rows, columns, items, n_users_before, n_items_before)
        return self

    def _add_seen(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """``user_items_[rows, cols] = 1`` and the events counted in ``item_counts_``, as
        :meth:`partial_fit` leaves them, by inserting the new cells (each row's columns
        stay sorted) instead of a sparse sum. New objects replace the old ones, so a
        reader holding the old matrix is not disturbed."""
        n_items = len(self.item_ids_)
        self.item_counts_ = self.item_counts_ + np.bincount(cols, minlength=n_items)
        self.user_items_ = insert_cells(self.user_items_, rows, cols)

    def _observe(
        self,
        events: dict[str, np.ndarray],
        rows: np.ndarray,
        columns: np.ndarray,
        items: pd.DataFrame | None,
        n_users_before: int,
        n_items_before: int,
    ) -> None:
        """After ``observe`` put the events in ``user_items_`` / ``item_counts_``: the
        model's own state. ``events`` are the checked columns (see :func:`event_columns`),
        ``rows`` / ``columns`` each event's user row and item column. Rows from
        ``n_users_before`` / ``n_items_before`` on are new; a new user may also have
        taken the free row of an erased user (emptied and reset by ``_forget_rows``).
        Default: nothing (right for a model that reads a user only through
        ``user_items_`` and has no item tables)."""

    def forget_users(self, users: Any) -> list[str]:
        """Erase users' stored state (the right to be forgotten).

        For each user the model knows: their row of ``user_items_`` is emptied, the
        events it accounts for leave ``item_counts_`` (one per item of the row: repeated
        events on one item beyond the first are not attributable to a user once stored,
        and stay in the count), their per-user parameters are removed (user factors of
        ``als`` / ``bpr`` zeroed, the recency times of ``content``, the neighbour matrix
        cache of ``userknn``, the co-occurrence cache of ``itemknn``, and the same in each
        component of a ``hybrid``), and the id is no longer known: :meth:`user_rows`
        gives ``-1`` and :meth:`recommend` serves them as a new user. The row stays, held
        by a :class:`FreeRow` placeholder that no id equals (it survives :meth:`save` /
        :meth:`load`) until a new user takes it: new users fill free rows, lowest first,
        before the tables grow, so erasing users (or a service evicting idle ones) keeps
        memory bounded. A later event of the same id (through :meth:`observe` or
        :meth:`partial_fit`) makes a new user, who starts from nothing.

        What the shared parameters learned from the users' past events (item factors,
        item-item similarities, EASE weights, a popularity model's decayed scores) stays
        until they are learned again without those events (a refit on the store from
        which the events were deleted; ``itemknn``'s next ``partial_fit`` already
        recomputes its similarities without them).

        Parameters
        ----------
        users
            One user id or a 1-d sequence of them; ids the model does not know are
            skipped.

        Returns
        -------
        list of str
            The ids that were known (and are now erased), in the order given.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        """
        self._check_fitted()
        ids = [users] if _is_single(users) else list(users)
        found: dict[str, int] = {}
        for u in ids:
            key = str(u)
            row = self._user_index.get(key)
            if row is not None:
                found.setdefault(key, row)
        if not found:
            return []
        rows = np.fromiter(found.values(), np.int64, len(found))
        X = self.user_items_
        cells = np.concatenate([X.indices[X.indptr[r] : X.indptr[r + 1]] for r in rows])
        if len(cells):
            lost = np.bincount(cells, minlength=len(self.item_ids_))
            self.item_counts_ = np.maximum(self.item_counts_ - lost, 0.0)
        self.user_items_ = clear_rows(X, rows)
        user_ids = self.user_ids_.copy()
        user_ids[rows] = np.fromiter((FreeRow(r) for r in rows), object, len(rows))
        self.user_ids_ = user_ids
        for key in found:
            del self._user_index[key]
        free = getattr(self, "_free_user_rows", [])
        for r in rows.tolist():
            heapq.heappush(free, r)
        self._free_user_rows = free
        self._forget_rows(rows, list(found))
        return list(found)

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        """After ``forget_users`` emptied ``rows`` (of the erased ``ids``) and freed
        them: remove the model's per-user parameters of those rows, leaving each as a new
        user's row starts (a new user may take it). Default: nothing."""

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
        k = check_k(k)
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
        for key, ids in (("_free_user_rows", self.user_ids_), ("_free_item_rows", self.item_ids_)):
            free = [j for j, i in enumerate(ids) if isinstance(i, FreeRow)]
            if free:  # placeholders are written as text: the rows say which they are
                flat[key] = np.asarray(free, dtype=np.int64)
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
        vocab = []
        for key in ("_user", "_item"):
            ids = arrays.pop(f"{key}_ids").astype(object)
            free = arrays.pop(f"_free{key}_rows", np.empty(0, np.int64))
            ids[free] = np.fromiter((FreeRow(r) for r in free), object, len(free))
            vocab.append(ids)
        model._set_vocab(*vocab)
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
