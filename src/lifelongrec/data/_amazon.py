"""The Amazon reviews reader (McAuley et al. JSON lines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lifelongrec.data._files import _existing, _json_records
from lifelongrec.data._schema import Dataset, LoadReport, make_events, make_items
from lifelongrec.data._values import _dataset, _epoch_ints, _floats, _ids

__all__ = ["read_amazon_reviews"]


def read_amazon_reviews(path: str | Path, *, verified: bool = False) -> Dataset:
    """Read Amazon reviews (McAuley et al. 2014/2018 JSON lines, optionally gzipped).

    Parameters
    ----------
    path
        A ``.json``/``.jsonl`` file, optionally ``.gz``, one review per line with keys
        ``reviewerID``, ``asin``, ``overall`` and ``unixReviewTime``.
    verified
        Add a boolean ``verified`` column to ``events`` (the verified-purchase flag;
        ``False`` where absent). Off by default, keeping the canonical columns only.

    Returns
    -------
    Dataset
        ``events``: one ``"rating"`` event per review in file order, ``value`` the star
        rating. ``items``: every reviewed ``asin`` (in order of first review) with no
        title, categories or attributes (reviews files carry none). ``meta["verified"]``
        counts verified reviews.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataError
        A line is not a JSON object, or lacks a key, or has a bad rating or time.
    """
    p = _existing(path, "Amazon reviews file")
    keys = ("reviewerID", "asin", "overall", "unixReviewTime")
    cols, rows = _json_records(p, keys, optional=("verified",))
    frame = {k: pd.Series(v, dtype=object) for k, v in cols.items()}
    events = make_events(
        _ids(frame["reviewerID"], rows, "reviewerID", "user id"),
        _ids(frame["asin"], rows, "asin", "item id"),
        _epoch_ints(frame["unixReviewTime"], rows, "unixReviewTime"),
        event_type="rating",
        value=_floats(frame["overall"], rows, "overall", "rating", allow_missing=False),
    )
    flags = np.asarray([v is True for v in cols["verified"]], dtype=bool)
    if verified:
        events["verified"] = flags
    report = LoadReport()
    report.add(f"read {p.name}", len(events), len(events), "no rows removed")
    items = make_items(pd.unique(events["item_id"].to_numpy()))
    return _dataset(
        events, path=p, fmt="amazon", report=report, items=items, verified=int(flags.sum())
    )
