"""Item age (``item_age=True``) and release age (``release_attribute``): what the
estimator does with the item tower's age parts
(:class:`~lifelongrec.models.sequential._modules.ItemTower`): first events and release
times in, the biases' starting point from a fit's targets, the bias columns scoring adds."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import torch

from lifelongrec._errors import DataError
from lifelongrec.models.sequential._content import catalogue_rows
from lifelongrec.models.sequential._events import Events
from lifelongrec.models.sequential._modules import NEVER
from lifelongrec.nn import Windows

__all__ = [
    "age_columns",
    "check_releases",
    "init_age_bias",
    "note_first_events",
    "query_clocks",
    "release_seconds",
]

_YEAR = re.compile(r"^\d{4}$")
_MAX_SECONDS = 253_402_300_800  # 10000-01-01 in epoch seconds
_RELEASE_EXPECTED = (
    "a release year (e.g. 1995), epoch seconds, or a date pandas can parse "
    "(e.g. '1995-01-01', '01-Jan-1995'); leave it out when unknown"
)


@functools.lru_cache(maxsize=65_536, typed=True)  # True is not 1.0
def _release_value(value: Any) -> int | None:
    """Epoch seconds (UTC) of one hashable release value, :data:`NEVER` when missing,
    ``None`` when not understood. Cached: a catalogue repeats its years and dates, and
    it is read on every fit, update and ``add_items`` (checked first, then kept)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return int(NEVER)
    when: Any = None
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if v.is_integer() and 1000 <= v <= 9999:  # a year: its first second
            return int(dt.datetime(int(v), 1, 1, tzinfo=dt.UTC).timestamp())
        return int(v) if abs(v) < _MAX_SECONDS else None  # epoch seconds before year 10000
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if _YEAR.match(text):
            return _release_value(int(text))
        when = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    elif isinstance(value, (dt.date, np.datetime64, pd.Timestamp)):
        when = pd.to_datetime(value, utc=True, errors="coerce")
    return None if when is None or pd.isna(when) else int(when.value // 1_000_000_000)


def _release_one(value: Any, item: Any, attribute: str) -> int:
    """:func:`_release_value`, raising :class:`DataError` naming ``item`` when the value
    is not understood (or not hashable: a list, a dict)."""
    try:
        seconds = _release_value(value)
    except TypeError:  # unhashable
        seconds = None
    if seconds is None:
        raise DataError(
            f"release of item {item!r} not understood",
            column=f"attributes.{attribute}",
            value=value,
            expected=_RELEASE_EXPECTED,
        )
    return seconds


def release_seconds(items: pd.DataFrame | None, ids: np.ndarray, attribute: str) -> np.ndarray:
    """Release time (int64 epoch seconds UTC; :data:`NEVER`: unknown) of each of the
    item ``ids`` from ``attributes[attribute]`` of its catalogue row in ``items``: a
    year (its 1 January), epoch seconds, or a date; no row, no such attribute or a
    missing value: unknown. A value that is none of these raises :class:`DataError`
    naming the item."""
    out = np.full(len(ids), NEVER, dtype=np.int64)
    rows, found = catalogue_rows(items, np.asarray(ids, dtype=object))
    at = np.flatnonzero(found)
    for k, (item, attrs) in enumerate(zip(rows["item_id"], rows["attributes"], strict=True)):
        if isinstance(attrs, dict) and attribute in attrs:
            out[at[k]] = _release_one(attrs[attribute], item, attribute)
    return out


def check_releases(items: pd.DataFrame | None, attribute: str | None) -> None:
    """Raise :class:`DataError` when a catalogue row's release is not understood (to
    call before anything changes); a no-op without ``attribute`` or rows."""
    if attribute is not None and items is not None and len(items):
        release_seconds(items, items["item_id"].astype(str).to_numpy(object), attribute)


def query_clocks(before: np.ndarray, clock: int) -> np.ndarray:
    """The newest second each query knows: one before its ``before`` (events strictly
    before it are visible), ``clock`` where ``before`` is infinite."""
    before = np.asarray(before, np.float64)
    finite = np.isfinite(before)
    return np.where(finite, np.ceil(np.where(finite, before, 0.0)) - 1, clock).astype(np.int64)


def note_first_events(tower: torch.nn.Module, ev: Events) -> None:
    """The events' items' first event times, into the tower (no-op without item age)."""
    if tower.first_ts is None or len(ev["item"]) == 0:
        return
    device = tower.first_ts.device
    tower.seen(torch.as_tensor(ev["item"], device=device), torch.as_tensor(ev["ts"]))


def init_age_bias(tower: torch.nn.Module, windows: Windows, seed: int, sample: int = 2048) -> None:
    """The age biases' start from a seeded sample of ``sample`` of the fit's targets
    (:meth:`ItemTower.init_age_bias`, :meth:`ItemTower.init_release_bias`); the
    training streams are untouched."""
    if not tower.has_age or windows.target_ts is None:
        return
    at = np.flatnonzero((windows.target_items > 0) & (windows.target_weight > 0))
    if len(at) == 0:
        return
    if len(at) > sample:
        at = np.random.default_rng(seed).choice(at, sample, replace=False)
    device = tower.id_emb.weight.device
    targets = torch.as_tensor(windows.target_items.ravel()[at], device=device)
    ts = torch.as_tensor(windows.target_ts.ravel()[at], device=device)
    if tower.age_bias is not None:
        tower.init_age_bias(ts, targets)
    if tower.release_bias is not None:
        tower.init_release_bias(ts, targets)


@torch.no_grad()
def age_columns(tower: torch.nn.Module, clocks: np.ndarray, live: np.ndarray) -> np.ndarray:
    """The age biases of every item row ``(Q, N)`` for the next event after each of
    the ``clocks`` (the newest event second a prediction knows, int64): an item first
    seen at that second is known by then (age 0); the new items among the ``live``
    rows share their mass (:meth:`ItemTower.new_norm`). With ``new_for`` the model is
    read as training read it that long after what it knew."""
    device = tower.id_emb.weight.device
    new_for = int(tower.config.new_for)
    ts = torch.as_tensor(np.asarray(clocks, np.int64) + 1 + new_for, device=device)[:, None]
    norm = tower.new_norm(ts, torch.as_tensor(np.asarray(live, bool), device=device))
    return tower.age_scores(ts, None, norm).cpu().numpy().astype(np.float32)
