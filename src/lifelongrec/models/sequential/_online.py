"""The material of the next online step: events observed since the last one, with the
context ``partial_fit`` would merge them with.

``observe`` puts events into the users' stored histories at once; the buffer keeps them,
and for each of their users the stored events as they were before that user's first
observed event, so that an online step trains on the windows ``partial_fit`` would have
built had it been given all those events at once.
"""

from __future__ import annotations

import numpy as np

from lifelongrec.models.sequential._events import Events
from lifelongrec.models.sequential._histories import HistoryStore

__all__ = ["OnlineBuffer"]


class OnlineBuffer:
    """Observed events not trained on yet (see the module docstring).

    Attributes
    ----------
    n : int
        Observed events held.
    """

    def __init__(self) -> None:
        self.clear()

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
