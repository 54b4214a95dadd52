"""Queries: recommendations (with cold start and explanations), similar items and
catalogue entries, answered from the :class:`~lifelongrec.serving._live.LiveModel`
serving at the moment the request arrives.

A user's vector is computed from a copy of their state taken under the model lock and
encoded outside it (models with vectors, :class:`~lifelongrec.serving._capabilities.
VectorModel`); it is cached until the user's state changes. Models without vectors are
scored exactly through their own ``recommend``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from lifelongrec._errors import UnknownIdError
from lifelongrec._params import check_k
from lifelongrec.data import EventStore
from lifelongrec.models import Recommender
from lifelongrec.serving._capabilities import VectorModel
from lifelongrec.serving._details import ItemDetails
from lifelongrec.serving._ingest import UserMemory
from lifelongrec.serving._live import LiveModel, LiveSlot, popularity
from lifelongrec.serving._shared import Locks

__all__ = ["Queries"]


def _trim(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=object)
    scores = np.asarray(scores, dtype=np.float32)
    keep = np.fromiter((i is not None for i in ids), bool, len(ids)) & np.isfinite(scores)
    return ids[keep], scores[keep]


def _user_items(model: Recommender, row: int) -> np.ndarray:
    return np.asarray(model.item_ids_, dtype=object)[model.seen_items(row)]


class Queries:
    """Read-only answers from the live model (see the module docstring)."""

    def __init__(
        self,
        slot: LiveSlot,
        users: UserMemory,
        store: EventStore,
        locks: Locks,
        details: ItemDetails,
    ) -> None:
        self.slot = slot
        self.users = users
        self.store = store
        self.locks = locks
        self.details = details

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        exclude_seen: bool = True,
        category: str | None = None,
        explain: bool = False,
        details: bool = False,
    ) -> dict[str, Any]:
        """See :meth:`RecommenderService.recommend`."""
        check_k(k)
        live = self.slot.current
        allowed = None
        if category is not None:
            allowed = live.categories.get(str(category))
            if allowed is None:
                raise UnknownIdError(
                    "category", [category], hint="no item of the catalogue has this category"
                )
        uid = str(user_id)
        if live.model.user_rows([uid])[0] < 0 and self.users.restore(uid):
            live = self.slot.current
        model = live.model
        state = vector = None
        lock = self.locks.model
        with lock:  # a copy of the user's state; the encoder runs unlocked
            row = int(model.user_rows([uid])[0])
            known = row >= 0
            history = _user_items(model, row) if known else np.empty(0, object)
            if known and live.index is not None:
                vector = live.vectors.get(uid)
                if vector is None:
                    state = model.user_state([uid])
                    token = live.encoding[uid] = object()
        if state is not None:
            try:
                vector = model.encode_state(state)[0]
            finally:
                with lock:
                    if live.encoding.get(uid) is token:
                        del live.encoding[uid]
                        if vector is not None:
                            live.vectors[uid] = vector
        if not known:
            ids, scores, reasons = self.cold_start(live, int(k), allowed)
        elif live.index is not None:
            exclude = [history] if exclude_seen else None
            if allowed is not None:  # a cached mask: no per-request set lookups
                mask = live.masks.get(str(category))
                if mask is None:
                    mask = live.masks[str(category)] = live.index.mask(sorted(allowed))
                allowed = mask
            ids, scores = live.index.search(vector, int(k), exclude=exclude, allowed=allowed)
            ids, scores = _trim(ids, scores)
            reasons = None
        else:
            with lock:
                ids, scores = model.recommend(
                    str(user_id),
                    k=int(k),
                    exclude_seen=exclude_seen,
                    items=None if allowed is None else sorted(allowed),
                )
            ids, scores = _trim(ids, scores)
            reasons = None
        items = [{"item_id": str(i), "score": float(s)} for i, s in zip(ids, scores, strict=True)]
        if explain:
            if reasons is None:
                reasons = self.explain(live, history, ids)
            for item, reason in zip(items, reasons, strict=True):
                item["reason"] = reason
        if details:
            self.add_details(items)
        return {
            "user_id": str(user_id),
            "model_version": live.version,
            "cold_start": not known,
            "items": items,
        }

    def cold_start(
        self, live: LiveModel, k: int, allowed: set[str] | None
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Popular items interleaved with the newest catalogue entries (the popularity
        ranking is computed when a model goes live and refreshed by the learner thread,
        not per request)."""
        popular = [(i, c, "popular") for i, c in live.popular if allowed is None or i in allowed][
            :k
        ]
        if allowed is not None and len(popular) < k:  # a rare category: look further
            popular = [(i, c, "popular") for i, c in popularity(live.model, None) if i in allowed][
                :k
            ]
        fresh = []
        for i in reversed(self.slot.fresh):
            if len(fresh) >= k:
                break
            if (allowed is None or i in allowed) and i in live.item_set:
                fresh.append((i, 0.0, "new in the catalogue"))
        out: list[tuple[str, float, str]] = []
        seen: set[str] = set()
        for pair in itertools.zip_longest(popular, fresh):
            for entry in pair:
                if entry is not None and entry[0] not in seen and len(out) < k:
                    out.append(entry)
                    seen.add(entry[0])
        return (
            np.asarray([e[0] for e in out], dtype=object),
            np.asarray([e[1] for e in out], dtype=np.float32),
            [e[2] for e in out],
        )

    def explain(self, live: LiveModel, history: np.ndarray, ids: np.ndarray) -> list[str]:
        """For each recommended item, the item of the user's history whose vector is most
        similar to it (cosine), when the model has vectors."""
        model = live.model
        if not len(history) or not isinstance(model, VectorModel):
            return ["matches your history" for _ in ids]
        past = [str(i) for i in history[:50] if str(i) in live.item_set]
        if not past or not len(ids):
            return ["matches your history" for _ in ids]
        with self.locks.model:  # only the rows needed, not the whole table
            _, H = model.item_vectors(past)
            _, R = model.item_vectors([str(i) for i in ids])
        H = H / np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-12)
        R = R / np.maximum(np.linalg.norm(R, axis=1, keepdims=True), 1e-12)
        sims = R @ H.T  # (k, history)
        best = sims.argmax(axis=1)
        return [
            f"similar to {past[b]} (cosine {sims[j, b]:.2f})" for j, b in enumerate(best.tolist())
        ]

    def add_details(self, items: list[dict[str, Any]]) -> None:
        """Each answer item's title and categories from the catalogue (``None`` and
        ``[]`` for an item without a catalogue entry)."""
        found = self.details.get([i["item_id"] for i in items])
        for item in items:
            item["title"], item["categories"] = found[item["item_id"]]

    def item(self, item_id: str) -> dict[str, Any]:
        """See :meth:`RecommenderService.item`."""
        found = self.store.item(str(item_id))
        if found is None:
            raise UnknownIdError("item", [str(item_id)], hint="the catalogue has no such item")
        return found

    def similar(self, item_id: str, k: int = 10, details: bool = False) -> dict[str, Any]:
        """See :meth:`RecommenderService.similar`."""
        check_k(k)
        live = self.slot.current
        if live.index is not None:
            ids, scores = live.index.similar(str(item_id), int(k))
        else:
            with self.locks.model:
                ids, scores = live.model.similar_items(str(item_id), k=int(k))
        ids, scores = _trim(ids, scores)
        items = [{"item_id": str(i), "score": float(s)} for i, s in zip(ids, scores, strict=True)]
        if details:
            self.add_details(items)
        return {"item_id": str(item_id), "model_version": live.version, "items": items}
