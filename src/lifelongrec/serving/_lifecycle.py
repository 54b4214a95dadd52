"""The model lifecycle: which registered version serves, and how that changes.

Every change of the champion goes through the registry: a challenger from the learner
is judged, registered and promoted by :func:`~lifelongrec.registry.judge_challenger`
(the one promotion path, shared with :class:`~lifelongrec.registry.ChampionChallenger`)
and then installed; a promotion or rollback through the API changes the registry's
champion pointer and the service then serves the version it points to. Any version
loaded from the registry first forgets the users erased after the store position it
learned (:func:`~lifelongrec.serving._erasure.scrub_model`), so nothing unscrubbed is
ever served.

Each change holds the swap lock (one change at a time) and then the erase lock (no
erasure between scrubbing a model and making it live).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from lifelongrec._errors import UnknownIdError
from lifelongrec.data import EVENT_COLUMNS
from lifelongrec.models import Recommender
from lifelongrec.registry import ModelRegistry, PromotionGate, judge_challenger
from lifelongrec.serving._erasure import ErasureLog, RegistryScrubber, scrub_model
from lifelongrec.serving._ingest import UserMemory
from lifelongrec.serving._live import LiveSlot
from lifelongrec.serving._shared import Locks

__all__ = ["ModelLifecycle", "load_version", "register_challenger"]

log = logging.getLogger("lifelongrec.serving")


class ModelLifecycle:
    """Loads, judges, promotes and rolls back registered versions (see the module
    docstring)."""

    def __init__(
        self,
        registry: ModelRegistry,
        gate: PromotionGate,
        erasures: ErasureLog,
        scrubber: RegistryScrubber,
        slot: LiveSlot,
        users: UserMemory,
        locks: Locks,
        counters: dict[str, float],
    ) -> None:
        self.registry = registry
        self.gate = gate
        self.erasures = erasures
        self.scrubber = scrubber
        self.slot = slot
        self.users = users
        self.locks = locks
        self.counters = counters

    def load_version(self, version: str) -> tuple[Recommender, int]:
        """See :func:`load_version`."""
        return load_version(self.registry, self.erasures, version)

    def serve_champion(self, lazy: bool = False) -> pd.DataFrame | None:
        """Make the registry's champion live unless it is already; returns the
        catalogue read while installing it (``None`` when nothing changed). ``lazy``:
        its saved retrieval graph is read back later (see :meth:`LiveSlot.build_index`)."""
        with self.locks.swap, self.locks.erase:
            version = self.registry.champion()
            current = self.slot.current
            if current is not None and version == current.version:
                return None
            model, seq = self.load_version(version)
            return self.slot.install(model, version, seq, self.users.follow, lazy=lazy)

    # ------------------------------------------------------------------ the API
    def models(self) -> dict[str, Any]:
        """See :meth:`RecommenderService.models`."""
        return {
            "champion": self.registry.champion(),
            "live": self.slot.current.version,
            "versions": [v.to_dict() for v in self.registry.versions()],
        }

    def promote(self, version: Any, reason: str) -> dict[str, Any]:
        """See :meth:`RecommenderService.promote`."""
        with self.locks.swap, self.locks.erase:
            try:
                info = self.registry.promote(version, reason=reason)
            except UnknownIdError:
                ids = [v.version for v in self.registry.versions()]
                span = f"{ids[0]}..{ids[-1]}" if ids else "none"
                raise UnknownIdError(
                    "version", [str(version)], hint=f"the registry holds versions {span}"
                ) from None
            self.serve_champion()
        return info.to_dict()

    def rollback(self, reason: str) -> dict[str, Any]:
        """See :meth:`RecommenderService.rollback`."""
        with self.locks.swap, self.locks.erase:
            info = self.registry.rollback(reason=reason)
            self.serve_champion()
        return info.to_dict()

    # ------------------------------------------------------------ challengers
    def judge(
        self,
        challenger: Recommender,
        *,
        seq: int,
        holdout: pd.DataFrame,
        history: pd.DataFrame,
        parent: str,
    ) -> dict[str, Any]:
        """Judge a challenger that learned the store up to ``seq`` against the champion
        on ``holdout`` (ranked from ``history``), register it, and serve it if it is
        promoted (see :func:`register_challenger`)."""
        with self.locks.swap:
            live = self.slot.current
            champion, before = live.model, live.version
            current = self.registry.champion()
            if current != before:  # the registry moved on without this service
                champion = None if current is None else self.registry.load(current)
                before = current

            def install(record: dict[str, Any]) -> None:
                self.slot.install(challenger, record["version"], seq, self.users.follow)

            return register_challenger(
                self.registry,
                self.gate,
                self.erasures,
                self.scrubber,
                self.locks.erase,
                champion,
                before,
                challenger,
                seq=seq,
                holdout=holdout,
                history=history,
                parent=parent,
                counters=self.counters,
                on_promoted=install,
            )


def load_version(
    registry: ModelRegistry, erasures: ErasureLog, version: str
) -> tuple[Recommender, int]:
    """A registered model and the store position it had learned up to, without the
    users erased after that position (they come back only through newer events)."""
    model = registry.load(version)
    seq = int(registry.info(version).data.get("last_seq", 0))
    scrub_model(model, erasures, seq)
    return model, seq


def register_challenger(
    registry: ModelRegistry,
    gate: PromotionGate,
    erasures: ErasureLog,
    scrubber: RegistryScrubber,
    erase_lock: threading.RLock,
    champion: Recommender | None,
    before: str | None,
    challenger: Recommender,
    *,
    seq: int,
    holdout: pd.DataFrame,
    history: pd.DataFrame,
    parent: str,
    counters: dict[str, float],
    on_promoted: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Judge ``challenger`` (which learned the store up to ``seq``) against ``champion``
    (version ``before``) on ``holdout``, register it and, when the gate passes it, make
    it the registry's champion; ``on_promoted(record)`` then makes it live. From the
    moment the gate has decided until the challenger is registered (and live), no
    erasure can happen (``erase_lock``); users erased after ``seq`` are removed from it
    first. Returns the record of :func:`~lifelongrec.registry.judge_challenger`."""
    ts = pd.concat([history["timestamp"], holdout["timestamp"]], ignore_index=True)
    held = contextlib.ExitStack()

    def scrub(model: Recommender) -> None:
        # Users erased after the snapshot was taken (the trainer forgot the earlier
        # ones) are removed now, and no erasure happens until exit.
        held.enter_context(erase_lock)
        erasures.refresh()  # those another process logged, too
        scrub_model(model, erasures, seq)

    with held:
        record = judge_challenger(
            registry,
            gate,
            champion,
            before,
            challenger,
            holdout[list(EVENT_COLUMNS)],
            history[list(EVENT_COLUMNS)],
            parent=parent,
            window=(int(ts.min()), int(ts.max())) if len(ts) else None,
            data={
                "last_seq": int(seq),
                "n_holdout": len(holdout),
                "erasure_generation": int(erasures.generation),
            },
            tags={"source": "online learner"},
            prepare=scrub,
        )
        counters["challengers"] += 1
        # Registered after every erasure so far: nothing for the scrubber to check.
        scrubber.mark(record["version"], erasures.generation)
        if record["promoted"]:
            if on_promoted is not None:
                on_promoted(record)
            counters["promotions"] += 1
    log.info("challenger %s: %s", record["version"], record["reason"])
    return record
