"""Id vocabularies: which row of a model's tables holds which external id.

:class:`FreeRow` holds a free row (an erased user, an expired id) in ``user_ids_`` /
``item_ids_``. :class:`VocabularyMixin` is the part of
:class:`~lifelongrec.models.Recommender` that gives new ids rows (for ``fit``,
``partial_fit``, ``add_items`` and ``observe``; erased users' rows first), maps ids to
rows and builds the user x item matrix of events on those rows.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec._errors import UnknownIdError
from lifelongrec.models._sparse import map_ids

__all__ = ["FreeRow", "VocabularyMixin"]


def _is_single(ids: Any) -> bool:
    return isinstance(ids, (str, bytes, int, np.integer)) or np.ndim(ids) == 0


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


class VocabularyMixin:
    """The vocabulary bookkeeping of :class:`~lifelongrec.models.Recommender` (a part of
    that class, not usable alone): ``user_ids_`` / ``item_ids_`` and their indexes.

    A model with a dynamic vocabulary overrides ``_init_vocab``, ``_grow_vocab`` and
    ``_admit_items`` (see :mod:`lifelongrec.models._base`).
    """

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

    def _add_event_counts(self, counts: np.ndarray, events: pd.DataFrame) -> None:
        """Add the events with a row to ``counts`` (a fresh ``(n_items,)`` array) in
        place: the batch's events only, not a pass over the catalogue."""
        np.add.at(counts, self._event_cells(events)[1], 1.0)

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
