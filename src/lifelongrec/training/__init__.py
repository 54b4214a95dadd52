"""Training: the pieces the sequential model's fit and partial_fit are built from.

Full fit loop pieces (batching, losses, early stopping, optimiser) live in
:mod:`lifelongrec.training._sequential`; incremental strategies (replay, distillation,
EWC) and the online learner will join them (see ../shared/DESIGN.md).
"""

from lifelongrec.training._sequential import (
    EarlyStopping,
    MultiTaskLoss,
    TrainConfig,
    Windows,
    full_softmax_loss,
    gap_buckets,
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
)

__all__ = [
    "EarlyStopping",
    "MultiTaskLoss",
    "TrainConfig",
    "Windows",
    "full_softmax_loss",
    "gap_buckets",
    "grow_parameter",
    "load_optimizer_arrays",
    "make_optimizer",
    "minibatches",
    "mixed_log_q",
    "optimizer_arrays",
    "order_events",
    "positions_from_end",
    "right_align",
    "sampled_softmax_loss",
    "soft_cross_entropy",
    "target_ranks",
    "train_epoch",
    "training_windows",
]
