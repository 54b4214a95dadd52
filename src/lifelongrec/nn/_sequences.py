"""Sequence building (numpy, vectorised) and padded training windows.

Events are per-event arrays grouped by user in time order (:func:`order_events`). Item
rows inside sequences are shifted by one: ``0`` is padding, ``r + 1`` is item row ``r``.
Shapes: ``W`` windows, ``L`` the window length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "GAP_FIRST",
    "GAP_PAD",
    "Windows",
    "concat_windows",
    "gap_buckets",
    "minibatches",
    "order_events",
    "positions_from_end",
    "right_align",
    "training_windows",
    "ts_hours",
    "windows_ending_at",
]

#: Time-gap bucket ids: 0 padding, 1 "no previous event", 2.. ``floor(log2(1 + gap))``.
GAP_PAD, GAP_FIRST = 0, 1


def ts_hours(ts: torch.Tensor) -> torch.Tensor:
    """Epoch seconds (int64) as float32 hours, the clock of item age; the same seconds
    always give the same hours, so an item first seen at a target's own time is never
    older than it."""
    return (ts.to(torch.float64) / 3600.0).to(torch.float32)


def order_events(user_rows: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Permutation that groups events by user and sorts each user's events by time.

    Stable: events with equal user and timestamp keep their input order.
    """
    n = len(user_rows)
    return np.lexsort((np.arange(n), np.asarray(timestamps), np.asarray(user_rows)))


def positions_from_end(sorted_user_rows: np.ndarray) -> np.ndarray:
    """For events grouped by user (see :func:`order_events`): how many of the user's
    events come later (``0`` for each user's most recent event)."""
    u = np.asarray(sorted_user_rows)
    n = len(u)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    change = np.flatnonzero(u[1:] != u[:-1])
    run_end = np.r_[change, n - 1]
    run_id = np.r_[0, np.cumsum(u[1:] != u[:-1])]
    return (run_end[run_id] - np.arange(n)).astype(np.int64)


def gap_buckets(
    sorted_user_rows: np.ndarray, sorted_timestamps: np.ndarray, n_buckets: int
) -> np.ndarray:
    """Log-bucketised time gap of each event to the user's previous one.

    ``1`` for a user's first event, else ``2 + min(n_buckets - 3, floor(log2(1 + gap)))``
    with the gap in timestamp units (seconds) clipped at 0. ``0`` is left for padding.
    """
    u = np.asarray(sorted_user_rows)
    ts = np.asarray(sorted_timestamps, dtype=np.float64)
    out = np.full(len(u), GAP_FIRST, dtype=np.int64)
    if len(u) > 1:
        same = u[1:] == u[:-1]
        gap = np.maximum(ts[1:] - ts[:-1], 0.0)
        b = 2 + np.minimum(n_buckets - 3, np.floor(np.log2(1.0 + gap))).astype(np.int64)
        out[1:] = np.where(same, b, GAP_FIRST)
    return out


def right_align(
    rows: np.ndarray,
    pos_from_end: np.ndarray,
    values: np.ndarray,
    n_rows: int,
    width: int,
    fill: int = 0,
    dtype: Any = np.int64,
) -> np.ndarray:
    """``(n_rows, width)`` matrix with each row's most recent ``width`` values, right-aligned.

    Event ``i`` goes to row ``rows[i]``, column ``width - 1 - pos_from_end[i]`` when that
    is ``>= 0``; other cells hold ``fill`` (left padding).
    """
    out = np.full((n_rows, width), fill, dtype=dtype)
    keep = (pos_from_end >= 0) & (pos_from_end < width)
    out[rows[keep], width - 1 - pos_from_end[keep]] = values[keep]
    return out


