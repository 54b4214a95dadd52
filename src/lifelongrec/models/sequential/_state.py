"""Save and load: each part's learned state under its own namespace, with a format
version.

:meth:`Recommender.save` writes what :func:`state_arrays` returns (arrays, numpy or
sparse, and JSON extras) beside the ids and interactions it writes itself. Format 2
(this version) names every array after the part that owns it::

    module/<parameter or buffer>         the torch module's state dict
    trainer/optimizer/<param>/<key>      AdamW state
    trainer/ewc/fisher/<param>, trainer/ewc/anchor/<param>    the EWC anchor
    histories/{items,types,gaps,ts}      each user's stored recent events
    rows/users/..., rows/items/...       the id vocabularies
    content/categories                   category targets of the items (sparse)
    content/featurizer/...               the content featurizer (TF-IDF vocabulary, ...)

and its extras ``{"format": 2, "events": ..., "content": ..., "rows": ...,
"attributes": ...}`` (the learned attributes of :data:`RECORDED`). Format 1 (models saved before; no ``"format"`` in the extras) used flat keys
(``w/``, ``opt/``, ``ewcf/``, ``ewca/``, ``hist/``, ``feat/``, ``uvocab/``, ``ivocab/``,
``item_categories``; even older models have no vocabularies): :func:`read_state` reads
both into one :class:`SavedState`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from lifelongrec.features._vocab import IdVocabulary
from lifelongrec.models.sequential._content import ContentFeaturizer
from lifelongrec.models.sequential._events import EventEncoder
from lifelongrec.models.sequential._histories import HistoryStore
from lifelongrec.models.sequential._items import ItemTables
from lifelongrec.models.sequential._lifecycle import RowLifecycle
from lifelongrec.models.sequential._trainer import Trainer

__all__ = ["FORMAT", "RECORDED", "SavedState", "memory", "read_state", "state_arrays"]

#: The format :func:`state_arrays` writes.
FORMAT = 2
#: The model's learned attributes saved as they are (JSON), with their value when a
#: saved model lacks them.
RECORDED: dict[str, Any] = {
    "expired_": None,  # None: nothing expired yet, as of the saved clock
    "n_expired_users_": 0,
    "n_expired_items_": 0,
    "n_oov_events_": 0,
    "n_updates_": 0,
    "head_metrics_": {},
    "history_": [],
    "best_epoch_": None,
    "update_plan_": None,  # None: no update yet
    "n_windows_": None,  # None: saved before the fit recorded it (n_windows then holds)
    "validation_events_": None,  # likewise
    "dropout_": None,  # likewise (the former default, 0.2, where dropout is None)
}


def _under(prefix: str, arrays: dict[str, Any]) -> dict[str, Any]:
    """The arrays whose key starts with ``prefix``, without it."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def state_arrays(
    module: Any,
    trainer: Trainer,
    histories: HistoryStore,
    rows: RowLifecycle,
    items: ItemTables,
    events: EventEncoder,
    attributes: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arrays and extras of a fitted model in format :data:`FORMAT`;
    ``attributes``: the values of the learned attributes of :data:`RECORDED`."""
    arrays: dict[str, Any] = {
        f"module/{k}": v.detach().cpu().numpy() for k, v in module.state_dict().items()
    }
    arrays.update({f"trainer/{k}": v for k, v in trainer.get_state().items()})
    arrays.update({f"histories/{k}": v for k, v in histories.arrays.items()})
    arrays.update({f"rows/{k}": v for k, v in rows.get_state().items()})
    arrays["content/categories"] = items.categories
    f_arrays, f_extra = items.featurizer.get_state()
    arrays.update({f"content/featurizer/{k}": v for k, v in f_arrays.items()})
    extra = {
        "format": FORMAT,
        "events": {"mode": events.mode, "classes": list(events.classes)},
        "content": {"featurizer": f_extra, "dim": module.item_tower.config.content_dim},
        "rows": {"now": rows.now},
        "attributes": {name: attributes[name] for name in RECORDED},
    }
    return arrays, extra


@dataclass
class SavedState:
    """A saved model's parts' state, whatever format it was written in."""

    module: dict[str, np.ndarray]
    trainer: dict[str, np.ndarray]
    histories: HistoryStore
    rows: RowLifecycle
    featurizer: ContentFeaturizer
    item_categories: sp.csr_matrix
    event_mode: str
    event_classes: tuple[str, ...]
    content_dim: int
    attributes: dict[str, Any]

    def module_state(self) -> dict[str, torch.Tensor]:
        """The module's state dict."""
        return {k: torch.as_tensor(np.array(v)) for k, v in self.module.items()}


def read_state(
    arrays: dict[str, Any],
    extra: dict[str, Any],
    params: dict[str, Any],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
) -> SavedState:
    """Read what :func:`state_arrays` wrote (or format 1, see the module docstring) for a
    model with hyperparameters ``params`` and the saved ids ``user_ids`` / ``item_ids``.

    Raises
    ------
    ValueError
        The extras name a format this version cannot read (a newer one).
    """
    version = extra.get("format", 1)
    if version == FORMAT:
        return _read_current(arrays, extra, params)
    if version == 1:
        return _read_format_1(arrays, extra, params, user_ids, item_ids)
    raise ValueError(
        f"sequential model state format {version!r} is not supported; expected 1 or {FORMAT} "
        "(saved by a newer lifelongrec?)"
    )


