"""The parts of :class:`~lifelongrec.serving._index.ItemIndex` that hold no logic of
their own: the immutable snapshot a search reads (:class:`_Main`, :class:`_Snapshot`),
buffer and scoring helpers, and the checks of its inputs (one wording for every call).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelongrec._errors import DataError, ParameterError

__all__ = [
    "NO_SLOT",
    "check_exclude",
    "check_ids",
    "graph_vectors",
    "check_queries",
    "check_vectors",
    "main_masks",
]

NO_SLOT = -1
_NO_SLOT = NO_SLOT


@dataclass(frozen=True)
class _Main:
    """The part fixed by ``build``: ids, vectors and (above the threshold) the graph."""

    slot_of: dict[str, int]  # id -> slot; only grows (until the next build); shared
    vectors: np.ndarray  # (n_main, D) float32; in HNSW mode a view of the graph's storage
    hnsw: Any  # faiss.IndexHNSWFlat or None
    head_rows: np.ndarray  # sorted main rows scored exactly beside the graph (HNSW mode)
    head_vectors: np.ndarray  # (len(head_rows), D) float32, C-contiguous copy


@dataclass(frozen=True)
class _Snapshot:
    """Everything one search reads. Buffers are shared but append-only: a later snapshot
    writes only beyond this one's ``n_slots`` / ``n_delta``, so this view never changes."""

    main: _Main
    slot_ids: np.ndarray  # object buffer; [:n_slots] valid. Slots 0..n_main-1 = main rows
    n_slots: int
    main_ok: np.ndarray  # (n_main,) bool: the main row holds the item's current vector
    main_bits: np.ndarray  # main_ok packed little-endian (faiss IDSelectorBitmap)
    n_main_ok: int
    stale_rows: np.ndarray  # flatnonzero(~main_ok)
    delta_vectors: np.ndarray  # float32 buffer; [:n_delta] valid
    delta_slots: np.ndarray  # int64 buffer; [:n_delta] valid
    n_delta: int
    delta_ok: np.ndarray  # (n_delta,) bool: the delta row is its item's current vector
    loc: dict[int, int] = field(default_factory=dict)  # slot -> delta row, or -1: removed
    n_live: int = 0

    @property
    def n_main(self) -> int:
        return self.main_ok.size

    @property
    def dim(self) -> int:
        return self.main.vectors.shape[1]

    def slot(self, item_id: Any) -> int:
        """The slot of a live item, or ``_NO_SLOT``."""
        s = self.main.slot_of.get(item_id, _NO_SLOT) if isinstance(item_id, str) else _NO_SLOT
        if s == _NO_SLOT or s >= self.n_slots or self.loc.get(s, 0) < 0:
            return _NO_SLOT
        return s

    def vector(self, s: int) -> np.ndarray:
        r = self.loc.get(s)
        return self.main.vectors[s] if r is None else self.delta_vectors[r]

    def live_mask(self) -> np.ndarray:
        """(n_slots,) bool: the slot holds a live item."""
        live = np.ones(self.n_slots, dtype=bool)
        live[: self.n_main] = self.main_ok
        if self.loc:
            slots = np.fromiter(self.loc.keys(), np.int64, len(self.loc))
            live[slots] = np.fromiter(self.loc.values(), np.int64, len(self.loc)) >= 0
        return live


def graph_vectors(graph: Any) -> np.ndarray:
    """The vectors an HNSW graph holds, ``(ntotal, d)`` float32: a view of its storage
    (no copy)."""
    import faiss

    storage = faiss.downcast_index(graph.storage)
    n, d = graph.ntotal, graph.d
    return faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)


def _grow(buf: np.ndarray, n: int, extra: int) -> np.ndarray:
    """``buf`` if it has room for ``extra`` rows after ``n``, else a larger copy."""
    if n + extra <= len(buf):
        return buf
    new = np.empty((max(2 * len(buf), n + extra, 16), *buf.shape[1:]), dtype=buf.dtype)
    new[:n] = buf[:n]
    return new


def _candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions that can be among the ``k`` best finite entries of the 1-d ``scores``:
    the ``k`` largest and every entry tied with the k-th (unordered)."""
    n = scores.size
    if n > k:
        part = np.argpartition(scores, n - k)[n - k :]
        kth = scores[part].min()
        if kth > -np.inf:
            return np.flatnonzero(scores >= kth)
        return part[scores[part] > -np.inf]
    return np.flatnonzero(scores > -np.inf)


def _numeric(values: Any, what: str, expected: str) -> np.ndarray:
    """``values`` as a numeric array, else a :class:`DataError` naming ``what``."""
    try:
        arr = np.asarray(values)
        ok = arr.dtype.kind in "biuf"
    except (TypeError, ValueError):  # ragged nesting
        ok = False
    if not ok:
        raise DataError(f"{what} are not numeric", path=what, expected=expected)
    return arr


def _finite_float32(arr: np.ndarray, what: str, row: Callable[[int], str]) -> np.ndarray:
    """A C-contiguous float32 copy of the 2-d ``arr``; a row with NaN or infinite values
    (also after the cast: beyond float32's range) is a :class:`DataError`."""
    with np.errstate(over="ignore"):  # reported just below
        out = np.array(arr, dtype=np.float32, order="C", copy=True)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{row(i)} has NaN or infinite values (or values beyond float32)",
            path=what,
            value=arr[i][:8].tolist(),
            expected="finite float32 values",
        )
    return out


