"""Rows in and out of the event store: every appended row checked, read rows as frames.

A bad row raises a :class:`~lifelongrec.DataError` that names the row (0-based, also
its ``row`` attribute), the field, the value and what was expected; nothing of the
batch is written. ``_lookup`` finds stored keys in chunks that stay under SQLite's
host-parameter limit.
"""

from __future__ import annotations

import math
import numbers
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import check_int, is_int
from lifelongrec.data._schema import EVENT_COLUMNS, frame_of

_CHUNK = 900  # ids per "IN (...)" lookup, well under SQLite's host-parameter limit
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _lookup(conn: sqlite3.Connection, select: str, keys: Sequence[str | None]) -> dict:
    """``{key: value}`` for the stored keys among ``keys`` (``select`` ends with "IN")."""
    wanted = list({k for k in keys if k is not None})
    found: dict = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(conn.execute(f"{select} ({marks})", chunk).fetchall())
    return found


def _bad(row: int, field: str, problem: str, value: Any, expected: str) -> DataError:
    err = DataError(f"row {row}: {problem}", column=field, value=value, expected=expected)
    err.row = row  # the 0-based position in the batch, for callers that report it
    return err


def _count(name: str, value: Any) -> int:
    return check_int(name, value, 0)


def _id_argument(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ParameterError(name, value, "a non-empty string")
    return str(value)


def _exact_columns(frame: Any, columns: Sequence[str], what: str) -> pd.DataFrame:
    frame = frame_of(
        frame,
        columns,
        what=what,
        frame_name=f"{what} frame",
        accepts=f"a pandas DataFrame with columns {list(columns)}",
    )
    extra = [c for c in frame.columns if c not in columns]
    if extra:
        raise DataError(
            f"{what} frame has columns the store does not keep",
            value=extra,
            expected=f"only {list(columns)} (drop the others first)",
        )
    return frame


def _strings(values: list, field: str, what: str) -> list[str]:
    for pos, v in enumerate(values):
        if not isinstance(v, str) or not v:
            raise _bad(pos, field, f"bad {what}", v, "a non-empty string")
    return [str(v) for v in values]  # numpy str_ -> str


def _event_columns(events: Any) -> list[list]:
    """The batch's five columns as lists of Python values, every row checked."""
    frame = _exact_columns(events, EVENT_COLUMNS, "events")
    users = _strings(frame["user_id"].tolist(), "user_id", "user id")
    items = _strings(frame["item_id"].tolist(), "item_id", "item id")
    types = _strings(frame["event_type"].tolist(), "event_type", "event type")
    return [users, items, _timestamps(frame["timestamp"]), types, _values(frame["value"])]


def _timestamps(col: pd.Series) -> list[int]:
    expected = "an integer (UTC epoch seconds) in the int64 range"
    if col.dtype.kind == "i":
        return col.to_numpy(dtype=np.int64).tolist()
    if col.dtype.kind == "u":
        big = np.flatnonzero(col.to_numpy() > _INT64_MAX)
        if len(big):
            raise _bad(
                int(big[0]), "timestamp", "timestamp out of range", col.iloc[big[0]], expected
            )
        return col.to_numpy(dtype=np.int64).tolist()
    values = col.tolist()
    for pos, v in enumerate(values):
        if not is_int(v) or not _INT64_MIN <= v <= _INT64_MAX:
            raise _bad(pos, "timestamp", "bad timestamp", v, expected)
    return [int(v) for v in values]


def _values(col: pd.Series) -> list[float | None]:
    expected = "a real number, or NaN/None when absent"
    if col.dtype.kind in "fiu":
        arr = col.to_numpy(dtype=np.float64)
        return [None if math.isnan(v) else v for v in arr.tolist()]
    out: list[float | None] = []
    for pos, v in enumerate(col.tolist()):
        if v is None or v is pd.NA:
            out.append(None)
        elif isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
            out.append(None if math.isnan(v) else float(v))
        else:
            raise _bad(pos, "value", "bad value", v, expected)
    return out


def _event_ids(
    event_ids: Any, n: int, name: str = "event_ids", what: str = "event id"
) -> list[str | None]:
    """``name`` (``None``, or one id or ``None`` per event) as a list of ``n`` entries."""
    if event_ids is None:
        return [None] * n
    if isinstance(event_ids, (str, bytes)) or not hasattr(event_ids, "__len__"):
        raise ParameterError(name, event_ids, "None or a sequence of ids, one per event")
    if len(event_ids) != n:
        raise ParameterError(name, f"{len(event_ids)} ids", f"None or one id per event ({n})")
    values = event_ids.tolist() if hasattr(event_ids, "tolist") else list(event_ids)
    out: list[str | None] = []
    for pos, v in enumerate(values):
        if isinstance(v, str) and v:
            out.append(str(v))
        elif v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            field = what.replace(" ", "_")
            raise _bad(pos, field, f"bad {what}", v, "a non-empty string or None")
    return out


def _events_frame(rows: list[tuple]) -> pd.DataFrame:
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    return pd.DataFrame(
        {
            "user_id": np.array(cols[0], dtype=object),
            "item_id": np.array(cols[1], dtype=object),
            "timestamp": np.array(cols[2], dtype=np.int64),
            "event_type": np.array(cols[3], dtype=object),
            "value": np.array(cols[4], dtype=np.float64),  # NULL -> NaN
            "seq": np.array(cols[5], dtype=np.int64),
        }
    )
