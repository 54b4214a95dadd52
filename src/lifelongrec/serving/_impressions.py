"""Impressions: every answer's items, logged to the store off the request path.

A recommendation request only appends its rows to an in-memory buffer (a list append
under a leaf lock); the impression thread writes the buffer to the store in one
transaction every ``impression_flush_seconds`` (and at once when it holds
``impression_flush_rows``), and :meth:`ImpressionLog.close` writes what is left. So a
crash of the process loses the impressions of the last flush interval (and of a flush in
progress) while the store keeps up, and the whole backlog when answers come faster than
impressions are stored (``benchmarks/impression_crash.py`` measures both); an
acknowledged *event* is never lost, it is written before its reply. The flush commits without an fsync of its own (see
:meth:`~lifelongrec.data.EventStore.append_impression_rows`): a power loss may also take
back impressions stored since the last durable event write or checkpoint. When the store cannot keep up and the buffer holds ``impression_buffer`` rows,
further impressions are not buffered but counted (``impressions_dropped``) rather than
letting memory grow: recommendations never wait for the impression log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from lifelongrec.data import EventStore
from lifelongrec.serving._config import FeedbackSettings

__all__ = ["ImpressionLog"]

log = logging.getLogger("lifelongrec.serving")


class ImpressionLog:
    """The buffer of impressions not yet stored, and the thread that stores them."""

    def __init__(
        self, store: EventStore, settings: FeedbackSettings, counters: dict[str, float]
    ) -> None:
        self.store = store
        self.settings = settings
        self.counters = counters
        self._rows: list[tuple] = []
        self._mutex = threading.Lock()  # a leaf lock: the buffer only
        self._flushing = threading.Lock()  # one flush at a time, in row order
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(
        self,
        request_id: str,
        user_id: str,
        items: list[dict[str, Any]],
        model_version: str | Sequence[str],
        arm: str | None | Sequence[str | None],
        timestamp: int,
    ) -> None:
        """Buffer one answer's items (ranks 1, 2, ...); nothing when logging is off.
        ``model_version`` and ``arm`` are the answer's, or one per item (an interleaved
        answer: the ranker that contributed each item)."""
        if not self.settings.log_impressions or not items:
            return
        n = len(items)
        versions = [model_version] * n if isinstance(model_version, str) else model_version
        arms = [arm] * n if arm is None or isinstance(arm, str) else arm
        rows = [
            (request_id, user_id, str(it["item_id"]), r, float(it["score"]), v, a)
            + (int(timestamp),)
            for r, (it, v, a) in enumerate(zip(items, versions, arms, strict=True), start=1)
        ]
        with self._mutex:
            if len(self._rows) + len(rows) > self.settings.buffer:
                self.counters["impressions_dropped"] += len(rows)
                return
            self._rows.extend(rows)
            full = len(self._rows) >= self.settings.flush_rows
        if full:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Impressions buffered, not stored yet."""
        with self._mutex:
            return len(self._rows)

    def flush(self) -> int:
        """Store every buffered impression now (one transaction); returns how many were
        new. A failed write puts the rows back in front of the buffer (the next flush
        retries; a retry stores nothing twice) and is counted and logged."""
        with self._flushing:
            with self._mutex:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            try:  # rows built here, in the store's column order and types
                n = self.store.append_impression_rows(rows)
            except Exception:
                with self._mutex:
                    self._rows[:0] = rows
                self.counters["impression_flush_errors"] += 1
                raise
            self.counters["impressions_logged"] += n
            return n

    def start(self) -> None:
        """Start the impression thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="impressions", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30) -> None:
        """Stop the thread and store what is buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - closing: logged, the store may be gone
            log.exception("the last impressions could not be stored")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - counted in flush; the next round retries
                log.exception("storing impressions failed (they stay buffered)")
