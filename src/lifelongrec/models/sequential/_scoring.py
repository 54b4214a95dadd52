"""User and item vectors and the scores made of them (a mixin of the sequential model):
the vectors a service indexes, the scores of stored and of given histories, free item
rows masked and the age biases of ``item_age`` / ``release_attribute`` added."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lifelongrec.models._base import _is_single
from lifelongrec.models.sequential._ages import age_columns, query_clocks
from lifelongrec.models.sequential._histories import given_inputs
from lifelongrec.models.sequential._modules import encode_users

__all__ = ["Scoring"]


class Scoring:
    """Vectors and scores of a fitted sequential model (it gives ``_module``,
    ``_history_store``, ``_events``, ``_item_index``, ``_item_cache``,
    ``_torch_device``, ``item_vocab_``, ``item_ids_``, ``last_timestamp_``,
    ``_known_rows`` and ``_item_rows``); placed before ``Recommender``, whose
    ``_cold_scores`` and ``_similar_scores`` it masks.

    ``_age_cache`` and ``_item_cache`` are caches: ``_item_cache`` is dropped by
    whatever changes the module's weights or item rows."""

    def _age_column(self) -> np.ndarray | None:
        """The age biases of every item row for the next event (one second after
        ``last_timestamp_``), ``(N,)``, or ``None`` without ``item_age`` and
        ``release_attribute``; new items share their mass among the live ones."""
        tower = self._module.item_tower
        if not tower.has_age:
            return None
        key = (id(tower), *tower.age_version, self.last_timestamp_)  # what it depends on
        cached = getattr(self, "_age_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        col = age_columns(tower, np.array([int(self.last_timestamp_)]), self.item_vocab_.active)[0]
        self._age_cache = (key, col)
        return col

    @torch.no_grad()
    def _item_matrix(self) -> np.ndarray:
        if self._item_cache is None:
            self._module.eval()
            self._item_cache = self._module.item_tower.all().cpu().numpy()
        return self._item_cache

    def _outputs(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return encode_users(self._module, self._history_store.arrays, rows, self._torch_device)

    def _vector_width(self) -> int:
        """Width of :meth:`user_vectors` and :meth:`item_vectors`: ``dim``, plus one with
        ``item_age`` (a 1 in user vectors, the age bias in item vectors)."""
        return int(self.dim) + bool(self._module.item_tower.has_age)

    def _with_one(self, U: np.ndarray) -> np.ndarray:
        """User vectors with the 1 that meets the items' age bias (``item_age``)."""
        if not self._module.item_tower.has_age:
            return U
        return np.hstack([U, np.ones((len(U), 1), U.dtype)])

    def user_vectors(self, users: Any) -> np.ndarray:
        """User vectors ``(n, W)`` (``(W,)`` for one id) from the stored histories:
        ``W = dim``, and with ``item_age`` one more, a 1 (see :meth:`item_vectors`)."""
        rows = self._known_rows(users)
        width = self._vector_width()
        U = self._with_one(self._outputs(rows)["user"]) if len(rows) else np.zeros((0, width))
        return U[0] if _is_single(users) else U

    def user_state(self, users: Any) -> dict[str, np.ndarray]:
        """A copy of the users' stored recent events (the encoder's input), for
        :meth:`encode_state`. Copying is cheap; a service copies under its lock and
        encodes outside it, so state updates never wait for an encoder pass."""
        return self._history_store.inputs(self._known_rows(users))

    def encode_state(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """User vectors ``(n, W)`` of a :meth:`user_state` copy (equal to
        :meth:`user_vectors` of those users at the time of the copy)."""
        if len(state["items"]) == 0:
            return np.zeros((0, self._vector_width()), np.float32)
        rows = np.arange(len(state["items"]))
        return self._with_one(encode_users(self._module, state, rows, self._torch_device)["user"])

    def _scores_of(self, U: np.ndarray, clocks: np.ndarray | None = None) -> np.ndarray:
        """Scores of user vectors ``U`` ``(n, dim)`` over every item row (free rows at
        ``-inf``), with the age biases of ``item_age``/``release_attribute`` read after
        each row's clock ``clocks`` ``(n,)`` (``None``: the model's)."""
        S = (U @ self._item_matrix().T).astype(np.float32)
        if clocks is not None and self._module.item_tower.has_age:
            at, inverse = np.unique(clocks, return_inverse=True)
            S += age_columns(self._module.item_tower, at, self.item_vocab_.active)[inverse]
        elif (age := self._age_column()) is not None:
            S += age[None, :]
        return self._free_item_mask(S)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self._scores_of(self._outputs(np.asarray(rows))["user"])

    def _score_history(self, hist: Any) -> np.ndarray:
        """Scores of given histories (``Recommender.score_histories``): each query's last
        ``max_len`` visible events encoded as a stored history is, whatever the model
        stored about the user. Age biases are read at each query's time: one second
        before its ``before`` (the model's clock when it has none)."""
        inputs = given_inputs(
            hist, self._events, self._item_index, int(self.max_len), int(self.n_time_buckets)
        )
        U = encode_users(self._module, inputs, np.arange(len(hist)), self._torch_device)["user"]
        return self._scores_of(U, query_clocks(hist.before, int(self.last_timestamp_)))

    def _free_item_mask(self, S: np.ndarray) -> np.ndarray:
        """``S`` with the columns of free item rows at ``-inf`` (never recommended)."""
        free = self.item_vocab_.free_rows
        if len(free):
            S[..., free] = -np.inf
        return S

    def _cold_scores(self) -> np.ndarray:
        return self._free_item_mask(super()._cold_scores())

    def _similar_scores(self, rows: np.ndarray) -> np.ndarray:
        return self._free_item_mask(super()._similar_scores(rows))

    def _item_vectors(self) -> np.ndarray:
        return self._item_matrix()

    def item_vectors(self, items: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Item ids ``(n,)`` and vectors ``(n, W)`` (float32): a user's score for an item
        is ``user_vectors(user) @ vector``. ``items=None``: every live item (free rows
        left out), for an ANN index (``lifelongrec.serving.ItemIndex``); else those ids,
        in that order (an unknown id raises :class:`UnknownIdError`), copying only
        their rows. With ``item_age`` or ``release_attribute`` the last column is the
        item's age biases as of ``last_timestamp_`` (an index built from them keeps that
        clock until rebuilt)."""
        self._check_fitted()
        if items is None:
            rows = np.flatnonzero(np.asarray(self.item_vocab_.active, bool))
            V = self._item_matrix()[rows]
        else:
            rows = self._item_rows([items] if _is_single(items) else list(items))
            if self._item_cache is not None or len(rows) * 4 > len(self.item_ids_):
                V = self._item_matrix()[rows]
            else:  # a few items after the cache was dropped (new items): only their rows
                with torch.no_grad():
                    self._module.eval()
                    shifted = torch.as_tensor(rows + 1, device=self._torch_device)
                    V = self._module.item_tower(shifted).cpu().numpy()
        age = self._age_column()
        if age is not None:
            V = np.hstack([V, age[rows, None]])
        return self.item_ids_[rows].astype(object), np.ascontiguousarray(V, np.float32)
