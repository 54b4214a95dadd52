"""Top-k selection and the sparse-matrix and id-mapping helpers the models share.

:func:`topk_rows` picks each row's best columns (ties to the lower column);
:func:`insert_cells`, :func:`grow_csr` and :func:`clear_rows` change a user x item
``csr_matrix`` at a cost that follows the change, returning new matrices so that a reader
holding the old one is not disturbed; :func:`map_ids` maps external ids to rows at a cost
that follows the batch, not the vocabulary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec.models._history import _ranges

__all__ = [
    "NO_CELLS",
    "PendingCells",
    "clear_rows",
    "drop_cells",
    "grow_csr",
    "insert_cells",
    "map_ids",
    "topk_rows",
]

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


def drop_cells(X: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """``X`` without the entries in ``rows`` or in ``cols`` (same shape)."""
    coo = X.tocoo()
    keep = ~(np.isin(coo.row, rows) | np.isin(coo.col, cols))
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=X.shape, dtype=X.dtype
    )


class PendingCells:
    """Cells set to 1 in a user x item matrix since it was last rebuilt: the seen items
    that :meth:`~lifelongrec.models.Recommender.observe` adds, kept apart so that a few
    events do not copy the whole matrix (:func:`insert_cells` copies its arrays, a cost
    that grows with every event ever stored), and merged in one :func:`insert_cells`
    when they are many or when the whole matrix is read.

    A value: :meth:`plus` returns a new one (sharing the arrays, which are never
    changed), so two shallow copies of a model never see each other's cells.
    """

    __slots__ = ("_cols", "_rows", "n")

    def __init__(self, rows: list[np.ndarray] | None = None, cols: list[np.ndarray] | None = None):
        self._rows: list[np.ndarray] = rows or []
        self._cols: list[np.ndarray] = cols or []
        self.n = int(sum(len(r) for r in self._rows))

    def plus(self, rows: np.ndarray, cols: np.ndarray) -> PendingCells:
        """These cells and ``(rows[e], cols[e])``."""
        rows = np.array(rows, dtype=np.int64)
        cols = np.array(cols, dtype=np.int64)
        if not len(rows):
            return self
        return PendingCells([*self._rows, rows], [*self._cols, cols])

    def _joined(self) -> tuple[np.ndarray, np.ndarray]:
        if len(self._rows) > 1:
            self._rows = [np.concatenate(self._rows)]
            self._cols = [np.concatenate(self._cols)]
        if not self._rows:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return self._rows[0], self._cols[0]

    def of_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pending cells in ``rows``: ``(position in rows, column)`` pairs."""
        r, c = self._joined()
        rows = np.asarray(rows, dtype=np.int64)
        if not len(r) or not len(rows):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        at = np.searchsorted(sorted_rows, r)
        hit = at < len(rows)
        hit[hit] = sorted_rows[at[hit]] == r[hit]
        # a row asked for several times gets its cells at each position
        first, last = at[hit], np.searchsorted(sorted_rows, r[hit], side="right")
        n = last - first
        pos = order[_ranges(first, n)]
        return pos, np.repeat(c[hit], n)

    def merged(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """``X`` with the pending cells set (see :func:`insert_cells`)."""
        r, c = self._joined()
        return insert_cells(X, r, c)


#: No pending cells (a value: :meth:`PendingCells.plus` returns a new one).
NO_CELLS = PendingCells()
