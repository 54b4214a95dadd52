"""Each user's recent events, the user encoder's input: stored, read and merged.

A user is represented by what they did: the last ``max_len`` events of every user row,
right-aligned in ``(n_users, L)`` int64 arrays (``items``: shifted item rows, ``0``
padding, :data:`~lifelongrec.models.sequential._events.OOV_ROW` for an item without a
row; ``types``: event-type inputs; ``gaps``: time-gap buckets; ``ts``: timestamps). New
events are merged in exactly one way (:func:`merge_events`), whether they come from
``partial_fit``, ``observe`` or the material of an online step.
"""

from __future__ import annotations

import numpy as np

from lifelongrec.models._history import HistoryBatch
from lifelongrec.models.sequential._events import OOV_ROW, EventEncoder, Events
from lifelongrec.nn import GAP_FIRST, gap_buckets, order_events, positions_from_end, right_align

__all__ = ["HistoryStore", "given_inputs", "merge_events"]

KEYS = ("items", "types", "gaps", "ts")


def merge_events(old: Events, new: Events, n_time_buckets: int) -> Events:
    """Stored events ``old`` (as :meth:`HistoryStore.read` gives them) and new events
    ``new`` (as the event encoder gives them) merged: grouped by user in time order
    (stored first at equal times), gaps recomputed except for each user's first stored
    event (whose predecessor is no longer stored); ``is_new`` marks the new events and
    only they keep a ``target_type``."""
    n_old, n_new = len(old["user"]), len(new["user"])
    merged = {k: np.concatenate([old[k], new[k]]) for k in ("user", "item", "ts", "type")}
    merged["is_new"] = np.r_[np.zeros(n_old, bool), np.ones(n_new, bool)]
    merged["target_type"] = np.r_[np.full(n_old, -1), new["target_type"]]
    merged["stored_gap"] = np.r_[old["gap"], np.zeros(n_new, np.int64)]
    order = order_events(merged["user"], merged["ts"])
    merged = {k: v[order] for k, v in merged.items()}
    gap = gap_buckets(merged["user"], merged["ts"], int(n_time_buckets))
    first = np.r_[True, merged["user"][1:] != merged["user"][:-1]]
    keep_stored = first & ~merged["is_new"]
    merged["gap"] = np.where(keep_stored, merged["stored_gap"], gap)
    return merged


