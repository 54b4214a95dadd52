"""The id/row lifecycle: which user and item ids hold table rows, admission, expiry
and reuse, over two :class:`~lifelongrec.features.IdVocabulary` objects.

Every operation returns what it changed (:class:`RowChanges`): the rows the model must
reset (expired users and items, reused item rows) and the rows it must fill (admitted
items). The lifecycle changes no table itself; the model applies the changes to its
parts (histories, item tower, optimiser state, interaction matrix).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.features._vocab import Expired, IdVocabulary
from lifelongrec.models._base import FreeRow

__all__ = ["RowChanges", "RowLifecycle"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# shared by every change that touches no row (the observe fast path makes one per call)
_NO_ROWS = _frozen(np.empty(0, np.int64))
_NOTHING = Expired(_NO_ROWS, _frozen(np.empty(0, object)), 0)


def _nothing() -> Expired:
    return _NOTHING


@dataclass(frozen=True, slots=True)
class RowChanges:
    """What one lifecycle operation changed.

    Attributes
    ----------
    now
        The clock after the operation (the newest event timestamp seen).
    expired_users, expired_items
        Rows freed by expiry (and the ids that held them); their state must be reset.
    admitted_users
        User rows taken by new users (free rows first, then new rows at the end).
    admitted_items
        Item rows taken by newly admitted items: reused rows (``< n_items_before``,
        see :attr:`reused_items`) first, then new rows at the end of the table.
    n_items_before
        Item rows allocated before the operation.
    expiry_ran
        Whether expiry was checked (a time-to-live is set, or :meth:`RowLifecycle.expire`
        was called): the model then records what expired, even when nothing did.
    """

    now: int
    expired_users: Expired
    expired_items: Expired
    admitted_users: np.ndarray
    admitted_items: np.ndarray
    n_items_before: int
    expiry_ran: bool

    @property
    def changed(self) -> bool:
        """Whether any id took or left a row."""
        return bool(
            len(self.expired_users.rows)
            or len(self.expired_items.rows)
            or len(self.admitted_users)
            or len(self.admitted_items)
        )

    def expiry_record(self) -> dict[str, Any]:
        """What expired, as the model reports it (``SequentialRecommender.expired_``)."""
        return {
            "now": int(self.now),
            "users": self.expired_users.ids.tolist(),
            "items": self.expired_items.ids.tolist(),
            "n_pending_items_dropped": int(self.expired_items.n_pending_dropped),
        }

    @property
    def reused_items(self) -> np.ndarray:
        """Admitted item rows that were free before (to start over as new)."""
        if len(self.admitted_items) == 0:
            return self.admitted_items
        return self.admitted_items[self.admitted_items < self.n_items_before]


def _cutoff(ttl: float | None, now: int) -> int | None:
    """Expire what was last seen before this (unseen for longer than ``ttl``)."""
    return None if ttl is None else int(math.ceil(now - float(ttl)))


def _placeheld(vocab: IdVocabulary) -> np.ndarray:
    ids = vocab.ids.copy()
    free = vocab.free_rows
    if len(free):
        ids[free] = np.fromiter((FreeRow(r) for r in free), object, len(free))
    return ids


class RowLifecycle:
    """The rows of user and item ids (see the module docstring).

    Parameters
    ----------
    users, items
        The vocabularies (users are admitted at first sight; items after their
        ``min_count``-th event).
    now
        The clock: the newest event timestamp seen.
    """

    def __init__(self, users: IdVocabulary, items: IdVocabulary, now: int) -> None:
        self.users = users
        self.items = items
        self.now = int(now)

    @classmethod
    def start(cls, events: pd.DataFrame, item_min_count: int) -> RowLifecycle:
        """The rows of a ``fit`` on ``events``.

        Raises
        ------
        DataError
            No item has ``item_min_count`` events.
        """
        ts = events["timestamp"].to_numpy(dtype=np.int64)
        users, items = IdVocabulary(1), IdVocabulary(int(item_min_count))
        users.observe(events["user_id"].astype(str).to_numpy(dtype=object), ts)
        items.observe(events["item_id"].astype(str).to_numpy(dtype=object), ts)
        if len(ts) and items.n_active == 0:
            raise DataError(
                "no item has enough events to be admitted",
                column="item_id",
                value=f"at most {max((c for c, _ in items.pending.values()), default=0)} "
                f"events per item, item_min_count={item_min_count}",
                expected="at least one item with item_min_count events (lower it)",
            )
        return cls(users, items, int(ts.max()) if len(ts) else 0)

    @classmethod
    def everyone(
        cls, user_ids: np.ndarray, item_ids: np.ndarray, item_min_count: int, now: int
    ) -> RowLifecycle:
        """Every id active, seen at ``now`` (a model saved before vocabularies existed)."""
        users, items = IdVocabulary(1), IdVocabulary(int(item_min_count))
        users.admit(np.asarray(user_ids).astype(str), now)
        items.admit(np.asarray(item_ids).astype(str), now)
        return cls(users, items, now)

    # ------------------------------------------------------------------ views
    def user_ids(self) -> np.ndarray:
        """The id of each user row, a :class:`FreeRow` placeholder at free rows."""
        return _placeheld(self.users)

    def item_ids(self) -> np.ndarray:
        """The id of each item row, a :class:`FreeRow` placeholder at free rows."""
        return _placeheld(self.items)

    # ---------------------------------------------------------------- changes
    def observe(
        self, events: pd.DataFrame, user_ttl: float | None, item_ttl: float | None
    ) -> RowChanges:
        """Count the events' ids, expire what is stale (unseen for longer than the
        time-to-live, ids of the batch being alive), admit what qualifies (see
        :meth:`~lifelongrec.features.IdVocabulary.observe`)."""
        ts = events["timestamp"].to_numpy(dtype=np.int64)
        now = max(self.now, int(ts.max())) if len(ts) else self.now
        n_items_before = self.items.n_rows
        up_u = self.users.observe(
            events["user_id"].astype(str).to_numpy(dtype=object),
            ts,
            expire_before=_cutoff(user_ttl, now),
        )
        up_i = self.items.observe(
            events["item_id"].astype(str).to_numpy(dtype=object),
            ts,
            expire_before=_cutoff(item_ttl, now),
        )
        self.now = now
        ran = user_ttl is not None or item_ttl is not None
        return RowChanges(
            now,
            up_u.expired,
            up_i.expired,
            up_u.admitted_rows,
            up_i.admitted_rows,
            n_items_before,
            ran,
        )

    def touch(
        self,
        users: np.ndarray,
        items: np.ndarray,
        timestamps: np.ndarray,
        user_ttl: float | None,
        item_ttl: float | None,
    ) -> RowChanges | None:
        """:meth:`observe` of a batch whose user and item ids all hold rows (given as
        ``users`` and ``items`` rows), in numpy. Returns ``None``, changing nothing, when
        an id would expire now: :meth:`observe` must run then (it frees rows)."""
        now = max(self.now, int(timestamps.max()))
        pairs = (
            (self.users, users, _cutoff(user_ttl, now)),
            (self.items, items, _cutoff(item_ttl, now)),
        )
        for vocab, rows, cut in pairs:
            if cut is None:
                continue
            stale = (vocab.last_seen < cut) & vocab.active
            stale[rows] = False  # ids of the batch are alive now
            if stale.any():
                return None
            if vocab.n_pending and min(t for _, t in vocab.pending.values()) < cut:
                return None
        for vocab, rows, _ in pairs:
            vocab.touch(rows, timestamps)
        self.now = now
        return self.unchanged(expiry_ran=user_ttl is not None or item_ttl is not None)

    def unchanged(self, expiry_ran: bool = False) -> RowChanges:
        """No row taken or freed, at the clock."""
        n_items = self.items.n_rows
        return RowChanges(self.now, _NOTHING, _NOTHING, _NO_ROWS, _NO_ROWS, n_items, expiry_ran)

    def admit_items(self, ids: np.ndarray) -> RowChanges:
        """Rows for ``ids`` now, whatever their count (catalogue items added by hand)."""
        n_items_before = self.items.n_rows
        rows = self.items.admit(ids, self.now)
        empty = np.empty(0, np.int64)
        return RowChanges(self.now, _nothing(), _nothing(), empty, rows, n_items_before, False)

    def expire(self, now: Any, user_ttl: float | None, item_ttl: float | None) -> RowChanges:
        """Expire the ids unseen since ``now - ttl`` (nothing without a time-to-live);
        ``now``: integer epoch seconds, ``None`` for the clock (left as it is).

        Raises
        ------
        ParameterError
            ``now`` is not an integer timestamp.
        """
        if now is None:
            now = self.now
        else:
            ok = isinstance(now, numbers.Real) and not isinstance(now, bool)
            if ok and not isinstance(now, numbers.Integral):
                ok = math.isfinite(float(now)) and float(now).is_integer()
            if not ok:
                raise ParameterError("now", now, "None or an integer timestamp (epoch seconds)")
            now = int(now)
        cut_u, cut_i = _cutoff(user_ttl, now), _cutoff(item_ttl, now)
        gone_u = _nothing() if cut_u is None else self.users.expire(cut_u)
        gone_i = _nothing() if cut_i is None else self.items.expire(cut_i)
        empty = np.empty(0, np.int64)
        return RowChanges(int(now), gone_u, gone_i, empty, empty, self.items.n_rows, True)

    def forget_users(self, ids: list[str]) -> Expired:
        """Free the rows of the given user ids (unknown ids are skipped)."""
        return self.users.forget(ids)

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """Arrays of both vocabularies, ``users/...`` and ``items/...``."""
        return {
            **{f"users/{k}": v for k, v in self.users.get_state().items()},
            **{f"items/{k}": v for k, v in self.items.get_state().items()},
        }

    @classmethod
    def from_state(cls, arrays: dict[str, Any], now: int) -> RowLifecycle:
        """Inverse of :meth:`get_state`."""
        users = {k[6:]: v for k, v in arrays.items() if k.startswith("users/")}
        items = {k[6:]: v for k, v in arrays.items() if k.startswith("items/")}
        return cls(IdVocabulary.from_state(users), IdVocabulary.from_state(items), now)

    @property
    def nbytes(self) -> int:
        """Bytes of the vocabularies' state arrays."""
        return int(sum(a.nbytes for v in (self.users, self.items) for a in v.get_state().values()))
