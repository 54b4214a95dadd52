"""EASE: a closed-form linear item-item autoencoder (Steck, WWW 2019).

Examples
--------
>>> from lifelongrec.data import make_events
>>> ev = make_events(["a", "a", "b", "b", "c"], ["x", "y", "x", "y", "x"], [1, 2, 3, 4, 5])
>>> EASE(l2=1.0).fit(ev).recommend("c", k=1)[0].tolist()
['y']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from lifelongrec._params import Integer, Number
from lifelongrec.data._schema import Dataset
from lifelongrec.models._base import Recommender
from lifelongrec.models._history import HistoryBatch

__all__ = ["EASE"]


def _ease_weights(X: sp.csr_matrix, l2: float) -> np.ndarray:
    """``B = I - P diag(1/diag(P))`` with ``P = (XᵀX + l2 I)⁻¹`` and ``diag(B) = 0``, float32.

    Computed in float64 through a Cholesky factorisation and its in-place inverse
    (LAPACK ``potrf``/``potri``), so the peak memory is one float64 ``m x m`` matrix plus
    the float32 result.
    """
    m = X.shape[1]
    if m == 0:
        return np.zeros((0, 0), dtype=np.float32)
    G = (X.T @ X).astype(np.float64).toarray(order="F")
    G[np.diag_indices(m)] += l2
    # One BLAS thread here: OpenBLAS's threaded dpotrf crashes (SIGSEGV) on large matrices
    # (seen at 20,000 items with 2 threads; cf. OpenMathLib/OpenBLAS#2821 and #352).
    with threadpool_limits(limits=1, user_api="blas"):
        potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (G,))
        c, info = potrf(G, lower=False, overwrite_a=True, clean=False)
        if info != 0:  # pragma: no cover - XᵀX + l2 I is positive definite for l2 > 0
            raise np.linalg.LinAlgError(f"EASE: Cholesky factorisation failed (info={info})")
        P, info = potri(c, lower=False, overwrite_c=True)
        if info != 0:  # pragma: no cover
            raise np.linalg.LinAlgError(f"EASE: inverse failed (info={info})")
    del c, G
    d = np.diag(P).copy()
    # C order: potri returns Fortran order, and scipy's sparse @ dense copies a non-C
    # operand on every call (1.6 GB per scoring batch at 20,000 items).
    B = np.array(P, dtype=np.float32, order="C")  # potri fills the upper triangle only
    del P
    _symmetrize_upper(B)
    B /= -d.astype(np.float32)[None, :]
    B[np.diag_indices(m)] = 0.0
    return B


def _symmetrize_upper(A: np.ndarray, block: int = 2048) -> None:
    """Copy the upper triangle of square ``A`` onto its lower triangle, in place, by blocks."""
    m = A.shape[0]
    for a in range(0, m, block):
        b = min(a + block, m)
        if a > 0:
            A[a:b, :a] = A[:a, a:b].T
        diag = A[a:b, a:b]
        low = np.tril_indices(b - a, -1)
        diag[low] = diag.T[low]


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder: score = ``X_u B`` with a dense item x item ``B``.

    Parameters
    ----------
    l2
        L2 regularisation ``λ`` (> 0). Larger values for denser data.
    max_items
        At most this many items (the most popular by event count) get a row and column
        in ``B`` (positive int). ``B`` takes ``4 m²`` bytes and the fit about ``8 m²`` more
        bytes and ``O(m³)`` time, so the default 20,000 keeps a fit under ~5 GB. Items
        outside the cap (and items first seen by ``partial_fit`` before the next refit)
        have no EASE column: they are ranked after every EASE-scored item, among
        themselves by popularity, and a user's events on them do not enter ``X_u B``.
        ``n_uncovered_`` says how many items that concerns.
    refit_threshold
        ``partial_fit`` recomputes ``B`` in closed form when, since the last full
        computation, the share of the vocabulary that is new items, or the share of the
        interaction matrix that is new (user, item) pairs, exceeds this fraction (in
        ``(0, 1]``). Otherwise ``B`` stays and only the users' histories change (which
        ``X_u B`` uses at once).

    Notes
    -----
    :meth:`observe` changes histories only: ``X_u B`` reads the user's current history,
    and a new item is uncovered (ranked by popularity after the EASE-scored items) until
    ``B`` is next computed. ``B`` is shared by all users, so :meth:`forget_users` has no
    per-user parameter to remove; a refit without the users' events removes what ``B``
    learned from them.
    """

    name = "ease"
    _constraints = {
        "l2": Number(0, low_open=True),
        "max_items": Integer(1),
        "refit_threshold": Number(0, 1, low_open=True),
    }

    def __init__(
        self, l2: float = 500.0, max_items: int = 20_000, refit_threshold: float = 0.1
    ) -> None:
        self.l2 = l2
        self.max_items = max_items
        self.refit_threshold = refit_threshold

    # --------------------------------------------------------------- training
    def _compute(self) -> None:
        n_items = len(self.item_ids_)
        m = min(n_items, int(self.max_items))
        # Most popular first; ties by first appearance so results repeat.
        order = np.lexsort((np.arange(n_items), -self.item_counts_))
        cols = np.sort(order[:m])
        X = self.user_items_[:, cols]
        self.weights_ = _ease_weights(X.tocsr(), float(self.l2))
        self.ease_items_ = cols.astype(np.int64)
        self._n_items_at_fit = n_items
        self._nnz_at_fit = int(self.user_items_.nnz)

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._compute()

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        n_items = len(self.item_ids_)
        new_items = (n_items - self._n_items_at_fit) / max(n_items, 1)
        new_pairs = (self.user_items_.nnz - self._nnz_at_fit) / max(self.user_items_.nnz, 1)
        if max(new_items, new_pairs) > self.refit_threshold:
            self._compute()

    @property
    def n_uncovered_(self) -> int:
        """Items without an EASE row/column (ranked by popularity after the others)."""
        self._check_fitted()
        return len(self.item_ids_) - len(self.ease_items_)

    # ---------------------------------------------------------------- scoring
    def _score(self, rows: np.ndarray) -> np.ndarray:
        Xu = self.user_items_[rows][:, self.ease_items_]
        return self._with_uncovered(np.asarray(Xu @ self.weights_, dtype=np.float32))

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # The same ``X_u B`` with the given history rows as ``X_u``.
        ease = hist.dot(self.weights_, columns=self.ease_items_)
        return self._with_uncovered(ease.astype(np.float32, copy=False))

    def _with_uncovered(self, ease: np.ndarray) -> np.ndarray:
        """Full-catalogue scores from the EASE scores ``(B, len(ease_items_))``."""
        cols = self.ease_items_
        n_items = len(self.item_ids_)
        if len(cols) == n_items:
            return ease
        out = np.empty((len(ease), n_items), dtype=np.float32)
        # Uncovered items: below every EASE score of the row, ordered by popularity.
        pop = self.item_counts_.astype(np.float64)
        pop = (pop / (pop.max() + 1.0)).astype(np.float32)
        floor = ease.min(axis=1, initial=0.0) - 2.0  # pop < 1: a gap of at least 1
        out[:] = floor[:, None] + pop[None, :]
        out[:, cols] = ease
        return out

    def _similar_scores(self, rows: np.ndarray) -> np.ndarray:
        S = super()._similar_scores(rows)  # co-occurrence cosine, for uncovered items
        cols = self.ease_items_
        pos = np.full(len(self.item_ids_), -1, dtype=np.int64)
        pos[cols] = np.arange(len(cols))
        for j, r in enumerate(rows):
            if pos[r] >= 0:
                row = np.full(len(self.item_ids_), -np.inf, dtype=np.float32)
                row[cols] = self.weights_[pos[r]]
                S[j] = row
        return S

    # ------------------------------------------------------------- save/load
    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        arrays = {"weights": self.weights_, "ease_items": self.ease_items_}
        extra = {"n_items_at_fit": self._n_items_at_fit, "nnz_at_fit": self._nnz_at_fit}
        return arrays, extra

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self.weights_ = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
        self.ease_items_ = np.asarray(arrays["ease_items"], dtype=np.int64)
        self._n_items_at_fit = int(extra["n_items_at_fit"])
        self._nnz_at_fit = int(extra["nnz_at_fit"])
