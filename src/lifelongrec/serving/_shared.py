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
import logging
import threading
import time
from collections.abc import Iterator

from lifelongrec._errors import LifelongrecError
from lifelongrec.models import Recommender

__all__ = ["COUNTERS", "Locks", "ServiceError", "Timings", "forget"]

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
)


class ServiceError(LifelongrecError, RuntimeError):
    """The service cannot do what was asked in its current state (e.g. a home folder
    without a champion and no data to train one)."""


class Locks:
    """The service's locks (see the module docstring for their order)."""

    def __init__(self) -> None:
        self.swap = threading.RLock()
        self.erase = threading.RLock()
        self.ingest = threading.Lock()
        self.model = threading.RLock()


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
