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
  fresh draw every 30 days), optionally with a sudden shift at ``shift_at`` (every
  user's interests move to other categories through one cyclic permutation of
  categories). Activity is heavy-tailed (lognormal session rates); a fraction
  ``new_user_rate`` of users joins during the span. User ids ``"u00042"``.
* **Sessions.** A user opens a session (times follow a daily rhythm), picks one category
  from their current interests and views ``mean_session_views`` items on average
  (geometric). The first view is drawn by popularity within the category (Zipf with
  exponent ``popularity_skew``) among items that have already arrived; with probability
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
steps and 30-day segments only). On two CPU cores: about 0.1 s for 10^5 events, 1 s for
10^6, 15 s and 2 GB of memory for 10^7. ``meta`` records the true shift time, the
category permutation and the resolved sizes, so drift detectors can be scored.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec.data._schema import (
    TIMESTAMP_MAX,
    TIMESTAMP_RANGE,
    Dataset,
    make_events,
    make_items,
)

__all__ = ["SyntheticWorld", "synthetic"]

_DAY = 86_400
_MONTH_DAYS = 30.0
_MAX_VIEWS = 64  # longest session, in views

# name, base price (median, in currency units), feature words, product types
_CATEGORIES: tuple[tuple[str, float, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Electronics",
        60.0,
        ("Wireless", "Bluetooth", "Smart", "Digital", "Portable", "USB-C"),
        ("Headphones", "Speaker", "Charger", "Smartwatch", "Earbuds", "Power Bank"),
    ),
    (
        "Books",
        15.0,
        ("Hardcover", "Paperback", "Illustrated", "Bestselling", "Annotated", "Collected"),
        ("Novel", "Cookbook", "Biography", "Thriller", "Poetry Anthology", "History"),
    ),
    (
        "Home & Kitchen",
        35.0,
        ("Stainless", "Nonstick", "Ceramic", "Cast-Iron", "Glass", "Bamboo"),
        ("Frying Pan", "Knife Set", "Blender", "Kettle", "Cutting Board", "Mug"),
    ),
    (
        "Clothing",
        30.0,
        ("Cotton", "Slim-Fit", "Linen", "Denim", "Wool", "Hooded"),
        ("T-Shirt", "Jeans", "Sweater", "Jacket", "Dress", "Hoodie"),
    ),
    (
        "Shoes",
        70.0,
        ("Leather", "Running", "Waterproof", "Suede", "Trail", "Canvas"),
        ("Sneakers", "Boots", "Sandals", "Loafers", "Trainers", "Slippers"),
    ),
    (
        "Sports & Outdoors",
        40.0,
        ("Ultralight", "Insulated", "Foldable", "Weatherproof", "Reflective", "Breathable"),
        ("Tent", "Yoga Mat", "Dumbbell", "Backpack", "Water Bottle", "Bike Helmet"),
    ),
    (
        "Beauty",
        20.0,
        ("Hydrating", "Organic", "Matte", "Fragrance-Free", "Vitamin-C", "Mineral"),
        ("Moisturizer", "Lipstick", "Serum", "Shampoo", "Sunscreen", "Face Mask"),
    ),
    (
        "Toys & Games",
        25.0,
        ("Wooden", "Educational", "Magnetic", "Plush", "Remote-Control", "Musical"),
        ("Puzzle", "Board Game", "Building Blocks", "Doll", "Race Car", "Teddy Bear"),
    ),
    (
        "Grocery",
        10.0,
        ("Roasted", "Gluten-Free", "Dark", "Spicy", "Whole-Grain", "Cold-Pressed"),
        ("Coffee Beans", "Green Tea", "Chocolate Bar", "Olive Oil", "Pasta", "Granola"),
    ),
    (
        "Pet Supplies",
        25.0,
        ("Chewable", "Orthopedic", "Grain-Free", "Self-Cleaning", "Interactive", "Catnip"),
        ("Dog Bed", "Cat Litter", "Chew Toy", "Leash", "Pet Food", "Scratching Post"),
    ),
    (
        "Garden",
        35.0,
        ("Solar", "Perennial", "Raised", "Drip", "Galvanized", "Frost-Proof"),
        ("Planter", "Garden Hose", "Pruning Shears", "Seed Kit", "Garden Lights", "Wheelbarrow"),
    ),
    (
        "Office",
        30.0,
        ("Ergonomic", "Refillable", "Recycled", "Dotted", "Height-Adjustable", "Archival"),
        ("Desk Chair", "Notebook", "Gel Pens", "Stapler", "Monitor Stand", "Planner"),
    ),
    (
        "Automotive",
        40.0,
        ("Synthetic", "All-Weather", "LED", "Universal", "Heavy-Duty", "Anti-Glare"),
        ("Motor Oil", "Car Charger", "Floor Mats", "Dash Cam", "Jump Starter", "Wiper Blades"),
    ),
    (
        "Musical Instruments",
        120.0,
        ("Acoustic", "Electric", "Studio", "Tuned", "Fretted", "Condenser"),
        ("Guitar", "Keyboard", "Ukulele", "Drum Pad", "Microphone", "Guitar Strings"),
    ),
    (
        "Movies & TV",
        20.0,
        ("Remastered", "Animated", "Extended", "Boxed", "Subtitled", "Award-Winning"),
        ("Blu-ray", "DVD", "Box Set", "Documentary", "Trilogy", "Series Season"),
    ),
    (
        "Video Games",
        50.0,
        ("Multiplayer", "Open-World", "Racing", "Retro", "Co-op", "RPG"),
        ("Console", "Controller", "Game", "Gaming Headset", "Gaming Mouse", "Charging Dock"),
    ),
    (
        "Health",
        25.0,
        ("Sugar-Free", "Vegan", "Extra-Strength", "Daily", "Probiotic", "Clinical"),
        ("Multivitamin", "Protein Powder", "Fish Oil", "Thermometer", "First Aid Kit", "Magnesium"),
    ),
    (
        "Baby",
        45.0,
        ("Hypoallergenic", "BPA-Free", "Convertible", "Swaddle", "Newborn", "Washable"),
        ("Stroller", "Diapers", "Baby Bottle", "Car Seat", "Onesie", "Teether"),
    ),
    (
        "Jewelry",
        60.0,
        ("Sterling-Silver", "Gold-Plated", "Handmade", "Gemstone", "Minimalist", "Engraved"),
        ("Necklace", "Ring", "Earrings", "Bracelet", "Pendant", "Anklet"),
    ),
    (
        "Tools",
        55.0,
        ("Cordless", "Brushless", "Precision", "Impact", "Telescopic", "Torque"),
        ("Drill", "Screwdriver Set", "Tape Measure", "Circular Saw", "Wrench Set", "Spirit Level"),
    ),
)
# Categories beyond the vocabulary reuse it with a modifier ("Kids Electronics").
_MODIFIERS = ("Kids", "Travel", "Outdoor", "Professional", "Vintage", "Luxury", "Mini", "Family")
_STYLE_WORDS = (
    "Premium", "Classic", "Essential", "Deluxe", "Everyday", "Pro",
    "Compact", "Modern", "Eco", "Signature", "Ultra", "Basic",
)  # fmt: skip
_BRANDS = (
    "Acme", "Nordika", "Veltro", "Lumio", "Brightway", "Kestrel", "Orbis", "Zenno",
    "Halden", "Corvex", "Mapleton", "Quillo", "Trevi", "Sorrel", "Aurex", "Bexley",
    "Calyx", "Dorado", "Evren", "Fjellborn", "Greyfield", "Hollis", "Ivara", "Jovian",
    "Kindred", "Larkspur", "Moravi", "Nimbus", "Oakhurst", "Pellar", "Quorra", "Rivolt",
    "Saxby", "Tamsin", "Umbra", "Vireo", "Wexford", "Xylo", "Yarrow", "Zephyra",
)  # fmt: skip
_BRANDS_PER_CATEGORY = 8
# Share of sessions starting in each hour of the day (UTC): quiet nights, busy evenings.
_HOURLY = np.array(
    [2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 6, 6, 6, 6, 7, 8, 9, 9, 8, 6, 4], dtype=np.float64
)


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
        ``None`` (no sudden shift) or a fraction in ``(0, 1)`` of the span at which every
        user's interests jump to other categories (one cyclic permutation of categories
        for all users). ``meta["shift_timestamp"]`` tells the exact time.
    new_item_rate
        In ``[0, 1]``: share of items that arrive during the span rather than at ``start``
        (every category keeps at least one item present from the start).
    new_user_rate
        In ``[0, 1]``: share of users who join during the span rather than at ``start``.
    popularity_skew
        Zipf exponent of item popularity within a category (0 = uniform), at least 0.
    novelty_boost
        In ``[0, 1]``: probability that a session's first view goes to an item that
        arrived in the last ``novelty_days`` (when the category has one).
    novelty_days
        How long an arrival counts as fresh, in days (> 0).
    sequential_strength
        In ``[0, 1]``: probability that a view follows the previous item's "next" item.
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
    new_item_rate: float = 0.2
    new_user_rate: float = 0.2
    popularity_skew: float = 1.0
    novelty_boost: float = 0.2
    novelty_days: float = 7.0
    sequential_strength: float = 0.4
    mean_session_views: float = 4.0
    cart_rate: float = 0.1
    purchase_rate: float = 0.4

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`~lifelongrec.ParameterError` naming the first bad field."""
        _check_int("n_events", self.n_events, 1)
        _check_int("n_categories", self.n_categories, 1)
        if self.n_users is not None:
            _check_int("n_users", self.n_users, 1)
        if self.n_items is not None:
            _check_int("n_items", self.n_items, self.n_categories, "(n_categories)")
        _check_int("seed", self.seed, 0)
        _check_int("start", self.start, 0)
        _check_real("duration_days", self.duration_days, 1.0)
        last = self.start + int(round(self.duration_days * _DAY)) - 1
        if last > TIMESTAMP_MAX:
            raise ParameterError(
                "start",
                self.start,
                f"a time span (start + duration_days days, here ending at {last}) within "
                f"{TIMESTAMP_RANGE}",
            )
        _check_real("interest_concentration", self.interest_concentration, 0.0, low_open=True)
        for name in (
            "interest_drift",
            "new_item_rate",
            "new_user_rate",
            "novelty_boost",
            "sequential_strength",
            "cart_rate",
            "purchase_rate",
        ):
            _check_real(name, getattr(self, name), 0.0, 1.0)
        if self.shift_at is not None:
            _check_real("shift_at", self.shift_at, 0.0, 1.0, low_open=True, high_open=True)
        _check_real("popularity_skew", self.popularity_skew, 0.0)
        _check_real("novelty_days", self.novelty_days, 0.0, low_open=True)
        _check_real("mean_session_views", self.mean_session_views, 1.0)

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
        the resolved sizes, the span and ``shift_timestamp`` (``None`` without shift).
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
        _session_times(rng, ses, users["joined"], span)
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


# ---------------------------------------------------------------------- validation helpers
def _check_int(name: str, value: Any, low: int, low_name: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, value, "an integer")
    if value < low:
        raise ParameterError(
            name, value, f"an integer >= {low}{' ' + low_name if low_name else ''}"
        )


def _check_real(
    name: str,
    value: Any,
    low: float,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(name, value, "a number")
    v = float(value)
    lo_ok = v > low if low_open else v >= low
    hi_ok = high is None or (v < high if high_open else v <= high)
    if math.isnan(v) or math.isinf(v) or not (lo_ok and hi_ok):
        left = "(" if low_open else "["
        if high is None:
            expected = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            right = ")" if high_open else "]"
            expected = f"a number in {left}{low:g}, {high:g}{right}"
        raise ParameterError(name, value, expected)


# ---------------------------------------------------------------------- catalogue
def _category_vocab(
    n_categories: int,
) -> list[tuple[str, float, tuple[str, ...], tuple[str, ...], str]]:
    """``(name, base price, feature words, product types, modifier)`` per category."""
    out = []
    n_base = len(_CATEGORIES)
    for c in range(n_categories):
        name, price, features, types = _CATEGORIES[c % n_base]
        round_ = c // n_base
        modifier = ""
        if round_ > 0:
            modifier = _MODIFIERS[(round_ - 1) % len(_MODIFIERS)]
            name = f"{modifier} {name}"
            if round_ > len(_MODIFIERS):
                name = f"{name} {(round_ - 1) // len(_MODIFIERS) + 1}"
        out.append((name, price, features, types, modifier))
    return out


def _random_ranks(rng: np.random.Generator, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """A random 0-based rank of every element within its group."""
    order = np.lexsort((rng.random(len(groups)), groups))
    counts = np.bincount(groups, minlength=n_groups)
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    ranks = np.empty(len(groups), dtype=np.int64)
    ranks[order] = np.arange(len(groups)) - np.repeat(firsts, counts)
    return ranks


def _catalogue(
    rng: np.random.Generator, n_items: int, n_cat: int, span: int, new_item_rate: float
) -> dict[str, Any]:
    """Items in internal order: sorted by (category, arrival offset)."""
    vocab = _category_vocab(n_cat)
    # Uneven category sizes; every category gets at least one item.
    size_w = rng.dirichlet(np.full(n_cat, 4.0))
    cat = np.concatenate(
        [np.arange(n_cat), rng.choice(n_cat, size=n_items - n_cat, p=size_w)]
    ).astype(np.int64)
    arrival = np.zeros(n_items, dtype=np.int64)
    is_new = rng.random(n_items) < new_item_rate
    is_new[:n_cat] = False  # every category has an item from the start
    arrival[is_new] = rng.integers(1, span, size=int(is_new.sum()))

    order = np.lexsort((arrival, cat))
    cat, arrival = cat[order], arrival[order]
    counts = np.bincount(cat, minlength=n_cat)
    offsets = np.concatenate(([0], np.cumsum(counts)))

    # Popularity: Zipf over a random rank within the category.
    rank_in_cat = _random_ranks(rng, cat, n_cat)
    # Hidden "next" chain: a random cyclic order through each category.
    chain = np.lexsort((rng.random(n_items), cat))
    nxt = np.empty(n_items, dtype=np.int64)
    following = np.roll(chain, -1)
    last_of_cat = offsets[1:] - 1
    following[last_of_cat] = chain[offsets[:-1]]  # wrap within the category
    nxt[chain] = following

    # Content: sub-category (product type), brand, price, title.
    n_types = len(_CATEGORIES[0][3])
    sub = rng.integers(0, n_types, size=n_items)
    brand_pool = np.stack(
        [rng.choice(len(_BRANDS), _BRANDS_PER_CATEGORY, replace=False) for _ in range(n_cat)]
    )
    brand_w = 1.0 / np.arange(1, _BRANDS_PER_CATEGORY + 1)
    brand_slot = rng.choice(_BRANDS_PER_CATEGORY, size=n_items, p=brand_w / brand_w.sum())
    brand = brand_pool[cat, brand_slot]
    premium = rng.normal(0.0, 0.25, size=(n_cat, _BRANDS_PER_CATEGORY))
    base = np.array([v[1] for v in vocab])
    log_price = np.log(base[cat]) + premium[cat, brand_slot] + rng.normal(0.0, 0.45, n_items)
    price = np.round(np.exp(log_price)).clip(1.0) - 0.01
    feature = rng.integers(0, len(_CATEGORIES[0][2]), size=n_items)
    style = rng.integers(0, len(_STYLE_WORDS), size=n_items)
    has_style = rng.random(n_items) < 0.6

    # Public ids increase with arrival (ties in random order).
    rank = np.empty(n_items, dtype=np.int64)
    rank[np.lexsort((rng.random(n_items), arrival))] = np.arange(n_items)
    return {
        "vocab": vocab,
        "names": [v[0] for v in vocab],
        "cat": cat,
        "arrival": arrival,
        "offsets": offsets,
        "rank_in_cat": rank_in_cat,
        "nxt": nxt,
        "sub": sub,
        "brand": brand,
        "price": price,
        "feature": feature,
        "style": np.where(has_style, style, -1),
        "rank": rank,
    }


def _items_frame(cat: dict[str, Any], item_names: np.ndarray, start: int) -> pd.DataFrame:
    vocab = cat["vocab"]
    order = np.argsort(cat["rank"])  # by public id
    titles, categories, attributes = [], [], []
    for j in order.tolist():
        c = int(cat["cat"][j])
        name, _, features, types, modifier = vocab[c]
        words = [_BRANDS[cat["brand"][j]]]
        if cat["style"][j] >= 0:
            words.append(_STYLE_WORDS[cat["style"][j]])
        if modifier:
            words.append(modifier)
        product = types[cat["sub"][j]]
        words += [features[cat["feature"][j]], product]
        titles.append(" ".join(words))
        categories.append([name, product])
        attributes.append(
            {
                "price": float(cat["price"][j]),
                "brand": _BRANDS[cat["brand"][j]],
                "arrival": int(cat["arrival"][j]) + start,
            }
        )
    return make_items(item_names[cat["rank"][order]], titles, categories, attributes)


# ---------------------------------------------------------------------- users and sessions
def _users(rng: np.random.Generator, n_users: int, span: int, new_user_rate: float) -> dict:
    rate = rng.lognormal(0.0, 1.0, size=n_users)  # heavy-tailed activity
    joined = np.zeros(n_users, dtype=np.int64)
    is_new = rng.random(n_users) < new_user_rate
    latest = max(1, int(span * 0.9))  # late joiners still get some time
    joined[is_new] = rng.integers(0, latest, size=int(is_new.sum()))
    return {"rate": rate, "joined": joined}


def _session_shapes(
    rng: np.random.Generator, cfg: SyntheticWorld, n_users: int, rate: np.ndarray
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
    rng: np.random.Generator, ses: dict[str, np.ndarray], joined: np.ndarray, span: int
) -> None:
    """Offsets of views, carts and purchases in their session, and session starts.

    Offsets are whole seconds and strictly ordered: a view's cart comes at least 2 s after
    it, checkout at least 10 s after the session's last view and cart, purchases one
    second apart from there. A session lasts less than 12 hours, so it fits in the span
    (at least a day) and starts at or after its user joined, when there is room.
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
    hi = np.maximum(lo + 1, span - duration)
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
    cfg: SyntheticWorld,
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
        after = t0 >= shift_offset
        out[after] = perm[out[after]]
        ses["perm"] = perm
    return out


