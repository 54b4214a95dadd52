"""The background learner: a trainer copy of the model that learns every stored event,
and the challengers made from it.

:class:`Learner` has its own lifecycle (:meth:`~Learner.start`, :meth:`~Learner.stop`,
one round with :meth:`~Learner.step`) and its own thread. It talks to the rest of the
service only through the event store (it reads events after its cursor), the erasure
log (it filters what it read against erasures logged meanwhile), the registry (through
its :class:`~lifelongrec.serving._erasure.RegistryScrubber`) and the small
:class:`LearnerHost` interface, so that it could run in another process with a host
that judges against the registry's champion.

One round (:meth:`Learner.step`):

1. catalogue items made live since the last round go into the trainer;
2. the next stored events after the cursor are read; under the learner's lock, those of
   users erased since the read began are dropped, and the rest are observed (state at
   once, parameter steps in mini-batches through
   :class:`~lifelongrec.training.OnlineLearner`);
   for a trainer that learns from exposure (``exposure_weight > 0``), the impressions
   stored since the last round go to it too (those of users erased meanwhile dropped),
   so that its steps learn from what users were shown and skipped;
3. users the serving side evicted from memory are forgotten by the trainer too;
4. the parameter steps that are due are taken;
5. every ``challenger_every`` learned events the trainer is snapshotted; once a held-out
   slice of newer events qualifies (``holdout_events``, ``gate_min_users``,
   ``gate_min_items``), the host judges the snapshot (:meth:`LearnerHost.judge`);
6. the host's housekeeping runs (:meth:`LearnerHost.maintain`) and one registered
   version holding an erased user is rewritten (:meth:`Learner.scrub_registry`).
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from typing import Any, Protocol

import numpy as np
import pandas as pd

from lifelongrec.data import EVENT_COLUMNS, EventStore, StoreFeed
from lifelongrec.models import Recommender
from lifelongrec.serving._config import GateSettings, LearnerSettings
from lifelongrec.serving._erasure import ErasureLog, RegistryScrubber
from lifelongrec.serving._shared import Timings
from lifelongrec.training import OnlineLearner

__all__ = ["Learner", "LearnerHost"]

log = logging.getLogger("lifelongrec.serving")

#: The most impressions one learner round reads (the rest wait for the next rounds).
_IMPRESSIONS_READ = 50_000


class LearnerHost(Protocol):
    """What the learner asks of the serving side (in one process: the service)."""

    def judge(
        self,
        challenger: Recommender,
        *,
        seq: int,
        holdout: pd.DataFrame,
        history: pd.DataFrame,
        parent: str,
    ) -> dict[str, Any]:
        """Gate the challenger (which learned the store up to ``seq``) against the
        champion, register it and serve it if promoted; the record of
        :func:`~lifelongrec.registry.judge_challenger`."""
        ...

    def take_items(self) -> list[pd.DataFrame]:
        """Catalogue items made live since the last call."""
        ...

    def take_evicted(self) -> list[str]:
        """Users evicted from the serving side's memory since the last call."""
        ...

    def maintain(self) -> bool:
        """The serving side's periodic housekeeping; whether there was work."""
        ...


