"""The synthetic world's users, sessions and events.

Users (heavy-tailed activity, join times), the shape and timing of their sessions (a
daily rhythm; views, carts and purchases in order), each session's category (drifting
interests, an optional shift of all or some users, sudden or gradual), the items viewed
(popularity, novelty, the hidden "next" chain) and the trimming to exactly
``n_events``. ``cfg`` is the :class:`~lifelongrec.data.SyntheticWorld` being generated.
See :mod:`lifelongrec.data._synthetic` for the whole world.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

_DAY = 86_400
_MONTH_DAYS = 30.0
_MAX_VIEWS = 64  # longest session, in views

# Share of sessions starting in each hour of the day (UTC): quiet nights, busy evenings.
_HOURLY = np.array(
    [2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 6, 6, 6, 6, 7, 8, 9, 9, 8, 6, 4], dtype=np.float64
)


def _users(rng: np.random.Generator, n_users: int, span: int, new_user_rate: float) -> dict:
    rate = rng.lognormal(0.0, 1.0, size=n_users)  # heavy-tailed activity
    joined = np.zeros(n_users, dtype=np.int64)
    is_new = rng.random(n_users) < new_user_rate
    latest = max(1, int(span * 0.9))  # late joiners still get some time
    joined[is_new] = rng.integers(0, latest, size=int(is_new.sum()))
    return {"rate": rate, "joined": joined}


def _session_shapes(
    rng: np.random.Generator, cfg: Any, n_users: int, rate: np.ndarray
) -> dict[str, np.ndarray]:
    """Users, views and funnel flags of just enough sessions for ``n_events`` events."""
    p_geom = 1.0 / cfg.mean_session_views
    per_session = cfg.mean_session_views * (1.0 + cfg.cart_rate * (1.0 + cfg.purchase_rate))
    p_user = rate / rate.sum()
    users, views, carted, bought = [], [], [], []
    total = 0
    first = True
    while total < cfg.n_events:
        missing = cfg.n_events - total
        n_ses = max(1, int(math.ceil(missing / per_session)))
        if first and n_ses >= n_users:  # everybody shows up at least once
            u = np.concatenate([np.arange(n_users), rng.choice(n_users, n_ses - n_users, p=p_user)])
        else:
            u = rng.choice(n_users, n_ses, p=p_user)
        first = False
        v = np.minimum(rng.geometric(p_geom, size=n_ses), _MAX_VIEWS)
        n_v = int(v.sum())
        c = rng.random(n_v) < cfg.cart_rate
        b = c & (rng.random(n_v) < cfg.purchase_rate)
        users.append(u)
        views.append(v)
        carted.append(c)
        bought.append(b)
        total += n_v + int(c.sum()) + int(b.sum())
    return {
        "user": np.concatenate(users).astype(np.int64),
        "views": np.concatenate(views).astype(np.int64),
        "carted": np.concatenate(carted),
        "bought": np.concatenate(bought),
    }


def _gaps(rng: np.random.Generator, floor: int, mean: float, cap: int, n: int) -> np.ndarray:
    return floor + np.minimum(rng.exponential(mean, size=n), cap).astype(np.int64)


def _session_times(
    rng: np.random.Generator,
    ses: dict[str, np.ndarray],
    joined: np.ndarray,
    span: int,
    active: float | None = None,
) -> None:
    """Offsets of views, carts and purchases in their session, and session starts.

    Offsets are whole seconds and strictly ordered: a view's cart comes at least 2 s after
    it, checkout at least 10 s after the session's last view and cart, purchases one
    second apart from there. A session lasts less than 12 hours, so it fits in the span
    (at least a day) and starts at or after its user joined, when there is room; with
    ``active`` (seconds), before its user's joining plus ``active`` too.
    """
    views, carted, bought = ses["views"], ses["carted"], ses["bought"]
    n_ses, n_views = len(views), int(views.sum())
    ses_of_view = np.repeat(np.arange(n_ses), views)
    first_view = np.concatenate(([0], np.cumsum(views)[:-1]))
    gaps = _gaps(rng, 5, 45.0, 600, n_views)
    gaps[first_view] = 0
    view_off = np.cumsum(gaps)
    view_off -= np.repeat(view_off[first_view], views)  # offset from the session start
    cart_off = view_off + _gaps(rng, 2, 30.0, 600, n_views)
    last = np.where(carted, cart_off, view_off)  # cart_off > view_off
    session_end = np.zeros(n_ses, dtype=np.int64)
    np.maximum.at(session_end, ses_of_view, last)
    checkout = session_end + _gaps(rng, 10, 120.0, 1800, n_ses)
    b_idx = np.flatnonzero(bought)
    b_ses = ses_of_view[b_idx]
    b_rank = np.arange(len(b_idx)) - np.searchsorted(b_ses, b_ses)  # order within session
    buy_off = checkout[b_ses] + b_rank
    duration = checkout + views  # > last purchase offset

    lo = np.minimum(joined[ses["user"]], span - duration - 1)
    last = span - duration
    if active is not None:
        last = np.minimum(last, joined[ses["user"]] + int(round(active)))
    hi = np.maximum(lo + 1, last)
    raw = lo + (rng.random(n_ses) * (hi - lo)).astype(np.int64)
    hour = rng.choice(24, size=n_ses, p=_HOURLY / _HOURLY.sum())
    t0 = (raw // _DAY) * _DAY + hour * 3600 + rng.integers(0, 3600, size=n_ses)
    ses["t0"] = np.clip(t0, lo, hi - 1)
    ses["ses_of_view"] = ses_of_view
    ses["first_view"] = first_view
    ses["view_off"] = view_off
    ses["cart_off"] = cart_off
    ses["buy_off"] = buy_off
    ses["buy_view"] = b_idx


def _session_categories(
    rng: np.random.Generator,
    cfg: Any,
    ses: dict[str, np.ndarray],
    n_users: int,
    span: int,
    shift_offset: int | None,
) -> np.ndarray:
    """The category of every session, drawn from its user's interests at its start."""
    n_cat = cfg.n_categories
    # Skewed category popularity is the Dirichlet's mean.
    base = 1.0 / np.arange(1, n_cat + 1) ** 0.8
    base = rng.permutation(base / base.sum())
    alpha = np.maximum(cfg.interest_concentration * base, 1e-3)
    n_seg = max(1, int(math.ceil(cfg.duration_days / _MONTH_DAYS)))
    seg_len = span / n_seg
    mix = 1.0 - (1.0 - cfg.interest_drift) ** (cfg.duration_days / n_seg / _MONTH_DAYS)

    t0, user = ses["t0"], ses["user"]
    seg = np.minimum((t0 / seg_len).astype(np.int64), n_seg - 1)
    frac = (t0 - seg * seg_len) / seg_len
    u = rng.random(len(t0))
    out = np.empty(len(t0), dtype=np.int64)
    anchor = rng.dirichlet(alpha, size=n_users)
    for k in range(n_seg):  # interests at month boundaries, interpolated in between
        fresh = rng.dirichlet(alpha, size=n_users) if mix > 0 else anchor
        following = (1.0 - mix) * anchor + mix * fresh
        idx = np.flatnonzero(seg == k)
        if len(idx):
            f = frac[idx, None]
            theta = (1.0 - f) * anchor[user[idx]] + f * following[user[idx]]
            cum = np.cumsum(theta, axis=1)
            pick = (cum < (u[idx] * cum[:, -1])[:, None]).sum(axis=1)
            out[idx] = np.minimum(pick, n_cat - 1)
        anchor = following
    if shift_offset is not None:
        # One cycle through all categories: after the shift, whoever liked c likes perm[c].
        cycle = rng.permutation(n_cat)
        perm = np.empty(n_cat, dtype=np.int64)
        perm[cycle] = np.roll(cycle, -1)
        after = _shifted(cfg, t0, user, n_users, shift_offset, ses)
        out[after] = perm[out[after]]
        ses["perm"] = perm
    return out


