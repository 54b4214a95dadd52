"""Events into a fitted model's state without learning, and users erased.

:class:`ObserveForgetMixin` is the part of :class:`~lifelongrec.models.Recommender` that
holds :meth:`~ObserveForgetMixin.observe` (new events in ``user_items_`` /
``item_counts_`` and the model's own state, at a cost that follows the events) and
:meth:`~ObserveForgetMixin.forget_users` (the right to be forgotten: a user's row
emptied and freed), with the hooks ``_observe`` and ``_forget_rows`` that models
override.
"""

from __future__ import annotations

import heapq
from typing import Any, Self

import numpy as np
import pandas as pd

from lifelongrec.data._schema import ITEM_COLUMNS, frame_of
from lifelongrec.models._events import event_columns
from lifelongrec.models._sparse import clear_rows, grow_csr
from lifelongrec.models._vocabulary import FreeRow, _is_single

__all__ = ["PENDING_MIN", "PENDING_SHARE", "ObserveForgetMixin"]

#: Observed cells wait apart from ``user_items_`` until they are this share of its stored
#: cells (and at least :data:`PENDING_MIN`): merging them copies the matrix once, so each
#: observed cell costs about ``1 / PENDING_SHARE`` copied cells however large it grows.
PENDING_SHARE = 1 / 32
PENDING_MIN = 4096


class ObserveForgetMixin:
    """``observe`` and ``forget_users`` of :class:`~lifelongrec.models.Recommender` (a part
    of that class, not usable alone)."""

    def observe(self, events: Any, items: pd.DataFrame | None = None) -> Self:
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

        The cost follows the events, not the data: the new (user, item) cells wait
        apart from ``user_items_`` until they are a thirty-second of its cells (or it is
        read whole), and are then inserted in one copy of its arrays; the rest is the
        model's own per-event bookkeeping; no sparse sum, no refit.

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
            self._grow_seen(shape)
            counts = np.zeros(shape[1])
            counts[:n_items_before] = self.item_counts_
            self.item_counts_ = counts
        self._add_seen(rows, columns)
        self._observe(cols, rows, columns, items, n_users_before, n_items_before)
        return self

    def _add_seen(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """``user_items_[rows, cols] = 1`` and the events counted in ``item_counts_``, as
        :meth:`partial_fit` leaves them. The cells wait apart from the matrix
        (:class:`~lifelongrec.models._sparse.PendingCells`) until they are :data:`PENDING_SHARE` of its stored cells
        (at least :data:`PENDING_MIN`) or the matrix is read whole: then one insertion
        (:func:`insert_cells`; each row's columns stay sorted) builds a new matrix, so a
        reader holding the old one is not disturbed. The counts only grow, in place
        (copying a catalogue-long array for a few events cost more than the rest of the
        call at a million items), unless the array is read-only."""
        counts = self.item_counts_
        if not counts.flags.writeable:
            counts = self.item_counts_ = counts.copy()
        np.add.at(counts, cols, 1)
        d = self.__dict__
        pending = d["_seen_pending"] = self._pending_cells().plus(rows, cols)
        if pending.n >= max(PENDING_MIN, PENDING_SHARE * d["_seen"].nnz):
            self.user_items_  # noqa: B018 (the read merges)

    def _grow_seen(self, shape: tuple[int, int]) -> None:
        """``user_items_`` grown to ``shape`` (empty rows and columns appended), keeping
        the pending cells pending."""
        d = self.__dict__
        d["_seen"] = grow_csr(d["_seen"], shape)

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
