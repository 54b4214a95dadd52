"""The live model: what requests read, and how a model is made live.

A :class:`LiveModel` bundles the model serving now with everything derived from it
(retrieval index, categories, popularity, cached user vectors); :class:`LiveSlot` holds
the current one and replaces it as one reference, so a request sees either the old
bundle or the new one, never a mix. :meth:`LiveSlot.install` catches a model up with the
store (events and catalogue) and makes it live; the learner thread also asks the slot to
refresh the popularity ranking and to swap in a compacted index.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lifelongrec.data import EVENT_COLUMNS, EventStore
from lifelongrec.models import Recommender
from lifelongrec.serving._capabilities import VectorModel, discard_online_material
from lifelongrec.serving._config import IndexSettings
from lifelongrec.serving._index import ItemIndex
from lifelongrec.serving._index_store import IndexStore
from lifelongrec.serving._shared import Locks

__all__ = ["LiveModel", "LiveSlot", "popularity"]

READ_CHUNK = 50_000
POPULAR = 1_000  # popular items kept ready for cold-start answers
REFRESH_SECONDS = 30.0  # how often the learner thread refreshes them
FRESH = 1_000  # newest catalogue entries kept for cold-start answers


@dataclass
class LiveModel:
    """What requests read, swapped as one reference (read-only for everyone but the
    service's parts, which change it only under the model lock).

    Attributes
    ----------
    model
        The model serving now.
    version
        Its registry version.
    index
        The retrieval index over its item vectors (``None`` for a model without
        vectors: it is scored through its own ``recommend``).
    categories
        Category -> the live items in it.
    popular
        The most popular live items, most first, with their event counts.
    item_set
        The live items (cold start filters "new" items by it).
    """

    model: Recommender
    version: str
    index: ItemIndex | None
    categories: dict[str, set[str]]
    popular: list[tuple[str, float]]
    item_set: set[str]
    seq: int = 0  # the store position the model had observed every event up to when made live
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # category -> index mask
    # User vectors computed by requests, dropped when the user's state changes (an
    # event, an erasure, an eviction). ``encoding`` holds a token per user whose vector
    # a request is computing outside the lock; a state change drops the token, which
    # tells that request not to keep its (stale) vector. Both stay as small as the users
    # in memory and the requests in flight. Only touched under the model lock.
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    encoding: dict[str, object] = field(default_factory=dict)

    def cached_vector(self, user_id: str) -> np.ndarray | None:
        """The user's vector as a request computed and cached it (``None``: none cached,
        e.g. after an event changed the user's state)."""
        return self.vectors.get(str(user_id))

    def forget_vectors(self, users: Sequence[str]) -> None:
        for u in users:
            self.vectors.pop(u, None)
            self.encoding.pop(u, None)


def categories_of(items: pd.DataFrame) -> dict[str, set[str]]:
    """Category -> item ids, from a catalogue frame."""
    out: dict[str, set[str]] = {}
    for item_id, cats in zip(items["item_id"], items["categories"], strict=True):
        for c in cats or ():
            out.setdefault(str(c), set()).add(str(item_id))
    return out


def popularity(model: Recommender, top: int | None) -> list[tuple[str, float]]:
    """The live items by event count, most first (ties: row order), the first ``top``."""
    ids = np.asarray(model.item_ids_, dtype=object)
    counts = np.asarray(model.item_counts_, dtype=np.float64)[: len(ids)]
    index = model.item_index_
    if len(index) >= len(ids):  # every row holds an item: no walk over a million rows
        live = np.ones(len(ids), dtype=bool)
    else:  # rows that hold an item (free rows do not)
        live = np.zeros(len(ids), dtype=bool)
        live[np.fromiter(index.values(), np.int64, len(index))] = True
    counts = np.where(live, counts, -np.inf)
    n = int(live.sum()) if top is None else min(int(top), int(live.sum()))
    if n == 0:
        return []
    part = np.argpartition(-counts, n - 1)[:n] if n < len(ids) else np.arange(len(ids))
    order = part[np.lexsort((part, -counts[part]))][:n]
    return [(str(ids[j]), float(counts[j])) for j in order]


def admit_catalogue(model: Recommender, store: EventStore) -> pd.DataFrame:
    """Give ``model`` the stored catalogue items it has no row for (their full entries
    read for those only); returns every item's ``item_id`` and ``categories``."""
    cats = store.item_categories()
    known = set(np.asarray(model.item_ids_, dtype=object).tolist())
    missing = cats.loc[~cats["item_id"].isin(known), "item_id"].tolist()
    if missing:
        catch_up_items(model, store.items(missing))
    return cats


def catch_up_items(model: Recommender, items: pd.DataFrame) -> list[str]:
    """Give ``model`` the catalogue items it has no row for; returns their ids."""
    if not len(items):
        return []
    known = set(np.asarray(model.item_ids_, dtype=object).tolist())
    new = items[~items["item_id"].isin(known)]
    if len(new):
        model.add_items(new.reset_index(drop=True))
    return [str(i) for i in new["item_id"]]


class LiveSlot:
    """Holds the :class:`LiveModel` serving now and makes models live.

    Parameters
    ----------
    store
        The event store (the catch-up reads it).
    settings
        The retrieval index's settings.
    locks
        The service's locks.
    index_store
        Where the graph of the version made live is kept between starts (``None``:
        nowhere; every install builds its index).
    """

    def __init__(
        self,
        store: EventStore,
        settings: IndexSettings,
        locks: Locks,
        index_store: IndexStore | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.locks = locks
        self.index_store = index_store
        self.current: LiveModel | None = None
        self.fresh: list[str] = []  # the newest catalogue entries, newest last
        self._refreshed_at = time.monotonic()

    def _new_index(self) -> ItemIndex:
        s = self.settings
        return ItemIndex(
            ann_threshold=s.ann_threshold,
            m=s.hnsw_m,
            ef_search=s.hnsw_ef_search,
            exact_head=s.hnsw_exact_head,
            max_delta=s.max_delta,
        )

    def build_index(
        self, model: Recommender, version: str | None = None, lazy: bool = False
    ) -> ItemIndex | None:
        """A retrieval index over the model's item vectors (``None`` without vectors);
        with an index store and the ``version``, its saved graph where it fits, else
        built and saved for the next start. ``lazy`` (a start): where a saved graph of
        the version is on disk, an exact index now, and the graph read back by the
        next :meth:`compact_index` (the service answers meanwhile, by exact search)."""
        if not isinstance(model, VectorModel):
            return None
        ids, vectors = model.item_vectors()
        index = self._new_index()
        keep = self.index_store if version is not None else None
        if keep is not None:
            ids = np.asarray(ids, dtype=object)
            vectors = np.asarray(vectors, dtype=np.float32)
            if lazy and len(ids) > index.ann_threshold and keep.has(version):
                return index.build(ids, vectors, exact=True)
            loaded = keep.load(version, index, ids, vectors)
            if loaded is not None:
                return loaded
        index.build(ids, vectors)
        if keep is not None:
            keep.save(version, index)
        return index

    def _from_saved(self, version: str) -> Callable[[np.ndarray, np.ndarray], ItemIndex]:
        """``make(ids, vectors)`` for :meth:`ItemIndex.rebuilt`: the version's saved
        graph where it fits, else a fresh graph, saved for the next start."""

        def make(ids: np.ndarray, vectors: np.ndarray) -> ItemIndex:
            loaded = self.index_store.load(version, self._new_index(), ids, vectors)
            if loaded is not None:
                return loaded
            index = self._new_index().build(ids, vectors)
            self.index_store.save(version, index)
            return index

        return make

    def install(
        self,
        model: Recommender,
        version: str,
        seq: int,
        follow: Callable[[Recommender], None],
        lazy: bool = False,
    ) -> pd.DataFrame:
        """Catch ``model`` up with the store's events after ``seq`` and make it live;
        ``follow(model)`` (:meth:`UserMemory.follow`) makes it hold the users in memory.
        Returns the catalogue's ``item_id`` and ``categories`` (read once, without the
        titles and attributes the model already holds: at a million items decoding
        those is seconds). Callers hold the erase lock (a model being installed is
        scrubbed)."""
        store = self.store
        # The catalogue first: an item first met in the events caught up below then has
        # its content (only items without a row are read whole and admitted).
        items = admit_catalogue(model, store)
        # Most of the catch-up outside the ingestion lock, the rest under it.
        while True:
            missed = store.read(after_seq=seq, limit=READ_CHUNK)
            if len(missed) < READ_CHUNK:
                break
            model.observe(missed[list(EVENT_COLUMNS)])
            seq = int(missed["seq"].iloc[-1])
        index = self.build_index(model, version, lazy=lazy)
        categories = categories_of(items)
        with self.locks.ingest:
            missed = store.read(after_seq=seq)
            if len(missed):
                model.observe(missed[list(EVENT_COLUMNS)])
                seq = int(missed["seq"].iloc[-1])
            if store.n_items != len(items):  # new items were upserted meanwhile
                known = set(items["item_id"])
                items = admit_catalogue(model, store)
                added = [i for i in items["item_id"] if i not in known]
                categories = categories_of(items)
                if index is not None and added:
                    index.upsert(*model.item_vectors(added))
            discard_online_material(model)
            follow(model)
            popular = popularity(model, POPULAR)
            live_items = set(model.known_items())
            with self.locks.model:
                self.current = LiveModel(
                    model, version, index, categories, popular, live_items, seq=seq
                )
        return items

    def set_fresh(self, items: pd.DataFrame) -> None:
        """The newest catalogue entries (cold-start answers offer them)."""
        self.fresh = [str(i) for i in items["item_id"].tolist()[-FRESH:]]

    def add_fresh(self, ids: Sequence[str]) -> None:
        """Catalogue upserts just made live (the ingest lock is held)."""
        self.fresh.extend(ids)
        self.fresh = self.fresh[-FRESH:]

    # ---------------------------------------------------------- housekeeping
    def refresh_popularity(self) -> bool:
        """Every ``REFRESH_SECONDS``: the popularity ranking of cold-start answers.
        Returns False (cheap: not a reason for the learner to skip its pause)."""
        now = time.monotonic()
        if now - self._refreshed_at < REFRESH_SECONDS:
            return False
        self._refreshed_at = now
        live = self.current
        with self.locks.model:
            popular = popularity(live.model, POPULAR)
            if self.current is live:
                self.current = dataclasses.replace(live, popular=popular)
        return False

    def compact_index(self) -> bool:
        """Swap in a rebuilt index once upserts have piled up beside the HNSW graph (the
        index replays writes made during the build, so none is lost)."""
        live = self.current
        if live.index is None or not live.index.needs_rebuild:
            return False
        saved = self.index_store is not None and live.index.kind == "exact"
        # An exact index above the threshold after a lazy start: the saved graph.
        fresh = live.index.rebuilt(self._from_saved(live.version) if saved else None)
        with self.locks.model:
            if self.current is live:  # masks belong to an index object: start afresh
                self.current = dataclasses.replace(live, index=fresh, masks={})
        return True
