"""Dataset statistics (``lifelongrec data info``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.data._schema import Dataset, as_dataset

__all__ = ["describe"]


def _spread(counts: pd.Series) -> dict[str, float | int] | None:
    if len(counts) == 0:
        return None
    return {
        "min": int(counts.min()),
        "median": float(counts.median()),
        "max": int(counts.max()),
        "mean": float(counts.mean()),
    }


def _iso(ts: int) -> str | None:
    try:
        return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def describe(data: Dataset | pd.DataFrame) -> dict[str, Any]:
    """Counts, density, time span, event types, values and catalogue coverage of a dataset.

    Parameters
    ----------
    data
        A Dataset or an events frame.

    Returns
    -------
    dict
        JSON-serialisable (plain ``int``/``float``/``str``/``None``, lists and dicts):
        ``name``, ``format``, ``n_events``, ``n_users``, ``n_items``, ``density``
        (events / (users x items), repeats included), ``timestamps`` (``"epoch"`` or
        ``"ordinal"``), ``time`` (``min``/``max`` and, for epoch times, ``min_utc``/
        ``max_utc`` ISO-8601 strings and ``span_days``), ``event_types`` (type -> count),
        ``value`` (``count``/``min``/``max``/``mean`` of the non-missing values, or
        ``None``), ``events_per_user`` and ``events_per_item`` (``min``/``median``/
        ``max``/``mean``), ``catalogue`` (``n_items``, ``with_title``,
        ``with_categories``, ``n_categories``, ``items_without_events``,
        ``event_items_not_in_catalogue``; ``None`` without a catalogue), ``n_users_table``
        (rows of ``users`` or ``None``) and ``report`` (the load report entries).
    """
    data = as_dataset(data)
    events = data.events
    n_events = len(events)
    n_users = data.n_users
    n_items = data.n_items
    kind = data.meta.get("timestamps", "epoch")
    time: dict[str, Any] | None = None
    if n_events:
        ts = events["timestamp"].to_numpy()
        lo, hi = int(ts.min()), int(ts.max())
        time = {"min": lo, "max": hi}
        if kind != "ordinal":
            time.update(
                {"min_utc": _iso(lo), "max_utc": _iso(hi), "span_days": (hi - lo) / 86400.0}
            )
    values = pd.to_numeric(events["value"], errors="coerce").to_numpy(dtype=np.float64)
    values = values[~np.isnan(values)]
    value = None
    if len(values):
        value = {
            "count": len(values),
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
        }
    catalogue = None
    if data.items is not None:
        items = data.items
        titles = items["title"]
        has_title = titles.notna() & (titles.astype(str).str.len() > 0)
        cats = items["categories"]
        has_cats = cats.map(lambda c: bool(len(c)) if c is not None else False)
        distinct = {c for cs in cats if cs is not None for c in cs}
        catalogue_ids = pd.Index(items["item_id"].astype(str).unique())
        event_ids = pd.Index(events["item_id"].astype(str).unique())
        catalogue = {
            "n_items": len(items),
            "with_title": int(has_title.sum()),
            "with_categories": int(has_cats.sum()),
            "n_categories": len(distinct),
            "items_without_events": len(catalogue_ids.difference(event_ids)),
            "event_items_not_in_catalogue": len(event_ids.difference(catalogue_ids)),
        }
    return {
        "name": data.name,
        "format": data.meta.get("format"),
        "n_events": n_events,
        "n_users": n_users,
        "n_items": n_items,
        "density": n_events / (n_users * n_items) if n_users and n_items else 0.0,
        "timestamps": kind,
        "time": time,
        "event_types": {
            str(k): int(v) for k, v in events["event_type"].value_counts(sort=True).items()
        },
        "value": value,
        "events_per_user": _spread(events.groupby("user_id", sort=False).size()),
        "events_per_item": _spread(events.groupby("item_id", sort=False).size()),
        "catalogue": catalogue,
        "n_users_table": None if data.users is None else len(data.users),
        "report": [dict(e) for e in data.report.entries],
    }
