"""The item index the service retrieves from: top-K by inner product, kept current.

A model gives a user (or item) vector ``u`` of shape ``(D,)`` and item vectors ``V`` of
shape ``(N, D)``; the score of an item is ``u . v``. :class:`ItemIndex` answers top-K
queries over ``V`` with

* **exact scoring** (one matrix product and ``argpartition``) when the catalogue has at
  most ``ann_threshold`` items, and
* a **FAISS HNSW graph** (``IndexHNSWFlat``, inner-product metric) above it, plus an
  exactly scored *head*: the ``exact_head`` graph rows of largest norm.

Why the head: top-K by inner product is dominated by items of large norm (the score is
at most ``|u| |v|``; in trained recommenders the popular items have the largest
vectors), and an inner-product graph reaches them unreliably: the greedy walk stops at a
local maximum among smaller vectors. On real model vectors at 1M items the graph alone
missed a good share of the exact top 10, with some users getting none of it, and scoring
the 10,000 largest vectors exactly as well recovered nearly all of it for a fraction of a
millisecond more per query (the figures: docs/benchmarks.md, "Retrieval index: the exact
head"). This is the norm-ranging idea of Yan et al. (2018) in its simplest form: the top
norm range is searched exactly and the rest by the graph.

Updates are visible at once. HNSW cannot delete, so the graph built by :meth:`build`
(the *main* part) is never changed afterwards: a removed or changed item's row is masked
out (an ``IDSelectorBitmap`` over the live rows is passed to each graph search) and new
or changed vectors go to a small *delta* that is scored exactly and merged. When the
delta or the masked share grows past a limit :attr:`ItemIndex.needs_rebuild` turns true
and :meth:`ItemIndex.rebuilt` gives a fresh, compacted index to swap in.

Filters never cost results: ``exclude`` (per query: the user's seen items) and
``allowed`` (the items results must come from: a category) are applied inside the
search, not after it. Every query gets ``k`` results whenever at least ``k`` eligible
items exist (an HNSW search that finds fewer is redone exactly). An ``allowed`` set of
at most ``exact_filter_max`` eligible graph rows is scored exactly over just those rows:
exact, and for a selective filter faster than a filtered graph walk, whose recall on an
inner-product graph drops as the filter narrows. Scores come
back descending; equal scores are ordered by item id, so results do not depend on
insertion history and survive :meth:`~ItemIndex.rebuilt` unchanged in exact mode.

Threads
-------
Searches never take a lock: every mutation builds a new immutable snapshot of the small
per-row state (masks, the delta's bookkeeping) and publishes it with one reference
assignment; a search reads one snapshot from start to end, so it sees each update
entirely or not at all (an item is never returned twice, nor with a half-applied
change). Mutations (``build``, ``upsert``, ``remove``) are serialised by an internal
lock. FAISS HNSW searches release the GIL and are safe to run concurrently; numpy's
matrix products release it too. Thread counts are left to the caller
(``faiss.omp_set_num_threads``, threadpoolctl for BLAS). Measured on 2 shared cores,
one FAISS and one BLAS thread give the lowest single-query latency (more BLAS threads
made exact scoring of 100k items slower at the median), and parallelism is better had
from request threads (the figures: docs/benchmarks.md, "Retrieval index: exact vs
HNSW"). More OpenMP threads pay off for building the graph and for batch searches.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from lifelongrec._errors import NotFittedError, ParameterError, UnknownIdError
from lifelongrec._params import Constraint, Integer, Number, Params, check_k
from lifelongrec.serving._index_parts import NO_SLOT as _NO_SLOT
from lifelongrec.serving._index_parts import (
    _candidates,
    _grow,
    _is_collection,
    _Main,
    _Snapshot,
    check_exclude,
    check_ids,
    check_queries,
    check_vectors,
    graph_vectors,
    main_masks,
)

__all__ = ["ItemIndex"]

_QUERY_CHUNK_CELLS = 16_000_000  # float32 scores computed at once (64 MB)
_FILTER_EF_GROWTH = 4  # a filtered graph walk searches up to 4 x efSearch (see _hnsw_main)


class ItemIndex(Params):
    """Top-K inner-product search over item vectors; exact when small, HNSW when large.

    Parameters
    ----------
    m : int, default 32
        HNSW graph degree (``M``): more links, better recall, more memory and build time.
    ef_construction : int, default 200
        HNSW candidate list while building.
    ef_search : int, default 128
        HNSW candidate list while searching (raised to ``k`` when ``k`` is larger). A
        walk filtered by ``allowed`` uses ``ef_search / share`` (``share``: the
        eligible share of the graph's rows), at most ``4 * ef_search``.
    exact_head : int, default 10_000
        In HNSW mode, this many graph rows of largest vector norm are also scored
        exactly on every graph search and merged with what the walk found (see the
        module docs: the walk misses large-norm answers). 0 turns it off; its cost is
        one ``(exact_head, D)`` matrix-vector product per query.
    ann_threshold : int, default 50_000
        Catalogues of more items than this get an HNSW graph; smaller ones are searched
        exactly.
    exact_filter_max : int, default 100_000
        When a query has an ``allowed`` filter and the graph rows it may return (live,
        and in ``allowed``) number at most this, they are scored exactly instead of
        walking the graph (a query without a filter always walks the graph). Exact, and on an
        inner-product graph the better choice for most filters: a filtered walk loses
        recall fast as the filter gets selective, while exact scoring of 100k rows takes
        a few ms (the figures: docs/benchmarks.md, "Retrieval index: exact vs HNSW").
    max_delta : int, default 10_000
        :attr:`needs_rebuild` turns true when more vectors than this wait in the delta.
    max_stale : float, default 0.2
        ... or when more than this share of the graph's rows is masked out, in
        ``(0, 1]``.

    The settings are :class:`~lifelongrec._params.Params` (``get_params``, ``repr``,
    ``clone``; ``check_params``, which :meth:`build` calls).

    Attributes
    ----------
    kind : str
        ``"exact"`` or ``"hnsw"`` (fixed by :meth:`build`).
    dim : int
        The vector dimension ``D``.

    Examples
    --------
    >>> import numpy as np
    >>> index = ItemIndex().build(["a", "b", "c"], np.array([[1.0, 0], [0, 1], [1, 1]]))
    >>> ids, scores = index.search(np.array([1.0, 0.5]), k=2)
    >>> ids.tolist(), scores.tolist()
    (['c', 'a'], [1.5, 1.0])
    >>> index.upsert(["d"], np.array([[2.0, 0]]))
    >>> index.search(np.array([1.0, 0.5]), k=2, exclude={"c"})[0].tolist()
    ['d', 'a']
    >>> index.similar("a", k=1)[0].tolist()
    ['d']
    """

    def __init__(
        self,
        *,
        m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        exact_head: int = 10_000,
        ann_threshold: int = 50_000,
        exact_filter_max: int = 100_000,
        max_delta: int = 10_000,
        max_stale: float = 0.2,
    ) -> None:
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.exact_head = exact_head
        self.ann_threshold = ann_threshold
        self.exact_filter_max = exact_filter_max
        self.max_delta = max_delta
        self.max_stale = max_stale
        self._state: _Snapshot | None = None
        self._write_lock = threading.Lock()
        self._listeners: list[Any] = []  # journals of running rebuilds; successors
        self._fallbacks = 0
        self._fallback_lock = threading.Lock()

    # ------------------------------------------------------------------ params
    # get_params, repr, clone and check_params come from Params.
    _constraints: ClassVar[dict[str, Constraint]] = {
        "m": Integer(2),
        "ef_construction": Integer(1),
        "ef_search": Integer(1),
        "exact_head": Integer(0),
        "ann_threshold": Integer(0),
        "exact_filter_max": Integer(0),
        "max_delta": Integer(1),
        "max_stale": Number(0, 1, low_open=True),
    }

    # ------------------------------------------------------------------ state
    def _snapshot(self) -> _Snapshot:
        st = self._state
        if st is None:
            raise NotFittedError("this ItemIndex has no items yet: call build(ids, vectors)")
        return st

    @property
    def kind(self) -> str:
        return "exact" if self._snapshot().main.hnsw is None else "hnsw"

    @property
    def dim(self) -> int:
        return self._snapshot().dim

    def __len__(self) -> int:
        return self._snapshot().n_live

    def __contains__(self, item_id: object) -> bool:
        return self._snapshot().slot(item_id) != _NO_SLOT

    @property
    def ids(self) -> np.ndarray:
        """The live item ids (object array), in slot order."""
        st = self._snapshot()
        return st.slot_ids[: st.n_slots][st.live_mask()].copy()

    @property
    def slot_ids(self) -> np.ndarray:
        """Item id of every slot (``None`` where the item was removed); a boolean
        ``allowed`` mask is aligned with it. Slots keep their position until
        :meth:`rebuilt`; new items get new slots at the end."""
        st = self._snapshot()
        out = st.slot_ids[: st.n_slots].copy()
        out[~st.live_mask()] = None
        return out

    @property
    def head_ids(self) -> np.ndarray:
        """Ids of the graph rows scored exactly beside every HNSW search (the exact
        head as built; rows changed or removed since are masked when searching), in row
        order; empty in exact mode."""
        st = self._snapshot()
        return st.slot_ids[st.main.head_rows].copy()

    def mask(self, ids: Iterable[Any]) -> np.ndarray:
        """A boolean mask over :attr:`slot_ids` that is true at ``ids`` (e.g. a category;
        ids the index does not hold are skipped). Cache it and pass it as ``allowed``:
        it stays valid for this index object (a shorter mask leaves newer slots out)."""
        st = self._snapshot()
        return self._slot_mask(st, ids, "ids")

    def vector(self, item_id: str) -> np.ndarray:
        """A copy of the item's current vector. Raises :class:`UnknownIdError`."""
        st = self._snapshot()
        s = st.slot(item_id)
        if s == _NO_SLOT:
            raise UnknownIdError("item", [item_id], hint="it is not in the index")
        return st.vector(s).copy()

    @property
    def needs_rebuild(self) -> bool:
        """True when :meth:`rebuilt` would pay off: the delta holds more than
        ``max_delta`` vectors, more than ``max_stale`` of the graph's rows are masked,
        or the catalogue crossed ``ann_threshold`` (exact mode)."""
        st = self._snapshot()
        if st.n_delta > self.max_delta:
            return True
        if st.main.hnsw is None:
            return st.n_live > self.ann_threshold
        return st.n_main - st.n_main_ok > self.max_stale * st.n_main

    @property
    def n_exact_fallbacks(self) -> int:
        """HNSW searches redone exactly because the graph walk found fewer than ``k``
        eligible items (a very selective filter or exclude set)."""
        return self._fallbacks

    def stats(self) -> dict[str, Any]:
        """Sizes for monitoring: live items, graph rows (and masked ones), delta rows,
        rows of the exact head."""
        st = self._snapshot()
        return {
            "kind": self.kind,
            "n_items": st.n_live,
            "n_main": st.n_main,
            "n_main_stale": st.n_main - st.n_main_ok,
            "n_delta": st.n_delta,
            "n_head": int(st.main.head_rows.size),
            "n_exact_fallbacks": self._fallbacks,
            "needs_rebuild": self.needs_rebuild,
        }

    # ------------------------------------------------------------------ validation
    _check_ids = staticmethod(check_ids)
    _check_vectors = staticmethod(check_vectors)
    _check_queries = staticmethod(check_queries)
    _check_k = staticmethod(check_k)
    _check_exclude = staticmethod(check_exclude)

    @staticmethod
    def _slots(st: _Snapshot, ids: Iterable[Any]) -> np.ndarray:
        """Sorted distinct slots of ``ids`` in the snapshot (ids it lacks skipped)."""
        get = st.main.slot_of.get
        s = np.fromiter(
            (get(x, _NO_SLOT) if isinstance(x, str) else _NO_SLOT for x in ids), np.int64
        )
        return np.unique(s[(s >= 0) & (s < st.n_slots)])

    def _slot_mask(self, st: _Snapshot, ids: Any, name: str) -> np.ndarray:
        if not _is_collection(ids):
            raise ParameterError(name, ids, "a collection of item ids or a boolean mask")
        mask = np.zeros(st.n_slots, dtype=bool)
        mask[self._slots(st, ids)] = True
        return mask

    def _allowed_mask(self, st: _Snapshot, allowed: Any) -> np.ndarray | None:
        """(n_slots,) bool or None (no filter)."""
        if allowed is None:
            return None
        if isinstance(allowed, np.ndarray) and allowed.dtype == bool:
            if allowed.ndim != 1 or allowed.size > st.n_slots:
                raise ParameterError(
                    "allowed",
                    f"bool mask of shape {allowed.shape}",
                    f"a 1-d mask over slot_ids (at most {st.n_slots} entries)",
                )
            mask = np.zeros(st.n_slots, dtype=bool)
            mask[: allowed.size] = allowed
            return mask
        if isinstance(allowed, (str, bytes)):
            raise ParameterError("allowed", allowed, "a collection of item ids, not one id")
        return self._slot_mask(st, allowed, "allowed")

    # ------------------------------------------------------------------ mutation
    def build(self, ids: Sequence[str], vectors: Any, *, exact: bool = False) -> ItemIndex:
        """Index ``vectors`` (``(N, D)``, any float dtype; copied as float32) under
        ``ids`` (N distinct str), replacing any previous content. Returns ``self``.

        Above ``ann_threshold`` items this builds the HNSW graph, which takes a while
        (FAISS uses its OpenMP threads); ``exact`` leaves it to :meth:`rebuilt` (exact
        search meanwhile: :attr:`needs_rebuild` is then true).
        """
        self.check_params()
        ids_arr = self._check_ids(ids, "ids")
        vecs = self._check_vectors(vectors, ids_arr, None)
        return self._install(ids_arr, vecs, None, exact=exact)

    def adopt(self, ids: Sequence[str], graph: Any) -> ItemIndex:
        """Like :meth:`build`, from an HNSW graph already built (one saved earlier):
        its rows, in order, are the vectors of ``ids``; they are searched where they are,
        without a copy. Returns ``self``."""
        self.check_params()
        ids_arr = self._check_ids(ids, "ids")
        if graph.ntotal != len(ids_arr):
            raise ValueError(f"graph holds {graph.ntotal} vectors; expected {len(ids_arr)}")
        return self._install(ids_arr, graph_vectors(graph), graph)

    def _install(
        self, ids: np.ndarray, vecs: np.ndarray, graph: Any, exact: bool = False
    ) -> ItemIndex:
        state = self._make_state(ids, vecs, graph, exact)
        with self._write_lock:
            self._state = state
            self._listeners = []
        return self

    def _make_state(
        self, ids: np.ndarray, vecs: np.ndarray, graph: Any = None, exact: bool = False
    ) -> _Snapshot:
        n, d = vecs.shape
        hnsw = graph
        if hnsw is None and n > self.ann_threshold and not exact:
            import faiss

            hnsw = faiss.IndexHNSWFlat(d, int(self.m), faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = int(self.ef_construction)
            hnsw.add(vecs)
        if hnsw is not None:
            hnsw.hnsw.efSearch = int(self.ef_search)
            # Score exact paths straight from the graph's copy instead of keeping a second.
            vecs = graph_vectors(hnsw)
        head = np.empty(0, dtype=np.int64)
        if hnsw is not None and self.exact_head:
            norms = np.einsum("ij,ij->i", vecs, vecs)
            h = min(int(self.exact_head), n)
            head = np.sort(np.argpartition(-norms, h - 1)[:h]) if h < n else np.arange(n)
        slot_ids = np.empty(max(n, 16), dtype=object)
        slot_ids[:n] = ids
        main_ok = np.ones(n, dtype=bool)
        return _Snapshot(
            main=_Main(
                {x: i for i, x in enumerate(ids.tolist())},
                vecs,
                hnsw,
                head_rows=head,
                head_vectors=np.ascontiguousarray(vecs[head]),
            ),
            slot_ids=slot_ids,
            n_slots=n,
            main_ok=main_ok,
            main_bits=np.packbits(main_ok, bitorder="little"),
            n_main_ok=n,
            stale_rows=np.empty(0, dtype=np.int64),
            delta_vectors=np.empty((16, d), dtype=np.float32),
            delta_slots=np.empty(16, dtype=np.int64),
            n_delta=0,
            delta_ok=np.empty(0, dtype=bool),
            loc={},
            n_live=n,
        )

    def graph(self) -> tuple[Any, np.ndarray]:
        """The HNSW graph built by :meth:`build` and the ids of its rows (``(None, ids)``
        in exact mode); what :class:`~lifelongrec.serving._index_store.IndexStore`
        saves."""
        st = self._snapshot()
        return st.main.hnsw, st.slot_ids[: st.n_main]

    def upsert(self, ids: Sequence[str], vectors: Any) -> None:
        """Add new items and replace the vectors of known ones; searchable at once.

        Parameters
        ----------
        ids : sequence of str
            Distinct ids (an id twice in one call is a :class:`DataError`).
        vectors : array (len(ids), D)
            Finite values; copied as float32.
        """
        st = self._snapshot()
        ids_arr = self._check_ids(ids, "ids")
        vecs = self._check_vectors(vectors, ids_arr, st.dim)
        with self._write_lock:
            self._upsert_locked(ids_arr, vecs)
            self._notify(("upsert", ids_arr, vecs))

    def _upsert_locked(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        st = self._snapshot()
        slot_of = st.main.slot_of
        n_new = len(ids)
        slots = np.empty(n_new, dtype=np.int64)
        slot_ids, n_slots, revived = st.slot_ids, st.n_slots, 0
        fresh = [i for i, x in enumerate(ids.tolist()) if x not in slot_of]
        slot_ids = _grow(slot_ids, n_slots, len(fresh))
        for i, x in enumerate(ids.tolist()):
            s = slot_of.get(x)
            if s is None:
                s = n_slots
                slot_ids[s] = x
                n_slots += 1
                slot_of[x] = s  # readers of older snapshots ignore slots >= their n_slots
            elif st.loc.get(s, 0) < 0:
                revived += 1
            slots[i] = s
        n_delta = st.n_delta
        delta_vectors = _grow(st.delta_vectors, n_delta, n_new)
        delta_slots = _grow(st.delta_slots, n_delta, n_new)
        delta_vectors[n_delta : n_delta + n_new] = vecs
        delta_slots[n_delta : n_delta + n_new] = slots
        delta_ok = np.concatenate([st.delta_ok, np.ones(n_new, dtype=bool)])
        loc = dict(st.loc)
        old_rows = [loc[s] for s in slots.tolist() if loc.get(s, -1) >= 0]
        delta_ok[old_rows] = False
        loc.update(zip(slots.tolist(), range(n_delta, n_delta + n_new), strict=True))
        main_hit = slots[slots < st.n_main]
        self._state = replace(
            st,
            **main_masks(st, main_hit),
            slot_ids=slot_ids,
            n_slots=n_slots,
            delta_vectors=delta_vectors,
            delta_slots=delta_slots,
            n_delta=n_delta + n_new,
            delta_ok=delta_ok,
            loc=loc,
            n_live=st.n_live + len(fresh) + revived,
        )

    def remove(self, ids: Sequence[str]) -> None:
        """Remove items at once. Unknown (or already removed) ids raise
        :class:`UnknownIdError` and nothing is removed."""
        st = self._snapshot()
        ids_arr = self._check_ids(ids, "ids", ordered=False)
        with self._write_lock:
            st = self._snapshot()
            slots = np.array([st.slot(x) for x in ids_arr.tolist()], dtype=np.int64)
            missing = ids_arr[slots == _NO_SLOT].tolist()
            if missing:
                raise UnknownIdError("item", missing, hint="they are not in the index")
            loc = dict(st.loc)
            delta_ok = st.delta_ok
            rows = [loc[s] for s in slots.tolist() if s in loc]
            if rows:
                delta_ok = delta_ok.copy()
                delta_ok[rows] = False
            loc.update(dict.fromkeys(slots.tolist(), -1))
            self._state = replace(
                st,
                **main_masks(st, slots[slots < st.n_main]),
                delta_ok=delta_ok,
                loc=loc,
                n_live=st.n_live - len(slots),
            )
            self._notify(("remove", ids_arr, None))

    def _notify(self, op: tuple[str, np.ndarray, np.ndarray | None]) -> None:
        """Pass a mutation on to running rebuilds (journals) and to rebuilt successors."""
        alive = []
        for lst in self._listeners:
            if isinstance(lst, list):
                lst.append(op)
                alive.append(lst)
            elif (succ := lst()) is not None:
                succ._apply(op)
                alive.append(lst)
        self._listeners = alive

    def _apply(self, op: tuple[str, np.ndarray, np.ndarray | None]) -> None:
        name, ids, vecs = op
        if name == "upsert":
            self.upsert(ids, vecs)
        else:
            self.remove(ids)

    def rebuilt(
        self, make: Callable[[np.ndarray, np.ndarray], ItemIndex] | None = None
    ) -> ItemIndex:
        """A fresh index (same parameters) of the live items: no delta, no masked rows,
        and the kind their number calls for. Slots are renumbered (make new masks).
        ``make(ids, vectors)``, when given, makes it instead (from a saved graph, say).

        Safe to call from a background thread while searches and writes go on: writes
        made during the build are replayed onto the new index, and every write made to
        this index after ``rebuilt`` returns is passed on to the new one too, so the
        caller can swap it in whenever it likes without losing an update.
        """
        with self._write_lock:
            st = self._snapshot()
            journal: list[Any] = []
            self._listeners.append(journal)
        try:
            slots = np.flatnonzero(st.live_mask())
            where = np.full(st.n_slots, -1, dtype=np.int64)  # delta row, or -1: main row
            if st.loc:
                where[list(st.loc)] = list(st.loc.values())
            rows = where[slots]
            vecs = np.empty((len(slots), st.dim), dtype=np.float32)
            in_main = rows < 0
            vecs[in_main] = st.main.vectors[slots[in_main]]
            vecs[~in_main] = st.delta_vectors[rows[~in_main]]
            if make is not None:
                new = make(st.slot_ids[slots], vecs)
            else:
                new = ItemIndex(**self.get_params())
                new.check_params()
                new._state = new._make_state(st.slot_ids[slots], vecs)
        except BaseException:
            with self._write_lock:
                self._listeners = [x for x in self._listeners if x is not journal]
            raise
        with self._write_lock:
            for op in journal:
                new._apply(op)
            self._listeners = [x for x in self._listeners if x is not journal]
            self._listeners.append(weakref.ref(new))
        return new

    # ------------------------------------------------------------------ search
    def search(
        self,
        queries: Any,
        k: int,
        *,
        exclude: Any = None,
        allowed: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items of highest inner product with each query.

        Parameters
        ----------
        queries : array (D,) or (m, D)
            One query or a batch.
        k : int
            Results per query.
        exclude : collection of str, or sequence of m collections, optional
            Per query the ids never to return (e.g. the user's seen items). For one
            query a collection (or a sequence holding one collection); for a batch a
            sequence of ``m`` collections (``None`` entries allowed). Ids the index does
            not hold are ignored.
        allowed : collection of str or bool array, optional
            The ids results must come from (e.g. a category), for every query of the
            call: a collection of ids (unknown ones ignored) or a boolean mask over
            :attr:`slot_ids` (see :meth:`mask`; the fast form for large sets).

        Returns
        -------
        ids : object array (k,) or (m, k)
            Item ids, best first; ties in score are ordered by id. Padded with ``None``
            when fewer than ``k`` items are eligible.
        scores : float32 array, same shape
            Inner products; ``-inf`` where padded.
        """
        st = self._snapshot()
        q, single = self._check_queries(queries, st.dim)
        k = self._check_k(k)
        excl = self._check_exclude(exclude, len(q), single)
        allow = self._allowed_mask(st, allowed)
        ids, scores = self._search(st, q, k, excl, allow)
        return (ids[0], scores[0]) if single else (ids, scores)

    def similar(
        self, item_id: str, k: int, *, exclude: Any = None, allowed: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items of highest inner product with ``item_id``'s vector, itself
        excluded; ``exclude`` / ``allowed`` as in :meth:`search` (one query).

        Raises
        ------
        UnknownIdError
            ``item_id`` is not in the index.
        """
        st = self._snapshot()
        k = self._check_k(k)
        s = st.slot(item_id)
        if s == _NO_SLOT:
            raise UnknownIdError("item", [item_id], hint="it is not in the index")
        excl = self._check_exclude(exclude, 1, True)[0]
        allow = self._allowed_mask(st, allowed)
        q = st.vector(s)[None, :].copy()
        ids, scores = self._search(st, q, k, [[item_id, *excl]], allow)
        return ids[0], scores[0]

    def _search(
        self,
        st: _Snapshot,
        q: np.ndarray,
        k: int,
        exclude: list[Any],
        allow: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        m, n_main = len(q), st.n_main
        excl_slots = [self._slots(st, ex) for ex in exclude]
        excl_main = [s[s < n_main] for s in excl_slots]

        # Main rows a query may return (before its own exclusions).
        if allow is None:
            elig_main, n_elig = None, st.n_main_ok
        else:
            elig_main = allow[:n_main] & st.main_ok
            n_elig = int(np.count_nonzero(elig_main))
        cands: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(m)]
        # Exact over the eligible rows when there is no graph, or when a filter leaves
        # few enough of them (a filtered graph walk loses recall; see the class docs).
        # Without a filter the graph answers, whatever the catalogue's size.
        # A head holding every graph row makes the walk pointless: exact it is.
        exact = st.main.hnsw is None or st.main.head_rows.size >= n_main
        if exact or (allow is not None and n_elig <= self.exact_filter_max):
            self._exact_main(st, q, k, excl_main, elig_main, cands, range(m))
        else:
            self._hnsw_main(st, q, k, excl_main, elig_main, n_elig, cands)
        if st.n_delta:
            self._exact_delta(st, q, k, excl_slots, allow, cands)
        return self._rank(st, cands, k)

    @staticmethod
    def _exact_main(
        st: _Snapshot,
        q: np.ndarray,
        k: int,
        excl_main: list[np.ndarray],
        elig_main: np.ndarray | None,
        cands: list[list[tuple[np.ndarray, np.ndarray]]],
        which: Iterable[int],
        head: bool = False,
    ) -> None:
        """Exact candidates from the main rows for queries ``which`` (with ``head``:
        from the head rows only, the largest norms)."""
        which = list(which)
        masked = None  # positions in ``rows`` that may not be returned
        if head:
            rows, vecs = st.main.head_rows, st.main.head_vectors
            ok = st.main_ok[rows] if elig_main is None else elig_main[rows]
            if not ok.any():
                return
            masked = np.flatnonzero(~ok)
        elif elig_main is None:
            rows, vecs = None, st.main.vectors
        else:
            rows = np.flatnonzero(elig_main)
            vecs = st.main.vectors[rows]
        if not len(vecs):
            return
        step = max(1, _QUERY_CHUNK_CELLS // len(vecs))
        for c0 in range(0, len(which), step):
            chunk = which[c0 : c0 + step]
            scores = q[chunk] @ vecs.T
            if rows is None and st.stale_rows.size:
                scores[:, st.stale_rows] = -np.inf
            if masked is not None and masked.size:
                scores[:, masked] = -np.inf
            for j, qi in enumerate(chunk):
                row = scores[j]
                ex = excl_main[qi]
                if ex.size:
                    if rows is None:
                        row[ex] = -np.inf
                    else:
                        pos = np.searchsorted(rows, ex)  # rows and ex sorted, distinct
                        ok = pos < len(rows)
                        pos = pos[ok]
                        row[pos[rows[pos] == ex[ok]]] = -np.inf
                c = _candidates(row, k)
                cands[qi].append((c if rows is None else rows[c], row[c]))

    def _hnsw_main(
        self,
        st: _Snapshot,
        q: np.ndarray,
        k: int,
        excl_main: list[np.ndarray],
        elig_main: np.ndarray | None,
        n_elig: int,
        cands: list[list[tuple[np.ndarray, np.ndarray]]],
    ) -> None:
        import faiss

        if elig_main is None:
            base = st.main_bits if st.n_main_ok < st.n_main else None
        else:
            base = np.packbits(elig_main, bitorder="little")
        ef = max(int(self.ef_search), k)
        if n_elig < st.n_main:  # a filtered walk meets eligible rows at share n_elig / n_main
            ef = min(int(np.ceil(ef * st.n_main / max(n_elig, 1))), _FILTER_EF_GROWTH * ef)

        def params(bits: np.ndarray | None) -> Any:
            if bits is None:
                return faiss.SearchParametersHNSW(efSearch=ef)
            # The one-argument form keeps ``bits`` referenced by the selector.
            return faiss.SearchParametersHNSW(sel=faiss.IDSelectorBitmap(bits), efSearch=ef)

        need = np.full(len(q), n_elig)
        if not any(ex.size for ex in excl_main):
            dist, lab = st.main.hnsw.search(q, k, params=params(base))
        else:
            dist = np.empty((len(q), k), dtype=np.float32)
            lab = np.empty((len(q), k), dtype=np.int64)
            for i, ex in enumerate(excl_main):
                bits = base
                if ex.size:
                    byte, bit = ex >> 3, (ex & 7).astype(np.uint8)
                    ref = st.main_bits if base is None else base
                    need[i] -= int(np.count_nonzero((ref[byte] >> bit) & 1))
                    bits = (st.main_bits if base is None else base).copy()
                    np.bitwise_and.at(bits, byte, ~(np.uint8(1) << bit))
                dist[i], lab[i] = st.main.hnsw.search(q[i : i + 1], k, params=params(bits))
        redo, walked = [], []
        for i in range(len(q)):
            ok = lab[i] >= 0
            if np.count_nonzero(ok) < min(k, need[i]):
                redo.append(i)
            else:
                cands[i].append((lab[i][ok], dist[i][ok]))
                walked.append(i)
        if redo:
            with self._fallback_lock:
                self._fallbacks += len(redo)
            self._exact_main(st, q, k, excl_main, elig_main, cands, redo)
        if walked and st.main.head_rows.size:  # the walk may have found some: _rank dedupes
            self._exact_main(st, q, k, excl_main, elig_main, cands, walked, head=True)

    @staticmethod
    def _exact_delta(
        st: _Snapshot,
        q: np.ndarray,
        k: int,
        excl_slots: list[np.ndarray],
        allow: np.ndarray | None,
        cands: list[list[tuple[np.ndarray, np.ndarray]]],
    ) -> None:
        n = st.n_delta
        dslots = st.delta_slots[:n]
        ok = st.delta_ok if allow is None else st.delta_ok & allow[dslots]
        if not ok.any():
            return
        scores = q @ st.delta_vectors[:n].T
        scores[:, ~ok] = -np.inf
        for i in range(len(q)):
            row = scores[i]
            ex = excl_slots[i]
            if ex.size:
                row[np.isin(dslots, ex)] = -np.inf
            c = _candidates(row, k)
            cands[i].append((dslots[c], row[c]))

    @staticmethod
    def _rank(
        st: _Snapshot, cands: list[list[tuple[np.ndarray, np.ndarray]]], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        m = len(cands)
        out_ids = np.full((m, k), None, dtype=object)
        out_scores = np.full((m, k), -np.inf, dtype=np.float32)
        for i, parts in enumerate(cands):
            if not parts:
                continue
            slots = np.concatenate([p[0] for p in parts])
            scores = np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False)
            if len(parts) > 1:  # a head row the graph returned too: keep its best score
                by = np.lexsort((-scores, slots))
                first = np.ones(len(by), dtype=bool)
                first[1:] = slots[by][1:] != slots[by][:-1]
                slots, scores = slots[by][first], scores[by][first]
            ids = st.slot_ids[slots]
            order = np.lexsort((ids.astype(str), -scores))[:k]
            out_ids[i, : len(order)] = ids[order]
            out_scores[i, : len(order)] = scores[order]
        return out_ids, out_scores
