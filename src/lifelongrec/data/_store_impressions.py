"""The event store's impression log: what was shown to whom, by which model version and
experiment arm, and the online metrics of feedback events attributed to it.

:class:`ImpressionsMixin` is the part of :class:`~lifelongrec.data.EventStore` that
appends impressions, reads them back, and joins feedback events to them.

**Attribution.** A feedback event is attributed to one impression: to the impression of
its item in the request it names (its ``request_id``, stored beside the event by
:meth:`~lifelongrec.data.EventStore.append`), or, without a request id, to the latest
impression of its item to its user at or before the event and at most ``window``
seconds before it. An event naming a request that did not show its item (or to another
user) is not attributed: the client said where it came from, and it was not there.

**Metrics** (:meth:`ImpressionsMixin.online_metrics`), per model version and arm (and
per hour of the impression when asked): impressions, requests and users shown
something; clicks (impressions with at least one attributed event of a click type) and
CTR; position-aware CTR as COEC, clicks over expected clicks, where an impression at rank
``r`` expects the CTR of rank ``r`` over every impression of the query (Zhang & Jones
2007): 1.0 is as good as the average ranker at the same positions, independent of how
many items each list showed; conversions (attributed events of a conversion type, e.g.
purchases) per impression; attributed events per user.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_int, is_int
from lifelongrec.data._store_rows import _bad, _exact_columns, _id_argument, _strings, _timestamps

__all__ = ["IMPRESSION_COLUMNS", "IMPRESSIONS_SCHEMA", "ImpressionsMixin"]

#: The columns of an impression: one row per item shown. ``rank`` is the item's
#: 1-based position in the list; ``arm`` the experiment arm (or the interleaved
#: ranker that contributed the item), ``None`` outside experiments.
IMPRESSION_COLUMNS = (
    "request_id",
    "user_id",
    "item_id",
    "rank",
    "score",
    "model_version",
    "arm",
    "timestamp",
)

#: The tables of schema version 2 (added to a version-1 store when it is opened).
IMPRESSIONS_SCHEMA = """
CREATE TABLE impressions (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    score REAL,
    model_version TEXT NOT NULL,
    arm TEXT,
    timestamp INTEGER NOT NULL
);
CREATE UNIQUE INDEX impressions_request_item ON impressions (request_id, item_id);
CREATE INDEX impressions_user_item_time ON impressions (user_id, item_id, timestamp);
CREATE INDEX impressions_time ON impressions (timestamp);
CREATE TABLE event_requests (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL
);
"""

_METRIC_COLUMNS = [
    "requests",
    "users",
    "impressions",
    "clicks",
    "ctr",
    "expected_clicks",
    "coec",
    "conversions",
    "conversion_rate",
    "events",
    "events_per_user",
]
_INT64_MAX = 2**63 - 1
#: Rows per ``executemany`` of an impression flush. sqlite3's ``executemany`` binds and
#: steps every row in C and hands the interpreter lock to waiting threads only by
#: chance, so one call on thousands of rows stalls the request threads beside it for
#: its whole length; between chunks the interpreter switches threads as usual.
_INSERT_CHUNK = 100
_HOUR = 3600


def _ranks(col: pd.Series) -> list[int]:
    values = col.tolist()
    for pos, v in enumerate(values):
        if not is_int(v) or not 1 <= v <= 1_000_000:
            raise _bad(pos, "rank", "bad rank", v, "an integer >= 1 (1 = the first item shown)")
    return [int(v) for v in values]


def _scores(col: pd.Series) -> list[float | None]:
    out: list[float | None] = []
    for pos, v in enumerate(col.tolist()):
        if v is None or v is pd.NA:
            out.append(None)
        elif isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
            f = float(v)
            if math.isinf(f):
                raise _bad(pos, "score", "bad score", v, "a finite number, or NaN/None")
            out.append(None if math.isnan(f) else f)
        else:
            raise _bad(pos, "score", "bad score", v, "a finite number, or NaN/None")
    return out


def _arms(col: pd.Series) -> list[str | None]:
    out: list[str | None] = []
    for pos, v in enumerate(col.tolist()):
        if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, str) and v:
            out.append(str(v))
        else:
            raise _bad(pos, "arm", "bad arm", v, "a non-empty string, or None outside experiments")
    return out


def _impression_rows(impressions: Any) -> list[tuple]:
    """The batch's rows as tuples of Python values in :data:`IMPRESSION_COLUMNS` order,
    every row checked (a bad one raises :class:`DataError` naming row and field)."""
    frame = _exact_columns(impressions, IMPRESSION_COLUMNS, "impressions")
    cols = [
        _strings(frame["request_id"].tolist(), "request_id", "request id"),
        _strings(frame["user_id"].tolist(), "user_id", "user id"),
        _strings(frame["item_id"].tolist(), "item_id", "item id"),
        _ranks(frame["rank"]),
        _scores(frame["score"]),
        _strings(frame["model_version"].tolist(), "model_version", "model version"),
        _arms(frame["arm"]),
        _timestamps(frame["timestamp"]),
    ]
    return list(zip(*cols, strict=True))


def _impression_frame(rows: list[tuple], columns: tuple[str, ...]) -> pd.DataFrame:
    """Stored impression rows of ``columns`` as a frame: ``score`` NaN and ``arm``
    ``None`` where absent, ``id``, ``rank`` and ``timestamp`` int64."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
    data = dict(zip(columns, cols, strict=True))
    out = pd.DataFrame({k: np.array(v, dtype=object) for k, v in data.items()})
    for name in ("id", "rank", "timestamp"):
        if name in data:
            out[name] = np.array(data[name], dtype=np.int64)
    out["score"] = np.array([np.nan if s is None else s for s in data["score"]], dtype=np.float64)
    out["arm"] = pd.Series(list(data["arm"]), dtype=object)  # None, not NaN
    return out


