"""Hyperparameters of the sequential model: declared once (:class:`SequentialParams`,
whose fields are the estimator's constructor arguments), checked, and turned into what
the parts take (the loss weights, the device, the training settings, the modules' typed
configs).

The functions take the hyperparameter dict (``model.get_params()``), so they hold no
state and read the values of the moment they are called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lifelongrec._errors import ParameterError
from lifelongrec._params import (
    Constraint,
    Integer,
    Number,
    OneOf,
    Params,
    Satisfies,
    check_int,
    check_number,
    is_number,
)
from lifelongrec.models.heads import TASKS, HeadsConfig
from lifelongrec.models.sequential._modules import EncoderConfig, ItemTowerConfig
from lifelongrec.nn import TrainConfig

__all__ = [
    "DEFAULT_TASK_WEIGHTS",
    "TEXT_ENCODERS",
    "SequentialParams",
    "check_epochs",
    "data_dropout",
    "data_update_len",
    "data_windows",
    "fit_dropout",
    "module_configs",
    "task_weights",
    "torch_device",
    "train_config",
    "update_len",
    "with_dropout",
]

#: Default loss weights of the tasks (``task_weights`` overrides any of them). The
#: auxiliary heads are weighted lightly: heavier weights cost the next-item head more
#: accuracy than the auxiliary heads gained (the measurements: docs/benchmarks.md).
DEFAULT_TASK_WEIGHTS = {"next_item": 1.0, "event_type": 0.03, "category": 0.03}
TEXT_ENCODERS = ("auto", "minilm", "tfidf", None)


class _TaskWeights(Constraint):
    """``None`` or ``{task: weight}`` over :data:`~lifelongrec.models.heads.TASKS`, each
    weight a finite number >= 0 and the ``next_item`` one (after the defaults) > 0."""

    expected = f"None or a dict with keys among {list(TASKS)}"

    def check(self, name: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict) or not set(value) <= set(TASKS):
            raise ParameterError(name, value, self.expected)
        for key, w in value.items():
            if not (is_number(w) and w >= 0):
                raise ParameterError(
                    name, value, f"finite weights >= 0 (task_weights[{key!r}] is not)"
                )
        if task_weights(value)["next_item"] <= 0:
            raise ParameterError(name, value, "a next_item weight > 0")

    def accepts(self, value: Any) -> bool:
        try:
            self.check("task_weights", value)
        except ParameterError:
            return False
        return True


def _is_device(value: Any) -> bool:
    return isinstance(value, str) and (
        value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())
    )


#: ``True`` or ``False`` as Python bools only (not NumPy bools): the settings are written
#: to model.json, which cannot store a NumPy bool.
_BOOL = Satisfies(lambda v: isinstance(v, bool), "True or False")


@dataclass(eq=False, repr=False)
class SequentialParams(Params):
    """The hyperparameters of :class:`~lifelongrec.models.SequentialRecommender`, which
    inherits this constructor (it stores them and nothing else; ``fit`` checks them).

    Parameters
    ----------
    dim
        Width ``D`` of every embedding and of the user and item vectors.
    n_layers, n_heads
        Transformer blocks and attention heads (``dim`` divisible by ``n_heads``).
    ffn_mult
        Width of each block's feed-forward layer as a multiple of ``dim`` (1: ``dim``;
        SASRec's usual 4 gives ``inner_size = 4 * dim``). The ``"hstu"`` encoder has no
        feed-forward layer and ignores it.
    encoder
        The user encoder's blocks: ``"sasrec"`` (default; pre-LN softmax self-attention
        and a feed-forward layer, ``(4 + 2 * ffn_mult) * dim**2`` weights per block) or
        ``"hstu"`` (HSTU, Zhai et al. 2024, "Actions speak louder than words": pointwise
        SiLU attention without softmax, learned per-head biases by relative position and
        by relative time, the attention output gated elementwise; ``5 * dim**2``
        weights per block). The relative time between two events is read from the
        inputs' log-bucketed gaps (each bucket's lower bound, summed between them).
    dropout
        Dropout on inputs, attention and feed-forward outputs, in ``[0, 1)``. ``None``
        (default): the data decide (:func:`data_dropout`): 0.5 where the fit's events
        fill less than 0.1 % of its user x item matrix (review data such as Amazon's,
        with a few events per user and per item), 0.2 elsewhere; the fit records its
        choice in ``dropout_``.
    max_len
        Events per user the encoder reads (the most recent; also the training window).
    n_windows
        Training windows per user going back in time: 1 trains on the last
        ``max_len`` targets, ``k`` also on the ``(k - 1) * max_len`` before them.
        ``None`` (default): the data decide (:func:`data_windows`): the fewest windows
        that hold at least 90 % of the fit's targets (at most 16); the fit records its
        choice in ``n_windows_``.
    n_time_buckets
        Log2 buckets of the gap to the previous event (>= 3; 2 are reserved).
    text_encoder
        ``"auto"`` (MiniLM sentence vectors when ``lifelongrec.features._text`` and its
        model are installed, else TF-IDF), ``"minilm"``, ``"tfidf"`` or ``None`` (no text).
    content_gate
        Multiply the content projection by a learned per-dimension gate.
    item_age
        Add a learned bias by item age to every score: the time since the item's first
        event, in buckets of ``floor(log2(1 + hours))`` (20, the last open-ended), or,
        for an item without an event yet (admitted from the catalogue, or first seen
        later), a "new" bias less the log of how many such items there are, so the
        new items share one learned probability mass (cold start). Training scores each
        target against the items as they were at the target's time: an item without an
        event before it counts by its content vector alone, as a cold item is served
        (its id row, trained on later events, would tell the past about the future).
        The bias starts from the rates in a sample of the fit's targets. Scoring reads
        the ages one second after the newest event seen (``last_timestamp_``); user
        vectors then end with a 1 and item vectors with the bias, so an inner-product
        index serves it (as of the clock it was built at).
    item_new_for
        With ``item_age``: seconds an item still counts as new after its first event
        in training (0: until its first event), for a model that serves long after it
        last learned. Such a model has not seen the items that arrived since; training
        then treats an item as the model would know it ``item_new_for`` seconds before
        each target, and scoring reads ages ``item_new_for`` seconds after the newest
        event seen.
    release_attribute
        Name of the catalogue attribute holding each item's release (a year such as
        ``1995``, read as its 1 January; epoch seconds; or a date string), e.g.
        ``"year"`` for the MovieLens readers; ``None`` (default): off. Adds a learned
        bias by time since release to every score, in buckets of ``floor(log2(1 +
        days))`` (UTC calendar days; 16, the last open-ended), with one bias for "not
        released yet" (a later day) and one for an unknown release. Unlike ``item_age`` it ranks cold items among
        themselves before their first event (a new release against an old film added
        late). Training reads it at each target's time, scoring at the query's time
        (``score_histories`` with ``before``) or one second after ``last_timestamp_``;
        user and item vectors carry it as with ``item_age`` (both add up when on; with
        both, the new items' shared mass goes to them in proportion to ``exp`` of their
        release bias instead of evenly, so a recent release takes more of it than an
        old film or one not released yet). A value that is none of these raises
        :class:`DataError` naming the item.
    id_dropout
        Probability of hiding an item's id embedding during training (teaches the
        content path to serve cold items), in ``[0, 1)``.
    max_categories
        Size of the category vocabulary (the most frequent; 0 disables categories).
    like_threshold
        With a single event type and ratings, ``value >= like_threshold`` is a "like" and
        below a "dislike": the classes of the event-type input and head.
    task_weights
        Loss weights by task (``next_item``, ``event_type``, ``category``); missing keys
        take :data:`DEFAULT_TASK_WEIGHTS`. ``None`` uses the defaults.
    mmoe_experts
        Experts of a multi-gate mixture between encoder and heads (0: off).
    epochs, batch_size, lr, weight_decay, grad_clip
        AdamW training; ``grad_clip`` is the max gradient norm (0: off). ``epochs`` is the
        maximum: early stopping usually ends sooner.
    patience
        Epochs without a better validation NDCG@10 before stopping.
    final_passes
        Passes over the fit's windows with the held-out validation events back as
        targets, after early stopping restored the best epoch (0: none; the model then
        never trains on each user's latest events).
    ema_decay
        Decay of an exponential moving average of the weights over a fit's steps
        (:class:`torch.optim.swa_utils.AveragedModel`): early stopping scores the average
        and the fit keeps the best epoch's average (0, default: off). Updates
        (``partial_fit``) train the weights as they are.
    lr_plateau
        With validation: after this many epochs without a better validation NDCG@10
        the learning rate is halved (:class:`torch.optim.lr_scheduler.ReduceLROnPlateau`),
        and again after as many more (0, default: never). Each fit or update starts at
        ``lr``.
    validation
        Hold out each user's last events for early stopping and ``head_metrics_``; with
        ``False`` train all ``epochs`` on everything.
    validation_events
        How many of each user's last events are held out (at most all but the user's
        first; users are a seeded sample of 10,000 where there are more): several make
        early stopping less noisy where users are few, at the cost of training on fewer
        of the latest events. ``None`` (default): the data decide
        (:func:`data_validation_events`): the fewest per user, at most 3, that give
        2,000 validation events (3 on MovieLens, 1 where users are many); the fit
        records its choice in ``validation_events_``.
    full_softmax_max_items
        Full softmax over the catalogue up to this many items, sampled softmax above.
    n_negatives
        Uniform negatives per batch of the sampled softmax (as many in-batch ones at most);
        cheap next to the encoder, and many help on a large catalogue (docs/benchmarks.md).
    loss
        The next-item objective: ``"softmax"`` (default; the full softmax up to
        ``full_softmax_max_items`` items, the sampled one above) or ``"gbce"``
        (gSASRec's generalised binary cross-entropy: ``n_negatives`` uniform negatives
        per training window, every item when the catalogue is no larger, the positive's
        probability raised to a power set by the sampling rate and ``gbce_t``).
    gbce_t
        gBCE's calibration in ``[0, 1]``: 0 is plain binary cross-entropy, 1 calibrates
        the sampled probabilities to the full catalogue's (gSASRec used 0.75).
    sparse_rows
        ``True`` (default): when the loss samples (sampled softmax, gBCE) the item id
        table gets sparse gradients and each optimiser step updates only the rows the
        batch touched (:class:`~lifelongrec.nn.RowAdamW`, the lazy Adam rule: rows not
        in the batch keep their weights and moments), so a step, online steps included,
        costs the batch rather than the catalogue (at 1M items a 256-event online
        step's median is 42 ms against 816 ms: docs/benchmarks.md). ``False``: dense
        AdamW over the whole table at every step (rows not in the batch drift on their
        momentum). A loss that scores the whole catalogue touches every row, where both
        are the same step.
    partial_fit_epochs
        Passes of every update (``partial_fit``; warm start, optimiser carried over).
        ``None`` (default): the data decide, through ``partial_fit_budget``.
        ``partial_fit``'s ``epochs`` argument overrides it for one call. With
        ``partial_fit_patience``, the most passes an update may take.
    partial_fit_budget
        With ``partial_fit_epochs=None``, how much each update trains, as a share of
        what refitting the model on everything it has learned would cost: the update
        takes the passes over its windows (new, context and replayed events) whose
        estimated compute is closest to this share of a refit's (the first fit's epochs
        over the windows a fit on every user's events would build, validation included;
        at least 1 pass, at most 64). A small window is trained harder than a large
        one, and updates grow with what the model has learned. The estimate counts
        floating-point operations from the shapes of the windows and the module, so the
        same stream and seed give the same passes on every machine. A number > 0;
        default 0.1 (with ``partial_fit_catchup=0.6``), chosen on the training family
        of synthetic streams (docs/lifelong.md). ``partial_fit``'s ``budget`` argument
        overrides it for one call.
    partial_fit_catchup
        With the budget, the least an update spends on its new events: ``catchup``
        times what a refit would spend on them (a refit trains every event the same, so
        that is the new events' share of a refit's targets). A number >= 0; 0 turns it
        off. When the new events are a large part of what the model has learned (the
        first updates after a fit on little data), this is more than the budget's
        share, and the update trains harder; later, the budget's share decides.
        Default 0.6, chosen on the training family of synthetic streams
        (docs/lifelong.md).
    partial_fit_shrink
        With the budget, an update first multiplies every weight of the module by this
        factor (shrink, as in Ash & Adams' "shrink and perturb" for warm-started
        training), then trains: a warm-started model keeps its old answers confidently
        and learns the new window more slowly than a fresh fit; shrinking its weights
        makes it readier to learn while it keeps the directions it learned. An update whose passes cost less than its budget (a small batch)
        shrinks by ``shrink ** (its cost / the budget's)``: updates shrink in proportion
        to what they train, and small ones that together train as much as one large
        one shrink as much. A number in ``(0, 1]``; 1 does not
        shrink; updates with fixed passes (``partial_fit_epochs``, ``epochs=``) do not
        shrink. ``update_plan_["shrink"]`` records the factor of the last update.
        Default 0.8, chosen on the training family of streams (docs/lifelong.md): it
        kept up with a full retrain (98 % of its mean NDCG@10) on seven of its nine
        streams, against five without shrinking, and cost ml-100k four points.
    partial_fit_context_weight
        In updates (``partial_fit`` and :meth:`online_step`), the loss weight of the
        user's already learned events in the same training window as their new ones (new
        events weigh 1): a local replay of each active user's recent past, costing only
        its share of the output layer. 0 trains on the new events only. Default 1.0.
    partial_fit_max_len
        Length of the training windows of updates (new and replayed events; scoring
        always reads ``max_len``): shorter windows cost less (attention is quadratic)
        and, with context targets, let a budget buy more passes; longer ones train each
        new event with more of its user's other events before it, as scoring reads
        them. ``None`` (default): the data decide, per update
        (:func:`data_update_len`): the median count of new events of the update's
        active users, at least 8 and at most ``max_len``, so that a typical active
        user's new events share one window. Where users bring a few events per update
        (a shop's sessions) that is 8, the length chosen with
        ``partial_fit_context_weight=1.0`` and the budget on the training family of
        synthetic streams; where they bring dozens (MovieLens' rating sprees) the
        windows grow towards ``max_len`` (checked on ml-100k: docs/lifelong.md). An
        integer fixes it (at most ``max_len``). ``update_plan_["window"]`` records
        the length of the last update.
    partial_fit_patience
        ``None``: every update trains all its passes. An integer: each
        update holds out a slice of its new events (each active user's last new event,
        for a seeded sample of at most 2,000 users), ranks it after every pass and stops
        after this many passes without a better NDCG@10, restoring the best pass; the
        held-out events still join the users' histories (they shape the next
        recommendations) but are no training targets. ``partial_fit_epochs`` (or the
        budget's passes) are then the most an update may take.
    distill_weight, distill_temperature
        Anti-forgetting in ``partial_fit``: weight of a distillation term that keeps the
        next-item distribution close to the model's own before the update (the teacher,
        a frozen copy; 0 = off), and its softmax temperature (> 0).
    ewc_weight, fisher_batches
        Elastic weight consolidation in updates: weight of the Fisher-weighted pull
        towards the weights after the previous fit/update (0 = off), and how many
        mini-batches estimate the diagonal Fisher information after each fit/update.
    exposure_weight
        Exposure-aware updates (0 = off): with impressions in the update's data
        (``Dataset.impressions``: what each user was shown) or observed for online
        steps (:meth:`observe_impressions`; the service's learner passes its impression
        log), the items a user was shown and did not act on afterwards become
        negatives of the event that followed them: a pairwise loss of this weight ranks
        that event above them (:mod:`~lifelongrec.models.sequential._exposure`;
        ``exposure_counts_`` counts the last update's impressions, the skipped ones and
        those used). Without impressions nothing changes; a fit ignores them. The
        default, 3 with ``"above"``, was chosen in the closed-loop simulator on seven
        validation worlds (docs/feedback.md).
    exposure_negatives
        Which skipped items count: ``"shown"``, every item shown and not acted on;
        ``"above"``, only those ranked above an item of the same list the user acted
        on (skip-above: surely looked at; lists without an action give none).
    item_min_count
        Events an item needs before it gets its own row (an id embedding, a place in
        the catalogue), counted across ``fit`` and ``partial_fit`` calls (int >= 1; 1 =
        at first sight). Until then its events stay in the users' sequences through the
        shared out-of-vocabulary row (:data:`OOV_ROW`, a learned vector): the user
        vector sees that something happened, but the item cannot be recommended, scored
        by id or trained on as a target. :meth:`add_items` admits catalogue items at once.
    user_ttl, item_ttl
        Time-to-live in seconds (``None``: never expire; else a number > 0): a user or
        item (or a pending item's count) unseen for longer than this is expired at each
        ``partial_fit`` (now = the newest event timestamp seen; ids in the batch are
        alive) and by :meth:`expire`. An expired user's stored history is cleared; an
        expired item's id embedding, optimiser state, content and category rows are
        reset, it leaves every ``user_items_`` row, and the events on it in stored
        histories become out-of-vocabulary events. Their rows are reused by the next new
        ids before the tables grow; an expired id seen again is admitted as new.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    train_threads
        CPU threads of a training step. ``None`` (default): for each size of step, its
        first steps are timed on one thread, on the powers of two between and on
        torch's threads (``torch.get_num_threads()``), and the count ``n`` with the least
        ``(1 + n) * seconds`` is kept (two threads must make a step 1.5 times faster;
        :class:`lifelongrec.nn.StepThreads`). The small steps of updates run about as
        fast on one thread as on two, at half the CPU; what a step computes does not
        change. An int uses that many threads for every step. Torch's setting is
        restored after each training call.
    random_state
        Seed of initialisation, shuffling, dropout and sampling (int >= 0).
    verbose
        Show a progress bar over epochs.
    """

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    ffn_mult: int = 1
    encoder: str = "sasrec"
    dropout: float | None = None
    max_len: int = 50
    n_windows: int | None = None
    n_time_buckets: int = 32
    text_encoder: str | None = "auto"
    content_gate: bool = False
    item_age: bool = False
    item_new_for: int = 0
    release_attribute: str | None = None
    id_dropout: float = 0.1
    max_categories: int = 1000
    like_threshold: float = 4.0
    task_weights: dict[str, float] | None = None
    mmoe_experts: int = 0
    epochs: int = 200
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    patience: int = 5
    final_passes: int = 0
    ema_decay: float = 0.0
    lr_plateau: int = 0
    validation: bool = True
    validation_events: int | None = None
    full_softmax_max_items: int = 20000
    n_negatives: int = 2048
    loss: str = "softmax"
    gbce_t: float = 0.75
    sparse_rows: bool = True
    partial_fit_epochs: int | None = None
    partial_fit_budget: float = 0.1
    partial_fit_catchup: float = 0.6
    partial_fit_shrink: float = 0.8
    partial_fit_context_weight: float = 1.0
    partial_fit_max_len: int | None = None
    partial_fit_patience: int | None = None
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    ewc_weight: float = 0.0
    fisher_batches: int = 20
    exposure_weight: float = 3.0
    exposure_negatives: str = "above"
    item_min_count: int = 1
    user_ttl: float | None = None
    item_ttl: float | None = None
    device: str = "auto"
    train_threads: int | None = None
    random_state: int = 0
    verbose: bool = True

    _constraints: ClassVar[dict[str, Constraint]] = {
        "dim": Integer(1),
        "n_layers": Integer(1),
        "n_heads": Integer(1),
        "ffn_mult": Integer(1),
        "encoder": OneOf("sasrec", "hstu"),
        "dropout": Number(0, 1, high_open=True, none=True),
        "max_len": Integer(1),
        "n_windows": Integer(1, none=True),
        "n_time_buckets": Integer(3),
        "text_encoder": OneOf("auto", "minilm", "tfidf", none=True),
        "content_gate": _BOOL,
        "item_age": _BOOL,
        "item_new_for": Integer(0),
        "release_attribute": Satisfies(
            lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
            "None or the name of an item attribute (a non-empty string)",
        ),
        "id_dropout": Number(0, 1, high_open=True),
        "max_categories": Integer(0),
        "like_threshold": Number(),
        "task_weights": _TaskWeights(),
        "mmoe_experts": Integer(0),
        "epochs": Integer(1),
        "batch_size": Integer(1),
        "lr": Number(0, low_open=True),
        "weight_decay": Number(0),
        "grad_clip": Number(0),
        "patience": Integer(1),
        "final_passes": Integer(0),
        "ema_decay": Number(0, 1, high_open=True),
        "lr_plateau": Integer(0),
        "validation": _BOOL,
        "validation_events": Integer(1, none=True),
        "full_softmax_max_items": Integer(0),
        "n_negatives": Integer(1),
        "loss": OneOf("softmax", "gbce"),
        "gbce_t": Number(0, 1),
        "sparse_rows": _BOOL,
        "partial_fit_epochs": Integer(0, none=True),
        "partial_fit_budget": Number(0, low_open=True),
        "partial_fit_catchup": Number(0),
        "partial_fit_shrink": Number(0, 1, low_open=True),
        "partial_fit_context_weight": Number(0),
        "partial_fit_max_len": Integer(1, none=True),
        "partial_fit_patience": Integer(1, none=True),
        "distill_weight": Number(0),
        "distill_temperature": Number(0, low_open=True),
        "ewc_weight": Number(0),
        "fisher_batches": Integer(1),
        "exposure_weight": Number(0),
        "exposure_negatives": OneOf("shown", "above"),
        "item_min_count": Integer(1),
        "user_ttl": Number(0, low_open=True, none=True),
        "item_ttl": Number(0, low_open=True, none=True),
        "device": Satisfies(_is_device, "'auto', 'cpu', 'cuda' or 'cuda:N'"),
        "train_threads": Integer(1, none=True),
        "random_state": Integer(0),
        "verbose": _BOOL,
    }

    def _check_params(self) -> None:
        """The rule over two settings (each one is declared in ``_constraints``)."""
        if self.dim % self.n_heads:
            raise ParameterError(
                "n_heads", self.n_heads, f"a divisor of dim={self.dim} (dim % n_heads == 0)"
            )


def check_epochs(epochs: Any) -> None:
    """``partial_fit``'s ``epochs``: ``None`` or an integer >= 0."""
    check_int("epochs", epochs, 0, none=True)


def check_budget(budget: Any) -> None:
    """``partial_fit``'s ``budget``: ``None`` or a number > 0."""
    check_number("budget", budget, 0, low_open=True, none=True)


def task_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The loss weight of every task: ``weights`` over :data:`DEFAULT_TASK_WEIGHTS`."""
    return {**DEFAULT_TASK_WEIGHTS, **{k: float(v) for k, v in (weights or {}).items()}}


def torch_device(device: str) -> torch.device:
    """``"auto"``: CUDA when available (under ``torchrun``, the process's own GPU,
    ``LOCAL_RANK``), else the CPU; else the named device."""
    if device == "auto":
        if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
            return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


#: ``n_windows=None``: the share of a fit's targets its windows hold at least, and the
#: most windows per user.
WINDOW_COVERAGE = 0.9
MAX_DATA_WINDOWS = 16


def data_windows(lengths: Any, max_len: int) -> int:
    """The fewest training windows per user (of ``max_len`` targets each, going back in
    time) that hold at least :data:`WINDOW_COVERAGE` of the targets of users with
    ``lengths`` events (each user's first event is no target), at most
    :data:`MAX_DATA_WINDOWS`: ``n_windows=None``.

    >>> data_windows([3, 8, 60, 130], max_len=50)  # 2, 7, 59, 129 targets: 197 of 197
    3
    >>> data_windows([3, 8, 60, 130], max_len=200)
    1
    """
    targets = np.maximum(np.asarray(lengths, dtype=np.int64) - 1, 0)
    total = int(targets.sum())
    if total == 0:
        return 1
    for k in range(1, MAX_DATA_WINDOWS + 1):
        if np.minimum(targets, k * int(max_len)).sum() >= WINDOW_COVERAGE * total:
            return k
    return MAX_DATA_WINDOWS


#: ``dropout=None``: the dropout of sparse data, below which density, and elsewhere.
SPARSE_DROPOUT = 0.5
SPARSE_DENSITY = 1e-3
DENSE_DROPOUT = 0.2


def data_dropout(n_events: int, n_users: int, n_items: int) -> float:
    """The dropout of a fit on ``n_events`` events of ``n_users`` users and ``n_items``
    items (those with at least one event): :data:`SPARSE_DROPOUT` where the events
    fill less than :data:`SPARSE_DENSITY` of the user x item matrix, else
    :data:`DENSE_DROPOUT`: ``dropout=None``.

    >>> data_dropout(353_962, 40_226, 54_542)  # Amazon Beauty (BERT4Rec's): 0.016 %
    0.5
    >>> data_dropout(100_000, 943, 1_682)  # MovieLens 100K: 6.3 %
    0.2
    """
    cells = max(int(n_users), 1) * max(int(n_items), 1)
    return SPARSE_DROPOUT if int(n_events) < SPARSE_DENSITY * cells else DENSE_DROPOUT


def fit_dropout(setting: float | None, events: Any) -> float:
    """The dropout of a fit on ``events`` (``user_id``, ``item_id``): ``setting``, or
    with ``None`` :func:`data_dropout`'s."""
    if setting is not None:
        return float(setting)
    return data_dropout(len(events), events["user_id"].nunique(), events["item_id"].nunique())


def with_dropout(p: Mapping[str, Any], chosen: float | None) -> dict[str, Any]:
    """``p`` with the dropout a fit used: the setting, else ``chosen`` (the fit's
    ``dropout_``), else (a model saved before fits chose) :data:`DENSE_DROPOUT`."""
    if p["dropout"] is not None:
        return dict(p)
    return {**p, "dropout": DENSE_DROPOUT if chosen is None else float(chosen)}


#: ``validation_events=None``: the validation events wanted, and the most per user.
VALIDATION_TARGET = 2000
MAX_DATA_VALIDATION = 3
MAX_VALIDATION_USERS = 10_000  # users ranked for early stopping (a seeded sample)


def data_validation_events(lengths: Any) -> int:
    """The fewest events per user held out for early stopping, at most
    :data:`MAX_DATA_VALIDATION`, that give at least :data:`VALIDATION_TARGET`
    validation events from users with ``lengths`` events (each user holds out at most
    all but its first; at most :data:`MAX_VALIDATION_USERS` users are ranked):
    ``validation_events=None``.

    >>> data_validation_events([30] * 943)  # ml-100k's 943 users: 2,829 events
    3
    >>> data_validation_events([30] * 1500)
    2
    >>> data_validation_events([8] * 40_226)  # beauty's users: 10,000 ranked
    1
    """
    n = np.asarray(lengths, dtype=np.int64)
    eligible = int((n > 1).sum())
    sampled = min(1.0, MAX_VALIDATION_USERS / max(eligible, 1))
    for k in range(1, MAX_DATA_VALIDATION + 1):
        if np.minimum(n - 1, k).clip(0).sum() * sampled >= VALIDATION_TARGET:
            return k
    return MAX_DATA_VALIDATION


def train_config(p: Mapping[str, Any], epochs: int, n_items: int) -> TrainConfig:
    """The training settings of ``epochs`` passes over a catalogue of ``n_items``."""
    return TrainConfig(
        epochs=epochs,
        batch_size=int(p["batch_size"]),
        lr=float(p["lr"]),
        weight_decay=float(p["weight_decay"]),
        grad_clip=float(p["grad_clip"]),
        patience=int(p["patience"]),
        full_softmax=n_items <= p["full_softmax_max_items"],
        n_negatives=int(p["n_negatives"]),
        task_weights=task_weights(p["task_weights"]),
        loss=str(p["loss"]),
        gbce_t=float(p["gbce_t"]),
        sparse_rows=bool(p["sparse_rows"]),
        exposure_weight=float(p["exposure_weight"]),
        threads=None if p["train_threads"] is None else int(p["train_threads"]),
        ema_decay=float(p["ema_decay"]),
        lr_plateau=int(p["lr_plateau"]),
    )


#: ``partial_fit_max_len=None``: the shortest update window.
MIN_UPDATE_LEN = 8


def data_update_len(new_users: Any, max_len: int) -> int:
    """The training-window length of an update whose new events belong to the user rows
    ``new_users`` (one entry per new event): the median count of new events of its
    users, rounded up, at least :data:`MIN_UPDATE_LEN` and at most ``max_len``
    (``partial_fit_max_len=None``).

    >>> data_update_len([0, 0, 1, 2, 2, 2], max_len=50)  # 2, 1, 3 new events each
    8
    >>> data_update_len([0] * 30 + [1] * 40 + [2] * 5, max_len=50)
    30
    >>> data_update_len([0] * 90 + [1] * 70, max_len=50)
    50
    """
    users = np.asarray(new_users, dtype=np.int64)
    floor = min(MIN_UPDATE_LEN, int(max_len))
    if users.size == 0:
        return floor
    _, counts = np.unique(users, return_counts=True)
    return int(min(int(max_len), max(floor, int(np.ceil(np.median(counts))))))


def update_len(p: Mapping[str, Any], new_users: Any) -> int:
    """Window length of the training windows of updates (``partial_fit`` and online
    steps; new and replayed events) whose new events belong to the user rows
    ``new_users``: ``partial_fit_max_len`` (at most ``max_len``), or with ``None`` the
    data's (:func:`data_update_len`)."""
    m, max_len = p["partial_fit_max_len"], int(p["max_len"])
    return data_update_len(new_users, max_len) if m is None else min(int(m), max_len)


def module_configs(
    p: Mapping[str, Any],
    n_items: int,
    content_dim: int,
    n_type_ids: int,
    n_event_types: int,
    n_categories: int,
) -> tuple[ItemTowerConfig, EncoderConfig, HeadsConfig]:
    """The typed configs of the item tower, the user encoder and the heads."""
    D = int(p["dim"])
    tower = ItemTowerConfig(
        n_items=n_items,
        dim=D,
        content_dim=content_dim,
        content_gate=p["content_gate"],
        item_age=bool(p["item_age"]),
        new_for=int(p["item_new_for"]),
        release_age=p["release_attribute"] is not None,
        id_dropout=float(p["id_dropout"]) if content_dim else 0.0,
        oov=int(p["item_min_count"]) > 1 or p["item_ttl"] is not None,
    )
    encoder = EncoderConfig(
        dim=D,
        n_layers=int(p["n_layers"]),
        n_heads=int(p["n_heads"]),
        dropout=float(p["dropout"]),
        max_len=int(p["max_len"]),
        n_type_ids=n_type_ids,
        n_time_buckets=int(p["n_time_buckets"]),
        ffn_mult=int(p["ffn_mult"]),
        kind=str(p["encoder"]),
    )
    heads = HeadsConfig(
        dim=D,
        n_event_types=n_event_types,
        n_categories=n_categories,
        mmoe_experts=int(p["mmoe_experts"]),
        dropout=float(p["dropout"]),
    )
    return tower, encoder, heads
