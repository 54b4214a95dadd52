"""Splits: leave-one-out, a global temporal cut, and contiguous time windows.

Every part is a :class:`~lifelongrec.data.Dataset` made with
:meth:`~lifelongrec.data.Dataset.with_events`, so all parts share the input's catalogue
(``items``, ``users``). Parts hold their events in time order (stable: equal timestamps
keep the source order) with a fresh index; the input is never modified.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import check_int, check_number
from lifelongrec.data._schema import Dataset, LoadReport, as_dataset

__all__ = ["Split", "leave_one_out", "temporal_split", "time_windows"]


@dataclass
class Split:
    """Train, validation and test parts of one dataset.

    Attributes
    ----------
    train, valid, test
        The parts; ``valid`` may have no events.
    protocol
        ``"leave_one_out"`` or ``"temporal"``.
    meta
        Counts and cut points of the split (see the function that made it).
    """

    train: Dataset
    valid: Dataset
    test: Dataset
    protocol: str
    meta: dict[str, Any] = field(default_factory=dict)
    # Position of each part's rows in the stable time order of the whole input, so that
    # ``train_full`` restores the exact order even among equal timestamps.
    _ranks: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def train_full(self) -> Dataset:
        """Train and validation events together, in time order (for the final fit)."""
        events = pd.concat([self.train.events, self.valid.events], ignore_index=True)
        if self._ranks is not None:
            key = np.concatenate([self._ranks["train"], self._ranks["valid"]])
            order = np.argsort(key, kind="stable")
        else:
            order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
        out = self.train.with_events(events.iloc[order].reset_index(drop=True))
        out.meta["split"] = "train_full"
        return out


def _sorted(data: Any) -> tuple[Dataset, pd.DataFrame]:
    data = as_dataset(data)
    if len(data.events) == 0:
        raise DataError("no events to split", path=data.name or None, expected="at least one event")
    order = np.argsort(data.events["timestamp"].to_numpy(), kind="stable")
    return data, data.events.iloc[order].reset_index(drop=True)


def _part(data: Dataset, events: pd.DataFrame, mask: np.ndarray, **meta: Any) -> Dataset:
    report = LoadReport(entries=[dict(e) for e in data.report.entries])
    out = data.with_events(events[mask].reset_index(drop=True), report=report)
    out.meta.update(meta)
    return out


def _split(
    data: Dataset, events: pd.DataFrame, parts: dict[str, np.ndarray], protocol: str, meta: dict
) -> Split:
    datasets = {
        name: _part(data, events, mask, split=name, protocol=protocol)
        for name, mask in parts.items()
    }
    ranks = {name: np.flatnonzero(mask) for name, mask in parts.items()}
    return Split(**datasets, protocol=protocol, meta=meta, _ranks=ranks)


def leave_one_out(data: Dataset | pd.DataFrame, n_valid: int = 1) -> Split:
    """Each user's last event is test, the ``n_valid`` before it are validation, the rest
    is train.

    Parameters
    ----------
    data
        A Dataset or an events frame. Events are ordered per user by time (stable:
        among equal timestamps the source order decides which is last).
    n_valid
        Validation events per user (int >= 1), never more than leave one train event:
        a user with ``n`` >= 3 events gives ``min(n_valid, n - 2)``. More than one (as
        ``lifelongrec tune`` uses) makes a validation figure less noisy where users
        are few; the test events are the same whatever ``n_valid`` is.

    Returns
    -------
    Split
        ``protocol == "leave_one_out"``. Users with 3 or more events give one test and
        at least one validation event; users with 2 events give one train and one test
        event (no validation); users with 1 event stay entirely in train. ``meta``
        counts ``n_users``, ``users_with_test``, ``users_with_valid``,
        ``users_without_valid`` (exactly 2 events) and ``users_train_only`` (1 event),
        and, with ``n_valid`` > 1, gives ``n_valid`` and ``valid_events``.

    Raises
    ------
    DataError
        There are no events.
    ParameterError
        ``n_valid`` is not an integer >= 1.
    """
    n_valid = check_int("n_valid", n_valid, 1)
    data, events = _sorted(data)
    groups = events.groupby("user_id", sort=False, dropna=False)
    from_end = groups.cumcount(ascending=False).to_numpy()
    size = groups["user_id"].transform("size").to_numpy()
    test = (from_end == 0) & (size >= 2)
    valid = (from_end >= 1) & (from_end <= np.minimum(n_valid, size - 2))
    train = ~(test | valid)
    first = from_end == size - 1  # one row per user
    per_user = size[first]
    meta: dict[str, Any] = {
        "n_users": int(first.sum()),
        "users_with_test": int((per_user >= 2).sum()),
        "users_with_valid": int((per_user >= 3).sum()),
        "users_without_valid": int((per_user == 2).sum()),
        "users_train_only": int((per_user == 1).sum()),
        "rule": "last event -> test, previous -> valid (users with >= 3 events); "
        "2 events -> train + test; 1 event -> train",
    }
    if n_valid > 1:
        meta["rule"] = (
            f"last event -> test, up to {n_valid} before it -> valid, at least one "
            "-> train (users with >= 3 events); 2 events -> train + test; 1 event -> train"
        )
        meta.update(n_valid=n_valid, valid_events=int(valid.sum()))
    return _split(
        data, events, {"train": train, "valid": valid, "test": test}, "leave_one_out", meta
    )


def _fraction(name: str, value: Any, low_open: bool) -> float:
    return check_number(name, value, 0, 1, low_open=low_open, high_open=True)


def temporal_split(
    data: Dataset | pd.DataFrame,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.0,
) -> Split:
    """Cut the whole timeline once: the latest events are test, the ones before validation.

    Parameters
    ----------
    data
        A Dataset or an events frame.
    test_fraction
        Share of events (by time quantile) for test, in (0, 1). The cut is the timestamp
        of the event at position ``floor((1 - test_fraction) * n)`` in time order; every
        event at or after it is test, so ties at the cut can make test a little larger.
    valid_fraction
        Share for validation, in [0, 1), cut the same way just before the test cut;
        ``test_fraction + valid_fraction`` must be below 1.

    Returns
    -------
    Split
        ``protocol == "temporal"``; ``meta`` holds ``test_start`` and ``valid_start``
        (timestamps, ``None`` without validation) and the event counts.

    Raises
    ------
    ParameterError
        A fraction is out of range.
    DataError
        No events, or no event falls before the cut (all share the earliest timestamps).

    Warns
    -----
    UserWarning
        The timestamps are ordinal (``meta["timestamps"] == "ordinal"``): they order events
        within a user only, so a global cut is not a cut in time.
    """
    test_fraction = _fraction("test_fraction", test_fraction, low_open=True)
    valid_fraction = _fraction("valid_fraction", valid_fraction, low_open=False)
    if test_fraction + valid_fraction >= 1.0:
        raise ParameterError(
            "valid_fraction",
            valid_fraction,
            f"below 1 - test_fraction = {1.0 - test_fraction:g} (train must keep events)",
        )
    data, events = _sorted(data)
    if data.meta.get("timestamps") == "ordinal":
        warnings.warn(
            f"{data.name or 'dataset'}: timestamps are ordinal (source order), so a global "
            "temporal cut follows the file's order, not time; prefer leave_one_out",
            UserWarning,
            stacklevel=2,
        )
    ts = events["timestamp"].to_numpy()
    n = len(ts)

    def position(share: float) -> int:  # floor(share * n), immune to 0.1 + 0.2 rounding
        return min(n - 1, math.floor(round(share * n, 9)))

    test_start = int(ts[position(1.0 - test_fraction)])
    valid_start = None
    train_end = test_start
    if valid_fraction > 0:
        valid_start = int(ts[position(1.0 - test_fraction - valid_fraction)])
        train_end = valid_start
    test = ts >= test_start
    valid = (ts >= train_end) & ~test
    train = ts < train_end
    if not train.any():
        raise DataError(
            "no events before the temporal cut",
            path=data.name or None,
            column="timestamp",
            value=train_end,
            expected="events earlier than the cut; the earliest timestamp holds too many "
            "events for these fractions",
        )
    meta = {
        "test_start": test_start,
        "valid_start": valid_start,
        "test_fraction": test_fraction,
        "valid_fraction": valid_fraction,
        "n_train": int(train.sum()),
        "n_valid": int(valid.sum()),
        "n_test": int(test.sum()),
    }
    return _split(data, events, {"train": train, "valid": valid, "test": test}, "temporal", meta)


def time_windows(
    data: Dataset | pd.DataFrame,
    n_windows: int,
    by: str = "count",
) -> list[Dataset]:
    """Cut the timeline into ``n_windows`` contiguous windows (for prequential evaluation).

    Parameters
    ----------
    data
        A Dataset or an events frame.
    n_windows
        How many windows, at least 1.
    by
        ``"count"``: windows of (nearly) equal numbers of events. Events with the same
        timestamp are never split across windows: each cut moves to the nearer edge of
        its block of equal timestamps, so window sizes can differ by up to a block.
        ``"duration"``: equal spans of time from the first to the last timestamp; a window
        with no events is returned empty.

    Returns
    -------
    list of Dataset
        In time order, each sorted by time, sharing the input's catalogue. Each window's
        ``meta`` has ``window`` (0-based), ``start`` and ``end`` (the inclusive range of
        timestamps it covers: its first and last event for ``"count"``, its time interval
        for ``"duration"``), ``n_windows`` and ``by``.

    Raises
    ------
    ParameterError
        ``n_windows`` is not an integer >= 1 (at most the number of events for
        ``"count"``), or ``by`` is unknown.
    DataError
        No events; or for ``"count"`` a window would be empty because one timestamp holds
        more events than a window.
    """
    if by not in ("count", "duration"):
        raise ParameterError("by", by, "'count' or 'duration'")
    n_windows = check_int("n_windows", n_windows, 1)
    data, events = _sorted(data)
    ts = events["timestamp"].to_numpy().astype(np.int64)
    n = len(ts)
    common = {"n_windows": n_windows, "by": by}
    windows: list[Dataset] = []
    if by == "count":
        if n_windows > n:
            raise ParameterError("n_windows", n_windows, f"at most the number of events ({n})")
        cuts = [0]
        for i in range(1, n_windows):
            pos = round(i * n / n_windows)
            left = int(np.searchsorted(ts, ts[pos], side="left"))
            right = int(np.searchsorted(ts, ts[pos], side="right"))
            cut = left if pos - left <= right - pos else right
            if cut <= cuts[-1] or cut >= n:
                raise DataError(
                    f"window {len(cuts) - 1} would be empty",
                    path=data.name or None,
                    column="timestamp",
                    value=int(ts[pos]),
                    expected=f"fewer windows or by='duration': {right - left} events share "
                    "this timestamp and equal timestamps are never split",
                )
            cuts.append(cut)
        cuts.append(n)
        for i in range(n_windows):
            mask = np.zeros(n, dtype=bool)
            mask[cuts[i] : cuts[i + 1]] = True
            start, end = int(ts[cuts[i]]), int(ts[cuts[i + 1] - 1])
            windows.append(_part(data, events, mask, window=i, start=start, end=end, **common))
        return windows
    t0 = int(ts[0])
    span = int(ts[-1]) - t0 + 1  # integer seconds covered
    index = ((ts - t0) * n_windows) // span
    for i in range(n_windows):
        start = t0 + -((-i * span) // n_windows)  # t0 + ceil(i * span / n)
        end = t0 + -((-(i + 1) * span) // n_windows) - 1
        windows.append(_part(data, events, index == i, window=i, start=start, end=end, **common))
    return windows
