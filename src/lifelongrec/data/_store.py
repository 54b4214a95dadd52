"""The embedded event store: one SQLite file holds the event log and the item catalogue.

A service's home folder keeps its events here (``HOME/events.sqlite``). The store is
built for the service's needs:

* **durable appends**: :meth:`EventStore.append` returns only after its transaction is
  committed and fsynced (SQLite in WAL mode with ``synchronous=FULL``), so an event the
  service acknowledged survives a crash or a ``kill -9`` of the process;
* **idempotency**: an event may carry an ``event_id``; an id already stored is not
  written again, so a client may retry a request whose reply it did not get;
* **a cursor**: every stored event gets a monotonically increasing integer ``seq``
  (never reused, even after deletions); a learner reads "everything after the last
  ``seq`` I saw" with :meth:`EventStore.read`;
* **erasure**: :meth:`EventStore.delete_user` erases a user's events and their event
  ids (the freed bytes are overwritten);
* **a catalogue**: :meth:`EventStore.upsert_items` inserts or replaces items; lists and
  dicts are stored as JSON and come back equal.

SQLite was chosen over DuckDB by measurement: ``benchmarks/store.py`` runs both, and
``docs/benchmarks.md`` ("Event store: SQLite vs DuckDB") has the figures and the reasons.

Thread safety: one store object may be shared by many threads. Writes (append, delete,
upsert) are serialised on one connection under a lock; reads use a pool of read
connections and run beside a write (WAL readers see the last committed state). One
process at a time should open a store; a store left by a killed process opens normally
(SQLite recovers from its write-ahead log).

The catalogue's methods are :class:`~lifelongrec.data._store_items.CatalogueMixin`; the
checks of what goes in and the frames of what comes out are in
:mod:`~lifelongrec.data._store_rows` and :mod:`~lifelongrec.data._store_items`. Every
name this module had is still importable from it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, LifelongrecError, ParameterError
from lifelongrec._params import check_int
from lifelongrec.data._schema import EVENT_COLUMNS, Dataset
from lifelongrec.data._store_impressions import IMPRESSIONS_SCHEMA, ImpressionsMixin
from lifelongrec.data._store_items import ITEM_REVISIONS_SCHEMA, CatalogueMixin, _items_frame
from lifelongrec.data._store_items import _item_rows as _item_rows
from lifelongrec.data._store_items import _item_values as _item_values
from lifelongrec.data._store_items import _json_value as _json_value
from lifelongrec.data._store_rows import (
    _CHUNK,
    _count,
    _event_columns,
    _event_ids,
    _events_frame,
    _id_argument,
    _lookup,
)
from lifelongrec.data._store_rows import _INT64_MAX as _INT64_MAX
from lifelongrec.data._store_rows import _INT64_MIN as _INT64_MIN
from lifelongrec.data._store_rows import _bad as _bad
from lifelongrec.data._store_rows import _exact_columns as _exact_columns
from lifelongrec.data._store_rows import _strings as _strings
from lifelongrec.data._store_rows import _timestamps as _timestamps
from lifelongrec.data._store_rows import _values as _values

__all__ = ["AppendResult", "EventStore", "StoreClosedError"]

_APPLICATION_ID = 0x4C4C5253  # "LLRS": marks a SQLite file as a lifelongrec event store
_SCHEMA_VERSION = 3  # 2: impressions and the request ids of events; 3: items' revisions
_SCHEMA = (
    """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    value REAL,
    event_id TEXT
);
CREATE INDEX events_user_time ON events (user_id, timestamp);
CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
CREATE TABLE items (
    pos INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    title TEXT,
    categories TEXT NOT NULL,
    attributes TEXT NOT NULL
);
"""
    + IMPRESSIONS_SCHEMA
    + ITEM_REVISIONS_SCHEMA
)
_EVENT_SELECT = "SELECT user_id, item_id, timestamp, event_type, value, seq FROM events"


class StoreClosedError(LifelongrecError, ValueError):
    """An :class:`EventStore` was used after :meth:`EventStore.close`.

    A ``ValueError``, as Python's own "I/O operation on closed file" is.
    """


@dataclass(frozen=True)
class AppendResult:
    """What :meth:`EventStore.append` did with a batch.

    Attributes
    ----------
    n_written
        Events stored by this call.
    n_duplicates
        Events not stored because their ``event_id`` was already stored, or repeated an
        earlier row of the same batch (the first row wins).
    last_seq
        The store's highest ``seq`` after the call (its value before the call when
        nothing was written).
    seqs
        ``int64`` array, one per row of the batch: the ``seq`` under which that event is
        stored; for a duplicate, the ``seq`` of the stored event it repeats. The rows
        written get consecutive values, in row order.
    """

    n_written: int
    n_duplicates: int
    last_seq: int
    seqs: np.ndarray = field(repr=False)


class EventStore(CatalogueMixin, ImpressionsMixin):
    """An embedded, durable, idempotent event log plus the item catalogue and the
    impression log (one SQLite file).

    Parameters
    ----------
    path
        The store's file, e.g. ``HOME/events.sqlite``; created when absent (its folder
        must exist). SQLite keeps two companions beside it while open (``-wal``,
        ``-shm``); they belong to the store.

    Raises
    ------
    ParameterError
        ``path`` is not a str or path, names a folder, or its folder does not exist.
    DataError
        The file exists but is not a lifelongrec event store (another SQLite database,
        or no database at all), or was written by a newer lifelongrec.

    Notes
    -----
    Events are rows of :data:`~lifelongrec.data.EVENT_COLUMNS` plus ``seq``, the
    store's order of arrival (1, 2, 3, ...; a number is never reused, deletions leave
    gaps). Use it as a cursor: ``store.read(after_seq=cursor)``.

    Examples
    --------
    >>> import tempfile, os
    >>> from lifelongrec.data import EventStore, make_events, make_items
    >>> home = tempfile.mkdtemp()
    >>> with EventStore(os.path.join(home, "events.sqlite")) as store:
    ...     r = store.append(make_events(["u1", "u1"], ["a", "b"], [10, 20]), event_ids=["e1", "e2"])
    ...     again = store.append(make_events(["u1"], ["a"], [10]), event_ids=["e1"])
    ...     n_new, n_updated = store.upsert_items(make_items(["a"], ["Alpha"], [["x"]], [{"p": 1.5}]))
    ...     (r.n_written, again.n_duplicates, store.last_seq, store.read(after_seq=1)["item_id"].tolist(),
    ...      store.item("a")["attributes"])
    (2, 1, 2, ['b'], {'p': 1.5})
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise ParameterError("path", path, "a str or os.PathLike naming the store's file")
        self.path = Path(path)
        if self.path.is_dir():
            raise ParameterError("path", str(path), "a file name, not a folder")
        if not self.path.parent.is_dir():
            raise ParameterError(
                "path", str(path), f"a file in an existing folder ({self.path.parent} is none)"
            )
        if not self.path.exists():
            # Events are personal data: only the owner may read them. SQLite gives its
            # write-ahead log and shared-memory files the database file's mode.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise DataError(
                    f"cannot open the event store ({exc.strerror})",
                    path=self.path,
                    expected="a file this process may read and write",
                ) from None
        self._state = threading.Condition()
        self._busy = 0  # calls in flight; close() waits for them
        self._closed = True  # until the writer is open
        self._write_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []  # idle read connections
        self._all_readers: list[sqlite3.Connection] = []
        self._writer = self._connect()
        try:
            self._writer.execute("PRAGMA secure_delete = ON")  # erased rows are overwritten
            self._writer.execute("PRAGMA journal_size_limit = 67108864")
            self._writer.execute("PRAGMA cache_size = -65536")  # 64 MiB of page cache
            self._open_schema()
        except BaseException:
            self._writer.close()
            raise
        self._closed = False

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise self._not_a_store(exc) from exc
        try:
            conn.execute("PRAGMA synchronous = FULL")  # commit = fsync of the WAL
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._not_a_store(exc) from exc
        return conn

    def _not_a_store(self, exc: sqlite3.Error) -> DataError:
        if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.OperationalError):
            # e.g. "unable to open database file"
            return DataError(
                f"cannot open the event store ({exc})",
                path=self.path,
                expected="a file this process may read and write",
            )
        return DataError(
            f"not a lifelongrec event store ({exc})",
            path=self.path,
            expected="a file made by lifelongrec.data.EventStore, or a new file name",
        )

    def _open_schema(self) -> None:
        conn = self._writer
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            n_objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._not_a_store(exc) from exc
        if app_id == 0 and n_objects == 0:  # a new (or empty) file: create the schema
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise DataError(
                    "SQLite refused write-ahead logging for the event store",
                    path=self.path,
                    expected="a file on a local file system",
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
            return
        if app_id != _APPLICATION_ID:
            raise self._not_a_store(f"a SQLite database with application id {app_id}")
        self._check_version(version)
        conn.execute("PRAGMA journal_mode = WAL")
        if version < _SCHEMA_VERSION:  # a store of an earlier lifelongrec: migrate it
            added = (IMPRESSIONS_SCHEMA if version < 2 else "") + ITEM_REVISIONS_SCHEMA
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in added.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _check_version(self, version: int) -> None:
        if version > _SCHEMA_VERSION:
            raise DataError(
                "event store written by a newer lifelongrec",
                path=self.path,
                value=f"schema version {version}",
                expected=f"schema version {_SCHEMA_VERSION} or older",
            )

    @contextmanager
    def _call(self) -> Iterator[None]:
        with self._state:
            if self._closed:
                raise StoreClosedError(f"the event store {self.path} is closed")
            self._busy += 1
        try:
            yield
        finally:
            with self._state:
                self._busy -= 1
                self._state.notify_all()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._call():
            with self._state:
                conn = self._readers.pop() if self._readers else None
            if conn is None:
                conn = self._connect()
                with self._state:
                    self._all_readers.append(conn)
            try:
                yield conn
            finally:
                self._put_back(conn)

    def _put_back(self, conn: sqlite3.Connection) -> None:
        """A read connection back to the pool, out of any transaction."""
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        with self._state:
            self._readers.append(conn)

    @contextmanager
    def _writing(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT) under the write lock.

        ``durable=False`` commits without an fsync (``synchronous=NORMAL`` for this
        transaction): it is atomic and reaches the disk with the next durable commit or
        checkpoint, but a power loss before then may take it back. Only for data whose
        loss window is stated anyway (the impression log); events are always durable.
        """
        with self._call(), self._write_lock:
            conn = self._writer
            if not durable:
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")  # synchronous=FULL: durable when this returns
                except BaseException:
                    if conn.in_transaction:  # the body or the commit failed: nothing is written
                        conn.execute("ROLLBACK")
                    raise
            finally:
                if not durable:
                    conn.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        """Wait for calls in flight, then close every connection. Closing twice is fine."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            while self._busy:
                self._state.wait()
            readers, self._readers, self._all_readers = self._all_readers, [], []
        for conn in readers:
            conn.close()
        self._writer.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"last_seq={self.last_seq}"
        return f"{type(self).__name__}({str(self.path)!r}, {state})"

    # ------------------------------------------------------------------ events
    #: Starts a read transaction that sees one snapshot of the store.
    _SNAPSHOT = "BEGIN"

    @staticmethod
    def _last_seq(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _set_last_seq(conn: sqlite3.Connection, seq: int) -> None:
        """Record ``seq`` as the highest given (SQLite's AUTOINCREMENT already did)."""

    @property
    def last_seq(self) -> int:
        """The highest ``seq`` ever given (0 for a new store); deletions do not lower it."""
        with self._reading() as conn:
            return self._last_seq(conn)

    @property
    def n_events(self) -> int:
        """The number of events stored."""
        with self._reading() as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def event_types(self) -> list[str]:
        """The distinct event types stored, sorted."""
        with self._reading() as conn:
            rows = conn.execute("SELECT DISTINCT event_type FROM events").fetchall()
        return sorted(r[0] for r in rows)

    def append(
        self,
        events: pd.DataFrame,
        event_ids: Sequence[str | None] | None = None,
        request_ids: Sequence[str | None] | None = None,
    ) -> AppendResult:
        """Store a batch of events in one durable transaction; skip events already stored.

        Parameters
        ----------
        events
            A frame with exactly the columns :data:`~lifelongrec.data.EVENT_COLUMNS`
            (any order, any index): ``user_id``, ``item_id`` and ``event_type``
            non-empty strings, ``timestamp`` integers (UTC epoch seconds, int64 range),
            ``value`` real numbers or missing (NaN/None). Not modified.
        event_ids
            ``None``, or one entry per row: a non-empty string identifying the event
            (e.g. a client-made UUID) or ``None`` (no idempotency for that row). A row
            whose id is already stored, or repeats an earlier row of this batch, is not
            written (the first occurrence wins) and is counted as a duplicate.
        request_ids
            ``None``, or one entry per row: the ``request_id`` of the recommendation
            the event answers (a string, stored beside the written event and used to
            attribute it to that request's impression: :meth:`online_metrics`), or
            ``None``.

        Returns
        -------
        AppendResult
            ``n_written``, ``n_duplicates``, ``last_seq`` and each row's ``seq``.

        Raises
        ------
        DataError
            A column is missing or unknown, or a row holds a bad value; the message
            names the row (0-based position; also the error's ``row`` attribute) and
            the field. Nothing of the batch is written.
        ParameterError
            ``event_ids`` or ``request_ids`` is not a sequence of the batch's length.
        StoreClosedError
            The store is closed.

        Notes
        -----
        The call returns after the commit is durable (the write-ahead log is fsynced).
        Ids of events erased by :meth:`delete_user` are forgotten with them: the same
        id sent again is stored again.
        """
        columns = _event_columns(events)
        n = len(columns[0])
        ids = _event_ids(event_ids, n)
        requests = _event_ids(request_ids, n, "request_ids", "request id")
        rows = list(zip(*columns, ids, strict=True))
        seqs = np.zeros(n, dtype=np.int64)
        with self._writing() as conn:
            base = self._last_seq(conn)
            known = _lookup(conn, "SELECT event_id, seq FROM events WHERE event_id IN", ids)
            write, asked = [], []
            next_seq = base
            for pos, (row, eid) in enumerate(zip(rows, ids, strict=True)):
                if eid is not None:
                    seen = known.get(eid)
                    if seen is not None:
                        seqs[pos] = seen
                        continue
                next_seq += 1
                seqs[pos] = next_seq
                if eid is not None:
                    known[eid] = next_seq
                write.append((next_seq, *row))
                if requests[pos] is not None:
                    asked.append((next_seq, requests[pos]))
            if write:
                conn.executemany(
                    "INSERT INTO events (seq, user_id, item_id, timestamp, event_type, value,"
                    " event_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    write,
                )
            if asked:
                conn.executemany("INSERT INTO event_requests VALUES (?, ?)", asked)
            if next_seq != base:
                self._set_last_seq(conn, next_seq)
        return AppendResult(len(write), n - len(write), next_seq, seqs)

    def read(self, after_seq: int = 0, limit: int | None = None) -> pd.DataFrame:
        """Events with ``seq > after_seq`` in ``seq`` order (at most ``limit`` of them).

        Returns a frame with :data:`~lifelongrec.data.EVENT_COLUMNS` plus ``seq``
        (``int64``), dtypes as :func:`~lifelongrec.data.make_events` gives. The next
        cursor is ``frame["seq"].iloc[-1]`` (keep the old one when the frame is empty).

        Raises
        ------
        ParameterError
            ``after_seq`` is not an integer >= 0, or ``limit`` not ``None`` or >= 0.
        StoreClosedError
            The store is closed.
        """
        after_seq = _count("after_seq", after_seq)
        limit = None if limit is None else _count("limit", limit)
        sql = f"{_EVENT_SELECT} WHERE seq > ? ORDER BY seq"
        args: tuple[int, ...] = (after_seq,)
        if limit is not None:
            sql, args = sql + " LIMIT ?", (after_seq, limit)
        with self._reading() as conn:
            return _events_frame(conn.execute(sql, args).fetchall())

    def user_events(self, user_id: str, limit: int | None = None) -> pd.DataFrame:
        """The user's most recent ``limit`` events (all when ``None``), in time order.

        "Recent" is by ``timestamp``, ties broken by ``seq``; the frame is in that order
        (oldest first), columns as :meth:`read` gives. A user without events gets an
        empty frame.

        Raises
        ------
        ParameterError
            ``user_id`` is not a non-empty string, or ``limit`` not ``None`` or >= 0.
        StoreClosedError
            The store is closed.
        """
        user_id = _id_argument("user_id", user_id)
        sql = f"{_EVENT_SELECT} WHERE user_id = ? ORDER BY timestamp DESC, seq DESC"
        args: tuple = (user_id,)
        if limit is not None:
            sql, args = sql + " LIMIT ?", (user_id, _count("limit", limit))
        with self._reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        rows.reverse()
        return _events_frame(rows)

    def recent_events(self, user_ids: Sequence[str], limit: int) -> pd.DataFrame:
        """The most recent ``limit`` events of each of ``user_ids`` (one query per 900
        users), in time order per user (ties by ``seq``), users in the order given;
        columns as :meth:`read` gives. Users without events contribute nothing.

        Raises
        ------
        ParameterError
            ``limit`` is not an integer >= 1.
        """
        limit = check_int("limit", limit, 1)
        ids = list(dict.fromkeys(str(u) for u in user_ids))
        rows: list[tuple] = []
        with self._reading() as conn:
            for start in range(0, len(ids), _CHUNK):
                part = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                sql = (
                    "SELECT user_id, item_id, timestamp, event_type, value, seq FROM ("
                    "SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY timestamp "
                    f"DESC, seq DESC) AS rn FROM events WHERE user_id IN ({marks})"
                    ") AS recent WHERE rn <= ?"
                )
                rows.extend(conn.execute(sql, (*part, int(limit))).fetchall())
        order = {u: j for j, u in enumerate(ids)}
        rows.sort(key=lambda r: (order[r[0]], r[2], r[5]))
        return _events_frame(rows)

    def user_last_seqs(self) -> dict[str, int]:
        """Every stored user's newest ``seq`` (how recently each was active)."""
        with self._reading() as conn:
            rows = conn.execute("SELECT user_id, MAX(seq) FROM events GROUP BY user_id").fetchall()
        return {u: int(s) for u, s in rows}

    def delete_user(self, user_id: str) -> int:
        """Erase every event of ``user_id`` (and their event and request ids) and every
        impression shown to them; return how many events.

        Durable when it returns. The erased rows' bytes are overwritten in the database
        file (SQLite ``secure_delete``), and the write-ahead log, which still holds
        them, is checkpointed and truncated unless a reader holds an older snapshot at
        that moment (then the next checkpoint overwrites it). A user without events
        gives 0.

        Raises
        ------
        ParameterError
            ``user_id`` is not a non-empty string.
        StoreClosedError
            The store is closed.
        """
        user_id = _id_argument("user_id", user_id)
        with self._writing() as conn:
            conn.execute(
                "DELETE FROM event_requests WHERE seq IN (SELECT seq FROM events WHERE user_id = ?)",
                (user_id,),
            )
            shown = conn.execute("DELETE FROM impressions WHERE user_id = ?", (user_id,)).rowcount
            n = conn.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
        if n or shown:
            self._after_erasure()
        return int(n)

    def _after_erasure(self) -> None:
        """Overwrite what the write-ahead log still holds of erased rows."""
        with self._call(), self._write_lock:
            self._writer.execute("PRAGMA busy_timeout = 0")
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                self._writer.execute("PRAGMA busy_timeout = 10000")

    # ------------------------------------------------------------------ all of it
    def to_dataset(self) -> Dataset:
        """All events and the catalogue (one consistent snapshot) as a :class:`Dataset`.

        Events are in time order (stable: equal timestamps keep ``seq`` order) with
        :data:`~lifelongrec.data.EVENT_COLUMNS`; ``items`` is ``None`` when the
        catalogue is empty. ``meta`` holds ``format="event-store"``,
        ``timestamps="epoch"`` and the snapshot's ``last_seq``.
        """
        with self._reading() as conn:
            conn.execute(self._SNAPSHOT)  # one snapshot for the three reads
            last = self._last_seq(conn)
            events = _events_frame(conn.execute(f"{_EVENT_SELECT} ORDER BY seq").fetchall())
            item_rows = self._item_rows(conn)
            conn.execute("COMMIT")
        order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
        events = events.iloc[order][list(EVENT_COLUMNS)].reset_index(drop=True)
        return Dataset(
            events=events,
            items=_items_frame(item_rows) if item_rows else None,
            name=str(self.path),
            meta={"format": "event-store", "timestamps": "epoch", "last_seq": last},
        )
