"""The service behind ``lifelongrec serve``: champion, user state, index, learner.

:class:`RecommenderService` is what the HTTP layer (:mod:`lifelongrec.serving._app`)
calls; it holds no HTTP concerns and can be driven from Python directly.

One home folder holds everything (DESIGN, "Storage and scale")::

    HOME/events.sqlite    the event store (every acknowledged event and the catalogue)
    HOME/registry/        the model registry (versions, champion pointer, history)
    HOME/keys.json        API keys (see lifelongrec.serving._auth)
    HOME/service.json     the settings (ServiceConfig) of the last start, used by the
                          next start unless it is given settings
    HOME/erasures.jsonl   erased users as keyed hashes (see lifelongrec.serving._erasure)
    HOME/erasure.key      the key of those hashes
    HOME/scrubbed.json    which registered versions were rewritten without erased users

A new home folder is created with mode 0700 and its files 0600: events, keys and the
erasure log are for the service's user only.

How an event flows
------------------
1. ``ingest`` validates the batch (nothing of a bad batch is written), appends it to the
   store in one durable transaction (idempotent through ``event_id``), and then, under
   the same ingestion lock, lets the *live* model observe the written events: the user's
   stored sequence changes at once, so the next recommendation reflects the event. The
   live model's parameters never change in place.
2. A background thread reads the store after its cursor and feeds a *trainer* copy of
   the model through :class:`~lifelongrec.training.OnlineLearner` (state at once,
   parameter steps in mini-batches). The distance between the store's newest event and
   the trainer's cursor is the online-learning lag (``/metrics``).
3. Every ``challenger_every`` learned events the trainer is snapshotted; once
   ``holdout_events`` newer events exist (events the snapshot never learned), the
   promotion gate judges the snapshot against the champion on them (the prequential
   per-event protocol), and the snapshot is registered either way. A promoted snapshot
   catches up with the events that arrived meanwhile (state only), gets its own index,
   and replaces the live model and index in one reference swap: a request sees either the
   old pair or the new one, never a mix, and none fails.

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
  erasure lock, which the DELETE also holds;
* a registered version (saved before the DELETE) is promoted, rolled back to or loaded at
  a restart: it forgets, on loading, every user erased after the store position it
  learned up to (scrub on load, so nothing unscrubbed is ever served); and the learner
  thread rewrites every registered version that holds an erased user on disk, one per
  round (:meth:`ModelRegistry.rewrite`), so the user's data does not stay at rest either.

What stays is what the user's events taught the shared parameters (item vectors, the
encoder's weights): that is no longer the user's data, and a later retrain on the
store, which no longer holds the events, removes even that.

Locks, always taken in this order: ``_erase_lock`` (an erasure; anything that saves or
installs a model); the learner's lock (the trainer); ``_ingest_lock`` (store appends and
the live model's state updates, so a model swap can catch up exactly); ``_model_lock``
(the live model's state while a request reads it: short, one user's vector).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, LifelongrecError, ParameterError, UnknownIdError
from lifelongrec.data import EVENT_COLUMNS, Dataset, EventStore, load, make_items, synthetic
from lifelongrec.models import Recommender, get_model
from lifelongrec.registry import ChampionChallenger, ModelRegistry, PromotionGate
from lifelongrec.serving._erasure import ErasureLog
from lifelongrec.serving._index import ItemIndex
from lifelongrec.training import FineTune, OnlineLearner, online_events

__all__ = ["RecommenderService", "ServiceConfig", "ServiceError"]

log = logging.getLogger("lifelongrec.serving")

STORE_FILE = "events.sqlite"
CONFIG_FILE = "service.json"
SCRUBBED_FILE = "scrubbed.json"
REGISTRY_DIR = "registry"
#: Event types every service accepts (with those of its first data; see
#: ``ServiceConfig.event_types``).
STANDARD_EVENT_TYPES = (
    "interaction",
    "impression",
    "view",
    "click",
    "search",
    "cart",
    "add_to_cart",
    "remove_from_cart",
    "wishlist",
    "purchase",
    "rating",
    "review",
    "like",
    "dislike",
    "share",
    "play",
    "skip",
)
_READ_CHUNK = 50_000
_POPULAR = 1_000  # popular items kept ready for cold-start answers
_REFRESH_SECONDS = 30.0  # how often the learner thread refreshes them


class ServiceError(LifelongrecError, RuntimeError):
    """The service cannot do what was asked in its current state (e.g. a home folder
    without a champion and no data to train one)."""


@dataclass
class ServiceConfig:
    """Settings of a :class:`RecommenderService` (all have working defaults).

    Attributes
    ----------
    model, model_params
        The model trained on first start (``lifelongrec models`` lists names).
    synthetic_events, seed
        Size and seed of the synthetic world when the data source is ``synthetic``.
    ann_threshold
        Catalogues of more items than this are searched through a FAISS HNSW index;
        smaller ones exactly.
    hnsw_m, hnsw_ef_search
        HNSW graph degree and search breadth (256: with a trained model's item vectors
        at 100k items, 128 gave recall@10 0.956 against exact search, below the 0.95
        wanted once seen items are excluded; docs/benchmarks.md, service-load).
    hnsw_exact_head
        Item vectors of largest norm scored exactly beside every HNSW search (see
        :class:`ItemIndex`, ``exact_head``): the graph walk misses large-norm answers,
        and at 1M items it alone found 0.869 of the exact top 10 (0.9997 with this
        head of 10,000; docs/benchmarks.md, "Retrieval index: the exact head").
    index_max_delta
        Item upserts kept beside the HNSW graph before the learner thread rebuilds it.
    learner_batch
        Events per online parameter update.
    challenger_every
        Learned events between challengers (0: never make one).
    challenger_min_seconds
        ... and at least this many seconds between them: judging and swapping in a
        model (gate, registry write, index build) is a burst of work; once every few
        minutes is plenty for a live service.
    learner_share
        Largest share of one core the learner thread may take while it has work, in
        ``(0, 1]``: after a round that took ``t`` seconds it pauses ``t * (1 - share) /
        share``. Requests and the learner share the process (and Python's GIL); at 1.0
        the learner runs flat out and request latency suffers on a small machine.
    holdout_events
        Fresh events a challenger is judged on (events it never learned).
    holdout_max_events
        How far the held-out slice may grow while it lacks ``gate_min_users`` distinct
        users or ``gate_min_items`` distinct items; a challenger whose slice is still
        degenerate at this size is dropped unjudged (and logged), and a new one is made
        later.
    history_events
        Past events the gate's held-out queries are ranked from.
    gate_metric, gate_tolerance
        The promotion gate (see :class:`~lifelongrec.registry.PromotionGate`).
    gate_min_users, gate_min_items
        The fewest distinct users and items a held-out slice needs before the gate may
        decide on it (a burst of events on one item made a slice on which every model
        scored NDCG 1.0, and a challenger was promoted on the tie).
    event_types
        The event types ``ingest`` accepts (others are a 422 naming the field); ``None``:
        :data:`STANDARD_EVENT_TYPES` plus every type in the store when the service opens
        (so the types of the first data are in).
    max_batch
        Most events (or catalogue items) in one ``ingest`` (``upsert_items``) call.
    max_users
        The most users whose state (recent events, seen items, cached vector) the
        service keeps in memory (0: no cap). Above it the least recently active tenth is
        evicted from the live model and the trainer; their events stay in the store,
        and a user who comes back (an event or a recommendation request) is restored
        from their ``rehydrate_events`` most recent stored events. This is what bounds
        memory under a flood of new user ids (docs/benchmarks.md, "Memory under a flood
        of new users").
    rehydrate_events
        How many of a returning user's most recent stored events restore their state.
    background
        Run the background learner thread (``False``: call :meth:`RecommenderService.
        learn_step` yourself, e.g. in tests).
    """

    model: str = "sequential"
    model_params: dict[str, Any] = field(default_factory=dict)
    synthetic_events: int = 20_000
    seed: int = 0
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 256
    hnsw_exact_head: int = 10_000
    index_max_delta: int = 10_000
    learner_batch: int = 256
    challenger_every: int = 5_000
    challenger_min_seconds: float = 600.0
    learner_share: float = 0.5
    holdout_events: int = 1_000
    holdout_max_events: int = 10_000
    history_events: int = 50_000
    gate_metric: str = "ndcg@10"
    gate_tolerance: float = 0.0
    gate_min_users: int = 20
    gate_min_items: int = 20
    event_types: list[str] | None = None
    max_batch: int = 10_000
    max_users: int = 100_000
    rehydrate_events: int = 200
    background: bool = True

    def validate(self) -> ServiceConfig:
        ints = {
            "synthetic_events": 1,
            "ann_threshold": 1,
            "hnsw_m": 2,
            "hnsw_ef_search": 1,
            "hnsw_exact_head": 0,
            "index_max_delta": 1,
            "learner_batch": 1,
            "challenger_every": 0,
            "holdout_events": 1,
            "holdout_max_events": 1,
            "history_events": 1,
            "gate_min_users": 1,
            "gate_min_items": 1,
            "max_batch": 1,
            "max_users": 0,
            "rehydrate_events": 1,
        }
        for name, low in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ParameterError(name, v, f"an integer >= {low}")
        if not isinstance(self.model_params, Mapping):
            raise ParameterError("model_params", self.model_params, "a dict of hyperparameters")
        for name in ("challenger_min_seconds",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ParameterError(name, v, "a number >= 0")
        share = self.learner_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ParameterError("learner_share", share, "a number in (0, 1]")
        if not isinstance(self.background, bool):
            raise ParameterError("background", self.background, "True or False")
        if self.holdout_max_events < self.holdout_events:
            raise ParameterError(
                "holdout_max_events",
                self.holdout_max_events,
                f"an integer >= holdout_events ({self.holdout_events})",
            )
        types = self.event_types
        if types is not None and (
            isinstance(types, str)
            or not isinstance(types, (list, tuple))
            or not types
            or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in types)
        ):
            raise ParameterError(
                "event_types", types, "None or a non-empty list of names (1-64 characters)"
            )
        self.gate().validate()
        return self

    def gate(self) -> PromotionGate:
        """The promotion gate these settings describe."""
        return PromotionGate(
            self.gate_metric,
            self.gate_tolerance,
            min_users=self.gate_min_users,
            min_items=self.gate_min_items,
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ServiceConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError("config", unknown, f"settings among {sorted(known)}")
        return cls(**dict(values)).validate()


@dataclass
class _Live:
    """What requests read: swapped as one reference."""

    model: Recommender
    version: str
    index: ItemIndex | None
    categories: dict[str, set[str]]
    popular: list[tuple[str, float]]  # the most popular live items, most first
    item_set: set[str]  # the live items (cold start filters "new" items by it)
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # category -> index mask
    # User vectors computed by requests, dropped when the user's state changes (an
    # event, an erasure, an eviction). ``encoding`` holds a token per user whose vector
    # a request is computing outside the lock; a state change drops the token, which
    # tells that request not to keep its (stale) vector. Both stay as small as the users
    # in memory and the requests in flight. Only touched under the model lock.
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    encoding: dict[str, object] = field(default_factory=dict)

    def forget_vectors(self, users: Sequence[str]) -> None:
        for u in users:
            self.vectors.pop(u, None)
            self.encoding.pop(u, None)


def _has_vectors(model: Recommender) -> bool:
    """Whether the model scores by user vector . item vector and can copy a user's
    state to encode outside the lock (the index path; others answer via recommend)."""
    return all(
        callable(getattr(model, name, None))
        for name in ("item_vectors", "user_state", "encode_state")
    )


class RecommenderService:
    """The long-running recommender: open it on a home folder, then call its methods
    from any thread (see the module docstring).

    Use :meth:`open` to construct one; :meth:`close` stops the learner and closes the
    store.
    """

    def __init__(self, home: Path, config: ServiceConfig) -> None:
        self.home = home
        self.config = config
        self.store = EventStore(home / STORE_FILE)
        self.registry = ModelRegistry(home / REGISTRY_DIR)
        self.erasures = ErasureLog(home)
        self.gate = config.gate()
        self._cc = ChampionChallenger(FineTune(), self.registry, self.gate)
        self._erase_lock = threading.RLock()
        self._ingest_lock = threading.Lock()
        self._model_lock = threading.RLock()
        self._swap_lock = threading.RLock()  # one model swap at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._item_queue: list[pd.DataFrame] = []
        # Catalogue upserts written to the store and waiting to go live (_publish_items).
        self._catalogue_mutex = threading.Lock()
        self._catalogue_leader = threading.Lock()
        self._catalogue_pending: list[dict[str, Any]] = []
        self._catalogue_wake = threading.Event()
        self._catalogue_thread: threading.Thread | None = None
        # Users in the live model's memory, least recently active first (max_users).
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._evicted: list[str] = []  # evicted from the live model, not yet the trainer
        self._fresh: list[str] = []  # catalogue upserts, newest last
        self._snapshot: tuple[Recommender, int] | None = None  # (trainer copy, its seq)
        self._scrubbed = self._read_scrubbed()  # version -> erasure generation checked
        self._scrubbed_through = -1  # the generation every version was checked against
        self._learned_since = 0
        self._refreshed_at = time.monotonic()
        self._challenged_at = time.monotonic()  # the first challenger waits too
        self.timings: dict[str, tuple[float, float]] = {}  # learner phase: (last, max) s
        self.started_at = time.time()
        self.counters: dict[str, float] = {
            "events_ingested": 0,
            "events_duplicate": 0,
            "challengers": 0,
            "promotions": 0,
            "learner_errors": 0,
            "challengers_dropped": 0,
            "versions_scrubbed": 0,
            "users_evicted": 0,
            "users_restored": 0,
        }
        self.event_types: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        home: str | Path,
        data: str | Dataset | None = None,
        config: ServiceConfig | Mapping[str, Any] | None = None,
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
            A :class:`ServiceConfig` or a dict of its fields; ``None``: the settings the
            last start saved in ``HOME/service.json`` (the defaults on a first start).
            Given settings are saved there for the next start.

        Raises
        ------
        ServiceError
            No champion in the home folder and no ``data`` to train one.
        """
        home = Path(home)
        saved = home / CONFIG_FILE
        if config is None and saved.is_file():
            try:
                config = json.loads(saved.read_text())
            except json.JSONDecodeError as exc:
                raise DataError(
                    "not valid JSON", path=saved, line=exc.lineno, expected="service settings"
                ) from None
        if config is None:
            config = ServiceConfig()
        elif isinstance(config, Mapping):
            config = ServiceConfig.from_dict(config)
        elif not isinstance(config, ServiceConfig):
            raise ParameterError("config", type(config).__name__, "a ServiceConfig or a dict")
        config.validate()
        if home.exists() and not home.is_dir():
            raise ParameterError("home", str(home), "a folder (or a path to create one at)")
        if not home.exists():
            home.mkdir(parents=True)
            os.chmod(home, 0o700)  # events, keys and erasures: the owner's only
        _make_private(home)
        service = cls(home, config)
        try:
            if service.registry.champion() is None:
                if data is None:
                    raise ServiceError(
                        f"{home} has no champion model yet; start once with data "
                        "(--data PATH or --data synthetic) to train one"
                    )
                service._first_start(data)
            service._load_champion()
            service.event_types = frozenset(
                config.event_types
                if config.event_types is not None
                else (*STANDARD_EVENT_TYPES, *service.store.event_types())
            )
        except BaseException:
            service.store.close()
            raise
        # Saved once the start worked: a failed first start leaves no settings behind
        # that would shadow the next attempt's.
        tmp = saved.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(asdict(config), indent=2, sort_keys=True))
        os.replace(tmp, saved)
        if config.background:
            service.start_learner()
        return service

    def _first_start(self, data: str | Dataset) -> None:
        cfg = self.config
        if isinstance(data, Dataset):
            dataset = data
        elif str(data) == "synthetic":
            dataset = synthetic(n_events=cfg.synthetic_events, seed=cfg.seed)
        else:
            dataset = load(Path(data))
        events = dataset.events.sort_values("timestamp", kind="stable").reset_index(drop=True)
        if self.store.n_events == 0:
            for s in range(0, len(events), _READ_CHUNK):
                self.store.append(events.iloc[s : s + _READ_CHUNK])
        if dataset.items is not None and len(dataset.items):
            self.store.upsert_items(dataset.items)
        stored = self.store.to_dataset()
        log.info("training the first champion on %d events", len(stored.events))
        t0 = time.perf_counter()
        model = get_model(cfg.model, **dict(cfg.model_params)).fit(stored)
        seconds = time.perf_counter() - t0
        ts = stored.events["timestamp"]
        self.registry.register(
            model,
            window=(int(ts.min()), int(ts.max())),
            data={"last_seq": int(self.store.last_seq), "n_events": len(stored.events)},
            tags={"source": str(data) if not isinstance(data, Dataset) else "dataset"},
            metrics={"fit_seconds": round(seconds, 3)},
            status="champion",
            reason="first start: trained on the initial data",
        )

    def _load_champion(self) -> None:
        version = self.registry.champion()
        model, seq = self._load_version(version)
        items = self._install(model, version, seq)
        last = self.store.user_last_seqs()
        users = _live_ids(self._live.model.user_ids_)
        users.sort(key=lambda u: last.get(u, -1))
        with self._ingest_lock:
            self._recent = collections.OrderedDict.fromkeys(users)
            self._evict()
            self._evicted = []  # the trainer is copied from the live model below
        # The trainer: a copy that learns every stored event (the learner thread).
        self._trainer = copy.deepcopy(self._live.model)
        self._learner = OnlineLearner(
            self._trainer, batch_size=self.config.learner_batch, train_inline=False
        )
        self._trainer_seq = seq
        self._line_version = version
        self._fresh = [str(i) for i in items["item_id"].tolist()[-1000:]]

    # --------------------------------------------------------------- model swap
    def _build_index(self, model: Recommender) -> ItemIndex | None:
        if not _has_vectors(model):
            return None
        ids, vectors = model.item_vectors()
        cfg = self.config
        return ItemIndex(
            ann_threshold=cfg.ann_threshold,
            m=cfg.hnsw_m,
            ef_search=cfg.hnsw_ef_search,
            exact_head=cfg.hnsw_exact_head,
            max_delta=cfg.index_max_delta,
        ).build(ids, vectors)

    @staticmethod
    def _categories(items: pd.DataFrame) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for item_id, cats in zip(items["item_id"], items["categories"], strict=True):
            for c in cats or ():
                out.setdefault(str(c), set()).add(str(item_id))
        return out

    def _install(self, model: Recommender, version: str, seq: int) -> pd.DataFrame:
        """Catch ``model`` up with the store's events after ``seq`` and make it live.
        Returns the catalogue it read (once: a million-item catalogue is seconds of
        JSON decoding)."""
        # Most of the catch-up outside the ingestion lock, the rest under it.
        while True:
            missed = self.store.read(after_seq=seq, limit=_READ_CHUNK)
            if len(missed) < _READ_CHUNK:
                break
            model.observe(missed[list(EVENT_COLUMNS)])
            seq = int(missed["seq"].iloc[-1])
        items = self.store.items()
        _catch_up_items(model, items)
        index = self._build_index(model)
        categories = self._categories(items)
        with self._ingest_lock:
            missed = self.store.read(after_seq=seq)
            if len(missed):
                model.observe(missed[list(EVENT_COLUMNS)])
            if self.store.n_items != len(items):  # new items were upserted meanwhile
                items = self.store.items()
                added = _catch_up_items(model, items)
                categories = self._categories(items)
                if index is not None and added:
                    index.upsert(*model.item_vectors(added))
            _discard_online_material(model)
            if self._recent:
                # Users in memory follow the live model's: the ones it had evicted stay
                # out (they come back from the store when active again).
                recent = self._recent
                users = _live_ids(model.user_ids_)
                evicted = [u for u in users if u not in recent]
                if evicted:
                    model.forget_users(evicted)
                held = set(users)
                for u in [u for u in recent if u not in held]:
                    del recent[u]
            popular = _popularity(model, _POPULAR)
            live_items = {i for i in model.item_ids_ if isinstance(i, str)}
            with self._model_lock:
                self._live = _Live(model, version, index, categories, popular, live_items)
        self._cc.champion_, self._cc.champion_version_ = model, version
        return items

    # ------------------------------------------------------------------- events
    def ingest(self, events: Any, event_ids: Sequence[str | None] | None = None) -> dict[str, int]:
        """Store events durably, then update their users' state at once.

        Parameters
        ----------
        events
            One event (a dict), a list of dicts or a DataFrame in the event schema
            (``user_id, item_id, timestamp``; ``event_type``, ``value`` optional).
        event_ids
            Optional idempotency keys, one per event (``None`` for none): an event whose
            key is already stored is acknowledged again but not stored twice.

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
        cols, _ = online_events(events)
        n = len(cols["user_id"])
        if n > self.config.max_batch:
            raise DataError(
                "too many events in one batch",
                column="events",
                value=n,
                expected=f"at most {self.config.max_batch} events per request",
            )
        if event_ids is not None and len(event_ids) != n:
            raise DataError(
                "event_ids and events differ in length",
                column="event_ids",
                value=len(event_ids),
                expected=f"{n} (one per event, None for no key)",
            )
        types = cols["event_type"]
        if self.event_types:
            bad = [j for j, t in enumerate(types) if t not in self.event_types]
            if bad:
                raise DataError(
                    "unknown event type",
                    column="event_type",
                    value=f"{types[bad[0]]!r} in event {bad[0]} (0-based position)",
                    expected=f"one of {sorted(self.event_types)} (the service setting "
                    "event_types lists the accepted types)",
                )
        frame = pd.DataFrame({c: cols[c] for c in EVENT_COLUMNS})
        with self._ingest_lock:
            before = self.store.last_seq
            result = self.store.append(frame, event_ids)
            if result.n_written:
                # The rows given a new seq, each once (a key repeated in the batch
                # shares its first row's seq): what was written, without reading back.
                seqs = np.asarray(result.seqs)
                new = (seqs > before) & ~pd.Series(seqs).duplicated().to_numpy()
                written = frame[new]
                live = self._live
                users = written["user_id"].unique().tolist()
                rows = live.model.user_rows(users)
                absent = [u for u, r in zip(users, rows, strict=True) if r < 0]
                if absent:
                    # Users the live model does not hold (new, or evicted): their recent
                    # stored events, which include these, restore them.
                    mine = written["user_id"].isin(set(absent)).to_numpy()
                    past = self.store.recent_events(absent, self.config.rehydrate_events)
                    had = past["user_id"].value_counts()
                    now = written.loc[mine, "user_id"].value_counts().reindex(had.index)
                    self.counters["users_restored"] += int((had > now.fillna(0)).sum())
                    written = pd.concat(
                        [written[~mine], past[list(EVENT_COLUMNS)]], ignore_index=True
                    )
                with self._model_lock:
                    live.model.observe(written)
                    _discard_online_material(live.model)
                    live.forget_vectors(users)
                self._touch(users)
        self.counters["events_ingested"] += result.n_written
        self.counters["events_duplicate"] += result.n_duplicates
        return {
            "n_received": n,
            "n_written": int(result.n_written),
            "n_duplicates": int(result.n_duplicates),
            "last_seq": int(result.last_seq),
        }

    def _touch(self, users: Sequence[str]) -> None:
        """Mark users as just active and evict the least recently active when the live
        model holds more than ``max_users`` (the ingestion lock is held)."""
        recent = self._recent
        for u in users:
            recent[u] = None
            recent.move_to_end(u)
        self._evict()

    def _evict(self) -> None:
        """Evict the least recently active users down to 90 % of ``max_users`` from the
        live model (their events stay in the store); the trainer follows in the learner
        thread. The ingestion lock is held."""
        cap = self.config.max_users
        if not cap or len(self._recent) <= cap:
            return
        n = len(self._recent) - int(cap * 0.9)
        old = [self._recent.popitem(last=False)[0] for _ in range(n)]
        live = self._live
        with self._model_lock:
            live.model.forget_users(old)
            live.forget_vectors(old)
        self._evicted.extend(old)
        self.counters["users_evicted"] += len(old)
        log.info("evicted %d least recently active users from memory (max_users=%d)", n, cap)

    def _restore(self, user_id: str) -> bool:
        """Bring a user the live model does not hold back from their stored events (after
        an eviction); whether there were any."""
        past = self.store.recent_events([user_id], self.config.rehydrate_events)
        if not len(past):
            return False
        with self._ingest_lock:
            live = self._live
            if live.model.user_rows([user_id])[0] >= 0:
                return True  # an event or another request restored them meanwhile
            past = self.store.recent_events([user_id], self.config.rehydrate_events)
            if not len(past):
                return False  # erased meanwhile
            with self._model_lock:
                live.model.observe(past[list(EVENT_COLUMNS)])
                _discard_online_material(live.model)
                live.forget_vectors([user_id])
            self.counters["users_restored"] += 1
            self._touch([user_id])
        return True

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

        Returns a dict: ``user_id``, ``model_version``, ``cold_start`` (bool) and
        ``items`` (a list of ``{"item_id", "score"}``, with ``"reason"`` when ``explain``
        and ``"title"``, ``"categories"`` from the catalogue when ``details``).

        Raises
        ------
        UnknownIdError
            ``category`` names no item's category.
        ParameterError
            ``k`` is not a positive integer.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError("k", k, "a positive integer")
        live = self._live
        allowed = None
        if category is not None:
            allowed = live.categories.get(str(category))
            if allowed is None:
                raise UnknownIdError(
                    "category", [category], hint="no item of the catalogue has this category"
                )
        uid = str(user_id)
        if live.model.user_rows([uid])[0] < 0 and self._restore(uid):
            live = self._live
        model = live.model
        state = vector = None
        with self._model_lock:  # a copy of the user's state; the encoder runs unlocked
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
                with self._model_lock:
                    if live.encoding.get(uid) is token:
                        del live.encoding[uid]
                        if vector is not None:
                            live.vectors[uid] = vector
        if not known:
            ids, scores, reasons = self._cold_start(live, int(k), allowed)
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
            with self._model_lock:
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
                reasons = self._explain(live, history, ids)
            for item, reason in zip(items, reasons, strict=True):
                item["reason"] = reason
        if details:
            self._add_details(items)
        return {
            "user_id": str(user_id),
            "model_version": live.version,
            "cold_start": not known,
            "items": items,
        }

    def _cold_start(
        self, live: _Live, k: int, allowed: set[str] | None
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Popular items interleaved with the newest catalogue entries (the popularity
        ranking is computed when a model goes live and refreshed by the learner thread,
        not per request)."""
        popular = [(i, c, "popular") for i, c in live.popular if allowed is None or i in allowed][
            :k
        ]
        if allowed is not None and len(popular) < k:  # a rare category: look further
            popular = [(i, c, "popular") for i, c in _popularity(live.model, None) if i in allowed][
                :k
            ]
        fresh = []
        for i in reversed(self._fresh):
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

    def _explain(self, live: _Live, history: np.ndarray, ids: np.ndarray) -> list[str]:
        """For each recommended item, the item of the user's history whose vector is most
        similar to it (cosine), when the model has vectors."""
        model = live.model
        if not len(history) or not _has_vectors(model):
            return ["matches your history" for _ in ids]
        past = [str(i) for i in history[:50] if str(i) in live.item_set]
        if not past or not len(ids):
            return ["matches your history" for _ in ids]
        with self._model_lock:  # only the rows needed, not the whole table
            _, H = model.item_vectors(past)
            _, R = model.item_vectors([str(i) for i in ids])
        H = H / np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-12)
        R = R / np.maximum(np.linalg.norm(R, axis=1, keepdims=True), 1e-12)
        sims = R @ H.T  # (k, history)
        best = sims.argmax(axis=1)
        return [
            f"similar to {past[b]} (cosine {sims[j, b]:.2f})" for j, b in enumerate(best.tolist())
        ]

    def _add_details(self, items: list[dict[str, Any]]) -> None:
        """Each answer item's title and categories from the catalogue (``None`` and
        ``[]`` for an item without a catalogue entry)."""
        found = self.store.item_details([i["item_id"] for i in items])
        for item in items:
            title, cats = found.get(item["item_id"], (None, []))
            item["title"], item["categories"] = title, list(cats)

    def item(self, item_id: str) -> dict[str, Any]:
        """A catalogue entry: ``item_id``, ``title``, ``categories``, ``attributes``.

        Raises
        ------
        UnknownIdError
            The catalogue has no such item.
        """
        found = self.store.item(str(item_id))
        if found is None:
            raise UnknownIdError("item", [str(item_id)], hint="the catalogue has no such item")
        return found

    def similar(self, item_id: str, k: int = 10, details: bool = False) -> dict[str, Any]:
        """The ``k`` items closest to an item (with titles and categories when
        ``details``).

        Raises
        ------
        UnknownIdError
            The item is not in the live model.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError("k", k, "a positive integer")
        live = self._live
        if live.index is not None:
            ids, scores = live.index.similar(str(item_id), int(k))
        else:
            with self._model_lock:
                ids, scores = live.model.similar_items(str(item_id), k=int(k))
        ids, scores = _trim(ids, scores)
        items = [{"item_id": str(i), "score": float(s)} for i, s in zip(ids, scores, strict=True)]
        if details:
            self._add_details(items)
        return {"item_id": str(item_id), "model_version": live.version, "items": items}

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
        if (
            isinstance(items, (Mapping, str, bytes))
            or not isinstance(items, Sequence)
            or not items
        ):
            raise DataError(
                "items must be a non-empty list",
                column="items",
                value=type(items).__name__,
                expected="a list of dicts with item_id, title, categories, attributes",
            )
        if len(items) > self.config.max_batch:
            raise DataError(
                "too many items in one batch",
                column="items",
                value=len(items),
                expected=f"at most {self.config.max_batch} items per request",
            )
        records = []
        for j, item in enumerate(items):
            try:
                records.append(_item_record(item))
            except DataError as exc:
                raise DataError(
                    f"{exc.problem} in item {j} (0-based position)",
                    column=exc.column,
                    value=exc.value,
                    expected=exc.expected,
                ) from None
        frame = make_items(*(list(c) for c in zip(*records, strict=True)))
        # An id given twice: the later entry is the upsert that counts (as two requests).
        frame = frame[~frame["item_id"].duplicated(keep="last")].reset_index(drop=True)
        if not isinstance(wait, bool):
            raise ParameterError("wait", wait, "True or False")
        n_new, n_updated = self.store.upsert_items(frame)  # durable before anything else
        ticket: dict[str, Any] = {"frame": frame, "done": threading.Event()}
        with self._catalogue_mutex:
            self._catalogue_pending.append(ticket)
        self._catalogue_wake.set()
        if wait:
            if self._catalogue_thread is None:
                self._publish_items()
            ticket["done"].wait()
            if "error" in ticket:
                raise ticket["error"]
        return {
            "n_received": len(items),
            "n_created": int(n_new),
            "n_updated": int(n_updated),
            "live": ticket["done"].is_set() and "error" not in ticket,
        }

    def _catalogue_loop(self) -> None:
        while not self._stop.is_set():
            if self._catalogue_wake.wait(0.5):
                self._catalogue_wake.clear()
                try:
                    self._publish_items()
                except Exception:  # noqa: BLE001 - each waiting request got the error
                    log.exception("publishing catalogue items failed")

    def _publish_items(self) -> None:
        """Make stored catalogue upserts live, batching the requests that wait together:
        whoever holds the publishing lock takes every pending upsert, encodes their text
        in one batch outside the model locks (``prepare_items``), then installs them
        under the locks (``add_items`` finds the encodings cached). A request that waits
        for the lock usually finds its items published by the batch before."""
        with self._catalogue_leader:
            while True:
                with self._catalogue_mutex:
                    batch, self._catalogue_pending = self._catalogue_pending, []
                if not batch:
                    return
                frame = pd.concat([t["frame"] for t in batch], ignore_index=True)
                frame = frame[~frame["item_id"].duplicated(keep="last")].reset_index(drop=True)
                try:
                    with self._timed("items-publish"):
                        self._install_items(frame)
                except Exception as exc:  # each waiting request answers with it
                    log.exception("publishing %d catalogue item(s) failed", len(frame))
                    for t in batch:
                        t["error"] = exc
                finally:
                    for t in batch:
                        t["done"].set()

    def _install_items(self, frame: pd.DataFrame) -> None:
        ids = [str(i) for i in frame["item_id"]]
        self._live.model.prepare_items(frame)  # the text encoder, outside every lock
        with self._ingest_lock:
            live = self._live
            with self._model_lock:
                live.model.add_items(frame)
                _discard_online_material(live.model)
                if live.index is not None:
                    live.index.upsert(*live.model.item_vectors(ids))
                live.item_set.update(ids)
                for item_id, cats in zip(ids, frame["categories"], strict=True):
                    for c in _recategorise(live.categories, item_id, cats):
                        live.masks.pop(c, None)
            self._item_queue.append(frame)
            self._fresh.extend(ids)
            self._fresh = self._fresh[-1000:]

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
        uid = str(user_id)
        with self._erase_lock, self._learner.lock, self._ingest_lock:
            n = self.store.delete_user(uid)
            # Every event of the user is below this position now; registered versions
            # that learned less forget the user when loaded (and are rewritten).
            self.erasures.record(uid, int(self.store.last_seq) + 1)
            live = self._live
            with self._model_lock:
                erased = _forget(live.model, uid)
                live.forget_vectors([uid])
            erased = _forget(self._trainer, uid) or erased
            self._recent.pop(uid, None)
        if n == 0 and not erased:
            raise UnknownIdError("user", [uid], hint="no events or state of this user")
        return {"user_id": uid, "events_erased": int(n), "state_erased": bool(erased)}

    # ------------------------------------------------------------------- models
    def models(self) -> dict[str, Any]:
        """The registry's versions, its champion and the live version."""
        return {
            "champion": self.registry.champion(),
            "live": self._live.version,
            "versions": [v.to_dict() for v in self.registry.versions()],
        }

    def promote(self, version: Any, reason: str = "promoted through the API") -> dict[str, Any]:
        """Make a registered version the champion and serve it.

        Raises
        ------
        UnknownIdError
            No such version (the message names the versions there are, not where).
        """
        with self._erase_lock:
            try:
                info = self.registry.promote(version, reason=reason)
            except UnknownIdError:
                ids = [v.version for v in self.registry.versions()]
                span = f"{ids[0]}..{ids[-1]}" if ids else "none"
                raise UnknownIdError(
                    "version", [str(version)], hint=f"the registry holds versions {span}"
                ) from None
            self._serve_registry_champion()
        return info.to_dict()

    def rollback(self, reason: str = "rolled back through the API") -> dict[str, Any]:
        """Go back to the previous champion and serve it."""
        with self._erase_lock:
            info = self.registry.rollback(reason=reason)
            self._serve_registry_champion()
        return info.to_dict()

    def _serve_registry_champion(self) -> None:
        with self._erase_lock, self._swap_lock:
            version = self.registry.champion()
            if version == self._live.version:
                return
            model, seq = self._load_version(version)
            self._install(model, version, seq)

    def _load_version(self, version: str) -> tuple[Recommender, int]:
        """A registered model and the store position it had learned up to, without the
        users erased after that position (they come back only through newer events)."""
        model = self.registry.load(version)
        seq = int(self.registry.info(version).data.get("last_seq", 0))
        for uid in self.erasures.erased_among(_live_ids(model.user_ids_), seq):
            _forget(model, uid)
        return model, seq

    def _read_scrubbed(self) -> dict[str, int]:
        path = self.home / SCRUBBED_FILE
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in doc.items()} if isinstance(doc, dict) else {}

    def _scrub_registry(self, checks: int = 50) -> bool:
        """Check registered versions against the erasures logged since each was last
        checked (reading only their saved user ids), and rewrite at most one that holds
        a user erased after the store position it learned. The learner calls this every
        round until every version is checked against every erasure. Returns whether there
        was work."""
        if self.erasures.generation in (0, self._scrubbed_through):
            return False  # no erasure, or every version checked against every erasure
        with self._erase_lock, self._timed("scrub"):
            generation = self.erasures.generation
            todo = [
                v for v in self.registry.versions() if self._scrubbed.get(v.version, 0) < generation
            ]
            if not todo:
                self._scrubbed_through = generation
                return False
            for info in todo[:checks]:
                seq = int(info.data.get("last_seq", 0))
                saved = self.registry.saved_user_ids(info.version)
                erased = self.erasures.erased_among(saved, seq)
                if erased:
                    model = self.registry.load(info.version)
                    for uid in erased:
                        _forget(model, uid)
                    self.registry.rewrite(
                        info.version, model, reason=f"erased {len(erased)} user(s) on request"
                    )
                    self.counters["versions_scrubbed"] += 1
                    log.info(
                        "version %s rewritten without %d erased user(s)", info.version, len(erased)
                    )
                self._scrubbed[info.version] = generation
                if erased:
                    break  # one rewrite per round: the learner has other work too
            path = self.home / SCRUBBED_FILE
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(self._scrubbed, fh)
            os.replace(tmp, path)
        return True

    # ---------------------------------------------------------- the learner
    def start_learner(self) -> None:
        """Start the background learner thread and the catalogue thread that publishes
        item upserts (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._learn_loop, name="learner", daemon=True)
        self._thread.start()
        self._catalogue_thread = threading.Thread(
            target=self._catalogue_loop, name="catalogue", daemon=True
        )
        self._catalogue_thread.start()

    def _learn_loop(self) -> None:
        share = float(self.config.learner_share)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                busy = self.learn_step()
            except Exception:  # keep serving; the error is logged and counted
                log.exception("background learner step failed")
                self.counters["learner_errors"] += 1
                busy = False
            took = time.perf_counter() - t0
            if not busy:
                self._stop.wait(0.05)
            elif share < 1.0:
                self._stop.wait(took * (1.0 - share) / share)

    def learn_step(self, max_events: int = 5_000) -> bool:
        """One round of the background learner: feed the trainer the next events after
        its cursor, take the parameter steps that are due, and make or judge a
        challenger when one is due. Returns whether there was anything to do."""
        busy = False
        learner = self._learner
        if self._catalogue_thread is None and self._catalogue_pending:
            self._publish_items()  # background=False: upserts sent with wait=False
        if self._item_queue:
            with self._ingest_lock:
                queued, self._item_queue = self._item_queue, []
            with learner.lock, self._timed("items"):
                for frame in queued:
                    self._trainer.add_items(frame)
            busy = True
        generation = self.erasures.generation  # before the read: see the filter below
        with self._timed("read"):
            batch = self.store.read(after_seq=self._trainer_seq, limit=max_events)
        if len(batch):
            with self._timed("observe"), learner.lock:
                # A user erased since the read began was already forgotten by the trainer
                # (under this lock): their events in this batch must not bring them back.
                erased = self.erasures.since(generation)
                learn = batch
                if erased:
                    gone = self.erasures.erased_rows(batch["user_id"], batch["seq"], erased)
                    learn = batch[~np.asarray(gone, dtype=bool)]
                if len(learn):
                    learner.observe(learn[list(EVENT_COLUMNS)])
                self._trainer_seq = int(batch["seq"].iloc[-1])
            self._learned_since += len(batch)
            busy = True
        if self._evicted:
            with self._ingest_lock:
                evicted = [u for u in self._evicted if u not in self._recent]
                self._evicted = []
            with learner.lock:
                self._trainer.forget_users(evicted)
        with self._timed("train"):
            if learner.train_pending():
                busy = True
        with self._timed("challenge"):
            challenged = self._challenge()
        with self._timed("index"):
            compacted = self._compact_index()
        scrubbed = self._scrub_registry()
        return challenged or compacted or scrubbed or self._refresh() or busy

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        """Time a learner phase: the last and the longest duration, for /health."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - t0
            last, longest = self.timings.get(phase, (0.0, 0.0))
            self.timings[phase] = (took, max(longest, took))
            if took > 1.0:
                log.info("learner %s took %.2f s", phase, took)

    def _refresh(self) -> bool:
        """Every ``_REFRESH_SECONDS``: the popularity ranking of cold-start answers."""
        now = time.monotonic()
        if now - self._refreshed_at < _REFRESH_SECONDS:
            return False
        self._refreshed_at = now
        live = self._live
        with self._model_lock:
            popular = _popularity(live.model, _POPULAR)
            if self._live is live:
                self._live = dataclasses.replace(live, popular=popular)
        return False  # cheap: not a reason to skip the pause

    def _compact_index(self) -> bool:
        """Swap in a rebuilt index once upserts have piled up beside the HNSW graph (the
        index replays writes made during the build, so none is lost)."""
        live = self._live
        if live.index is None or not live.index.needs_rebuild:
            return False
        fresh = live.index.rebuilt()
        with self._model_lock:
            if self._live is live:  # masks belong to an index object: start afresh
                self._live = dataclasses.replace(live, index=fresh, masks={})
        return True

    def _challenge(self) -> bool:
        cfg = self.config
        if cfg.challenger_every == 0:
            return False
        learner = self._learner
        if self._snapshot is None:
            if self._learned_since < cfg.challenger_every:
                return False
            if time.monotonic() - self._challenged_at < cfg.challenger_min_seconds:
                return False
            with learner.lock:
                learner.flush()
                self._snapshot = (copy.deepcopy(self._trainer), self._trainer_seq)
            self._learned_since = 0
            return True
        challenger, seq = self._snapshot
        holdout = self._holdout(seq)
        if holdout is None:
            return False
        start = max(0, seq - cfg.history_events)
        history = self.store.read(after_seq=start, limit=seq - start)
        history = history[history["seq"] <= seq]
        with self._swap_lock:
            return self._judge(challenger, seq, holdout, history)

    def _holdout(self, seq: int) -> pd.DataFrame | None:
        """The held-out slice after ``seq`` the gate can decide on: the first
        ``holdout_events`` events, grown until they hold ``gate_min_users`` distinct
        users and ``gate_min_items`` distinct items; ``None`` while the store has not
        got there yet. At ``holdout_max_events`` without enough of either the snapshot
        is dropped (a burst of events on a few items or from a few users is no ground to
        judge on)."""
        cfg = self.config
        holdout = self.store.read(after_seq=seq, limit=cfg.holdout_max_events)
        if len(holdout) < cfg.holdout_events:
            return None
        users = ~holdout["user_id"].duplicated().to_numpy()
        items = ~holdout["item_id"].duplicated().to_numpy()
        n_users, n_items = np.cumsum(users), np.cumsum(items)
        enough = (
            (np.arange(1, len(holdout) + 1) >= cfg.holdout_events)
            & (n_users >= cfg.gate_min_users)
            & (n_items >= cfg.gate_min_items)
        )
        if enough.any():
            return holdout.iloc[: int(np.argmax(enough)) + 1]
        if len(holdout) >= cfg.holdout_max_events:
            log.warning(
                "challenger dropped unjudged: %d held-out events hold %d users and %d items "
                "(the gate needs %d and %d)",
                len(holdout),
                int(n_users[-1]),
                int(n_items[-1]),
                cfg.gate_min_users,
                cfg.gate_min_items,
            )
            self._snapshot = None
            self._challenged_at = time.monotonic()
            self.counters["challengers_dropped"] += 1
        return None

    def _judge(
        self,
        challenger: Recommender,
        seq: int,
        holdout: pd.DataFrame,
        history: pd.DataFrame,
    ) -> bool:
        ev = pd.concat([history, holdout], ignore_index=True)
        ts = ev["timestamp"]
        self._cc.champion_, self._cc.champion_version_ = self._live.model, self._live.version
        held = contextlib.ExitStack()

        def scrub(model: Recommender) -> None:
            # From here until the model is registered and (if promoted) live, no erasure
            # can happen; users erased after the position it learned are removed now
            # (erased after the snapshot was taken; the trainer forgot earlier ones).
            held.enter_context(self._erase_lock)
            for uid in self.erasures.erased_among(_live_ids(model.user_ids_), seq):
                _forget(model, uid)

        with held:
            record = self._cc.consider(
                challenger,
                holdout[list(EVENT_COLUMNS)],
                history[list(EVENT_COLUMNS)],
                parent=self._line_version,
                window=(int(ts.min()), int(ts.max())) if len(ts) else None,
                data={
                    "last_seq": int(seq),
                    "n_holdout": len(holdout),
                    "erasure_generation": int(self.erasures.generation),
                },
                tags={"source": "online learner"},
                prepare=scrub,
            )
            self._snapshot = None
            self._challenged_at = time.monotonic()
            self._line_version = record["version"]
            self.counters["challengers"] += 1
            # Registered after every erasure so far: nothing for the scrubber to check.
            self._scrubbed[record["version"]] = self.erasures.generation
            if record["promoted"]:
                self._install(challenger, record["version"], seq)
                self.counters["promotions"] += 1
            else:
                # the champion object must not be the one the gate just saw replaced
                self._cc.champion_, self._cc.champion_version_ = (
                    self._live.model,
                    self._live.version,
                )
        log.info("challenger %s: %s", record["version"], record["reason"])
        return True

    # ------------------------------------------------------------------- status
    @property
    def live_version(self) -> str:
        """The registry version serving now."""
        return self._live.version

    def learner_stats(self) -> dict[str, Any]:
        """The online learner's counters (``OnlineStats.as_dict``)."""
        return self._learner.stats.as_dict()

    def lag(self) -> dict[str, float]:
        """The online learner's distance to the newest stored event."""
        last = int(self.store.last_seq)
        behind = max(0, last - int(self._trainer_seq)) + int(self._learner.n_pending)
        return {"events": float(behind)}

    def health(self) -> dict[str, Any]:
        live = self._live
        return {
            "status": "ok",
            "model_version": live.version,
            "model": type(live.model).__name__,
            "n_items": int(len(live.index) if live.index is not None else live.model.n_items),
            "n_users": int(live.model.n_users),
            "n_events": int(self.store.n_events),
            "index": None if live.index is None else live.index.kind,
            "learner_running": bool(self._thread is not None and self._thread.is_alive()),
            "learner_lag_events": self.lag()["events"],
            "learner_phase_seconds": {
                k: {"last": round(v[0], 4), "max": round(v[1], 4)} for k, v in self.timings.items()
            },
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "event_types": sorted(self.event_types),
            "erasures": int(self.erasures.generation),
            "counters": {k: int(v) for k, v in self.counters.items()},
            "config": asdict(self.config),
        }

    def close(self) -> None:
        """Stop the learner thread and close the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._catalogue_thread is not None:
            self._catalogue_thread.join(timeout=30)
        self.store.close()

    def __enter__(self) -> RecommenderService:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------ helpers
def _discard_online_material(model: Recommender) -> None:
    """The live model observes for its state only; it never trains."""
    if getattr(model, "n_online_pending", 0):
        model.online_step(0)


def _make_private(home: Path) -> None:
    """Files of a home folder made by an older version may be readable by others:
    personal data (events, erasures) and keys are the owner's only (mode 0600)."""
    names = (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", CONFIG_FILE)
    for name in (*names, "keys.json", "erasures.jsonl", "erasure.key", SCRUBBED_FILE):
        path = home / name
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)