class HistoryStore:
    """The last ``max_len`` events of every user row (see the module docstring).

    ``arrays`` maps ``items``, ``types``, ``gaps`` and ``ts`` to ``(n_users, L)`` int64
    arrays; an all-zero ``items`` row is a user without stored events.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        # ``arrays`` are the first ``n_users`` rows of these (zeros beyond): :meth:`grow`
        # adds rows without copying every stored row each time.
        self._room = arrays

    @classmethod
    def from_events(cls, ev: Events, n_users: int, max_len: int) -> HistoryStore:
        """The store of ``n_users`` rows holding the last ``max_len`` of the events
        ``ev`` (grouped by user in time order, with ``gap``)."""
        return cls(_aligned(ev, ev["user"], n_users, int(max_len)))

    @property
    def n_users(self) -> int:
        return len(self.arrays["items"])

    @property
    def max_len(self) -> int:
        return self.arrays["items"].shape[1]

    @property
    def nbytes(self) -> int:
        return int(sum(m.nbytes for m in self.arrays.values()))

    def read(self, users: np.ndarray) -> Events:
        """The stored events of the user rows ``users`` as per-event arrays (``user``,
        ``item``, ``ts``, ``type``, ``gap``), in time order per user."""
        items = self.arrays["items"][users]
        r, c = np.nonzero(items)
        return {
            "user": users[r],
            "item": items[r, c],
            "ts": self.arrays["ts"][users][r, c],
            "type": self.arrays["types"][users][r, c],
            "gap": self.arrays["gaps"][users][r, c],
        }

    def write(self, ev: Events, users: np.ndarray) -> None:
        """Replace the rows of ``users`` by the last ``max_len`` of their events ``ev``
        (grouped by user in time order, with ``gap``; no other user's events)."""
        users = np.asarray(users, dtype=np.int64)
        by = np.argsort(users, kind="stable")
        slot = by[np.searchsorted(users[by], ev["user"])]  # each event's place in users
        for key, m in _aligned(ev, slot, len(users), self.max_len).items():
            self.arrays[key][users] = m

    def merge(self, new: Events, n_time_buckets: int) -> Events:
        """Merge new events (known user rows) into their users' stored events; returns
        the merged events of those users (:func:`merge_events`)."""
        users = np.unique(new["user"])
        merged = merge_events(self.read(users), new, n_time_buckets)
        self.write(merged, users)
        return merged

    def append(self, new: Events, n_time_buckets: int) -> None:
        """:meth:`merge`, with a fast path for one event that comes after its user's
        stored ones (the row shifts by one; the gap :func:`merge_events` would compute,
        stored gaps being those of their predecessors)."""
        H = self.arrays
        if len(new["user"]) == 1:
            r, t = int(new["user"][0]), int(new["ts"][0])
            has, prev = bool(H["items"][r, -1] != 0), int(H["ts"][r, -1])
            if not has or t >= prev:
                gap, nb = GAP_FIRST, int(n_time_buckets)
                if has:
                    gap = int(gap_buckets(np.zeros(2, np.int64), np.array([prev, t]), nb)[1])
                values = (("items", new["item"][0]), ("types", new["type"][0]), ("gaps", gap))
                for key, value in (*values, ("ts", t)):
                    row = H[key][r]
                    row[:-1] = row[1:]
                    row[-1] = value
                return
        self.merge(new, n_time_buckets)

    def grow(self, n_users: int) -> None:
        """Empty rows for new users up to ``n_users``."""
        n = self.n_users
        if n_users <= n:
            return
        room = self._room
        if any(self.arrays[k].base is not room[k] for k in room) or n_users > len(room["items"]):
            # A quarter more than asked: a stream of new users copies the rows rarely.
            cap = n_users + n_users // 4 + 64
            room = {
                k: np.concatenate([m, np.zeros((cap - n, m.shape[1]), m.dtype)])
                for k, m in self.arrays.items()
            }
            self._room = room
        self.arrays = {k: m[:n_users] for k, m in room.items()}

    def clear(self, users: np.ndarray) -> None:
        """Forget the stored events of the user rows ``users``."""
        for m in self.arrays.values():
            m[users] = 0

    def forget_items(self, item_rows: np.ndarray) -> None:
        """Stored events on the items ``item_rows`` become out-of-vocabulary events."""
        h = self.arrays["items"]
        h[np.isin(h, np.asarray(item_rows) + 1)] = OOV_ROW

    def inputs(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """Copies of the encoder inputs (``items``, ``types``, ``gaps``) of ``users``."""
        return {k: self.arrays[k][users].copy() for k in ("items", "types", "gaps")}


def _aligned(ev: Events, rows: np.ndarray, n_rows: int, width: int) -> dict[str, np.ndarray]:
    pos = positions_from_end(ev["user"])
    return {
        key: right_align(rows, pos, ev[field], n_rows, width, dtype=np.int64)
        for key, field in zip(KEYS, ("item", "type", "gap", "ts"), strict=True)
    }


def given_inputs(
    hist: HistoryBatch,
    encoder: EventEncoder,
    item_index: dict[str, int],
    max_len: int,
    n_time_buckets: int,
) -> dict[str, np.ndarray]:
    """The encoder inputs ``(n, L)`` of given histories (``Recommender.score_histories``):
    each query's last ``max_len`` visible events, encoded exactly as a stored history is
    (item, event type and time-gap inputs, right-aligned)."""
    log = hist.events
    # the encoder groups events by user row and time: a stand-in user and the log
    # position as timestamp keep the log's own order, so its types line up.
    stand_in = log.assign(timestamp=np.arange(len(log)))
    ev = encoder.encode_frame(stand_in, {}, item_index, users=np.zeros(len(log), np.int64))
    gaps = gap_buckets(hist.groups, hist.timestamps, int(n_time_buckets))
    query, pos, event = hist.recent(int(max_len))
    n, L = len(hist), int(max_len)
    return {
        key: right_align(query, pos, values[event], n, L)
        for key, values in (("items", ev["item"]), ("types", ev["type"]), ("gaps", gaps))
    }
