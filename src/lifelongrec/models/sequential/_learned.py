"""Read-only views of what a fitted :class:`SequentialRecommender` learned and holds.

For inspection and debugging (and for tests that check what an update did to a table):
the torch module, the optimiser and EWC state, the users' stored recent events, the item
category targets, the text encoder, the id vocabularies and a memory report. A mixin of
the estimator: each view reads the parts the estimator holds and changes none of them.
Where a view could be written through and so corrupt the model, it is a read-only view or
a copy; the torch objects are the live ones (read them; changing them changes the model).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from lifelongrec.features._vocab import IdVocabulary
from lifelongrec.models.sequential._histories import HistoryStore
from lifelongrec.models.sequential._items import ItemTables
from lifelongrec.models.sequential._lifecycle import RowLifecycle
from lifelongrec.models.sequential._modules import SequentialModule
from lifelongrec.models.sequential._state import memory
from lifelongrec.models.sequential._trainer import Trainer
from lifelongrec.nn import EWC

__all__ = ["LearnedState"]


class LearnedState:
    """The learned-state attributes of :class:`SequentialRecommender` (see its
    ``Attributes``); each raises :class:`~lifelongrec.NotFittedError` before ``fit``."""

    # set by the estimator's fit and load
    _module: SequentialModule
    _trainer: Trainer
    _history_store: HistoryStore
    _items: ItemTables
    _rows: RowLifecycle
    user_items_: sp.csr_matrix
    item_counts_: np.ndarray

    def _fitted(self) -> Any:
        self._check_fitted()  # type: ignore[attr-defined]  # Recommender's
        return self

    @property
    def module_(self) -> SequentialModule:
        """The torch module the model scores with (item tower, user encoder, heads); its
        parameters are what ``fit`` and the updates learn. Read it; do not change it."""
        return self._fitted()._module

    @property
    def optimizer_(self) -> torch.optim.Optimizer:
        """The AdamW optimiser of the module's parameters, whose state (``state``, per
        parameter) carries over from ``fit`` to every update and online step."""
        return self._fitted()._trainer.optimizer

    @property
    def ewc_(self) -> EWC | None:
        """The elastic-weight-consolidation state the next update is pulled towards
        (``fisher`` and ``anchor``: parameter name -> tensor), estimated at the end of a
        fit or update with ``ewc_weight > 0``; ``None`` before one."""
        return self._fitted()._trainer.ewc

    @property
    def user_histories_(self) -> MappingProxyType[str, np.ndarray]:
        """The stored recent events of every user row, the user encoder's input: a
        read-only mapping of read-only ``(n_users, max_len)`` int64 arrays, right-aligned
        (row ``user_rows(user)``): ``items`` (item row + 1; 0 is padding,
        :data:`OOV_ROW` an item without a row), ``types`` (event-type inputs), ``gaps``
        (time-gap buckets) and ``ts`` (timestamps). A free row is all zeros."""
        arrays = self._fitted()._history_store.arrays
        views = {}
        for key, a in arrays.items():
            v = a.view()
            v.flags.writeable = False
            views[key] = v
        return MappingProxyType(views)

    @property
    def item_categories_(self) -> sp.csr_matrix:
        """A copy of the category targets of the item rows: ``(n_items, C)`` CSR, columns
        in the order of ``categories_``, each row summing to 1 (empty for an item without
        a category and for a free row)."""
        return self._fitted()._items.categories.copy()

    @property
    def text_encoder_(self) -> Any:
        """The item text encoder in use (:class:`~lifelongrec.features.SentenceItemEncoder`
        or :class:`~lifelongrec.features.TfidfItemEncoder`; ``None`` when there is no
        text). After ``load`` the sentence encoder is ``None`` until new items need it."""
        return self._fitted()._items.featurizer._encoder

    # (the lifecycle's: its operations return the RowChanges the estimator applies)
    @property
    def user_vocab_(self) -> IdVocabulary:
        return self._rows.users

    @property
    def item_vocab_(self) -> IdVocabulary:
        return self._rows.items

    @property
    def last_timestamp_(self) -> int:
        return self._rows.now

    def memory_report(self) -> dict[str, int]:
        """Rows of the tables and bytes of what the model holds, to watch memory over a
        stream: ``user_rows``, ``user_active``, ``user_free``, ``item_rows``,
        ``item_active``, ``item_free``, ``item_pending`` (rows allocated, held, free;
        items counted but not admitted) and the bytes (tensor and numpy ``nbytes``) of
        ``parameter_bytes`` (module parameters and buffers), ``optimizer_bytes`` (AdamW
        state), ``ewc_bytes`` (Fisher and anchor), ``history_bytes`` (stored
        histories), ``interaction_bytes`` (``user_items_``, ``item_counts_``, category
        rows), ``vocabulary_bytes`` (the vocabularies' state arrays), ``total_bytes``."""
        self._fitted()
        tables = (self._module, self._trainer, self._history_store, self._rows, self._items)
        return memory(*tables, self.user_items_, self.item_counts_)
