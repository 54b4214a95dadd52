"""Optional abilities of a model, as small runtime-checkable Protocols checked where
they are needed (``isinstance(model, OnlineBuffering)``), not ``getattr`` probes.

Every model has the common :class:`~lifelongrec.models.Recommender` contract; a model
that also has one of these abilities is used accordingly:

* :class:`OnlineBuffering`: ``observe`` also buffers material for online parameter
  steps (``online_step``); a caller that observes for state only discards it.
* :class:`LearnsFromExposure`: ``observe_impressions`` takes what users were shown, and
  the online steps learn from the items they did not act on while the model's
  ``exposure_weight`` is above 0.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["LearnsFromExposure", "OnlineBuffering"]


@runtime_checkable
class OnlineBuffering(Protocol):
    """A model whose ``observe`` buffers events for online parameter steps."""

    @property
    def n_online_pending(self) -> int:
        """Events observed since the last :meth:`online_step`."""
        ...

    def online_step(self, steps: int = 1) -> Any:
        """Take ``steps`` parameter steps on the buffered events (0: drop them)."""
        ...


@runtime_checkable
class LearnsFromExposure(Protocol):
    """A model whose online steps learn from impressions (what users were shown)."""

    exposure_weight: float

    def observe_impressions(self, impressions: Any) -> Any:
        """Take impressions (``user_id``, ``item_id``, ``timestamp``, ...) for the next
        online steps."""
        ...
