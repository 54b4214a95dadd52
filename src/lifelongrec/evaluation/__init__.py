"""Evaluation: ranking metrics (pure functions) and protocols that drive models from outside.

``lifelongrec.evaluation.metrics`` holds the metric functions; :func:`evaluate_model` runs
the offline protocol on a :class:`~lifelongrec.data.Split`; :func:`evaluate_recommendations`
aggregates ranked lists into the flat report both protocols share.
"""

from lifelongrec.evaluation import metrics
from lifelongrec.evaluation._offline import evaluate_model, evaluate_recommendations
from lifelongrec.evaluation.metrics import (
    RANKING_METRICS,
    auc,
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    ndcg_from_scores,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

__all__ = [
    "RANKING_METRICS",
    "auc",
    "coverage_at_k",
    "evaluate_model",
    "evaluate_recommendations",
    "f1_at_k",
    "hit_rate_at_k",
    "map_at_k",
    "metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "ndcg_from_scores",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]