def _live_ids(ids: Sequence[Any]) -> list[str]:
    """The ids of a model's vocabulary that name a user or item (not a free row)."""
    return [i for i in ids if isinstance(i, str)]


def _forget(model: Recommender, user_id: str) -> bool:
    if int(model.user_rows([user_id])[0]) < 0:
        return False
    return bool(model.forget_users([user_id]))


def _user_items(model: Recommender, row: int) -> np.ndarray:
    X = model.user_items_
    cols = X.indices[X.indptr[row] : X.indptr[row + 1]]
    return np.asarray(model.item_ids_, dtype=object)[cols]


def _recategorise(categories: dict[str, set[str]], item_id: str, names: Sequence[str]) -> list[str]:
    """Put ``item_id`` in exactly the categories ``names`` (an upsert may change them);
    returns the categories it left or joined."""
    wanted = {str(c) for c in names}
    changed = []
    for c, members in categories.items():
        if c not in wanted and item_id in members:
            members.discard(item_id)
            changed.append(c)
    for c in wanted:
        members = categories.setdefault(c, set())
        if item_id not in members:
            members.add(item_id)
            changed.append(c)
    return changed


def _popularity(model: Recommender, top: int | None) -> list[tuple[str, float]]:
    """The live items by event count, most first (ties: row order), the first ``top``."""
    ids = np.asarray(model.item_ids_, dtype=object)
    counts = np.asarray(model.item_counts_, dtype=np.float64)[: len(ids)]
    live = np.fromiter((isinstance(i, str) for i in ids), bool, len(ids))
    counts = np.where(live, counts, -np.inf)
    n = int(live.sum()) if top is None else min(int(top), int(live.sum()))
    if n == 0:
        return []
    part = np.argpartition(-counts, n - 1)[:n] if n < len(ids) else np.arange(len(ids))
    order = part[np.lexsort((part, -counts[part]))][:n]
    return [(str(ids[j]), float(counts[j])) for j in order]


