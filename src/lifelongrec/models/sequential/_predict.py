"""What the auxiliary heads predict for known users: the type of their next event and
the categories of their next item (a mixin of the sequential model)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import softmax

from lifelongrec._errors import ParameterError, UnknownIdError
from lifelongrec._params import check_k
from lifelongrec.models._base import _is_single

__all__ = ["HeadPredictions"]


class HeadPredictions:
    """``predict_event_type`` and ``category_interest`` of a fitted sequential model
    (it gives ``_check_fitted``, ``user_rows``, ``_outputs`` (rows -> the heads'
    outputs), ``event_types_``, ``event_mode_`` and ``categories_``)."""

    def _known_rows(self, users: Any) -> np.ndarray:
        rows = self.user_rows(users)
        if (rows < 0).any():
            ids = [users] if _is_single(users) else list(users)
            raise UnknownIdError(
                "user",
                [ids[j] for j in np.flatnonzero(rows < 0)],
                hint="the heads need the user's history; unknown users have none",
            )
        return rows

    def predict_event_type(self, users: Any) -> tuple[np.ndarray, np.ndarray]:
        """Probability of each type for the users' next event.

        Returns ``(classes (T,), probs)``: ``probs`` is ``(T,)`` for one id, ``(n, T)``
        for a batch; rows sum to 1. Raises :class:`ParameterError` when the head is off
        (one event type and no ratings) and :class:`UnknownIdError` for unknown users.
        """
        self._check_fitted()
        if not self.event_types_:
            raise ParameterError(
                "predict_event_type",
                self.event_mode_,
                "a model fitted on two or more event types or on rated events",
            )
        rows = self._known_rows(users)
        logits = self._outputs(rows).get("event_type") if len(rows) else None
        P = softmax(logits, axis=1) if logits is not None else np.zeros((0, len(self.event_types_)))
        classes = np.asarray(self.event_types_, dtype=object)
        return classes, (P[0] if _is_single(users) else P)

    def category_interest(self, users: Any, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` categories the users' next item most likely belongs to, with
        probabilities (softmax over all categories), best first.

        Shapes as in :meth:`recommend`: ``(k,)`` for one id, ``(n, k)`` for a batch.
        """
        self._check_fitted()
        k = check_k(k)
        C = len(self.categories_)
        if C < 2:
            raise ParameterError(
                "category_interest",
                C,
                "a model fitted with an items catalogue of two or more categories",
            )
        rows = self._known_rows(users)
        P = softmax(self._outputs(rows)["category"] if len(rows) else np.zeros((0, C)), axis=1)
        idx = np.argsort(-P, axis=1, kind="stable")[:, : min(int(k), C)]
        names = np.asarray(self.categories_, dtype=object)[idx]
        probs = np.take_along_axis(P, idx, axis=1)
        return (names[0], probs[0]) if _is_single(users) else (names, probs)
