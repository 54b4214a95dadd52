"""Preprocessing: stable time order, de-duplication, implicit feedback, k-core.

Every function takes a :class:`~lifelongrec.data.Dataset` (or an events ``DataFrame``),
leaves it untouched and returns a new one whose ``report`` is the input's plus one entry
saying how many rows the step removed and why. Rows that survive keep their relative
order (except in :func:`sort_by_time`, whose job is to reorder) and any extra columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_int, check_number
from lifelongrec.data._schema import Dataset, LoadReport, as_dataset

__all__ = ["deduplicate", "implicit_feedback", "kcore", "sort_by_time"]


def _with(data: Dataset, events: pd.DataFrame, step: str, reason: str, **meta: Any) -> Dataset:
    """A new Dataset with ``events``, the input's report plus one entry, and ``meta`` added."""
    report = LoadReport(entries=[dict(e) for e in data.report.entries])
    report.add(step, len(data.events), len(events), reason)
    out = data.with_events(events.reset_index(drop=True), report=report)
    out.meta.update(meta)
    return out


def _time_order(events: pd.DataFrame) -> np.ndarray:
    """Row positions in stable time order (equal timestamps keep the source order)."""
    return np.argsort(events["timestamp"].to_numpy(), kind="stable")


def sort_by_time(data: Dataset | pd.DataFrame) -> Dataset:
    """Order events by timestamp; equal timestamps keep their source order.

    Parameters
    ----------
    data
        A Dataset or an events frame.

    Returns
    -------
    Dataset
        The same events, stably sorted by ``timestamp`` (mergesort), index reset.
    """
    data = as_dataset(data)
    events = data.events.iloc[_time_order(data.events)]
    return _with(data, events, "sort_by_time", "stable sort by timestamp; no rows removed")


def deduplicate(
    data: Dataset | pd.DataFrame,
    subset: Sequence[str] = ("user_id", "item_id", "timestamp", "event_type"),
    keep: str = "first",
) -> Dataset:
    """Drop events that repeat another event on the ``subset`` columns.

    Parameters
    ----------
    data
        A Dataset or an events frame.
    subset
        The columns that make two events the same. The default removes exact repeats of
        an event; ``("user_id", "item_id")`` keeps one event per user-item pair.
    keep
        ``"first"`` or ``"last"``: which of the repeats to keep, in time order (stable, so
        among equal timestamps the source order decides).

    Returns
    -------
    Dataset
        The kept events in their input order.

    Raises
    ------
    ParameterError
        ``subset`` names a column the events lack, or ``keep`` is not first/last.
    """
    data = as_dataset(data)
    subset = [subset] if isinstance(subset, str) else list(subset)
    missing = [c for c in subset if c not in data.events.columns]
    if not subset or missing:
        raise ParameterError(
            "subset", subset, f"a non-empty list of event columns among {list(data.events.columns)}"
        )
    if keep not in ("first", "last"):
        raise ParameterError("keep", keep, "'first' or 'last'")
    order = _time_order(data.events)
    dup_sorted = data.events.iloc[order].duplicated(subset=subset, keep=keep).to_numpy()
    drop = np.zeros(len(order), dtype=bool)
    drop[order] = dup_sorted
    events = data.events[~drop]
    reason = f"repeats of ({', '.join(subset)}) removed, the {keep} in time order kept"
    return _with(data, events, "deduplicate", reason)


def implicit_feedback(
    data: Dataset | pd.DataFrame,
    threshold: float = 4.0,
    *,
    keep_missing: bool = True,
) -> Dataset:
    """Keep the events that count as positive feedback: ``value >= threshold``.

    Parameters
    ----------
    data
        A Dataset or an events frame.
    threshold
        The lowest value kept (e.g. 4 stars out of 5).
    keep_missing
        Keep events with no value (``NaN``: views, clicks, tags), treating them as
        implicit positives. ``False`` drops them.

    Returns
    -------
    Dataset
        The kept events in input order; values are left as they were.

    Raises
    ------
    ParameterError
        ``threshold`` is not a finite number.
    """
    data = as_dataset(data)
    check_number("threshold", threshold)
    values = pd.to_numeric(data.events["value"], errors="coerce").to_numpy(dtype=np.float64)
    missing = np.isnan(values)
    keep = (values >= threshold) | (missing & keep_missing)
    reason = f"events with value < {threshold:g} removed" + (
        "; events without a value kept" if keep_missing else "; events without a value removed"
    )
    return _with(data, data.events[keep], "implicit_feedback", reason)


def kcore(
    data: Dataset | pd.DataFrame,
    k: int = 5,
    user_k: int | None = None,
    item_k: int | None = None,
) -> Dataset:
    """Keep the k-core: repeatedly drop users and items with too few events, until stable.

    Parameters
    ----------
    data
        A Dataset or an events frame.
    k
        The minimum number of events (rows, repeats included) per user and per item.
    user_k, item_k
        Separate minimums for users and items; each defaults to ``k``.

    Returns
    -------
    Dataset
        The surviving events in input order. ``meta["kcore"]`` holds ``user_k``,
        ``item_k`` and ``iterations`` (passes until nothing more was removed).

    Raises
    ------
    ParameterError
        A minimum is not an integer >= 1.
    """
    data = as_dataset(data)
    k = check_int("k", k, 1)
    user_k = k if user_k is None else check_int("user_k", user_k, 1)
    item_k = k if item_k is None else check_int("item_k", item_k, 1)
    users, _ = pd.factorize(data.events["user_id"], use_na_sentinel=False)
    items, _ = pd.factorize(data.events["item_id"], use_na_sentinel=False)
    alive = np.ones(len(users), dtype=bool)
    iterations = 0
    while True:
        iterations += 1
        u_count = np.bincount(users[alive], minlength=users.max(initial=-1) + 1)
        i_count = np.bincount(items[alive], minlength=items.max(initial=-1) + 1)
        keep = alive & (u_count[users] >= user_k) & (i_count[items] >= item_k)
        if keep.sum() == alive.sum():
            break
        alive = keep
    events = data.events[alive]
    reason = (
        f"users with < {user_k} and items with < {item_k} events removed "
        f"until stable ({iterations} iteration{'s' if iterations > 1 else ''})"
    )
    return _with(
        data,
        events,
        "kcore",
        reason,
        kcore={"user_k": user_k, "item_k": item_k, "iterations": iterations},
    )
