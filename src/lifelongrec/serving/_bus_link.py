"""The service's and the learner's side of the event bus (``bus_url``).

* An API process publishes each batch it stored (:class:`~lifelongrec.serving._ingest.
  Ingestion`, after the commit) and takes in the batches the others published as soon
  as they are (:class:`BusLink`: a :class:`~lifelongrec.serving._follow.BusFollower`);
  its store follower then looks at the store every 0.25 s instead of every 20 ms
  (catalogue upserts, erasures, and anything the bus did not carry).
* The learner process reads through the consumer group ``learner``
  (:class:`LearnerFeed`), acknowledging each entry once a round has learned it; while
  the bus is unreachable it reads the store, as it does without a bus.

Neither ever waits on the bus for correctness: the store is the log of record (see
:mod:`lifelongrec.data._bus`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.data import (
    BusUnavailableError,
    EventFeed,
    EventStore,
    RedisEventBus,
    StoreFeed,
    shown_url,
)
from lifelongrec.serving._config import ServiceConfig
from lifelongrec.serving._erasure import ErasureLog
from lifelongrec.serving._follow import BusFollower

__all__ = ["LEARNER_GROUP", "BusLink", "LearnerFeed", "erased_rows_of", "shown_config"]

log = logging.getLogger("lifelongrec.serving")

#: The consumer group (and its one consumer's name) of the learner process.
LEARNER_GROUP = "learner"
#: Seconds between attempts to reach the bus again while it is down (the learner).
RETRY_SECONDS = 5.0


def shown_config(config: ServiceConfig) -> dict[str, Any]:
    """The settings as ``/health`` shows them: passwords in URLs hidden."""
    out = config.to_dict()
    for key in ("store_url", "bus_url"):
        out[key] = shown_url(out.get(key))
    return out


def erased_rows_of(erasures: ErasureLog):  # noqa: ANN201 (a filter for EventFeed)
    """``rows(frame)``: a bool per event (with ``seq``) from the bus, true where the
    user was erased after it (the store no longer has it; the bus still did)."""

    def rows(frame: pd.DataFrame) -> np.ndarray:
        erasures.refresh()
        if not erasures.generation:
            return np.zeros(len(frame), dtype=bool)
        return np.asarray(erasures.erased_rows(frame["user_id"], frame["seq"]), dtype=bool)

    return rows


class BusLink:
    """An API process on the bus: its ingestion publishes, its follower takes in."""

    def __init__(self, url: str, store: EventStore, ingestion: Any, erasures: ErasureLog) -> None:
        self.bus = RedisEventBus(url, check=False)
        ingestion.bus = self.bus
        ingestion.erased_rows = erased_rows_of(erasures)
        self.follower = BusFollower(
            lambda: EventFeed(store, self.bus, store_every=3600.0),  # the store follower looks
            ingestion.take_in,
            lambda: ingestion.cursor,
        )

    @classmethod
    def open(
        cls, config: ServiceConfig, store: EventStore, ingestion: Any, erasures: ErasureLog
    ) -> BusLink | None:
        """The link for ``config.store.bus``, or ``None`` without a bus."""
        if config.store.bus is None:
            return None
        return cls(config.store.bus, store, ingestion, erasures)

    def interval(self) -> float:
        """How long the store follower waits between looks."""
        return self.follower.interval()

    def start(self) -> None:
        self.follower.start()

    def close(self) -> None:
        self.follower.stop()
        self.bus.close()


class LearnerFeed:
    """The learner process's events: through the bus's consumer group while the bus
    answers, from the store while it does not (tried again every few seconds)."""

    def __init__(self, url: str, store: EventStore, erasures: ErasureLog) -> None:
        self.url, self.store, self.erasures = url, store, erasures
        self._store_feed = StoreFeed(store)
        self._feed: EventFeed | None = None
        self._retry_at = 0.0
        self.bus_events = 0  # events the bus brought (the rest came from the store)

    def _bus_feed(self) -> EventFeed | None:
        if self._feed is None and time.monotonic() >= self._retry_at:
            try:
                bus = RedisEventBus(self.url)
                self._feed = EventFeed(
                    self.store,
                    bus,
                    group=LEARNER_GROUP,
                    consumer=LEARNER_GROUP,
                    drop=erased_rows_of(self.erasures),
                )
                log.info("the learner reads through the event bus %s", bus.shown)
            except BusUnavailableError as exc:
                self._down(exc)
        return self._feed

    def _down(self, exc: Exception) -> None:
        if self._feed is not None or self._retry_at == 0.0:
            log.warning("the learner reads the store; the event bus is unavailable: %s", exc)
        if self._feed is not None:
            self._feed.bus.close()
        self._feed = None
        self._retry_at = time.monotonic() + RETRY_SECONDS

    def read(self, after_seq: int, limit: int = 5_000) -> tuple[pd.DataFrame, int]:
        feed = self._bus_feed()
        if feed is not None:
            try:
                before = feed.bus_events
                out = feed.read(after_seq=after_seq, limit=limit, block_ms=0)
                self.bus_events += feed.bus_events - before
                return out
            except BusUnavailableError as exc:
                self._down(exc)
        return self._store_feed.read(after_seq=after_seq, limit=limit)

    def done(self, upto_seq: int) -> int:
        if self._feed is None:
            return 0
        try:
            return self._feed.done(upto_seq)
        except BusUnavailableError as exc:
            self._down(exc)
            return 0