# ---------------------------------------------------------------------- events
def _set_popularity(cat: dict[str, Any], skew: float) -> np.ndarray:
    w = 1.0 / (cat["rank_in_cat"] + 1.0) ** skew
    return np.concatenate(([0.0], np.cumsum(w)))


def _draw(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One item per row, by popularity, among internal indices ``[lo, hi)`` (hi > lo)."""
    x = cum[lo] + rng.random(len(lo)) * (cum[hi] - cum[lo])
    return np.clip(np.searchsorted(cum, x, side="right") - 1, lo, hi - 1)


def _events(
    rng: np.random.Generator, cfg: SyntheticWorld, ses: dict[str, np.ndarray], cat: dict
) -> dict[str, np.ndarray]:
    """Items of every view, then carts and purchases, in session order (unsorted)."""
    cum = _set_popularity(cat, cfg.popularity_skew)
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
    item[first_view] = _draw(rng, cum, first_lo, hi)
    active = np.arange(len(t0))
    for step in range(1, int(views.max())):
        active = active[views[active] > step]
        pos = first_view[active] + step
        prev = item[pos - 1]
        follow = nxt[prev]
        ok = (rng.random(len(active)) < cfg.sequential_strength) & (arrival[follow] <= t0[active])
        chosen = _draw(rng, cum, lo[active], hi[active])
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
