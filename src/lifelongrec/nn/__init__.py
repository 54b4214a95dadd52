"""The torch toolkit: a bottom layer that models and training both build on.

Nothing here knows a model class: each piece takes arrays, tensors or a module with a
small, documented duck-typed interface, so it can be unit-tested on its own. It imports
nothing of lifelongrec's, and every layer may import it (:mod:`lifelongrec.training`
re-exports it as the public training toolkit).

* **Sequences** (numpy, vectorised; :mod:`~lifelongrec.nn._sequences`):
  :func:`order_events`, :func:`positions_from_end`, :func:`gap_buckets`,
  :func:`right_align`, :func:`training_windows`, :func:`windows_ending_at` (replay),
  :func:`concat_windows`; :class:`Windows` (padded training windows),
  :func:`minibatches` and :func:`ts_hours` (the clock of item age).
* **Losses** (:mod:`~lifelongrec.nn._losses`, :mod:`~lifelongrec.nn._multitask`):
  :func:`full_softmax_loss`, :func:`sampled_softmax_loss` (logQ-corrected, in-batch plus
  uniform negatives, :func:`mixed_log_q`), :func:`gbce_loss` (gSASRec's generalised
  binary cross-entropy, :func:`gbce_beta`), :func:`soft_cross_entropy`,
  :func:`exposure_loss` (targets above the items shown and skipped), and
  :class:`MultiTaskLoss`, the train wrapper that turns a batch into one loss.
* **Forgetting** (:mod:`~lifelongrec.nn._forgetting`): :class:`Distillation` from a
  frozen earlier version, :class:`EWC` with :func:`estimate_fisher`.
* **Loop pieces** (:mod:`~lifelongrec.nn._loop`): :class:`TrainConfig`,
  :func:`make_optimizer`, :func:`train_epoch`, :class:`EarlyStopping`,
  :func:`target_ranks` (full-ranking validation), :func:`grow_parameter` (add rows to an
  embedding while keeping the optimiser state), :func:`optimizer_arrays` /
  :func:`load_optimizer_arrays` (AdamW state as numpy arrays, no pickle).
* **Sparse rows** (:mod:`~lifelongrec.nn._sparse`): :class:`RowAdamW` (AdamW that
  updates only the embedding rows a batch touched) and :func:`clip_grad_norm` (which
  takes their sparse gradients).
* **Threads** (:mod:`~lifelongrec.nn._threads`): :class:`StepThreads`, the CPU
  threads of each training step, chosen by timing steps of each size on one thread and
  on torch's threads.
* **Distributed** (:mod:`~lifelongrec.nn._distributed`): :func:`world`,
  :func:`is_main` and :func:`shard`, data-parallel training under ``torchrun``.
* **Compute** (:mod:`~lifelongrec.nn._flops`): :func:`add_training_flops` and
  :func:`training_flops`, a process-wide count of the training FLOPs models estimate,
  read like a clock around a learning call.

Shapes use one set of symbols: ``B`` sequences in a batch, ``L`` the window length
(``max_len``), ``D`` the model width, ``N`` items in the catalogue, ``M`` sampled
negatives, ``T`` event-type classes, ``C`` categories. Item rows inside sequences are
shifted by one: ``0`` is padding, ``r + 1`` is item row ``r``.
"""

from lifelongrec.nn._distributed import is_main, shard, world
from lifelongrec.nn._flops import add_training_flops, training_flops
from lifelongrec.nn._forgetting import EWC, Distillation, estimate_fisher
from lifelongrec.nn._loop import (
    EarlyStopping,
    TrainConfig,
    grow_parameter,
    load_optimizer_arrays,
    make_optimizer,
    optimizer_arrays,
    target_ranks,
    train_epoch,
)
from lifelongrec.nn._losses import (
    exposure_loss,
    full_softmax_loss,
    gbce_beta,
    gbce_loss,
    mixed_log_q,
    sampled_softmax_loss,
    soft_cross_entropy,
)
from lifelongrec.nn._multitask import MultiTaskLoss
from lifelongrec.nn._sequences import (
    GAP_FIRST,
    GAP_PAD,
    Windows,
    concat_windows,
    gap_buckets,
    minibatches,
    order_events,
    positions_from_end,
    right_align,
    training_windows,
    ts_hours,
    windows_ending_at,
)
from lifelongrec.nn._sparse import RowAdamW, clip_grad_norm
from lifelongrec.nn._threads import StepThreads

__all__ = [
    "EWC",
    "GAP_FIRST",
    "GAP_PAD",
    "Distillation",
    "EarlyStopping",
    "MultiTaskLoss",
    "TrainConfig",
    "Windows",
    "add_training_flops",
    "concat_windows",
    "estimate_fisher",
    "exposure_loss",
    "full_softmax_loss",
    "gap_buckets",
    "gbce_beta",
    "gbce_loss",
    "grow_parameter",
    "load_optimizer_arrays",
    "make_optimizer",
    "is_main",
    "shard",
    "world",
    "RowAdamW",
    "StepThreads",
    "clip_grad_norm",
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
    "training_flops",
    "training_windows",
    "ts_hours",
    "windows_ending_at",
]
