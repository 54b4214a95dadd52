"""The event and catalogue arguments of ``observe`` and ``add_items``, checked.

:func:`event_columns` turns ``observe``'s events (a frame, a Dataset or a mapping of
columns) into checked column arrays; :func:`_catalogue_frame` checks an ``add_items``
catalogue. A bad argument raises a :class:`~lifelongrec.DataError` that names the column,
the value and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError
from lifelongrec._params import is_int
from lifelongrec.data._schema import (
    DEFAULT_EVENT_TYPE,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    Dataset,
    frame_of,
)

__all__ = ["event_columns"]


def event_columns(events: Any) -> tuple[dict[str, np.ndarray], pd.DataFrame | None]:
    """``observe``'s argument as checked column arrays (ids as ``str``) and its items.

    ``events`` is a DataFrame in the event schema, a :class:`~lifelongrec.data.Dataset`
    (whose ``items`` are returned too) or a mapping of column name -> array. Returns
    ``user_id``, ``item_id``, ``event_type`` (object arrays), ``timestamp`` (int64) and
    ``value`` (float64, NaN when absent).

    Raises
    ------
    DataError
        Not one of those forms, a required column missing, columns of different
        lengths, a missing id, a non-integer timestamp or a value that is not a number.
    """
    items = None
    if isinstance(events, Dataset):
        events, items = events.events, events.items
    if not isinstance(events, (pd.DataFrame, Mapping)):
        raise DataError(
            "cannot use this object as events",
            value=type(events).__name__,
            expected="a pandas DataFrame, a lifelongrec.data.Dataset or a mapping of "
            "column name -> array with user_id, item_id, timestamp",
        )
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in events]
    if missing:
        raise DataError(
            "events lack required columns",
            value=missing,
            expected="columns user_id, item_id, timestamp (event_type, value optional)",
        )
    raw = {c: np.asarray(events[c]) for c in EVENT_COLUMNS if c in events}
    n = len(raw["user_id"])
    for name, values in raw.items():
        if values.ndim != 1 or len(values) != n:
            raise DataError(
                "event columns differ in length",
                column=name,
                value=f"shape {values.shape}",
                expected=f"{n} values, one per event (as user_id has)",
            )
    cols: dict[str, np.ndarray] = {}
    for name in ("user_id", "item_id"):
        values = raw[name]
        bad = np.asarray(pd.isna(values), dtype=bool)
        if bad.any():
            raise DataError(
                f"{name} is missing",
                column=name,
                value=f"event {int(np.flatnonzero(bad)[0])} (0-based position)",
                expected="an id in every event",
            )
        cols[name] = values.astype(str).astype(object)
    ts = raw["timestamp"]
    if ts.dtype.kind not in "iu":
        ok = np.fromiter(
            (is_int(t) for t in ts.tolist()),
            bool,
            n,
        )
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise DataError(
                "timestamp is not an integer",
                column="timestamp",
                value=f"{ts[i]!r} in event {i} (0-based position)",
                expected="integer UTC epoch seconds",
            )
    cols["timestamp"] = ts.astype(np.int64)
    et = raw.get("event_type")
    cols["event_type"] = (
        np.full(n, DEFAULT_EVENT_TYPE, dtype=object) if et is None else et.astype(object)
    )
    value = raw.get("value")
    try:
        cols["value"] = np.full(n, np.nan) if value is None else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "values must be numbers", column="value", expected="numbers or NaN"
        ) from None
    return cols, items


def _catalogue_frame(items: Any) -> pd.DataFrame:
    """Validate an ``add_items`` argument and return its catalogue frame."""
    frame = frame_of(
        items,
        ITEM_COLUMNS,
        what="an item catalogue",
        frame_name="items frame",
        accepts=f"a pandas DataFrame with columns {list(ITEM_COLUMNS)} "
        "or a lifelongrec.data.Dataset with items",
        part="items",
    )
    null = frame["item_id"].isna().to_numpy()
    if null.any():
        raise DataError(
            "item_id is missing in the catalogue",
            column="item_id",
            value=f"row {int(np.flatnonzero(null)[0])} (0-based position in the frame)",
            expected="an id in every row",
        )
    ids = frame["item_id"].astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise DataError(
            "the catalogue names an item more than once",
            column="item_id",
            value=sorted(set(ids[dup]))[:10],
            expected="one row per item (merge or drop the repeated rows first)",
        )
    return frame
