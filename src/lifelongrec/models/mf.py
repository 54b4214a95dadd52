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

from lifelongrec._params import Integer, Number, Seed
from lifelongrec.data._schema import Dataset
from lifelongrec.models._base import Recommender
from lifelongrec.models._history import HistoryBatch

__all__ = ["ALS", "BPR"]


_CONTROLLER: list[Any] = []


def _one_blas_thread() -> Any:
    """``threadpool_limits(1, "blas")`` for a short call: the BLAS libraries are looked
    up once (``threadpool_limits`` scans every loaded library, ~3 ms, on each use)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _grow(A: np.ndarray, n: int, fill: np.ndarray | None = None) -> np.ndarray:
    """``A`` with rows appended up to ``n`` (zeros, or ``fill`` broadcast)."""
    if A.shape[0] >= n:
        return A
    extra = np.zeros((n - A.shape[0], A.shape[1]), dtype=A.dtype)
    if fill is not None:
        extra[:] = fill
    return np.concatenate([A, extra])


class _Factorization(Recommender):
    """Shared scoring, similar items, observe/forget and save/load for factor models.

    A user's factor row is computed by ``fit`` / ``partial_fit`` from their history at
    that time. :meth:`observe` changes histories without learning, so the rows of the
    users it touched (new users included) are *stale*: until a ``partial_fit`` that
    touches them (or a ``fit``) computes them again, those users are scored by folding
    their current history in (``_fold_in``, the path of :meth:`score_histories`) instead
    of by their stored row.
    """

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        """Scores ``(B, n_items)`` float32 of binary history rows ``X``."""
        raise NotImplementedError

    def _stale_mask(self, rows: np.ndarray) -> np.ndarray:
        stale = getattr(self, "_stale_users", None)
        if not stale:
            return np.zeros(len(rows), dtype=bool)
        return np.isin(rows, np.fromiter(stale, np.int64, len(stale)))

    def _score(self, rows: np.ndarray) -> np.ndarray:
        S = np.asarray(self.user_factors_[rows] @ self.item_factors_.T, dtype=np.float32)
        stale = self._stale_mask(rows)
        if stale.any():
            S[stale] = self._fold_in(self.user_items_[rows[stale]])
        return S

    def _fresh(self, rows: Any) -> None:
        """The factor rows of ``rows`` now follow their users' histories."""
        stale = getattr(self, "_stale_users", None)
        if stale:
            self._stale_users = stale - set(np.asarray(rows, dtype=np.int64).tolist())

    def _grow_factors(self, n_users: int, n_items: int) -> None:
        """Factor rows for new users and items (``observe``: not learned yet)."""
        self.user_factors_ = _grow(self.user_factors_, n_users)
        self.item_factors_ = _grow(self.item_factors_, n_items)

    def _observe(
        self,
        events: dict[str, np.ndarray],
        rows: np.ndarray,
        columns: np.ndarray,
        items: Any,
        n_users_before: int,
        n_items_before: int,
    ) -> None:
        self._grow_factors(len(self.user_ids_), len(self.item_ids_))
        self._stale_users = getattr(self, "_stale_users", set()) | set(rows.tolist())

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        uf = self.user_factors_.copy()
        uf[rows[rows < len(uf)]] = 0.0
        self.user_factors_ = uf
        self._fresh(rows)

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        stale = sorted(getattr(self, "_stale_users", set()))
        arrays = {"user_factors": self.user_factors_, "item_factors": self.item_factors_}
        if stale:
            arrays["stale_users"] = np.asarray(stale, dtype=np.int64)
        return arrays, {}

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self.user_factors_ = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        self._stale_users = set(np.asarray(arrays.get("stale_users", []), np.int64).tolist())
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
    ``recalculate_user`` (one least-squares user solve against the item factors); so is
    a user whose history :meth:`observe` changed, until ``partial_fit`` solves their row.
    :meth:`forget_users` zeroes the users' factor rows.
    """

    name = "als"
    _constraints = {
        "factors": Integer(1),
        "regularization": Number(0),
        "alpha": Number(0, low_open=True),
        "iterations": Integer(1),
        "random_state": Seed(),
    }

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
        if getattr(self, "user_factors_", None) is not None and (
            m.user_factors is not self.user_factors_ or m.item_factors is not self.item_factors_
        ):
            # implicit clears its own caches when it changes the factors; ours are new
            # arrays whenever we change them, so the caches (YtY) stay valid otherwise.
            m.user_factors, m.item_factors = self.user_factors_, self.item_factors_
            m._user_norms = m._item_norms = m._YtY = m._XtX = None
        return m

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._model = None
        self._stale_users = set()
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
        self._fresh(users)

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        # implicit's own ``recalculate_user`` solves each history row against the fixed
        # item factors, exactly as a user is solved in a fit sweep.
        m = self._implicit_model()
        threads = m.num_threads
        if X.shape[0] <= 64:  # a few users (serving): starting OpenMP threads costs more
            m.num_threads = 1
        try:
            with _one_blas_thread():
                U = m.recalculate_user(np.arange(X.shape[0]), X)
        finally:
            m.num_threads = threads
        return np.asarray(U @ self.item_factors_.T, dtype=np.float32)

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        return self._fold_in(hist.matrix())


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
    vector BPR would learn for that history; it is not the same thing. A user whose
    history :meth:`observe` changed is scored that way too, until ``partial_fit`` trains
    their row. :meth:`forget_users` resets the users' rows (zeros, bias input 1).
    """

    name = "bpr"
    _constraints = {
        "factors": Integer(1),
        "learning_rate": Number(0, low_open=True),
        "regularization": Number(0),
        "iterations": Integer(1),
        "random_state": Seed(),
    }

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
        self._stale_users = set()

    def _new_rows(self, n_users: int, n_items: int, rng: np.random.Generator) -> tuple:
        """Factor tables with random rows for new users (bias column 1) and items (bias
        0), at implicit's own initial scale."""
        scale = 1.0 / int(self.factors)
        d = self.item_factors_.shape[1]
        new_u = (rng.random((n_users - self.user_factors_.shape[0], d)) - 0.5) * scale
        new_u[:, -1] = 1.0
        new_i = (rng.random((n_items - self.item_factors_.shape[0], d)) - 0.5) * scale
        new_i[:, -1] = 0.0
        uf = np.concatenate([self.user_factors_, new_u.astype(np.float32)])
        itf = np.concatenate([self.item_factors_, new_i.astype(np.float32)])
        return uf, itf

    def _grow_factors(self, n_users: int, n_items: int) -> None:
        # As partial_fit starts new rows; seeded by the table sizes, so repeatable.
        if (n_users, n_items) == (len(self.user_factors_), len(self.item_factors_)):
            return
        seed = None
        if self.random_state is not None:
            seed = [int(self.random_state), len(self.user_factors_), len(self.item_factors_)]
        rng = np.random.default_rng(seed)
        self.user_factors_, self.item_factors_ = self._new_rows(n_users, n_items, rng)

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        X = self.user_items_
        n_users, n_items = X.shape
        self._n_updates = getattr(self, "_n_updates", 0) + 1
        seed = None if self.random_state is None else int(self.random_state) + self._n_updates
        rng = np.random.default_rng(seed)
        uf, itf = self._new_rows(n_users, n_items, rng)
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
        self._fresh(users)

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_[:, :-1]  # without the bias column

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        super()._forget_rows(rows, ids)
        self.user_factors_[rows[rows < len(self.user_factors_)], -1] = 1.0  # the bias input

    def _score_history(self, hist: HistoryBatch) -> np.ndarray:
        # implicit's BPR cannot recalculate a user (its recalculate_user raises
        # NotImplementedError), so a history is folded in by least squares instead: the
        # ridge regression of the binary history row x on the item factors V (the bias
        # column included, as a free coefficient), u = (VᵀV + λI)⁻¹ Vᵀx, score = V u.
        # BPR's regularization weighs one sampled pair; the regression has one row per
        # item, so λ = regularization * n_items.
        return self._fold_in_products(hist.dot(self.item_factors_.astype(np.float64)))

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        return self._fold_in_products(np.asarray(X @ self.item_factors_.astype(np.float64)))

    def _fold_in_products(self, XV: np.ndarray) -> np.ndarray:
        """Scores from the products ``X V`` (``(B, d)``) of binary history rows with the
        item factors: the ridge solve above. ``VᵀV + λI`` is kept while the item
        factors are the same array (partial_fit and observe make new ones)."""
        V = self.item_factors_
        cached = getattr(self, "_ridge", None)
        if cached is None or cached[0] is not V:
            V64 = V.astype(np.float64)
            lam = float(self.regularization) * len(V) + 1e-9
            cached = self._ridge = (V, V64.T @ V64 + lam * np.eye(V.shape[1]))
        U = np.linalg.solve(cached[1], np.asarray(XV, dtype=np.float64).T).T
        return (U @ V.astype(np.float64).T).astype(np.float32)

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        super()._set_state(arrays, extra)
        self._n_updates = int(extra.get("n_updates", 0))

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        arrays, extra = super()._state()
        return arrays, {**extra, "n_updates": getattr(self, "_n_updates", 0)}
