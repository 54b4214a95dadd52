"""The catalogue: item upserts stored durably, then published to the live model.

:meth:`Catalogue.upsert_items` writes the items to the store before anything else, then
queues them for publishing. Publishing (:meth:`Catalogue.publish`) batches the upserts
waiting together: whoever holds the publishing lock takes every pending upsert, encodes
their text in one batch outside the model locks (``prepare_items``), then installs them
under the locks (``add_items`` finds the encodings cached). The catalogue's own thread
publishes in the background; with ``background=False`` a waiting upsert (or the next
``learn_step``) publishes. Published items are queued for the learner's trainer too
(:meth:`Catalogue.take_published`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lifelongrec._errors import DataError
from lifelongrec._params import check_bool
from lifelongrec.data import EventStore, make_items
from lifelongrec.serving._capabilities import discard_online_material
from lifelongrec.serving._config import LimitSettings
from lifelongrec.serving._details import ItemDetails
from lifelongrec.serving._live import LiveSlot
from lifelongrec.serving._shared import Locks, Timings

__all__ = ["Catalogue", "item_record"]

log = logging.getLogger("lifelongrec.serving")


def item_record(item: Mapping[str, Any]) -> tuple[str, str | None, list[str], dict[str, Any]]:
    """One catalogue entry, checked field by field: ``(item_id, title, categories,
    attributes)``."""
    if not isinstance(item, Mapping):
        raise DataError(
            "an item must be a mapping",
            value=type(item).__name__,
            expected="a dict with item_id, title, categories, attributes",
        )
    item_id = item.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise DataError(
            "missing or empty item id",
            column="item_id",
            value=item_id,
            expected="a non-empty string",
        )
    title = item.get("title")
    if title is not None and not isinstance(title, str):
        raise DataError(
            "title is not text", column="title", value=title, expected="a string or null"
        )
    cats = item.get("categories") or []
    if (
        isinstance(cats, str)
        or not isinstance(cats, Sequence)
        or not all(isinstance(c, str) and c for c in cats)
    ):
        raise DataError(
            "categories are not a list of names",
            column="categories",
            value=cats,
            expected="a list of non-empty strings",
        )
    attrs = item.get("attributes") or {}
    if not isinstance(attrs, Mapping) or not all(isinstance(k, str) for k in attrs):
        raise DataError(
            "attributes are not a mapping",
            column="attributes",
            value=attrs,
            expected="an object of name -> value",
        )
    return item_id, title, list(cats), dict(attrs)


def recategorise(categories: dict[str, set[str]], item_id: str, names: Sequence[str]) -> list[str]:
    """Put ``item_id`` in exactly the categories ``names`` (an upsert may change them);
    returns the categories it left or joined."""
    wanted = {str(c) for c in names}
    changed = []
    for c, members in categories.items():
        if c not in wanted and item_id in members:
            members.discard(item_id)
            changed.append(c)
    for c in wanted:
        members = categories.setdefault(c, set())
        if item_id not in members:
            members.add(item_id)
            changed.append(c)
    return changed


class Catalogue:
    """Catalogue upserts: durable, then live (see the module docstring)."""

    def __init__(
        self,
        slot: LiveSlot,
        store: EventStore,
        limits: LimitSettings,
        locks: Locks,
        timings: Timings,
        details: ItemDetails,
    ) -> None:
        self.details = details  # titles kept for answers: upserted ones are forgotten
        self.slot = slot
        self.store = store
        self.limits = limits
        self.locks = locks
        self.timings = timings
        self._mutex = threading.Lock()  # a leaf lock: the pending list
        self._leader = threading.Lock()  # one publisher at a time
        self._pending: list[dict[str, Any]] = []
        self._published: list[pd.DataFrame] = []  # for the trainer (ingest lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Catalogue revisions followed (other processes' upserts, :meth:`follow_store`),
        # and this process's own, which need no following.
        self._revision = 0
        self._own: set[int] = set()

    # ------------------------------------------------------------- requests
    def upsert_items(self, items: Sequence[Mapping[str, Any]], wait: bool = True) -> dict[str, Any]:
        """See :meth:`RecommenderService.upsert_items`."""
        if isinstance(items, (Mapping, str, bytes)) or not isinstance(items, Sequence) or not items:
            raise DataError(
                "items must be a non-empty list",
                column="items",
                value=type(items).__name__,
                expected="a list of dicts with item_id, title, categories, attributes",
            )
        max_batch = self.limits.max_batch
        if len(items) > max_batch:
            raise DataError(
                "too many items in one batch",
                column="items",
                value=len(items),
                expected=f"at most {max_batch} items per request",
            )
        records = []
        for j, item in enumerate(items):
            try:
                records.append(item_record(item))
            except DataError as exc:
                raise DataError(
                    f"{exc.problem} in item {j} (0-based position)",
                    column=exc.column,
                    value=exc.value,
                    expected=exc.expected,
                ) from None
        frame = make_items(*(list(c) for c in zip(*records, strict=True)))
        # An id given twice: the later entry is the upsert that counts (as two requests).
        frame = frame[~frame["item_id"].duplicated(keep="last")].reset_index(drop=True)
        check_bool("wait", wait)
        written = self.store.upsert_items(frame)  # durable before anything else
        self.details.forget(frame["item_id"])
        n_new, n_updated = written
        ticket = self._queue(frame, own=written.revision)
        if wait:
            if self._thread is None:
                self.publish()
            ticket["done"].wait()
            if "error" in ticket:
                raise ticket["error"]
        return {
            "n_received": len(items),
            "n_created": int(n_new),
            "n_updated": int(n_updated),
            "live": ticket["done"].is_set() and "error" not in ticket,
        }

    def _queue(self, frame: pd.DataFrame, own: int | None = None) -> dict[str, Any]:
        ticket: dict[str, Any] = {"frame": frame, "done": threading.Event()}
        with self._mutex:
            if own is not None:
                self._own.add(own)
            self._pending.append(ticket)
        self._wake.set()
        return ticket

    def follow_from(self, revision: int) -> None:
        """The live model holds the catalogue as of ``revision`` (read before the
        catalogue it was given): :meth:`follow_store` goes on from there."""
        self._revision = int(revision)

    def follow_store(self, limit: int = 20_000) -> int:
        """Queue for publishing the items other processes (API replicas on the same
        store) upserted since the last call; returns how many. Cheap when there are
        none (one look at the store's newest revision)."""
        if self.store.item_revision <= self._revision:
            return 0
        frame, reached = self.store.items_since(self._revision, limit, with_revision=True)
        with self._mutex:
            own = self._own
            theirs = ~frame["revision"].isin(own).to_numpy()
            self._own = {r for r in own if r > reached}
        self._revision = reached
        frame = frame.loc[theirs].drop(columns="revision").reset_index(drop=True)
        if len(frame):
            self.details.forget(frame["item_id"])
            self._queue(frame)
        return len(frame)

    # ----------------------------------------------------------- publishing
    @property
    def pending(self) -> bool:
        """Whether upserts wait to be published."""
        return bool(self._pending)

    @property
    def threaded(self) -> bool:
        """Whether the catalogue thread was started (it publishes; the learner must
        not)."""
        return self._thread is not None

    def publish(self) -> None:
        """Make stored catalogue upserts live, batching the requests that wait together
        (see the module docstring). A request that waits for the lock usually finds its
        items published by the batch before."""
        with self._leader:
            while True:
                with self._mutex:
                    batch, self._pending = self._pending, []
                if not batch:
                    return
                frame = pd.concat([t["frame"] for t in batch], ignore_index=True)
                frame = frame[~frame["item_id"].duplicated(keep="last")].reset_index(drop=True)
                try:
                    with self.timings.timed("items-publish"):
                        self._install(frame)
                except Exception as exc:  # each waiting request answers with it
                    log.exception("publishing %d catalogue item(s) failed", len(frame))
                    for t in batch:
                        t["error"] = exc
                finally:
                    for t in batch:
                        t["done"].set()

    def _install(self, frame: pd.DataFrame) -> None:
        ids = [str(i) for i in frame["item_id"]]
        self.slot.current.model.prepare_items(frame)  # the text encoder, outside every lock
        with self.locks.ingest:
            live = self.slot.current
            with self.locks.model:
                live.model.add_items(frame)
                discard_online_material(live.model)
                if live.index is not None:
                    live.index.upsert(*live.model.item_vectors(ids))
                live.item_set.update(ids)
                for item_id, cats in zip(ids, frame["categories"], strict=True):
                    for c in recategorise(live.categories, item_id, cats):
                        live.masks.pop(c, None)
            self._published.append(frame)
            self.slot.add_fresh(ids)

    def take_published(self) -> list[pd.DataFrame]:
        """The item frames made live since the last call (the trainer adds them)."""
        if not self._published:
            return []
        with self.locks.ingest:
            queued, self._published = self._published, []
        return queued

    # --------------------------------------------------------------- thread
    def start(self) -> None:
        """Start the catalogue thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="catalogue", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop the catalogue thread (upserts still pending stay stored, not live)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(0.5):
                self._wake.clear()
                try:
                    self.publish()
                except Exception:  # noqa: BLE001 - each waiting request got the error
                    log.exception("publishing catalogue items failed")
