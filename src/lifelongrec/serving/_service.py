"""The service behind ``lifelongrec serve``: champion, user state, index, learner.

:class:`RecommenderService` is what the HTTP layer (:mod:`lifelongrec.serving._app`)
calls; it holds no HTTP concerns and can be driven from Python directly. It is a facade
over parts, each in its own module:

================================  =====================================================
:mod:`~._home`                    the home folder, its settings, the first start
:mod:`~._config`                  :class:`ServiceConfig`, grouped by concern
:mod:`~._live`                    the live model and how a model is made live
:mod:`~._ingest`                  ingestion; the users kept in memory (evict, restore)
:mod:`~._queries`                 recommendations, cold start, explanations, similar
:mod:`~._catalogue`               catalogue upserts and their publishing thread
:mod:`~._erasure`                 the erasure log, ``delete_user``, registry scrubbing
:mod:`~._lifecycle`               loading, judging, promoting and rolling back versions
:mod:`~._learner`                 the background learner (its own object and thread)
:mod:`~._learner_process`         the learner in a process of its own
                                  (``lifelongrec learn``)
:mod:`~._learner_link`            the serving side of that process: the champion
                                  follower and the learner's supervisor
:mod:`~._follow`                  what other API processes on the home folder wrote,
                                  taken in (replicas)
:mod:`~._experiments`             online experiments: challengers served beside the
                                  champion, their counts, the sequential test
:mod:`~._capabilities`            optional abilities of a model, as Protocols
:mod:`~._shared`                  locks (and their order), counters, timings
================================  =====================================================

How an event flows
------------------
1. ``ingest`` validates the batch (nothing of a bad batch is written), appends it to the
   store in one durable transaction (idempotent through ``event_id``), and then, under
   the same ingestion lock, lets the *live* model observe the written events: the user's
   stored sequence changes at once, so the next recommendation reflects the event. The
   live model's parameters never change in place.
2. The :class:`~lifelongrec.serving._learner.Learner` (by default in a process of its
   own, :mod:`~._learner_process`; with ``learner_mode="thread"`` a thread of this one)
   reads the store after its cursor and feeds a *trainer* copy of the model through
   :class:`~lifelongrec.training.OnlineLearner` (state at once, parameter steps in
   mini-batches). The distance between the store's newest event and the trainer's
   cursor is the online-learning lag (``/metrics``).
3. Every ``challenger_every`` learned events the trainer is snapshotted; once
   ``holdout_events`` newer events exist (events the snapshot never learned), the
   promotion gate judges the snapshot against the champion on them (the prequential
   per-event protocol), and the snapshot is registered either way
   (:func:`~lifelongrec.registry.judge_challenger`, the one promotion path). A promoted
   snapshot catches up with the events that arrived meanwhile (state only), gets its own
   index, and replaces the live model and index in one reference swap: a request sees
   either the old pair or the new one, never a mix, and none fails. A learner in another
   process moves the registry's champion pointer instead, and this process's follower
   (:mod:`~._learner_link`) loads the version and swaps it in the same way.

Erasure is final
----------------
``delete_user`` erases the user's events from the store, logs the erasure (keyed hash
and store position, :class:`~lifelongrec.serving._erasure.ErasureLog`), and removes the
user's history and row from the live model and the trainer, all under the learner's lock,
so it is atomic with respect to the trainer. The other places a user could come back
from are closed as follows:

* the learner read a batch before the DELETE and learns it after: the batch is filtered
  under the learner's lock against the erasures logged since the read began;
* a challenger snapshot (copied before the DELETE) is being judged: before it is
  registered or goes live it forgets every user erased since it was copied, under the
  erase lock, which the DELETE also holds;
* a registered version (saved before the DELETE) is promoted, rolled back to or loaded at
  a restart: it forgets, on loading, every user erased after the store position it
  learned up to (scrub on load, so nothing unscrubbed is ever served); and the learner
  thread rewrites every registered version that holds an erased user on disk, one per
  round (:meth:`ModelRegistry.rewrite`), so the user's data does not stay at rest either.

What stays is what the user's events taught the shared parameters (item vectors, the
encoder's weights): that is no longer the user's data, and a later retrain on the
store, which no longer holds the events, removes even that.

Locks, always taken in this order (:mod:`lifelongrec.serving._shared`): ``swap`` (a
change of champion: judging a challenger, a promotion, a rollback); ``erase`` (an
erasure; anything that saves or installs a model); the learner's lock (the trainer);
``ingest`` (store appends and the live model's state updates, so a model swap can catch
up exactly); ``model`` (the live model's state while a request reads it: short, one
user's vector).
"""

