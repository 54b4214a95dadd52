"""Families of synthetic streams to validate an update strategy on.

A strategy tuned on one stream can fail on the next. :func:`synthetic_streams` gives two
families of :class:`~lifelongrec.data.SyntheticWorld` settings that differ in size, item
arrivals, the kind of interest shift and session length: choose settings on the
``"train"`` family, then report them, unchanged, on the ``"test"`` family, whose streams
have other seeds and other settings.
"""

from __future__ import annotations

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_bool
from lifelongrec.data._synthetic import SyntheticWorld

__all__ = ["STREAM_FAMILIES", "synthetic_streams"]

#: The names :func:`synthetic_streams` takes.
STREAM_FAMILIES = ("train", "test")

_TRAIN: dict[str, SyntheticWorld] = {
    "train-calm-20k": SyntheticWorld(n_events=20_000, seed=101, new_item_rate=0.2),
    "train-sudden-50k": SyntheticWorld(n_events=50_000, seed=102, new_item_rate=0.1, shift_at=0.5),
    "train-half-late-30k": SyntheticWorld(
        n_events=30_000,
        seed=103,
        new_item_rate=0.3,
        shift_at=0.7,
        shift_share=0.5,
        mean_session_views=3.0,
    ),
    "train-gradual-100k": SyntheticWorld(
        n_events=100_000,
        seed=104,
        new_item_rate=0.05,
        shift_at=0.4,
        shift_days=20.0,
        mean_session_views=6.0,
    ),
    "train-small-10k": SyntheticWorld(
        n_events=10_000,
        seed=105,
        new_item_rate=0.5,
        shift_at=0.6,
        shift_share=0.5,
        shift_days=10.0,
        mean_session_views=2.0,
    ),
    # one-off visitors: every user joins during the span and comes within two days only
    "train-visitors-30k": SyntheticWorld(
        n_events=30_000,
        seed=106,
        new_item_rate=0.2,
        new_user_rate=1.0,
        user_active_days=2.0,
        mean_session_views=6.0,
    ),
    # item turnover: popularity halves every 15 days from arrival, new items take over
    "train-aging-30k": SyntheticWorld(
        n_events=30_000,
        seed=107,
        new_item_rate=0.4,
        item_half_life_days=15.0,
    ),
    # what follows what changes: the hidden "next" chain is redrawn every 11 days
    "train-reorder-30k": SyntheticWorld(
        n_events=30_000,
        seed=108,
        new_item_rate=0.4,
        item_half_life_days=15.0,
        chain_redraw_days=11.0,
    ),
}

_TEST: dict[str, SyntheticWorld] = {
    "test-calm-40k": SyntheticWorld(
        n_events=40_000, seed=201, new_item_rate=0.35, mean_session_views=5.0
    ),
    "test-sudden-early-25k": SyntheticWorld(
        n_events=25_000,
        seed=202,
        new_item_rate=0.4,
        shift_at=0.45,
        mean_session_views=2.5,
    ),
    "test-half-gradual-60k": SyntheticWorld(
        n_events=60_000,
        seed=203,
        new_item_rate=0.15,
        shift_at=0.55,
        shift_share=0.5,
        shift_days=15.0,
        mean_session_views=8.0,
    ),
    "test-half-late-80k": SyntheticWorld(
        n_events=80_000,
        n_users=2_700,
        seed=204,
        new_item_rate=0.25,
        shift_at=0.8,
        shift_share=0.5,
        mean_session_views=3.5,
    ),
    "test-gradual-12k": SyntheticWorld(
        n_events=12_000,
        seed=205,
        new_item_rate=0.1,
        shift_at=0.65,
        shift_days=30.0,
    ),
}

_LARGE: dict[str, SyntheticWorld] = {
    "test-half-gradual-1m": SyntheticWorld(
        n_events=1_000_000,
        seed=206,
        new_item_rate=0.2,
        shift_at=0.5,
        shift_share=0.5,
        shift_days=7.0,
        mean_session_views=4.5,
    ),
}


