"""The event bus: stored events carried from the API processes that wrote them to the
other API processes and to the learner, at once, without polling the store.

Redis Streams is the bus (``benchmarks/bus.py`` measured it against NATS JetStream:
``docs/benchmarks.md``, "Event bus"). An API process publishes every batch it stored,
after the store's commit, as one stream entry holding the events and their ``seq``
numbers; readers take entries either all of them (:meth:`RedisEventBus.tail`, each API
process) or through a consumer group with acknowledgements (:meth:`RedisEventBus.take`
and :meth:`RedisEventBus.ack`, the learner: at-least-once; an entry is acknowledged
once the learner has learned its events, and one a learner took but did not acknowledge
is delivered again to the next).

**The store stays the log of record.** The bus is a fast path, never the only one: a
reader keeps its position as a ``seq`` (not a stream id), takes from an entry only the
events after it, and reads the store whenever an entry does not continue where it is
(an entry lost because the bus restarted without persistence, a publish that failed
after the commit, two writers publishing out of order, the stream trimmed): see
:class:`EventFeed`. So a bus that loses everything loses no event, and an entry
delivered twice is not learned twice.

The bus's location is a URL: ``redis://host:port/db?stream=name`` (``stream`` is the
stream's key, ``lifelongrec:events`` when absent; every other part is redis-py's).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import LifelongrecError, ParameterError
from lifelongrec.data._schema import EVENT_COLUMNS, make_events
from lifelongrec.data._store_pg import pop_query, shown_url
from lifelongrec.data._store_rows import _events_frame

__all__ = [
    "BusUnavailableError",
    "Entry",
    "EventFeed",
    "RedisEventBus",
    "StoreFeed",
    "is_bus_url",
]

_DEFAULT_STREAM = "lifelongrec:events"
#: Entries the stream keeps (about; Redis trims whole nodes): the bus is a fast path,
#: readers that fall further behind read the store.
MAX_ENTRIES = 5_000


class BusUnavailableError(LifelongrecError, ConnectionError):
    """The bus's server could not be reached, or the connection broke in a call."""


def is_bus_url(location: Any) -> bool:
    """Whether ``location`` names a Redis bus (``redis://`` or ``rediss://``)."""
    return isinstance(location, str) and location.split("://", 1)[0] in ("redis", "rediss")


def _encode(frame: pd.DataFrame, seqs: np.ndarray) -> dict[str, Any]:
    values = frame["value"].to_numpy(dtype=float)
    body = {
        "user_id": frame["user_id"].astype(str).tolist(),
        "item_id": frame["item_id"].astype(str).tolist(),
        "timestamp": frame["timestamp"].astype(np.int64).tolist(),
        "event_type": frame["event_type"].astype(str).tolist(),
        "value": [None if np.isnan(v) else float(v) for v in values],
        "seq": [int(s) for s in seqs],
    }
    return {"first": int(seqs[0]), "last": int(seqs[-1]), "events": json.dumps(body)}


def _decode(fields: dict[bytes, bytes]) -> pd.DataFrame:
    body = json.loads(fields[b"events"])
    frame = make_events(
        body["user_id"],
        body["item_id"],
        np.asarray(body["timestamp"], dtype=np.int64),
        body["event_type"],
        [np.nan if v is None else v for v in body["value"]],
    )
    frame["seq"] = np.asarray(body["seq"], dtype=np.int64)
    return frame