from __future__ import annotations

import copy
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lifelongrec._errors import UnknownIdError
from lifelongrec.data import Dataset
from lifelongrec.models import Recommender
from lifelongrec.registry import ModelRegistry
from lifelongrec.serving._bus_link import BusLink, shown_config
from lifelongrec.serving._catalogue import Catalogue
from lifelongrec.serving._challengers import ChallengerLoader
from lifelongrec.serving._config import STANDARD_EVENT_TYPES, ServiceConfig
from lifelongrec.serving._details import ItemDetails
from lifelongrec.serving._erasure import (
    ErasureLog,
    RegistryScrubber,
    erase_user,
    forget_erased_elsewhere,
)
from lifelongrec.serving._experiments import Experiments
from lifelongrec.serving._follow import StoreFollower
from lifelongrec.serving._home import (
    REGISTRY_DIR,
    first_start,
    open_event_store,
    open_home,
    read_settings,
    save_settings,
)
from lifelongrec.serving._impressions import ImpressionLog
from lifelongrec.serving._index import ItemIndex
from lifelongrec.serving._index_store import INDEX_DIR, IndexStore
from lifelongrec.serving._ingest import Ingestion, UserMemory
from lifelongrec.serving._learner import Learner
from lifelongrec.serving._learner_link import LearnerLink, ServiceHost
from lifelongrec.serving._lifecycle import ModelLifecycle
from lifelongrec.serving._live import LiveModel, LiveSlot
from lifelongrec.serving._queries import Queries
from lifelongrec.serving._shared import COUNTERS, Locks, ReadGate, ServiceError, Timings
from lifelongrec.training import online_events

__all__ = ["RecommenderService", "ServiceConfig", "ServiceError"]


