"""Ingestion and the users kept in memory.

:class:`Ingestion` validates a batch of events (nothing of a bad batch is written),
appends it to the store in one durable transaction (idempotent through ``event_id``)
and then, under the same ingestion lock, lets the live model (and the challengers of a
running online experiment, :attr:`Ingestion.followers`) observe the written events: the
user's state changes at once, so the next recommendation reflects the event. The live
model's parameters never change in place.

:class:`UserMemory` bounds how many users the live model holds (``max_users``): the
least recently active are evicted (their events stay in the store; the trainer follows
in the learner thread) and restored from their most recent stored events when they come
back (an event, or a recommendation request).
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError
from lifelongrec.data import EVENT_COLUMNS, BusUnavailableError, EventStore
from lifelongrec.models import Recommender
from lifelongrec.serving._capabilities import discard_online_material
from lifelongrec.serving._config import LimitSettings, UserSettings
from lifelongrec.serving._live import LiveSlot
from lifelongrec.serving._shared import Locks
from lifelongrec.training import online_events

__all__ = ["OBSERVE_PART", "Ingestion", "UserMemory", "observe_parts"]

log = logging.getLogger("lifelongrec.serving")

#: Events the live model observes per hold of the model lock (about a millisecond).
OBSERVE_PART = 128


def observe_parts(model: Recommender, events: Any, size: int) -> list[dict[str, np.ndarray]]:
    """``events`` (column name -> array; a DataFrame is one too) as column arrays in
    parts of about ``size`` events for :meth:`Recommender.observe` (arrays cost it less
    per call than a frame), each user's events (in their order) in one part. Events of
    users the model does not hold, and of every user with an event on an item it does
    not hold, come first and together: observing them grows the model's tables, a cost
    paid per call."""
    columns = {c: np.asarray(v) for c, v in events.items()}
    user_ids = columns["user_id"].astype(object, copy=False)
    n = len(user_ids)
    if n <= size:
        return [columns]
    inverse, users = pd.factorize(user_ids)
    growing = np.asarray(model.user_rows(users.tolist())) < 0
    index = model.item_index_
    unknown = np.fromiter((i not in index for i in columns["item_id"]), bool, n)
    growing[inverse[unknown]] = True
    grows = growing[inverse]
    # Whole users into consecutive parts (a user's part is where the running count of
    # the events before it falls); the growing events first, as part -1.
    counts = np.bincount(inverse[~grows], minlength=len(users))
    part_of = (np.cumsum(counts) - counts) // size
    key = np.where(grows, -1, part_of[inverse])
    order = np.argsort(key, kind="stable")  # stable: each user's events keep their order
    cuts = [0, *(np.flatnonzero(np.diff(key[order])) + 1).tolist(), n]
    ordered = {c: v[order] for c, v in columns.items()}
    return [{c: v[a:b] for c, v in ordered.items()} for a, b in itertools.pairwise(cuts)]


class UserMemory:
    """The users the live model holds, least recently active first (``max_users``).

    Every method but :meth:`restore`, :meth:`reset` and :meth:`take_evicted` expects
    the ingestion lock to be held by its caller.
    """

    def __init__(
        self,
        slot: LiveSlot,
        store: EventStore,
        settings: UserSettings,
        locks: Locks,
        counters: dict[str, float],
    ) -> None:
        self.slot = slot
        self.store = store
        self.settings = settings
        self.locks = locks
        self.counters = counters
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._evicted: list[str] = []  # evicted from the live model, not yet the trainer
        # User -> the newest store position a restore from the store observed for them:
        # their events up to it are in the model, whoever wrote them (the store
        # follower skips them). Changed under the ingestion lock.
        self.restored_upto: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._recent)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._recent

    def users(self) -> list[str]:
        """The users in memory, least recently active first (a copy)."""
        with self.locks.ingest:
            return list(self._recent)

    def reset(self, model: Recommender, last_seqs: dict[str, int]) -> None:
        """Start from the users ``model`` holds, the least recently active (by their
        last stored event) first, and evict down to the cap. The trainer is copied from
        the live model afterwards, so it has nothing to follow."""
        users = model.known_users()
        users.sort(key=lambda u: last_seqs.get(u, -1))
        with self.locks.ingest:
            self._recent = collections.OrderedDict.fromkeys(users)
            self.evict()
            self._evicted = []

    def follow(self, model: Recommender) -> None:
        """A model going live holds exactly the users in memory: the ones the live model
        had evicted stay out (they come back from the store when active again)."""
        if not self._recent:
            return
        recent = self._recent
        users = model.known_users()
        evicted = [u for u in users if u not in recent]
        if evicted:
            model.forget_users(evicted)
        held = set(users)
        for u in [u for u in recent if u not in held]:
            del recent[u]

    def touch(self, users: Sequence[str]) -> None:
        """Mark users as just active and evict the least recently active when the live
        model holds more than ``max_users``."""
        recent = self._recent
        for u in users:
            recent[u] = None
            recent.move_to_end(u)
        self.evict()

    def discard(self, user_id: str) -> None:
        """An erased user is no longer in memory."""
        self._recent.pop(user_id, None)

    def evict(self) -> None:
        """Evict the least recently active users down to 90 % of ``max_users`` from the
        live model (their events stay in the store); the trainer follows in the learner
        thread (:meth:`take_evicted`)."""
        cap = self.settings.max_users
        if not cap or len(self._recent) <= cap:
            return
        n = len(self._recent) - int(cap * 0.9)
        old = [self._recent.popitem(last=False)[0] for _ in range(n)]
        live = self.slot.current
        with self.locks.model:
            live.model.forget_users(old)
            live.forget_vectors(old)
        self._evicted.extend(old)
        self.counters["users_evicted"] += len(old)
        log.info("evicted %d least recently active users from memory (max_users=%d)", n, cap)

    def take_evicted(self) -> list[str]:
        """The users evicted since the last call and not active again since (the
        trainer forgets them too)."""
        if not self._evicted:
            return []
        with self.locks.ingest:
            evicted = [u for u in self._evicted if u not in self._recent]
            self._evicted = []
        return evicted

    def restore(self, user_id: str) -> bool:
        """Bring a user the live model does not hold back from their stored events (after
        an eviction); whether there were any."""
        n = self.settings.rehydrate_events
        past = self.store.recent_events([user_id], n)
        if not len(past):
            return False
        with self.locks.reads.aside():  # ingestion may hold the lock, waiting for reads
            self.locks.ingest.acquire()
        try:
            live = self.slot.current
            if live.model.user_rows([user_id])[0] >= 0:
                return True  # an event or another request restored them meanwhile
            past = self.store.recent_events([user_id], n)
            if not len(past):
                return False  # erased meanwhile
            with self.locks.model:
                live.model.observe(past[list(EVENT_COLUMNS)])
                discard_online_material(live.model)
                live.forget_vectors([user_id])
            self.restored_upto[user_id] = int(past["seq"].max())
            self.counters["users_restored"] += 1
            self.touch([user_id])
        finally:
            self.locks.ingest.release()
        return True


class Ingestion:
    """Events in: validated, stored durably, observed by the live model at once."""

    def __init__(
        self,
        slot: LiveSlot,
        users: UserMemory,
        store: EventStore,
        limits: LimitSettings,
        locks: Locks,
        counters: dict[str, float],
    ) -> None:
        self.slot = slot
        self.users = users
        self.store = store
        self.limits = limits
        self.locks = locks
        self.counters = counters
        self.event_types: frozenset[str] = frozenset()
        # Other served models that observe every written event like the live one (an
        # experiment's challengers), each with the users it holds; changed only under
        # the ingestion lock.
        self.followers: list[tuple[LiveSlot, UserMemory]] = []
        # The store position up to which the live model observed every event; events
        # below it written by other processes (API replicas on the same store) are
        # observed by :meth:`follow_store`. Only changed under the ingestion lock.
        self._cursor = 0
        # The event bus what is stored is published on (None: none), and the rows of
        # a bus batch to leave out (events of users erased since it was published).
        self.bus: Any = None
        self.erased_rows: Any = None
        self._bus_down = False

    def ingest(
        self,
        events: Any,
        event_ids: Sequence[str | None] | None = None,
        request_ids: Sequence[str | None] | None = None,
    ) -> dict[str, int]:
        """See :meth:`RecommenderService.ingest`."""
        cols, _ = online_events(events)
        n = len(cols["user_id"])
        max_batch = self.limits.max_batch
        if n > max_batch:
            raise DataError(
                "too many events in one batch",
                column="events",
                value=n,
                expected=f"at most {max_batch} events per request",
            )
        for name, ids in (("event_ids", event_ids), ("request_ids", request_ids)):
            if ids is not None and len(ids) != n:
                raise DataError(
                    f"{name} and events differ in length",
                    column=name,
                    value=len(ids),
                    expected=f"{n} (one per event, None for none)",
                )
        types = cols["event_type"]
        if self.event_types:
            bad = [j for j, t in enumerate(types) if t not in self.event_types]
            if bad:
                raise DataError(
                    "unknown event type",
                    column="event_type",
                    value=f"{types[bad[0]]!r} in event {bad[0]} (0-based position)",
                    expected=f"one of {sorted(self.event_types)} (the service setting "
                    "event_types lists the accepted types)",
                )
        frame = pd.DataFrame({c: cols[c] for c in EVENT_COLUMNS})
        self._give_way()
        with self.locks.ingest:
            before = self.store.last_seq
            result = self.store.append(frame, event_ids, request_ids)
            if result.n_written:
                seqs = np.asarray(result.seqs)
                first = int(seqs[seqs > before].min())
                while first > self.cursor + 1:  # another process wrote before this batch
                    if not self._follow(until=first - 1):
                        break  # the rest was erased meanwhile
                self._observe(cols, seqs, before)
                self._cursor = max(self._cursor, int(result.last_seq))
                self._prune_restored()
        if self.bus is not None and result.n_written:
            # Outside the lock: requests do not wait on the bus. Two batches of this
            # process may reach it out of order; readers take that in (the store fills).
            self._publish(frame, seqs, before)
        self.counters["events_ingested"] += result.n_written
        self.counters["events_duplicate"] += result.n_duplicates
        return {
            "n_received": n,
            "n_written": int(result.n_written),
            "n_duplicates": int(result.n_duplicates),
            "last_seq": int(result.last_seq),
        }

    def _give_way(self) -> bool:
        """Before a step: wait for the serving reads in flight (see
        :class:`~lifelongrec.serving._shared.ReadGate`); whether it waited."""
        waited = self.locks.reads.give_way()
        if waited:
            self.counters["ingest_read_waits"] += 1
            self.counters["ingest_read_wait_seconds"] += waited
        return waited > 0

    def _publish(self, frame: pd.DataFrame, seqs: np.ndarray, before: int) -> None:
        """Publish the rows just written on the bus. A failure is
        counted and logged once per outage, never the request's: the events are stored,
        and the other processes find them in the store."""
        new = (seqs > before) & ~pd.Series(seqs).duplicated().to_numpy()
        try:
            self.bus.publish(frame[new], seqs[new])
        except BusUnavailableError as exc:
            self.counters["bus_publish_errors"] += 1
            if not self._bus_down:
                log.warning("publishing on the event bus failed: %s", exc)
            self._bus_down = True
            return
        if self._bus_down:
            log.warning("publishing on the event bus again")
        self._bus_down = False
        self.counters["bus_published"] += 1

    def take_in(self, batch: pd.DataFrame, upto: int) -> int:
        """Observe the events other processes stored up to position ``upto`` that
        ``batch`` (from the bus, with ``seq``) holds, as if ingested here: those after
        the cursor, but events of users erased since (:attr:`erased_rows`); the cursor
        moves to ``upto``. Returns how many were observed."""
        with self.locks.ingest:
            start = self.cursor
            if upto <= start:
                return 0
            part = batch[batch["seq"].to_numpy() > start]
            if self.erased_rows is not None and len(part):
                part = part[~np.asarray(self.erased_rows(part), dtype=bool)]
            if len(part):
                frame = part[list(EVENT_COLUMNS)].reset_index(drop=True)
                self._observe(frame, part["seq"].to_numpy(), start)
            self._cursor = max(self._cursor, int(upto))
            self._prune_restored()
            self.counters["bus_events_in"] += len(part)
            return len(part)

    @property
    def cursor(self) -> int:
        """The store position up to which the live model observed every stored event
        (its own writes and, through :meth:`follow_store`, other processes')."""
        return max(self._cursor, self.slot.current.seq)

    def follow_store(self, limit: int = 5_000) -> int:
        """Observe the events other processes (API replicas on the same store) stored
        since the cursor, as if they had been ingested here; returns how many. Cheap
        when there are none (one look at the store's newest position, no lock)."""
        if self.store.last_seq <= self.cursor:
            return 0
        with self.locks.ingest:
            return self._follow(limit=limit)

    def _follow(self, until: int | None = None, limit: int = 5_000) -> int:
        """Observe the stored events after the cursor (up to ``until``); the ingestion
        lock is held."""
        start = self.cursor
        batch = self.store.read(after_seq=start, limit=limit)
        if until is not None:
            batch = batch[batch["seq"] <= until]
        if not len(batch):
            return 0
        frame = batch[list(EVENT_COLUMNS)].reset_index(drop=True)
        self._observe(frame, batch["seq"].to_numpy(), start)
        self._cursor = max(self._cursor, int(batch["seq"].iloc[-1]))
        self._prune_restored()
        return len(batch)

    def _prune_restored(self) -> None:
        """Forget the restore positions the cursor has passed (nothing below it is
        observed again); the ingestion lock is held."""
        cursor = self.cursor
        for _, memory in ((self.slot, self.users), *self.followers):
            if memory.restored_upto:
                memory.restored_upto = {u: q for u, q in memory.restored_upto.items() if q > cursor}

    def _observe(self, events: Any, seqs: np.ndarray, before: int) -> None:
        """The live model, and every follower, observe what was written (the ingestion
        lock is held). ``events``: a frame or a mapping of the event columns, one row
        per ``seqs`` entry."""
        # The rows given a new seq, each once (a key repeated in the batch shares its
        # first row's seq): what was written, without reading back.
        seqs = np.asarray(seqs)
        _, first = np.unique(seqs, return_index=True)
        new = np.zeros(len(seqs), dtype=bool)
        new[first] = True
        new &= seqs > before
        written = {c: np.asarray(events[c])[new] for c in EVENT_COLUMNS}
        users = pd.unique(written["user_id"]).tolist()
        for slot, memory in ((self.slot, self.users), *self.followers):
            self._observe_in(slot, memory, written, seqs[new], users)

    def _observe_in(
        self,
        slot: LiveSlot,
        memory: UserMemory,
        written: dict[str, np.ndarray],
        seqs: np.ndarray,
        users: list[str],
    ) -> None:
        live = slot.current
        if memory.restored_upto:  # events a restore from the store took in already
            got = memory.restored_upto.get
            ids = written["user_id"]
            upto = np.fromiter((got(u, -1) for u in ids), np.int64, len(ids))
            fresh = seqs > upto
            if not fresh.all():
                written, seqs = {c: v[fresh] for c, v in written.items()}, seqs[fresh]
                users = pd.unique(written["user_id"]).tolist()
                if not users:
                    return
        rows = live.model.user_rows(users)
        absent = [u for u, r in zip(users, rows, strict=True) if r < 0]
        if absent:
            # Users the model does not hold (new, or evicted): their recent stored
            # events, which include these, restore them.
            gone = set(absent)
            ids = written["user_id"]
            mine = np.fromiter((u in gone for u in ids), bool, len(ids))
            past = self.store.recent_events(absent, memory.settings.rehydrate_events)
            if len(past):
                newest = past.groupby("user_id", sort=False)["seq"].max()
                memory.restored_upto.update({str(u): int(q) for u, q in newest.items()})
            if memory is self.users:
                had = past["user_id"].value_counts()
                now = pd.Series(ids[mine]).value_counts().reindex(had.index)
                self.counters["users_restored"] += int((had > now.fillna(0)).sum())
            written = {
                c: np.concatenate([v[~mine], past[c].to_numpy(dtype=v.dtype)])
                for c, v in written.items()
            }
        # In parts, the model lock taken for each: a request waits for one part, not
        # for the batch (each user's events stay together, so a user changes at once).
        parts = observe_parts(live.model, written, OBSERVE_PART)
        for j, part in enumerate(parts):
            if not self._give_way() and j:
                time.sleep(0)  # lets a request waiting for the lock take it (no barging)
            with self.locks.model:
                live.model.observe(part)
                discard_online_material(live.model)
                live.forget_vectors(pd.unique(part["user_id"]).tolist())
        memory.touch(users)
