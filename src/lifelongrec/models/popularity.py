"""Most-popular baseline: event counts per item, optionally decayed with a half-life.

Examples
--------
>>> from lifelongrec.data import make_events
>>> ev = make_events(["a", "a", "b", "c"], ["x", "y", "x", "z"], [1, 2, 3, 4])
>>> ids, scores = Popularity().fit(ev).recommend("c", k=2)
>>> ids.tolist()
['x', 'y']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from lifelongrec._params import Number
from lifelongrec.data._schema import Dataset
from lifelongrec.models._base import Recommender

__all__ = ["Popularity"]

_SECONDS_PER_DAY = 86_400.0


class Popularity(Recommender):
    """Recommend the items with the most events, the same list for everyone.

    Parameters
    ----------
    time_decay_days
        ``None`` (default): the score of an item is its number of events. A positive
        number: a half-life in days; an event ``d`` days older than the latest timestamp
        seen counts ``0.5 ** (d / time_decay_days)``. Timestamps are taken from
        ``data.events["timestamp"]`` (epoch seconds; ordinal timestamps are treated as
        seconds too).

    Notes
    -----
    ``partial_fit`` is exact and incremental: the stored scores are decayed forward to
    the new latest timestamp and the new events are added, which equals a fit on all
    events seen so far (up to float rounding). :meth:`observe` adds events the same way
    (the counts are this model's state). :meth:`forget_users` takes a user's items out of
    the plain counts; decayed scores keep them until they fade (a count of old events
    has no user attached).
    """

    name = "popularity"
    _constraints = {"time_decay_days": Number(0, low_open=True, none=True)}

    def __init__(self, time_decay_days: float | None = None) -> None:
        self.time_decay_days = time_decay_days

    # ---------------------------------------------------------------- helpers
    def _event_weights(self, data: Dataset, ref_ts: float) -> np.ndarray:
        ts = data.events["timestamp"].to_numpy(dtype=np.float64)
        age_days = (ref_ts - ts) / _SECONDS_PER_DAY
        return np.exp2(-age_days / float(self.time_decay_days))

    def _decayed_counts(self, data: Dataset, ref_ts: float, n_items: int) -> np.ndarray:
        cols = data.events["item_id"].astype(str).map(self._item_index).to_numpy()
        return np.bincount(
            cols.astype(np.int64), weights=self._event_weights(data, ref_ts), minlength=n_items
        )

    def _add_decayed(self, cols: np.ndarray, ts: np.ndarray, n_items_before: int) -> None:
        """Decay the stored scores forward to the newest timestamp and add the events on
        item columns ``cols`` at times ``ts`` (``time_decay_days`` set)."""
        n_items = len(self.item_ids_)
        ref = max(self.last_timestamp_, float(ts.max())) if len(ts) else self.last_timestamp_
        old = np.zeros(n_items)
        old[:n_items_before] = self.scores_
        old *= np.exp2(-(ref - self.last_timestamp_) / _SECONDS_PER_DAY / self.time_decay_days)
        age_days = (ref - ts.astype(np.float64)) / _SECONDS_PER_DAY
        weights = np.exp2(-age_days / float(self.time_decay_days))
        self.scores_ = old + np.bincount(cols, weights=weights, minlength=n_items)
        self.last_timestamp_ = ref

    # --------------------------------------------------------------- training
    def _fit(self, X: sp.csr_matrix, data: Dataset) -> None:
        if self.time_decay_days is None:
            self.scores_ = self.item_counts_.astype(np.float64)
            self.last_timestamp_ = None
            return
        ts = data.events["timestamp"]
        self.last_timestamp_ = float(ts.max()) if len(ts) else 0.0
        self.scores_ = self._decayed_counts(data, self.last_timestamp_, len(self.item_ids_))

    def _partial_fit(
        self, delta: sp.csr_matrix, data: Dataset, n_users_before: int, n_items_before: int
    ) -> None:
        if self.time_decay_days is None:
            self.scores_ = self.item_counts_.astype(np.float64)
            return
        ev = data.events
        cols = ev["item_id"].astype(str).map(self._item_index).to_numpy().astype(np.int64)
        self._add_decayed(cols, ev["timestamp"].to_numpy(dtype=np.float64), n_items_before)

    def _observe(
        self,
        events: dict[str, np.ndarray],
        rows: np.ndarray,
        columns: np.ndarray,
        items: Any,
        n_users_before: int,
        n_items_before: int,
    ) -> None:
        if self.time_decay_days is None:
            self.scores_ = self.item_counts_.astype(np.float64)
        else:
            self._add_decayed(columns, events["timestamp"], n_items_before)

    def _forget_rows(self, rows: np.ndarray, ids: list[str]) -> None:
        if self.time_decay_days is None:
            self.scores_ = self.item_counts_.astype(np.float64)

    # ---------------------------------------------------------------- scoring
    def _score(self, rows: np.ndarray) -> np.ndarray:
        s = self.scores_.astype(np.float32)
        return np.broadcast_to(s, (len(rows), len(s))).copy()

    def _cold_scores(self) -> np.ndarray:
        return self.scores_.astype(np.float32)

    # ------------------------------------------------------------- save/load
    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"scores": self.scores_}, {"last_timestamp": self.last_timestamp_}

    def _set_state(self, arrays: dict[str, Any], extra: dict[str, Any]) -> None:
        self.scores_ = np.asarray(arrays["scores"], dtype=np.float64)
        self.last_timestamp_ = extra["last_timestamp"]