class Entry:
    """One stream entry: its id, the first and last ``seq`` it holds (its events' seqs
    run from one to the other: one append's rows), and its events, decoded when first
    asked for (a reader already past ``last`` never decodes them)."""

    __slots__ = ("_frame", "fields", "first", "id", "last")

    def __init__(self, mid: Any, fields: dict[bytes, bytes]) -> None:
        self.id = _id(mid)
        self.fields = fields
        self.first, self.last = int(fields[b"first"]), int(fields[b"last"])
        self._frame: pd.DataFrame | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The events, with ``seq``."""
        if self._frame is None:
            self._frame = _decode(self.fields)
        return self._frame

    def __repr__(self) -> str:
        return f"Entry({self.id!r}, seqs {self.first}..{self.last})"


class RedisEventBus:
    """Stored events on a Redis stream (see the module).

    Parameters
    ----------
    url
        ``redis://[user:password@]host:port/db[?stream=key]``.
    check
        Ping the server now (``False``: the first call finds out).

    Raises
    ------
    ParameterError
        ``url`` is not a ``redis://`` URL.
    BusUnavailableError
        The server cannot be reached.
    """

    def __init__(self, url: str, *, check: bool = True) -> None:
        if not is_bus_url(url):
            raise ParameterError("url", url, "a redis:// URL")
        import redis

        self._url, stream = pop_query(url, "stream")
        self.stream = stream or _DEFAULT_STREAM
        self.shown = shown_url(url)
        self._redis = redis
        self._client = redis.Redis.from_url(
            self._url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=10
        )
        if check:
            self.ping()

    def __repr__(self) -> str:
        return f"RedisEventBus({self.shown!r})"

    def _unavailable(self, exc: Exception) -> BusUnavailableError:
        return BusUnavailableError(f"the event bus {self.shown} is unavailable ({exc})")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, method)(*args, **kwargs)
        except (self._redis.ConnectionError, self._redis.TimeoutError, OSError) as exc:
            raise self._unavailable(exc) from None

    def ping(self) -> None:
        """Raise :class:`BusUnavailableError` unless the server answers."""
        self._call("ping")

    # ------------------------------------------------------------------ writers
    def publish(self, frame: pd.DataFrame, seqs: Sequence[int] | np.ndarray) -> str:
        """Publish stored events (``EVENT_COLUMNS``, one ``seq`` per row, ascending) as
        one entry; returns its stream id. Call it after the store's commit."""
        seqs = np.asarray(seqs, dtype=np.int64)
        if len(seqs) == 0:
            raise ParameterError("seqs", "empty", "one seq per published event")
        entry = _encode(frame, seqs)
        out = self._call("xadd", self.stream, entry, maxlen=MAX_ENTRIES, approximate=True)
        return out.decode() if isinstance(out, bytes) else str(out)

    # ------------------------------------------------------------------ readers
    def last_id(self) -> str:
        """The stream's newest entry id (``0-0`` when empty): where a reader that wants
        only what comes next starts."""
        info = self._call("xinfo_stream", self.stream) if self._exists() else None
        if not info:
            return "0-0"
        last = info.get("last-generated-id", b"0-0")
        return last.decode() if isinstance(last, bytes) else str(last)

    def _exists(self) -> bool:
        return bool(self._call("exists", self.stream))

    def tail(self, after_id: str, block_ms: int = 1000, count: int = 100) -> list[Entry]:
        """Entries after the stream id ``after_id`` (waiting up to ``block_ms`` for the
        first; 0: not at all), oldest first."""
        out = self._call("xread", {self.stream: after_id}, count=count, block=block_ms or None)
        return [Entry(mid, f) for _, entries in (out or []) for mid, f in entries]

    def join(self, group: str) -> None:
        """Create the consumer group ``group`` unless it exists (it reads what is
        published from then on; a reader catches up on older events from the store);
        the stream is made if absent."""
        try:
            self._call("xgroup_create", self.stream, group, id="$", mkstream=True)
        except self._redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def take(
        self,
        group: str,
        consumer: str,
        block_ms: int = 100,
        count: int = 64,
        *,
        pending: bool = False,
    ) -> list[Entry]:
        """New entries for ``consumer`` of ``group`` (waiting up to ``block_ms``);
        ``pending``: first those delivered to it before and not acknowledged (a
        restarted consumer of the same name). The group is made again when the stream
        lost it (a bus that restarted without persistence)."""
        try:
            entries = []
            if pending:
                got = self._call("xreadgroup", group, consumer, {self.stream: "0"}, count=count)
                entries = [e for _, es in (got or []) for e in es if e[1]]
            if not entries:
                out = self._call(
                    "xreadgroup",
                    group,
                    consumer,
                    {self.stream: ">"},
                    count=count,
                    block=block_ms or None,  # 0 would be Redis's "forever"
                )
                entries = [e for _, es in (out or []) for e in es]
        except self._redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.join(group)
            return []
        return [Entry(mid, f) for mid, f in entries]

    def ack(self, group: str, ids: Sequence[str]) -> int:
        """Acknowledge entries of ``group``: they are not delivered again."""
        if not ids:
            return 0
        return int(self._call("xack", self.stream, group, *ids))

    def pending(self, group: str) -> int:
        """Entries delivered to ``group`` and not acknowledged yet."""
        try:
            return int(self._call("xpending", self.stream, group)["pending"])
        except self._redis.ResponseError:
            return 0

    def drop(self) -> None:
        """Delete the stream (its entries and groups): for tests and tear-down."""
        self._call("delete", self.stream)

    def close(self) -> None:
        self._client.close()


def _id(mid: Any) -> str:
    return mid.decode() if isinstance(mid, bytes) else str(mid)


