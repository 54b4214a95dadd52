"""Optional abilities of a model that the service uses, as small Protocols checked where
they are needed (DESIGN: "Optional abilities of a model ... are small Protocols checked
where they are needed, not getattr probes").

Every model serves through the common :class:`~lifelongrec.models.Recommender`
contract (``recommend``, ``similar_items``, ``observe``, ``forget_users``, ...). A model
that also has the abilities below is served faster or explained better:

* :class:`VectorModel`: scores are ``user vector . item vector``; the service builds a
  retrieval index over its item vectors and encodes a copy of a user's state outside
  its locks. Others are scored exactly through their own ``recommend``.
* :class:`OnlineBuffering`: ``observe`` also buffers material for online parameter
  steps; the live model only observes for its state, so the service discards it. The
  one definition is the models layer's (the hybrid model and the online learner check
  the same Protocol).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from lifelongrec.models import Recommender
from lifelongrec.models._capabilities import OnlineBuffering

__all__ = ["OnlineBuffering", "VectorModel", "discard_online_material", "has_vectors"]


@runtime_checkable
class VectorModel(Protocol):
    """A model that scores by user vector . item vector and can copy a user's state to
    encode it later (outside a lock)."""

    def item_vectors(self, items: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Item ids ``(n,)`` and vectors ``(n, D)``; ``None``: every live item."""
        ...

    def user_state(self, users: Any) -> Any:
        """A copy of what the users' vectors are computed from."""
        ...

    def encode_state(self, state: Any) -> np.ndarray:
        """User vectors ``(n, D)`` of a :meth:`user_state` copy."""
        ...


def has_vectors(model: Recommender) -> bool:
    """Whether the model is a :class:`VectorModel` (the index path)."""
    return isinstance(model, VectorModel)


def discard_online_material(model: Recommender) -> None:
    """The live model observes for its state only; it never trains."""
    if isinstance(model, OnlineBuffering) and model.n_online_pending:
        model.online_step(0)
