"""Neighbourhood models: item-item and user-user similarity over the binary interaction matrix.

Examples
--------
>>> from lifelongrec.data import make_events
>>> ev = make_events(["a", "a", "b", "b", "c"], ["x", "y", "x", "y", "x"], [1, 2, 3, 4, 5])
>>> ItemKNN().fit(ev).recommend("c", k=1)[0].tolist()
['y']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from lifelongrec._params import Integer, Number, OneOf
from lifelongrec.data._schema import Dataset
from lifelongrec.models._base import Recommender, clear_rows, grow_csr, insert_cells
from lifelongrec.models._history import HistoryBatch

__all__ = ["ItemKNN", "UserKNN"]

_SIMILARITIES = ("cosine", "jaccard")


def prune_rows(M: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row of ``M`` (ties: lower column first)."""
    M = M.tocsr()
    M.eliminate_zeros()
    counts = np.diff(M.indptr)
    if counts.size == 0 or counts.max(initial=0) <= k:
        return M.copy()
    rows = np.repeat(np.arange(M.shape[0]), counts)
    order = np.lexsort((M.indices, -M.data, rows))
    rank = np.arange(len(order)) - M.indptr[rows[order]]
    keep = order[rank < k]
    keep.sort()  # back to row-major, column-sorted order
    out = sp.csr_matrix(
        (M.data[keep], M.indices[keep], np.concatenate([[0], np.cumsum(np.minimum(counts, k))])),
        shape=M.shape,
    )
    return out


