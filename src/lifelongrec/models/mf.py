"""Matrix factorisation through ``implicit``: ALS (Hu, Koren & Volinsky 2008) and BPR (Rendle 2009).

Examples
--------
>>> from lifelongrec.data import make_events
>>> ev = make_events(["a", "a", "b", "b", "c"], ["x", "y", "x", "y", "x"], [1, 2, 3, 4, 5])
>>> ALS(factors=2, iterations=5).fit(ev).recommend("c", k=1)[0].tolist()
['y']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from lifelongrec.data._schema import Dataset
from lifelongrec.models._base import Recommender
from lifelongrec.models._history import HistoryBatch
from lifelongrec.models._validation import check_int, check_number, check_seed

__all__ = ["ALS", "BPR"]


def _grow(A: np.ndarray, n: int, fill: np.ndarray | None = None) -> np.ndarray:
    """``A`` with rows appended up to ``n`` (zeros, or ``fill`` broadcast)."""
    if A.shape[0] >= n:
        return A
    extra = np.zeros((n - A.shape[0], A.shape[1]), dtype=A.dtype)
    if fill is not None:
        extra[:] = fill
    return np.concatenate([A, extra])


class _Factorization(Recommender):
    """Shared scoring, similar items and save/load for factor models."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[rows] @ self.item_factors_.T, dtype=np.float32)

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}, {}

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self.user_factors_ = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self._model = None


