"""The material of the next online step: events observed since the last one, with the
context ``partial_fit`` would merge them with.

``observe`` puts events into the users' stored histories at once; the buffer keeps them,
and for each of their users the stored events as they were before that user's first
observed event, so that an online step trains on the windows ``partial_fit`` would have
built had it been given all those events at once.

It also holds impressions (what users were shown) for exposure-aware steps: those
waiting for their user's next event stay across steps, at most :data:`MAX_SHOWN` rows
(the oldest are dropped first).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lifelongrec.models.sequential._events import Events
from lifelongrec.models.sequential._histories import HistoryStore

__all__ = ["MAX_SHOWN", "OnlineBuffer"]

#: The most impressions an online buffer keeps waiting for their users' next events.
MAX_SHOWN = 200_000


class OnlineBuffer:
    """Observed events not trained on yet (see the module docstring).

    Attributes
    ----------
    n : int
        Observed events held.
    n_shown : int
        Impressions held.
    """

    def __init__(self) -> None:
        self.clear()
        self._shown: list[pd.DataFrame] = []
        self.n_shown = 0

    def record_shown(self, impressions: pd.DataFrame) -> None:
        """Keep checked impressions (``user_id``, ``item_id``, ``timestamp``, optional
        ``request_id`` and ``rank``) for the next steps, the oldest dropped past
        :data:`MAX_SHOWN`; an empty frame keeps nothing."""
        if len(impressions) == 0:
            return
        cols = ("user_id", "item_id", "timestamp", "request_id", "rank")
        part = impressions[[c for c in cols if c in impressions.columns]]
        self._shown.append(part.assign(user_id=part["user_id"].astype(str)))
        self.n_shown += len(part)
        if self.n_shown > MAX_SHOWN:
            held = self.take_shown()
            self._shown = [held.iloc[len(held) - MAX_SHOWN :]]
            self.n_shown = MAX_SHOWN

    def take_shown(self) -> pd.DataFrame | None:
        """The impressions held (``None``: none), emptying that part of the buffer."""
        if not self._shown:
            return None
        out = pd.concat(self._shown, ignore_index=True)
        self._shown, self.n_shown = [], 0
        return out

    def forget_shown(self, user_ids: list[str]) -> None:
        """Drop the impressions of ``user_ids`` (erased users)."""
        self._shown = [f[~f["user_id"].isin(user_ids)] for f in self._shown]
        self.n_shown = int(sum(len(f) for f in self._shown))

    def record(self, new: Events, before: HistoryStore | Events) -> None:
        """Keep the encoded events ``new`` and, for users not in the material yet, their
        stored events from before: read from ``before`` (the history store, not yet
        holding ``new``) or taken from ``before`` (those events, read earlier)."""
        users = np.unique(new["user"]).tolist()
        fresh = [u for u in users if u not in self._snapped]
        self._snapped.update(fresh)
        if isinstance(before, HistoryStore):
            self._old.append(before.read(np.asarray(fresh, dtype=np.int64)))
        else:
            keep = np.isin(before["user"], fresh)
            self._old.append({k: v[keep] for k, v in before.items()})
        self._new.append(new)
        self.n += len(new["user"])

    def forget(self, users: np.ndarray) -> None:
        """Drop everything of the user rows ``users`` (erased users)."""
        for part in (self._old, self._new):
            for j, arrays in enumerate(part):
                keep = ~np.isin(arrays["user"], users)
                part[j] = {k: v[keep] for k, v in arrays.items()}
        self.n = int(sum(len(a["user"]) for a in self._new))
        self._snapped.difference_update(np.asarray(users).tolist())

    def take(self) -> tuple[Events, Events]:
        """The material, emptying the buffer: the stored events from before and the
        observed events (each concatenated; call only when :attr:`n` > 0)."""
        old = {k: np.concatenate([o[k] for o in self._old]) for k in self._old[0]}
        new = {k: np.concatenate([e[k] for e in self._new]) for k in self._new[0]}
        self.clear()
        return old, new

    def clear(self) -> None:
        """Drop the material."""
        self._snapped: set[int] = set()  # users whose stored events from before are held
        self._old: list[Events] = []
        self._new: list[Events] = []
        self.n = 0