@dataclass
class Windows:
    """Padded training windows: input ``(W, L)`` features and per-position targets.

    ``items, types, gaps`` are the inputs (``items`` shifted: 0 pad); ``target_items``
    (shifted, 0 = no target), ``target_types`` (class or -1) and ``target_weight``
    (0/1 float) describe the next event at each position; ``target_ts`` (int64 epoch
    seconds, 0 without a target; ``None`` when the windows were built without times)
    is its timestamp, the moment the prediction is for (item age). ``target_exposed``
    (``(W, L, K)`` shifted item rows, 0 pad; ``None`` without impressions) holds the
    items shown to the user just before each target and not acted on (exposure-aware
    learning: the target should rank above them).
    """

    items: np.ndarray
    types: np.ndarray
    gaps: np.ndarray
    target_items: np.ndarray
    target_types: np.ndarray
    target_weight: np.ndarray
    target_ts: np.ndarray | None = None
    target_exposed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """Rows ``idx`` as tensors on ``device`` (``target_ts`` and ``target_exposed``
        only when present)."""
        return {
            name: torch.as_tensor(getattr(self, name)[idx], device=device)
            for name in _FIELDS
            if getattr(self, name) is not None
        }


_FIELDS = (
    "items",
    "types",
    "gaps",
    "target_items",
    "target_types",
    "target_weight",
    "target_ts",
    "target_exposed",
)


def _stack(parts: list[Windows] | tuple[Windows, ...], keep: np.ndarray | None = None) -> Windows:
    """The windows of ``parts`` one after the other (rows ``keep`` of them when given);
    ``target_ts`` only when every part has it; ``target_exposed`` when any part has it
    (padded to the widest, zeros for parts without)."""
    timed = all(p.target_ts is not None for p in parts)
    widths = [p.target_exposed.shape[2] for p in parts if p.target_exposed is not None]
    out = {}
    for f in _FIELDS:
        if (f == "target_ts" and not timed) or (f == "target_exposed" and not widths):
            out[f] = None
            continue
        arrays = [getattr(p, f) for p in parts]
        if f == "target_exposed":
            arrays = [_exposed_width(p, max(widths)) for p in parts]
        a = np.concatenate(arrays)
        out[f] = a if keep is None else a[keep]
    return Windows(**out)


def _exposed_width(w: Windows, width: int) -> np.ndarray:
    """``w.target_exposed`` padded with zeros to ``width`` (all zeros when absent)."""
    out = np.zeros((*w.target_items.shape, width), dtype=np.int64)
    if w.target_exposed is not None:
        out[:, :, : w.target_exposed.shape[2]] = w.target_exposed
    return out