class ALS(_Factorization):
    """Implicit-feedback ALS: ``implicit.cpu.als.AlternatingLeastSquares`` behind our contract.

    Parameters
    ----------
    factors
        Latent dimension (positive int).
    regularization
        L2 penalty on the factors (>= 0).
    alpha
        Confidence of an observed pair is ``alpha`` (implicit scales the binary matrix by
        it; an unobserved pair has weight 1), so ``alpha > 1`` weights positives more (> 0).
    iterations
        ALS sweeps (>= 1).
    random_state
        Seed of the initial factors (``None`` or a non-negative int). ALS solves each row
        on its own, so fits repeat exactly whatever the thread count.

    Notes
    -----
    ``partial_fit`` is implicit's own incremental update: the users the new events touched
    (new users included) are re-solved against the fixed item factors
    (``partial_fit_users``), then the touched items (new items included) against the
    updated user factors (``partial_fit_items``), then the touched users once more so
    they see the new items. Untouched rows keep their factors.

    :meth:`score_histories` folds a given history in with implicit's
    ``recalculate_user`` (one least-squares user solve against the item factors).
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 1.0,
        alpha: float = 5.0,
        iterations: int = 15,
        random_state: int | None = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_int("factors", self.factors, 1)
        check_number("regularization", self.regularization, positive=False)
        check_number("alpha", self.alpha, positive=True)
        check_int("iterations", self.iterations, 1)
        check_seed(self.random_state)

    def _implicit_model(self):
        from implicit.cpu.als import AlternatingLeastSquares

        if getattr(self, "_model", None) is None:
            self._model = AlternatingLeastSquares(
                factors=int(self.factors),
                regularization=float(self.regularization),
                alpha=float(self.alpha),
                iterations=int(self.iterations),
                random_state=self.random_state,
                dtype=np.float32,
            )
        m = self._model
        if getattr(self, "user_factors_", None) is not None:
            m.user_factors, m.item_factors = self.user_factors_, self.item_factors_
            m._user_norms = m._item_norms = m._YtY = m._XtX = None
        return m

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._model = None
        self.user_factors_ = self.item_factors_ = None
        with threadpool_limits(1, "blas"):
            m = self._implicit_model()
            m.fit(X, show_progress=False)
        self.user_factors_, self.item_factors_ = m.user_factors, m.item_factors

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        X = self.user_items_
        n_users, n_items = X.shape
        self.user_factors_ = _grow(self.user_factors_, n_users)
        self.item_factors_ = _grow(self.item_factors_, n_items)
        delta = delta.tocsr()
        users = np.flatnonzero(np.diff(delta.indptr))
        items = np.flatnonzero(np.diff(delta.tocsc().indptr))
        if len(users) == 0:
            return
        XT = X.T.tocsr()
        with threadpool_limits(1, "blas"):
            m = self._implicit_model()
            m.partial_fit_users(users, X[users])
            m.partial_fit_items(items, XT[items])
            m.partial_fit_users(users, X[users])
        self.user_factors_, self.item_factors_ = m.user_factors, m.item_factors

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # Fold-in: implicit's own ``recalculate_user`` solves each history row against the
        # fixed item factors, exactly as a user is solved in a fit sweep.
        with threadpool_limits(1, "blas"):
            U = self._implicit_model().recalculate_user(np.arange(len(hist)), hist.matrix())
        return np.asarray(U @ self.item_factors_.T, dtype=np.float32)


class BPR(_Factorization):
    """Bayesian Personalised Ranking: ``implicit.cpu.bpr.BayesianPersonalizedRanking``.

    Parameters
    ----------
    factors
        Latent dimension (positive int); implicit adds one more column for the item bias
        (the user side holds a constant 1 there), so ``user @ item.T`` includes the bias.
    learning_rate
        SGD step (> 0).
    regularization
        L2 penalty (>= 0).
    iterations
        Epochs over the positive pairs (>= 1).
    random_state
        Seed (``None`` or a non-negative int). Training runs on one thread, because
        implicit's multi-threaded BPR is lock-free and would not repeat.

    Notes
    -----
    ``partial_fit`` warm-starts implicit's BPR on the users the new events touched: new
    users get random rows (bias column 1), new items random rows (bias 0), and
    ``max(1, iterations // 10)`` epochs of SGD run over the touched users' full
    histories, against negatives drawn from all items. This updates the touched users'
    vectors and the item vectors those users' positives and negatives reach; other users
    keep theirs.

    implicit cannot recalculate a BPR user from a row, so :meth:`score_histories` folds a
    given history in by least squares: the ridge regression of the binary history row on
    the item factors (ridge weight ``regularization * n_items``). It approximates the
    vector BPR would learn for that history; it is not the same thing.
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int | None = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_int("factors", self.factors, 1)
        check_number("learning_rate", self.learning_rate, positive=True)
        check_number("regularization", self.regularization, positive=False)
        check_int("iterations", self.iterations, 1)
        check_seed(self.random_state)

    def _new_model(self, iterations: int, seed: int | None):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=int(self.factors),
            learning_rate=float(self.learning_rate),
            regularization=float(self.regularization),
            iterations=int(iterations),
            random_state=seed,
            num_threads=1,
            dtype=np.float32,
        )

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        with threadpool_limits(1, "blas"):
            m = self._new_model(int(self.iterations), self.random_state)
            m.fit(X, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(m.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(m.item_factors, dtype=np.float32)
        self._n_updates = 0

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        X = self.user_items_
        n_users, n_items = X.shape
        self._n_updates = getattr(self, "_n_updates", 0) + 1
        seed = None if self.random_state is None else int(self.random_state) + self._n_updates
        rng = np.random.default_rng(seed)
        scale = 1.0 / int(self.factors)  # implicit's own initial scale
        d = self.item_factors_.shape[1]
        new_u = (rng.random((n_users - self.user_factors_.shape[0], d)) - 0.5) * scale
        new_u[:, -1] = 1.0
        new_i = (rng.random((n_items - self.item_factors_.shape[0], d)) - 0.5) * scale
        new_i[:, -1] = 0.0
        uf = np.concatenate([self.user_factors_, new_u.astype(np.float32)])
        itf = np.concatenate([self.item_factors_, new_i.astype(np.float32)])
        users = np.flatnonzero(np.diff(delta.tocsr().indptr))
        if len(users):
            with threadpool_limits(1, "blas"):
                m = self._new_model(max(1, int(self.iterations) // 10), seed)
                m.user_factors = np.ascontiguousarray(uf[users])
                m.item_factors = itf
                m.fit(X[users], show_progress=False)
            uf[users] = m.user_factors
            itf = np.ascontiguousarray(m.item_factors)
        self.user_factors_, self.item_factors_ = uf, itf

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_[:, :-1]  # without the bias column

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # implicit's BPR cannot recalculate a user (its recalculate_user raises
        # NotImplementedError), so a history is folded in by least squares instead: the
        # ridge regression of the binary history row x on the item factors V (the bias
        # column included, as a free coefficient), u = (VᵀV + λI)⁻¹ Vᵀx, score = V u.
        # BPR's regularization weighs one sampled pair; the regression has one row per
        # item, so λ = regularization * n_items.
        V = self.item_factors_.astype(np.float64)
        lam = float(self.regularization) * len(V) + 1e-9
        A = V.T @ V + lam * np.eye(V.shape[1])
        U = np.linalg.solve(A, hist.dot(V).T).T
        return (U @ V.T).astype(np.float32)

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        super()._set_state(arrays, extra)
        self._n_updates = int(extra.get("n_updates", 0))

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        arrays, extra = super()._state()
        return arrays, {**extra, "n_updates": getattr(self, "_n_updates", 0)}
