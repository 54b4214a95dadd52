"""Evaluation: ranking metrics (pure functions) and protocols that drive models from outside.

``lifelongrec.evaluation.metrics`` re-exports the metric functions of
:mod:`lifelongrec.metrics` (a bottom layer); :func:`evaluate_model` runs
the offline protocol on a :class:`~lifelongrec.data.Split`; :func:`evaluate_recommendations`
aggregates ranked lists into the flat report. :func:`prequential` runs the streaming
protocol (evaluate each time window, then learn it; forgetting as backward transfer),
:func:`evaluate_window` is its per-window step, :class:`DriftMonitor` watches its hit
stream for drift (``river.drift``: ADWIN, Page-Hinkley) and :func:`plot_prequential`
draws runs. The experiment runners :func:`run_evaluation`, :func:`compare_models` and
:func:`run_stream` are what ``lifelongrec evaluate``, ``demo`` and ``stream`` run;
:func:`msprt` is the always-valid sequential test of online experiments and
:func:`team_draft` their interleaving, :func:`run_experiment` runs one in the closed-loop
world; :func:`simulate` runs strategies in a closed-loop world that reacts to what they show
(``lifelongrec simulate``), :func:`drive_service` plays that world against a running
service over HTTP (``lifelongrec simulate --url``);
:func:`evaluation_report`, :func:`comparison_report` and :func:`stream_report` are the
text those commands print.
"""

from lifelongrec.evaluation import metrics
from lifelongrec.evaluation._drift import DETECTORS, DriftMonitor
from lifelongrec.evaluation._experiments import (
    MSPRT_TAU,
    SequentialVerdict,
    interleaving_credit,
    msprt,
    msprt_mean,
    team_draft,
)
from lifelongrec.evaluation._html import html_report, report_kind
from lifelongrec.evaluation._offline import evaluate_model, evaluate_recommendations
from lifelongrec.evaluation._online_experiment import (
    EXPERIMENT_DESIGNS,
    Moments,
    assign_arm,
    run_experiment,
    sequential_look,
)
from lifelongrec.evaluation._plots import plot_prequential
from lifelongrec.evaluation._prequential import catalogue_times, evaluate_window, prequential
from lifelongrec.evaluation._reports import (
    comparison_report,
    evaluation_report,
    format_table,
    metric_columns,
    prequential_report,
    stream_report,
)
from lifelongrec.evaluation._runners import (
    DRIFT_NONE,
    STREAM_ALL,
    check_stream_arguments,
    compare_models,
    parse_params,
    run_evaluation,
    run_stream,
)
from lifelongrec.evaluation._simulate import (
    SIMULATION_LIFELONG,
    SIMULATION_STRATEGIES,
    ClosedLoopWorld,
    DayTally,
    SimulationSettings,
    gini,
    plot_simulation,
    simulate,
    simulation_report,
)
from lifelongrec.evaluation._simulate_http import ServiceCallError, drive_service
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
    "html_report",
    "report_kind",
    "EXPERIMENT_DESIGNS",
    "Moments",
    "assign_arm",
    "run_experiment",
    "sequential_look",
    "MSPRT_TAU",
    "SequentialVerdict",
    "interleaving_credit",
    "msprt",
    "msprt_mean",
    "team_draft",
    "SIMULATION_LIFELONG",
    "SIMULATION_STRATEGIES",
    "ClosedLoopWorld",
    "DayTally",
    "ServiceCallError",
    "SimulationSettings",
    "gini",
    "plot_simulation",
    "simulate",
    "simulation_report",
    "drive_service",
    "DETECTORS",
    "DRIFT_NONE",
    "RANKING_METRICS",
    "STREAM_ALL",
    "DriftMonitor",
    "auc",
    "check_stream_arguments",
    "compare_models",
    "comparison_report",
    "coverage_at_k",
    "evaluate_model",
    "evaluate_recommendations",
    "catalogue_times",
    "evaluate_window",
    "evaluation_report",
    "f1_at_k",
    "format_table",
    "hit_rate_at_k",
    "hit_rate_from_ranks",
    "map_at_k",
    "metric_columns",
    "metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "ndcg_from_ranks",
    "ndcg_from_scores",
    "parse_params",
    "plot_prequential",
    "precision_at_k",
    "prequential",
    "prequential_report",
    "ranking_metrics",
    "recall_at_k",
    "run_evaluation",
    "run_stream",
    "stream_report",
]
