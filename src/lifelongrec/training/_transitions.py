"""Does what follows what still hold? Item-to-next-item counts of the latest and older windows.

:class:`TransitionDrift` watches a stream window by window. For each new window it asks
how often a user's next item is among the ``top`` items that most often followed the
previous one

- in the latest window before it (``latest``), and
- in all the windows before that (``older``: more data, but older),

and returns ``latest / older``. Where the order in which users go from item to item
holds still, the older windows' counts (several windows of them) predict at least as
well as one window's, and the ratio is at most about 1 (0.5-0.9 on the synthetic streams
of the train family but ``train-aging-30k`` and on ml-100k, from their fourth window on;
about 1 on the third, where one window's counts face one window's); where the order
changes, the latest window wins although it has less data (1.06-2.04 on
ml-latest-small's windows, 1.19-1.73 on ``train-reorder-30k``'s). Replaying the older windows' events then teaches
the model the order that no longer holds, which is what
:class:`~lifelongrec.training.Lifelong`'s ``replay_drift_power`` uses it for.
``benchmarks/transition_drift.py`` prints the same ratio, averaged over a stream's
windows.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from lifelongrec._params import Constraint, Integer, Params
from lifelongrec.data import Dataset, as_dataset

__all__ = ["TransitionDrift"]


def _top(counts: pd.Series, top: int) -> pd.DataFrame:
    """The ``top`` most frequent successors of every item (ties: the smaller id first)."""
    frame = counts.rename("n").reset_index()
    frame = frame.sort_values(["a", "n", "b"], ascending=[True, False, True], kind="stable")
    return frame.groupby("a", sort=False).head(top)[["a", "b"]]


def _hit_rate(table: pd.DataFrame, pairs: pd.DataFrame) -> float:
    hits = len(pairs.merge(table, on=["a", "b"], how="inner"))
    return hits / len(pairs)


class TransitionDrift(Params):
    """How much better the latest window's successor counts predict a new window than the
    older windows' counts do (see the module docstring).

    Parameters
    ----------
    top
        How many successors of an item count as predicted (int >= 1; default 10).
    max_pairs
        Most distinct (item, next item) pairs the older windows' counts keep (int >= 1):
        beyond it the rarest are dropped, which keeps memory bounded on a stream that
        never ends and seldom changes an item's most frequent successors. Also the most
        users whose latest item is kept (to pair it with their next window's first
        event); beyond it, the users seen longest ago are dropped.

    Attributes
    ----------
    ratios_ : list[float | None]
        What :meth:`observe` returned, per window.

    Examples
    --------
    Four users go through four items in one order, then in the reverse order, then in
    the first again: the window after a reversal is predicted by the latest window's
    counts only (``inf``), the one after the return by the older windows' only (0).

    >>> import pandas as pd
    >>> def window(t, order):
    ...     rows = [(u, i, 100 * t + 10 * u + k) for u in range(4) for k, i in enumerate(order)]
    ...     return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    >>> drift = TransitionDrift()
    >>> orders = ["abcd", "abcd", "dcba", "dcba", "abcd"]
    >>> [drift.observe(window(t, order)) for t, order in enumerate(orders)]
    [None, None, None, inf, 0.0]
    """

    _constraints: ClassVar[dict[str, Constraint]] = {
        "top": Integer(1),
        "max_pairs": Integer(1),
    }

    def __init__(self, top: int = 10, max_pairs: int = 1_000_000) -> None:
        self.top = top
        self.max_pairs = max_pairs
        self.check_params()
        self._last: pd.Series = pd.Series(dtype=object)  # each user's latest item
        self._latest: pd.Series | None = None  # pair counts of the latest window
        self._older: pd.Series | None = None  # pair counts of the windows before it
        self.ratios_: list[float | None] = []

    def _pairs(self, events: pd.DataFrame) -> pd.DataFrame:
        """Consecutive events of a user (two different items); a user's first event in
        ``events`` follows their last one of an earlier window."""
        ev = events[["user_id", "item_id", "timestamp"]].sort_values(
            ["user_id", "timestamp"], kind="stable"
        )
        users, items = ev["user_id"], ev["item_id"].astype(object)
        before = items.groupby(users.to_numpy(), sort=False).shift(1)
        first = before.isna().to_numpy()
        before[first] = users[first].map(self._last).to_numpy()
        keep = before.notna().to_numpy() & (before.to_numpy() != items.to_numpy())
        last = items.groupby(users.to_numpy(), sort=False).last()
        self._last = pd.concat([self._last[~self._last.index.isin(last.index)], last])
        if len(self._last) > self.max_pairs:  # the users seen longest ago go first
            self._last = self._last.iloc[-self.max_pairs :]
        return pd.DataFrame({"a": before[keep].to_numpy(), "b": items[keep].to_numpy()})

    def observe(self, events: pd.DataFrame | Dataset) -> float | None:
        """Score the window ``events`` (in stream order, after every window before it),
        then add it to the counts.

        Returns ``latest / older`` (``inf`` where the older windows' counts predict none
        of its next items and the latest window's some), or ``None`` when it cannot be
        told: before two windows were observed, or when neither table predicts any of
        the window's next items, or the window has no consecutive pair.
        """
        pairs = self._pairs(as_dataset(events).events)
        ratio: float | None = None
        if self._latest is not None and self._older is not None and len(pairs):
            latest = _hit_rate(_top(self._latest, self.top), pairs)
            older = _hit_rate(_top(self._older, self.top), pairs)
            if older > 0:
                ratio = latest / older
            elif latest > 0:
                ratio = float("inf")
        counts = pairs.value_counts(["a", "b"])
        if self._latest is not None:
            older = (
                self._latest if self._older is None else self._older.add(self._latest, fill_value=0)
            )
            if len(older) > self.max_pairs:
                older = older.sort_values(ascending=False, kind="stable").iloc[: self.max_pairs]
            self._older = older
        self._latest = counts
        self.ratios_.append(ratio)
        return ratio
