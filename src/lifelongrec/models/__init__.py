"""Recommenders behind one contract: fit, partial_fit, recommend, similar_items, save, load."""

from __future__ import annotations

from typing import Any

from lifelongrec._errors import ParameterError
from lifelongrec.models._base import Recommender
from lifelongrec.models._catalog import MODELS
from lifelongrec.models.content import ContentRecommender
from lifelongrec.models.ease import EASE
from lifelongrec.models.hybrid import Hybrid
from lifelongrec.models.knn import ItemKNN, UserKNN
from lifelongrec.models.mf import ALS, BPR
from lifelongrec.models.popularity import Popularity
from lifelongrec.models.sequential import SequentialRecommender

# Every model by its short name, in the order tables list them (see _catalog).
MODELS.update(
    (cls.name, cls)
    for cls in (
        Popularity,
        ItemKNN,
        UserKNN,
        EASE,
        ALS,
        BPR,
        ContentRecommender,
        Hybrid,
        SequentialRecommender,
    )
)


def get_model(name: str, **params: Any) -> Recommender:
    """A new, unfitted model by short name (see :data:`MODELS`) with hyperparameters."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ParameterError("model", name, f"one of {sorted(MODELS)}") from None
    return cls(**params)


__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "MODELS",
    "ContentRecommender",
    "Hybrid",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "UserKNN",
    "get_model",
]
