"""Titles and categories of catalogue items, for answers that show items by name.

Every recommendation answer carries its items' titles and categories (``details``, on
by default over HTTP). :class:`ItemDetails` reads them from the store once per item and
keeps them in memory, so an answer does not cost a catalogue query (a network round
trip on PostgreSQL). The catalogue forgets an item's entry when the item is upserted:
this process's upserts before their answer, other processes' when it follows them (the
same moment their items go live here). A read that raced an upsert is not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from lifelongrec.data import EventStore

__all__ = ["ItemDetails"]

_ABSENT = (None, ())  # an id without a catalogue entry: no title, no categories


class ItemDetails:
    """``{item_id: (title, categories)}`` from the store, kept for up to ``size`` items
    (then started afresh); see the module docstring."""

    def __init__(self, store: EventStore, size: int = 200_000) -> None:
        self.store = store
        self.size = int(size)
        self._kept: dict[str, tuple[str | None, Sequence[str]]] = {}
        self._generation = 0  # moves on every forget: a read from before is not kept
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, item_ids: Sequence[str]) -> dict[str, tuple[str | None, list[str]]]:
        """Title and categories of each id (``(None, [])`` for an id the catalogue lacks)."""
        kept = self._kept
        out: dict[str, tuple[str | None, list[str]]] = {}
        missing = []
        for i in item_ids:
            got = kept.get(i)
            if got is None:
                missing.append(i)
            else:
                out[i] = (got[0], list(got[1]))
        if missing:
            generation = self._generation
            found = self.store.item_details(missing)
            read = {i: found.get(i, _ABSENT) for i in missing}
            with self._lock:
                if generation == self._generation:
                    if len(kept) + len(read) > self.size:
                        kept.clear()
                    kept.update({i: (t, tuple(c)) for i, (t, c) in read.items()})
            out.update({i: (t, list(c)) for i, (t, c) in read.items()})
        return out

    def forget(self, item_ids: Iterable[str]) -> None:
        """Drop these items' entries (they were upserted): the next answer reads them."""
        with self._lock:
            self._generation += 1
            for i in item_ids:
                self._kept.pop(str(i), None)
