"""Evaluation: ranking metrics (pure functions) and protocols that drive models from outside.

``lifelongrec.evaluation.metrics`` re-exports the metric functions of
:mod:`lifelongrec.metrics` (a bottom layer); :func:`evaluate_model` runs
the offline protocol on a :class:`~lifelongrec.data.Split`; :func:`evaluate_recommendations`
aggregates ranked lists into the flat report. :func:`prequential` runs the streaming
protocol (evaluate each time window, then learn it; forgetting as backward transfer),
:func:`evaluate_window` is its per-window step, :class:`DriftMonitor` watches its hit
stream for drift (``river.drift``: ADWIN, Page-Hinkley) and :func:`plot_prequential`
draws runs.
"""

from lifelongrec.evaluation import metrics
from lifelongrec.evaluation._drift import DETECTORS, DriftMonitor
from lifelongrec.evaluation._offline import evaluate_model, evaluate_recommendations
from lifelongrec.evaluation._plots import plot_prequential
from lifelongrec.evaluation._prequential import evaluate_window, prequential
from lifelongrec.evaluation.metrics import (
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
    "DETECTORS",
    "RANKING_METRICS",
    "DriftMonitor",
    "auc",
    "coverage_at_k",
    "evaluate_model",
    "evaluate_recommendations",
    "evaluate_window",
    "f1_at_k",
    "hit_rate_at_k",
    "hit_rate_from_ranks",
    "map_at_k",
    "metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "ndcg_from_ranks",
    "ndcg_from_scores",
    "plot_prequential",
    "precision_at_k",
    "prequential",
    "ranking_metrics",
    "recall_at_k",
]
