"""The estimator: :class:`SequentialRecommender` composes the parts of this package
behind the :class:`~lifelongrec.models.Recommender` contract (see the package docstring)."""

from __future__ import annotations

import copy
import math
import numbers
import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn
from tqdm.auto import tqdm

from lifelongrec import nn as T
from lifelongrec._errors import ParameterError, UnknownIdError
from lifelongrec.data._schema import Dataset, as_dataset
from lifelongrec.features._vocab import IdVocabulary
from lifelongrec.metrics import auc, hit_rate_from_ranks, ndcg_at_k, ndcg_from_ranks
from lifelongrec.models._base import Recommender, _is_single, _resize_csr, event_columns
from lifelongrec.models.heads import TASKS, HeadsConfig
from lifelongrec.models.sequential._content import (
    ContentFeaturizer,
    catalogue_rows,
    set_csr_rows,
)
from lifelongrec.models.sequential._events import OOV_ROW, EventEncoder
from lifelongrec.models.sequential._histories import HistoryStore, merge_events
from lifelongrec.models.sequential._lifecycle import RowChanges, RowLifecycle
from lifelongrec.models.sequential._modules import (
    EncoderConfig,
    ItemTowerConfig,
    SequentialModule,
)

__all__ = ["DEFAULT_TASK_WEIGHTS", "SequentialRecommender"]

#: Default loss weights of the tasks (``task_weights`` overrides any of them).
#: Loss weights of the heads. The auxiliary ones are light: on ml-100k (3 seeds) weights
#: 0.03 cost the next-item head 0.0010 NDCG@10 against single-task (0.0965 vs 0.0975,
#: within run-to-run noise) where 0.1 cost 0.0038, and the heads' own figures barely moved
#: (event-type AUC 0.655 vs 0.662, category acc@1 0.433 vs 0.436; docs/benchmarks.md).
DEFAULT_TASK_WEIGHTS = {"next_item": 1.0, "event_type": 0.03, "category": 0.03}
_MAX_VALIDATION_USERS = 10_000  # users ranked for early stopping (a seeded sample)
_SCORE_BATCH = 512  # users encoded at once when scoring
_TEXT_ENCODERS = ("auto", "minilm", "tfidf", None)


def _drop_cells(X: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """``X`` without the entries in ``rows`` or in ``cols`` (same shape)."""
    coo = X.tocoo()
    keep = ~(np.isin(coo.row, rows) | np.isin(coo.col, cols))
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=X.shape, dtype=X.dtype
    )


