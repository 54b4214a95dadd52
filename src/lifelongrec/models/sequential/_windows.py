"""What the model trains on: windows of a fit (with its validation set), of an update
(new events in their stored context) and of replayed events.

Every function takes events as the event encoder and the history store give them
(:data:`~lifelongrec.models.sequential._events.Events`, grouped by user in time order)
and returns :class:`~lifelongrec.nn.Windows`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lifelongrec.models.sequential._events import EventEncoder, Events
from lifelongrec.models.sequential._histories import HistoryStore
from lifelongrec.models.sequential._params import MAX_VALIDATION_USERS
from lifelongrec.nn import (
    Windows,
    positions_from_end,
    right_align,
    training_windows,
    windows_ending_at,
)

__all__ = [
    "ValidationSet",
    "fit_windows",
    "replay_windows",
    "update_holdout",
    "update_windows",
]

MAX_UPDATE_VALIDATION_USERS = 2_000  # users of an update's held-out slice (a sample)


@dataclass(frozen=True)
class ValidationSet:
    """Each validation user's last training event held out, with what came before.

    ``items``, ``types``, ``gaps`` ``(V, L)``: the encoder inputs (the user's training
    events, right-aligned); ``targets`` ``(V,)`` item rows and ``target_types`` ``(V,)``
    event-type classes (``-1``: unknown) of the held-out events; ``seen``: the cells
    ``(rows, item rows)`` of the items each user interacted with (left out of the
    ranking, the target excepted); ``target_categories`` ``(V, C)``: the category
    targets of the held-out items; ``target_ts`` ``(V,)``: their timestamps (the time
    the item-age bias is read at).
    """

    items: np.ndarray
    types: np.ndarray
    gaps: np.ndarray
    targets: np.ndarray
    target_types: np.ndarray
    seen: tuple[np.ndarray, np.ndarray]
    target_categories: sp.csr_matrix
    target_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def fit_windows(
    ev: Events,
    n_users: int,
    seen: sp.csr_matrix,
    item_categories: sp.csr_matrix,
    max_len: int,
    n_windows: int,
    validation: bool,
    rng: np.random.Generator,
    validation_events: int = 1,
) -> tuple[Windows, ValidationSet | None]:
    """The windows of a fit on the events ``ev`` (with ``gap``) and, with
    ``validation``, the validation set: the last ``validation_events`` events of each
    user with two or more events (at most all but the first) whose item holds a row, of
    every such user or of a seeded sample of :data:`MAX_VALIDATION_USERS` of them (only
    those users give up their last events). ``seen`` is the user x item matrix of the
    fit, ``item_categories`` the category targets of every item row."""
    pos = positions_from_end(ev["user"])
    counts = np.bincount(ev["user"], minlength=n_users)
    if validation:
        last = np.minimum(int(validation_events), counts[ev["user"]] - 1)
        holdout = (pos < last) & (ev["item"] > 0)
    else:
        holdout = pos < 0
    users = pd.unique(ev["user"][holdout])  # in the order of the events (the sample's seed)
    if len(users) > MAX_VALIDATION_USERS:
        # Only the validation sample gives up its last events; every other user
        # trains on its whole history (on beauty that is 30k more targets).
        keep = np.zeros(n_users, dtype=bool)
        keep[rng.choice(users, MAX_VALIDATION_USERS, replace=False)] = True
        holdout &= keep[ev["user"]]
    train = {k: v[~holdout] for k, v in ev.items()}
    windows = training_windows(
        train["user"],
        train["item"],
        train["type"],
        train["gap"],
        train["target_type"],
        (train["item"] > 0).astype(np.float32),  # an OOV event is no target
        max_len,
        n_windows,
        train["ts"],
    )
    if not holdout.any():
        return windows, None
    return windows, _validation_set(ev, holdout, n_users, seen, item_categories, max_len)


def _validation_set(
    ev: Events,
    holdout: np.ndarray,
    n_users: int,
    seen: sp.csr_matrix,
    item_categories: sp.csr_matrix,
    max_len: int,
) -> ValidationSet:
    """The held-out events ``ev[holdout]`` (among the last of their users), each with the
    ``max_len`` events before it as the encoder's input (earlier held-out events
    included: they are inputs, not targets). Rows are ordered by the held-out event's
    position from its user's end, then by user."""
    pos = positions_from_end(ev["user"])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("items", "types", "gaps", "at")}
    for k in np.unique(pos[holdout]):
        at = np.flatnonzero(holdout & (pos == k))
        slot = np.full(n_users, -1, dtype=np.int64)
        slot[ev["user"][at]] = np.arange(len(at))
        rows = slot[ev["user"]]
        before = (rows >= 0) & (pos > k)
        r, p = rows[before], pos[before] - k - 1
        for key, col in (("items", "item"), ("types", "type"), ("gaps", "gap")):
            parts[key].append(right_align(r, p, ev[col][before], len(at), max_len))
        parts["at"].append(at)
    at = np.concatenate(parts["at"])
    users = ev["user"][at]
    targets = ev["item"][at] - 1
    cells = seen[users].tocoo()
    return ValidationSet(
        items=np.concatenate(parts["items"]),
        types=np.concatenate(parts["types"]),
        gaps=np.concatenate(parts["gaps"]),
        targets=targets,
        target_types=ev["target_type"][at],
        seen=(cells.row, cells.col),
        target_categories=item_categories[targets],
        target_ts=ev["ts"][at],
    )


