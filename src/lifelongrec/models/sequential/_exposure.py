"""Exposure-aware updates: the items a user was shown and did not act on, as negatives.

An impression ``(user, item, t)`` (``Dataset.impressions``) is *skipped* when the
update's events hold no event of that user on that item at or after ``t``. Each skipped
item is tied to the user's first event at or after ``t`` (what the user did next
instead): that event, as a training target, should rank above the items shown just
before it (:func:`~lifelongrec.nn.exposure_loss`). Impressions of unknown users or
items, and those after the user's last event of the update, are left out (there is no
target to compare them with); :func:`exposure_lists` counts them.

Users look at the top of a list more than at its bottom, so an item shown low and not
acted on was often never seen. With ``above=True`` only the *skip-above* items count
(Joachims et al. 2005): those ranked above an item of the same list the user acted on,
which the user passed over on the way to it; lists without any action give none. A list
is an impression's ``request_id`` when the frame has one, else its user and time; the
rank is its ``rank`` column, else the order of its rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.models._sparse import map_ids

__all__ = ["MAX_EXPOSED", "exposure_lists", "waiting"]

#: The most skipped items tied to one target (the latest shown are kept).
MAX_EXPOSED = 20


def exposure_lists(
    impressions: pd.DataFrame,
    merged: dict[str, np.ndarray],
    user_index: dict[str, int],
    item_index: dict[str, int],
    above: bool = False,
    max_exposed: int = MAX_EXPOSED,
) -> tuple[np.ndarray | None, dict[str, int]]:
    """The skipped items before each event of ``merged`` (an update's events merged
    with their users' stored ones: ``user`` rows, shifted ``item`` rows, ``ts``, grouped
    by user in time order): an ``(E, K)`` array of shifted item rows (0 pad, ``K <=
    max_exposed``, most recent first), ``None`` when no impression is skipped; and the
    counts ``impressions``, ``known`` (user and item known), ``skipped`` (the skip-above
    ones with ``above``) and ``used`` (tied to an event)."""
    # map_ids: Series.map(dict) would turn a million-item index into a Series on every
    # online step (a second holding the GIL, stalling the service's requests)
    users = map_ids(impressions["user_id"], user_index).astype(np.float64)
    items = map_ids(impressions["item_id"], item_index).astype(np.float64)
    known = ~np.isnan(users) & ~np.isnan(items)
    counts = {"impressions": len(impressions), "known": int(known.sum()), "skipped": 0, "used": 0}
    if not known.any() or len(merged["user"]) == 0:
        return None, counts
    shown = pd.DataFrame(
        {
            "user": users[known].astype(np.int64),
            "item": items[known].astype(np.int64) + 1,
            "ts": impressions["timestamp"].to_numpy()[known].astype(np.int64),
        }
    )
    acted = pd.DataFrame({k: merged[k] for k in ("user", "item", "ts")})
    last = acted.groupby(["user", "item"], sort=False)["ts"].max().rename("last")
    shown = shown.join(last, on=["user", "item"])
    shown["acted"] = (shown["last"] >= shown["ts"]).to_numpy()  # NaN: never acted on
    if above:
        shown = _skip_above(shown, impressions[known])
    shown = shown[~shown["acted"]]
    counts["skipped"] = len(shown)
    if shown.empty:
        return None, counts
    at = _next_event(merged["user"], merged["ts"], shown["user"].to_numpy(), shown["ts"])
    shown = shown.assign(at=at)[at >= 0]
    shown = shown.sort_values(["at", "ts"], ascending=[True, False], kind="stable")
    shown = shown.drop_duplicates(["at", "item"])
    shown = shown[shown.groupby("at").cumcount() < max_exposed]
    counts["used"] = len(shown)
    if shown.empty:
        return None, counts
    slot = shown.groupby("at").cumcount().to_numpy()
    out = np.zeros((len(merged["user"]), int(slot.max()) + 1), dtype=np.int64)
    out[shown["at"].to_numpy(), slot] = shown["item"].to_numpy()
    return out, counts


def waiting(
    impressions: pd.DataFrame, merged: dict[str, np.ndarray], user_index: dict[str, int]
) -> pd.DataFrame:
    """The impressions whose user has no event at or after their time in ``merged``
    (unknown users included): an online step keeps them for the next one, which may
    hold what the user did next."""
    users = map_ids(impressions["user_id"], user_index).astype(np.float64)
    ts = impressions["timestamp"].to_numpy().astype(np.int64)
    if len(merged["user"]) == 0:
        return impressions
    last = pd.Series(merged["ts"]).groupby(merged["user"]).max()
    known = ~np.isnan(users)
    newest = np.full(len(users), np.nan)  # NaN: no event of the user
    newest[known] = last.reindex(users[known].astype(np.int64)).to_numpy(dtype=np.float64)
    return impressions[~(newest >= ts)]


def _skip_above(shown: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``shown`` (one per row of ``source``) in lists with an action, the
    skipped ones only when ranked above the lowest item acted on."""
    if "request_id" in source.columns:
        lists = source["request_id"].astype(str).to_numpy()
    else:
        lists = shown["user"].astype(str).to_numpy() + "@" + shown["ts"].astype(str).to_numpy()
    out = shown.assign(list=lists)
    if "rank" in source.columns:
        out["rank"] = pd.to_numeric(source["rank"], errors="coerce").to_numpy()
    else:
        out["rank"] = out.groupby("list", sort=False).cumcount().to_numpy()
    lowest = out["rank"].where(out["acted"]).groupby(out["list"]).transform("max")
    keep = out["acted"] | (out["rank"] < lowest)  # NaN (no action, no rank): left out
    return out[keep.to_numpy()].drop(columns=["list", "rank"])


def _next_event(user: np.ndarray, ts: np.ndarray, q_user: np.ndarray, q_ts: Any) -> np.ndarray:
    """Index of each query's first event of its user at or after its time in ``user`` /
    ``ts`` (grouped by user, in time order within a user); -1 where there is none."""
    q_ts = np.asarray(q_ts, dtype=np.int64)
    lo = min(int(ts.min()), int(q_ts.min()))
    span = max(int(ts.max()), int(q_ts.max())) - lo + 2
    key = user.astype(np.int64) * span + (ts - lo)  # sorted: users ascend, then times
    q_key = q_user.astype(np.int64) * span + (q_ts - lo)
    idx = np.searchsorted(key, q_key, side="left")
    ok = idx < len(key)
    ok[ok] &= user[idx[ok]] == q_user[ok]
    return np.where(ok, idx, -1)