class RecommenderService:
    """The long-running recommender: open it on a home folder, then call its methods
    from any thread (see the module docstring).

    Use :meth:`open` to construct one; :meth:`close` stops the learner and closes the
    store.

    Attributes
    ----------
    home, config
        The home folder and the settings.
    store, registry, erasures
        The event store, the model registry and the erasure log of the home folder.
    gate
        The :class:`~lifelongrec.registry.PromotionGate` challengers are judged by.
    counters, timings
        Figures for ``/health`` and ``/metrics``.
    """

    def __init__(self, home: Path, config: ServiceConfig) -> None:
        self.home = home
        self.config = config
        self.store = open_event_store(home, config)
        self.registry = ModelRegistry(home / REGISTRY_DIR)
        self.erasures = ErasureLog(home)
        self.gate = config.promotion_gate()
        self.timings = Timings()
        self.started_at = time.time()
        self.counters: dict[str, float] = dict.fromkeys(COUNTERS, 0)
        locks = self._locks = Locks(config.limits.read_priority_ms / 1000.0)
        counters = self.counters
        self._slot = LiveSlot(self.store, config.index, locks, IndexStore(home / INDEX_DIR))
        self._users = UserMemory(self._slot, self.store, config.users, locks, counters)
        self._ingestion = Ingestion(
            self._slot, self._users, self.store, config.limits, locks, counters
        )
        details = ItemDetails(self.store)
        self._queries = Queries(self._slot, self._users, self.store, locks, details)
        self._catalogue = Catalogue(
            self._slot, self.store, config.limits, locks, self.timings, details
        )
        self._scrubber = RegistryScrubber(
            home, self.registry, self.erasures, locks.erase, counters, self.timings
        )
        self._lifecycle = ModelLifecycle(
            self.registry,
            self.gate,
            self.erasures,
            self._scrubber,
            self._slot,
            self._users,
            locks,
            counters,
        )
        self._impressions = ImpressionLog(self.store, config.feedback, counters)
        self._learner: Learner | LearnerLink | None = None
        self._erasures_seen = 0
        self._bus = BusLink.open(config, self.store, self._ingestion, self.erasures)
        self._follower = StoreFollower(self.follow_store, self._bus and self._bus.interval)
        loader = ChallengerLoader(
            self._lifecycle, self._ingestion, self.store, config, locks, details
        )
        self._experiments = Experiments(home, self.registry, loader, self.promote, config)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        home: str | Path,
        data: str | Dataset | None = None,
        config: ServiceConfig | Mapping[str, Any] | None = None,
        *,
        start: bool = True,
    ) -> RecommenderService:
        """Open (or create) a home folder and get the service ready to answer.

        Parameters
        ----------
        home
            The home folder (created when absent).
        data
            Only used when the registry has no champion yet: a dataset path, the word
            ``"synthetic"``, or a :class:`~lifelongrec.data.Dataset`. Its events and
            catalogue go into the event store and a champion is trained on them.
        config
            A :class:`ServiceConfig` or a dict of its settings (flat names, groups, or
            both); ``None``: the settings the last start saved in ``HOME/service.json``
            (the defaults on a first start). Given settings are saved there for the
            next start.
        start
            Start the background threads now when the settings ask for them
            (``background``); ``False`` leaves that to :meth:`start_learner` (an app's
            lifespan, see :func:`~lifelongrec.serving.create_app`).

        Raises
        ------
        ServiceError
            No champion in the home folder and no ``data`` to train one.
        """
        home = Path(home)
        config = read_settings(home, config)
        open_home(home)
        service = cls(home, config)
        try:
            if service.registry.champion() is None:
                if data is None:
                    raise ServiceError(
                        f"{home} has no champion model yet; start once with data "
                        "(--data PATH or --data synthetic) to train one"
                    )
                first_start(service.store, service.registry, config, data)
            service._load_champion()
            service._ingestion.event_types = frozenset(
                config.store.event_types
                if config.store.event_types is not None
                else (*STANDARD_EVENT_TYPES, *service.store.event_types())
            )
            service._experiments.resume(service.live_version)
        except BaseException:
            service._experiments.close()
            service.store.close()
            raise
        # Saved once the start worked: a failed first start leaves no settings behind
        # that would shadow the next attempt's.
        save_settings(home, config)
        service._impressions.start()
        service._experiments.start()
        if start and config.learner.background:
            service.start_learner()
        return service

    def _load_champion(self) -> None:
        revision = self.store.item_revision  # the catalogue the champion is given
        # With background work on, a start answers once the model is in: a large
        # catalogue's saved graph is read back by the housekeeping (exact search until).
        items = self._lifecycle.serve_champion(lazy=self.config.learner.background)
        self._catalogue.follow_from(revision)
        self._erasures_seen = self.erasures.generation
        live = self._slot.current
        self._users.reset(live.model, self.store.user_last_seqs())
        self._slot.set_fresh(items)
        learner = self.config.learner
        host = ServiceHost(self._lifecycle, self._catalogue, self._users, self._slot, self.timings)
        if learner.background and learner.mode != "thread":
            # The learner works in another process; this one follows the champion.
            self._learner = LearnerLink(
                self.home,
                learner.mode,
                self.store,
                champion_moved=lambda: self.registry.champion() != self._slot.current.version,
                serve_champion=self._lifecycle.serve_champion,
                maintain=host.maintain_apart,
                counters=self.counters,
                torch_threads=torch.get_num_threads(),
                priority=learner.priority,
            )
            return
        # The trainer: a copy that learns every stored event (the learner thread).
        seq = int(self.registry.info(live.version).data.get("last_seq", 0))
        self._learner = Learner(
            copy.deepcopy(live.model),
            seq,
            live.version,
            store=self.store,
            erasures=self.erasures,
            scrubber=self._scrubber,
            host=host,
            settings=self.config.learner,
            gate=self.config.gate,
            counters=self.counters,
            timings=self.timings,
        )

    def follow_store(self) -> int:
        """Take in what other processes on the same home folder (API replicas) wrote
        since the last call: their events (observed by the live model, as if ingested
        here), catalogue upserts (queued for publishing) and erasures (the users
        forgotten). Returns how many events and items there were; the follower thread
        calls it every ``FOLLOW_STORE_SECONDS`` (20 ms)."""
        n = self._ingestion.follow_store()
        n += self._catalogue.follow_store()
        if not self._catalogue.threaded and self._catalogue.pending:
            self._catalogue.publish()
        if self.erasures.refresh():
            self._forget_erased()
        return n

    def _forget_erased(self) -> None:
        """Forget the users in memory erased by another process since the last call."""
        since, self._erasures_seen = self._erasures_seen, self.erasures.generation
        gone = forget_erased_elsewhere(
            self.erasures,
            since,
            slot=self._slot,
            users=self._users,
            learner=self._learner,
            locks=self._locks,
        )
        for uid in gone:
            self._experiments.forget_user(uid)

    # ------------------------------------------------------------------- events
    def ingest(
        self,
        events: Any,
        event_ids: Sequence[str | None] | None = None,
        request_ids: Sequence[str | None] | None = None,
    ) -> dict[str, int]:
        """Store events durably, then update their users' state at once.

        Parameters
        ----------
        events
            One event (a dict), a list of dicts or a DataFrame in the event schema
            (``user_id, item_id, timestamp``; ``event_type``, ``value`` optional).
        event_ids
            Optional idempotency keys, one per event (``None`` for none): an event whose
            key is already stored is acknowledged again but not stored twice.
        request_ids
            Optional, one per event (``None`` for none): the ``request_id`` of the
            recommendation the event answers, which attributes it to that answer's
            impression of its item (:meth:`online_metrics`).

        Returns
        -------
        dict
            ``n_received``, ``n_written``, ``n_duplicates``, ``last_seq``.

        Raises
        ------
        DataError
            A malformed event (nothing of the batch is written) or a batch longer than
            ``max_batch``.
        """
        result = self._ingestion.ingest(events, event_ids, request_ids)
        if result["n_written"] and self._experiments.running is not None:
            cols, _ = online_events(events)  # valid: the ingestion took them
            self._experiments.observe(
                cols["user_id"],
                cols["item_id"],
                cols["timestamp"],
                cols["event_type"],
                event_ids,
                request_ids,
            )
        return result

    @property
    def read_gate(self) -> ReadGate:
        """The serving reads in flight that ingestion gives way to (the app counts
        them: GET requests under :data:`~lifelongrec.serving._shared.GATED_READS`)."""
        return self._locks.reads

    @property
    def event_types(self) -> frozenset[str]:
        """The event types :meth:`ingest` accepts."""
        return self._ingestion.event_types

    @event_types.setter
    def event_types(self, types: frozenset[str]) -> None:
        self._ingestion.event_types = frozenset(types)

    # ---------------------------------------------------------- recommendations
    def recommend(
        self,
        user_id: str,
        k: int = 10,
        exclude_seen: bool = True,
        category: str | None = None,
        explain: bool = False,
        details: bool = False,
    ) -> dict[str, Any]:
        """Top-``k`` items for a user; a user the model does not know gets cold-start
        items (popular ones interleaved with the newest catalogue entries).

        Returns a dict: ``request_id`` (new for every answer: events that answer it may
        name it), ``user_id``, ``model_version``, ``cold_start`` (bool) and ``items`` (a
        list of ``{"item_id", "score"}``, with ``"reason"`` when ``explain`` and
        ``"title"``, ``"categories"`` from the catalogue when ``details``). The items
        are logged as impressions (``log_impressions``), off the request path.

        While an online experiment runs (:meth:`create_experiment`), the answer also
        has ``experiment``: ``{"id", "arm"}``. Under A/B the user's arm (sticky)
        answered, and ``model_version`` is that arm's; under interleaving the champion's
        and the challenger's lists are merged (``arm`` is ``"interleaved"``,
        ``model_version`` the champion's) and the impression log records for each item
        the version and arm (``"<experiment id>:<arm>"``) that contributed it.

        Raises
        ------
        UnknownIdError
            ``category`` names no item's category.
        ParameterError
            ``k`` is not a positive integer.
        """
        request_id = uuid.uuid4().hex

        def ask(queries: Queries, with_details: bool) -> dict[str, Any]:
            return queries.recommend(user_id, k, exclude_seen, category, explain, with_details)

        got = self._experiments.answer(request_id, str(user_id), ask, self._queries, details)
        if got is None:
            out = ask(self._queries, details)
            versions, arms = out["model_version"], None
        else:
            out, versions, arms = got.out, got.versions, got.arms
        out = {"request_id": request_id, **out}
        now = int(time.time())
        self._impressions.record(request_id, str(user_id), out["items"], versions, arms, now)
        return out

    # ------------------------------------------------------------- feedback
    def flush_impressions(self) -> int:
        """Store the buffered impressions now (the impression thread does it every
        ``impression_flush_seconds``); returns how many were new."""
        return self._impressions.flush()

    def online_metrics(
        self, by_hour: bool = False, since: int | None = None, until: int | None = None
    ) -> list[dict[str, Any]]:
        """Online metrics per model version and arm (and hour of the impression with
        ``by_hour``) of the impressions shown in ``[since, until)``, the buffered ones
        included: see :meth:`~lifelongrec.data.EventStore.online_metrics` (``click_types``,
        ``conversion_types`` and ``attribution_window`` from the settings). Ratios
        without a denominator are ``None``."""
        self.flush_impressions()
        f = self.config.feedback
        frame = self.store.online_metrics(
            f.click_types,
            f.conversion_types,
            window=f.attribution_window,
            by_hour=by_hour,
            since=since,
            until=until,
        )
        rows = frame.to_dict("records")
        for row in rows:
            for key, value in row.items():
                if isinstance(value, float) and math.isnan(value):
                    row[key] = None
                elif hasattr(value, "item"):  # numpy scalars: JSON wants Python's
                    row[key] = value.item()
        return rows

    def item(self, item_id: str) -> dict[str, Any]:
        """A catalogue entry: ``item_id``, ``title``, ``categories``, ``attributes``.

        Raises
        ------
        UnknownIdError
            The catalogue has no such item.
        """
        return self._queries.item(item_id)

    def similar(self, item_id: str, k: int = 10, details: bool = False) -> dict[str, Any]:
        """The ``k`` items closest to an item (with titles and categories when
        ``details``).

        Raises
        ------
        UnknownIdError
            The item is not in the live model.
        """
        return self._queries.similar(item_id, k, details)

    # ---------------------------------------------------------------- catalogue
    def upsert_item(self, item: Mapping[str, Any], wait: bool = True) -> dict[str, Any]:
        """Add or update one catalogue item (see :meth:`upsert_items`). Returns
        ``{"item_id", "created", "live"}``."""
        out = self.upsert_items([item], wait=wait)
        return {
            "item_id": str(item.get("item_id")),
            "created": bool(out["n_created"]),
            "live": out["live"],
        }

    def upsert_items(self, items: Sequence[Mapping[str, Any]], wait: bool = True) -> dict[str, Any]:
        """Add or update catalogue items, all or nothing.

        The items are stored durably before this returns. They go live (recommendable
        through their content vectors, in similar-item answers and category filters) when
        the service has encoded their text: upserts that arrive together are encoded as
        one batch, outside the locks requests need. ``wait=True`` returns once they are
        live; ``wait=False`` right after the durable write (the catalogue thread, or with
        ``background=False`` the next :meth:`learn_step`, publishes them).

        An id given twice in one call is upserted once, with its later entry.

        Returns ``{"n_received", "n_created", "n_updated", "live"}`` (``n_received``
        counts the entries sent; ``live``: whether they are live already).

        Raises
        ------
        DataError
            A field of the wrong type (the message names the item's position), or more
            than ``max_batch`` items.
        """
        return self._catalogue.upsert_items(items, wait)

    # ----------------------------------------------------------------- deletion
    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Erase a user's events from the store and their state from the live model and
        the trainer, and log the erasure so that no model served or saved after this call
        returns holds them (see "Erasure is final" in the module docstring). Returns
        ``{"user_id", "events_erased", "state_erased"}``.

        Raises
        ------
        UnknownIdError
            The service has neither events nor state of this user.
        """
        with self._locks.erase:  # the challengers of an experiment forget them too
            try:
                out = erase_user(
                    user_id,
                    store=self.store,
                    erasures=self.erasures,
                    slot=self._slot,
                    users=self._users,
                    learner=self._learner,
                    locks=self._locks,
                )
            except UnknownIdError:
                if not self._experiments.forget_user(str(user_id)):
                    raise
                return {"user_id": str(user_id), "events_erased": 0, "state_erased": True}
            self._experiments.forget_user(str(user_id))
        return out

    # ------------------------------------------------------------------- models
    def models(self) -> dict[str, Any]:
        """The registry's versions, its champion and the live version."""
        return self._lifecycle.models()

    def promote(self, version: Any, reason: str = "promoted through the API") -> dict[str, Any]:
        """Make a registered version the champion and serve it.

        Raises
        ------
        UnknownIdError
            No such version (the message names the versions there are, not where).
        """
        return self._lifecycle.promote(version, reason)

    def rollback(self, reason: str = "rolled back through the API") -> dict[str, Any]:
        """Go back to the previous champion and serve it."""
        return self._lifecycle.rollback(reason)

    # ------------------------------------------------------------ experiments
    def create_experiment(
        self, name: str, arms: Sequence[Mapping[str, Any]], **options: Any
    ) -> dict[str, Any]:
        """Start an online experiment of the live champion against registered versions
        (see :mod:`lifelongrec.serving._experiments` for how it serves, counts and
        decides). Returns the experiment (:meth:`experiment`).

        Parameters
        ----------
        name
            A label for people.
        arms
            Dicts ``{"name", "version", "share"}``: the challengers, each a registry
            version (``"v000003"`` or ``3``), and optionally the champion arm
            ``{"name": "champion"}`` (no version: the live champion). Under ``"ab"``
            ``share`` is the arm's share of the users: give every challenger's (the
            champion gets the rest, or give its share too: all must sum to 1) or none
            (an even split). Under ``"interleaving"``: exactly one challenger, no shares.
        design
            ``"ab"`` (default) or ``"interleaving"``.
        primary_metric
            ``"ctr"`` (default) or ``"conversion"``: what the test compares.
        alpha
            The test's false-positive rate (default 0.05, split between the
            challengers).
        tau
            The mixture's scale (the size of difference expected; ``None``: 0.01 per
            answer's CTR under A/B, 0.05 of credit under interleaving).
        auto
            Promote a significantly better challenger, reject a worse one or one that
            breaches a guardrail, on its own (default); ``False``: only report the
            verdict.
        min_impressions
            Impressions every arm needs before any decision (``None``: the
            ``experiment_min_impressions`` setting).
        max_seconds
            Stop without a decision after this long (``None``: never).
        guardrails
            ``max_p99_ratio`` (challenger's p99 latency over the champion's, default
            3), ``max_p99_ms`` (default none), ``max_error_rate`` (default 0.05); a
            value ``None`` turns one off.
        force
            Test a version the promotion gate rejected anyway (default ``False``).

        Raises
        ------
        ParameterError
            A bad argument (named), e.g. shares that do not sum to 1.
        UnknownIdError
            No such version.
        ExperimentConflict
            Another experiment runs, a challenger is the champion, or the promotion
            gate rejected one (without ``force``).
        """
        return self._experiments.create(name, arms, champion=self.live_version, **options)

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment, newest first (the running one looked at now)."""
        return self._experiments.list()

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        """One experiment: ``id``, ``name``, ``design``, ``status`` (``running``,
        ``stopped``, ``promoted``, ``rejected``), ``primary_metric``, ``alpha``,
        ``auto``, ``created_at``, ``updated_at``, ``ended_at`` (UTC epoch seconds),
        ``reason``, ``arms`` (each with its counts: ``impressions``, ``clicks``,
        ``conversions``, ``ctr``, ``users``, ``requests``, ``errors``, ``p99_ms``, and
        its own verdict) and ``verdict`` (``decision``, ``p_value``, ``effect``, ``ci``,
        ``looks``). A running experiment is looked at first (and may end then, with
        ``auto``).

        Raises
        ------
        UnknownIdError
            No such experiment.
        """
        return self._experiments.get(experiment_id)

    def stop_experiment(
        self, experiment_id: str, reason: str = "stopped through the API"
    ) -> dict[str, Any]:
        """End a running experiment; the champion stays.

        Raises
        ------
        UnknownIdError
            No such experiment.
        ExperimentConflict
            It has ended already.
        """
        return self._experiments.stop(experiment_id, reason)

    def experiment_tick(self) -> None:
        """Look at the running experiment and store its counts now (the experiment
        thread does it every ``experiment_tick_seconds``)."""
        self._experiments.tick()

    # ---------------------------------------------------------- the learner
    @property
    def learner(self) -> Learner | LearnerLink:
        """The background learner: the :class:`~lifelongrec.serving._learner.Learner`
        itself (its trainer, cursor, challenger) with ``learner_mode="thread"`` or
        ``background=False``, else the :class:`~lifelongrec.serving._learner_link.
        LearnerLink` to the learner process (its status, pid, cursor)."""
        return self._learner

    def start_learner(self) -> None:
        """Start the background learner thread and the catalogue thread that publishes
        item upserts (idempotent)."""
        self._learner.start()
        self._catalogue.start()
        self._follower.start()
        if self._bus is not None:
            self._bus.start()

    def learn_step(self, max_events: int = 5_000) -> bool:
        """One round of the background learner: feed the trainer the next events after
        its cursor, take the parameter steps that are due, and make or judge a
        challenger when one is due. Returns whether there was anything to do."""
        if not self._catalogue.threaded and self._catalogue.pending:
            self._catalogue.publish()  # background=False: upserts sent with wait=False
        return self._learner.step(max_events)

    # ------------------------------------------------------------------- status
    @property
    def live(self) -> LiveModel:
        """What requests read now (the model, its version and index, ...): a read-only
        view, replaced as a whole when another model goes live."""
        return self._slot.current

    @property
    def live_model(self) -> Recommender:
        """The model serving now (read-only: never change it)."""
        return self._slot.current.model

    @property
    def live_index(self) -> ItemIndex | None:
        """The retrieval index serving now (``None`` for a model without vectors)."""
        return self._slot.current.index

    @property
    def live_version(self) -> str:
        """The registry version serving now."""
        return self._slot.current.version

    @property
    def users_in_memory(self) -> int:
        """How many users the live model holds now (at most ``max_users``)."""
        return len(self._users)

    @property
    def learner_mode(self) -> str:
        """Where the learner runs now: ``"process"``, ``"external"`` or ``"thread"``
        (``background=False`` runs it in this process, by :meth:`learn_step`)."""
        if isinstance(self._learner, LearnerLink):
            return self._learner.mode
        return "thread"

    def learner_stats(self) -> dict[str, Any]:
        """The online learner's counters (``OnlineStats.as_dict``)."""
        return self._learner.stats()

    def lag(self) -> dict[str, float]:
        """The online learner's distance to the newest stored event."""
        return {"events": float(self._learner.lag())}

    def health(self) -> dict[str, Any]:
        live = self._slot.current
        return {
            "status": "ok",
            "model_version": live.version,
            "model": type(live.model).__name__,
            "n_items": int(len(live.index) if live.index is not None else live.model.n_items),
            "n_users": int(live.model.n_users),
            "n_events": int(self.store.n_events),
            "index": None if live.index is None else live.index.kind,
            "learner_running": self._learner.running,
            "learner_mode": self.learner_mode,
            "learner_pid": getattr(self._learner, "pid", None),
            "learner_rounds": int(self._learner.rounds),
            "learner_lag_events": self.lag()["events"],
            "learner_phase_seconds": (
                self._learner.phase_seconds()
                if isinstance(self._learner, LearnerLink)
                else self.timings.as_dict()
            ),
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "event_types": sorted(self.event_types),
            "erasures": int(self.erasures.generation),
            "experiment": self._experiments.running,
            "store_position": int(self._ingestion.cursor),  # every event below it observed
            "bus_following": None if self._bus is None else self._bus.follower.healthy,
            "counters": {k: int(v) for k, v in self.counters.items()},
            "config": shown_config(self.config),
        }

    def close(self) -> None:
        """Stop the learner and catalogue threads and close the store (idempotent)."""
        self._follower.stop()
        if self._bus is not None:
            self._bus.close()
        if self._learner is not None:
            self._learner.stop()
        self._catalogue.stop()
        self._impressions.close()
        self._experiments.close()
        self.store.close()

    def __enter__(self) -> RecommenderService:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