def _with_defaults(attributes: dict[str, Any], now: int) -> dict[str, Any]:
    out = {name: attributes.get(name, default) for name, default in RECORDED.items()}
    if out["expired_"] is None:
        out["expired_"] = {"now": now, "users": [], "items": [], "n_pending_items_dropped": 0}
    if out["best_epoch_"] is not None:
        out["best_epoch_"] = int(out["best_epoch_"])
    return out


def _read_current(arrays: dict[str, Any], extra: dict[str, Any], params: dict[str, Any]):
    now = int(extra["rows"]["now"])
    return SavedState(
        module=_under("module/", arrays),
        trainer=_under("trainer/", arrays),
        histories=HistoryStore(
            {k: v.astype(np.int64) for k, v in _under("histories/", arrays).items()}
        ),
        rows=RowLifecycle.from_state(_under("rows/", arrays), now),
        featurizer=ContentFeaturizer.from_state(
            _under("content/featurizer/", arrays), extra["content"]["featurizer"], params
        ),
        item_categories=arrays["content/categories"].astype(np.float32),
        event_mode=extra["events"]["mode"],
        event_classes=tuple(extra["events"]["classes"]),
        content_dim=int(extra["content"]["dim"]),
        attributes=_with_defaults(extra["attributes"], now),
    )


def _read_format_1(
    arrays: dict[str, Any],
    extra: dict[str, Any],
    params: dict[str, Any],
    user_ids: np.ndarray,
    item_ids: np.ndarray,
) -> SavedState:
    histories = HistoryStore({k: v.astype(np.int64) for k, v in _under("hist/", arrays).items()})
    users, items = _under("uvocab/", arrays), _under("ivocab/", arrays)
    vocab = extra.get("vocab")
    if users and items:
        rows = RowLifecycle(
            IdVocabulary.from_state(users),
            IdVocabulary.from_state(items),
            int(vocab["last_timestamp"]),
        )
    else:  # saved before vocabularies: every id active, seen at its newest stored event
        ts = histories.arrays.get("ts")
        t = int(ts.max()) if ts is not None and ts.size else 0
        rows = RowLifecycle.everyone(user_ids, item_ids, int(params["item_min_count"]), t)
        vocab = {}
    trainer = {f"optimizer/{k}": v for k, v in _under("opt/", arrays).items()}
    trainer.update({f"ewc/fisher/{k}": v for k, v in _under("ewcf/", arrays).items()})
    trainer.update({f"ewc/anchor/{k}": v for k, v in _under("ewca/", arrays).items()})
    return SavedState(
        module=_under("w/", arrays),
        trainer=trainer,
        histories=histories,
        rows=rows,
        featurizer=ContentFeaturizer.from_state(
            _under("feat/", arrays), extra["featurizer"], params
        ),
        item_categories=arrays["item_categories"].astype(np.float32),
        event_mode=extra["event_mode"],
        event_classes=tuple(extra["event_types"]),
        content_dim=int(extra["content_dim"]),
        attributes=_with_defaults(
            {
                **{f"{k}_": v for k, v in vocab.items() if k != "last_timestamp"},
                "n_updates_": extra["n_updates"],
                "head_metrics_": extra["head_metrics"],
                "history_": extra["history"],
                "best_epoch_": extra.get("best_epoch"),
            },
            rows.now,
        ),
    )


def memory(
    module: Any,
    trainer: Trainer,
    histories: HistoryStore,
    rows: RowLifecycle,
    items: ItemTables,
    user_items: sp.csr_matrix,
    item_counts: np.ndarray,
) -> dict[str, int]:
    """Rows of the tables and bytes of what a fitted model holds (see
    ``SequentialRecommender.memory_report``)."""

    def csr(X: sp.csr_matrix) -> int:
        return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)

    users, item_ids = rows.users, rows.items
    optimizer_bytes, ewc_bytes = trainer.nbytes()
    tensors = [*module.parameters(), *module.buffers()]
    out = {
        "user_rows": users.n_rows,
        "user_active": users.n_active,
        "user_free": users.n_free,
        "item_rows": item_ids.n_rows,
        "item_active": item_ids.n_active,
        "item_free": item_ids.n_free,
        "item_pending": item_ids.n_pending,
        "parameter_bytes": int(sum(t.numel() * t.element_size() for t in tensors)),
        "optimizer_bytes": optimizer_bytes,
        "ewc_bytes": ewc_bytes,
        "history_bytes": histories.nbytes,
        "interaction_bytes": csr(user_items) + csr(items.categories) + int(item_counts.nbytes),
        "vocabulary_bytes": rows.nbytes,
    }
    out["total_bytes"] = sum(v for k, v in out.items() if k.endswith("_bytes"))
    return out
