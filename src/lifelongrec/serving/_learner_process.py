"""The learner in a process of its own: ``lifelongrec learn --home HOME``.

:class:`LearnerProcess` runs the same :class:`~lifelongrec.serving._learner.Learner` the
service runs as a thread, in another interpreter, so that training never takes the
request path's GIL or its CPU time slices (the process lowers its own scheduling
priority). It talks to the API processes only through the home folder:

* **events** from the event store, after its cursor (the store is SQLite in WAL mode:
  a reader in another process sees every committed write);
* **catalogue upserts** from the store, by revision (:meth:`EventStore.items_since`);
* **erasures** from the erasure log, re-read at every round before the events are
  learned (the API logs an erasure before it stores the next event, so every erasure
  below the events just read is in the log): the trainer forgets those users, their
  older events in the batch are dropped, and a challenger is scrubbed under the same
  rule as in one process;
* **versions** to the registry: a challenger is judged against the registry's
  champion, registered either way, and a promotion moves the champion pointer; the API
  processes follow the pointer (:class:`~lifelongrec.serving._learner_link.LearnerLink`)
  and install the version without dropping a request;
* **its status** to ``HOME/learner.json`` (cursor, rounds, counters, phase times,
  written atomically about twice a second), which ``/health`` and ``/metrics`` of the
  API processes read.

One learner per home folder: the process holds an exclusive lock on
``HOME/learner.lock`` while it runs. It starts from the registry's champion and the
store position that version learned, so a learner that was killed resumes from the last
registered version: events after it are learned again by a model that never learned
them (nothing is learned twice into the same line of versions).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from lifelongrec.data import EventStore, StoreUnavailableError
from lifelongrec.models import Recommender
from lifelongrec.registry import ModelRegistry
from lifelongrec.serving._bus_link import LearnerFeed
from lifelongrec.serving._config import ServiceConfig
from lifelongrec.serving._erasure import ErasureLog, RegistryScrubber
from lifelongrec.serving._home import REGISTRY_DIR, open_event_store, read_settings
from lifelongrec.serving._learner import Learner
from lifelongrec.serving._lifecycle import load_version, register_challenger
from lifelongrec.serving._live import catch_up_items
from lifelongrec.serving._shared import COUNTERS, ServiceError, Timings

__all__ = [
    "LEARNER_LOCK",
    "LEARNER_STATUS",
    "LearnerBusyError",
    "LearnerProcess",
    "lower_priority",
]

log = logging.getLogger("lifelongrec.serving")

LEARNER_STATUS = "learner.json"
LEARNER_LOCK = "learner.lock"
#: Catalogue items one round takes at most (whole upserts; the rest wait a round).
ITEMS_PER_ROUND = 20_000
STATUS_SECONDS = 0.5  # how often the status file is rewritten while the learner runs
NICE = 10  # the learner's scheduling priority below the API's (Unix ``nice``)
LOCK_TRIES = 5


def lower_priority(step: int, idle: bool = False) -> None:
    """Every thread of this process ``step`` nice levels lower and, with ``idle``, under
    Linux's ``SCHED_IDLE`` policy (it runs only on CPU time other threads leave, and a
    thread of another policy that wakes up preempts it at once; unprivileged processes
    may take it but not leave it). Linux keeps both per thread and ``os.nice`` changes
    only the caller's: threads a library started before (a thread pool, a store's
    helper) would keep the API's priority. Threads started later inherit their
    creator's. Where ``/proc/self/task`` is absent, only the calling thread; where
    ``SCHED_IDLE`` is absent, only the nice level. A setting that cannot be made is
    left as it is."""
    policy = getattr(os, "SCHED_IDLE", None) if idle else None
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]  # the calling thread
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + step)
            if policy is not None:
                os.sched_setscheduler(tid, policy, os.sched_param(0))


class LearnerBusyError(RuntimeError):
    """Another learner process holds the home folder's learner lock."""


class RegistryHost:
    """The learner's host in a process of its own (a
    :class:`~lifelongrec.serving._learner.LearnerHost`): judges against the registry's
    champion, takes catalogue upserts from the store, evicts nothing itself (the
    learner keeps its own ``max_users``) and has no index to look after."""

    def __init__(
        self,
        registry: ModelRegistry,
        store: EventStore,
        config: ServiceConfig,
        erasures: ErasureLog,
        scrubber: RegistryScrubber,
        counters: dict[str, float],
        revision: int,
    ) -> None:
        self.registry = registry
        self.store = store
        self.gate = config.promotion_gate()
        self.erasures = erasures
        self.scrubber = scrubber
        self.counters = counters
        self.lock = scrubber.lock  # the erase lock of this process
        # (version, model): the last champion loaded or promoted; loaded when first
        # judged against, so that a start loads one model (the trainer), not two.
        self._champion: tuple[str | None, Recommender | None] = (None, None)
        self._revision = revision

    def champion(self) -> tuple[str | None, Recommender | None]:
        """The registry's champion now (loaded again only when the pointer moved)."""
        current = self.registry.champion()
        if current is None:
            return None, None
        if self._champion[0] != current:
            self._champion = (current, load_version(self.registry, self.erasures, current)[0])
        return self._champion

    def judge(
        self,
        challenger: Recommender,
        *,
        seq: int,
        holdout: pd.DataFrame,
        history: pd.DataFrame,
        parent: str,
    ) -> dict[str, Any]:
        before, champion = self.champion()

        def promoted(record: dict[str, Any]) -> None:
            self._champion = (record["version"], challenger)

        return register_challenger(
            self.registry,
            self.gate,
            self.erasures,
            self.scrubber,
            self.lock,
            champion,
            before,
            challenger,
            seq=seq,
            holdout=holdout,
            history=history,
            parent=parent,
            counters=self.counters,
            on_promoted=promoted,
        )

    def take_items(self) -> list[pd.DataFrame]:
        items, self._revision = self.store.items_since(self._revision, limit=ITEMS_PER_ROUND)
        return [items] if len(items) else []

    def take_evicted(self) -> list[str]:
        return []

    def maintain(self) -> bool:
        return False