def synthetic_streams(family: str, *, large: bool = False) -> dict[str, SyntheticWorld]:
    """The streams of a family, by name: ``{name: SyntheticWorld}`` (call ``generate()``).

    Every stream spans 90 days; the other settings are the
    :class:`~lifelongrec.data.SyntheticWorld` defaults (users: ``n_events // 40``, items:
    ``n_events // 25``, monthly interest drift 0.1). "new items" is ``new_item_rate``
    (the share of items arriving during the span), "shift" the time of the shift as a
    fraction of the span, "share" ``shift_share``, "days" ``shift_days`` (0: sudden),
    "views" ``mean_session_views``.

    ``"train"``: choose settings on these.

    ===================== ========= ====== ========= ===== ===== ==== =====
    name                  events    seed   new items shift share days views
    ===================== ========= ====== ========= ===== ===== ==== =====
    train-calm-20k        20,000    101    0.20      --    --    --   4
    train-sudden-50k      50,000    102    0.10      0.5   1.0   0    4
    train-half-late-30k   30,000    103    0.30      0.7   0.5   0    3
    train-gradual-100k    100,000   104    0.05      0.4   1.0   20   6
    train-small-10k       10,000    105    0.50      0.6   0.5   10   2
    train-visitors-30k    30,000    106    0.20      --    --    --   6
    train-aging-30k       30,000    107    0.40      --    --    --   4
    train-reorder-30k     30,000    108    0.40      --    --    --   4
    ===================== ========= ====== ========= ===== ===== ==== =====

    ``train-visitors-30k`` is a stream of one-off visitors (``new_user_rate=1``,
    ``user_active_days=2``): every user joins during the span and comes within two
    days, as MovieLens' raters rate in one spree, so most of a window's events come
    from users no earlier window saw. ``train-aging-30k`` has items that come and go
    (``item_half_life_days=15``: an item's popularity halves every 15 days from its
    arrival), as films do over ml-latest-small's 22 years: what was popular in the
    first window has mostly faded by the last. ``train-reorder-30k`` has aging items too,
    and its hidden "next" chain is redrawn every 11 days (``chain_redraw_days=11``, about
    one window of eight): the order in which users go from item to item changes, as
    ml-latest-small's does over its years (there, the item-to-next-item counts of the
    latest window predict the next window's better than those of all the windows before
    it: ``benchmarks/transition_drift.py``).

    ``"test"``: report on these, with other seeds and settings (``test-half-late-80k``
    has 2,700 users, about 30 events each rather than 40; ``large=True`` adds the
    million-event stream).

    ======================== ========= ====== ========= ===== ===== ==== =====
    name                     events    seed   new items shift share days views
    ======================== ========= ====== ========= ===== ===== ==== =====
    test-calm-40k            40,000    201    0.35      --    --    --   5
    test-sudden-early-25k    25,000    202    0.40      0.45  1.0   0    2.5
    test-half-gradual-60k    60,000    203    0.15      0.55  0.5   15   8
    test-half-late-80k       80,000    204    0.25      0.8   0.5   0    3.5
    test-gradual-12k         12,000    205    0.10      0.65  1.0   30   4
    test-half-gradual-1m     1,000,000 206    0.20      0.5   0.5   7    4.5
    ======================== ========= ====== ========= ===== ===== ==== =====

    Parameters
    ----------
    family
        ``"train"`` or ``"test"`` (:data:`STREAM_FAMILIES`).
    large
        Also the streams of a million events (the test family's last row); slow to run a
        model on, so off by default.

    Raises
    ------
    ParameterError
        An unknown family, or a ``large`` that is not a bool.

    Examples
    --------
    >>> streams = synthetic_streams("train")
    >>> list(streams)[:2]
    ['train-calm-20k', 'train-sudden-50k']
    >>> world = streams["train-half-late-30k"]
    >>> world.shift_at, world.shift_share, world.seed
    (0.7, 0.5, 103)
    >>> len(synthetic_streams("test", large=True)) - len(synthetic_streams("test"))
    1
    """
    if family not in STREAM_FAMILIES:
        raise ParameterError("family", family, f"one of {list(STREAM_FAMILIES)}")
    check_bool("large", large)
    if family == "train":
        return dict(_TRAIN)
    return {**_TEST, **(_LARGE if large else {})}