def update_holdout(
    merged: Events,
    n_users: int,
    seen: sp.csr_matrix,
    item_categories: sp.csr_matrix,
    max_len: int,
    rng: np.random.Generator,
    max_users: int = MAX_UPDATE_VALIDATION_USERS,
) -> tuple[np.ndarray, ValidationSet | None]:
    """The held-out slice of an update: the last new event of each user who brought a
    new event on an item with a row and has an event before it (stored or new), or of
    a seeded sample of ``max_users`` of them. Returns the mask of held-out events in
    ``merged`` (they are no training targets) and their validation set (``None`` when
    no user qualifies)."""
    pos = positions_from_end(merged["user"])
    counts = np.bincount(merged["user"], minlength=n_users)
    holdout = (pos == 0) & merged["is_new"] & (counts[merged["user"]] >= 2) & (merged["item"] > 0)
    if holdout.sum() > max_users:
        keep = rng.choice(np.flatnonzero(holdout), max_users, replace=False)
        holdout = np.zeros_like(holdout)
        holdout[keep] = True
    if not holdout.any():
        return holdout, None
    return holdout, _validation_set(merged, holdout, n_users, seen, item_categories, max_len)


def update_windows(
    merged: Events,
    max_len: int,
    n_windows: int,
    context_weight: float,
    holdout: np.ndarray | None = None,
    exposed: np.ndarray | None = None,
) -> Windows:
    """The windows of an update: new events merged with their users' stored ones
    (:func:`~lifelongrec.models.sequential._histories.merge_events`), windows of
    ``max_len`` targets ending at each user's last event (at least ``n_windows``, more
    when a user brought more new events than they hold). New events weigh 1; stored
    ones in a user's last window weigh ``context_weight`` (0: not targets); events in
    ``holdout`` (a mask, see :func:`update_holdout`) weigh 0. ``exposed`` ``(E, K)``:
    the skipped items tied to each event (:func:`._exposure.exposure_lists`)."""
    per_user = np.bincount(merged["user"][merged["is_new"]])
    L = max_len
    n = max(int(n_windows), -(-int(per_user.max()) // L))
    weight = merged["is_new"].astype(np.float32)
    if context_weight > 0:  # learned events in the user's last window
        from_end = positions_from_end(merged["user"])  # targets of window 0: < L
        context = ~merged["is_new"] & (from_end < L)
        weight[context] = float(context_weight)
    if holdout is not None:
        weight[holdout] = 0.0
    return training_windows(
        merged["user"],
        merged["item"],
        merged["type"],
        merged["gap"],
        merged["target_type"],
        weight,
        L,
        n,
        merged["ts"],
        exposed,
    )


def replay_windows(
    events: pd.DataFrame,
    histories: HistoryStore,
    user_index: dict[str, int],
    item_index: dict[str, int],
    encoder: EventEncoder,
    max_len: int,
    n_targets: int | None = None,
) -> tuple[Windows, int]:
    """Windows ending at each replayed event in the stored histories: the event in its
    original context when it is still stored, else the user's stored window. Events of
    unknown users or items are skipped. The last ``n_targets`` events of each window are
    its targets (``None``: all of them; the others are context only), so a longer
    window rehearses each replayed event with more context, not more events. Returns
    the windows and how many there are."""
    users = events["user_id"].astype(str).map(user_index)
    items = events["item_id"].astype(str).map(item_index)
    known = users.notna().to_numpy() & items.notna().to_numpy()
    u = users.to_numpy()[known].astype(np.int64)
    want = pd.DataFrame(
        {
            "user": u,
            "item": items.to_numpy()[known].astype(np.int64) + 1,
            "ts": events["timestamp"].to_numpy()[known].astype(np.int64),
        }
    )
    hist = histories.read(np.unique(u))
    have = pd.DataFrame({k: hist[k] for k in ("user", "item", "ts")})
    have["at"] = np.arange(len(have))
    last = have.groupby("user")["at"].max()
    anchor = want.merge(have, on=["user", "item", "ts"], how="left")["at"]
    fallback = want["user"].map(last)
    anchors = np.unique(anchor.fillna(fallback).dropna().to_numpy(dtype=np.int64))
    types = hist["type"]
    windows = windows_ending_at(
        hist["user"],
        hist["item"],
        types,
        hist["gap"],
        encoder.target_types(types),
        anchors,
        max_len,
        hist["ts"],
    )
    if n_targets is not None and n_targets < max_len:
        windows.target_weight[:, : max_len - n_targets] = 0.0
    return windows, len(anchors)