def _type_list(name: str, types: Any) -> list[str]:
    if isinstance(types, str) or not isinstance(types, Iterable):
        raise ParameterError(name, types, "a collection of event types (strings)")
    out = list(dict.fromkeys(types))
    if not all(isinstance(t, str) and t for t in out):
        raise ParameterError(name, types, "a collection of non-empty strings")
    return out


def _time_bound(name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if not is_int(value):
        raise ParameterError(name, value, "None or an integer (UTC epoch seconds)")
    return int(value)


class ImpressionsMixin:
    """The impression log of :class:`~lifelongrec.data.EventStore` (a part of that
    class, not usable alone: it reads and writes through the store's connections)."""

    def append_impressions(self, impressions: pd.DataFrame) -> int:
        """Store a batch of impressions in one transaction; return how many were new.

        The transaction is atomic but committed without an fsync of its own: it reaches
        the disk with the next event write (always durable) or checkpoint, so a power
        loss may take it back; a crash of the process does not.

        ``impressions`` has exactly :data:`IMPRESSION_COLUMNS`: ``request_id``,
        ``user_id``, ``item_id`` and ``model_version`` non-empty strings, ``rank`` an
        integer >= 1, ``score`` a finite number or missing, ``arm`` a non-empty string
        or missing, ``timestamp`` an integer (UTC epoch seconds). An impression whose
        ``(request_id, item_id)`` is stored already is not written again (a retried
        flush is harmless). A bad row raises :class:`DataError` naming the row and the
        field, and nothing of the batch is written.
        """
        return self.append_impression_rows(_impression_rows(impressions))

    def append_impression_rows(self, rows: list[tuple]) -> int:
        """:meth:`append_impressions` for rows the caller built itself, already as
        tuples of Python values in :data:`IMPRESSION_COLUMNS` order and types (the
        service's impression log): no frame, and no check beyond each row's length, so
        a flush of thousands of rows holds the interpreter for as short a time as the
        insert itself, and in chunks of 100 rows, between which request threads run."""
        if any(len(r) != len(IMPRESSION_COLUMNS) for r in rows):
            raise ParameterError(
                "rows", f"{len(rows)} rows", f"tuples of {len(IMPRESSION_COLUMNS)} values"
            )
        if not rows:
            return 0
        with self._writing(durable=False) as conn:
            before = conn.total_changes
            for start in range(0, len(rows), _INSERT_CHUNK):
                conn.executemany(
                    "INSERT INTO impressions (request_id, user_id, item_id, rank,"
                    " score, model_version, arm, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    rows[start : start + _INSERT_CHUNK],
                )
            return int(conn.total_changes - before)

    @property
    def n_impressions(self) -> int:
        """The number of impressions stored."""
        with self._reading() as conn:
            return int(conn.execute("SELECT count(*) FROM impressions").fetchone()[0])

    def read_impressions(self, after_id: int = 0, limit: int = 20_000) -> pd.DataFrame:
        """Impressions stored after ``after_id`` (their row ids, ascending, in an ``id``
        column beside :data:`IMPRESSION_COLUMNS`), at most ``limit`` of them: a reader
        that passes the last ``id`` it got reads each impression once (the learner's
        exposure-aware steps). Ids only grow; erased users' rows are gone."""
        after = check_int("after_id", after_id, low=0)
        n = check_int("limit", limit, low=1)
        sql = f"SELECT id, {', '.join(IMPRESSION_COLUMNS)} FROM impressions WHERE id > ?"
        with self._reading() as conn:
            rows = conn.execute(sql + " ORDER BY id LIMIT ?", (after, n)).fetchall()
        return _impression_frame(rows, ("id", *IMPRESSION_COLUMNS))

    @property
    def last_impression_id(self) -> int:
        """The row id of the newest impression stored (0: none)."""
        with self._reading() as conn:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM impressions").fetchone()[0])

    def impressions(
        self, user_id: str | None = None, request_id: str | None = None
    ) -> pd.DataFrame:
        """Stored impressions (of one user, or of one request, or all), in the order
        they were stored, with :data:`IMPRESSION_COLUMNS` (``score`` NaN and ``arm``
        ``None`` where absent)."""
        where, args = [], []
        if user_id is not None:
            where.append("user_id = ?")
            args.append(_id_argument("user_id", user_id))
        if request_id is not None:
            where.append("request_id = ?")
            args.append(_id_argument("request_id", request_id))
        sql = f"SELECT {', '.join(IMPRESSION_COLUMNS)} FROM impressions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._reading() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return _impression_frame(rows, IMPRESSION_COLUMNS)

    def item_reach(self, item_id: str) -> dict[str, Any]:
        """How far an item has reached so far: ``impressions`` (times it was shown),
        ``users_shown`` (distinct users it was shown to), ``first_shown`` and
        ``last_shown`` (UTC epoch seconds, ``None`` when never shown),
        ``answers_since_first_shown`` (answers that showed anything from then on: the
        item was in ``impressions`` of them), ``events`` and ``users_with_events``
        (stored events of the item and their distinct users). Counts every stored row
        of the item (one scan of each table)."""
        item_id = _id_argument("item_id", item_id)
        with self._reading() as conn:
            shown = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT user_id), MIN(timestamp), MAX(timestamp)"
                " FROM impressions WHERE item_id = ?",
                (item_id,),
            ).fetchone()
            since = 0
            if shown[2] is not None:
                since = conn.execute(
                    "SELECT COUNT(DISTINCT request_id) FROM impressions WHERE timestamp >= ?",
                    (int(shown[2]),),
                ).fetchone()[0]
            acted = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM events WHERE item_id = ?",
                (item_id,),
            ).fetchone()
        return {
            "impressions": int(shown[0]),
            "users_shown": int(shown[1]),
            "first_shown": None if shown[2] is None else int(shown[2]),
            "last_shown": None if shown[3] is None else int(shown[3]),
            "answers_since_first_shown": int(since),
            "events": int(acted[0]),
            "users_with_events": int(acted[1]),
        }

    def online_metrics(
        self,
        click_types: Iterable[str],
        conversion_types: Iterable[str],
        *,
        window: int = 86_400,
        by_hour: bool = False,
        since: int | None = None,
        until: int | None = None,
    ) -> pd.DataFrame:
        """Online metrics of the impressions shown in ``[since, until)`` (UTC epoch
        seconds; ``None``: unbounded), one row per ``(model_version, arm)``, or per
        ``(model_version, arm, hour)`` with ``by_hour`` (``hour``: the epoch second the
        impression's UTC hour starts).

        Feedback events of ``click_types`` and ``conversion_types`` are attributed as
        the module says (``window``: seconds an event without a request id may follow
        the impression it is attributed to; an integer >= 0). Columns: ``requests``,
        ``users``, ``impressions``, ``clicks`` (impressions with an attributed click),
        ``ctr``, ``expected_clicks`` and ``coec`` (position-aware CTR: clicks over the
        clicks the query's CTR by rank expects), ``conversions`` (attributed events of a
        conversion type) and ``conversion_rate`` (per impression), ``events`` (every
        attributed event) and ``events_per_user``. Rows are sorted by version, arm
        (``None`` first) and hour; no impressions give an empty frame with the columns.
        """
        clicks = _type_list("click_types", click_types)
        conversions = _type_list("conversion_types", conversion_types)
        window = check_int("window", window, 0)
        lo = _time_bound("since", since, -(2**63))
        hi = _time_bound("until", until, _INT64_MAX)
        feedback = list(dict.fromkeys(clicks + conversions))
        keys = ["model_version", "arm"] + (["hour"] if by_hour else [])
        hour = f"(i.timestamp - (((i.timestamp % {_HOUR}) + {_HOUR}) % {_HOUR}))"
        group = "i.model_version, i.arm" + (", hour" if by_hour else "")
        hour_col = f"{hour} AS hour, " if by_hour else ""

        def marks(values: list[str]) -> str:
            return ",".join("?" * len(values)) or "NULL"

        sql = f"""
        WITH ev AS (
            SELECT e.user_id, e.item_id, e.timestamp, e.event_type, r.request_id
            FROM events e LEFT JOIN event_requests r ON r.seq = e.seq
            WHERE e.event_type IN ({marks(feedback)})
        ), att AS (
            SELECT ev.event_type AS event_type, CASE WHEN ev.request_id IS NOT NULL THEN (
                SELECT i.id FROM impressions i WHERE i.request_id = ev.request_id
                AND i.item_id = ev.item_id AND i.user_id = ev.user_id
            ) ELSE (
                SELECT i.id FROM impressions i WHERE i.user_id = ev.user_id
                AND i.item_id = ev.item_id AND i.timestamp <= ev.timestamp
                AND i.timestamp >= ev.timestamp - ?
                ORDER BY i.timestamp DESC, i.id DESC LIMIT 1
            ) END AS imp
            FROM ev
        ), per AS (
            SELECT imp,
                MAX(CASE WHEN event_type IN ({marks(clicks)}) THEN 1 ELSE 0 END) AS clicked,
                SUM(CASE WHEN event_type IN ({marks(conversions)}) THEN 1 ELSE 0 END) AS conv,
                COUNT(*) AS n
            FROM att WHERE imp IS NOT NULL GROUP BY imp
        )
        SELECT i.model_version, i.arm, {hour_col}i.rank, COUNT(*),
            COALESCE(SUM(per.clicked), 0), COALESCE(SUM(per.conv), 0), COALESCE(SUM(per.n), 0)
        FROM impressions i LEFT JOIN per ON per.imp = i.id
        WHERE i.timestamp >= ? AND i.timestamp < ?
        GROUP BY {group}, i.rank
        """
        args = [*feedback, window, *clicks, *conversions, lo, hi]
        people = f"""
        SELECT i.model_version, i.arm, {hour_col}COUNT(DISTINCT i.request_id),
            COUNT(DISTINCT i.user_id)
        FROM impressions i WHERE i.timestamp >= ? AND i.timestamp < ? GROUP BY {group}
        """
        with self._reading() as conn:
            conn.execute(self._SNAPSHOT)  # one snapshot for both queries
            by_rank = conn.execute(sql, args).fetchall()
            counts = conn.execute(people, (lo, hi)).fetchall()
            conn.execute("COMMIT")
        return _metrics_frame(by_rank, counts, keys)


