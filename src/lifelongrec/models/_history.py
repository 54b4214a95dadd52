"""Given histories: score a user "as if their history were exactly these events".

:meth:`Recommender.score_histories` and :meth:`Recommender.recommend_histories` take a
list of queries (user ids, each with an optional ``before`` timestamp) and an event log;
query ``q`` sees the log's events of its user with ``timestamp < before[q]``. This module
turns those arguments into a :class:`HistoryBatch`, the one object models read given
histories from (``Recommender._score_history``).

The batch keeps the log once, grouped by user and in time order, and each query as a
slice ``[start, stop)`` of it. Queries of the same user are therefore prefixes of one
sequence, which :meth:`HistoryBatch.dot` exploits: ``X @ W`` for the binary history rows
``X`` costs one product per *distinct* event plus a running sum, not one per (query,
event) pair, so thousands of queries of one user at successive moments (the prequential
protocol) cost about as much as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data._schema import DEFAULT_EVENT_TYPE, frame_of

__all__ = ["HistoryBatch", "history_batch"]

_REQUIRED = ("user_id", "item_id", "timestamp")


class _Vocabulary(Protocol):
    """What :func:`history_batch` reads of a fitted model (a
    :class:`~lifelongrec.models.Recommender`): its item index and its user rows."""

    _item_index: dict[str, int]

    @property
    def n_items(self) -> int: ...

    def user_rows(self, users: Any) -> np.ndarray: ...


def _ranges(lo: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(l, l + n) for l, n in zip(lo, lengths)])``, vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(lo, dtype=np.int64) - offsets, lengths) + np.arange(total)


@dataclass
class HistoryBatch:
    """Queries and the slice of an event log each one sees.

    Attributes
    ----------
    users : ndarray of object, shape (n,)
        External user id of each query (the same id may appear several times).
    rows : ndarray of int64, shape (n,)
        The model's row of each query's user, ``-1`` when the model does not know it. A
        model may use it only to leave the user's *stored* self out (e.g. as a neighbour
        of themself); their stored history must not be read.
    before : ndarray of float64, shape (n,)
        Each query sees its user's events with ``timestamp < before`` (``inf``: all).
    start, stop : ndarray of int64, shape (n,)
        Query ``q`` sees log events ``start[q] <= e < stop[q]``.
    cols : ndarray of int64, shape (E,)
        Item column (in the model's ``item_ids_``) of each log event. Only events on
        items the model knows are in the log.
    timestamps : ndarray of int64, shape (E,)
    groups : ndarray of int64, shape (E,)
        User group of each log event; the log is sorted by (group, timestamp), stable.
    first : ndarray of bool, shape (E,)
        Whether the event is its user's first on that item (repeats do not add to the
        binary history rows).
    events : DataFrame
        The log rows themselves (``user_id, item_id, timestamp, event_type, value``) in
        log order, for models that read event types or values.
    n_items : int
        Columns of the model's item vocabulary.
    history : DataFrame
        The events as given (all of them), for composite models that pass the query on.
    n_unknown_item_events : int
        Events of the given log left out because the model does not know their item.
    """

    users: np.ndarray
    rows: np.ndarray
    before: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    cols: np.ndarray
    timestamps: np.ndarray
    groups: np.ndarray
    first: np.ndarray
    events: pd.DataFrame
    n_items: int
    history: pd.DataFrame
    n_unknown_item_events: int = 0
    _matrix: sp.csr_matrix | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def lengths(self) -> np.ndarray:
        """Visible events per query, repeats included, ``(n,)``."""
        return self.stop - self.start

    def subset(self, index: np.ndarray) -> HistoryBatch:
        """The queries at ``index`` (positions or a boolean mask), sharing the log."""
        index = np.asarray(index)
        return replace(
            self,
            users=self.users[index],
            rows=self.rows[index],
            before=self.before[index],
            start=self.start[index],
            stop=self.stop[index],
            _matrix=None if self._matrix is None else self._matrix[index],
        )

    # ----------------------------------------------------------- binary rows
    def matrix(self) -> sp.csr_matrix:
        """The binary history rows ``X``: ``(n, n_items)`` float32 csr (computed once)."""
        if self._matrix is None:
            idx = _ranges(self.start, self.lengths)
            rows = np.repeat(np.arange(len(self)), self.lengths)
            keep = self.first[idx]
            X = sp.csr_matrix(
                (
                    np.ones(int(keep.sum()), dtype=np.float32),
                    (rows[keep], self.cols[idx[keep]]),
                ),
                shape=(len(self), self.n_items),
            )
            X.sort_indices()
            self._matrix = X
        return self._matrix

    def n_distinct(self) -> np.ndarray:
        """Distinct items in each query's history, ``(n,)`` int64 (the row sums of ``X``)."""
        cum = np.r_[0, np.cumsum(self.first, dtype=np.int64)]
        return cum[self.stop] - cum[self.start]

    def dot(self, W: Any, columns: np.ndarray | None = None) -> np.ndarray:
        """``X @ W`` as a dense ``(n, W.shape[1])`` array, for ``W`` dense or sparse.

        With ``columns`` (item columns, ``(m,)``), ``W`` has ``m`` rows and the product is
        ``X[:, columns] @ W``. Queries of one user are prefixes of one sequence, so the
        product is taken over each query's *new* events only (those after the previous,
        shorter query of the same user) and summed along the user's queries.
        """
        n = len(self)
        if columns is not None:
            pos = np.full(self.n_items, -1, dtype=np.int64)
            pos[np.asarray(columns, dtype=np.int64)] = np.arange(len(columns))
        order = np.lexsort((self.stop, self.start))
        st, sp_ = self.start[order], self.stop[order]
        new_group = np.r_[True, st[1:] != st[:-1]] if n else np.empty(0, bool)
        lo = np.where(new_group, st, np.r_[0, sp_[:-1]] if n else st)
        lengths = sp_ - lo
        idx = _ranges(lo, lengths)
        rows = np.repeat(np.arange(n), lengths)
        keep = self.first[idx]
        rows, cols = rows[keep], self.cols[idx[keep]]
        if columns is not None:
            cols = pos[cols]
            rows, cols = rows[cols >= 0], cols[cols >= 0]
        D = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, W.shape[0])
        )
        P = D @ W
        P = P.toarray() if sp.issparse(P) else np.asarray(P)
        heads = np.flatnonzero(new_group)
        ends = np.r_[heads[1:], n]
        for a, b in zip(heads, ends, strict=True):
            if b - a > 1:
                np.cumsum(P[a:b], axis=0, out=P[a:b])
        out = np.empty_like(P)
        out[order] = P
        return out

    # -------------------------------------------------------------- timing
    def last_seen(self) -> sp.csr_matrix:
        """Latest timestamp of each (query, item) in the history, as ``t - t_min + 1``
        (always >= 1) in a ``(n, n_items)`` float64 csr, where ``t_min`` is the log's
        earliest timestamp."""
        idx = _ranges(self.start, self.lengths)
        rows = np.repeat(np.arange(len(self)), self.lengths)
        cols = self.cols[idx]
        t0 = float(self.timestamps.min()) if len(self.timestamps) else 0.0
        t = self.timestamps[idx].astype(np.float64) - t0 + 1.0
        # Within a query the log is in time order: the last (row, col) occurrence is the latest.
        order = np.lexsort((np.arange(len(rows)), cols, rows))
        r, c, v = rows[order], cols[order], t[order]
        last = np.r_[(r[1:] != r[:-1]) | (c[1:] != c[:-1]), True] if len(r) else np.empty(0, bool)
        return sp.csr_matrix((v[last], (r[last], c[last])), shape=(len(self), self.n_items))

    def recent(self, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last ``width`` events of every query: ``(query, position_from_end, event)``.

        ``event`` indexes the log arrays; ``position_from_end`` is 0 for a query's latest
        visible event (the layout :func:`lifelongrec.models._seqtrain.right_align` takes).
        """
        n_take = np.minimum(self.lengths, int(width))
        lo = self.stop - n_take
        event = _ranges(lo, n_take)
        query = np.repeat(np.arange(len(self)), n_take)
        return query, self.stop[query] - 1 - event, event


def _history_frame(history: Any) -> pd.DataFrame:
    frame = frame_of(
        history,
        _REQUIRED,
        what="a history",
        frame_name="history events",
        accepts="a pandas DataFrame of events (user_id, item_id, timestamp; "
        "event_type and value optional) or a lifelongrec.data.Dataset",
        note=" (event_type and value optional)",
    )
    ts = frame["timestamp"]
    if len(frame) and (ts.isna().any() or ts.to_numpy().dtype.kind not in "iu"):
        raise DataError(
            "history timestamps must be integers",
            column="timestamp",
            value=str(ts.dtype),
            expected="integer UTC epoch seconds in every row",
        )
    if frame["item_id"].isna().any() or frame["user_id"].isna().any():
        column = "item_id" if frame["item_id"].isna().any() else "user_id"
        raise DataError(
            f"{column} is missing in the history", column=column, expected="an id in every row"
        )
    return frame


def _before(before: Any, n: int) -> np.ndarray:
    expected = "None, one timestamp, or one timestamp (a finite number) per user"
    if before is None:
        return np.full(n, np.inf)
    arr = np.asarray(before)
    if arr.dtype.kind not in "iuf" or arr.dtype == bool:
        raise ParameterError("before", before, expected)
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,) or np.isnan(arr).any():
        raise ParameterError("before", before, f"{expected} ({n} users given)")
    return arr


def history_batch(
    model: _Vocabulary, ids: list[str], history: Any, before: Any = None
) -> HistoryBatch:
    """Build the :class:`HistoryBatch` of queries ``ids`` (external ids, strings) on
    ``history`` for ``model`` (fitted); see :meth:`Recommender.score_histories`."""
    frame = _history_frame(history)
    n = len(ids)
    cut = _before(before, n)
    item_index = model._item_index
    cols_all = frame["item_id"].astype(str).map(item_index)
    known = cols_all.notna().to_numpy()
    log = frame.loc[known]
    cols = cols_all.to_numpy()[known].astype(np.int64)
    users = log["user_id"].astype(str).to_numpy(dtype=object)
    codes, uniques = pd.factorize(users)
    codes = codes.astype(np.int64)
    ts = log["timestamp"].to_numpy().astype(np.int64)
    order = np.lexsort((np.arange(len(ts)), ts, codes))
    codes, ts, cols = codes[order], ts[order], cols[order]
    events = pd.DataFrame(
        {
            "user_id": users[order],
            "item_id": log["item_id"].astype(str).to_numpy(dtype=object)[order],
            "timestamp": ts,
            "event_type": (
                log["event_type"].astype(str).to_numpy(dtype=object)[order]
                if "event_type" in log.columns
                else np.full(len(ts), DEFAULT_EVENT_TYPE, dtype=object)
            ),
            "value": (
                log["value"].to_numpy(dtype=np.float64)[order]
                if "value" in log.columns
                else np.full(len(ts), np.nan)
            ),
        }
    )
    first = ~pd.Series(codes * max(model.n_items, 1) + cols).duplicated().to_numpy()
    # Each query: the slice of its user's events with timestamp < before (a sorted key
    # of (user group, timestamp rank) makes that one searchsorted for every query).
    q_group = pd.Index(uniques).get_indexer(pd.Index(ids, dtype=object)).astype(np.int64)
    uts = np.unique(ts)
    m = len(uts) + 1
    key = codes * m + np.searchsorted(uts, ts)
    g = np.maximum(q_group, 0)
    start = np.searchsorted(codes, g, side="left")
    limit = np.searchsorted(uts, cut, side="left")  # distinct timestamps < before
    stop = np.searchsorted(key, g * m + limit, side="left")
    absent = q_group < 0
    start[absent] = stop[absent] = 0
    return HistoryBatch(
        users=np.asarray(ids, dtype=object),
        rows=model.user_rows(ids),
        before=cut,
        start=start.astype(np.int64),
        stop=np.maximum(stop, start).astype(np.int64),
        cols=cols,
        timestamps=ts,
        groups=codes,
        first=first,
        events=events,
        n_items=model.n_items,
        history=frame,
        n_unknown_item_events=int((~known).sum()),
    )
