"""Hyperparameters of the sequential model: declared once (:class:`SequentialParams`,
whose fields are the estimator's constructor arguments), checked, and turned into what
the parts take (the loss weights, the device, the training settings, the modules' typed
configs).

The functions take the hyperparameter dict (``model.get_params()``), so they hold no
state and read the values of the moment they are called.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from lifelongrec._errors import ParameterError
from lifelongrec.models.heads import TASKS, HeadsConfig
from lifelongrec.models.sequential._modules import EncoderConfig, ItemTowerConfig
from lifelongrec.nn import TrainConfig

__all__ = [
    "DEFAULT_TASK_WEIGHTS",
    "TEXT_ENCODERS",
    "SequentialParams",
    "check_epochs",
    "check_params",
    "module_configs",
    "task_weights",
    "torch_device",
    "train_config",
    "update_len",
]

#: Default loss weights of the tasks (``task_weights`` overrides any of them).
#: Loss weights of the heads. The auxiliary ones are light: on ml-100k (3 seeds) weights
#: 0.03 cost the next-item head 0.0010 NDCG@10 against single-task (0.0965 vs 0.0975,
#: within run-to-run noise) where 0.1 cost 0.0038, and the heads' own figures barely moved
#: (event-type AUC 0.655 vs 0.662, category acc@1 0.433 vs 0.436; docs/benchmarks.md).
DEFAULT_TASK_WEIGHTS = {"next_item": 1.0, "event_type": 0.03, "category": 0.03}
TEXT_ENCODERS = ("auto", "minilm", "tfidf", None)


@dataclass(eq=False, repr=False)
class SequentialParams:
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
        SASRec's usual 4 gives ``inner_size = 4 * dim``).
    dropout
        Dropout on inputs, attention and feed-forward outputs, in ``[0, 1)``.
    max_len
        Events per user the encoder reads (the most recent; also the training window).
    n_windows
        Training windows per user going back in time: 1 trains on the last
        ``max_len`` targets, ``k`` also on the ``(k - 1) * max_len`` before them.
    n_time_buckets
        Log2 buckets of the gap to the previous event (>= 3; 2 are reserved).
    text_encoder
        ``"auto"`` (MiniLM sentence vectors when ``lifelongrec.features._text`` and its
        model are installed, else TF-IDF), ``"minilm"``, ``"tfidf"`` or ``None`` (no text).
    content_gate
        Multiply the content projection by a learned per-dimension gate.
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
    validation
        Hold out each user's last event for early stopping and ``head_metrics_``; with
        ``False`` train all ``epochs`` on everything.
    full_softmax_max_items
        Full softmax over the catalogue up to this many items, sampled softmax above.
    n_negatives
        Uniform negatives per batch of the sampled softmax (as many in-batch ones at most);
        cheap next to the encoder, and many help on a large catalogue (docs/benchmarks.md).
    partial_fit_epochs
        Passes over the new events in ``partial_fit`` (warm start, optimiser carried over;
        its ``epochs`` argument overrides it for one call).
    partial_fit_context_weight
        In updates (``partial_fit`` and :meth:`online_step`), the loss weight of the
        user's already learned events in the same training window as their new ones (new
        events weigh 1): a local replay of each active user's recent past, costing only
        its share of the output layer. 0 trains on the new events only.
    partial_fit_max_len
        Length of the training windows of updates (new and replayed events; ``None``:
        ``max_len``; scoring always reads ``max_len``): shorter windows cost less
        (attention is quadratic) and pay off when users add one or two events per
        update (docs/benchmarks.md, the lifelong strategy).
    distill_weight, distill_temperature
        Anti-forgetting in ``partial_fit``: weight of a distillation term that keeps the
        next-item distribution close to the model's own before the update (the teacher,
        a frozen copy; 0 = off), and its softmax temperature (> 0).
    ewc_weight, fisher_batches
        Elastic weight consolidation in updates: weight of the Fisher-weighted pull
        towards the weights after the previous fit/update (0 = off), and how many
        mini-batches estimate the diagonal Fisher information after each fit/update.
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
    random_state
        Seed of initialisation, shuffling, dropout and sampling (int >= 0).
    verbose
        Show a progress bar over epochs.
    """

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    ffn_mult: int = 1
    dropout: float = 0.2
    max_len: int = 50
    n_windows: int = 1
    n_time_buckets: int = 32
    text_encoder: str | None = "auto"
    content_gate: bool = False
    id_dropout: float = 0.1
    max_categories: int = 1000
    like_threshold: float = 4.0
    task_weights: dict[str, float] | None = None
    mmoe_experts: int = 0
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    patience: int = 5
    validation: bool = True
    full_softmax_max_items: int = 20000
    n_negatives: int = 2048
    partial_fit_epochs: int = 2
    partial_fit_context_weight: float = 0.0
    partial_fit_max_len: int | None = None
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    ewc_weight: float = 0.0
    fisher_batches: int = 20
    item_min_count: int = 1
    user_ttl: float | None = None
    item_ttl: float | None = None
    device: str = "auto"
    random_state: int = 0
    verbose: bool = True

    def _validate_params(self) -> None:
        check_params({f.name: getattr(self, f.name) for f in fields(self)})