def training_windows(
    sorted_user_rows: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    gaps: np.ndarray,
    target_types: np.ndarray,
    weight: np.ndarray,
    max_len: int,
    n_windows: int = 1,
    timestamps: np.ndarray | None = None,
    exposed: np.ndarray | None = None,
) -> Windows:
    """SASRec-style windows: inputs ``seq[:-1]``, targets ``seq[1:]`` over the last events.

    Arrays are per event, grouped by user in time order (:func:`order_events`);
    ``timestamps`` (int64), when given, fill ``target_ts``; ``exposed`` (``(E, K)``
    shifted item rows per event, 0 pad), when given, fills ``target_exposed``. Window
    ``k`` (``0 <= k < n_windows``) holds the ``max_len + 1`` events ending ``k * max_len``
    events before each user's last one, so consecutive windows share one event and every
    event is a target at most once. Positions whose target has ``weight == 0`` do not
    count in the loss; windows without any weighted target are dropped.
    """
    pos = positions_from_end(sorted_user_rows)
    uniq, inverse = np.unique(sorted_user_rows, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    L = max_len
    parts: list[Windows] = []
    for k in range(n_windows):
        lo = k * L
        users_k = np.flatnonzero(counts >= lo + 2)
        if len(users_k) == 0:
            break
        slot = np.full(len(uniq), -1, dtype=np.int64)
        slot[users_k] = np.arange(len(users_k))
        row = slot[inverse]
        ok = row >= 0
        # inputs: events with pos in [lo + 1, lo + L] at column L - (pos - lo)
        p_in = np.where(ok, pos - lo - 1, -1)
        # targets: events with pos in [lo, lo + L - 1] at column L - 1 - (pos - lo)
        p_t = np.where(ok, pos - lo, -1)
        n = len(users_k)
        r = np.where(ok, row, 0)
        w = Windows(
            items=right_align(r, p_in, items, n, L),
            types=right_align(r, p_in, types, n, L),
            gaps=right_align(r, p_in, gaps, n, L),
            target_items=right_align(r, p_t, items, n, L),
            target_types=right_align(r, p_t, target_types, n, L, fill=-1),
            target_weight=right_align(r, p_t, weight, n, L, fill=0, dtype=np.float32),
            target_ts=None if timestamps is None else right_align(r, p_t, timestamps, n, L),
        )
        # a target without an input before it (the first event of a short window) is void
        void = w.items == 0
        if exposed is not None:  # each position's event (+1; 0: none), its exposures
            at = right_align(r, p_t, np.arange(1, len(items) + 1), n, L)
            at[void] = 0
            w.target_exposed = np.concatenate([np.zeros_like(exposed[:1]), exposed])[at]
        w.target_items[void] = 0
        w.target_types[void] = -1
        w.target_weight[void] = 0.0
        if w.target_ts is not None:
            w.target_ts[void] = 0
        parts.append(w)
    if not parts:
        return _empty(L, timestamps is not None)
    keep = np.concatenate([(p.target_weight > 0).any(axis=1) for p in parts])
    return _stack(parts, keep)


def _empty(L: int, timed: bool) -> Windows:
    empty = np.zeros((0, L), dtype=np.int64)
    return Windows(
        empty,
        empty.copy(),
        empty.copy(),
        empty.copy(),
        empty.copy(),
        np.zeros((0, L), dtype=np.float32),
        empty.copy() if timed else None,
    )


def windows_ending_at(
    sorted_user_rows: np.ndarray,
    items: np.ndarray,
    types: np.ndarray,
    gaps: np.ndarray,
    target_types: np.ndarray,
    anchors: np.ndarray,
    max_len: int,
    timestamps: np.ndarray | None = None,
) -> Windows:
    """One window per anchor event: the ``max_len + 1`` events of its user ending at it.

    For replay: ``anchors`` are indices into the per-event arrays (grouped by user in time
    order, :func:`order_events`) of past events drawn from a replay buffer. Each window
    re-learns the anchor and the events before it (every valid position is a target of
    weight 1), exactly as they were seen, whatever came after. ``timestamps`` (int64),
    when given, fill ``target_ts``.
    """
    u = np.asarray(sorted_user_rows)
    a = np.asarray(anchors, dtype=np.int64)
    L = max_len
    if len(a) == 0:
        return _empty(L, timestamps is not None)
    idx = a[:, None] - np.arange(L, -1, -1)[None, :]  # (A, L + 1), oldest .. anchor
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    valid &= u[safe] == u[a][:, None]

    def take(values: np.ndarray, fill: int = 0) -> np.ndarray:
        return np.where(valid, values[safe], fill)

    it, ty, gp, tt = take(items), take(types), take(gaps), take(target_types, -1)
    has_input = valid[:, :-1]
    target_ok = valid[:, 1:] & has_input
    return Windows(
        items=it[:, :-1],
        types=ty[:, :-1],
        gaps=gp[:, :-1],
        target_items=np.where(target_ok, it[:, 1:], 0),
        target_types=np.where(target_ok, tt[:, 1:], -1),
        target_weight=target_ok.astype(np.float32),
        target_ts=None if timestamps is None else np.where(target_ok, take(timestamps)[:, 1:], 0),
    )


def concat_windows(*parts: Windows) -> Windows:
    """Stack windows (same ``max_len``) into one set (``target_ts`` only when every
    part has it)."""
    return _stack(parts)


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Index arrays covering ``range(n)`` in batches (shuffled when ``rng`` is given)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
