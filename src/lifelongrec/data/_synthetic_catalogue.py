"""The synthetic world's catalogue: category vocabularies, items and their content.

Items get a category (uneven sizes), a popularity rank within it, a hidden "next" item
(a cycle through the category), a product type, a brand, a lognormal price, an arrival
time and a title built from the category's words; :func:`_items_frame` turns them into
the catalogue frame. See :mod:`lifelongrec.data._synthetic` for the whole world.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.data._schema import make_items

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
        "chain": chain,
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