class Learner:
    """The background learner (see the module docstring).

    Parameters
    ----------
    model
        The trainer: a copy of the champion this learner may change (never a model that
        serves).
    seq
        The store position ``model`` has learned up to (the cursor).
    version
        The registry version ``model`` is a copy of (the parent of the first challenger).
    store, erasures, scrubber, host
        How the learner talks to the rest (see the module docstring).
    settings, gate
        The learner's and the gate's settings.
    counters, timings
        Where it counts (``challengers_dropped``, ``learner_errors``) and times its
        phases.
    """

    def __init__(
        self,
        model: Recommender,
        seq: int,
        version: str,
        *,
        store: EventStore,
        erasures: ErasureLog,
        scrubber: RegistryScrubber,
        host: LearnerHost,
        settings: LearnerSettings,
        gate: GateSettings,
        counters: dict[str, float],
        timings: Timings,
        apart: bool = False,
        max_users: int | None = None,
        feed: Any = None,
    ) -> None:
        self.store = store
        # Where the events after the cursor come from: the store, or the event bus
        # (an EventFeed: entries acknowledged once a round has learned them).
        self.feed = feed if feed is not None else StoreFeed(store)
        self.erasures = erasures
        self.scrubber = scrubber
        self.host = host
        self.settings = settings
        self.gate = gate
        self.counters = counters
        self.timings = timings
        self._trainer = model
        self._online = OnlineLearner(model, batch_size=settings.batch, train_inline=False)
        self._seq = int(seq)
        self._shown_id = int(store.last_impression_id)  # the impressions' cursor
        self._line_version = version
        self._snapshot: tuple[Recommender, int] | None = None  # (trainer copy, its seq)
        self._learned_since = 0
        self._challenged_at = time.monotonic()  # the first challenger waits too
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rounds = threading.Condition()
        self._started_rounds = 0
        self._done_rounds = 0
        # In a process of its own (``apart``) the learner follows erasures through the
        # log, forgetting the users erased after ``_forgotten`` itself, and keeps at most
        # ``max_users`` users, least recently active out first.
        self._apart = bool(apart)
        self._forgotten = erasures.generation
        self._max_users = max_users
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        if apart and max_users is not None:
            self._recent = collections.OrderedDict.fromkeys(model.known_users())

    # ------------------------------------------------------------ read-only views
    @property
    def trainer(self) -> Recommender:
        """The model this learner trains (read it under :attr:`lock`)."""
        return self._trainer

    @property
    def lock(self) -> threading.RLock:
        """The trainer's lock (third in the service's lock order)."""
        return self._online.lock

    @property
    def cursor(self) -> int:
        """The store position the trainer has read up to."""
        return self._seq

    @property
    def line_version(self) -> str:
        """The last version of this learner's line (the parent of the next
        challenger)."""
        return self._line_version

    @property
    def challenger(self) -> Recommender | None:
        """The snapshot waiting for its held-out slice to be judged, if any."""
        return None if self._snapshot is None else self._snapshot[0]

    @property
    def running(self) -> bool:
        """Whether the learner thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def rounds(self) -> int:
        """Rounds completed so far (by the thread or by :meth:`step`)."""
        return self._done_rounds

    def stats(self) -> dict[str, Any]:
        """The online learner's counters (``OnlineStats.as_dict``)."""
        return self._online.stats.as_dict()

    def lag(self) -> int:
        """Stored events the trainer has not learned yet (read, or still buffered)."""
        behind = max(0, int(self.store.last_seq) - int(self._seq))
        return behind + int(self._online.n_pending)

    def wait_round(self, timeout: float | None = None) -> bool:
        """Block until a round that starts after this call has completed (e.g. one that
        reads the events written before the call). Returns False only on ``timeout``."""
        with self._rounds:
            target = self._started_rounds + 1
            return self._rounds.wait_for(lambda: self._done_rounds >= target, timeout)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the learner thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="learner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop the learner thread after its current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        share = float(self.settings.share)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                busy = self.step()
            except Exception:  # keep serving; the error is logged and counted
                log.exception("background learner step failed")
                self.counters["learner_errors"] += 1
                busy = False
            took = time.perf_counter() - t0
            if not busy:
                self._stop.wait(0.05)
            elif share < 1.0:
                self._stop.wait(took * (1.0 - share) / share)

    # --------------------------------------------------------------------- rounds
    def step(self, max_events: int = 5_000) -> bool:
        """One round (see the module docstring). Returns whether there was anything to
        do."""
        with self._rounds:
            self._started_rounds += 1
        try:
            return self._step(max_events)
        finally:
            with self._rounds:
                self._done_rounds += 1
                self._rounds.notify_all()

    def _step(self, max_events: int) -> bool:
        busy = False
        online = self._online
        timed = self.timings.timed
        queued = self.host.take_items()
        if queued:
            with online.lock, timed("items"):
                for frame in queued:
                    self._trainer.add_items(frame)
            busy = True
        if self._apart:
            self.erasures.refresh()
        generation = self.erasures.generation  # before the read: see the filter below
        with timed("read"):
            batch, upto = self.feed.read(after_seq=self._seq, limit=max_events)
        if self._apart:
            # Erasures logged by the API process up to now (every one below the events
            # just read is in the log: the API logs an erasure before it stores the
            # next event) are forgotten before those events are learned.
            self.erasures.refresh()
            with online.lock:
                busy = self._forget_erased() or busy
        if len(batch):
            with timed("observe"), online.lock:
                # A user erased since the read began was already forgotten by the trainer
                # (under this lock): their events in this batch must not bring them back.
                erased = self.erasures.since(generation)
                learn = batch
                if erased:
                    gone = self.erasures.erased_rows(batch["user_id"], batch["seq"], erased)
                    learn = batch[~np.asarray(gone, dtype=bool)]
                if len(learn):
                    online.observe(learn[list(EVENT_COLUMNS)])
                    if self._max_users is not None:
                        self._evict(learn["user_id"])
                self._seq = upto
            self._learned_since += len(batch)
            busy = True
        elif upto > self._seq:  # the bus gave only events of users erased since
            with online.lock:
                self._seq = upto
        if online.learns_from_exposure:
            with timed("impressions"):
                busy = self._take_impressions(generation) or busy
        evicted = self.host.take_evicted()
        if evicted:
            with online.lock:
                self._trainer.forget_users(evicted)
        with timed("train"):
            if online.train_pending():
                busy = True
        with timed("challenge"):
            challenged = self._challenge()
        self.feed.done(self._seq)  # the bus's entries learned this round: acknowledged
        maintained = self.host.maintain()
        scrubbed = self.scrub_registry()
        return challenged or maintained or scrubbed or busy

    def _take_impressions(self, generation: int) -> bool:
        """Hand the impressions stored since the last round to the trainer (those of
        users erased since ``generation`` left out); returns whether there were any."""
        shown = self.store.read_impressions(after_id=self._shown_id, limit=_IMPRESSIONS_READ)
        if len(shown) == 0:
            return False
        self._shown_id = int(shown["id"].iloc[-1])
        with self._online.lock:
            erased = self.erasures.since(generation)
            if erased:
                digest = self.erasures.digest
                gone = [u for u in shown["user_id"].unique() if digest(u) in erased]
                shown = shown[~shown["user_id"].isin(gone)]
            self._online.observe_impressions(shown)
        return True

    def _forget_erased(self) -> bool:
        """Forget the trainer's users erased since the last call (learner lock held);
        whether there were any erasures."""
        erased = self.erasures.since(self._forgotten)
        self._forgotten = self.erasures.generation
        if not erased:
            return False
        digest = self.erasures.digest
        gone = [u for u in self._trainer.known_users() if digest(u) in erased]
        if gone:
            self._trainer.forget_users(gone)
            for u in gone:
                self._recent.pop(u, None)
        return True

    def _evict(self, users: pd.Series) -> None:
        """Mark ``users`` most recently active and forget the least recently active
        beyond ``max_users`` (learner lock held)."""
        recent = self._recent
        for u in pd.unique(users.to_numpy()[::-1])[::-1]:  # by their last event
            recent[u] = None
            recent.move_to_end(u)
        over = len(recent) - int(self._max_users)
        if over > 0:
            old = [recent.popitem(last=False)[0] for _ in range(over)]
            self._trainer.forget_users(old)

    def forget_user(self, user_id: str) -> bool:
        """Remove an erased user from the trainer; whether it held them. The caller
        holds :attr:`lock` (with the erase lock: see ``erase_user``)."""
        with self._online.lock:
            if int(self._trainer.user_rows([user_id])[0]) < 0:
                return False
            return bool(self._trainer.forget_users([user_id]))

    def scrub_registry(self) -> bool:
        """Rewrite at most one registered version that holds an erased user; whether
        there was work (see :class:`~lifelongrec.serving._erasure.RegistryScrubber`)."""
        return self.scrubber.scrub()

    # ---------------------------------------------------------------- challengers
    def _challenge(self) -> bool:
        s = self.settings
        if s.challenger_every == 0:
            return False
        if self._snapshot is None:
            if self._learned_since < s.challenger_every:
                return False
            if time.monotonic() - self._challenged_at < s.challenger_min_seconds:
                return False
            with self._online.lock:
                self._online.flush()
                self._snapshot = (copy.deepcopy(self._trainer), self._seq)
            self._learned_since = 0
            return True
        challenger, seq = self._snapshot
        holdout = self._holdout(seq)
        if holdout is None:
            return False
        start = max(0, seq - self.gate.history_events)
        history = self.store.read(after_seq=start, limit=seq - start)
        history = history[history["seq"] <= seq]
        record = self.host.judge(
            challenger, seq=seq, holdout=holdout, history=history, parent=self._line_version
        )
        self._snapshot = None
        self._challenged_at = time.monotonic()
        self._line_version = record["version"]
        return True

    def _holdout(self, seq: int) -> pd.DataFrame | None:
        """The held-out slice after ``seq`` the gate can decide on: the first
        ``holdout_events`` events, grown until they hold ``min_users`` distinct users and
        ``min_items`` distinct items; ``None`` while the store has not got there yet. At
        ``holdout_max_events`` without enough of either the snapshot is dropped (a burst
        of events on a few items or from a few users is no ground to judge on)."""
        g = self.gate
        holdout = self.store.read(after_seq=seq, limit=g.holdout_max_events)
        if len(holdout) < g.holdout_events:
            return None
        users = ~holdout["user_id"].duplicated().to_numpy()
        items = ~holdout["item_id"].duplicated().to_numpy()
        n_users, n_items = np.cumsum(users), np.cumsum(items)
        enough = (
            (np.arange(1, len(holdout) + 1) >= g.holdout_events)
            & (n_users >= g.min_users)
            & (n_items >= g.min_items)
        )
        if enough.any():
            return holdout.iloc[: int(np.argmax(enough)) + 1]
        if len(holdout) >= g.holdout_max_events:
            log.warning(
                "challenger dropped unjudged: %d held-out events hold %d users and %d items "
                "(the gate needs %d and %d)",
                len(holdout),
                int(n_users[-1]),
                int(n_items[-1]),
                g.min_users,
                g.min_items,
            )
            self._snapshot = None
            self._challenged_at = time.monotonic()
            self.counters["challengers_dropped"] += 1
        return None
