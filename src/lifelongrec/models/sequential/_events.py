"""Events as the model reads them: per-event arrays on the model's rows.

Item rows inside event sequences are shifted by one (``0`` is padding, ``r + 1`` is item
row ``r``); :data:`OOV_ROW` stands for an event whose item has no row of its own.
Event-type inputs are ``0`` padding, ``1`` an unknown type, ``c + 2`` class ``c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from lifelongrec.models._base import map_ids
from lifelongrec.nn import order_events

__all__ = ["OOV_ROW", "TYPE_PAD", "TYPE_UNKNOWN", "EventEncoder", "Events", "event_values"]

#: Table row, inside event sequences, of an event whose item has no row of its own (not
#: admitted yet, or expired since): it reads the item tower's learned ``oov`` vector.
OOV_ROW = -1
#: Event-type input ids: 0 padding, 1 an unknown type; class ``c`` is ``c + 2``.
TYPE_PAD, TYPE_UNKNOWN = 0, 1

#: Per-event arrays, grouped by user row in time order: ``user`` (row), ``item`` (shifted
#: row, :data:`OOV_ROW` without one), ``ts``, ``type`` (input id) and ``target_type``
#: (class, ``-1`` when unknown or when the model has no event-type head); histories add
#: ``gap`` (time-gap bucket).
Events = dict[str, np.ndarray]


@dataclass(frozen=True)
class EventEncoder:
    """Turns events into :data:`Events` on the model's rows: the one encoding that
    ``fit``, ``partial_fit``, ``observe`` and scoring of given histories share.

    ``mode`` says what the event-type input and head predict: ``"type"`` (two or more
    event types: the classes are the types, sorted), ``"like"`` (one type and ratings:
    ``value >= like_threshold`` is class 1, below class 0, no value unknown) or
    ``"none"`` (every event is class 0 and the head is off).
    """

    mode: str
    classes: tuple[str, ...]
    like_threshold: float

    @classmethod
    def fit(cls, events: pd.DataFrame, like_threshold: float) -> EventEncoder:
        """The mode and classes the events call for (see the class docstring)."""
        types = pd.unique(events["event_type"].astype(str).to_numpy())
        if len(types) >= 2:
            return cls("type", tuple(sorted(str(t) for t in types)), float(like_threshold))
        values = events["value"].to_numpy(dtype=np.float64)
        if np.isfinite(values).any():
            return cls("like", ("dislike", "like"), float(like_threshold))
        return cls("none", (), float(like_threshold))

    @cached_property
    def _class_index(self) -> dict[str, int]:
        return {c: j for j, c in enumerate(self.classes)}

    @property
    def n_type_ids(self) -> int:
        """Size of the event-type input vocabulary (padding and unknown included)."""
        return len(self.classes) + 2 if self.mode != "none" else 3

    def encode(
        self,
        users: np.ndarray,
        items: np.ndarray,
        timestamps: np.ndarray,
        event_types: np.ndarray,
        values: np.ndarray,
    ) -> Events:
        """Encode ``n`` events given as arrays: ``users`` user rows (int64), ``items``
        item rows (``-1``: no row), ``timestamps`` (int64), ``event_types`` (object) and
        ``values`` (float64, NaN when absent). Returns them grouped by user row, in time
        order (equal timestamps keep their order)."""
        n = len(users)
        if self.mode == "type":
            index = self._class_index
            target = np.fromiter((index.get(str(t), -1) for t in event_types), np.int64, n)
        elif self.mode == "like":
            v = np.asarray(values, dtype=np.float64)
            target = np.where(np.isnan(v), -1, (v >= self.like_threshold).astype(np.int64))
        else:
            target = np.zeros(n, dtype=np.int64)
        ts = np.asarray(timestamps, dtype=np.int64)
        order = order_events(users, ts)
        target, rows = target[order], np.asarray(items, dtype=np.int64)[order]
        return {
            "user": np.asarray(users, dtype=np.int64)[order],
            "item": np.where(rows >= 0, rows + 1, OOV_ROW),
            "ts": ts[order],
            "type": np.where(target >= 0, target + 2, TYPE_UNKNOWN),
            "target_type": target if self.mode != "none" else np.full_like(target, -1),
        }

    def encode_frame(
        self,
        events: pd.DataFrame,
        user_index: dict[str, int],
        item_index: dict[str, int],
        users: np.ndarray | None = None,
    ) -> Events:
        """:meth:`encode` of an events frame whose ids are mapped through the indexes
        (``users``, one row per event, replaces the mapping of ``user_id``)."""
        if users is None:
            users = map_ids(events["user_id"], user_index).astype(np.int64)
        cols = map_ids(events["item_id"], item_index)
        items = np.where(pd.notna(cols), cols, -1).astype(np.int64)
        return self.encode(
            users,
            np.asarray(items, dtype=np.int64),
            events["timestamp"].to_numpy(dtype=np.int64),
            events["event_type"].to_numpy(dtype=object),
            events["value"].to_numpy(dtype=np.float64),
        )

    def target_types(self, types: np.ndarray) -> np.ndarray:
        """The classes of stored event-type inputs ``types`` (``-1``: an unknown type, or
        a model without the event-type head)."""
        return np.where((types >= 2) & (self.mode != "none"), types - 2, -1)


def event_values(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Timestamps, event types and values of checked event columns (``event_columns``)."""
    return cols["timestamp"], cols["event_type"], cols["value"]
