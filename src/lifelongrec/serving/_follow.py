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

from lifelongrec.data import StoreUnavailableError

__all__ = ["FOLLOW_STORE_SECONDS", "StoreFollower"]

log = logging.getLogger("lifelongrec.serving")

FOLLOW_STORE_SECONDS = 0.02


class StoreFollower:
    """A thread that calls ``follow`` every :data:`FOLLOW_STORE_SECONDS` (errors are
    logged; it goes on)."""

    def __init__(self, follow: Callable[[], object]) -> None:
        self._follow = follow
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
        self._thread = threading.Thread(target=self._loop, name="store-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        down = False  # the store was unreachable at the last look
        while not self._stop.wait(FOLLOW_STORE_SECONDS):
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
