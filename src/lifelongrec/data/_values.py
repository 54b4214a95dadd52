"""Column checks shared by the readers: ids, numbers, epoch and ISO-8601 timestamps as
validated arrays, and the canonical events and :class:`~lifelongrec.data.Dataset` they
make. The first bad row raises a :class:`~lifelongrec._errors.DataError` naming the
file, the line, the column, the value and what was expected.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.data._files import _Rows
from lifelongrec.data._schema import (
    _TIMESTAMP_UNITS,
    _UNIT_WORDS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    Dataset,
    LoadReport,
    _timestamp_range_text,
    _timestamp_unit_hint,
    make_events,
)

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# --------------------------------------------------------------------- validation
def _ids(s: pd.Series, rows: _Rows, column: str, what: str) -> np.ndarray:
    """Ids as an object array of ``str``; empty or missing ids are errors."""
    if s.dtype.kind == "f":  # e.g. Parquet/JSON ids read as floats: 1.0 -> "1"
        whole = s.notna() & (s % 1 == 0)
        if bool(whole[s.notna()].all()):
            s = s.astype("Int64")
    missing = s.isna().to_numpy()
    text = s.astype(str)
    bad = missing | (text == "").to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            f"empty {what}",
            i,
            column=column,
            value=None if missing[i] else "",
            expected=f"a non-empty {what}",
        )
    return text.to_numpy(dtype=object)


def _floats(
    s: pd.Series, rows: _Rows, column: str, what: str, *, allow_missing: bool
) -> np.ndarray:
    """Numbers as ``float64``; with ``allow_missing`` empty/NaN/null cells become ``NaN``."""
    if s.dtype.kind in "iuf":
        values = s.to_numpy(dtype=np.float64)
        bad = np.zeros(len(values), dtype=bool) if allow_missing else np.isnan(values)
    else:
        num = pd.to_numeric(s, errors="coerce")
        values = num.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values)
        if allow_missing:
            raw = s.astype(str).str.strip().str.lower()
            bad &= ~(s.isna() | raw.isin(["", "nan", "na", "null", "none"])).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            f"non-numeric {what}",
            i,
            column=column,
            value=s.iloc[i],
            expected="a number" + (" or an empty cell" if allow_missing else ""),
        )
    return values


def _whole_numbers(s: pd.Series, rows: _Rows, column: str, what: str, expected: str) -> np.ndarray:
    """The column's values as whole numbers, never rounded or wrapped around.

    An ``int64`` array when every value fits, ``uint64`` for values above the ``int64``
    range, else ``float64`` (finite and whole: e.g. ``1e30``). Empty, non-numeric and
    fractional values raise :class:`DataError`.
    """
    has_na = bool(s.isna().any())
    if s.dtype.kind in "iu" and not has_na:
        return s.to_numpy(dtype=np.dtype(f"{s.dtype.kind}8"))
    num = s if s.dtype.kind in "iuf" else pd.to_numeric(s, errors="coerce")
    if num.dtype.kind in "iu" and not bool(num.isna().any()):
        return num.to_numpy(dtype=np.dtype(f"{num.dtype.kind}8"))
    floats = num.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(floats)
    bad[~bad] = floats[~bad] % 1 != 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problem = f"non-numeric {what}" if np.isnan(floats[i]) else f"non-integer {what}"
        raise rows.error(problem, i, column=column, value=s.iloc[i], expected=expected)
    return floats


def _outside(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """Which of ``values`` (``int64``, ``uint64`` or ``float64``) lie outside ``[low, high]``."""
    if values.dtype.kind == "u":
        return values > np.uint64(high) if high >= 0 else np.ones(len(values), dtype=bool)
    if values.dtype.kind == "f":
        return (values < float(low)) | (values > float(high))
    return (values < low) | (values > high)


def _ints(s: pd.Series, rows: _Rows, column: str, what: str) -> np.ndarray:
    """Integers (an age, an index) as ``int64``."""
    expected = "an integer"
    values = _whole_numbers(s, rows, column, what, expected)
    info = np.iinfo(np.int64)
    bad = _outside(values, int(info.min), int(info.max))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            f"{what} too large", i, column=column, value=s.iloc[i], expected="a 64-bit integer"
        )
    return values.astype(np.int64)


def _epoch_ints(
    s: pd.Series, rows: _Rows, column: str, unit: str = "s", *, option: str | None = None
) -> np.ndarray:
    """Integer epoch times in ``unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``) as ``int64`` seconds.

    Times outside :data:`TIMESTAMP_MIN` .. :data:`TIMESTAMP_MAX` raise :class:`DataError`;
    a value that looks like a finer unit says so, and names ``option`` (how the caller
    picks the unit) when there is one.
    """
    words = _UNIT_WORDS[unit]
    expected = f"an integer Unix timestamp ({words})"
    values = _whole_numbers(s, rows, column, "timestamp", expected)
    factor = _TIMESTAMP_UNITS[unit]
    bad = _outside(values, TIMESTAMP_MIN * factor, (TIMESTAMP_MAX + 1) * factor - 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        number = values[i].item()
        raise rows.error(
            "timestamp out of range",
            i,
            column=column,
            value=s.iloc[i],
            expected=_timestamp_range_text(unit) + _timestamp_unit_hint(number, unit, option),
        )
    if values.dtype.kind == "f":
        values = np.floor(values / factor) if factor > 1 else values
    elif factor > 1:
        values = values.astype(np.int64) // factor
    return values.astype(np.int64)


def _datetime_seconds(stamps: pd.Series, raw: pd.Series, rows: _Rows, column: str) -> np.ndarray:
    """UTC date/times (no missing ones) as epoch seconds, within the valid range."""
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    seconds = naive.astype("datetime64[s]").astype(np.int64)
    bad = (seconds < TIMESTAMP_MIN) | (seconds > TIMESTAMP_MAX)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            "timestamp out of range",
            i,
            column=column,
            value=raw.iloc[i],
            expected="a date/time from 1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z",
        )
    return seconds


def _iso_out_of_bounds(text: str) -> bool:
    """Whether ``text`` is an ISO-8601 date/time that pandas could not hold (e.g. year 9999)."""
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _timestamps(s: pd.Series, rows: _Rows, column: str, unit: str) -> np.ndarray:
    """Timestamps of a generic table as UTC epoch seconds; see :func:`read_table`."""
    option = "timestamp_unit"
    if isinstance(s.dtype, pd.DatetimeTZDtype) or s.dtype.kind == "M":
        stamps = pd.to_datetime(s, utc=True)
        bad = stamps.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise rows.error(
                "missing timestamp", i, column=column, value=None, expected="a date/time"
            )
        return _datetime_seconds(stamps, s, rows, column)
    if s.dtype.kind in "iuf":
        return _epoch_ints(s, rows, column, unit, option=option)
    present = s.notna() & (s.astype(str).str.strip() != "")
    if not bool(present.all()):
        i = int(np.flatnonzero(~present.to_numpy())[0])
        raise rows.error(
            "missing timestamp",
            i,
            column=column,
            value=s.iloc[i],
            expected="an epoch number or an ISO-8601 date/time",
        )
    first = str(s.iloc[0]).strip()
    if _NUMBER.fullmatch(first):
        return _epoch_ints(s.astype(str).str.strip(), rows, column, unit, option=option)
    text = s.astype(str).str.strip()
    stamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if _iso_out_of_bounds(text.iloc[i]):
            raise rows.error(
                "timestamp out of range",
                i,
                column=column,
                value=s.iloc[i],
                expected="a date/time from 1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z",
            )
        raise rows.error(
            "unparsable timestamp",
            i,
            column=column,
            value=s.iloc[i],
            expected="an ISO-8601 date/time like 2018-09-24T14:27:30Z "
            f"(the first row, {first!r}, is not a number, so the column is read as ISO-8601)",
        )
    return _datetime_seconds(stamps, s, rows, column)


def _events(
    frame: pd.DataFrame,
    rows: _Rows,
    *,
    user: str,
    item: str,
    timestamp: str,
    value: str | None,
    event_type: str,
) -> pd.DataFrame:
    """Validated canonical events from a frame of ``str`` columns."""
    users = _ids(frame[user], rows, user, "user id")
    items = _ids(frame[item], rows, item, "item id")
    stamps = _epoch_ints(frame[timestamp], rows, timestamp)
    values = None
    if value is not None:
        values = _floats(frame[value], rows, value, "rating", allow_missing=False)
    return make_events(users, items, stamps, event_type=event_type, value=values)


def _dataset(
    events: pd.DataFrame,
    *,
    path: Path,
    fmt: str,
    report: LoadReport,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    timestamps: str = "epoch",
    **meta: Any,
) -> Dataset:
    return Dataset(
        events=events,
        items=items,
        users=users,
        name=str(path),
        meta={"format": fmt, "timestamps": timestamps, **meta},
        report=report,
    )
