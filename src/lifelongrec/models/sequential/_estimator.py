"""The estimator: :class:`SequentialRecommender` composes the parts of this package
behind the :class:`~lifelongrec.models.Recommender` contract (see the package docstring).

The parts, each readable alone and none calling back into the estimator: the event
encoder (``_events``), the user-history store (``_histories``), the id/row lifecycle
(``_lifecycle``), the item tables (``_items``), the content featurizer (``_content``),
the torch modules (``_modules``), what is trained on (``_windows``), the trainer
(``_trainer``), the online buffer (``_online``), hyperparameter checks and configs
(``_params``), save/load (``_state``), read-only views of the learned state
(``_learned``) and user and item vectors and scores (``_scoring``). The estimator holds them, reads its hyperparameters when it calls them,
and applies what one part changed to the others.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from lifelongrec._params import check_int
from lifelongrec.data._schema import Dataset, as_dataset, check_impressions
from lifelongrec.models._base import Recommender, _is_single, _resize_csr, event_columns
from lifelongrec.models._events import _catalogue_frame
from lifelongrec.models._sparse import drop_cells
from lifelongrec.models.sequential import _params as P
from lifelongrec.models.sequential._ages import (
    check_releases,
    init_age_bias,
    note_first_events,
)
from lifelongrec.models.sequential._budget import cost_model, epoch_flops, plan_passes
from lifelongrec.models.sequential._content import ContentFeaturizer, catalogue_rows
from lifelongrec.models.sequential._events import OOV_ROW, EventEncoder, Events, event_values
from lifelongrec.models.sequential._exposure import exposure_lists, waiting
from lifelongrec.models.sequential._histories import HistoryStore, merge_events
from lifelongrec.models.sequential._items import ItemTables
from lifelongrec.models.sequential._learned import LearnedState
from lifelongrec.models.sequential._lifecycle import RowChanges, RowLifecycle
from lifelongrec.models.sequential._modules import SequentialModule, padded_content
from lifelongrec.models.sequential._online import OnlineBuffer
from lifelongrec.models.sequential._params import SequentialParams
from lifelongrec.models.sequential._predict import HeadPredictions
from lifelongrec.models.sequential._scoring import Scoring
from lifelongrec.models.sequential._state import RECORDED, read_state, state_arrays
from lifelongrec.models.sequential._trainer import Forgetting, Trainer
from lifelongrec.models.sequential._windows import (
    fit_windows,
    replay_windows,
    update_holdout,
    update_windows,
)
from lifelongrec.nn import Windows, add_training_flops, concat_windows, gap_buckets

__all__ = ["SequentialRecommender"]


class SequentialRecommender(SequentialParams, LearnedState, HeadPredictions, Scoring, Recommender):
    """SASRec/HSTU-style transformer two-tower model with content-aware items.

    The hyperparameters are the fields of :class:`SequentialParams` (typed, documented
    and checked there): ``SequentialRecommender(dim=128, n_layers=3)``.

    Attributes
    ----------
    head_metrics_, best_epoch_ : dict, int or None
        Validation metrics at the best epoch (``next_item``: ``ndcg@10``, ``hr@10``;
        ``event_type``: ``accuracy``, ``auc`` for two classes; ``category``:
        ``accuracy@1``, ``ndcg@10``, ``cross_entropy``; heads that are off are absent)
        and that epoch (``None`` without validation).
    event_mode_, event_types_, categories_ : str, list[str], list[str]
        What the event-type head predicts (``"type"``, ``"like"`` or ``"none"``), its
        classes (empty when it is off) and the classes of the category head.
    history_ : list[dict]
        Per epoch of fits and updates: mean losses, ``train_seconds``, ``val_ndcg@10``,
        ``val_seconds`` and ``est_gflops``, estimated GFLOPs (``train_gflops_``: the sum).
    n_windows_, validation_events_, dropout_ : int, int, float
        Training windows per user, validation events per user and dropout of the fit
        (the setting, or what the data chose when it is ``None``); updates read them too.
    update_plan_ : dict or None
        How the last update trained: ``passes``, ``budget`` (the compute share,
        ``None`` for a fixed number), for a budget the estimated ``pass_flops`` and
        ``refit_flops``, and ``window``, its windows' length (``None`` before the first).
    n_updates_, n_replayed_, n_online_steps_, n_online_discarded_ : int
        Updates since ``fit``; windows the last update with replay rehearsed; online
        steps taken; observed events a new ``fit`` discarded untrained.
    exposure_counts_ : dict
        The last exposure-aware update's impressions (see ``exposure_weight``).
    user_vocab_, item_vocab_ : IdVocabulary
        Which id holds which row (``user_ids_`` / ``item_ids_`` are their ``ids``, with
        a :class:`FreeRow` placeholder at each free row; free item rows score ``-inf``),
        when each was last seen, the free rows and the pending items.
    last_timestamp_ : int
        The newest event timestamp seen ("now" for expiry).
    expired_ : dict
        What the last expiry freed: ``now``, ``users`` and ``items`` (ids),
        ``n_pending_items_dropped``.
    n_expired_users_, n_expired_items_, n_oov_events_ : int
        Ids expired since ``fit``; events learned since ``fit`` whose item had no row.
    module_, optimizer_, ewc_, user_histories_, item_categories_, text_encoder_
        Read-only views of the learned parts: the torch module, its AdamW optimiser, the
        EWC state, the users' stored recent events, the item category targets and the
        text encoder (see :class:`~lifelongrec.models.sequential._learned.LearnedState`).
    """

    name: ClassVar[str] = "sequential"

    # ------------------------------------------------------------------ setup
    def _train_config(self, epochs: int, *, fit: bool = False) -> P.TrainConfig:
        """``fit``: a fit's first run, the only one that averages weights (``ema_decay``)."""
        config = P.train_config(self.get_params(), epochs, self.n_items)
        return config if fit else dataclasses.replace(config, ema_decay=0.0)

    def _build(
        self,
        featurizer: ContentFeaturizer,
        categories: sp.csr_matrix,
        content_dim: int,
        content: np.ndarray | None = None,
    ) -> None:
        """A new module (item content ``(N, F)``, zero when ``None``), its trainer, the
        item tables and an empty online buffer."""
        self._torch_device = P.torch_device(self.device)
        self.categories_ = list(featurizer.categories_)
        n_items, n_types = len(self.item_ids_), self._events.n_type_ids
        n_classes, n_categories = len(self._events.classes), len(self.categories_)
        p = P.with_dropout(self.get_params(), self.dropout_)
        configs = P.module_configs(p, n_items, content_dim, n_types, n_classes, n_categories)
        c = padded_content(content, n_items, content_dim)
        self._module = SequentialModule(*configs, c).to(self._torch_device)
        lr, decay = float(self.lr), float(self.weight_decay)
        self._trainer = Trainer(self._module, lr, decay, self._torch_device)
        release = p["release_attribute"]
        self._items = ItemTables(featurizer, categories, self._trainer, release)
        self._item_cache: np.ndarray | None = None
        self._online = OnlineBuffer()

    def fit(self, interactions: Dataset | pd.DataFrame) -> SequentialRecommender:
        """See :meth:`Recommender.fit`. Observed events not trained on yet are discarded
        (counted in ``n_online_discarded_``)."""
        data = as_dataset(interactions)
        check_releases(data.items, self.release_attribute)
        carried = (0, 0)
        if self.is_fitted:
            carried = (self.n_online_steps_, self.n_online_discarded_ + self._online.n)
        super().fit(data)
        self.n_online_steps_, self.n_online_discarded_ = carried
        return self

    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        self._events = EventEncoder.fit(data.events, float(self.like_threshold))
        self.event_mode_, self.event_types_ = self._events.mode, list(self._events.classes)
        rows, _ = catalogue_rows(data.items, self.item_ids_)
        featurizer = ContentFeaturizer(self.text_encoder, int(self.max_categories))
        featurizer.fit(rows if len(rows) else None)
        content, categories = featurizer.rows_for(self.item_ids_, data.items)
        self.n_updates_, self.n_replayed_, self.history_ = 0, 0, []
        self.head_metrics_: dict[str, dict[str, float]] = {}
        self.best_epoch_: int | None = None
        self.update_plan_: dict[str, Any] | None = None
        ev = self._events.encode_frame(data.events, self._user_index, self._item_index)
        self.n_oov_events_ = int((ev["item"] == OOV_ROW).sum())
        ev["gap"] = gap_buckets(ev["user"], ev["ts"], int(self.n_time_buckets))
        self._history_store = HistoryStore.from_events(ev, len(self.user_ids_), int(self.max_len))
        self.dropout_ = P.fit_dropout(self.dropout, data.events)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            self._build(featurizer, categories, content.shape[1], content)
            self._items.set_releases(np.arange(len(self.item_ids_)), self.item_ids_, data.items)
            note_first_events(self._module.item_tower, ev)
            rng = np.random.default_rng(int(self.random_state))
            L, lengths = int(self.max_len), np.bincount(ev["user"])
            n_windows, n_valid = self.n_windows, self.validation_events
            n_windows = P.data_windows(lengths, L) if n_windows is None else n_windows
            n_valid = P.data_validation_events(lengths) if n_valid is None else n_valid
            self.n_windows_, self.validation_events_ = int(n_windows), int(n_valid)
            valid, users = bool(self.validation), len(self.user_ids_)
            windows, val = fit_windows(ev, users, X, categories, L, n_windows, valid, rng, n_valid)
            init_age_bias(self._module.item_tower, windows, int(self.random_state))
            config = self._train_config(int(self.epochs), fit=True)
            self._train(windows, config, rng, validation=val, forgetting=self._forgetting())
            if val is not None and int(self.final_passes) > 0:  # the held-out events too
                windows, _ = fit_windows(ev, users, X, categories, L, n_windows, False, rng)
                config = self._train_config(int(self.final_passes))
                self._train(windows, config, rng, forgetting=self._forgetting())

    def _forgetting(self, teacher: torch.nn.Module | None = None) -> Forgetting:
        ewc, fisher = float(self.ewc_weight), int(self.fisher_batches)
        temperature = float(self.distill_temperature)
        return Forgetting(
            teacher, float(self.distill_weight), temperature, ewc, fisher if ewc > 0 else 0
        )

    def _train(self, windows: Windows, config: P.TrainConfig, rng: Any, **kw: Any) -> None:
        """The trainer's run of a fit or an update, recorded in ``history_``."""
        self._item_cache = None
        name = f"{self.name} {'fit' if self.n_updates_ == 0 else 'update'}"
        cats, progress = self._items.targets(), name if self.verbose else None
        result = self._trainer.train(
            windows, config, rng, self.item_counts_, cats, progress=progress, **kw
        )
        self._item_cache = None
        flops = self._epoch_flops(windows, kw.get("validation"), kw.get("forgetting"))
        add_training_flops(flops * len(result.records))
        self.history_ += [
            {"update": self.n_updates_, **r, "est_gflops": flops / 1e9} for r in result.records
        ]
        if result.best_metrics is not None and self.n_updates_ == 0:  # the fit's
            self.head_metrics_, self.best_epoch_ = result.best_metrics, result.best_epoch

    def _epoch_flops(
        self, windows: Windows, validation: Any, forgetting: Forgetting | None
    ) -> float:
        """Estimated FLOPs of one epoch of a training run (:mod:`._budget`'s cost
        model): a pass over ``windows``, then the ranking of the validation users."""
        model = cost_model(self.get_params(), self.n_items, self._content_dim())
        distill = forgetting is not None and forgetting.teacher is not None
        n_val = 0 if validation is None else len(validation)
        L = 0 if validation is None else int(validation.items.shape[1])
        return epoch_flops(model, windows, distill, n_val, L, self.n_items)

    @property
    def train_gflops_(self) -> float:
        """Estimated GFLOPs of the fit and the updates since it (online steps are not
        counted): the sum of ``history_``'s ``est_gflops``, forward passes of the cost
        model of :mod:`lifelongrec.models.sequential._budget` (training and validation
        ranking), the same on every machine."""
        return float(sum(h.get("est_gflops", 0.0) for h in self.history_))

    # ---------------------------------------------------------------- updates
    def partial_fit(
        self,
        new_interactions: Dataset | pd.DataFrame,
        replay: Dataset | pd.DataFrame | None = None,
        *,
        epochs: int | None = None,
        budget: float | None = None,
    ) -> SequentialRecommender:
        """Learn from new events (warm start). The passes: ``epochs`` when given, else
        those that spend ``budget`` of a refit's estimated compute when given, else
        ``partial_fit_epochs``, else those of the ``partial_fit_budget``; no
        hyperparameter changes. ``update_plan_`` records the choice.

        ``replay``: past events the model has already learned (e.g. a replay buffer's
        sample) to rehearse beside the new ones, each in its original context: a window
        of the user's stored events ending at it (or the user's stored window, when it
        has left it). They are not appended to the histories again; events of unknown
        users or items are skipped; ``n_replayed_`` counts the windows. With
        ``distill_weight`` / ``ewc_weight`` set, the update is also pulled towards the
        model as it was before. On an unfitted model this is ``fit``.
        """
        replay_events = None if replay is None else as_dataset(replay).events
        P.check_epochs(epochs)
        P.check_budget(budget)
        if not self.is_fitted:
            return self.fit(new_interactions)
        n = epochs if epochs is not None or budget is not None else self.partial_fit_epochs
        share = float(self.partial_fit_budget if budget is None else budget)
        fixed = None if n is None else {"passes": int(n), "budget": None, "shrink": 1.0}
        plan = fixed or {"budget": share}
        self._update(as_dataset(new_interactions), plan, replay_events)
        return self

    def _update(
        self, data: Dataset, plan: dict[str, Any], replay: pd.DataFrame | None, learn: bool = True
    ) -> None:
        """An update: rows (the lifecycle's changes applied), interactions, item tables,
        histories, then training: ``plan["passes"]`` passes over the new (and replayed)
        events, or those of ``plan["budget"]`` (:func:`._budget.plan_passes`); without
        ``learn`` the state only (``observe``'s path for new ids)."""
        ev = data.events
        check_releases(data.items, self.release_attribute)
        n_items_before = len(self.item_ids_)
        changes = self._rows.observe(ev, self.user_ttl, self.item_ttl)
        self._apply(changes)
        shape = (len(self.user_ids_), len(self.item_ids_))
        X = _resize_csr(self.user_items_, shape) + self._matrix(ev)
        X.data[:] = 1.0
        self.user_items_ = X.tocsr()
        counts = np.zeros(shape[1])
        counts[:n_items_before] = self.item_counts_
        self._add_event_counts(counts, ev)
        self.item_counts_ = counts
        trains = learn and plan.get("passes", 1) != 0
        teacher = None
        if trains and len(ev) > 0 and self.distill_weight > 0:
            teacher = copy.deepcopy(self._module)  # the model before this update
        self._take_items(data.items, n_items_before, changes.reused_items)
        self._history_store.grow(shape[0])
        new = self._events.encode_frame(ev, self._user_index, self._item_index)
        if len(new["user"]) == 0:
            return
        self.n_oov_events_ += int((new["item"] == OOV_ROW).sum())
        note_first_events(self._module.item_tower, new)
        L = P.update_len(self.get_params(), new["user"])
        replayed = None
        if replay is not None and len(replay):  # from the histories as they were
            store, index = self._history_store, (self._user_index, self._item_index)
            n = min(L, P.MIN_UPDATE_LEN)  # rehearse in longer context, not more events
            replayed, self.n_replayed_ = replay_windows(replay, store, *index, self._events, L, n)
        merged = self._history_store.merge(new, int(self.n_time_buckets))
        if not learn:
            return
        exposed = None
        if data.impressions is not None and float(self.exposure_weight) > 0:
            rows = (self._user_index, self._item_index, self.exposure_negatives == "above")
            exposed, self.exposure_counts_ = exposure_lists(data.impressions, merged, *rows)
        self.n_updates_ += 1
        seed = int(self.random_state) + 1_000_003 * self.n_updates_
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            holdout, val = None, None
            if self.partial_fit_patience is not None and trains:
                n_users, cats = len(self.user_ids_), self._items.targets()
                holdout, val = update_holdout(merged, n_users, X, cats, int(self.max_len), rng)
            windows = self._update_windows(merged, holdout, L, exposed)
            if replayed is not None and len(replayed):
                windows = concat_windows(windows, replayed)
            n_new = int(np.count_nonzero(new["item"] > 0))  # the new events that are targets
            self.update_plan_ = {**self._plan(plan, windows, n_new), "window": L}
            config = self._train_config(int(self.update_plan_["passes"]))
            if val is not None:
                config = dataclasses.replace(config, patience=int(self.partial_fit_patience))
            forgetting = self._forgetting(teacher)
            self._trainer.shrink(self.update_plan_["shrink"])
            self._train(windows, config, rng, validation=val, forgetting=forgetting)

    def _plan(self, plan: dict[str, Any], windows: Windows, n_new: int) -> dict[str, Any]:
        """``plan`` with its passes: those of its budget for an update of ``n_new`` new
        events (2 when no fit epochs are on record: a model loaded without its
        history)."""
        if plan.get("passes") is not None:
            return dict(plan)
        fit_epochs = sum(1 for h in self.history_ if h["update"] == 0)
        if fit_epochs == 0:
            return {"passes": 2, "budget": None, "shrink": 1.0}
        stored = np.count_nonzero(self._history_store.arrays["items"], axis=1)
        lengths = np.maximum(stored, np.diff(self.user_items_.indptr))
        p, share, content_dim = self._fitted_params(), float(plan["budget"]), self._content_dim()
        return plan_passes(p, share, windows, lengths, self.n_items, content_dim, fit_epochs, n_new)

    def _fitted_params(self) -> dict[str, Any]:
        """The hyperparameters with the values the fit chose where the data decide
        (``n_windows``, ``validation_events``; a model saved before it chose has its own
        setting, else 1)."""
        chosen = {"n_windows": self.n_windows_, "validation_events": self.validation_events_}
        p = self.get_params()
        return {**p, **{k: int((p[k] if v is None else v) or 1) for k, v in chosen.items()}}

    def _content_dim(self) -> int:
        """Width of the item tower's content vectors (0: none)."""
        tower = self._module.item_tower
        return 0 if tower.content is None else int(tower.content.shape[1])

    def _update_windows(
        self, merged: Events, holdout: Any = None, length: int | None = None, exposed: Any = None
    ) -> Windows:
        """The training windows of new events merged with stored ones (updates and
        online steps alike), ``length`` long (``None``: :func:`P.update_len`'s), without
        the ``holdout`` events (a mask or ``None``) as targets, with each event's
        ``exposed`` items (``(E, K)`` or ``None``)."""
        p = self._fitted_params()
        if length is None:
            length = P.update_len(p, merged["user"][merged["is_new"]])
        weight = float(p["partial_fit_context_weight"])
        return update_windows(merged, length, int(p["n_windows"]), weight, holdout, exposed)

    def _take_items(self, items: pd.DataFrame | None, n_before: int, reused: np.ndarray) -> None:
        """Content for admitted items: the item tables grow for the rows from
        ``n_before`` on; ``reused`` rows start over as new."""
        if len(self.item_ids_) > n_before:
            self._items.grow(self.item_ids_[n_before:], items)
        if len(reused):  # freed rows taken by new items: content as for a grown row
            self._items.reuse(reused, self.item_ids_[reused], items)
        self._item_cache = None

    def add_items(self, items: pd.DataFrame | Dataset) -> SequentialRecommender:
        """See :meth:`Recommender.add_items` (a release not understood raises first)."""
        if self.is_fitted:
            check_releases(_catalogue_frame(items), self.release_attribute)
        return super().add_items(items)

    def prepare_items(self, items: pd.DataFrame | Dataset) -> None:
        """Encode the items' text with the pretrained encoder into its cache (the slow
        part of :meth:`add_items`; a batch costs far less per title than one at a time:
        docs/service.md), changing nothing the model serves from. Safe to call while
        other threads use the model; ``add_items`` then finds the encodings cached."""
        super().prepare_items(items)
        self._items.featurizer.prepare(items.items if isinstance(items, Dataset) else items)

    def _add_items(self, data: Dataset, n_items_before: int, refreshed: np.ndarray) -> None:
        known = set(refreshed.tolist())
        ids = [i for i in data.items["item_id"].astype(str).tolist() if i not in known]
        admitted = np.fromiter((self._item_index[i] for i in ids), np.int64, len(ids))
        self._take_items(data.items, n_items_before, admitted[admitted < n_items_before])
        if len(refreshed) == 0:
            return
        rows = np.fromiter((self._item_index[i] for i in refreshed), np.int64, len(refreshed))
        self._items.refresh(rows, refreshed, data.items)
        self._item_cache = None

    # ---------------------------------------------------------------- rows
    # (the lifecycle's: its operations return the RowChanges that _apply applies)
    def _sync_rows(self, users: bool = True, items: bool = True) -> None:
        # One side at a time: copying a million item ids because a user arrived is what
        # made a new user's first event cost milliseconds at a million items.
        if users:
            self.user_ids_, self._user_index = self._rows.user_ids(), self._rows.users.index
        if items:
            self.item_ids_, self._item_index = self._rows.item_ids(), self._rows.items.index

    def _init_vocab(self, events: pd.DataFrame) -> None:  # Recommender.fit's rows
        self._rows = RowLifecycle.start(events, int(self.item_min_count))
        self.n_expired_users_ = self.n_expired_items_ = 0
        self.expired_ = self._rows.unchanged().expiry_record()  # nothing expired yet
        self._sync_rows()

    def _admit_items(self, ids: np.ndarray) -> None:  # Recommender.add_items' rows
        self._apply(self._rows.admit_items(ids))

    def _apply(self, changes: RowChanges) -> None:
        """Apply row changes: reset what expired ids left behind (stored histories of
        users; id, optimiser, content and category rows of items, whose stored events
        become out-of-vocabulary events; both leave ``user_items_`` and the counts),
        record the expiry, and start reused item rows over (their content comes with
        the update or ``add_items`` that admitted them)."""
        u, i = changes.expired_users.rows, changes.expired_items.rows
        if changes.changed:
            self._sync_rows(
                users=bool(len(u) or len(changes.admitted_users)),
                items=bool(len(i) or len(changes.admitted_items)),
            )
        if changes.expiry_ran:  # the record says what expired, even when nothing did
            self._history_store.clear(u)
            if len(i):
                self._history_store.forget_items(i)
                counts = self.item_counts_.copy()
                counts[i] = 0.0
                self.item_counts_ = counts
                self._items.free(i)
                self._item_cache = None
            if len(u) or len(i):
                self.user_items_ = drop_cells(self.user_items_, u, i)
            self.n_expired_users_ += len(u)
            self.n_expired_items_ += len(i)
            self.expired_ = changes.expiry_record()
        if len(changes.reused_items):  # a free row may have drifted: zero until filled
            self._items.reset(changes.reused_items)
            self._item_cache = None

    def expire(self, now: Any = None) -> dict[str, Any]:
        """Expire the users and items unseen for longer than ``user_ttl`` / ``item_ttl``
        before ``now`` (integer epoch seconds; ``None``: ``last_timestamp_``).

        ``partial_fit`` does this by itself with ``now`` = the newest event timestamp
        seen; call it to expire between updates (e.g. on a clock). Freed rows are reset
        (see the ``user_ttl`` parameter) and reused by the next new ids; with no
        time-to-live set nothing expires. Returns ``expired_``: ``now``, ``users`` and
        ``items`` (the expired ids), and ``n_pending_items_dropped`` (items below
        ``item_min_count`` forgotten). Raises :class:`NotFittedError` on an unfitted model
        and :class:`ParameterError` when ``now`` is not an integer timestamp.
        """
        self._check_fitted()
        self._apply(self._rows.expire(now, self.user_ttl, self.item_ttl))
        return self.expired_

    def forget_users(self, users: Any) -> list[str]:
        """Erase users (one id or a 1-d sequence; unknown ids are skipped): their stored
        events, seen items and rows (the right to be forgotten, as
        :meth:`Recommender.forget_users`); returns the ids erased.

        Each user's row is freed (reused by later new users) and its stored history and
        seen items are cleared; events of theirs observed but not trained on yet are
        dropped from the next :meth:`online_step`. What the parameters learned from their
        past events (shared item and encoder weights, no per-user row) stays; retrain
        without their events to remove that too. Raises :class:`NotFittedError` on an
        unfitted model.
        """
        self._check_fitted()
        ids = [users] if _is_single(users) else list(users)
        gone = self._rows.forget_users([str(u) for u in ids])
        self._sync_rows()
        rows = gone.rows
        if len(rows):
            self._history_store.clear(rows)
            self.user_items_ = drop_cells(self.user_items_, rows, np.empty(0, np.int64))
            self._online.forget(rows)
        self._online.forget_shown([str(i) for i in gone.ids.tolist()])
        return [str(i) for i in gone.ids.tolist()]

    # ---------------------------------------------------------------- online learning
    # (the fast path lifelongrec.training.OnlineLearner drives: state now, steps later)
    def observe(self, events: Any, items: pd.DataFrame | None = None) -> SequentialRecommender:
        """Take new events into the users' state at once, without a gradient step (see
        :meth:`Recommender.observe` for the arguments, the return and the errors).

        Each event is merged into its user's stored recent events exactly as
        :meth:`partial_fit` with ``epochs=0`` merges it (time order, equal timestamps
        after what is stored, time-gap buckets and event types computed the same way, the
        seen-items matrix and item counts updated too), so the user's next
        :meth:`recommend` reflects it. When every user and item is known this costs a
        few numpy operations on the users' rows (no pandas, no sparse sums); a call with
        a user or item the model does not know goes through that update itself, which
        grows the tables (new items get content from ``items``). The events are also
        kept for the next :meth:`online_step` (``n_online_pending``).

        Not thread-safe on its own: a caller that scores or trains from other threads
        holds one lock around every call (``OnlineLearner.lock``). Observed events not
        trained on yet are not part of :meth:`save` (take an :meth:`online_step` first);
        a new :meth:`fit` discards them (counted in ``n_online_discarded_``).
        """
        self._check_fitted()
        cols, data_items = event_columns(events)
        items = data_items if items is None else items
        n = len(cols["user_id"])
        if n == 0:
            return self
        users, rows = self._cells(cols)
        known = bool((users >= 0).all() and (rows >= 0).all())
        if known:
            ttl = (self.user_ttl, self.item_ttl)
            changes = self._rows.touch(users, rows, cols["timestamp"], *ttl)
        else:
            changes = self._new_users_only(cols, rows)
        if changes is not None:
            self._apply(changes)
            if not known:  # rows for the new users: empty, as the update leaves them
                users = self.user_rows(cols["user_id"])
                n_users = len(self.user_ids_)
                self._grow_seen((n_users, len(self.item_ids_)))
                self._history_store.grow(n_users)
            new = self._events.encode(users, rows, *event_values(cols))
            note_first_events(self._module.item_tower, new)
            self._online.record(new, self._history_store)  # their stored events before
            self._history_store.append(new, int(self.n_time_buckets))
            self._add_seen(new["user"], new["item"] - 1)
        else:
            old, new = self._observe_growing(cols, items, users)
            self._online.record(new, old)
        return self

    def _new_users_only(self, cols: dict[str, np.ndarray], items: np.ndarray) -> RowChanges | None:
        """The lifecycle's changes for a batch whose only ids without a row are users
        (rows for them, the other ids touched), or ``None``, changing nothing, when the
        batch needs the update's path: an item without a row, or a time-to-live (expiry
        frees rows). The update would take the same rows; it also rebuilds the seen-items
        matrix and the item counts, which cost milliseconds per call at 100k items."""
        if (items < 0).any() or self.user_ttl is not None or self.item_ttl is not None:
            return None
        frame = pd.DataFrame({c: cols[c] for c in ("user_id", "item_id", "timestamp")})
        return self._rows.observe(frame, None, None)

    def _observe_growing(
        self, cols: dict[str, np.ndarray], items: pd.DataFrame | None, users: np.ndarray
    ) -> tuple[Events, Events]:
        """``observe`` through the update without training, for a call with ids without
        a row or one that expires ids: that grows (or frees and reuses) the rows and
        merges the histories. Returns the stored events from before of the users who
        kept their row, and the new events as the update encoded them."""
        known = np.unique(users[users >= 0])
        holders = self.user_ids_[known].copy()
        old = self._history_store.read(known)
        data = Dataset(events=pd.DataFrame(cols), items=items)
        self._update(data, {"passes": 0, "budget": None}, None, learn=False)
        keep = np.isin(old["user"], known[self.user_ids_[known] == holders])  # not expired
        new = self._events.encode(*self._cells(cols), *event_values(cols))
        return {k: v[keep] for k, v in old.items()}, new

    def _cells(self, cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """User and item rows of checked event columns (``-1``: no row)."""
        ids = cols["item_id"]
        items = np.fromiter((self._item_index.get(i, -1) for i in ids), np.int64, len(ids))
        return self.user_rows(cols["user_id"]), items

    def observe_impressions(self, impressions: Any) -> SequentialRecommender:
        """Take what users were shown (a frame with ``Dataset.impressions``' columns;
        ``request_id`` and ``rank`` used when present) for the next :meth:`online_step`
        to learn from with ``exposure_weight > 0`` (kept only then): the shown items
        the user did not act on become negatives of what the user did next
        (:mod:`~lifelongrec.models.sequential._exposure`). Impressions whose user has no
        later event yet wait for a later step (see
        :class:`~lifelongrec.models.sequential._online.OnlineBuffer`); erased users'
        are dropped. Raises :class:`DataError` for impressions that are not such a
        frame (naming the first bad row)."""
        self._check_fitted()
        check_impressions(impressions, "impressions")
        if float(self.exposure_weight) > 0 and len(impressions):
            self._online.record_shown(impressions)
        return self

    def online_step(self, steps: int = 1) -> dict[str, Any]:
        """Take ``steps`` optimiser steps (an integer >= 0; 0 discards the material) on
        the events observed since the last step; returns ``n_events`` (events trained on),
        ``n_windows``, ``n_steps`` and the mean loss of each task over the steps.

        The windows are those :meth:`partial_fit` would train on had it been given all
        those events at once (its window length ``partial_fit_max_len`` and context
        weight ``partial_fit_context_weight`` included): each user's stored events as
        they were before their first observed event, merged with the observed ones.
        Each step is one optimiser step over all of those windows (one mini-batch) with
        the loss of :meth:`partial_fit` (next item, auxiliary heads, the EWC pull when
        ``ewc_weight > 0``, the exposure loss over :meth:`observe_impressions`' items
        when ``exposure_weight > 0``; distillation is left to ``partial_fit``, as a teacher
        copied before one small step would teach nothing), the optimiser state carried
        over. The material is used up whatever ``steps`` is; ``n_online_steps_`` counts
        the steps taken (it also varies the seed of each step's dropout and negatives).
        Raises :class:`NotFittedError` on an unfitted model and :class:`ParameterError`
        for ``steps`` that is not an integer >= 0.
        """
        self._check_fitted()
        check_int("steps", steps, low=0)
        out: dict[str, Any] = {"n_events": self._online.n, "n_windows": 0, "n_steps": 0}
        if self._online.n == 0 or steps == 0:  # nothing, or discard the material
            self._online.clear()
            return out
        merged = merge_events(*self._online.take(), int(self.n_time_buckets))
        exposed, shown = None, self._online.take_shown()
        if shown is not None and float(self.exposure_weight) > 0:
            rows = (self._user_index, self._item_index, self.exposure_negatives == "above")
            exposed, self.exposure_counts_ = exposure_lists(shown, merged, *rows)
            self._online.record_shown(waiting(shown, merged, self._user_index))
        windows = self._update_windows(merged, exposed=exposed)
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
                self._items.targets(),
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
        """Events observed since the last :meth:`online_step` (not trained on yet; 0
        before ``fit``)."""
        return self._online.n if self.is_fitted else 0

    # ---------------------------------------------------------------- state
    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = (self._module, self._trainer, self._history_store, self._rows, self._items)
        attributes = {name: getattr(self, name) for name in RECORDED}
        return state_arrays(*parts, self._events, attributes)

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        saved = read_state(arrays, extra, self.get_params(), self.user_ids_, self.item_ids_)
        self._rows, self._history_store = saved.rows, saved.histories
        like = float(self.like_threshold)
        self._events = EventEncoder(saved.event_mode, saved.event_classes, like)
        self.event_mode_, self.event_types_ = self._events.mode, list(self._events.classes)
        vars(self).update(saved.attributes)  # the learned attributes of RECORDED
        self.n_replayed_ = self.n_online_steps_ = self.n_online_discarded_ = 0
        self._sync_rows()
        self._build(saved.featurizer, saved.item_categories, saved.content_dim)
        self._module.load_state_dict(saved.module_state())
        self._trainer.set_state(saved.trainer)
        self._module.eval()


# The public path, which saved models name in model.json ("class"): it stays stable
# however the package is organised inside.
SequentialRecommender.__module__ = "lifelongrec.models.sequential"
