"""Optional abilities of a model that training uses, as small Protocols checked with
``isinstance`` where they are needed (DESIGN: "Optional abilities of a model ... are small
Protocols checked where they are needed, not getattr probes").

Every model learns through the common :class:`~lifelongrec.models.Recommender` contract
(``fit``, ``partial_fit``, ``observe``, ...). A model that also has an ability below is
trained better by :class:`~lifelongrec.training.Lifelong` or faster by
:class:`~lifelongrec.training.OnlineLearner`:

* :class:`LearnsFromTeacher`: ``set_teacher(previous)`` receives a frozen copy of the
  model as it was before each lifelong update (distillation, EWC).
* :class:`UpdateEpochs`: a ``partial_fit_epochs`` hyperparameter (the passes of an
  update), which a heavier update after a drift multiplies, passed through
  ``partial_fit``'s ``epochs`` keyword (see :func:`partial_fit_keywords`).
* :class:`UpdateBudget`: a ``partial_fit_budget`` hyperparameter (the share of a refit's
  compute an update spends when ``partial_fit_epochs`` is ``None``), which a heavier
  update after a drift multiplies, passed through ``partial_fit``'s ``budget``
  keyword.
* :class:`OnlineBuffering`: ``observe`` also buffers material for online parameter
  steps (``online_step``), the online learner's fast path. Defined beside the models
  (``lifelongrec.models._capabilities``: the hybrid model uses it too) and re-exported
  here; the service uses the same Protocol.
* :class:`LearnsFromExposure`: ``observe_impressions`` feeds the online steps what
  users were shown (exposure-aware learning, when ``exposure_weight > 0``); defined
  beside the models and re-exported here.

A runtime Protocol check sees only that a member exists, not which arguments a method
takes; the optional keywords of ``partial_fit`` (``replay``, ``epochs``, ``budget``) are therefore
read from its signature by :func:`partial_fit_keywords`, the one place that does.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

from lifelongrec.models._capabilities import LearnsFromExposure, OnlineBuffering

__all__ = [
    "PARTIAL_FIT_KEYWORDS",
    "LearnsFromExposure",
    "LearnsFromTeacher",
    "OnlineBuffering",
    "UpdateBudget",
    "UpdateEpochs",
    "partial_fit_keywords",
]

#: The optional keywords of ``partial_fit`` a strategy passes to a model that takes
#: them: ``replay`` (past events to rehearse, apart from the new ones), ``epochs``
#: (the passes of this one update) and ``budget`` (the compute share of this one
#: update); the hyperparameters stay as they are.
PARTIAL_FIT_KEYWORDS: frozenset[str] = frozenset({"replay", "epochs", "budget"})


@runtime_checkable
class LearnsFromTeacher(Protocol):
    """A model that learns from its previous version."""

    def set_teacher(self, previous: Any) -> None:
        """Take ``previous`` (a frozen deep copy of this model before the update) as the
        teacher of the next ``partial_fit``."""
        ...


@runtime_checkable
class UpdateEpochs(Protocol):
    """A model whose updates run ``partial_fit_epochs`` passes (``None``: the model
    decides) unless ``partial_fit``'s ``epochs`` keyword says otherwise (when it takes one:
    :func:`partial_fit_keywords`)."""

    partial_fit_epochs: int | None


@runtime_checkable
class UpdateBudget(Protocol):
    """A model whose updates spend ``partial_fit_budget`` of a refit's estimated compute
    when its ``partial_fit_epochs`` is ``None``, unless ``partial_fit``'s ``budget``
    keyword says otherwise."""

    partial_fit_budget: float


def partial_fit_keywords(model: Any) -> frozenset[str]:
    """Which of :data:`PARTIAL_FIT_KEYWORDS` the model's ``partial_fit`` takes.

    >>> from lifelongrec.models import Popularity, SequentialRecommender
    >>> sorted(partial_fit_keywords(SequentialRecommender()))
    ['budget', 'epochs', 'replay']
    >>> partial_fit_keywords(Popularity())
    frozenset()
    """
    taken = inspect.signature(model.partial_fit).parameters
    return frozenset(name for name in PARTIAL_FIT_KEYWORDS if name in taken)