def _hold_lock(path: Path) -> int:
    """Take the home folder's learner lock (an open descriptor) or raise
    :class:`LearnerBusyError` naming the process that holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt + 1 < LOCK_TRIES:  # a service looking whether it is free holds
                time.sleep(0.1)  # it for an instant: try again before giving up
    else:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LearnerBusyError(
            f"another learner (pid {holder}) runs on {path.parent}; one learner per home folder"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class LearnerProcess:
    """The learner of a home folder, run in this process until stopped (see the module
    docstring).

    Parameters
    ----------
    home
        A home folder a service has started on (it holds a champion and the settings).
    config
        The settings (``None``: those the service saved in ``HOME/service.json``).

    Raises
    ------
    LearnerBusyError
        Another learner runs on this home folder.
    ServiceError
        The home folder has no champion yet.
    """

    def __init__(self, home: str | Path, config: ServiceConfig | None = None) -> None:
        self.home = Path(home)
        if not (self.home / REGISTRY_DIR).is_dir():
            raise ServiceError(
                f"{self.home} is not a service home folder yet; start `lifelongrec serve "
                f"--home {self.home} --data ...` once to make one"
            )
        self.config = read_settings(self.home, config)
        self._lock_fd = _hold_lock(self.home / LEARNER_LOCK)
        self.started_at = time.time()
        self.counters: dict[str, float] = dict.fromkeys(COUNTERS, 0)
        self.timings = Timings()
        self._written_at = 0.0
        try:
            self.store = open_event_store(self.home, self.config)
            self.registry = ModelRegistry(self.home / REGISTRY_DIR)
            self.erasures = ErasureLog(self.home)
            version = self.registry.champion()
            if version is None:
                raise ServiceError(f"{self.home} has no champion model yet")
            trainer, seq = load_version(self.registry, self.erasures, version)
            revision = self.store.item_revision  # before reading: changes after it follow
            catch_up_items(trainer, self.store.items())
            scrubber = RegistryScrubber(
                self.home,
                self.registry,
                self.erasures,
                threading.RLock(),
                self.counters,
                self.timings,
            )
            host = RegistryHost(
                self.registry,
                self.store,
                self.config,
                self.erasures,
                scrubber,
                self.counters,
                revision,
            )
            self.learner = Learner(
                trainer,
                seq,
                version,
                store=self.store,
                erasures=self.erasures,
                scrubber=scrubber,
                host=host,
                settings=self.config.learner,
                gate=self.config.gate,
                counters=self.counters,
                timings=self.timings,
                apart=True,
                max_users=self.config.users.max_users,
                feed=(
                    LearnerFeed(self.config.store.bus, self.store, self.erasures)
                    if self.config.store.bus is not None
                    else None
                ),
            )
        except BaseException:
            os.close(self._lock_fd)
            raise
        log.info("learner started on %s from %s (store position %d)", self.home, version, seq)

    def status(self, running: bool = True) -> dict[str, Any]:
        """What ``HOME/learner.json`` holds (see the module docstring)."""
        learner = self.learner
        return {
            "pid": os.getpid(),
            "running": running,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "cursor": int(learner.cursor),
            "line_version": learner.line_version,
            "rounds": int(learner.rounds),
            "lag_events": int(learner.lag()),
            "stats": learner.stats(),
            "phase_seconds": self.timings.as_dict(),
            "counters": {k: int(v) for k, v in self.counters.items()},
        }

    def write_status(self, running: bool = True) -> None:
        """Rewrite ``HOME/learner.json`` atomically."""
        path = self.home / LEARNER_STATUS
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.status(running)))
        os.replace(tmp, path)
        self._written_at = time.monotonic()

    def step(self, max_events: int = 5_000) -> bool:
        """One learner round (see :meth:`Learner.step`); the status file is rewritten
        when it is due. Returns whether there was anything to do."""
        busy = self.learner.step(max_events)
        if time.monotonic() - self._written_at >= STATUS_SECONDS:
            self.write_status()
        return busy

    def run(self, stop: threading.Event | None = None, parent: int | None = None) -> None:
        """Learn until ``stop`` is set, or the process ``parent`` is gone (the service
        that spawned this learner died without stopping it). Each round's error is
        logged and counted; the loop goes on."""
        stop = stop or threading.Event()
        share = float(self.config.learner.share)
        self.write_status()
        down = False  # the store was unreachable at the last round
        while not stop.is_set():
            if parent is not None and os.getppid() != parent:
                log.warning("the service that started this learner is gone; stopping")
                break
            t0 = time.perf_counter()
            try:
                busy = self.step()
                if down:
                    log.warning("the event store is back; learning again")
                down = False
            except StoreUnavailableError as exc:  # said once per outage; tried every second
                if not down:
                    log.warning("learning paused: %s", exc)
                down = True
                stop.wait(1.0)
                continue
            except Exception:
                log.exception("learner round failed")
                self.counters["learner_errors"] += 1
                busy = False
            took = time.perf_counter() - t0
            if not busy:
                stop.wait(0.05)
            elif share < 1.0:
                stop.wait(took * (1.0 - share) / share)

    def close(self) -> None:
        """Write the final status, close the store and release the learner lock."""
        with contextlib.suppress(OSError):
            self.write_status(running=False)
        self.store.close()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
