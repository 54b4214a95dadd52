"""The ranking metrics, as :mod:`lifelongrec.metrics` (a bottom layer every layer may
import) defines them; kept here so ``lifelongrec.evaluation.metrics`` still works."""

from lifelongrec.metrics import (
    RANKING_METRICS,
    auc,
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    hit_rate_from_ranks,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    ndcg_from_ranks,
    ndcg_from_scores,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

__all__ = [
    "RANKING_METRICS",
    "auc",
    "coverage_at_k",
    "f1_at_k",
    "hit_rate_at_k",
    "hit_rate_from_ranks",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "ndcg_from_ranks",
    "ndcg_from_scores",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]
