"""The synthetic world: a seedable e-commerce shop with structure a recommender can learn.

It is the built-in default dataset (``lifelongrec demo --data synthetic``), the data of
the scale tests, and the stream of the lifelong-learning experiments, so it has the
structure that real shops have and that makes drift visible:

* **Catalogue.** ``n_items`` items in ``n_categories`` categories (uneven sizes), each
  with a sub-category (a product type, e.g. "Headphones"), a brand, a lognormal price
  (per category, brands add a premium) and an ``arrival`` time. Titles are built from
  the category's vocabulary ("Lumio Compact Wireless Headphones"): items of the same
  category share words, of the same sub-category more, so content models can learn
  from them. A fraction ``new_item_rate`` of items arrives during the span; the rest
  exist at ``start``. Item ids ``"i000123"`` increase with arrival.
* **Users.** Category interests drawn from a Dirichlet (``interest_concentration``:
  small means focused users) around a skewed category popularity, drifting as a random
  walk on the simplex (``interest_drift``: share of a user's interests replaced by a
  fresh draw every 30 days), optionally with a shift at ``shift_at``: interests move to
  other categories through one cyclic permutation of categories, for every user or
  for a random share ``shift_share`` of them, at once or gradually over ``shift_days``
  days (a linear blend of the old and the permuted interests). Activity is heavy-tailed (lognormal session rates); a fraction
  ``new_user_rate`` of users joins during the span, and with ``user_active_days`` each
  user comes only in that many days from joining (one-off visitors, a MovieLens-like
  spree) instead of the whole span. User ids ``"u00042"``.
* **Sessions.** A user opens a session (times follow a daily rhythm), picks one category
  from their current interests and views ``mean_session_views`` items on average
  (geometric). The first view is drawn by popularity within the category (Zipf with
  exponent ``popularity_skew``, fading with the item's age with ``item_half_life_days``)
  among items that have already arrived; with probability
  ``novelty_boost`` it is drawn among items that arrived in the last ``novelty_days``
  (when there are any). Each later view follows the previous item's fixed "next"
  item (a hidden chain through each category: complements, the next volume) with
  probability ``sequential_strength``, and is a fresh popularity draw otherwise.
* **Funnel.** A view becomes a ``"cart"`` event with probability ``cart_rate`` a few
  seconds later; a cart becomes a ``"purchase"`` with probability ``purchase_rate`` at
  checkout, after the session's last view and cart. So a purchase of an item is always
  preceded, within the same session, by a cart of it, and the cart by a view.

Events follow the canonical schema (:func:`~lifelongrec.data.make_events`): there are
exactly ``n_events`` of them, sorted by timestamp (stable), ``event_type`` in
``{"view", "cart", "purchase"}``. ``value`` is ``NaN`` for every event: ``value`` means
an explicit signal such as a rating elsewhere in the package, and a price there would be
mistaken for one; the price of what was bought is ``items.attributes["price"]``.

Generation is vectorised with numpy (no per-event Python loop; a loop over session
steps and 30-day segments only), so time and memory grow linearly with ``n_events``
(a million events take seconds). ``meta`` records the true shift time, the
category permutation, how many users shift and the resolved sizes, so drift detectors
can be scored.

The catalogue (vocabulary, items, titles, prices) is made in
:mod:`~lifelongrec.data._synthetic_catalogue`, users, sessions and their events in
:mod:`~lifelongrec.data._synthetic_sessions`; this module holds the settings, puts the
parts together and builds the frames. Every name this module had is still importable
from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_int, check_number
from lifelongrec.data._schema import (
    TIMESTAMP_MAX,
    TIMESTAMP_RANGE,
    Dataset,
    make_events,
)
from lifelongrec.data._synthetic_catalogue import _BRANDS as _BRANDS
from lifelongrec.data._synthetic_catalogue import _BRANDS_PER_CATEGORY as _BRANDS_PER_CATEGORY
from lifelongrec.data._synthetic_catalogue import _CATEGORIES as _CATEGORIES
from lifelongrec.data._synthetic_catalogue import _MODIFIERS as _MODIFIERS
from lifelongrec.data._synthetic_catalogue import _STYLE_WORDS as _STYLE_WORDS
from lifelongrec.data._synthetic_catalogue import _catalogue, _items_frame
from lifelongrec.data._synthetic_catalogue import _category_vocab as _category_vocab
from lifelongrec.data._synthetic_catalogue import _random_ranks as _random_ranks
from lifelongrec.data._synthetic_sessions import (
    _DAY,
    _events,
    _session_categories,
    _session_shapes,
    _session_times,
    _trim,
    _users,
)
from lifelongrec.data._synthetic_sessions import _HOURLY as _HOURLY
from lifelongrec.data._synthetic_sessions import _MAX_VIEWS as _MAX_VIEWS
from lifelongrec.data._synthetic_sessions import _MONTH_DAYS as _MONTH_DAYS
from lifelongrec.data._synthetic_sessions import _draw as _draw
from lifelongrec.data._synthetic_sessions import _gaps as _gaps
from lifelongrec.data._synthetic_sessions import _set_popularity as _set_popularity

__all__ = ["SyntheticWorld", "synthetic"]


@dataclass(frozen=True)
class SyntheticWorld:
    """Hyperparameters of the synthetic e-commerce world; :meth:`generate` makes the data.

    Parameters
    ----------
    n_events
        Exact number of events (views, carts, purchases), at least 1.
    n_users
        Number of users; ``None`` gives ``max(10, n_events // 40)`` (about 40 events each,
        heavy-tailed).
    n_items
        Number of items, at least ``n_categories``; ``None`` gives
        ``max(5 * n_categories, n_events // 25)``.
    n_categories
        Number of top-level categories. The first 20 have their own vocabulary; more
        reuse it with a modifier ("Kids Electronics").
    seed
        Seed of the random generator: the same seed gives the same dataset.
    start
        Start of the time span, UTC epoch seconds (default 2024-01-01 00:00:00).
    duration_days
        Length of the time span in days, at least 1; every event falls in
        ``[start, start + duration_days * 86400)``.
    interest_concentration
        Total concentration of the Dirichlet that user interests are drawn from; smaller
        values make users focus on fewer categories.
    interest_drift
        In ``[0, 1]``: share of a user's category interests replaced by a fresh draw every
        30 days (a random walk on the simplex, interpolated linearly in time). 0 = static.
    shift_at
        ``None`` (no shift) or a fraction in ``(0, 1)`` of the span at which users'
        interests move to other categories (one cyclic permutation of categories for all
        users). ``meta["shift_timestamp"]`` tells the exact time.
    shift_share
        In ``(0, 1]``: share of the users whose interests shift at ``shift_at`` (a random
        subset, seeded); the others keep theirs. 1 = everybody. Only with ``shift_at``.
    shift_days
        At least 0: the shift is gradual over this many days from ``shift_at``: a
        shifting user's interests move linearly from the old to the permuted ones (a
        session draws its category from the permuted interests with a probability that
        grows from 0 to 1). 0 = sudden. A window that outlasts the span is cut off by
        its end. Only with ``shift_at``.
    new_item_rate
        In ``[0, 1]``: share of items that arrive during the span rather than at ``start``
        (every category keeps at least one item present from the start).
    new_user_rate
        In ``[0, 1]``: share of users who join during the span rather than at ``start``.
    user_active_days
        ``None`` (default): a user's sessions fall anywhere from their joining to the end
        of the span. A number > 0: only in this many days from their joining (a session
        that would not fit before the span's end starts as late as it can), so users
        with ``new_user_rate=1`` come in one burst and do not return, as MovieLens'
        raters do.
    popularity_skew
        Zipf exponent of item popularity within a category (0 = uniform), at least 0.
    item_half_life_days
        ``None`` (default): an item keeps its popularity for good. A number > 0: its
        popularity halves every this many days from its arrival (items present at
        ``start`` age from ``start``), so newer items take over as films and fashions
        do, and what was popular early in the span fades.
    novelty_boost
        In ``[0, 1]``: probability that a session's first view goes to an item that
        arrived in the last ``novelty_days`` (when the category has one).
    novelty_days
        How long an arrival counts as fresh, in days (> 0).
    sequential_strength
        In ``[0, 1]``: probability that a view follows the previous item's "next" item.
    chain_redraw_days
        ``None`` (default): the hidden "next" chain holds for the whole span. A number
        > 0: every this many days it is redrawn (a session follows the chain of the
        period it starts in), so the order in which users go from item to item changes
        over time, as the order in which a site shows its items to rate or buy does;
        what earlier sessions teach about "what comes next" goes stale.
    mean_session_views
        Mean number of views per session (geometric), at least 1.
    cart_rate
        In ``[0, 1]``: probability that a view is followed by a cart of the same item.
    purchase_rate
        In ``[0, 1]``: probability that a cart is followed by a purchase at checkout.

    Examples
    --------
    >>> world = SyntheticWorld(n_events=1_000, seed=1)
    >>> data = world.generate()
    >>> len(data.events), sorted(data.events["event_type"].unique())
    (1000, ['cart', 'purchase', 'view'])
    """

    n_events: int = 100_000
    n_users: int | None = None
    n_items: int | None = None
    n_categories: int = 20
    seed: int = 0
    start: int = 1_704_067_200  # 2024-01-01T00:00:00Z
    duration_days: float = 90.0
    interest_concentration: float = 2.0
    interest_drift: float = 0.1
    shift_at: float | None = None
    shift_share: float = 1.0
    shift_days: float = 0.0
    new_item_rate: float = 0.2
    new_user_rate: float = 0.2
    user_active_days: float | None = None
    popularity_skew: float = 1.0
    item_half_life_days: float | None = None
    novelty_boost: float = 0.2
    novelty_days: float = 7.0
    sequential_strength: float = 0.4
    chain_redraw_days: float | None = None
    mean_session_views: float = 4.0
    cart_rate: float = 0.1
    purchase_rate: float = 0.4

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`~lifelongrec.ParameterError` naming the first bad field."""
        check_int("n_events", self.n_events, 1)
        check_int("n_categories", self.n_categories, 1)
        if self.n_users is not None:
            check_int("n_users", self.n_users, 1)
        if self.n_items is not None:
            check_int(
                "n_items",
                self.n_items,
                self.n_categories,
                expected=f"an integer >= {self.n_categories} (n_categories)",
            )
        check_int("seed", self.seed, 0)
        check_int("start", self.start, 0)
        check_number("duration_days", self.duration_days, 1)
        last = self.start + int(round(self.duration_days * _DAY)) - 1
        if last > TIMESTAMP_MAX:
            raise ParameterError(
                "start",
                self.start,
                f"a time span (start + duration_days days, here ending at {last}) within "
                f"{TIMESTAMP_RANGE}",
            )
        check_number("interest_concentration", self.interest_concentration, 0, low_open=True)
        for name in (
            "interest_drift",
            "new_item_rate",
            "new_user_rate",
            "novelty_boost",
            "sequential_strength",
            "cart_rate",
            "purchase_rate",
        ):
            check_number(name, getattr(self, name), 0, 1)
        if self.shift_at is not None:
            check_number("shift_at", self.shift_at, 0, 1, low_open=True, high_open=True)
        check_number("shift_share", self.shift_share, 0, 1, low_open=True)
        check_number("shift_days", self.shift_days, 0)
        if self.shift_at is None:
            for name, default in (("shift_share", 1.0), ("shift_days", 0.0)):
                if getattr(self, name) != default:
                    raise ParameterError(
                        name,
                        getattr(self, name),
                        f"{default} (the default) without shift_at",
                    )
        if self.user_active_days is not None:
            check_number("user_active_days", self.user_active_days, 0, low_open=True)
        check_number("popularity_skew", self.popularity_skew, 0)
        if self.item_half_life_days is not None:
            check_number("item_half_life_days", self.item_half_life_days, 0, low_open=True)
        check_number("novelty_days", self.novelty_days, 0, low_open=True)
        if self.chain_redraw_days is not None:
            check_number("chain_redraw_days", self.chain_redraw_days, 0, low_open=True)
        check_number("mean_session_views", self.mean_session_views, 1)

    def sizes(self) -> tuple[int, int]:
        """``(n_users, n_items)`` with the ``None`` defaults resolved."""
        n_users = max(10, self.n_events // 40) if self.n_users is None else int(self.n_users)
        n_items = (
            max(5 * self.n_categories, self.n_events // 25)
            if self.n_items is None
            else int(self.n_items)
        )
        return n_users, n_items

    # ------------------------------------------------------------------ generation
    def generate(self) -> Dataset:
        """Make the world: a :class:`~lifelongrec.data.Dataset` named ``"synthetic"``.

        ``events`` has exactly ``n_events`` rows sorted by timestamp; ``items`` the whole
        catalogue (also items nobody touched) with ``attributes`` ``price``, ``brand``,
        ``arrival``; ``users`` a ``user_id`` and ``joined`` (epoch seconds) per user.
        ``meta`` holds ``format``, ``timestamps``, ``config`` (the fields above),
        the resolved sizes, the span, ``shift_timestamp`` (``None`` without shift),
        ``shift_end_timestamp`` (when a gradual shift is complete; the shift time for a
        sudden one), ``shift_users`` (how many users shift; ``None`` without shift),
        ``shift_permutation`` and ``categories``.
        """
        self.validate()
        rng = np.random.default_rng(self.seed)
        n_users, n_items = self.sizes()
        span = int(round(self.duration_days * _DAY))
        end = self.start + span
        cat = _catalogue(rng, n_items, self.n_categories, span, self.new_item_rate)
        users = _users(rng, n_users, span, self.new_user_rate)
        shift_offset = None if self.shift_at is None else int(round(self.shift_at * span))
        ses = _session_shapes(rng, self, n_users, users["rate"])
        active = None if self.user_active_days is None else self.user_active_days * _DAY
        _session_times(rng, ses, users["joined"], span, active)
        ses["cat"] = _session_categories(rng, self, ses, n_users, span, shift_offset)
        ev = _events(rng, self, ses, cat)
        ev = _trim(rng, ev, self.n_events)

        order = np.argsort(ev["ts"], kind="stable")
        user_names = _ids("u", n_users, 5)
        item_names = _ids("i", n_items, 6)
        events = _events_frame(
            user_names,
            ev["user"][order],
            item_names,
            cat["rank"][ev["item"][order]],
            ev["ts"][order] + self.start,
            ev["type"][order],
        )
        items = _items_frame(cat, item_names, self.start)
        users_frame = pd.DataFrame(
            {"user_id": pd.Series(list(user_names)), "joined": users["joined"] + self.start}
        )
        meta: dict[str, Any] = {
            "format": "synthetic",
            "timestamps": "epoch",
            "config": dataclasses.asdict(self),
            "n_users": n_users,
            "n_items": n_items,
            "start": self.start,
            "end": end,
            "shift_timestamp": None if shift_offset is None else self.start + shift_offset,
            "shift_end_timestamp": None
            if shift_offset is None
            else self.start + shift_offset + int(round(self.shift_days * _DAY)),
            "shift_users": None if shift_offset is None else len(ses["shift_users"]),
            "shift_permutation": _shift_names(ses.get("perm"), cat["names"]),
            "categories": list(cat["names"]),
            "value": "NaN for every event; prices are items.attributes['price']",
        }
        return Dataset(events=events, items=items, users=users_frame, name="synthetic", meta=meta)


def synthetic(n_events: int = 100_000, seed: int = 0, **kwargs: Any) -> Dataset:
    """The synthetic e-commerce world: ``SyntheticWorld(n_events, seed, **kwargs).generate()``.

    See :class:`SyntheticWorld` for the other hyperparameters.

    Examples
    --------
    >>> data = synthetic(n_events=2_000, seed=3, shift_at=0.5)
    >>> len(data.events), data.name, data.meta["shift_timestamp"] is not None
    (2000, 'synthetic', True)
    """
    return SyntheticWorld(n_events=n_events, seed=seed, **kwargs).generate()


# ---------------------------------------------------------------------- frames
def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    width = max(width, len(str(n - 1)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


_EVENT_TYPES = np.array(["view", "cart", "purchase"], dtype=object)


def _string_column(names: np.ndarray, codes: np.ndarray, dtype: Any) -> Any:
    """``names[codes]`` as a column of ``dtype``, through Arrow when that is the storage."""
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        import pyarrow as pa

        return pd.Series(pa.array(names, type=pa.large_string()).take(codes), dtype=dtype)
    return pd.Series(names[codes], dtype=dtype)


def _events_frame(
    user_names: np.ndarray,
    users: np.ndarray,
    item_names: np.ndarray,
    items: np.ndarray,
    ts: np.ndarray,
    types: np.ndarray,
) -> pd.DataFrame:
    """The same frame as :func:`make_events` would build, without a Python object per cell."""
    probe = make_events(user_names[:1], item_names[:1], ts[:1], _EVENT_TYPES[:1])
    dtypes = probe.dtypes
    frame = pd.DataFrame(
        {
            "user_id": _string_column(user_names, users, dtypes["user_id"]),
            "item_id": _string_column(item_names, items, dtypes["item_id"]),
            "timestamp": np.asarray(ts, dtype=np.int64),
            "event_type": _string_column(
                _EVENT_TYPES, types.astype(np.int64), dtypes["event_type"]
            ),
            "value": np.full(len(ts), np.nan),
        }
    )
    return frame


def _shift_names(perm: np.ndarray | None, names: list[str]) -> dict[str, str] | None:
    if perm is None:
        return None
    return {names[c]: names[int(perm[c])] for c in range(len(names))}