class EventFeed:
    """Stored events after a cursor, from the bus where its entries continue the cursor
    and from the store where they do not (see the module): what a reader takes is every
    stored event after its cursor, in ``seq`` order, each once.

    Parameters
    ----------
    store, bus
        The event store (the log of record) and the bus.
    group
        ``None``: every entry (an API process following the others); else the consumer
        group's share, acknowledged by :meth:`done` once the events are learned.
    consumer
        The consumer's name in ``group`` (default: the group's name; one learner per
        home under a fixed name lets a restarted one take its predecessor's
        unacknowledged entries).
    drop
        ``drop(frame)`` -> a bool per row to leave out of what the bus gave (events of
        users erased since the entry was published: the store no longer has them), or
        ``None``.
    store_every
        Seconds between looks at the store while the bus brings nothing (a publish
        that failed after its commit is found this way).
    """

    def __init__(
        self,
        store: Any,
        bus: RedisEventBus,
        group: str | None = None,
        consumer: str | None = None,
        drop: Callable[[pd.DataFrame], Any] | None = None,
        store_every: float = 0.5,
    ) -> None:
        self.store, self.bus, self.group, self.drop = store, bus, group, drop
        self.consumer = consumer or group or ""
        self.store_every = float(store_every)
        self._after_id = bus.last_id() if group is None else ""
        self._recover = group is not None  # first take: entries left unacknowledged
        self._held: list[Entry] = []  # taken, not yet given out
        self._given: list[tuple[str, int]] = []  # (entry id, last seq) given, not acked
        self._looked = -math.inf  # the first quiet read looks at the store
        self.store_reads = 0  # how often the store filled a gap
        self.bus_events = 0  # events taken from the bus's entries
        if group is not None:
            bus.join(group)

    def _take(self, block_ms: int) -> None:
        if self.group is None:
            got = self.bus.tail(self._after_id, block_ms=block_ms)
            if got:
                self._after_id = got[-1].id
        else:
            got = self.bus.take(self.group, self.consumer, block_ms=block_ms, pending=self._recover)
            self._recover = False
        self._held.extend(got)

    def read(
        self, after_seq: int, limit: int = 5_000, block_ms: int = 100
    ) -> tuple[pd.DataFrame, int]:
        """``(events, upto)``: the events after ``after_seq`` up to position ``upto``
        (at most about ``limit`` of them, with ``seq``), each stored event in that range
        once (but those ``drop`` leaves out); a reader's next cursor is ``upto``."""
        if not self._held:
            self._take(block_ms)
        parts: list[pd.DataFrame] = []
        cursor, n = after_seq, 0
        while self._held and n < limit:
            entry = self._held[0]
            if entry.first > cursor + 1 and entry.last > cursor:
                break  # a gap before this entry: the store fills it (below)
            self._held.pop(0)
            self._given.append((entry.id, entry.last))
            if entry.last <= cursor:
                continue  # nothing new in it (not even decoded)
            frame = entry.frame
            fresh = frame[frame["seq"].to_numpy() > cursor]
            if self.drop is not None:
                fresh = fresh[~np.asarray(self.drop(fresh), dtype=bool)]
            cursor = entry.last
            parts.append(fresh)
            n += len(fresh)
        self.bus_events += n
        now = time.monotonic()
        quiet = not parts and now - self._looked >= self.store_every
        if self._held or quiet:
            # An entry that does not continue the cursor, or a quiet bus: the store is
            # read (it has everything, in order, without what was erased).
            self._looked = now
            room = max(limit - n, 1)
            stored = self.store.read(after_seq=cursor, limit=room)
            if len(stored):
                self.store_reads += 1
                parts.append(stored)
                cursor = int(stored["seq"].iloc[-1])
            if len(stored) >= room:
                self._looked = -math.inf  # a full page: more to read, at the next call
            keep = []
            for entry in self._held:  # entries the store read covered are done
                if entry.last <= cursor:
                    self._given.append((entry.id, entry.last))
                else:
                    keep.append(entry)
            self._held = keep
        if not parts:
            return _events_frame([]), after_seq
        out = pd.concat(parts, ignore_index=True)
        return out[[*EVENT_COLUMNS, "seq"]].reset_index(drop=True), cursor

    def done(self, upto_seq: int) -> int:
        """The events up to ``upto_seq`` are learned: acknowledge the group's entries
        that hold nothing after it. Returns how many were acknowledged."""
        ids = [mid for mid, last in self._given if last <= upto_seq]
        self._given = [(m, last) for m, last in self._given if last > upto_seq]
        if self.group is None or not ids:
            return 0
        return self.bus.ack(self.group, ids)


class StoreFeed:
    """:class:`EventFeed`'s interface on the store alone (no bus): what it reads is the
    store's events after the cursor; nothing to acknowledge."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def read(
        self, after_seq: int, limit: int = 5_000, block_ms: int = 0
    ) -> tuple[pd.DataFrame, int]:
        batch = self.store.read(after_seq=after_seq, limit=limit)
        return batch, int(batch["seq"].iloc[-1]) if len(batch) else after_seq

    def done(self, upto_seq: int) -> int:
        return 0
