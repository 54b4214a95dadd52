"""The store follower: what other processes on the same home folder wrote, taken in.

Several API processes (replicas) may serve one home folder: each writes the events it
accepts to the shared store and updates its own live model at once, and its
:class:`StoreFollower` thread takes in, every :data:`FOLLOW_STORE_SECONDS`, what the
others wrote since (:meth:`RecommenderService.follow_store`: their events, catalogue
upserts and erasures), so that any replica answers any user with their latest event.
With one process there is nothing to take in and a look costs one query of the store's
newest position.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from lifelongrec.data import BusUnavailableError, StoreUnavailableError

__all__ = [
    "FOLLOW_STORE_SECONDS",
    "FOLLOW_STORE_WITH_BUS_SECONDS",
    "BusFollower",
    "StoreFollower",
]

log = logging.getLogger("lifelongrec.serving")

FOLLOW_STORE_SECONDS = 0.02


class _Follower:
    """A daemon thread running :meth:`_loop` until :meth:`stop`."""

    name = "follower"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:  # pragma: no cover - every follower has its own
        raise NotImplementedError


class StoreFollower(_Follower):
    """A thread that calls ``follow`` every :data:`FOLLOW_STORE_SECONDS` (errors are
    logged; it goes on); ``interval()``, when given, says how long to wait instead (a
    process whose bus brings the others' events looks at the store less often)."""

    name = "store-follower"

    def __init__(
        self, follow: Callable[[], object], interval: Callable[[], float] | None = None
    ) -> None:
        super().__init__()
        self._follow = follow
        self._interval = interval or (lambda: FOLLOW_STORE_SECONDS)

    def _loop(self) -> None:
        down = False  # the store was unreachable at the last look
        while not self._stop.wait(self._interval()):
            try:
                self._follow()
            except StoreUnavailableError as exc:  # said once per outage, not 50 times a second
                if not down:
                    log.warning("following the store paused: %s", exc)
                down = True
                continue
            except Exception:  # keep following; the error is logged
                log.exception("following the store failed")
            if down:
                log.warning("following the store again")
                down = False


#: How often a process with a working bus still looks at the store (catalogue upserts,
#: erasures, and any event the bus did not carry).
FOLLOW_STORE_WITH_BUS_SECONDS = 0.25


class BusFollower(_Follower):
    """A thread that takes in the events other processes published on the bus, as soon
    as they are published: ``read(after_seq)`` gives ``(events, upto)`` (an
    :class:`~lifelongrec.data.EventFeed` on the bus, made by ``open_feed``, again after
    an outage), ``take_in(events, upto)`` observes them, ``cursor()`` is where the
    process stands. While the bus is unreachable, :attr:`healthy` is false (the store
    follower then looks every :data:`FOLLOW_STORE_SECONDS` again) and the thread tries
    again every second."""

    name = "bus-follower"

    def __init__(
        self,
        open_feed: Callable[[], Any],
        take_in: Callable[[Any, int], object],
        cursor: Callable[[], int],
    ) -> None:
        super().__init__()
        self._open_feed, self._take_in, self._cursor = open_feed, take_in, cursor
        self.healthy = False

    def interval(self) -> float:
        """The store follower's wait: longer while the bus works."""
        return FOLLOW_STORE_WITH_BUS_SECONDS if self.healthy else FOLLOW_STORE_SECONDS

    def _loop(self) -> None:
        feed, down = None, False
        while not self._stop.is_set():
            try:
                if feed is None:
                    feed = self._open_feed()  # from the stream's newest entry on
                after = self._cursor()
                events, upto = feed.read(after_seq=after, block_ms=500)
                if down:
                    log.warning("following the event bus again")
                self.healthy, down = True, False
                if upto > after:
                    self._take_in(events, upto)
                feed.done(upto)
            except (BusUnavailableError, StoreUnavailableError) as exc:
                if not down:  # said once per outage
                    log.warning("following the event bus paused: %s", exc)
                self.healthy, down, feed = False, True, None
                self._stop.wait(1.0)
            except Exception:  # keep following; the error is logged
                log.exception("following the event bus failed")
                self._stop.wait(0.1)