def _is_collection(x: Any) -> bool:
    return isinstance(x, (Collection, np.ndarray)) and not isinstance(x, (str, bytes))


# ------------------------------------------------------------------ input checks
def check_ids(ids: Any, what: str, ordered: bool = True) -> np.ndarray:
    unordered = isinstance(ids, (set, frozenset, dict, type({}.keys())))
    if not _is_collection(ids) or (ordered and unordered):
        raise DataError(
            f"{what} must be a sequence of item ids",
            path=what,
            value=ids,
            expected="a list or 1-d array of str",
        )
    arr = np.empty(len(ids), dtype=object)
    arr[:] = list(ids)
    for i, x in enumerate(arr):
        if not isinstance(x, str):
            raise DataError(
                f"item id at position {i} is not a string",
                path=what,
                value=x,
                expected="str ids",
            )
        arr[i] = str(x)  # numpy str_ -> str
    if len(set(arr.tolist())) != len(arr):
        seen: set[str] = set()
        dup = next(x for x in arr if x in seen or seen.add(x))
        raise DataError(
            "duplicate item id in one call",
            path=what,
            value=dup,
            expected="each id at most once",
        )
    return arr


def check_vectors(vectors: Any, ids: np.ndarray, dim: int | None) -> np.ndarray:
    arr = _numeric(vectors, "vectors", "a float array (N, D)")
    if arr.ndim != 2 or arr.shape[0] != len(ids):
        raise DataError(
            "vectors have the wrong shape",
            path="vectors",
            value=arr.shape,
            expected=f"(n_ids, D) = ({len(ids)}, D)",
        )
    if dim is None and arr.shape[1] < 1:
        raise DataError("vectors have no dimension", path="vectors", value=arr.shape)
    if dim is not None and arr.shape[1] != dim:
        raise DataError(
            "vector dimension differs from the index's",
            path="vectors",
            value=arr.shape[1],
            expected=f"D = {dim}",
        )
    return _finite_float32(arr, "vectors", lambda i: f"vector of item {ids[i]!r} (row {i})")


def check_queries(queries: Any, dim: int) -> tuple[np.ndarray, bool]:
    arr = _numeric(queries, "queries", "a float array (D,) or (m, D)")
    if arr.ndim not in (1, 2) or arr.shape[-1] != dim:
        raise DataError(
            "query shape does not match the index's dimension",
            path="queries",
            value=arr.shape,
            expected=f"({dim},) or (m, {dim})",
        )
    q = _finite_float32(arr.reshape(-1, dim), "queries", lambda i: f"query {i}")
    return q, arr.ndim == 1


def check_exclude(exclude: Any, m: int, single: bool) -> list[Any]:
    """One collection of ids per query."""
    if exclude is None:
        return [()] * m
    if single:
        expected = "a collection of item ids (or a sequence holding one collection)"
        if _is_collection(exclude):
            items = list(exclude)
            if all(isinstance(x, str) for x in items):
                return [items]
            if len(items) == 1 and (items[0] is None or _is_collection(items[0])):
                return [() if items[0] is None else items[0]]
        raise ParameterError("exclude", exclude, expected)
    expected = f"a sequence of {m} collections of item ids, one per query"
    if (
        not _is_collection(exclude)
        or isinstance(exclude, (set, frozenset, dict))
        or len(exclude) != m
        or not all(x is None or _is_collection(x) for x in exclude)
    ):
        raise ParameterError("exclude", exclude, expected)
    return [() if x is None else x for x in exclude]


def main_masks(st: _Snapshot, rows: np.ndarray) -> dict[str, Any]:
    """The main-row fields of a snapshot with ``rows`` masked out as well."""
    if not rows.size or not st.main_ok[rows].any():
        return {}
    main_ok = st.main_ok.copy()
    main_ok[rows] = False
    return {
        "main_ok": main_ok,
        "main_bits": np.packbits(main_ok, bitorder="little"),
        "n_main_ok": int(np.count_nonzero(main_ok)),
        "stale_rows": np.flatnonzero(~main_ok),
    }