def below_by_popularity(S: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Items with no neighbourhood evidence (score 0) rank after every item with some,
    among themselves by popularity: they get ``pop - 1`` with ``pop = counts / (max + 1)``
    in ``[0, 1)``. Without this, a user whose neighbours add nothing new would get an
    arbitrary (lowest-index) order of zero-score items."""
    pop = (counts / (counts.max(initial=0.0) + 1.0) - 1.0).astype(np.float32)
    rows, cols = np.nonzero(S <= 0)
    S[rows, cols] = pop[cols]
    return S


class ItemKNN(Recommender):
    """Item-based collaborative filtering with a pruned item-item similarity.

    ``S[i, j]`` is the similarity of items ``i`` and ``j`` from the binary user x item
    matrix ``X`` (co-occurrence ``C = XᵀX``, item counts ``n = diag(C)``):

    * ``"cosine"``: ``C_ij / (sqrt(n_i n_j) + shrink)``;
    * ``"jaccard"``: ``C_ij / (n_i + n_j - C_ij + shrink)``.

    Each target item keeps its ``k_neighbors`` most similar items (the column of ``S``
    is pruned); the score of item ``j`` for user ``u`` is ``sum_i X_ui S_ij``. Items with
    no evidence (score 0) rank after the others, by popularity (:func:`below_by_popularity`).

    Parameters
    ----------
    k_neighbors
        Neighbours kept per item (positive int).
    shrink
        Added to the denominator; damps similarities estimated from few users (>= 0).
    similarity
        ``"cosine"`` or ``"jaccard"``.

    Notes
    -----
    ``partial_fit`` keeps ``C`` and updates it with the rows of the users the new events
    touched (``C += X_newᵀX_new - X_oldᵀX_old`` over those rows only), then recomputes the
    pruned ``S`` from ``C``. New histories count at once because scoring reads
    ``user_items_``. ``C`` is a cache: it is not saved and is rebuilt from ``user_items_``
    on the first ``partial_fit`` after a load.

    :meth:`observe` changes histories only (``S`` stays; a new item gets an empty row and
    column of ``S`` until the next ``partial_fit``); the users it touched are remembered,
    so the next ``partial_fit`` brings ``C`` up to date with their observed events too.
    :meth:`forget_users` takes the users' rows out of ``C`` at once; ``S`` is recomputed
    without them at the next ``partial_fit``.
    """

    name = "itemknn"
    _constraints = {
        "k_neighbors": Integer(1),
        "shrink": Number(0),
        "similarity": OneOf(*_SIMILARITIES),
    }

    def __init__(
        self, k_neighbors: int = 100, shrink: float = 0.0, similarity: str = "cosine"
    ) -> None:
        self.k_neighbors = k_neighbors
        self.shrink = shrink
        self.similarity = similarity

    # ---------------------------------------------------------------- helpers
    def _similarity_from_cooc(self, C: sp.csr_matrix) -> sp.csr_matrix:
        C = C.tocoo()
        n = C.diagonal().astype(np.float64)
        off = C.row != C.col
        r, c, v = C.row[off], C.col[off], C.data[off].astype(np.float64)
        if self.similarity == "cosine":
            den = np.sqrt(n[r] * n[c]) + self.shrink
        else:  # jaccard
            den = n[r] + n[c] - v + self.shrink
        vals = np.divide(v, den, out=np.zeros_like(v), where=den > 0).astype(np.float32)
        S = sp.csr_matrix((vals, (c, r)), shape=C.shape)  # row = target item j
        S = prune_rows(S, int(self.k_neighbors))
        return S.T.tocsr()  # S[i, j]: neighbour i of target j

    # --------------------------------------------------------------- training
    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._cooc = (X.T @ X).tocsr()
        self._cooc_source = X
        self._uncounted: set[int] = set()  # users observed since C was last updated
        self.similarity_ = self._similarity_from_cooc(self._cooc)

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        X_new = self.user_items_
        n_users, n_items = X_new.shape
        old = getattr(self, "_cooc_source", None)
        touched = np.flatnonzero(np.diff(delta.tocsr().indptr))
        uncounted = getattr(self, "_uncounted", None)
        if uncounted:  # observed since: their rows differ from C's source too
            touched = np.union1d(touched, np.fromiter(uncounted, np.int64, len(uncounted)))
        self._uncounted = set()
        if old is None or getattr(self, "_cooc", None) is None:  # after load: rebuild the cache
            self._cooc = (X_new.T @ X_new).tocsr()
        else:
            C = self._cooc.copy()
            C.resize((n_items, n_items))
            old = old.copy()
            old.resize((n_users, n_items))
            A_old = old[touched]
            A_new = X_new[touched]
            self._cooc = (C + (A_new.T @ A_new) - (A_old.T @ A_old)).tocsr()
            self._cooc.eliminate_zeros()
        self._cooc_source = X_new
        self.similarity_ = self._similarity_from_cooc(self._cooc)

    def _observe(
        self,
        events: dict[str, np.ndarray],
        rows: np.ndarray,
        columns: np.ndarray,
        items: Any,
        n_users_before: int,
        n_items_before: int,
    ) -> None:
        n_items = len(self.item_ids_)
        self.similarity_ = grow_csr(self.similarity_, (n_items, n_items))
        if getattr(self, "_cooc", None) is not None:
            self._uncounted = getattr(self, "_uncounted", set()) | set(rows.tolist())

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        source = getattr(self, "_cooc_source", None)
        if getattr(self, "_cooc", None) is None or source is None:
            return  # rebuilt from user_items_ (without the users) when next needed
        have = rows[rows < source.shape[0]]
        A = source[have]  # what C counted of these users (C is source.T @ source)
        self._cooc = (self._cooc - (A.T @ A)).tocsr()
        self._cooc.eliminate_zeros()
        self._cooc_source = clear_rows(source, have)
        self._uncounted = getattr(self, "_uncounted", set()) - set(rows.tolist())

    # ---------------------------------------------------------------- scoring
    def _score(self, rows: np.ndarray) -> np.ndarray:
        S = (self.user_items_[rows] @ self.similarity_).toarray().astype(np.float32)
        return below_by_popularity(S, self.item_counts_)

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # The same ``X_u S`` with the given history rows as ``X_u``.
        S = hist.dot(self.similarity_).astype(np.float32, copy=False)
        return below_by_popularity(S, self.item_counts_)

    def _similar_scores(self, rows: np.ndarray) -> np.ndarray:
        # Column i of S holds item i's kept neighbours.
        return self.similarity_[:, rows].T.toarray().astype(np.float32)

    # ------------------------------------------------------------- save/load
    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"similarity": self.similarity_}, {}

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self.similarity_ = arrays["similarity"].tocsr()
        self._cooc = None
        self._cooc_source = None
        self._uncounted = set()


class UserKNN(Recommender):
    """User-based collaborative filtering: what the most similar users interacted with.

    For user ``u`` the cosine similarity to every other user ``v`` is
    ``|I_u ∩ I_v| / (sqrt(|I_u| |I_v|) + shrink)``; the ``k_neighbors`` most similar users
    are kept and the score of item ``j`` is ``sum_v sim(u, v) X_vj``. Items no neighbour
    has rank after the others, by popularity (:func:`below_by_popularity`).

    Parameters
    ----------
    k_neighbors
        Similar users kept per user (positive int).
    shrink
        Added to the denominator (>= 0).

    Notes
    -----
    Nothing is learned ahead: similarities are computed at scoring time, in the batches
    ``recommend`` asks for, with sparse products against the current ``user_items_``.
    ``partial_fit`` therefore only grows the matrix; new users and new events are used at
    once, by the user themself and as neighbours of others. So does :meth:`observe`,
    which also inserts the events into the cached item x user matrix (no rebuild);
    :meth:`forget_users` drops that cache, and an erased user is nobody's neighbour.
    """

    name = "userknn"
    _constraints = {"k_neighbors": Integer(1), "shrink": Number(0)}

    def __init__(self, k_neighbors: int = 100, shrink: float = 0.0) -> None:
        self.k_neighbors = k_neighbors
        self.shrink = shrink

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._X_T = None

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        self._X_T = None

    def _observe(
        self,
        events: dict[str, np.ndarray],
        rows: np.ndarray,
        columns: np.ndarray,
        items: Any,
        n_users_before: int,
        n_items_before: int,
    ) -> None:
        XT = getattr(self, "_X_T", None)
        if XT is not None and XT.shape == (n_items_before, n_users_before):
            n_users, n_items = self.user_items_.shape
            self._X_T = insert_cells(grow_csr(XT, (n_items, n_users)), columns, rows)
        else:
            self._X_T = None

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        self._X_T = None  # rebuilt from user_items_ (without the users) when next needed

    def _items_users(self) -> sp.csr_matrix:
        X = self.user_items_
        if getattr(self, "_X_T", None) is None or self._X_T.shape[1] != X.shape[0]:
            self._X_T = X.T.tocsr()
        return self._X_T

    def _neighbour_scores(
        self, overlap: Any, n_query: np.ndarray, self_rows: np.ndarray
    ) -> np.ndarray:
        """Scores from ``overlap`` ``(B, n_users)`` (items shared with each stored user),
        the queries' item counts ``n_query`` and their own stored rows (``-1``: none),
        which are never their own neighbours."""
        X = self.user_items_
        counts = np.diff(X.indptr).astype(np.float64)
        overlap = sp.coo_matrix(overlap)
        r, c = overlap.row, overlap.col
        not_self = c != self_rows[r]
        r, c, v = r[not_self], c[not_self], overlap.data[not_self].astype(np.float64)
        den = np.sqrt(n_query[r] * counts[c]) + self.shrink
        sims = np.divide(v, den, out=np.zeros_like(v), where=den > 0).astype(np.float32)
        sim = sp.csr_matrix((sims, (r, c)), shape=(len(n_query), X.shape[0]))
        sim = prune_rows(sim, int(self.k_neighbors))
        S = (sim @ X).toarray().astype(np.float32)
        return below_by_popularity(S, self.item_counts_)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        X = self.user_items_
        counts = np.diff(X.indptr).astype(np.float64)
        return self._neighbour_scores(X[rows] @ self._items_users(), counts[rows], rows)

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # Neighbours of the given history among the stored users; the user's own stored
        # row (which may hold later events) is left out, as in ``_score``.
        overlap = hist.dot(self._items_users())
        return self._neighbour_scores(overlap, hist.n_distinct().astype(np.float64), hist.rows)

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self._X_T = None