def _shifted(
    cfg: Any,
    t0: np.ndarray,
    user: np.ndarray,
    n_users: int,
    shift_offset: int,
    ses: dict[str, np.ndarray],
) -> np.ndarray:
    """Which sessions draw their category from the permuted interests.

    Sudden and for everybody (``shift_share=1``, ``shift_days=0``): every session from
    ``shift_offset`` on, with no random draw. Otherwise the draws come from a generator of
    their own (spawned from ``cfg.seed``), so the rest of the world is the same as without
    the knobs: a random ``shift_share`` of the users shifts (``ses["shift_users"]``), and
    over ``shift_days`` days a session of theirs uses the permuted interests with a
    probability that grows linearly from 0 to 1: their interests are the mixture
    ``(1 - p) * old + p * permuted``.
    """
    after = t0 >= shift_offset
    if cfg.shift_share >= 1.0 and cfg.shift_days == 0:
        ses["shift_users"] = np.arange(n_users)
        return after
    extra = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0])
    if cfg.shift_share < 1.0:
        n_moved = min(n_users, max(1, int(round(cfg.shift_share * n_users))))
        chosen = np.sort(extra.choice(n_users, size=n_moved, replace=False))
        moved = np.zeros(n_users, dtype=bool)
        moved[chosen] = True
        after &= moved[user]
        ses["shift_users"] = chosen
    else:
        ses["shift_users"] = np.arange(n_users)
    if cfg.shift_days > 0:
        progress = np.clip((t0 - shift_offset) / (cfg.shift_days * _DAY), 0.0, 1.0)
        after &= extra.random(len(t0)) < progress
    return after


