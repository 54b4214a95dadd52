"""The event store on PostgreSQL: the same log, catalogue and impressions as the
embedded SQLite store, for services whose API processes run on several machines.

:class:`PostgresEventStore` is an :class:`~lifelongrec.data.EventStore` whose tables
live in a PostgreSQL schema; every method, check, error and guarantee is the embedded
store's, and the same tests run against both. What differs is underneath:

* **writes are serialised** by a transaction-scoped advisory lock (one per store
  schema), as SQLite serialises them by its single writer: ``seq`` numbers, catalogue
  revisions and impression ids are given in commit order, so a reader following
  ``read(after_seq=cursor)`` from any process never misses a row that commits later
  under a smaller number; event ids stay idempotent under concurrent writers on any
  number of machines;
* **durability** is PostgreSQL's ``synchronous_commit`` (on by default: a commit returns
  once its WAL record is flushed); impression flushes switch it off for their own
  transaction, as the embedded store skips their fsync;
* **erasure** deletes the rows in the same transaction as on SQLite; PostgreSQL keeps
  the dead rows' bytes in the table files until VACUUM reuses the space (the store runs
  a plain ``VACUUM`` of the touched tables after each erasure; ``VACUUM FULL`` rewrites
  them, at the cost of an exclusive lock);
* **a server that cannot be reached** is a :class:`StoreUnavailableError` (the service
  answers 503 with ``Retry-After``); the broken connection is dropped and the next call
  connects again, so a restarted server is picked up without a restart of the process.

The store's location is a URL: ``postgresql://user@host:port/database?schema=name``
(``schema`` is the PostgreSQL schema holding the tables, ``lifelongrec`` when absent;
created on first use; every other parameter is libpq's). :func:`open_store` opens a
URL or a file path as the right store.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lifelongrec._errors import DataError, LifelongrecError, ParameterError
from lifelongrec.data._store import _SCHEMA, _SCHEMA_VERSION, EventStore

__all__ = [
    "PostgresEventStore",
    "StoreUnavailableError",
    "is_store_url",
    "open_store",
    "pop_query",
    "shown_url",
]

_DEFAULT_SCHEMA = "lifelongrec"


def _pg_schema(sqlite_schema: str) -> str:
    """The embedded store's tables in PostgreSQL's types (one schema, two dialects):
    64-bit integers, doubles, and serial ids where SQLite numbers rows itself (``seq``
    is given by the store, under its lock)."""
    for old, new in (
        ("seq INTEGER PRIMARY KEY AUTOINCREMENT", "seq BIGINT PRIMARY KEY"),
        ("pos INTEGER PRIMARY KEY", "pos BIGSERIAL PRIMARY KEY"),
        ("id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY"),
        ("INTEGER", "BIGINT"),
        ("REAL", "DOUBLE PRECISION"),
    ):
        sqlite_schema = sqlite_schema.replace(old, new)
    return (
        "CREATE TABLE lifelongrec_store (key TEXT PRIMARY KEY, value BIGINT NOT NULL);"
        + sqlite_schema
    )


_PG_SCHEMA = _pg_schema(_SCHEMA)


class StoreUnavailableError(LifelongrecError, ConnectionError):
    """The store's database server could not be reached, or the connection broke in a
    call (nothing of that call was written); the next call connects again."""


def is_store_url(location: Any) -> bool:
    """Whether ``location`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return isinstance(location, str) and location.split("://", 1)[0] in ("postgresql", "postgres")


def shown_url(url: str | None) -> str | None:
    """``url`` with its password (if any) replaced by ``***``: for messages and pages."""
    if url is None:
        return None
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc and ":" in netloc.split("@", 1)[0]:
        user = netloc.split("@", 1)[0].split(":", 1)[0]
        netloc = f"{user}:***@{netloc.split('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def open_store(location: Any) -> EventStore:
    """The event store at ``location``: a PostgreSQL URL (:class:`PostgresEventStore`)
    or a file path (the embedded SQLite :class:`~lifelongrec.data.EventStore`)."""
    if is_store_url(location):
        return PostgresEventStore(location)
    return EventStore(location)


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """The store's SQL (``?`` placeholders, as sqlite3 takes them) in psycopg's style."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """A psycopg connection (autocommit) that runs the store's sqlite3-style SQL."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.total_changes = 0

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        cur = self.raw.execute(_pg_sql(sql), tuple(args))
        if cur.description is None and cur.rowcount > 0:  # rows changed, not rows read
            self.total_changes += cur.rowcount
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(_pg_sql(sql), rows)
            if cur.rowcount > 0:
                self.total_changes += cur.rowcount

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return bool(self.raw.broken or self.raw.closed)

    def close(self) -> None:
        self.raw.close()


def pop_query(url: str, key: str) -> tuple[str, str | None]:
    """``url`` without the query parameter ``key`` (which its client would not know),
    and that parameter's value (the last one given; ``None`` when absent)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    values = [v for k, v in query if k == key]
    rest = urlencode([(k, v) for k, v in query if k != key])
    return (
        urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)),
        values[-1] if values else None,
    )


def _split_url(url: str) -> tuple[str, str, str]:
    """``(conninfo, schema, shown)``: the URL libpq takes, the schema, and the URL with
    its password hidden (for messages)."""
    conninfo, schema = pop_query(url, "schema")
    schema = _DEFAULT_SCHEMA if schema is None else schema
    if not schema or not schema.replace("_", "a").isalnum() or schema[0].isdigit():
        raise ParameterError(
            "schema", schema, "a PostgreSQL schema name of letters, digits and _ (not first)"
        )
    return conninfo, schema.lower(), shown_url(url)


class PostgresEventStore(EventStore):
    """The event store in a PostgreSQL schema (see the module's notes).

    Parameters
    ----------
    url
        ``postgresql://[user[:password]@]host[:port]/database[?schema=name&...]``.

    Raises
    ------
    ParameterError
        ``url`` is not a PostgreSQL URL, or names a bad schema.
    StoreUnavailableError
        The server cannot be reached.
    DataError
        The schema holds tables that are not a lifelongrec store, or a store written by
        a newer lifelongrec.
    """

    _SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ"

    def __init__(self, url: str) -> None:  # noqa: D107 - the class says it
        if not is_store_url(url):
            raise ParameterError("url", url, "a postgresql:// URL")
        try:
            import psycopg  # noqa: F401
        except ImportError:  # pragma: no cover - psycopg is a dependency of the extra
            raise ParameterError(
                "url", url, "psycopg installed (pip install 'lifelongrec[postgres]')"
            ) from None
        self._conninfo, self.schema, self.path = _split_url(url)
        self.url = self.path
        self._lock_key = zlib.crc32(f"lifelongrec:{self.schema}".encode())
        self._state = threading.Condition()
        self._busy = 0
        self._closed = True
        self._write_lock = threading.Lock()
        self._readers: list[_Connection] = []
        self._all_readers: list[_Connection] = []
        self._check_writer = False
        self._writer = self._connect()
        try:
            self._open_schema()
        except BaseException:
            self._writer.close()
            raise
        self._closed = False

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> _Connection:
        import psycopg

        try:
            raw = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=5,
                options=f"-c search_path={self.schema}",
                application_name=f"lifelongrec:{self.schema}",  # in pg_stat_activity
            )
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        return _Connection(raw)

    def _unavailable(self, exc: Exception) -> StoreUnavailableError:
        # A connection failed: the pooled ones (idle, to the same server) are likely
        # dead too. They are dropped, and the writer is checked before its next use, so
        # one outage fails the calls made during it, not one call per old connection.
        with self._state:
            idle, self._readers = self._readers, []
            for conn in idle:
                if conn in self._all_readers:
                    self._all_readers.remove(conn)
        for conn in idle:
            conn.close()
        self._check_writer = True
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreUnavailableError(f"the event store {self.path} is unavailable ({detail})")

    def _open_schema(self) -> None:
        with self._transaction(self._writer) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                    (self.schema,),
                ).fetchall()
            }
            if not tables:  # a new schema: the store's tables
                for statement in _PG_SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO lifelongrec_store VALUES ('schema_version', ?), ('last_seq', 0)",
                    (_SCHEMA_VERSION,),
                )
                return
            if "lifelongrec_store" not in tables:
                raise DataError(
                    f"not a lifelongrec event store (schema {self.schema} holds other tables)",
                    path=self.path,
                    expected="a schema made by lifelongrec.data.PostgresEventStore, or a new one",
                )
            row = conn.execute(
                "SELECT value FROM lifelongrec_store WHERE key = 'schema_version'"
            ).fetchone()
            self._check_version(int(row[0]) if row else 0)

    @contextmanager
    def _reading(self) -> Iterator[_Connection]:
        import psycopg

        try:
            with super()._reading() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None

    def _put_back(self, conn: _Connection) -> None:
        if not conn.broken and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - a connection that fails here is dropped
                conn.close()
        with self._state:
            if conn.broken:
                if conn in self._all_readers:
                    self._all_readers.remove(conn)
            else:
                self._readers.append(conn)

    @contextmanager
    def _writing(self, durable: bool = True) -> Iterator[_Connection]:
        """One write transaction under the store's advisory lock (see the module)."""
        with self._call(), self._write_lock:
            self._usable_writer()
            with self._transaction(self._writer) as conn:
                if not durable:
                    conn.execute("SET LOCAL synchronous_commit = off")
                yield conn

    @contextmanager
    def _transaction(self, conn: _Connection) -> Iterator[_Connection]:
        """BEGIN, the store's advisory lock, the body, COMMIT; ROLLBACK on any error; a
        lost connection is a :class:`StoreUnavailableError`."""
        import psycopg

        try:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(?)", (self._lock_key,))
            yield conn
            conn.execute("COMMIT")
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None
        finally:
            if not conn.broken and conn.in_transaction:
                conn.execute("ROLLBACK")

    def _usable_writer(self) -> None:
        """Connect the writer again when it broke, or answers no more after a failure."""
        import psycopg

        if self._check_writer and not self._writer.broken:
            try:
                self._writer.execute("SELECT 1")
            except psycopg.OperationalError:
                self._writer.close()
        if self._writer.broken:
            self._writer = self._connect()
        self._check_writer = False

    # ------------------------------------------------------------------ the seq counter
    @staticmethod
    def _last_seq(conn: _Connection) -> int:
        row = conn.execute("SELECT value FROM lifelongrec_store WHERE key = 'last_seq'").fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _set_last_seq(conn: _Connection, seq: int) -> None:
        conn.execute("UPDATE lifelongrec_store SET value = ? WHERE key = 'last_seq'", (int(seq),))

    def _after_erasure(self) -> None:
        """Let VACUUM mark the erased rows' space for reuse (their bytes stay in the
        table files until it is reused; ``VACUUM FULL`` rewrites the tables). On a read
        connection: writes go on meanwhile (VACUUM takes no lock that blocks them)."""
        with self._reading() as conn:
            for table in ("events", "event_requests", "impressions"):
                conn.execute(f"VACUUM {table}")

    def drop(self) -> None:
        """Delete the store: its schema and every table in it (for tests and tear-down)."""
        with self._writing() as conn:
            conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.close()
