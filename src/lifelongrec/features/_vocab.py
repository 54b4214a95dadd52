"""Dynamic id vocabulary: external id <-> table row, with admission, expiry and row reuse.

An embedding table that must keep learning while users and items come and go needs a
map from external ids to its rows that

* never hashes (two ids never share a row, so no collisions to learn around);
* **admits** an id only once it has been seen ``min_count`` times (a one-off id does not
  cost a row); the occurrence counts of ids still waiting (*pending*) are kept, with the
  time they were last seen, so that they accumulate across batches;
* **expires** ids unseen since a given time: their rows are freed and reused, lowest
  first, by the next admissions before the table grows; pending ids expire the same way,
  so their counts cannot grow without bound either;
* hands its whole state over as numpy arrays (no pickle) for save/load.

:class:`IdVocabulary` does only the bookkeeping: which id holds which row, since when, and
which rows are free. The model that owns the tables resets a freed row's parameters and
initialises a reused one (see :class:`lifelongrec.models.SequentialRecommender`).

Timestamps are integers (UTC epoch seconds in the rest of the package, but any integer
clock works). An id's ``last_seen`` is the newest timestamp it was observed at.

Examples
--------
>>> vocab = IdVocabulary(min_count=2)
>>> vocab.observe(["a", "b", "a"], [1, 2, 3]).admitted_ids.tolist()   # b waits
['a']
>>> vocab.rows(["a", "b"]).tolist(), vocab.n_pending
([0, -1], 1)
>>> vocab.observe(["b", "c"], [10, 11]).admitted_ids.tolist()
['b']
>>> vocab.expire(before=5).ids.tolist()            # a was last seen at 3: row 0 is free
['a']
>>> vocab.observe(["d", "d"], [12, 13]).admitted_rows.tolist()   # d reuses row 0
[0]
>>> vocab.n_rows, vocab.n_active, vocab.n_free
(2, 2, 0)
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import Integer, Params, is_int, is_number

__all__ = ["Expired", "IdVocabulary", "VocabularyUpdate"]

#: ``last_seen`` of a free row.
NEVER = np.iinfo(np.int64).min
_STATE_KEYS = (
    "ids",
    "active",
    "last_seen",
    "counts",
    "free",
    "pending_ids",
    "pending_counts",
    "pending_last_seen",
    "min_count",
)


class Expired(NamedTuple):
    """What an expiry freed.

    Attributes
    ----------
    rows : ndarray of int64
        The freed rows, ascending.
    ids : ndarray of object
        The ids that held them (same order).
    n_pending_dropped : int
        Pending ids (not admitted yet) whose counts were forgotten.
    """

    rows: np.ndarray
    ids: np.ndarray
    n_pending_dropped: int


@dataclass(frozen=True)
class VocabularyUpdate:
    """What one :meth:`IdVocabulary.observe` call changed.

    Attributes
    ----------
    admitted_ids : ndarray of object
        Ids that got a row in this call, in order of first appearance in the batch.
    admitted_rows : ndarray of int64
        Their rows: freed rows reused (lowest first), then new rows at the end.
    n_rows_before : int
        Rows allocated before the call; admitted rows below it are reused ones.
    expired : Expired
        What the call's expiry (``expire_before``) freed; empty without one.
    """

    admitted_ids: np.ndarray
    admitted_rows: np.ndarray
    n_rows_before: int
    expired: Expired

    @property
    def reused_rows(self) -> np.ndarray:
        """Admitted rows that had been freed before (``< n_rows_before``)."""
        return self.admitted_rows[self.admitted_rows < self.n_rows_before]


def _empty_expired() -> Expired:
    return Expired(np.empty(0, np.int64), np.empty(0, object), 0)


def _check_time(name: str, value: Any) -> int:
    """An integer clock value (a float must be integral: timestamps are whole seconds)."""
    if not (is_int(value) or (is_number(value) and float(value).is_integer())):
        raise ParameterError(name, value, "an integer timestamp (epoch seconds)")
    if int(value) <= NEVER:
        raise ParameterError(name, value, f"an integer timestamp above {NEVER}")
    return int(value)


def _check_ids(ids: Any, name: str = "ids") -> np.ndarray:
    if isinstance(ids, (str, bytes)) or np.ndim(ids) != 1:
        raise ParameterError(name, ids, "a 1-d sequence of string ids")
    arr = np.asarray(list(ids), dtype=object)
    bad = np.fromiter((not isinstance(x, str) for x in arr), bool, len(arr))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise DataError(
            "an id is not a string",
            column=name,
            value=f"{arr[j]!r} at position {j}",
            expected="string ids (convert with str() first)",
        )
    return arr


def _check_timestamps(timestamps: Any, n: int) -> np.ndarray:
    ts = np.asarray(timestamps)
    if ts.ndim != 1 or len(ts) != n:
        raise ParameterError(
            "timestamps", f"shape {ts.shape}", f"a 1-d array of {n} timestamps (one per id)"
        )
    if n and ts.dtype.kind not in "iu":
        if ts.dtype.kind != "f" or not (np.isfinite(ts).all() and (ts == np.round(ts)).all()):
            raise DataError(
                "timestamps are not integers",
                column="timestamps",
                value=ts[:5].tolist(),
                expected="integer epoch seconds",
            )
    ts = ts.astype(np.int64)
    if (ts == NEVER).any():
        raise DataError(
            "a timestamp is the int64 minimum, which marks free rows",
            column="timestamps",
            value=int(NEVER),
            expected=f"integers above {NEVER}",
        )
    return ts


class IdVocabulary(Params):
    """Maps external ids to table rows without hashing; admits, expires and reuses rows.

    Parameters
    ----------
    min_count
        Occurrences an id needs before it gets a row (``1``: at first sight). Until then
        it is *pending*: ``rows`` gives ``-1`` for it and its count and ``last_seen`` are
        kept.

    Attributes
    ----------
    n_rows, n_active, n_free, n_pending : int
        Rows allocated; rows held by an id; freed rows waiting for reuse
        (``n_rows == n_active + n_free``); ids counted but not admitted.
    ids : ndarray of object, shape (n_rows,)
        The id of each row, ``None`` at free rows (read-only view).
    active : ndarray of bool, shape (n_rows,)
    last_seen : ndarray of int64, shape (n_rows,)
        Newest timestamp each row's id was observed at (admission counts as seen);
        :data:`NEVER` at free rows (read-only view).
    counts : ndarray of int64, shape (n_rows,)
        Occurrences of each row's id since admission, those that admitted it included.
    index : dict
        The live ``id -> row`` map of the active ids (do not modify).
    """

    _constraints = {"min_count": Integer(1)}

    def __init__(self, min_count: int = 1) -> None:
        self.min_count = min_count
        self.check_params()  # at once: a vocabulary has no fit that would check it
        self.min_count = int(min_count)
        self._ids = np.empty(0, dtype=object)
        self._last_seen = np.empty(0, dtype=np.int64)
        self._counts = np.empty(0, dtype=np.int64)
        self._index: dict[str, int] = {}
        self._free: list[int] = []  # a heap: the lowest free row is reused first
        self._pending: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------ views
    @property
    def n_rows(self) -> int:
        return len(self._ids)

    @property
    def n_active(self) -> int:
        return len(self._index)

    @property
    def n_free(self) -> int:
        return len(self._free)

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    def __len__(self) -> int:
        return self.n_active

    def __contains__(self, id_: object) -> bool:
        return id_ in self._index

    def __repr__(self) -> str:
        """The settings (as :class:`~lifelongrec._params.Params` shows them), then the
        state: ``IdVocabulary(min_count=1; rows=3, active=2, free=1, pending=0)``."""
        state = (
            f"rows={self.n_rows}, active={self.n_active}, free={self.n_free}, "
            f"pending={self.n_pending}"
        )
        return f"{super().__repr__()[:-1]}; {state})"

    @staticmethod
    def _readonly(a: np.ndarray) -> np.ndarray:
        v = a.view()
        v.flags.writeable = False
        return v

    @property
    def ids(self) -> np.ndarray:
        return self._readonly(self._ids)

    @property
    def last_seen(self) -> np.ndarray:
        return self._readonly(self._last_seen)

    @property
    def counts(self) -> np.ndarray:
        return self._readonly(self._counts)

    @property
    def active(self) -> np.ndarray:
        return self._last_seen != NEVER

    @property
    def free_rows(self) -> np.ndarray:
        """Free rows, ascending (the order in which admissions reuse them)."""
        return np.asarray(sorted(self._free), dtype=np.int64)

    @property
    def index(self) -> dict[str, int]:
        return self._index

    @property
    def pending(self) -> dict[str, tuple[int, int]]:
        """A copy of the pending ids: ``id -> (count, last_seen)``."""
        return dict(self._pending)

    def rows(self, ids: Any) -> np.ndarray:
        """Rows of ``ids`` (a 1-d sequence), ``-1`` for ids without one (unknown or pending)."""
        arr = _check_ids(ids)
        index = self._index
        return np.fromiter((index.get(i, -1) for i in arr), np.int64, len(arr))

    # ---------------------------------------------------------------- changes
    def observe(self, ids: Any, timestamps: Any, expire_before: Any = None) -> VocabularyUpdate:
        """Count a batch of occurrences, expire what is stale, admit what qualifies.

        In this order: the ids' ``last_seen`` and counts are updated (pending ids
        accumulate their counts); then, with ``expire_before``, ids (active or pending)
        last seen before it are expired, except those in this batch, which are alive
        now; then pending ids whose count reached ``min_count`` get rows, in order of
        first appearance in the batch, reusing freed rows lowest first before the table
        grows.

        Parameters
        ----------
        ids
            1-d sequence of string ids, one per occurrence (repeats count).
        timestamps
            Integer timestamps, one per id.
        expire_before
            ``None`` (no expiry) or an integer time (see :meth:`expire`).

        Returns
        -------
        VocabularyUpdate

        Raises
        ------
        ParameterError
            ``ids`` is not 1-d, ``timestamps`` has another length, ``expire_before`` is
            not an integer.
        DataError
            An id is not a string, or a timestamp is not an integer.
        """
        arr = _check_ids(ids)
        ts = _check_timestamps(timestamps, len(arr))
        before = None if expire_before is None else _check_time("expire_before", expire_before)
        n_before = self.n_rows
        admit_ids: list[str] = []
        admit_counts: list[int] = []
        admit_last: list[int] = []
        batch_rows = np.empty(0, np.int64)
        uniq = np.empty(0, object)
        if len(arr):
            # Per distinct id, in order of first appearance: count and newest time.
            codes, uniq = pd.factorize(arr)
            uniq = np.asarray(uniq, dtype=object)
            cnt = np.bincount(codes, minlength=len(uniq)).astype(np.int64)
            newest = np.full(len(uniq), np.iinfo(np.int64).min, np.int64)
            np.maximum.at(newest, codes, np.asarray(ts, np.int64))
            index = self._index
            rows = np.fromiter((index.get(i, -1) for i in uniq), np.int64, len(uniq))
            known = rows >= 0
            batch_rows = rows[known]
            self._last_seen[batch_rows] = np.maximum(self._last_seen[batch_rows], newest[known])
            self._counts[batch_rows] += cnt[known]
            pending = self._pending
            for i, c, t in zip(
                uniq[~known].tolist(), cnt[~known].tolist(), newest[~known].tolist(), strict=True
            ):
                old = pending.get(i)
                if old is not None:
                    c, t = old[0] + c, max(old[1], t)
                if c >= self.min_count:
                    pending.pop(i, None)
                    admit_ids.append(i)
                    admit_counts.append(c)
                    admit_last.append(t)
                else:
                    pending[i] = (c, t)
        expired = (
            self._expire(before, batch_rows, set(uniq.tolist()))
            if before is not None
            else _empty_expired()
        )
        rows_new = self._assign(admit_ids, admit_counts, admit_last)
        return VocabularyUpdate(np.asarray(admit_ids, dtype=object), rows_new, n_before, expired)

    def admit(self, ids: Any, timestamp: Any) -> np.ndarray:
        """Give rows to ``ids`` now, whatever their count (e.g. catalogue items added by
        hand); returns the row of each id.

        Ids that already hold a row keep it and are not touched. Pending ids take their
        count along. Rows are assigned as in :meth:`observe`; ``last_seen`` of the newly
        admitted ids is ``timestamp`` (or their pending ``last_seen`` when newer).
        """
        arr = _check_ids(ids)
        t = _check_time("timestamp", timestamp)
        new_ids: list[str] = []
        new_counts: list[int] = []
        new_last: list[int] = []
        seen: set[str] = set()
        for i in arr.tolist():
            if i in self._index or i in seen:
                continue
            seen.add(i)
            c, last = self._pending.pop(i, (0, t))
            new_ids.append(i)
            new_counts.append(c)
            new_last.append(max(last, t))
        self._assign(new_ids, new_counts, new_last)
        return self.rows(arr)

    def touch(self, rows: np.ndarray, timestamps: np.ndarray) -> None:
        """Count occurrences of ids that hold rows, given by their ``rows`` (int64, one
        per occurrence) at ``timestamps`` (int64): what :meth:`observe` does for such
        ids, without looking ids up, expiring or admitting (a model's fast path for a
        batch whose ids all hold rows)."""
        np.maximum.at(self._last_seen, rows, timestamps)
        np.add.at(self._counts, rows, 1)

    def expire(self, before: Any) -> Expired:
        """Free the rows of ids last seen before ``before`` and forget pending ids last
        seen before it. Returns what was freed (:class:`Expired`); freed rows are reused
        by later admissions, lowest first."""
        return self._expire(_check_time("before", before), np.empty(0, np.int64), set())

    def forget(self, ids: Any) -> Expired:
        """Free the rows of the given ids and drop pending ones, whatever their age (the
        right to be forgotten). Ids the vocabulary does not hold are ignored (they are
        in neither list of the result). Returns what was freed (:class:`Expired`, rows
        ascending)."""
        wanted = set(_check_ids(ids).tolist())
        rows = np.sort(np.asarray([self._index[i] for i in wanted if i in self._index], np.int64))
        return self._free_rows(rows, [i for i in self._pending if i in wanted])

    def _expire(self, before: int, exempt_rows: np.ndarray, exempt_ids: set[str]) -> Expired:
        stale = self._last_seen < before
        stale &= self._last_seen != NEVER
        stale[exempt_rows] = False
        rows = np.flatnonzero(stale).astype(np.int64)
        drop = [i for i, (_, t) in self._pending.items() if t < before and i not in exempt_ids]
        return self._free_rows(rows, drop)

    def _free_rows(self, rows: np.ndarray, pending: list[str]) -> Expired:
        """Free ``rows`` (ascending) for reuse and forget the ``pending`` ids."""
        ids = self._ids[rows].copy()
        for i in ids.tolist():
            del self._index[i]
        self._ids[rows] = None
        self._last_seen[rows] = NEVER
        self._counts[rows] = 0
        for r in rows.tolist():
            heapq.heappush(self._free, r)
        for i in pending:
            del self._pending[i]
        return Expired(rows, ids, len(pending))

    def _assign(self, ids: list[str], counts: list[int], last: list[int]) -> np.ndarray:
        n = len(ids)
        rows = np.empty(n, np.int64)
        n_reuse = min(n, len(self._free))
        for j in range(n_reuse):
            rows[j] = heapq.heappop(self._free)
        n_grow = n - n_reuse
        if n_grow:
            start = self.n_rows
            rows[n_reuse:] = np.arange(start, start + n_grow)
            self._ids = np.concatenate([self._ids, np.full(n_grow, None, dtype=object)])
            self._last_seen = np.concatenate([self._last_seen, np.full(n_grow, NEVER, np.int64)])
            self._counts = np.concatenate([self._counts, np.zeros(n_grow, np.int64)])
        if n:
            self._ids[rows] = np.asarray(ids, dtype=object)
            self._last_seen[rows] = np.asarray(last, dtype=np.int64)
            self._counts[rows] = np.asarray(counts, dtype=np.int64)
            for i, r in zip(ids, rows.tolist(), strict=True):
                self._index[i] = r
        return rows

    # -------------------------------------------------------------- save/load
    def get_state(self) -> dict[str, np.ndarray]:
        """The whole state as numpy arrays (strings as unicode arrays, no objects)."""
        active = self.active
        pend = list(self._pending.items())
        return {
            "ids": np.asarray(
                [i if a else "" for i, a in zip(self._ids.tolist(), active, strict=True)],
                dtype=str,
            ),
            "active": active,
            "last_seen": self._last_seen.copy(),
            "counts": self._counts.copy(),
            "free": self.free_rows,
            "pending_ids": np.asarray([i for i, _ in pend], dtype=str),
            "pending_counts": np.asarray([c for _, (c, _) in pend], dtype=np.int64),
            "pending_last_seen": np.asarray([t for _, (_, t) in pend], dtype=np.int64),
            "min_count": np.asarray(self.min_count, dtype=np.int64),
        }

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray]) -> IdVocabulary:
        """Inverse of :meth:`get_state`.

        Raises
        ------
        DataError
            A key is missing or the arrays disagree (lengths, free rows, repeated ids).
        """

        def bad(problem: str, key: str, value: Any, expected: str) -> DataError:
            return DataError(
                f"vocabulary state: {problem}", column=key, value=value, expected=expected
            )

        missing = [k for k in _STATE_KEYS if k not in arrays]
        if missing:
            raise bad("missing arrays", missing[0], sorted(arrays), f"keys {list(_STATE_KEYS)}")
        ids = np.asarray(arrays["ids"]).astype(str)
        active = np.asarray(arrays["active"]).astype(bool)
        last = np.asarray(arrays["last_seen"]).astype(np.int64)
        counts = np.asarray(arrays["counts"]).astype(np.int64)
        free = np.asarray(arrays["free"]).astype(np.int64)
        n = len(ids)
        for key, a in (("active", active), ("last_seen", last), ("counts", counts)):
            if a.shape != (n,):
                raise bad("length differs from ids", key, a.shape, f"shape ({n},)")
        expect_free = np.flatnonzero(~active)
        if not np.array_equal(np.sort(free), expect_free):
            raise bad(
                "free rows are not the inactive rows",
                "free",
                free[:10].tolist(),
                f"the rows where active is False ({expect_free[:10].tolist()})",
            )
        if (last[active] == NEVER).any() or (last[~active] != NEVER).any():
            raise bad(
                "last_seen does not match active",
                "last_seen",
                None,
                "NEVER (int64 min) exactly at the inactive rows",
            )
        p_ids = np.asarray(arrays["pending_ids"]).astype(str)
        p_counts = np.asarray(arrays["pending_counts"]).astype(np.int64)
        p_last = np.asarray(arrays["pending_last_seen"]).astype(np.int64)
        if not len(p_ids) == len(p_counts) == len(p_last):
            raise bad(
                "pending arrays differ in length",
                "pending_ids",
                (len(p_ids), len(p_counts), len(p_last)),
                "equal lengths",
            )
        self = cls(int(np.asarray(arrays["min_count"])))
        obj = ids.astype(object)
        obj[~active] = None
        self._ids = obj
        self._last_seen = last.copy()
        self._counts = counts.copy()
        rows = np.flatnonzero(active)
        self._index = dict(zip(obj[rows].tolist(), rows.tolist(), strict=True))
        if len(self._index) != len(rows):
            raise bad("an id holds two rows", "ids", None, "distinct ids at the active rows")
        self._free = sorted(free.tolist())
        heapq.heapify(self._free)
        self._pending = {
            i: (int(c), int(t))
            for i, c, t in zip(p_ids.tolist(), p_counts.tolist(), p_last.tolist(), strict=True)
        }
        if any(i in self._index for i in self._pending):
            raise bad(
                "an id is both pending and active", "pending_ids", None, "disjoint sets of ids"
            )
        return self