# ---------------------------------------------------------------------- events
def _set_popularity(cat: dict[str, Any], skew: float) -> np.ndarray:
    w = 1.0 / (cat["rank_in_cat"] + 1.0) ** skew
    return np.concatenate(([0.0], np.cumsum(w)))


def _draw(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One item per row, by popularity, among internal indices ``[lo, hi)`` (hi > lo)."""
    x = cum[lo] + rng.random(len(lo)) * (cum[hi] - cum[lo])
    return np.clip(np.searchsorted(cum, x, side="right") - 1, lo, hi - 1)


def _aged_popularity(cat: dict[str, Any], skew: float, half_life: float) -> tuple:
    """Weights that fade with age, and their running sums within each category.

    At time ``t`` an item that arrived at ``a`` weighs ``zipf * 2 ** (-(t - a) / h)``;
    the factor ``2 ** (-t / h)`` is common to every item a session can draw, so the
    draw uses ``zipf * 2 ** ((a - A) / h)`` with ``A`` the latest arrival of the item's
    category (every weight at most 1). The sums restart at each category, so a draw
    among a category's old items keeps its precision when newer items weigh far more.
    """
    zipf = 1.0 / (cat["rank_in_cat"] + 1.0) ** skew
    offsets = cat["offsets"]
    latest = cat["arrival"][np.maximum(offsets[1:] - 1, 0)][cat["cat"]]
    w = zipf * np.exp2((cat["arrival"] - latest) / (half_life * _DAY))
    incl = np.empty_like(w)
    for lo, hi in zip(offsets[:-1], offsets[1:], strict=True):  # not across categories
        incl[lo:hi] = np.cumsum(w[lo:hi])
    return w, incl


def _draw_aged(
    rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, aged: tuple
) -> np.ndarray:
    """As :func:`_draw`, by faded weights (:func:`_aged_popularity`).

    A binary search over ``[lo, hi)``, which lies in one category. Where every weight
    there has faded to 0 (a category whose newest item is a thousand half-lives older
    than its latest arrival), the draw falls back to plain popularity.
    """
    w, incl = aged
    low = incl[lo] - w[lo]
    total = incl[hi - 1] - low
    x = low + rng.random(len(lo)) * total
    a, b = lo.copy(), hi - 1
    while np.any(a < b):
        m = (a + b) // 2
        right = incl[m] <= x
        a = np.where(right, m + 1, a)
        b = np.where(right, b, m)
    faded = ~(total > 0)
    if faded.any():
        a[faded] = _draw(rng, cum, lo[faded], hi[faded])
    return a


def _events(
    rng: np.random.Generator, cfg: Any, ses: dict[str, np.ndarray], cat: dict
) -> dict[str, np.ndarray]:
    """Items of every view, then carts and purchases, in session order (unsorted)."""
    cum = _set_popularity(cat, cfg.popularity_skew)
    half_life = cfg.item_half_life_days
    draw = (
        _draw
        if half_life is None
        else functools.partial(
            _draw_aged, aged=_aged_popularity(cat, cfg.popularity_skew, half_life)
        )
    )
    arrival, offsets, nxt = cat["arrival"], cat["offsets"], cat["nxt"]
    # Items are sorted by (category, arrival): a query key finds what had arrived by t.
    big = np.int64(1) << 40
    key = cat["cat"] * big + arrival
    t0, c, views = ses["t0"], ses["cat"], ses["views"]
    hi = np.searchsorted(key, c * big + t0, side="right")  # arrived by the session start
    lo = offsets[c]
    fresh_lo = np.searchsorted(key, c * big + np.maximum(t0 - int(cfg.novelty_days * _DAY), 1))
    use_fresh = (fresh_lo < hi) & (rng.random(len(t0)) < cfg.novelty_boost)
    first_lo = np.where(use_fresh, fresh_lo, lo)

    n_views = int(views.sum())
    item = np.empty(n_views, dtype=np.int64)
    first_view = ses["first_view"]
    item[first_view] = draw(rng, cum, first_lo, hi)
    active = np.arange(len(t0))
    follow_of = _follower(cfg, cat, t0)
    for step in range(1, int(views.max())):
        active = active[views[active] > step]
        pos = first_view[active] + step
        prev = item[pos - 1]
        follow = nxt[prev] if follow_of is None else follow_of(prev, active)
        ok = (rng.random(len(active)) < cfg.sequential_strength) & (arrival[follow] <= t0[active])
        chosen = draw(rng, cum, lo[active], hi[active])
        item[pos] = np.where(ok, follow, chosen)

    # Funnel: carts and purchases of the viewed items, at their offsets.
    ses_of_view, user = ses["ses_of_view"], ses["user"]
    c_idx = np.flatnonzero(ses["carted"])
    b_idx = ses["buy_view"]
    start = t0[ses_of_view]
    return {
        "user": np.concatenate(
            [user[ses_of_view], user[ses_of_view[c_idx]], user[ses_of_view[b_idx]]]
        ),
        "item": np.concatenate([item, item[c_idx], item[b_idx]]),
        "ts": np.concatenate(
            [
                start + ses["view_off"],
                (start + ses["cart_off"])[c_idx],
                start[b_idx] + ses["buy_off"],
            ]
        ),
        "type": np.concatenate(
            [
                np.zeros(n_views, dtype=np.int8),
                np.ones(len(c_idx), dtype=np.int8),
                np.full(len(b_idx), 2, dtype=np.int8),
            ]
        ),
        "session": np.concatenate([ses_of_view, ses_of_view[c_idx], ses_of_view[b_idx]]),
    }


def _follower(
    cfg: Any, cat: dict, t0: np.ndarray
) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """What gives the "next" item of ``prev`` in the sessions ``ses`` (indices into
    ``t0``) when the chain is redrawn: a function of ``(prev, ses)``.

    ``None`` without ``chain_redraw_days``: the fixed chain ``cat["nxt"]`` holds. With
    it, the sessions that start in the ``e``-th period of ``chain_redraw_days`` days
    follow each item by the one ``stride[e, c]`` places further along its category
    ``c``'s hidden cycle (``stride`` 1 in the first period: the fixed chain), strides
    drawn uniformly from ``1 .. size - 1`` per period and category by a generator of
    their own (so the rest of the world is the same with and without the redraw).
    """
    if cfg.chain_redraw_days is None:
        return None
    chain, offsets, cat_of = cat["chain"], cat["offsets"], cat["cat"]
    sizes = np.diff(offsets)
    place = np.empty(len(chain), dtype=np.int64)
    place[chain] = np.arange(len(chain)) - offsets[cat_of[chain]]
    period = np.floor_divide(t0, max(1, int(round(cfg.chain_redraw_days * _DAY))))
    periods, period_of = np.unique(period, return_inverse=True)
    srng = np.random.default_rng((int(cfg.seed), 0x636861696E))
    draws = srng.random((len(periods), len(sizes)))
    stride = 1 + np.floor(draws * np.maximum(sizes - 1, 1)).astype(np.int64)
    stride[periods == 0] = 1

    def follow(prev: np.ndarray, ses: np.ndarray) -> np.ndarray:
        c = cat_of[prev]
        step = stride[period_of[ses], c]
        return chain[offsets[c] + (place[prev] + step) % sizes[c]]

    return follow


def _trim(rng: np.random.Generator, ev: dict[str, np.ndarray], n_events: int) -> dict:
    """Drop the surplus: the last event of randomly chosen sessions with two or more.

    The last event of a session (latest timestamp) has nothing depending on it: a cart
    comes after its view and a purchase after its cart, strictly, in the same session.
    """
    while len(ev["ts"]) > n_events:
        surplus = len(ev["ts"]) - n_events
        size = np.bincount(ev["session"])
        eligible = np.flatnonzero(size >= 2)
        if len(eligible) == 0:
            eligible = np.flatnonzero(size >= 1)
        chosen = rng.choice(eligible, size=min(surplus, len(eligible)), replace=False)
        rows = np.flatnonzero(np.isin(ev["session"], chosen))
        # Within each chosen session the latest event (ties: the later row) goes.
        order = rows[np.lexsort((rows, ev["ts"][rows], ev["session"][rows]))]
        ses_sorted = ev["session"][order]
        is_last = np.ones(len(order), dtype=bool)
        is_last[:-1] = ses_sorted[:-1] != ses_sorted[1:]
        keep = np.ones(len(ev["ts"]), dtype=bool)
        keep[order[is_last]] = False
        ev = {k: v[keep] for k, v in ev.items()}
    return ev
