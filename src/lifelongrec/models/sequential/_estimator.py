"""The estimator: :class:`SequentialRecommender` composes the parts of this package
behind the :class:`~lifelongrec.models.Recommender` contract (see the package docstring).

Parts (each readable alone, none calls back into the estimator): the event encoder
(``_events``), the user-history store (``_histories``), the id/row lifecycle
(``_lifecycle``), the content featurizer (``_content``), the torch modules
(``_modules``), what is trained on (``_windows``), the trainer (``_trainer``), the online
buffer (``_online``), hyperparameter checks and configs (``_params``) and save/load
(``_state``). The estimator holds them, reads its hyperparameters when it calls them,
and applies what one part changed to the others.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from lifelongrec._errors import ParameterError, UnknownIdError
from lifelongrec.data._schema import Dataset, as_dataset
from lifelongrec.features._vocab import IdVocabulary
from lifelongrec.models._base import Recommender, _is_single, _resize_csr, event_columns
from lifelongrec.models.sequential import _params as P
from lifelongrec.models.sequential._content import ContentFeaturizer, catalogue_rows, set_csr_rows
from lifelongrec.models.sequential._events import OOV_ROW, EventEncoder
from lifelongrec.models.sequential._histories import HistoryStore, merge_events
from lifelongrec.models.sequential._lifecycle import RowChanges, RowLifecycle
from lifelongrec.models.sequential._modules import SequentialModule
from lifelongrec.models.sequential._online import OnlineBuffer
from lifelongrec.models.sequential._trainer import Forgetting, Trainer
from lifelongrec.models.sequential._windows import fit_windows, replay_windows, update_windows
from lifelongrec.nn import concat_windows, gap_buckets, right_align

__all__ = ["SequentialRecommender"]

_SCORE_BATCH = 512  # users encoded at once when scoring


def _drop_cells(X: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """``X`` without the entries in ``rows`` or in ``cols`` (same shape)."""
    coo = X.tocoo()
    keep = ~(np.isin(coo.row, rows) | np.isin(coo.col, cols))
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=X.shape, dtype=X.dtype
    )


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
        Cheap next to the encoder (on a large catalogue many help: docs/benchmarks.md).
    partial_fit_epochs
        Passes over the new events in ``partial_fit`` (warm start, optimiser carried over;
        its ``epochs`` argument overrides it for one call).
    partial_fit_context_weight
        In ``partial_fit`` and :meth:`online_step`, the loss weight of the user's already learned events that sit
        in the same training window as their new ones (the user's last
        ``partial_fit_max_len`` events; new events weigh 1). The encoder runs over those
        positions anyway, so rehearsing them costs only their share of the output layer:
        a local replay of each active user's recent past. 0 trains on the new events only.
    partial_fit_max_len
        Length of the training windows of updates (``partial_fit`` and
        :meth:`online_step`; new and replayed events; ``None``: ``max_len``). A user with
        a few new events still costs a whole window; a shorter one costs less (attention
        is quadratic in it) at the price of less context per target during updates.
        Scoring always uses ``max_len``. Short windows pay off when users add one or two
        events per update (docs/benchmarks.md, the lifelong strategy).
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

    # ------------------------------------------------------------------ setup
    def _validate_params(self) -> None:
        P.check_params(self.get_params())

    def _device(self) -> torch.device:
        return P.torch_device(self.device)

    def _train_config(self, epochs: int) -> P.TrainConfig:
        return P.train_config(self.get_params(), epochs, self.n_items)

    def _build(self, content: np.ndarray) -> None:
        """A new module (content ``(N, F)`` in its item tower) and its trainer."""
        configs = P.module_configs(
            self.get_params(),
            len(self.item_ids_),
            content.shape[1],
            self._events.n_type_ids,
            len(self._events.classes),
            len(self.categories_),
        )
        padded = np.concatenate([np.zeros((1, content.shape[1]), np.float32), content])
        c = torch.as_tensor(padded) if content.shape[1] else None
        self._module = SequentialModule(*configs, c).to(self._torch_device)
        lr, decay = float(self.lr), float(self.weight_decay)
        self._trainer = Trainer(self._module, lr, decay, self._torch_device)
        self._item_cache: np.ndarray | None = None
        self._online = OnlineBuffer()

    # -------------------------------------------------------------------- fit
    def fit(self, interactions: Dataset | pd.DataFrame) -> SequentialRecommender:
        """Learn from ``interactions`` (see :meth:`Recommender.fit`). Observed events not
        trained on yet are discarded (counted in ``n_online_discarded_``)."""
        carried = (0, 0)
        if self.is_fitted:
            carried = (self.n_online_steps_, self.n_online_discarded_ + self._online.n)
        super().fit(interactions)
        self.n_online_steps_, self.n_online_discarded_ = carried
        return self

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._torch_device = self._device()
        self._events = EventEncoder.fit(data.events, float(self.like_threshold))
        self.event_mode_, self.event_types_ = self._events.mode, list(self._events.classes)
        cat_rows, _ = catalogue_rows(data.items, self.item_ids_)
        self._featurizer = ContentFeaturizer(self.text_encoder, int(self.max_categories)).fit(
            cat_rows if len(cat_rows) else None
        )
        self.categories_ = list(self._featurizer.categories_)
        content, self._item_categories = self._featurizer.rows_for(self.item_ids_, data.items)
        self.n_updates_, self.n_replayed_ = 0, 0
        self.history_: list[dict[str, Any]] = []
        self.head_metrics_: dict[str, dict[str, float]] = {}
        self.best_epoch_: int | None = None
        self.n_online_steps_ = self.n_online_discarded_ = 0
        ev = self._events.encode_frame(data.events, self._user_index, self._item_index)
        self.n_oov_events_ = int((ev["item"] == OOV_ROW).sum())
        ev["gap"] = gap_buckets(ev["user"], ev["ts"], int(self.n_time_buckets))
        self._history_store = HistoryStore.from_events(ev, len(self.user_ids_), int(self.max_len))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            self._build(content)
            rng = np.random.default_rng(int(self.random_state))
            windows, val = fit_windows(
                ev,
                len(self.user_ids_),
                X,
                self._item_categories,
                int(self.max_len),
                int(self.n_windows),
                bool(self.validation),
                rng,
            )
            config = self._train_config(int(self.epochs))
            self._train(windows, config, rng, validation=val, forgetting=self._forgetting())

    def _category_targets(self) -> sp.csr_matrix | None:
        return self._item_categories if len(self.categories_) > 1 else None

    def _train(self, windows: Any, config: P.TrainConfig, rng: Any, **kw: Any) -> None:
        """The trainer's run of a fit or an update, recorded in ``history_``."""
        self._item_cache = None
        name = f"{self.name} {'fit' if self.n_updates_ == 0 else 'update'}"
        result = self._trainer.train(
            windows,
            config,
            rng,
            self.item_counts_,
            self._category_targets(),
            progress=name if self.verbose else None,
            **kw,
        )
        self._item_cache = None
        for r in result.records:
            record = {"update": self.n_updates_, "epoch": r["epoch"], **r["losses"]}
            record["train_seconds"] = r["train_seconds"]
            if "val_ndcg@10" in r:
                record["val_ndcg@10"] = r["val_ndcg@10"]
            self.history_.append(record)
        if result.best_metrics is not None:
            self.head_metrics_, self.best_epoch_ = result.best_metrics, result.best_epoch

    def _forgetting(self, teacher: torch.nn.Module | None = None) -> Forgetting:
        ewc = float(self.ewc_weight)
        return Forgetting(
            teacher,
            float(self.distill_weight),
            float(self.distill_temperature),
            ewc,
            int(self.fisher_batches) if ewc > 0 else 0,
        )

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
        ``fit`` (``replay`` and ``epochs`` ignored).
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

    def _update(
        self, data: Dataset, epochs: int, replay: pd.DataFrame | None, learn: bool = True
    ) -> None:
        """An update: rows (the lifecycle's changes applied), interactions, item tables,
        histories, then ``epochs`` passes over the new (and replayed) events; without
        ``learn`` the state only (``observe``'s path for new ids)."""
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
            replayed, self.n_replayed_ = replay_windows(
                replay,
                self._history_store,
                self._user_index,
                self._item_index,
                self._events,
                P.update_len(self.get_params()),
            )
        merged = self._history_store.merge(new, int(self.n_time_buckets))
        if not learn:
            return
        windows = self._update_windows(merged)
        self.n_updates_ += 1
        seed = int(self.random_state) + 1_000_003 * self.n_updates_
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            if replayed is not None and len(replayed):
                windows = concat_windows(windows, replayed)
            config = self._train_config(int(epochs))
            self._train(windows, config, rng, forgetting=self._forgetting(teacher))

    def _update_windows(self, merged: dict[str, np.ndarray]) -> Any:
        """The training windows of merged new and stored events (updates, online steps)."""
        p = self.get_params()
        weight = float(p["partial_fit_context_weight"])
        return update_windows(merged, P.update_len(p), int(p["n_windows"]), weight)

    def _take_items(self, items: pd.DataFrame | None, n_before: int, reused: np.ndarray) -> None:
        """Content for admitted items: the item tables grow (tower, optimiser state,
        category rows) for the rows from ``n_before`` on; ``reused`` rows start over."""
        n_items = len(self.item_ids_)
        if n_items > n_before:
            content, soft = self._featurizer.rows_for(self.item_ids_[n_before:], items)
            c = torch.as_tensor(content, device=self._torch_device) if content.shape[1] else None
            self._trainer.grow_items(c, n_items - n_before)
            self._item_categories = sp.vstack([self._item_categories, soft]).tocsr()
        if len(reused):  # freed rows taken by new items: content as for a grown row
            content, soft = self._featurizer.rows_for(self.item_ids_[reused], items)
            self._reset_item_rows(reused, content)
            self._item_categories = set_csr_rows(self._item_categories, reused, soft)
        self._item_cache = None

    def _reset_item_rows(self, rows: np.ndarray, content: np.ndarray | None = None) -> None:
        if len(rows):
            self._trainer.reset_items(rows, content)
            self._item_cache = None

    def prepare_items(self, items: pd.DataFrame | Dataset) -> None:
        """Encode the items' text with the pretrained encoder into its cache (the slow
        part of :meth:`add_items`, about 10 ms per title on a CPU core; a batch costs far
        less per title), changing nothing the model serves from. Safe to call while
        other threads use the model; ``add_items`` then finds the encodings cached."""
        super().prepare_items(items)
        self._featurizer.prepare(items.items if isinstance(items, Dataset) else items)

    def _add_items(self, data: Dataset, n_items_before: int, refreshed: np.ndarray) -> None:
        known = set(refreshed.tolist())
        ids = [i for i in data.items["item_id"].astype(str).tolist() if i not in known]
        admitted = np.fromiter((self._item_index[i] for i in ids), np.int64, len(ids))
        self._take_items(data.items, n_items_before, admitted[admitted < n_items_before])
        if len(refreshed) == 0:
            return
        rows = np.fromiter((self._item_index[i] for i in refreshed), np.int64, len(refreshed))
        content, soft = self._featurizer.rows_for(refreshed, data.items)
        tower = self._module.item_tower
        if tower.content is not None:
            with torch.no_grad():
                at = torch.as_tensor(rows + 1, device=tower.content.device)
                tower.content[at] = torch.as_tensor(content, device=tower.content.device)
        C = self._item_categories.tolil()
        C[rows] = soft
        self._item_categories = C.tocsr()
        self._item_cache = None

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
            self._online.forget(rows)
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
                    shifted = torch.as_tensor(rows + 1, device=self._torch_device)
                    V = self._module.item_tower(shifted).cpu().numpy()
        return self.item_ids_[rows].astype(object), np.ascontiguousarray(V, np.float32)

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

        def csr(X: sp.csr_matrix) -> int:
            return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)

        users, items, module = self.user_vocab_, self.item_vocab_, self._module
        optimizer_bytes, ewc_bytes = self._trainer.nbytes()
        out = {
            "user_rows": users.n_rows,
            "user_active": users.n_active,
            "user_free": users.n_free,
            "item_rows": items.n_rows,
            "item_active": items.n_active,
            "item_free": items.n_free,
            "item_pending": items.n_pending,
            "parameter_bytes": int(
                sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
            ),
            "optimizer_bytes": optimizer_bytes,
            "ewc_bytes": ewc_bytes,
            "history_bytes": self._history_store.nbytes,
            "interaction_bytes": csr(self.user_items_)
            + csr(self._item_categories)
            + int(self.item_counts_.nbytes),
            "vocabulary_bytes": self._rows.nbytes,
        }
        out["total_bytes"] = sum(v for k, v in out.items() if k.endswith("_bytes"))
        return out

    # ---------------------------------------------------------------- online learning
    # The fast path of online learning (driven by lifelongrec.training.OnlineLearner):
    # ``observe`` puts events into the users' stored histories at once, exactly as
    # ``partial_fit`` with ``epochs=0`` would, and keeps them as training material in the
    # online buffer; ``online_step`` trains on them with partial_fit's windows and loss.
    def observe(self, events: Any, items: pd.DataFrame | None = None) -> SequentialRecommender:
        """Take new events into the users' state at once, without a gradient step.

        Each event is merged into its user's stored recent events exactly as
        :meth:`partial_fit` with ``epochs=0`` merges it (time order, equal
        timestamps after what is stored, time-gap buckets and event types computed the
        same way, the seen-items matrix and item counts updated too), so the user's next
        :meth:`recommend` reflects it. When every user and item is known this costs a
        few numpy operations on the users' rows (no pandas, no sparse sums); a call with
        a user or item the model does not know goes through that update itself,
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
            self._online.record(new, self._history_store)  # their stored events before
            self._history_store.append(new, int(self.n_time_buckets))
            self._add_seen(new["user"], new["item"] - 1)
        else:
            old, new = self._observe_growing(cols, items, users)
            self._online.record(new, old)
        return self

    def _observe_growing(
        self, cols: dict[str, np.ndarray], items: pd.DataFrame | None, users: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``observe`` through the update without training, for a call with ids without
        a row or one that expires ids: that grows (or frees and reuses) the rows and
        merges the histories. Returns the stored events from before of the users who
        kept their row, and the new events as the update encoded them."""
        known = np.unique(users[users >= 0])
        holders = self.user_ids_[known].copy()
        old = self._history_store.read(known)
        self._update(Dataset(events=pd.DataFrame(cols), items=items), 0, None, learn=False)
        kept = known[self.user_ids_[known] == holders]  # a row may have expired meanwhile
        keep = np.isin(old["user"], kept)
        users = self.user_rows(cols["user_id"])
        n = len(users)
        rows = np.fromiter((self._item_index.get(i, -1) for i in cols["item_id"]), np.int64, n)
        new = self._events.encode(users, rows, *_columns(cols))
        return {k: v[keep] for k, v in old.items()}, new

    def online_step(self, steps: int = 1) -> dict[str, Any]:
        """Take ``steps`` optimiser steps on the events observed since the last step.

        The windows are those :meth:`partial_fit` would train on had it been given all
        those events at once: each user's stored events as they were before their first
        observed event, merged with the observed ones, windows of ``partial_fit_max_len``
        targets (``max_len`` by default) ending at the user's last event (more windows
        when a user brought more events than fit in one); the observed events are
        targets, and so are the learned ones in that window with
        ``partial_fit_context_weight > 0`` (partial_fit's weights). Each step is one
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
        out: dict[str, Any] = {"n_events": self._online.n, "n_windows": 0, "n_steps": 0}
        if self._online.n == 0 or steps == 0:  # nothing, or discard the material
            self._online.clear()
            return out
        old, new = self._online.take()
        windows = self._update_windows(merge_events(old, new, int(self.n_time_buckets)))
        out["n_windows"] = len(windows)
        if len(windows) == 0:
            return out
        seed = int(self.random_state) + 7_368_787 * (self.n_online_steps_ + 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            result = self._trainer.train(
                windows,
                self._train_config(int(steps)),  # one mini-batch of all windows per step
                np.random.default_rng(seed),
                self.item_counts_,
                self._category_targets(),
                forgetting=Forgetting(ewc_weight=float(self.ewc_weight)),
                batch_size=len(windows),
            )
        self._item_cache = None
        self.n_online_steps_ += int(steps)
        out["n_steps"] = int(steps)
        out.update(result.mean_losses())
        return out

    @property
    def n_online_pending(self) -> int:
        """Events observed since the last :meth:`online_step` (not trained on yet)."""
        return self._online.n

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
        gaps = gap_buckets(hist.groups, hist.timestamps, int(self.n_time_buckets))
        query, pos, event = hist.recent(int(self.max_len))
        n, L = len(hist), int(self.max_len)
        seqs = [
            right_align(query, pos, values[event], n, L)
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
        for key, value in self._trainer.get_state().items():
            for new, old in (
                ("optimizer/", "opt/"),
                ("ewc/fisher/", "ewcf/"),
                ("ewc/anchor/", "ewca/"),
            ):
                if key.startswith(new):
                    arrays[old + key[len(new) :]] = value
        arrays.update({f"hist/{k}": v for k, v in self._history_store.arrays.items()})
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
            "best_epoch": self.best_epoch_,
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
        self.n_updates_, self.n_replayed_ = int(extra["n_updates"]), 0
        self.head_metrics_ = extra["head_metrics"]
        self.history_ = extra["history"]
        best = extra.get("best_epoch")
        self.best_epoch_ = None if best is None else int(best)
        self.n_online_steps_ = self.n_online_discarded_ = 0
        self._build(np.zeros((len(self.item_ids_), int(extra["content_dim"])), np.float32))
        state = {
            k[2:]: torch.as_tensor(np.array(v)) for k, v in arrays.items() if k.startswith("w/")
        }
        self._module.load_state_dict(state)
        trainer: dict[str, Any] = {}
        for key, value in arrays.items():
            for old, new in (
                ("opt/", "optimizer/"),
                ("ewcf/", "ewc/fisher/"),
                ("ewca/", "ewc/anchor/"),
            ):
                if key.startswith(old):
                    trainer[new + key[len(old) :]] = value
        self._trainer.set_state(trainer)
        self._module.eval()


def _columns(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Timestamps, event types and values of checked event columns (``event_columns``)."""
    return cols["timestamp"], cols["event_type"], cols["value"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