def _metrics_frame(by_rank: list[tuple], counts: list[tuple], keys: list[str]) -> pd.DataFrame:
    """The metrics table from per-rank sums ``(*keys, rank, impressions, clicks,
    conversions, events)`` and distinct counts ``(*keys, requests, users)``."""
    if not by_rank:
        return pd.DataFrame(columns=[*keys, *_METRIC_COLUMNS])
    n_keys = len(keys)
    # counts as ints (PostgreSQL's SUM of a bigint is a numeric: Decimal in Python)
    by_rank = [(*r[: n_keys + 1], *(int(v) for v in r[n_keys + 1 :])) for r in by_rank]
    shown: dict[int, int] = {}
    clicked: dict[int, int] = {}
    for row in by_rank:
        rank, n, c = row[n_keys], row[n_keys + 1], row[n_keys + 2]
        shown[rank] = shown.get(rank, 0) + n
        clicked[rank] = clicked.get(rank, 0) + c
    sums: dict[tuple, list[float]] = {}  # impressions, clicks, conversions, events, expected
    for row in by_rank:
        key, rank = tuple(row[:n_keys]), row[n_keys]
        n, c, conv, ev = row[n_keys + 1 :]
        acc = sums.setdefault(key, [0, 0, 0, 0, 0.0])
        for j, v in enumerate((n, c, conv, ev, n * clicked[rank] / shown[rank])):
            acc[j] += v
    people = {tuple(r[:n_keys]): r[n_keys:] for r in counts}
    rows = []
    for key, (n, c, conv, ev, expected) in sums.items():
        requests, users = people[key]
        rows.append(
            (*key, requests, users, n, c, c / n, expected)
            + (c / expected if expected > 0 else math.nan, conv, conv / n, ev, ev / users)
        )
    # by version, then no arm before the arms, then hour
    rows.sort(key=lambda r: (r[0], r[1] is not None, r[1] or "", *r[2:n_keys]))
    out = pd.DataFrame.from_records(rows, columns=[*keys, *_METRIC_COLUMNS])
    out["arm"] = pd.Series([r[1] for r in rows], dtype=object)  # None, not NaN
    return out
