"""Challengers: registry versions served beside the live champion during an online
experiment (:mod:`~._experiments`).

A challenger is loaded from the registry (scrubbed of erased users like any version),
caught up with the store and given its own retrieval index by the same
:meth:`~lifelongrec.serving._live.LiveSlot.install` that makes a champion live; from
then on it observes every written event beside the live model
(:attr:`~lifelongrec.serving._ingest.Ingestion.followers`, under the same ingestion
lock) and holds its users in its own :class:`~lifelongrec.serving._ingest.UserMemory`.
Its answers come from a :class:`~lifelongrec.serving._queries.Queries` over its slot:
the recommendation path is the champion's, not a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lifelongrec.data import EventStore
from lifelongrec.serving._config import ServiceConfig
from lifelongrec.serving._details import ItemDetails
from lifelongrec.serving._ingest import Ingestion, UserMemory
from lifelongrec.serving._lifecycle import ModelLifecycle
from lifelongrec.serving._live import LiveSlot
from lifelongrec.serving._queries import Queries
from lifelongrec.serving._shared import COUNTERS, Locks, forget

__all__ = ["Challenger", "ChallengerLoader"]


@dataclass
class Challenger:
    """A registry version served beside the champion (see the module docstring)."""

    version: str
    slot: LiveSlot
    users: UserMemory
    queries: Queries


class ChallengerLoader:
    """Loads a registry version as a :class:`Challenger` and detaches it again."""

    def __init__(
        self,
        lifecycle: ModelLifecycle,
        ingestion: Ingestion,
        store: EventStore,
        config: ServiceConfig,
        locks: Locks,
        details: ItemDetails,
    ) -> None:
        self.details = details
        self.lifecycle = lifecycle
        self.ingestion = ingestion
        self.store = store
        self.config = config
        self.locks = locks

    def load(self, version: str) -> Challenger:
        """Load, scrub, catch up and index ``version``; from the catch-up on it observes
        every written event (registered under the ingestion lock, so none is missed)."""
        slot = LiveSlot(self.store, self.config.index, self.locks)
        own = dict.fromkeys(COUNTERS, 0)  # not the champion's figures
        users = UserMemory(slot, self.store, self.config.users, self.locks, own)

        def follow(model: Any) -> None:  # called under the ingestion lock
            self.ingestion.followers.append((slot, users))

        with self.locks.erase:  # install's rule: no erasure while a model goes live
            model, seq = self.lifecycle.load_version(version)
            items = slot.install(model, version, seq, follow)
        users.reset(model, self.store.user_last_seqs())
        slot.set_fresh(items)
        queries = Queries(slot, users, self.store, self.locks, self.details)
        return Challenger(version, slot, users, queries)

    def drop(self, challenger: Challenger) -> None:
        """Stop feeding it events (it is garbage once no request holds it)."""
        with self.locks.ingest:
            self.ingestion.followers = [
                f for f in self.ingestion.followers if f[0] is not challenger.slot
            ]

    def forget_user(self, challenger: Challenger, user_id: str) -> bool:
        """An erased user leaves the challenger too; whether it held them."""
        with self.locks.ingest:
            live = challenger.slot.current
            with self.locks.model:
                held = forget(live.model, user_id)
                live.forget_vectors([user_id])
            challenger.users.discard(user_id)
        return held
