"""The HNSW graph of the live version, kept on disk so that a restart need not build it.

Building the graph is most of a large catalogue's start: at 1M items of 64 dimensions
minutes on 2 cores, where reading it back takes seconds. :class:`IndexStore` keeps the
graph of the version that was made live last in ``HOME/index/``:

    HOME/index/VERSION.faiss     the graph (``faiss.write_index``; its storage holds the vectors)
    HOME/index/VERSION.json      ids (in graph order), dimension and graph settings

A saved graph is used only for the version it was built for, with the same graph
settings (``m``, ``ef_construction``), and only when the model holds every item of it
and gives the same vector (within float32 rounding) for at least :data:`MIN_SAME` of
them. Items whose vector changed since (an item first met in the events caught up
before the catalogue, say) and items the model holds beyond the graph's go into the
index's delta, as upserts while it runs would (the graph's rows of the changed ones are
masked); the learner's compaction folds the delta into a new graph later. Anything else, a missing or unreadable file included, means a fresh build (and a
new save); the reason is logged. Files are written to a temporary name first and renamed,
so a crash mid-write leaves the previous graph or none, never half of one. Item vectors
hold no user data, so erasure has nothing to remove here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec.registry._durable import _fsync_dir as _fsync  # a file or a folder
from lifelongrec.serving._index import ItemIndex
from lifelongrec.serving._index_parts import graph_vectors

__all__ = ["INDEX_DIR", "IndexStore"]

log = logging.getLogger("lifelongrec.serving")

INDEX_DIR = "index"
_FORMAT = 1

#: The least share of a saved graph's vectors that must be the model's now for the graph
#: to be used (the rest are masked in it and served from the delta until the next
#: compaction).
MIN_SAME = 0.5


class IndexStore:
    """Saves and restores the live version's HNSW graph (see the module docstring).

    Parameters
    ----------
    folder
        Where the files go (``HOME/index``); made on the first save.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _paths(self, version: str) -> tuple[Path, Path]:
        return self.folder / f"{version}.faiss", self.folder / f"{version}.json"

    def save(self, version: str, index: ItemIndex) -> bool:
        """Write ``index``'s graph for ``version`` and remove every other version's;
        returns False (nothing written) for an exact index, which builds fast."""
        graph, ids = index.graph()
        if graph is None:
            return False
        import faiss

        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        graph_path, meta_path = self._paths(version)
        meta = {
            "format": _FORMAT,
            "version": version,
            "dim": int(graph.d),
            "m": int(index.m),
            "ef_construction": int(index.ef_construction),
            "ids": [str(x) for x in ids],
        }
        tmp_graph = graph_path.with_suffix(".faiss.tmp")
        tmp_meta = meta_path.with_suffix(".json.tmp")
        faiss.write_index(graph, str(tmp_graph))
        tmp_meta.write_text(json.dumps(meta))
        # On disk before the renames, and now: left to the kernel's writeback, half a
        # gigabyte of dirty pages would stall the event store's fsyncs for seconds later.
        for path in (tmp_graph, tmp_meta):
            _fsync(path)
        os.replace(tmp_meta, meta_path)
        os.replace(tmp_graph, graph_path)  # last: a graph file means a complete pair
        _fsync(self.folder)
        for path in self.folder.iterdir():
            if path.name not in (graph_path.name, meta_path.name):
                path.unlink(missing_ok=True)
        return True

    def has(self, version: str) -> bool:
        """Whether a graph of ``version`` is on disk (not whether it fits)."""
        return all(p.exists() for p in self._paths(version))

    def load(
        self, version: str, index: ItemIndex, ids: np.ndarray, vectors: np.ndarray
    ) -> ItemIndex | None:
        """``index`` (unbuilt, with its settings) built from the saved graph of
        ``version`` and the model's ``ids`` / ``vectors`` now, or ``None`` (the reason
        logged) when there is no usable graph."""
        graph_path, meta_path = self._paths(version)
        if not graph_path.exists() or not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            why = self._mismatch(meta, index, vectors)
            if why is None:
                import faiss

                graph = faiss.read_index(str(graph_path))
                got = self._adopt(meta, graph, index, ids, vectors)
                if not isinstance(got, str):
                    return got
                why = got
        except Exception as exc:  # unreadable or damaged files: build afresh
            why = f"unreadable ({type(exc).__name__}: {exc})"
        log.info("saved index of %s not used: %s; building it", version, why)
        return None

    @staticmethod
    def _mismatch(meta: dict[str, Any], index: ItemIndex, vectors: np.ndarray) -> str | None:
        if meta.get("format") != _FORMAT:
            return f"format {meta.get('format')!r}, expected {_FORMAT}"
        for key, want in (
            ("dim", vectors.shape[1]),
            ("m", index.m),
            ("ef_construction", index.ef_construction),
        ):
            if meta.get(key) != want:
                return f"{key} {meta.get(key)!r}, expected {want}"
        return None

    @staticmethod
    def _adopt(
        meta: dict[str, Any], graph: Any, index: ItemIndex, ids: np.ndarray, vectors: np.ndarray
    ) -> ItemIndex | str:
        """``index`` made from ``graph``, the new and changed items upserted, or why
        not."""
        saved = np.asarray(meta["ids"], dtype=object)
        if graph.ntotal != len(saved):
            return f"{graph.ntotal} vectors for {len(saved)} ids"
        rows = pd.Index(ids).get_indexer(saved)
        if (rows < 0).any():
            return "it holds items the model does not"
        same = np.isclose(graph_vectors(graph), vectors[rows], rtol=1e-5, atol=1e-6).all(axis=1)
        if same.mean() < MIN_SAME:
            return (
                f"{100 * same.mean():.1f} % of its vectors are the model's now "
                f"(at least {100 * MIN_SAME:.0f} % needed)"
            )
        index.adopt(saved, graph)
        fresh = np.ones(len(ids), dtype=bool)
        fresh[rows[same]] = False  # new items, and items whose vector changed: the delta
        if fresh.any():
            index.upsert(ids[fresh], vectors[fresh])
        log.info(
            "saved index of %s read back: %d of %d items from the graph, %d upserted",
            meta.get("version"),
            int(same.sum()),
            len(ids),
            int(fresh.sum()),
        )
        return index