# ================================================================ the recommender
class SequentialRecommender(Recommender):
    """SASRec/HSTU-style transformer two-tower model with content-aware items.

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
        Uniform negatives per batch of the sampled softmax (as many in-batch ones at most).
        Cheap next to the encoder. On beauty (54,542 items) 2,048 negatives with
        ``dropout=0.5`` reached test NDCG@10 0.0350 where 256 with ``dropout=0.2`` reached
        0.0260 (one seed each; docs/benchmarks.md).
    partial_fit_epochs
        Passes over the new events in ``partial_fit`` (warm start, optimiser carried over).
    partial_fit_context_weight
        In ``partial_fit``, the loss weight of the user's already learned events that sit
        in the same training window as their new ones (the user's last
        ``partial_fit_max_len`` events; new events weigh 1). The encoder runs over those
        positions anyway, so rehearsing them costs only their share of the output layer:
        a local replay of each active user's recent past. 0 trains on the new events only.
    partial_fit_max_len
        Length of ``partial_fit``'s training windows (new and replayed events; ``None``:
        ``max_len``). A user with a few new events still costs a whole window; a shorter
        one costs less (attention is quadratic in it) at the price of less context per
        target during updates. Scoring always uses ``max_len``. On the synthetic world
        (users add one or two events per update) ``partial_fit_max_len=8``,
        ``partial_fit_context_weight=1.0`` and ``partial_fit_epochs=16`` took the lifelong
        strategy from 78 % to 101 % of a full retrain's NDCG@10 at 12 % of its compute;
        on ml-latest-small (about 100 new events per user and update) the defaults are
        the better trade (docs/benchmarks.md, issue 4 status).
    distill_weight, distill_temperature
        Anti-forgetting in ``partial_fit``: weight of a distillation term that keeps the
        next-item distribution close to the model's own before the update (the teacher,
        a frozen copy; 0 = off), and its softmax temperature (> 0).
    ewc_weight, fisher_batches
        Elastic weight consolidation in ``partial_fit``: weight of the Fisher-weighted pull
        towards the weights after the previous fit/update (0 = off), and how many
        mini-batches estimate the diagonal Fisher information after each fit/update.
    item_min_count
        Events an item needs before it gets its own row (an id embedding, a place in
        the catalogue), counted across ``fit`` and ``partial_fit`` calls (int >= 1; 1 =
        at first sight). Until then its events stay in the users' sequences through the
        shared out-of-vocabulary row (:data:`OOV_ROW`, a learned vector): the user
        vector sees that something happened, but the item cannot be recommended, scored
        by id or trained on as a target. Events already stored that way stay so when the
        item is admitted later. :meth:`add_items` admits catalogue items at once.
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

    Attributes
    ----------
    head_metrics_ : dict
        Validation metrics at the best epoch: ``next_item`` (``ndcg@10``, ``hr@10``),
        ``event_type`` (``accuracy``, ``auc`` for two classes), ``category``
        (``accuracy@1``, ``ndcg@10``, ``cross_entropy``); heads that are off are absent.
    event_types_ : list[str]
        Classes of the event-type head (empty when it is off).
    categories_ : list[str]
        Classes of the category head.
    history_ : list[dict]
        Per epoch: mean training losses and validation NDCG@10.
    user_vocab_, item_vocab_ : IdVocabulary
        Which id holds which row (``user_ids_`` / ``item_ids_`` are their ``ids``, with
        a :class:`FreeRow` placeholder at each free row; free item rows score ``-inf``,
        so they are never recommended), when each was last seen, the free rows and the
        pending items.
    last_timestamp_ : int
        The newest event timestamp seen ("now" for expiry).
    expired_ : dict
        What the last expiry freed: ``now``, ``users`` and ``items`` (ids),
        ``n_pending_items_dropped``.
    n_expired_users_, n_expired_items_ : int
        Ids expired since ``fit``.
    n_oov_events_ : int
        Events learned since ``fit`` whose item had no row (kept as out-of-vocabulary
        context).
    """

    # The public path, which saved models name in model.json ("class"): it stays
    # stable however the package is organised inside.
    __module__ = "lifelongrec.models.sequential"

    name: ClassVar[str] = "sequential"

    def __init__(
        self,
        dim: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        ffn_mult: int = 1,
        dropout: float = 0.2,
        max_len: int = 50,
        n_windows: int = 1,
        n_time_buckets: int = 32,
        text_encoder: str | None = "auto",
        content_gate: bool = False,
        id_dropout: float = 0.1,
        max_categories: int = 1000,
        like_threshold: float = 4.0,
        task_weights: dict[str, float] | None = None,
        mmoe_experts: int = 0,
        epochs: int = 200,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        grad_clip: float = 1.0,
        patience: int = 5,
        validation: bool = True,
        full_softmax_max_items: int = 20000,
        n_negatives: int = 2048,
        partial_fit_epochs: int = 2,
        partial_fit_context_weight: float = 0.0,
        partial_fit_max_len: int | None = None,
        distill_weight: float = 0.0,
        distill_temperature: float = 1.0,
        ewc_weight: float = 0.0,
        fisher_batches: int = 20,
        item_min_count: int = 1,
        user_ttl: float | None = None,
        item_ttl: float | None = None,
        device: str = "auto",
        random_state: int = 0,
        verbose: bool = True,
    ) -> None:
        self.dim = dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn_mult = ffn_mult
        self.dropout = dropout
        self.max_len = max_len
        self.n_windows = n_windows
        self.n_time_buckets = n_time_buckets
        self.text_encoder = text_encoder
        self.content_gate = content_gate
        self.id_dropout = id_dropout
        self.max_categories = max_categories
        self.like_threshold = like_threshold
        self.task_weights = task_weights
        self.mmoe_experts = mmoe_experts
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.patience = patience
        self.validation = validation
        self.full_softmax_max_items = full_softmax_max_items
        self.n_negatives = n_negatives
        self.partial_fit_epochs = partial_fit_epochs
        self.partial_fit_context_weight = partial_fit_context_weight
        self.partial_fit_max_len = partial_fit_max_len
        self.distill_weight = distill_weight
        self.distill_temperature = distill_temperature
        self.ewc_weight = ewc_weight
        self.fisher_batches = fisher_batches
        self.item_min_count = item_min_count
        self.user_ttl = user_ttl
        self.item_ttl = item_ttl
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------- validation
    def _validate_params(self) -> None:
        def int_at_least(name: str, lo: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ParameterError(name, v, f"an integer >= {lo}")

        def number_in(name: str, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
            v = getattr(self, name)
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
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(name, getattr(self, name), "True or False")

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
        if self.partial_fit_max_len is not None:
            int_at_least("partial_fit_max_len", 1)
        for name in ("user_ttl", "item_ttl"):
            v = getattr(self, name)
            if v is not None and not (
                not isinstance(v, bool)
                and isinstance(v, (int, float, np.integer, np.floating))
                and math.isfinite(float(v))
                and v > 0
            ):
                raise ParameterError(name, v, "None or a number of seconds > 0")
        if self.dim % self.n_heads:
            raise ParameterError(
                "n_heads", self.n_heads, f"a divisor of dim={self.dim} (dim % n_heads == 0)"
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
        if self.text_encoder not in _TEXT_ENCODERS:
            raise ParameterError(
                "text_encoder", self.text_encoder, "one of 'auto', 'minilm', 'tfidf' or None"
            )
        tw = self.task_weights
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
            if self._weights()["next_item"] <= 0:
                raise ParameterError("task_weights", tw, "a next_item weight > 0")
        dev = self.device
        ok = isinstance(dev, str) and (
            dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())
        )
        if not ok:
            raise ParameterError("device", dev, "'auto', 'cpu', 'cuda' or 'cuda:N'")

    def _weights(self) -> dict[str, float]:
        return {
            **DEFAULT_TASK_WEIGHTS,
            **{k: float(v) for k, v in (self.task_weights or {}).items()},
        }

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _train_config(self, epochs: int) -> T.TrainConfig:
        return T.TrainConfig(
            epochs=epochs,
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            grad_clip=float(self.grad_clip),
            patience=int(self.patience),
            full_softmax=self.n_items <= self.full_softmax_max_items,
            n_negatives=int(self.n_negatives),
            task_weights=self._weights(),
        )

    # ----------------------------------------------------------------- events
    # ---------------------------------------------------------------- content
    def prepare_items(self, items: pd.DataFrame | Dataset) -> None:
        """Encode the items' text with the pretrained encoder into its cache (the slow
        part of :meth:`add_items`, about 10 ms per title on a CPU core; a batch costs far
        less per title), changing nothing the model serves from. Safe to call while
        other threads use the model; ``add_items`` then finds the encodings cached."""
        super().prepare_items(items)
        frame = items.items if isinstance(items, Dataset) else items
        if self._featurizer.text_name_ == "minilm" and len(frame):
            self._featurizer.ensure_encoder()
            encoder = self._featurizer._encoder
            if getattr(encoder, "use_cache", False):
                encoder.transform(frame)

    def _content_for(self, ids: np.ndarray, items: pd.DataFrame | None) -> tuple:
        rows, found = catalogue_rows(items, ids)
        F_ = self._featurizer.n_features
        content = np.zeros((len(ids), F_), dtype=np.float32)
        soft = sp.csr_matrix((len(ids), len(self._featurizer.categories_)), dtype=np.float32)
        if found.any() and (F_ or self._featurizer.categories_):
            self._featurizer.ensure_encoder()
            c, s = self._featurizer.transform(rows)
            content[found] = c
            idx = np.flatnonzero(found)
            place = sp.csr_matrix(
                (np.ones(len(idx), np.float32), (idx, np.arange(len(idx)))),
                shape=(len(ids), len(idx)),
            )
            soft = (place @ s).astype(np.float32).tocsr()
        return content, soft

    # ---------------------------------------------------------------- training
    def _build(self, content: np.ndarray) -> None:
        D = int(self.dim)
        tower = ItemTowerConfig(
            n_items=len(self.item_ids_),
            dim=D,
            content_dim=content.shape[1],
            content_gate=self.content_gate,
            id_dropout=float(self.id_dropout) if content.shape[1] else 0.0,
            oov=self._uses_oov(),
        )
        encoder = EncoderConfig(
            dim=D,
            n_layers=int(self.n_layers),
            n_heads=int(self.n_heads),
            dropout=float(self.dropout),
            max_len=int(self.max_len),
            n_type_ids=self._events.n_type_ids,
            n_time_buckets=int(self.n_time_buckets),
            ffn_mult=int(self.ffn_mult),
        )
        heads = HeadsConfig(
            dim=D,
            n_event_types=len(self._events.classes),
            n_categories=len(self.categories_),
            mmoe_experts=int(self.mmoe_experts),
            dropout=float(self.dropout),
        )
        padded = np.concatenate([np.zeros((1, content.shape[1]), np.float32), content])
        c = torch.as_tensor(padded) if content.shape[1] else None
        self._module = SequentialModule(tower, encoder, heads, c).to(self._torch_device)
        self._optimizer = T.make_optimizer(self._module, float(self.lr), float(self.weight_decay))
        self._item_cache = None

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._torch_device = self._device()
        self._events = EventEncoder.fit(data.events, float(self.like_threshold))
        self.event_mode_, self.event_types_ = self._events.mode, list(self._events.classes)
        cat_rows, _ = catalogue_rows(data.items, self.item_ids_)
        self._featurizer = ContentFeaturizer(self.text_encoder, int(self.max_categories)).fit(
            cat_rows if len(cat_rows) else None
        )
        self.categories_ = list(self._featurizer.categories_)
        content, self._item_categories = self._content_for(self.item_ids_, data.items)
        self.n_updates_ = 0
        self._ewc: T.EWC | None = None
        self.history_: list[dict[str, Any]] = []
        self.head_metrics_: dict[str, dict[str, float]] = {}
        ev = self._events.encode_frame(data.events, self._user_index, self._item_index)
        self.n_oov_events_ = int((ev["item"] == OOV_ROW).sum())
        ev["gap"] = T.gap_buckets(ev["user"], ev["ts"], int(self.n_time_buckets))
        self._history_store = HistoryStore.from_events(ev, len(self.user_ids_), int(self.max_len))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            self._build(content)
            rng = np.random.default_rng(int(self.random_state))
            pos = T.positions_from_end(ev["user"])
            counts = np.bincount(ev["user"], minlength=len(self.user_ids_))
            holdout = (
                (pos == 0) & (counts[ev["user"]] >= 2) & (ev["item"] > 0)
                if self.validation
                else pos < 0
            )
            if holdout.sum() > _MAX_VALIDATION_USERS:
                # Only the validation sample gives up its last event; every other user
                # trains on its whole history (on beauty that is 30k more targets).
                keep = rng.choice(np.flatnonzero(holdout), _MAX_VALIDATION_USERS, replace=False)
                holdout = np.zeros_like(holdout)
                holdout[keep] = True
            train = {k: v[~holdout] for k, v in ev.items()}
            windows = T.training_windows(
                train["user"],
                train["item"],
                train["type"],
                train["gap"],
                train["target_type"],
                (train["item"] > 0).astype(np.float32),  # an OOV event is no target
                int(self.max_len),
                int(self.n_windows),
            )
            val = self._validation_set(train, ev, holdout, X) if holdout.any() else None
            self._train(windows, self._train_config(int(self.epochs)), rng, val)

    def _validation_set(
        self,
        train: dict[str, np.ndarray],
        ev: dict[str, np.ndarray],
        holdout: np.ndarray,
        X: sp.csr_matrix,
    ) -> dict[str, Any]:
        users = ev["user"][holdout]
        targets = ev["item"][holdout] - 1
        ttype = ev["target_type"][holdout]
        slot = np.full(len(self.user_ids_), -1, dtype=np.int64)
        slot[users] = np.arange(len(users))
        rows = slot[train["user"]]
        pos = np.where(rows >= 0, T.positions_from_end(train["user"]), -1)
        rows = np.where(rows >= 0, rows, 0)
        L = int(self.max_len)
        seen = X[users].tocoo()
        return {
            "items": T.right_align(rows, pos, train["item"], len(users), L),
            "types": T.right_align(rows, pos, train["type"], len(users), L),
            "gaps": T.right_align(rows, pos, train["gap"], len(users), L),
            "targets": targets,
            "target_types": ttype,
            "seen": (seen.row, seen.col),
        }

    def _train(
        self,
        windows: T.Windows,
        config: T.TrainConfig,
        rng: np.random.Generator,
        val: dict[str, Any] | None,
        teacher: nn.Module | None = None,
    ) -> None:
        self._item_cache = None
        if len(windows) == 0 or config.epochs == 0:
            return
        module, dev = self._module, self._torch_device
        counts = np.asarray(self.item_counts_, dtype=np.float64) + 1e-3
        item_prob = torch.as_tensor(counts / counts.sum(), dtype=torch.float32, device=dev)
        cats = self._item_categories if len(self.categories_) > 1 else None
        # a teacher exists only when distill_weight > 0 (see _partial_fit)
        distill = (
            T.Distillation(teacher, float(self.distill_temperature))
            if teacher is not None
            else None
        )
        loss = T.MultiTaskLoss(
            module,
            config,
            cats,
            item_prob,
            distill,
            float(self.distill_weight),
            self._ewc,  # None during a fit (reset there), the previous state in updates
            float(self.ewc_weight),
        )
        for group in self._optimizer.param_groups:
            group["lr"] = config.lr
        params = [p for g in self._optimizer.param_groups for p in g["params"]]
        stopper = T.EarlyStopping(config.patience) if val is not None else None
        bar = tqdm(
            range(config.epochs),
            desc=f"{self.name} {'fit' if self.n_updates_ == 0 else 'update'}",
            unit="epoch",
            disable=None if self.verbose else True,
            leave=False,
        )
        for epoch in bar:
            t0 = time.perf_counter()
            module.train()
            losses = T.train_epoch(
                loss,
                windows,
                self._optimizer,
                params,
                config.batch_size,
                rng,
                config.grad_clip,
                dev,
            )
            record: dict[str, Any] = {"update": self.n_updates_, "epoch": epoch, **losses}
            record["train_seconds"] = time.perf_counter() - t0
            if stopper is not None:
                metrics = self._evaluate(val)
                record["val_ndcg@10"] = metrics["next_item"]["ndcg@10"]
                bar.set_postfix(
                    loss=f"{losses.get('next_item', 0):.3f}", ndcg=f"{record['val_ndcg@10']:.4f}"
                )
                self.history_.append(record)
                if stopper.step(record["val_ndcg@10"], epoch, module, metrics):
                    break
            else:
                bar.set_postfix(loss=f"{losses.get('next_item', 0):.3f}")
                self.history_.append(record)
        bar.close()
        if stopper is not None:
            stopper.restore(module)
            self.head_metrics_ = stopper.best_info
            self.best_epoch_ = stopper.best_epoch
        if self.ewc_weight > 0:  # the information of what was just learned, for the next update
            plain = T.MultiTaskLoss(module, config, cats, item_prob)
            batches = int(self.fisher_batches)
            self._ewc = T.estimate_fisher(
                plain, module, windows, config.batch_size, batches, rng, dev
            )
        module.eval()
        self._item_cache = None

    @torch.no_grad()
    def _evaluate(self, val: dict[str, Any]) -> dict[str, dict[str, float]]:
        """Full-ranking NDCG@10 / HR@10 of the held-out events and the heads' metrics."""
        module, dev = self._module, self._torch_device
        module.eval()
        V = module.item_tower.all()
        n = len(val["targets"])
        ranks, type_probs, cat_logits = [], [], []
        seen_r, seen_c = val["seen"]
        for start in range(0, n, _SCORE_BATCH):
            sl = slice(start, start + _SCORE_BATCH)
            out = module.last(
                *(torch.as_tensor(val[k][sl], device=dev) for k in ("items", "types", "gaps"))
            )
            S = out["user"] @ V.T
            sel = (seen_r >= start) & (seen_r < start + _SCORE_BATCH)
            ranks.append(
                T.target_ranks(
                    S,
                    torch.as_tensor(val["targets"][sl], device=dev),
                    seen_r[sel] - start,
                    seen_c[sel],
                )
                .cpu()
                .numpy()
            )
            if "event_type" in out:
                type_probs.append(torch.softmax(out["event_type"], -1).cpu().numpy())
            if "category" in out:
                cat_logits.append(out["category"].cpu().numpy())
        r = np.concatenate(ranks)
        metrics = {
            "next_item": {
                "ndcg@10": float(ndcg_from_ranks(r, 10).mean()),
                "hr@10": float(hit_rate_from_ranks(r, 10).mean()),
                "n_users": int(n),
            }
        }
        if type_probs:
            metrics["event_type"] = _type_metrics(np.concatenate(type_probs), val["target_types"])
        if cat_logits:
            soft = self._item_categories[val["targets"]]
            metrics["category"] = _category_metrics(np.concatenate(cat_logits), soft)
        return metrics

    # ---------------------------------------------------------------- updates
    def partial_fit(
        self,
        new_interactions: Dataset | pd.DataFrame,
        replay: Dataset | pd.DataFrame | None = None,
        *,
        epochs: int | None = None,
    ) -> SequentialRecommender:
        """Learn from new events (warm start, ``epochs`` passes; ``None``: the
        ``partial_fit_epochs`` hyperparameter, which this never changes).

        ``replay``: past events the model has already learned (e.g. a sample from a replay
        buffer) to rehearse beside the new ones. Each is re-learned in its original
        context: a window of the user's stored recent events ending at it (when it has
        left the stored ``max_len`` events, the user's stored window instead). Replayed
        events are not appended to the histories again. Events of unknown users or items
        are skipped; ``n_replayed_`` holds how many windows were rehearsed last time.
        With ``distill_weight`` / ``ewc_weight`` set, the update is also pulled towards
        the model as it was before (see the parameters). On an unfitted model this is
        ``fit`` (``replay`` ignored).
        """
        replay_events = None if replay is None else as_dataset(replay).events
        if epochs is not None and (
            isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0
        ):
            raise ParameterError("epochs", epochs, "None or an integer >= 0")
        if not self.is_fitted:
            return self.fit(new_interactions)
        n = int(self.partial_fit_epochs) if epochs is None else int(epochs)
        self._update(as_dataset(new_interactions), n, replay_events)
        return self

    def _update_len(self) -> int:
        """Window length of ``partial_fit``'s training windows (new and replayed)."""
        m = self.partial_fit_max_len
        return int(self.max_len) if m is None else min(int(m), int(self.max_len))

    def _replay_windows(self, events: pd.DataFrame) -> T.Windows:
        """Windows ending at each replayed event in the stored histories (see partial_fit)."""
        users = events["user_id"].astype(str).map(self._user_index)
        items = events["item_id"].astype(str).map(self._item_index)
        known = users.notna().to_numpy() & items.notna().to_numpy()
        u = users.to_numpy()[known].astype(np.int64)
        want = pd.DataFrame(
            {
                "user": u,
                "item": items.to_numpy()[known].astype(np.int64) + 1,
                "ts": events["timestamp"].to_numpy()[known].astype(np.int64),
            }
        )
        rows = np.unique(u)
        hist = self._history_store.read(rows)
        have = pd.DataFrame({k: hist[k] for k in ("user", "item", "ts")})
        have["at"] = np.arange(len(have))
        last = have.groupby("user")["at"].max()
        anchor = want.merge(have, on=["user", "item", "ts"], how="left")["at"]
        fallback = want["user"].map(last)
        anchors = anchor.fillna(fallback).dropna().to_numpy(dtype=np.int64)
        anchors = np.unique(anchors)
        self.n_replayed_ = len(anchors)
        types = hist["type"]
        target = self._events.target_types(types)
        return T.windows_ending_at(
            hist["user"], hist["item"], types, hist["gap"], target, anchors, self._update_len()
        )

    # ---------------------------------------------------------------- rows
    # Which id holds which row is the lifecycle's (RowLifecycle over user_vocab_ and
    # item_vocab_); user_ids_ / item_ids_ are its ids with FreeRow placeholders and the
    # indexes its own. Each of its operations returns the RowChanges that _apply applies.
    @property
    def user_vocab_(self) -> IdVocabulary:
        return self._rows.users

    @property
    def item_vocab_(self) -> IdVocabulary:
        return self._rows.items

    @property
    def last_timestamp_(self) -> int:
        return self._rows.now

    def _uses_oov(self) -> bool:
        """Whether events can lack their item's row (admission threshold or expiry)."""
        return int(self.item_min_count) > 1 or self.item_ttl is not None

    def _sync_rows(self) -> None:
        self.user_ids_, self.item_ids_ = self._rows.user_ids(), self._rows.item_ids()
        self._user_index, self._item_index = self._rows.users.index, self._rows.items.index

    def _init_vocab(self, events: pd.DataFrame) -> None:  # Recommender.fit's rows
        self._rows = RowLifecycle.start(events, int(self.item_min_count))
        self.n_expired_users_ = self.n_expired_items_ = 0
        self.expired_ = {"now": self._rows.now, "users": [], "items": []}
        self.expired_["n_pending_items_dropped"] = 0
        self._sync_rows()

    def _admit_items(self, ids: np.ndarray) -> None:  # Recommender.add_items' rows
        self._apply(self._rows.admit_items(ids))

    def _apply(self, changes: RowChanges) -> None:
        """Apply row changes: reset what expired ids left behind (stored histories of
        users; id, optimiser, content and category rows of items, and their events in
        stored histories, which become out-of-vocabulary events; both leave
        ``user_items_`` and the counts), record the expiry, and start reused item rows
        over as new (their content comes with the update that admitted them)."""
        if changes.changed:
            self._sync_rows()
        u, i = changes.expired_users.rows, changes.expired_items.rows
        if changes.expiry_ran:
            if len(u):
                self._history_store.clear(u)
            if len(i):
                self._history_store.forget_items(i)
                counts = self.item_counts_.copy()
                counts[i] = 0.0
                self.item_counts_ = counts
                self._item_categories = set_csr_rows(self._item_categories, i, None)
                self._reset_item_rows(i)
            if len(u) or len(i):
                self.user_items_ = _drop_cells(self.user_items_, u, i)
            self.n_expired_users_ += len(u)
            self.n_expired_items_ += len(i)
            self.expired_ = {
                "now": changes.now,
                "users": changes.expired_users.ids.tolist(),
                "items": changes.expired_items.ids.tolist(),
                "n_pending_items_dropped": int(changes.expired_items.n_pending_dropped),
            }
        self._reset_item_rows(changes.reused_items)  # a free row may have drifted

    def expire(self, now: Any = None) -> dict[str, Any]:
        """Expire the users and items unseen for longer than ``user_ttl`` / ``item_ttl``.

        ``partial_fit`` does this by itself with ``now`` = the newest event timestamp
        seen; call it to expire between updates (e.g. on a clock). Freed rows are reset
        (see the ``user_ttl`` parameter) and reused by the next new ids; with no
        time-to-live set nothing expires.

        Parameters
        ----------
        now
            The current time (integer epoch seconds); ``None``: ``last_timestamp_``.

        Returns
        -------
        dict
            ``now``, ``users`` and ``items`` (the expired ids), and
            ``n_pending_items_dropped`` (items below ``item_min_count`` forgotten); also
            kept in ``expired_``.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        ParameterError
            ``now`` is not an integer timestamp.
        """
        self._check_fitted()
        if now is None:
            t = self.last_timestamp_
        else:
            ok = isinstance(now, numbers.Real) and not isinstance(now, bool)
            if ok and not isinstance(now, numbers.Integral):
                ok = math.isfinite(float(now)) and float(now).is_integer()
            if not ok:
                raise ParameterError("now", now, "None or an integer timestamp (epoch seconds)")
            t = int(now)
        self._apply(self._rows.expire(t, self.user_ttl, self.item_ttl))
        return self.expired_

    def forget_users(self, users: Any) -> list[str]:
        """Erase users: their stored events, seen items and rows (the right to be
        forgotten).

        Each user's row is freed (reused by later new users) and its stored history and
        seen items are cleared; events of theirs observed but not trained on yet are
        dropped from the next :meth:`online_step`. The user is unknown afterwards (a
        later event makes a new user). What the parameters learned from their past
        events (shared item and encoder weights, no per-user row) stays; retrain without
        their events to remove that too. Ids the model does not know are skipped.

        Parameters
        ----------
        users
            One user id or a 1-d sequence of them.

        Returns
        -------
        list of str
            The ids that were erased.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        """
        self._check_fitted()
        ids = [users] if _is_single(users) else list(users)
        gone = self._rows.forget_users([str(u) for u in ids])
        self._sync_rows()
        rows = gone.rows
        if len(rows):
            self._history_store.clear(rows)
            self.user_items_ = _drop_cells(self.user_items_, rows, np.empty(0, np.int64))
            buf = self._online_buffer(create=False)
            if buf is not None:
                for part in ("old", "new"):
                    kept = []
                    for arrays in buf[part]:
                        keep = ~np.isin(arrays["user"], rows)
                        kept.append({k: v[keep] for k, v in arrays.items()})
                    buf[part] = kept
                buf["n"] = int(sum(len(a["user"]) for a in buf["new"]))
                buf["snapped"].difference_update(rows.tolist())
        return [str(i) for i in gone.ids.tolist()]

    def item_vectors(self, items: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Item ids ``(n,)`` and vectors ``(n, D)`` (float32): a user's score for an item
        is ``user_vectors(user) @ vector``. ``items=None``: every live item (free rows
        left out), for an ANN index (``lifelongrec.serving.ItemIndex``); else those ids,
        in that order (an unknown id raises :class:`UnknownIdError`), copying only
        their rows."""
        self._check_fitted()
        if items is None:
            rows = np.flatnonzero(np.asarray(self.item_vocab_.active, bool))
            V = self._item_matrix()[rows]
        else:
            rows = self._item_rows([items] if _is_single(items) else list(items))
            if self._item_cache is not None or len(rows) * 4 > len(self.item_ids_):
                V = self._item_matrix()[rows]
            else:  # a few items after the cache was dropped (new items): only their rows
                with torch.no_grad():
                    self._module.eval()
                    shifted = torch.as_tensor(rows + 1, device=self._device())
                    V = self._module.item_tower(shifted).cpu().numpy()
        return self.item_ids_[rows].astype(object), np.ascontiguousarray(V, np.float32)

    def _reset_item_rows(self, rows: np.ndarray, content: np.ndarray | None = None) -> None:
        """Start item ``rows`` over as new: zero id embedding and AdamW moments, the given
        content (zero when ``None``), no EWC anchor."""
        if len(rows) == 0:
            return
        tower = self._module.item_tower
        weight = tower.id_emb.weight
        t = torch.as_tensor(np.asarray(rows, dtype=np.int64) + 1, device=weight.device)
        c = None
        if content is not None and tower.content is not None:
            c = torch.as_tensor(content, device=weight.device)
        tower.reset_rows(t, c)
        with torch.no_grad():
            for value in self._optimizer.state.get(weight, {}).values():
                if torch.is_tensor(value) and value.shape == weight.shape:
                    value[t] = 0.0
            ewc = self._ewc
            name = "item_tower.id_emb.weight"
            if ewc is not None and name in ewc.fisher:
                inside = t[t < ewc.fisher[name].shape[0]]
                ewc.fisher[name][inside] = 0.0
                ewc.anchor[name][inside] = 0.0
        self._item_cache = None

    def memory_report(self) -> dict[str, int]:
        """Rows of the tables and bytes of what the model holds, to watch memory over a
        stream.

        Returns
        -------
        dict
            ``user_rows``, ``user_active``, ``user_free``, ``item_rows``, ``item_active``,
            ``item_free``, ``item_pending`` (rows allocated, held, free; items counted but
            not admitted); bytes (tensor ``nbytes``, numpy ``nbytes``) of
            ``parameter_bytes`` (module parameters and buffers), ``optimizer_bytes``
            (AdamW state), ``ewc_bytes`` (Fisher and anchor), ``history_bytes`` (stored
            histories), ``interaction_bytes`` (``user_items_``, ``item_counts_``, category
            rows), ``vocabulary_bytes`` (the vocabularies' state arrays) and
            ``total_bytes``.
        """
        self._check_fitted()

        def tensors(ts: Any) -> int:
            return int(sum(t.numel() * t.element_size() for t in ts if torch.is_tensor(t)))

        def csr(X: sp.csr_matrix) -> int:
            return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)

        module = self._module
        ewc = self._ewc
        out = {
            "user_rows": self.user_vocab_.n_rows,
            "user_active": self.user_vocab_.n_active,
            "user_free": self.user_vocab_.n_free,
            "item_rows": self.item_vocab_.n_rows,
            "item_active": self.item_vocab_.n_active,
            "item_free": self.item_vocab_.n_free,
            "item_pending": self.item_vocab_.n_pending,
            "parameter_bytes": tensors([*module.parameters(), *module.buffers()]),
            "optimizer_bytes": tensors(
                v for st in self._optimizer.state.values() for v in st.values()
            ),
            "ewc_bytes": 0
            if ewc is None
            else tensors([*ewc.fisher.values(), *ewc.anchor.values()]),
            "history_bytes": self._history_store.nbytes,
            "interaction_bytes": csr(self.user_items_)
            + csr(self._item_categories)
            + int(self.item_counts_.nbytes),
            "vocabulary_bytes": int(
                sum(
                    a.nbytes
                    for v in (self.user_vocab_, self.item_vocab_)
                    for a in v.get_state().values()
                )
            ),
        }
        out["total_bytes"] = sum(v for k, v in out.items() if k.endswith("_bytes"))
        return out

    def _free_item_mask(self, S: np.ndarray) -> np.ndarray:
        """``S`` with the columns of free item rows at ``-inf`` (never recommended)."""
        free = self.item_vocab_.free_rows
        if len(free):
            S[..., free] = -np.inf
        return S

    def _cold_scores(self) -> np.ndarray:
        return self._free_item_mask(super()._cold_scores())

    def _similar_scores(self, rows: np.ndarray) -> np.ndarray:
        return self._free_item_mask(super()._similar_scores(rows))

    def _add_items(self, data: Dataset, n_items_before: int, refreshed: np.ndarray) -> None:
        known = set(refreshed.tolist())
        ids = [i for i in data.items["item_id"].astype(str).tolist() if i not in known]
        admitted = np.fromiter((self._item_index[i] for i in ids), np.int64, len(ids))
        self._take_items(data.items, n_items_before, admitted[admitted < n_items_before])
        if len(refreshed) == 0:
            return
        rows = np.fromiter((self._item_index[i] for i in refreshed), np.int64, len(refreshed))
        content, soft = self._content_for(refreshed, data.items)
        tower = self._module.item_tower
        if tower.content is not None:
            with torch.no_grad():
                tower.content[torch.as_tensor(rows + 1, device=tower.content.device)] = (
                    torch.as_tensor(content, device=tower.content.device)
                )
        C = self._item_categories.tolil()
        C[rows] = soft
        self._item_categories = C.tocsr()
        self._item_cache = None

    def _take_items(
        self, items: pd.DataFrame | None, n_items_before: int, reused: np.ndarray
    ) -> None:
        """Content for newly admitted items: grow the item tables (tower, optimiser state,
        category rows) for the rows from ``n_items_before`` on, and start the ``reused``
        rows over with their content."""
        n_items = len(self.item_ids_)
        if n_items > n_items_before:
            new_ids = self.item_ids_[n_items_before:]
            content, soft = self._content_for(new_ids, items)
            tower = self._module.item_tower
            c = torch.as_tensor(content, device=self._torch_device) if content.shape[1] else None
            old, new = tower.grow(c, n_items - n_items_before)
            T.grow_parameter(self._optimizer, old, new)
            self._item_categories = sp.vstack([self._item_categories, soft]).tocsr()
        if len(reused):  # freed rows taken by new items: content as for a grown row
            content, soft = self._content_for(self.item_ids_[reused], items)
            self._reset_item_rows(reused, content)
            self._item_categories = set_csr_rows(self._item_categories, reused, soft)
        self._item_cache = None

    def _update(
        self, data: Dataset, epochs: int, replay: pd.DataFrame | None, learn: bool = True
    ) -> None:
        """The update of ``partial_fit`` (``learn``: ``epochs`` passes; without, the state
        only, as ``observe``): rows, interactions, item tables, histories, training."""
        ev = data.events
        n_items_before = len(self.item_ids_)
        changes = self._rows.observe(ev, self.user_ttl, self.item_ttl)
        self._apply(changes)
        shape = (len(self.user_ids_), len(self.item_ids_))
        X = _resize_csr(self.user_items_, shape) + self._matrix(ev)
        X.data[:] = 1.0
        self.user_items_ = X.tocsr()
        counts = np.zeros(shape[1])
        counts[:n_items_before] = self.item_counts_
        self.item_counts_ = counts + self._item_event_counts(ev)
        teacher = None
        if learn and len(ev) > 0 and self.distill_weight > 0 and epochs > 0:
            teacher = copy.deepcopy(self._module)  # the model before this update
        self._take_items(data.items, n_items_before, changes.reused_items)
        self._history_store.grow(shape[0])
        new = self._events.encode_frame(ev, self._user_index, self._item_index)
        if len(new["user"]) == 0:
            return
        self.n_oov_events_ += int((new["item"] == OOV_ROW).sum())
        replayed = None
        if replay is not None and len(replay):  # from the histories as they were
            replayed = self._replay_windows(replay)
        merged = self._history_store.merge(new, int(self.n_time_buckets))
        if not learn:
            return
        per_user = np.bincount(merged["user"][merged["is_new"]])
        L = self._update_len()
        n_windows = max(int(self.n_windows), -(-int(per_user.max()) // L))
        weight = merged["is_new"].astype(np.float32)
        if self.partial_fit_context_weight > 0:  # learned events in the user's last window
            from_end = T.positions_from_end(merged["user"])  # targets of window 0: < L
            context = ~merged["is_new"] & (from_end < L)
            weight[context] = float(self.partial_fit_context_weight)
        windows = T.training_windows(
            merged["user"],
            merged["item"],
            merged["type"],
            merged["gap"],
            merged["target_type"],
            weight,
            L,
            n_windows,
        )
        self.n_updates_ += 1
        seed = int(self.random_state) + 1_000_003 * self.n_updates_
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            if replayed is not None and len(replayed):
                windows = T.concat_windows(windows, replayed)
            config = self._train_config(int(epochs))
            self._train(windows, config, rng, None, teacher)

    # ---------------------------------------------------------------- online learning
    # The fast path of online learning (driven by lifelongrec.training.OnlineLearner):
    # ``observe`` puts events into the users' stored histories at once, exactly as
    # ``partial_fit`` with ``partial_fit_epochs=0`` would, and keeps them as training
    # material; ``online_step`` takes optimiser steps on the windows ending at them.
    def observe(self, events: Any, items: pd.DataFrame | None = None) -> SequentialRecommender:
        """Take new events into the users' state at once, without a gradient step.

        Each event is merged into its user's stored recent events exactly as
        :meth:`partial_fit` with ``partial_fit_epochs=0`` merges it (time order, equal
        timestamps after what is stored, time-gap buckets and event types computed the
        same way, the seen-items matrix and item counts updated too), so the user's next
        :meth:`recommend` reflects it. When every user and item is known this costs a
        few numpy operations on the users' rows (no pandas, no sparse sums); a call with
        a user or item the model does not know goes through that ``partial_fit`` itself,
        which grows the tables (new items get content from ``items``). The events are
        also kept for the next :meth:`online_step` (``n_online_pending``).

        Parameters
        ----------
        events
            New events: a DataFrame in the event schema (``user_id, item_id,
            timestamp``; ``event_type`` and ``value`` optional), a
            :class:`~lifelongrec.data.Dataset` (its ``items`` describe new items), or a
            mapping of those column names to equal-length arrays.
        items
            Catalogue rows (``item_id, title, categories, attributes``) of new items;
            overrides a Dataset's ``items``.

        Returns
        -------
        SequentialRecommender
            ``self``.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        DataError
            ``events`` is not one of the accepted forms, lacks a required column, has
            columns of different lengths, a missing id or a non-integer timestamp.

        Notes
        -----
        Not thread-safe on its own: a caller that scores or trains from other threads
        holds one lock around every call (``OnlineLearner.lock``). Observed events not
        trained on yet are not part of :meth:`save` (take an :meth:`online_step` first);
        a new :meth:`fit` discards them (counted in ``n_online_discarded_``).
        """
        self._check_fitted()
        cols, data_items = event_columns(events)
        if items is None:
            items = data_items
        n = len(cols["user_id"])
        if n == 0:
            return self
        users = self.user_rows(cols["user_id"])
        rows = np.fromiter((self._item_index.get(i, -1) for i in cols["item_id"]), np.int64, n)
        known = bool((users >= 0).all() and (rows >= 0).all())
        ttl = (self.user_ttl, self.item_ttl)
        changes = self._rows.touch(users, rows, cols["timestamp"], *ttl) if known else None
        if changes is not None:
            self._apply(changes)
            new = self._events.encode(users, rows, *_columns(cols))
            self._online_record(new)  # the users' stored events before these
            self._history_store.append(new, int(self.n_time_buckets))
            self._add_seen(new["user"], new["item"] - 1)
        else:
            old, new = self._observe_growing(cols, items, users)
            self._online_record(new, old)
        return self

    def online_step(self, steps: int = 1) -> dict[str, Any]:
        """Take ``steps`` optimiser steps on the events observed since the last step.

        The windows are those :meth:`partial_fit` would train on had it been given all
        those events at once: each user's stored events as they were before their first
        observed event, merged with the observed ones, ``max_len + 1`` events per window
        ending at the user's last one (more windows when a user brought more than
        ``max_len`` events); only the observed events are targets. Each step is one
        optimiser step over all of those windows (one mini-batch) with the loss of
        :meth:`partial_fit` (next item, auxiliary heads, and the EWC pull when
        ``ewc_weight > 0``; distillation is left to ``partial_fit``, as a teacher copied
        before one small step would teach nothing), the optimiser state carried over.
        The material is used up whatever ``steps`` is; ``n_online_steps_`` counts the
        steps taken (it also varies the seed of each step's dropout and negatives).

        Parameters
        ----------
        steps
            Optimiser steps (an integer >= 0; 0 discards the material without training).

        Returns
        -------
        dict
            ``n_events`` (events trained on), ``n_windows``, ``n_steps`` and the mean
            loss of each task over the steps.

        Raises
        ------
        NotFittedError
            The model has not been fitted.
        ParameterError
            ``steps`` is not an integer >= 0.
        """
        self._check_fitted()
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ParameterError("steps", steps, "an integer >= 0")
        buf = self._online_buffer(create=False)
        self._online_buf = None
        out: dict[str, Any] = {"n_events": 0, "n_windows": 0, "n_steps": 0}
        if buf is None or buf["n"] == 0:
            return out
        if steps == 0:  # discard the material: no windows to build
            out["n_events"] = buf["n"]
            return out
        windows = self._online_windows(buf)
        out["n_events"], out["n_windows"] = buf["n"], len(windows)
        if len(windows) == 0 or steps == 0:
            return out
        module, dev = self._module, self._torch_device
        config = self._train_config(int(steps))  # one mini-batch of all windows per step
        counts = np.asarray(self.item_counts_, dtype=np.float64) + 1e-3
        item_prob = torch.as_tensor(counts / counts.sum(), dtype=torch.float32, device=dev)
        cats = self._item_categories if len(self.categories_) > 1 else None
        ewc = getattr(self, "_ewc", None)
        loss = T.MultiTaskLoss(
            module, config, cats, item_prob, None, 0.0, ewc, float(self.ewc_weight)
        )
        for group in self._optimizer.param_groups:
            group["lr"] = config.lr
        params = [p for g in self._optimizer.param_groups for p in g["params"]]
        self.n_online_steps_ = getattr(self, "n_online_steps_", 0)
        seed = int(self.random_state) + 7_368_787 * (self.n_online_steps_ + 1)
        sums: dict[str, float] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            module.train()
            try:
                for _ in range(int(steps)):
                    losses = T.train_epoch(
                        loss,
                        windows,
                        self._optimizer,
                        params,
                        len(windows),
                        rng,
                        config.grad_clip,
                        dev,
                    )
                    for name, value in losses.items():
                        sums[name] = sums.get(name, 0.0) + value
                    self.n_online_steps_ += 1
            finally:
                module.eval()
                self._item_cache = None
        out["n_steps"] = int(steps)
        out.update({name: value / int(steps) for name, value in sums.items()})
        return out

    @property
    def n_online_pending(self) -> int:
        """Events observed since the last :meth:`online_step` (not trained on yet)."""
        buf = self._online_buffer(create=False)
        return 0 if buf is None else int(buf["n"])

    def _observe_growing(
        self, cols: dict[str, np.ndarray], items: pd.DataFrame | None, users: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``observe`` through ``partial_fit`` with no training, for a call with ids
        without a row or one that expires ids: that grows (or frees and reuses) the rows
        and merges the histories. Returns the stored events from before of the users who
        kept their row, and the new events as ``partial_fit`` saw them."""
        known = np.unique(users[users >= 0])
        holders = self.user_ids_[known].copy()
        old = self._history_store.read(known)
        frame = pd.DataFrame(cols)
        self._update(Dataset(events=frame, items=items), 0, None, learn=False)
        kept = known[self.user_ids_[known] == holders]  # a row may have expired meanwhile
        keep = np.isin(old["user"], kept)
        users = self.user_rows(cols["user_id"])
        n = len(users)
        rows = np.fromiter((self._item_index.get(i, -1) for i in cols["item_id"]), np.int64, n)
        new = self._events.encode(users, rows, *_columns(cols))  # as partial_fit's
        return {k: v[keep] for k, v in old.items()}, new

    def _online_buffer(self, create: bool) -> dict[str, Any] | None:
        """The material of the next ``online_step``; material gathered before the module
        was rebuilt (a new ``fit``) is discarded and counted in ``n_online_discarded_``."""
        buf = getattr(self, "_online_buf", None)
        if buf is not None and buf["module"] is not self._module:
            self.n_online_discarded_ = getattr(self, "n_online_discarded_", 0) + buf["n"]
            buf = self._online_buf = None
        if buf is None and create:
            buf = {"module": self._module, "snapped": set(), "old": [], "new": [], "n": 0}
            self._online_buf = buf
        return buf

    def _online_record(
        self, new: dict[str, np.ndarray], old: dict[str, np.ndarray] | None = None
    ) -> None:
        """Keep new events and, for users not in the material yet, their stored events
        from before (``old``, or the stored histories now): the context ``partial_fit``
        would merge them with."""
        buf = self._online_buffer(create=True)
        users = np.unique(new["user"]).tolist()
        fresh = [u for u in users if u not in buf["snapped"]]
        buf["snapped"].update(fresh)
        if old is None:
            buf["old"].append(self._history_store.read(np.asarray(fresh, dtype=np.int64)))
        else:
            keep = np.isin(old["user"], fresh)
            buf["old"].append({k: v[keep] for k, v in old.items()})
        buf["new"].append(new)
        buf["n"] += len(new["user"])

    def _online_windows(self, buf: dict[str, Any]) -> T.Windows:
        """The training windows of the gathered material (see ``online_step``)."""
        old = {k: np.concatenate([o[k] for o in buf["old"]]) for k in buf["old"][0]}
        new = {k: np.concatenate([e[k] for e in buf["new"]]) for k in buf["new"][0]}
        merged = merge_events(old, new, int(self.n_time_buckets))
        per_user = np.bincount(merged["user"][merged["is_new"]])
        L = int(self.max_len)
        n_windows = max(int(self.n_windows), -(-int(per_user.max()) // L))
        return T.training_windows(
            merged["user"],
            merged["item"],
            merged["type"],
            merged["gap"],
            merged["target_type"],
            merged["is_new"].astype(np.float32),
            L,
            n_windows,
        )

    # ---------------------------------------------------------------- scoring
    @torch.no_grad()
    def _item_matrix(self) -> np.ndarray:
        if self._item_cache is None:
            self._module.eval()
            self._item_cache = self._module.item_tower.all().cpu().numpy()
        return self._item_cache

    @torch.no_grad()
    def _last_outputs(
        self, rows: np.ndarray, state: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        module, dev = self._module, self._torch_device
        if module.training:
            module.eval()
        hist = self._history_store.arrays if state is None else state
        if state is not None:
            rows = np.arange(len(state["items"]))
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(rows), _SCORE_BATCH):
            r = rows[start : start + _SCORE_BATCH]
            out = module.last(
                *(torch.as_tensor(hist[k][r], device=dev) for k in ("items", "types", "gaps"))
            )
            for key, value in out.items():
                parts.setdefault(key, []).append(value.cpu().numpy())
        return {k: np.concatenate(v) for k, v in parts.items()}

    def user_vectors(self, users: Any) -> np.ndarray:
        """User vectors ``(n, D)`` (``(D,)`` for one id) from the stored histories."""
        rows = self._known_rows(users)
        U = self._last_outputs(rows)["user"] if len(rows) else np.zeros((0, int(self.dim)))
        return U[0] if _is_single(users) else U

    def user_state(self, users: Any) -> dict[str, np.ndarray]:
        """A copy of the users' stored recent events (the encoder's input), for
        :meth:`encode_state`. Copying is cheap; a service copies under its lock and
        encodes outside it, so state updates never wait for an encoder pass."""
        rows = self._known_rows(users)
        return self._history_store.inputs(rows)

    def encode_state(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """User vectors ``(n, D)`` of a :meth:`user_state` copy (equal to
        :meth:`user_vectors` of those users at the time of the copy)."""
        if len(state["items"]) == 0:
            return np.zeros((0, int(self.dim)), np.float32)
        return self._last_outputs(np.empty(0, np.int64), state)["user"]

    def _score(self, rows: np.ndarray) -> np.ndarray:
        U = self._last_outputs(np.asarray(rows))["user"]
        return self._free_item_mask((U @ self._item_matrix().T).astype(np.float32))

    # ---- given histories (Recommender.score_histories; prequential evaluation) ----
    @torch.no_grad()
    def _score_history(self, hist: Any) -> np.ndarray:
        """Scores of a ``models._history.HistoryBatch``: each query's last ``max_len``
        visible events are encoded exactly as a stored history is (item, event type and
        time-gap inputs, right-aligned), whatever the model stored about the user."""
        log = hist.events
        # the encoder groups events by user row and time: a stand-in known user and the
        # log position as timestamp keep the log's own order, so its types line up.
        stand_in = log.assign(timestamp=np.arange(len(log)))
        ev = self._events.encode_frame(
            stand_in, self._user_index, self._item_index, users=np.zeros(len(log), np.int64)
        )
        gaps = T.gap_buckets(hist.groups, hist.timestamps, int(self.n_time_buckets))
        query, pos, event = hist.recent(int(self.max_len))
        n, L = len(hist), int(self.max_len)
        seqs = [
            T.right_align(query, pos, values[event], n, L)
            for values in (ev["item"], ev["type"], gaps)
        ]
        module, dev = self._module, self._torch_device
        module.eval()
        parts = []
        for s in range(0, n, _SCORE_BATCH):
            out = module.last(*(torch.as_tensor(m[s : s + _SCORE_BATCH], device=dev) for m in seqs))
            parts.append(out["user"].cpu().numpy())
        S = (np.concatenate(parts) @ self._item_matrix().T).astype(np.float32)
        return self._free_item_mask(S)

    # ---- end of given histories ----

    def _item_vectors(self) -> np.ndarray:
        return self._item_matrix()

    def _known_rows(self, users: Any) -> np.ndarray:
        rows = self.user_rows(users)
        if (rows < 0).any():
            ids = [users] if _is_single(users) else list(users)
            raise UnknownIdError(
                "user",
                [ids[j] for j in np.flatnonzero(rows < 0)],
                hint="the heads need the user's history; unknown users have none",
            )
        return rows

    def predict_event_type(self, users: Any) -> tuple[np.ndarray, np.ndarray]:
        """Probability of each type for the users' next event.

        Returns ``(classes (T,), probs)``: ``probs`` is ``(T,)`` for one id, ``(n, T)``
        for a batch; rows sum to 1. Raises :class:`ParameterError` when the head is off
        (one event type and no ratings) and :class:`UnknownIdError` for unknown users.
        """
        self._check_fitted()
        if not self.event_types_:
            raise ParameterError(
                "predict_event_type",
                self.event_mode_,
                "a model fitted on two or more event types or on rated events",
            )
        rows = self._known_rows(users)
        logits = self._last_outputs(rows).get("event_type") if len(rows) else None
        P = _softmax(logits) if logits is not None else np.zeros((0, len(self.event_types_)))
        classes = np.asarray(self.event_types_, dtype=object)
        return classes, (P[0] if _is_single(users) else P)

    def category_interest(self, users: Any, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` categories the users' next item most likely belongs to, with
        probabilities (softmax over all categories), best first.

        Shapes as in :meth:`recommend`: ``(k,)`` for one id, ``(n, k)`` for a batch.
        """
        self._check_fitted()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError("k", k, "a positive integer")
        if len(self.categories_) < 2:
            raise ParameterError(
                "category_interest",
                len(self.categories_),
                "a model fitted with an items catalogue of two or more categories",
            )
        rows = self._known_rows(users)
        C = len(self.categories_)
        logits = self._last_outputs(rows)["category"] if len(rows) else np.zeros((0, C))
        P = _softmax(logits)
        k_eff = min(int(k), C)
        idx = np.argsort(-P, axis=1, kind="stable")[:, :k_eff]
        names = np.asarray(self.categories_, dtype=object)[idx]
        probs = np.take_along_axis(P, idx, axis=1)
        return (names[0], probs[0]) if _is_single(users) else (names, probs)

    # ---------------------------------------------------------------- state
    def _restore_rows(self, arrays: dict[str, Any], extra: dict[str, Any] | None) -> None:
        """The rows of a saved model; a model saved before vocabularies existed gets every
        id active, seen at its newest stored event."""
        uv = {k[7:]: v for k, v in arrays.items() if k.startswith("uvocab/")}
        iv = {k[7:]: v for k, v in arrays.items() if k.startswith("ivocab/")}
        if uv and iv:
            users, items = IdVocabulary.from_state(uv), IdVocabulary.from_state(iv)
            self._rows = RowLifecycle(users, items, int(extra["last_timestamp"]))
        else:
            ts = arrays.get("hist/ts")
            t = int(ts.max()) if ts is not None and ts.size else 0
            self._rows = RowLifecycle.everyone(
                self.user_ids_, self.item_ids_, int(self.item_min_count), t
            )
            extra = {"last_timestamp": t}
        self.expired_ = extra.get(
            "expired",
            {"now": self.last_timestamp_, "users": [], "items": [], "n_pending_items_dropped": 0},
        )
        self.n_expired_users_ = int(extra.get("n_expired_users", 0))
        self.n_expired_items_ = int(extra.get("n_expired_items", 0))
        self.n_oov_events_ = int(extra.get("n_oov_events", 0))
        self._sync_rows()

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        arrays: dict[str, Any] = {
            f"w/{k}": v.detach().cpu().numpy() for k, v in self._module.state_dict().items()
        }
        named = list(self._module.named_parameters())
        arrays.update(
            {f"opt/{k}": v for k, v in T.optimizer_arrays(self._optimizer, named).items()}
        )
        arrays.update({f"hist/{k}": v for k, v in self._history_store.arrays.items()})
        ewc = getattr(self, "_ewc", None)
        if ewc is not None:
            for name, f in ewc.fisher.items():
                arrays[f"ewcf/{name}"] = f.detach().cpu().numpy()
                arrays[f"ewca/{name}"] = ewc.anchor[name].detach().cpu().numpy()
        arrays["item_categories"] = self._item_categories
        f_arrays, f_extra = self._featurizer.get_state()
        arrays.update({f"feat/{k}": v for k, v in f_arrays.items()})
        arrays.update({f"uvocab/{k}": v for k, v in self.user_vocab_.get_state().items()})
        arrays.update({f"ivocab/{k}": v for k, v in self.item_vocab_.get_state().items()})
        extra = {
            "event_mode": self.event_mode_,
            "event_types": list(self.event_types_),
            "featurizer": f_extra,
            "content_dim": self._module.item_tower.config.content_dim,
            "n_updates": self.n_updates_,
            "head_metrics": self.head_metrics_,
            "history": self.history_,
            "best_epoch": getattr(self, "best_epoch_", None),
            "vocab": {
                "last_timestamp": self.last_timestamp_,
                "expired": self.expired_,
                "n_expired_users": self.n_expired_users_,
                "n_expired_items": self.n_expired_items_,
                "n_oov_events": self.n_oov_events_,
            },
        }
        return arrays, extra

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self._torch_device = self._device()
        self._restore_rows(arrays, extra.get("vocab"))
        self._events = EventEncoder(
            extra["event_mode"], tuple(extra["event_types"]), float(self.like_threshold)
        )
        self.event_mode_, self.event_types_ = self._events.mode, list(self._events.classes)
        feat = {k[5:]: v for k, v in arrays.items() if k.startswith("feat/")}
        self._featurizer = ContentFeaturizer.from_state(
            feat, extra["featurizer"], self.get_params()
        )
        self.categories_ = list(self._featurizer.categories_)
        self._item_categories = arrays["item_categories"].astype(np.float32)
        self._history_store = HistoryStore(
            {k[5:]: v.astype(np.int64) for k, v in arrays.items() if k.startswith("hist/")}
        )
        dev = self._torch_device
        fisher = {
            k[5:]: torch.as_tensor(v, device=dev) for k, v in arrays.items() if k[:5] == "ewcf/"
        }
        anchor = {
            k[5:]: torch.as_tensor(v, device=dev) for k, v in arrays.items() if k[:5] == "ewca/"
        }
        self._ewc = T.EWC(fisher, anchor) if fisher else None
        self.n_updates_ = int(extra["n_updates"])
        self.head_metrics_ = extra["head_metrics"]
        self.history_ = extra["history"]
        if extra.get("best_epoch") is not None:
            self.best_epoch_ = int(extra["best_epoch"])
        self._build(np.zeros((len(self.item_ids_), int(extra["content_dim"])), np.float32))
        state = {
            k[2:]: torch.as_tensor(np.array(v)) for k, v in arrays.items() if k.startswith("w/")
        }
        self._module.load_state_dict(state)
        opt = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
        T.load_optimizer_arrays(self._optimizer, list(self._module.named_parameters()), opt)
        self._module.eval()


def _columns(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Timestamps, event types and values of checked event columns (``event_columns``)."""
    return cols["timestamp"], cols["event_type"], cols["value"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _type_metrics(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    ok = targets >= 0
    out: dict[str, float] = {"n": int(ok.sum())}
    if not ok.any():
        return out
    p, t = probs[ok], targets[ok]
    out["accuracy"] = float((p.argmax(1) == t).mean())
    if p.shape[1] == 2 and 0 < t.sum() < len(t):
        out["auc"] = float(auc(p[None, :, 1], (t == 1)[None])[0])
    return out


def _category_metrics(logits: np.ndarray, soft: sp.csr_matrix) -> dict[str, float]:
    has = np.diff(soft.indptr) > 0
    out: dict[str, float] = {"n": int(has.sum())}
    if not has.any():
        return out
    lg, target = logits[has], soft[has].toarray()
    logp = lg - lg.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    out["cross_entropy"] = float(-(target * logp).sum(1).mean())
    out["accuracy@1"] = float((target[np.arange(len(lg)), lg.argmax(1)] > 0).mean())
    top = np.argsort(-lg, axis=1, kind="stable")[:, :10]
    relevant = [np.flatnonzero(row).tolist() for row in target > 0]
    out["ndcg@10"] = float(ndcg_at_k(top.tolist(), relevant, 10).mean())
    return out