def _item_record(item: Mapping[str, Any]) -> tuple[str, str | None, list[str], dict[str, Any]]:
    """One catalogue entry, checked field by field: ``(item_id, title, categories,
    attributes)``."""
    if not isinstance(item, Mapping):
        raise DataError(
            "an item must be a mapping",
            value=type(item).__name__,
            expected="a dict with item_id, title, categories, attributes",
        )
    item_id = item.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise DataError(
            "missing or empty item id",
            column="item_id",
            value=item_id,
            expected="a non-empty string",
        )
    title = item.get("title")
    if title is not None and not isinstance(title, str):
        raise DataError(
            "title is not text", column="title", value=title, expected="a string or null"
        )
    cats = item.get("categories") or []
    if (
        isinstance(cats, str)
        or not isinstance(cats, Sequence)
        or not all(isinstance(c, str) and c for c in cats)
    ):
        raise DataError(
            "categories are not a list of names",
            column="categories",
            value=cats,
            expected="a list of non-empty strings",
        )
    attrs = item.get("attributes") or {}
    if not isinstance(attrs, Mapping) or not all(isinstance(k, str) for k in attrs):
        raise DataError(
            "attributes are not a mapping",
            column="attributes",
            value=attrs,
            expected="an object of name -> value",
        )
    return item_id, title, list(cats), dict(attrs)


def _catch_up_items(model: Recommender, items: pd.DataFrame) -> list[str]:
    """Give ``model`` the catalogue items it has no row for; returns their ids."""
    if not len(items):
        return []
    known = set(np.asarray(model.item_ids_, dtype=object).tolist())
    new = items[~items["item_id"].isin(known)]
    if len(new):
        model.add_items(new.reset_index(drop=True))
    return [str(i) for i in new["item_id"]]


def _trim(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=object)
    scores = np.asarray(scores, dtype=np.float32)
    keep = np.fromiter((i is not None for i in ids), bool, len(ids)) & np.isfinite(scores)
    return ids[keep], scores[keep]
