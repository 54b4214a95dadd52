"""What the parts of the service share: its locks (and their order), counters and
learner timings, and small helpers over a model's vocabulary.

Locks, always taken in this order (a part that holds a later one never waits for an
earlier one):

1. ``swap``: a change of the champion (a challenger judged and maybe installed, a
   promotion, a rollback): one at a time.
2. ``erase``: an erasure; anything that saves or installs a model.
3. the learner's lock (:attr:`Learner.lock`): the trainer.
4. ``ingest``: store appends and the live model's state updates, so that a model swap
   can catch up exactly.
5. ``model``: the live model's state while a request reads it (short: one user's vector).

Leaf locks (a part's own small mutex, holding nothing else) may be taken under any of
these.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator

from lifelongrec._errors import LifelongrecError
from lifelongrec.models import Recommender

__all__ = ["COUNTERS", "GATED_READS", "Locks", "ReadGate", "ServiceError", "Timings", "forget"]

log = logging.getLogger("lifelongrec.serving")

#: The service's counters (``/health``, ``/metrics``), all zero at start.
COUNTERS = (
    "events_ingested",
    "events_duplicate",
    "challengers",
    "promotions",
    "learner_errors",
    "learner_restarts",
    "challengers_dropped",
    "versions_scrubbed",
    "users_evicted",
    "users_restored",
    "impressions_logged",
    "impressions_dropped",
    "impression_flush_errors",
    "bus_published",
    "bus_publish_errors",
    "bus_events_in",
    "ingest_read_waits",
    "ingest_read_wait_seconds",
)

#: Path prefixes of the GET requests ingestion gives way to (:class:`ReadGate`): the
#: serving reads (recommendations, similar items, a user's or an item's details).
GATED_READS = ("/users/", "/items/")


class ServiceError(LifelongrecError, RuntimeError):
    """The service cannot do what was asked in its current state (e.g. a home folder
    without a champion and no data to train one)."""


class Locks:
    """The service's locks (see the module docstring for their order)."""

    def __init__(self, read_wait: float = 0.02) -> None:
        self.swap = threading.RLock()
        self.erase = threading.RLock()
        self.ingest = threading.Lock()
        self.model = threading.RLock()
        self.reads = ReadGate(read_wait)  # not a lock: ingestion's courtesy to reads


#: Whether the current context is a serving read (:meth:`ReadGate.reading`).
_IN_READ: contextvars.ContextVar[bool] = contextvars.ContextVar("in_read", default=False)


class ReadGate:
    """The serving reads in flight (:data:`GATED_READS`), which ingestion gives way to.

    Under one interpreter lock a request that runs beside ingestion gets the lock in
    turns and runs at half speed or worse, and a batch of events costs milliseconds of
    it. So between its steps (before the store write, before each part the live model
    observes) ingestion waits until no read is in flight, at most ``max_wait`` seconds
    a step: a request that arrives during a step waits for that step only, and writes
    are never starved (they lose at most ``max_wait`` a step while reads never pause).
    ``max_wait=0`` turns the gate off."""

    def __init__(self, max_wait: float = 0.02) -> None:
        self.max_wait = float(max_wait)
        self._active = 0
        self._idle = threading.Condition(threading.Lock())

    def enter(self) -> None:
        """A read begins (:meth:`reading` marks its context too)."""
        with self._idle:
            self._active += 1

    def exit(self) -> None:
        """A read ends (every :meth:`enter` is paired with one)."""
        with self._idle:
            self._active -= 1
            if self._active == 0:
                self._idle.notify_all()

    @property
    def active(self) -> int:
        """Reads in flight now."""
        return self._active

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """A read in flight for the duration, its context marked as one (the app wraps
        every serving GET in it)."""
        self.enter()
        token = _IN_READ.set(True)
        try:
            yield
        finally:
            _IN_READ.reset(token)
            self.exit()

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """While a read waits for what ingestion holds (the ingestion lock, to restore
        an evicted user), it does not count: ingestion, which may be waiting for the
        reads in flight, would otherwise wait its longest for this one at every step.
        Outside a read (:meth:`reading`) nothing changes."""
        if not _IN_READ.get():
            yield
            return
        self.exit()
        token = _IN_READ.set(False)  # a nested aside steps aside once
        try:
            yield
        finally:
            _IN_READ.reset(token)
            self.enter()

    def give_way(self) -> float:
        """Wait until no read is in flight, at most ``max_wait`` seconds; the seconds
        waited (0.0 at once when none is in flight or the gate is off)."""
        if self._active == 0 or self.max_wait <= 0:
            return 0.0
        t0 = time.perf_counter()
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, self.max_wait)
        return time.perf_counter() - t0


class Timings(dict[str, tuple[float, float]]):
    """Phase -> (last, longest) duration in seconds, for ``/health``."""

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Time a phase: its last and its longest duration (logged above 1 s)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - t0
            _, longest = self.get(phase, (0.0, 0.0))
            self[phase] = (took, max(longest, took))
            if took > 1.0:
                log.info("learner %s took %.2f s", phase, took)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {k: {"last": round(v[0], 4), "max": round(v[1], 4)} for k, v in self.items()}


def forget(model: Recommender, user_id: str) -> bool:
    """Remove one user from a model; whether it held them."""
    if int(model.user_rows([user_id])[0]) < 0:
        return False
    return bool(model.forget_users([user_id]))
