"""Training: incremental-update strategies, the online learner, and the torch toolkit.

The toolkit the sequential model's fit, partial_fit and online steps are composed from
(sequences and training windows, losses, anti-forgetting terms: :class:`Distillation`,
:class:`EWC` with :func:`estimate_fisher`; replay windows: :func:`windows_ending_at`,
:func:`concat_windows`; optimiser state, the epoch loop and early stopping) lives in
:mod:`lifelongrec.nn`, a bottom layer below ``models`` (DESIGN: a module imports only
from packages to its left; bottom layers are importable by all), and is re-exported here
as the public training toolkit. :mod:`lifelongrec.training._strategies` holds the update
strategies a model learns a stream of time windows with (static, retrain, finetune,
lifelong with a replay buffer, distillation / EWC and a reaction to drift);
:mod:`lifelongrec.training._online` the online learner (:class:`OnlineLearner`: state at
once, parameters in mini-batches). :mod:`lifelongrec.training._capabilities` names the
optional abilities of a model that both use, as Protocols checked with ``isinstance``
(:class:`LearnsFromTeacher`, :class:`UpdateBudget`, :class:`UpdateEpochs`,
:class:`OnlineBuffering`, :class:`LearnsFromExposure`).
"""

from lifelongrec.nn import (
    EWC,
    Distillation,
    EarlyStopping,
    MultiTaskLoss,
    RowAdamW,
    TrainConfig,
    Windows,
    clip_grad_norm,
    concat_windows,
    estimate_fisher,
    exposure_loss,
    full_softmax_loss,
    gap_buckets,
    gbce_beta,
    gbce_loss,
    grow_parameter,
    load_optimizer_arrays,
    make_optimizer,
    minibatches,
    mixed_log_q,
    optimizer_arrays,
    order_events,
    positions_from_end,
    right_align,
    sampled_softmax_loss,
    soft_cross_entropy,
    target_ranks,
    train_epoch,
    training_windows,
    windows_ending_at,
)
from lifelongrec.training._capabilities import (
    LearnsFromExposure,
    LearnsFromTeacher,
    OnlineBuffering,
    UpdateBudget,
    UpdateEpochs,
    partial_fit_keywords,
)
from lifelongrec.training._online import OnlineLearner, OnlineStats, online_events
from lifelongrec.training._strategies import (
    STRATEGIES,
    FineTune,
    Lifelong,
    ReservoirBuffer,
    Retrain,
    Static,
    Strategy,
    get_strategy,
)
from lifelongrec.training._transitions import TransitionDrift

__all__ = [
    "EWC",
    "STRATEGIES",
    "Distillation",
    "EarlyStopping",
    "FineTune",
    "LearnsFromExposure",
    "LearnsFromTeacher",
    "Lifelong",
    "MultiTaskLoss",
    "OnlineBuffering",
    "OnlineLearner",
    "OnlineStats",
    "ReservoirBuffer",
    "Retrain",
    "Static",
    "Strategy",
    "TrainConfig",
    "TransitionDrift",
    "UpdateBudget",
    "UpdateEpochs",
    "Windows",
    "concat_windows",
    "estimate_fisher",
    "exposure_loss",
    "full_softmax_loss",
    "gap_buckets",
    "gbce_beta",
    "gbce_loss",
    "get_strategy",
    "grow_parameter",
    "load_optimizer_arrays",
    "make_optimizer",
    "RowAdamW",
    "clip_grad_norm",
    "minibatches",
    "mixed_log_q",
    "online_events",
    "optimizer_arrays",
    "order_events",
    "partial_fit_keywords",
    "positions_from_end",
    "right_align",
    "sampled_softmax_loss",
    "soft_cross_entropy",
    "target_ranks",
    "train_epoch",
    "training_windows",
    "windows_ending_at",
]