def check_params(p: Mapping[str, Any]) -> None:
    """Raise :class:`~lifelongrec.ParameterError` naming the first hyperparameter of
    ``p`` that is out of its range (``p``: ``model.get_params()``)."""

    def int_at_least(name: str, lo: int) -> None:
        v = p[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ParameterError(name, v, f"an integer >= {lo}")

    def number_in(name: str, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
        v = p[name]
        ok = (
            not isinstance(v, bool)
            and isinstance(v, (int, float, np.integer, np.floating))
            and math.isfinite(float(v))
            and (v > lo if lo_open else v >= lo)
            and (v < hi if hi_open else v <= hi)
        )
        if not ok:
            lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
            raise ParameterError(name, v, f"a number in {lb}{lo}, {hi}{rb}")

    def boolean(name: str) -> None:
        if not isinstance(p[name], bool):
            raise ParameterError(name, p[name], "True or False")

    for name, lo in (
        ("dim", 1),
        ("n_layers", 1),
        ("n_heads", 1),
        ("ffn_mult", 1),
        ("max_len", 1),
        ("n_windows", 1),
        ("n_time_buckets", 3),
        ("max_categories", 0),
        ("mmoe_experts", 0),
        ("epochs", 1),
        ("batch_size", 1),
        ("patience", 1),
        ("full_softmax_max_items", 0),
        ("n_negatives", 1),
        ("partial_fit_epochs", 0),
        ("fisher_batches", 1),
        ("item_min_count", 1),
        ("random_state", 0),
    ):
        int_at_least(name, lo)
    if p["partial_fit_max_len"] is not None:
        int_at_least("partial_fit_max_len", 1)
    for name in ("user_ttl", "item_ttl"):
        v = p[name]
        if v is not None and not (
            not isinstance(v, bool)
            and isinstance(v, (int, float, np.integer, np.floating))
            and math.isfinite(float(v))
            and v > 0
        ):
            raise ParameterError(name, v, "None or a number of seconds > 0")
    if p["dim"] % p["n_heads"]:
        raise ParameterError(
            "n_heads", p["n_heads"], f"a divisor of dim={p['dim']} (dim % n_heads == 0)"
        )
    number_in("dropout", 0.0, 1.0, False, True)
    number_in("id_dropout", 0.0, 1.0, False, True)
    number_in("lr", 0.0, math.inf, True, True)
    number_in("weight_decay", 0.0, math.inf, False, True)
    number_in("grad_clip", 0.0, math.inf, False, True)
    number_in("like_threshold", -math.inf, math.inf, True, True)
    number_in("partial_fit_context_weight", 0.0, math.inf, False, True)
    number_in("distill_weight", 0.0, math.inf, False, True)
    number_in("distill_temperature", 0.0, math.inf, True, True)
    number_in("ewc_weight", 0.0, math.inf, False, True)
    for name in ("content_gate", "validation", "verbose"):
        boolean(name)
    if p["text_encoder"] not in TEXT_ENCODERS:
        raise ParameterError(
            "text_encoder", p["text_encoder"], "one of 'auto', 'minilm', 'tfidf' or None"
        )
    tw = p["task_weights"]
    if tw is not None:
        if not isinstance(tw, dict) or not set(tw) <= set(TASKS):
            raise ParameterError(
                "task_weights", tw, f"None or a dict with keys among {list(TASKS)}"
            )
        for key, w in tw.items():
            if (
                isinstance(w, bool)
                or not isinstance(w, (int, float, np.integer, np.floating))
                or not math.isfinite(float(w))
                or w < 0
            ):
                raise ParameterError(
                    "task_weights", tw, f"finite weights >= 0 (task_weights[{key!r}] is not)"
                )
        if task_weights(tw)["next_item"] <= 0:
            raise ParameterError("task_weights", tw, "a next_item weight > 0")
    dev = p["device"]
    ok = isinstance(dev, str) and (
        dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
    )
    if not ok:
        raise ParameterError("device", dev, "'auto', 'cpu', 'cuda' or 'cuda:N'")


def check_epochs(epochs: Any) -> None:
    """``partial_fit``'s ``epochs``: ``None`` or an integer >= 0."""
    if epochs is not None and (
        isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0
    ):
        raise ParameterError("epochs", epochs, "None or an integer >= 0")


def task_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The loss weight of every task: ``weights`` over :data:`DEFAULT_TASK_WEIGHTS`."""
    return {**DEFAULT_TASK_WEIGHTS, **{k: float(v) for k, v in (weights or {}).items()}}


def torch_device(device: str) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; else the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    )


def update_len(p: Mapping[str, Any]) -> int:
    """Window length of the training windows of updates (``partial_fit`` and online
    steps; new and replayed events)."""
    m = p["partial_fit_max_len"]
    return int(p["max_len"]) if m is None else min(int(m), int(p["max_len"]))


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
    )
    heads = HeadsConfig(
        dim=D,
        n_event_types=n_event_types,
        n_categories=n_categories,
        mmoe_experts=int(p["mmoe_experts"]),
        dropout=float(p["dropout"]),
    )
    return tower, encoder, heads
