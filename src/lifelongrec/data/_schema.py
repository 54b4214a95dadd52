"""The event and item schema every reader produces and every model consumes.

An event is ``user_id, item_id, timestamp, event_type, value``:

* ``user_id``, ``item_id``: external ids as strings, exactly as the source spelled them;
* ``timestamp``: UTC epoch seconds, ``int64``; sources without time give an ordinal
  (``Dataset.meta["timestamps"] == "ordinal"``);
* ``event_type``: a string; ``"interaction"`` when the source has none;
* ``value``: ``float64``, e.g. a rating; ``NaN`` when absent.

Rows keep the source's order; sorting by time is stable, so equal timestamps keep it too.

An impression (what a user was shown: ``Dataset.impressions``) is ``user_id, item_id,
timestamp`` (more columns, e.g. ``rank``, are kept as they are).

An item is ``item_id, title, categories, attributes``: ``title`` a string or ``None``,
``categories`` a list of strings, ``attributes`` a dict of scalar values (e.g. price).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError

__all__ = [
    "EVENT_COLUMNS",
    "ITEM_COLUMNS",
    "SHOWN_COLUMNS",
    "DEFAULT_EVENT_TYPE",
    "TIMESTAMP_MIN",
    "TIMESTAMP_MAX",
    "TIMESTAMP_RANGE",
    "Dataset",
    "LoadReport",
    "make_events",
    "make_items",
    "as_dataset",
    "check_impressions",
    "frame_of",
]

EVENT_COLUMNS = ("user_id", "item_id", "timestamp", "event_type", "value")
ITEM_COLUMNS = ("item_id", "title", "categories", "attributes")
SHOWN_COLUMNS = ("user_id", "item_id", "timestamp")
DEFAULT_EVENT_TYPE = "interaction"
#: The valid event times, UTC epoch seconds: 1970-01-01T00:00:00Z ..
#: 2199-12-31T23:59:59Z. Readers and the service refuse times outside it (a value
#: above it is most often milliseconds or microseconds read as seconds).
TIMESTAMP_MIN = 0
TIMESTAMP_MAX = 7_258_118_399
TIMESTAMP_RANGE = "UTC epoch seconds from 0 (1970-01-01) to 7258118399 (2199-12-31)"

#: Units of numeric epoch times and how many of each make one second.
_TIMESTAMP_UNITS: dict[str, int] = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
#: A finer unit is suggested only when it would put the time after this (1980-01-01):
#: a seconds value that is merely too large should not read as a 1970 millisecond.
_PLAUSIBLE_FROM = 315_532_800


def _utc_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp_unit_hint(value: Any, unit: str = "s", option: str | None = None) -> str:
    """Why a numeric time in ``unit`` is out of range, and which finer unit it looks like.

    Returns ``""`` when nothing useful can be said, else a text that starts with ``"; "``
    (to append to a :class:`DataError`'s ``expected``), e.g. ``"; it looks like
    milliseconds (2017-07-14T02:40:00Z), while this source's times are read as seconds:
    pass timestamp_unit='ms' ..."``. ``option`` names the parameter that chooses the
    unit; without one the source's unit is fixed.
    """
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return ""
    if not np.isfinite(number):
        return ""
    exact = int(value) if isinstance(value, (int, np.integer)) else number
    if abs(exact) >= 2**63:
        return "; the value does not even fit a 64-bit integer"
    if exact <= (TIMESTAMP_MAX + 1) * _TIMESTAMP_UNITS[unit] - 1:
        return ""
    finer = list(_TIMESTAMP_UNITS)[list(_TIMESTAMP_UNITS).index(unit) + 1 :]
    for candidate in finer:
        factor = _TIMESTAMP_UNITS[candidate] // _TIMESTAMP_UNITS[unit]
        seconds = int(exact // factor) // _TIMESTAMP_UNITS[unit]
        if _PLAUSIBLE_FROM <= seconds <= TIMESTAMP_MAX:
            fix = (
                f"pass {option}={candidate!r} (on the command line: "
                f"--{option.replace('_', '-')} {candidate})"
                if option
                else f"convert them to {_UNIT_WORDS[unit]} first"
            )
            return (
                f"; it looks like {_UNIT_WORDS[candidate]} ({_utc_text(seconds)}), "
                f"while this source's times are read as {_UNIT_WORDS[unit]}: {fix}"
            )
    return ""


def _timestamp_range_text(unit: str = "s") -> str:
    """:data:`TIMESTAMP_RANGE` written in ``unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``)."""
    if unit == "s":
        return TIMESTAMP_RANGE
    factor = _TIMESTAMP_UNITS[unit]
    return (
        f"UTC epoch {_UNIT_WORDS[unit]} from {TIMESTAMP_MIN * factor} (1970-01-01) to "
        f"{(TIMESTAMP_MAX + 1) * factor - 1} (2199-12-31)"
    )


@dataclass
class LoadReport:
    """What a loader or preprocessing step did to the rows: nothing is dropped silently.

    Each entry is ``{"step", "rows_in", "rows_out", "removed", "reason"}``.
    """

    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, step: str, rows_in: int, rows_out: int, reason: str) -> None:
        self.entries.append(
            {
                "step": step,
                "rows_in": int(rows_in),
                "rows_out": int(rows_out),
                "removed": int(rows_in) - int(rows_out),
                "reason": reason,
            }
        )

    def removed(self, step: str | None = None) -> int:
        return sum(e["removed"] for e in self.entries if step is None or e["step"] == step)

    def __str__(self) -> str:
        if not self.entries:
            return "no rows removed"
        return "\n".join(
            f"{e['step']}: {e['rows_in']} -> {e['rows_out']} rows ({e['removed']} removed: {e['reason']})"
            for e in self.entries
        )


def make_events(
    user_id: Any,
    item_id: Any,
    timestamp: Any,
    event_type: Any = None,
    value: Any = None,
) -> pd.DataFrame:
    """Build an events frame in the canonical schema from columns (arrays or lists).

    Ids become strings; ``timestamp`` must be integral; ``event_type`` defaults to
    ``"interaction"``; ``value`` to ``NaN``.
    """
    users = pd.Series(np.asarray(user_id)).astype(str)
    n = len(users)
    ts = np.asarray(timestamp)
    if ts.dtype.kind not in "iu":
        raise DataError(
            "timestamps must be integers (UTC epoch seconds)",
            column="timestamp",
            value=ts.dtype.name,
            expected="an integer dtype",
        )
    if event_type is None:
        et = pd.Series([DEFAULT_EVENT_TYPE] * n)
    elif isinstance(event_type, str):
        et = pd.Series([event_type] * n)
    else:
        et = pd.Series(np.asarray(event_type)).astype(str)
    val = np.full(n, np.nan) if value is None else np.asarray(value, dtype=np.float64)
    return pd.DataFrame(
        {
            "user_id": users.to_numpy(dtype=object),
            "item_id": pd.Series(np.asarray(item_id)).astype(str).to_numpy(dtype=object),
            "timestamp": ts.astype(np.int64),
            "event_type": et.to_numpy(dtype=object),
            "value": val,
        }
    )


def make_items(
    item_id: Any,
    title: Any = None,
    categories: Any = None,
    attributes: Any = None,
) -> pd.DataFrame:
    """Build an items frame in the canonical schema."""
    ids = [str(i) for i in item_id]
    n = len(ids)
    return pd.DataFrame(
        {
            "item_id": pd.Series(ids, dtype=object),
            "title": pd.Series([None] * n if title is None else list(title), dtype=object),
            "categories": pd.Series(
                [[] for _ in range(n)] if categories is None else [list(c) for c in categories],
                dtype=object,
            ),
            "attributes": pd.Series(
                [{} for _ in range(n)] if attributes is None else [dict(a) for a in attributes],
                dtype=object,
            ),
        }
    )


@dataclass
class Dataset:
    """Events plus what is known about items and users.

    Attributes
    ----------
    events
        ``pd.DataFrame`` with :data:`EVENT_COLUMNS`, in source order.
    items
        ``pd.DataFrame`` with :data:`ITEM_COLUMNS` or ``None`` when the source has no catalogue.
    users
        ``pd.DataFrame`` with a ``user_id`` column and any attributes, or ``None``.
    name
        Where it came from (a path or ``"synthetic"``).
    meta
        Facts about the source, e.g. ``{"format": "movielens-100k", "timestamps": "epoch"}``.
    report
        The rows removed while loading and preprocessing, and why.
    impressions
        What the users were shown (the recommendations' items), a ``pd.DataFrame``
        with :data:`SHOWN_COLUMNS` (ids, integer epoch seconds; more columns allowed),
        or ``None``. Exposure-aware learners (the sequential model's
        ``exposure_weight``) take the shown items a user did not act on as negatives.
    """

    events: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    report: LoadReport = field(default_factory=LoadReport)
    impressions: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        missing = [c for c in EVENT_COLUMNS if c not in self.events.columns]
        if missing:
            raise DataError(
                "events frame lacks required columns",
                path=self.name or None,
                value=missing,
                expected=f"columns {list(EVENT_COLUMNS)}",
            )
        if self.items is not None:
            missing = [c for c in ITEM_COLUMNS if c not in self.items.columns]
            if missing:
                raise DataError(
                    "items frame lacks required columns",
                    path=self.name or None,
                    value=missing,
                    expected=f"columns {list(ITEM_COLUMNS)}",
                )
        if self.impressions is not None:
            check_impressions(self.impressions, self.name)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def n_users(self) -> int:
        return int(self.events["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return int(self.events["item_id"].nunique())

    def with_events(self, events: pd.DataFrame, report: LoadReport | None = None) -> Dataset:
        """The same catalogue and metadata with other events (e.g. a split's train part)."""
        return Dataset(
            events=events,
            items=self.items,
            users=self.users,
            name=self.name,
            meta=dict(self.meta),
            report=self.report if report is None else report,
        )


def check_impressions(frame: Any, name: str = "") -> None:
    """Check impressions (``Dataset.impressions``): a DataFrame with
    :data:`SHOWN_COLUMNS`, ids present, integer timestamps; :class:`DataError` names the
    first row that is not (``name``: where they came from)."""
    where = name or None
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            "impressions are not a DataFrame",
            path=where,
            value=type(frame).__name__,
            expected=f"None or a pandas DataFrame with columns {list(SHOWN_COLUMNS)}",
        )
    missing = [c for c in SHOWN_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            "impressions frame lacks required columns",
            path=where,
            value=missing,
            expected=f"columns {list(SHOWN_COLUMNS)}",
        )
    for col in ("user_id", "item_id"):
        bad = frame[col].isna().to_numpy()
        if bad.any():
            raise DataError(
                f"impressions row {int(np.flatnonzero(bad)[0])} has no {col}",
                path=where,
                column=col,
                expected=f"a {col} in every impression",
            )
    ts = pd.to_numeric(frame["timestamp"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(ts) | (ts != np.round(ts))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"impressions row {at} has a timestamp that is no whole number",
            path=where,
            column="timestamp",
            value=frame["timestamp"].iloc[at],
            expected="integer UTC epoch seconds, as the events' timestamps",
        )


def as_dataset(data: Any, name: str = "") -> Dataset:
    """Accept a :class:`Dataset` or an events ``DataFrame`` and return a :class:`Dataset`."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, pd.DataFrame):
        events = data
        if "event_type" not in events.columns or "value" not in events.columns:
            events = events.copy()
            if "event_type" not in events.columns:
                events["event_type"] = DEFAULT_EVENT_TYPE
            if "value" not in events.columns:
                events["value"] = np.nan
        return Dataset(events=events, name=name)
    raise DataError(
        "cannot use this object as interaction data",
        value=type(data).__name__,
        expected="a lifelongrec.data.Dataset or a pandas DataFrame with columns "
        "user_id, item_id, timestamp (event_type and value optional)",
    )


def frame_of(
    value: Any,
    columns: Sequence[str],
    *,
    what: str,
    frame_name: str,
    accepts: str,
    part: str = "events",
    note: str = "",
) -> pd.DataFrame:
    """The DataFrame ``value`` (or a :class:`Dataset`'s ``part``), checked to have ``columns``.

    Raises :class:`DataError` "cannot use this object as {what}" (expected ``accepts``)
    when it is no DataFrame, and "{frame_name} lacks required columns" (expected the
    columns, then ``note``) when columns are missing.
    """
    frame = getattr(value, part) if isinstance(value, Dataset) else value
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"cannot use this object as {what}", value=type(value).__name__, expected=accepts
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{frame_name} lacks required columns",
            value=missing,
            expected=f"columns {list(columns)}{note}",
        )
    return frame
