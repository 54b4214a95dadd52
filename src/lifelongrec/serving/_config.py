"""The settings of a :class:`~lifelongrec.serving.RecommenderService`, grouped by concern.

:class:`ServiceConfig` holds the model trained on a first start and one group of
settings per concern: ``store`` (the data of a first start, the accepted event types),
``index`` (the retrieval index), ``learner`` (the background learner and its
challengers), ``gate`` (the promotion gate and its held-out slice), ``limits`` (request
sizes), ``users`` (users kept in memory), ``feedback`` (impressions and online metrics)
and ``experiments`` (online experiments).

Every setting also has a flat name (``learner_batch``, ``gate_min_users``,
``max_users``, ...): the name the docs, ``--config`` files and the ``service.json`` of a
home folder use. :meth:`ServiceConfig.from_dict` reads flat names, groups
(``{"learner": {"batch": 64}}``) or both; :meth:`ServiceConfig.to_dict` writes the flat
form (so an older version can still read the settings a newer one saved), and
``config.max_users`` reads a setting by its flat name too.

Each field declares its constraint beside its default (``_setting``), a
:class:`~lifelongrec._params.Constraint` of the package's one parameter mechanism (so the
messages read as everywhere else); one :meth:`ServiceConfig.check_params` (or
:meth:`ServiceConfig.validate`, which returns the config) checks them all and names the
flat setting in its error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from lifelongrec._errors import ParameterError
from lifelongrec._params import Boolean, Constraint, Integer, Number, OneOf, Satisfies
from lifelongrec.data import is_bus_url, is_store_url
from lifelongrec.registry import PromotionGate

__all__ = [
    "CLICK_TYPES",
    "ExperimentSettings",
    "FeedbackSettings",
    "GateSettings",
    "IndexSettings",
    "LearnerSettings",
    "LimitSettings",
    "PRIORITIES",
    "STANDARD_EVENT_TYPES",
    "ServiceConfig",
    "StoreSettings",
    "UserSettings",
]

#: How a learner process yields the CPU to the services (``LearnerSettings.priority``,
#: ``lifelongrec learn --priority``; see
#: :func:`~lifelongrec.serving._learner_process.lower_priority`).
PRIORITIES = ("idle", "nice")

#: Event types every service accepts (with those of its first data; see
#: ``StoreSettings.event_types``).
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


# ------------------------------------------------------------------ constraints
class _Plain(Constraint):
    """A shared constraint on plain Python values only: the settings are written to
    ``service.json`` as they are, so a NumPy number (which JSON cannot hold) is refused."""

    def __init__(self, constraint: Constraint, *types: type) -> None:
        self.constraint, self.types = constraint, types
        self.expected = constraint.expected

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types) and self.constraint.accepts(value)


def _integer(low: int) -> Constraint:
    return _Plain(Integer(low), int)


_NON_NEGATIVE = _Plain(Number(0), int, float)
_SHARE = _Plain(Number(0, 1, low_open=True), int, float)
_FLAG = _Plain(Boolean(), bool)
_HYPERPARAMETERS = Satisfies(lambda v: isinstance(v, Mapping), "a dict of hyperparameters")
_EVENT_TYPES = Satisfies(
    lambda v: (
        v is None
        or (
            isinstance(v, (list, tuple))
            and bool(v)
            and all(isinstance(t, str) and 0 < len(t) <= 64 for t in v)
        )
    ),
    "None or a non-empty list of names (1-64 characters)",
)
_STORE_URL = Satisfies(
    lambda v: v is None or is_store_url(v),
    "None (the embedded SQLite store) or a postgresql:// URL",
)
_BUS_URL = Satisfies(lambda v: v is None or is_bus_url(v), "None (no bus) or a redis:// URL")
#: The gate's own constraints, named here by their flat names.
_GATE = PromotionGate.constraints()


def _setting(
    default: Any = dataclasses.MISSING,
    check: Constraint | None = None,
    *,
    flat: str | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A field with its constraint and its flat name (default: the field's name)."""
    meta = {"check": check, "flat": flat}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _flat_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flat") or f.name


class _Group:
    """A group of settings: checks its fields' declared constraints."""

    def check_params(self) -> None:
        """Raise :class:`~lifelongrec.ParameterError` naming (by its flat name) the first
        setting that breaks its declared constraint, then the group's rules over several
        settings."""
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                check.check(_flat_name(f), getattr(self, f.name))
        self._check_params()

    def _check_params(self) -> None:
        """Rules over several settings of the group (override)."""

    def validate(self) -> None:
        """The same as :meth:`check_params`."""
        self.check_params()


# ----------------------------------------------------------------------- groups
@dataclass
class StoreSettings(_Group):
    """The data of a first start and what the store accepts.

    Attributes
    ----------
    synthetic_events, seed
        Size and seed of the synthetic world when the data source is ``synthetic``.
    event_types
        The event types ``ingest`` accepts (others are a 422 naming the field); ``None``:
        :data:`STANDARD_EVENT_TYPES` plus every type in the store when the service opens
        (so the types of the first data are in).
    url
        Where the event log, catalogue and impressions live (flat name ``store_url``):
        ``None``, the embedded SQLite file ``HOME/events.sqlite``; or a PostgreSQL URL,
        ``postgresql://user@host:port/database?schema=name`` (see
        :class:`~lifelongrec.data.PostgresEventStore`), which API processes on several
        machines share. A home folder keeps the store it started with.
    bus
        The event bus (flat name ``bus_url``): ``None``, none (API processes and the
        learner follow the store); or a Redis URL, ``redis://host:port/db?stream=key``
        (see :class:`~lifelongrec.data.RedisEventBus`): each API process publishes what
        it stored there, the others and the learner take it from there at once (the
        store stays the log of record: what the bus misses is read from it).
    """

    synthetic_events: int = _setting(20_000, _integer(1))
    seed: int = _setting(0)
    event_types: list[str] | None = _setting(None, _EVENT_TYPES)
    url: str | None = _setting(None, _STORE_URL, flat="store_url")
    bus: str | None = _setting(None, _BUS_URL, flat="bus_url")


@dataclass
class IndexSettings(_Group):
    """The retrieval index.

    Attributes
    ----------
    ann_threshold
        Catalogues of more items than this are searched through a FAISS HNSW index;
        smaller ones exactly.
    hnsw_m, hnsw_ef_search
        HNSW graph degree and search breadth (256: with a trained model's item vectors
        at 100k items, a breadth of 128 fell short of the recall against exact search
        wanted once seen items are excluded; the measurements: docs/benchmarks.md, the
        "Service load test" and "Retrieval index" sections).
    hnsw_exact_head
        Item vectors of largest norm scored exactly beside every HNSW search (see
        :class:`~lifelongrec.serving.ItemIndex`, ``exact_head``): the graph walk misses
        large-norm answers, most of all on a large catalogue, and this head of 10,000
        recovers nearly all of them (the figures: docs/benchmarks.md, "Retrieval index:
        the exact head").
    max_delta (flat name ``index_max_delta``)
        Item upserts kept beside the HNSW graph before the learner thread rebuilds it.
    """

    ann_threshold: int = _setting(50_000, _integer(1))
    hnsw_m: int = _setting(32, _integer(2))
    hnsw_ef_search: int = _setting(256, _integer(1))
    hnsw_exact_head: int = _setting(10_000, _integer(0))
    max_delta: int = _setting(10_000, _integer(1), flat="index_max_delta")


@dataclass
class LearnerSettings(_Group):
    """The background learner and the challengers it makes.

    Attributes
    ----------
    background
        Run the background learner thread (``False``: call :meth:`RecommenderService.
        learn_step` yourself, e.g. in tests).
    batch (flat name ``learner_batch``)
        Events per online parameter update.
    share (flat name ``learner_share``)
        Largest share of one core the learner thread may take while it has work, in
        ``(0, 1]``: after a round that took ``t`` seconds it pauses ``t * (1 - share) /
        share``. As a thread (``learner_mode="thread"``) the learner shares the
        process (and Python's GIL) with requests; at 1.0 it runs flat out and request
        latency suffers on a small machine. In its own process it also runs at a lower
        scheduling priority than the service.
    challenger_every
        Learned events between challengers (0: never make one).
    challenger_min_seconds
        ... and at least this many seconds between them: judging and swapping in a
        model (gate, registry write, index build) is a burst of work; once every few
        minutes is plenty for a live service.
    mode (flat name ``learner_mode``)
        Where the background learner runs: ``"process"`` (default: the service starts
        ``lifelongrec learn`` beside itself, supervises it, and serves the champions it
        promotes; training never takes the request path's interpreter), ``"thread"``
        (in the service's own process, sharing its GIL) or ``"external"`` (started on
        its own, ``lifelongrec learn --home HOME``; the service only follows the
        champion). Only read with ``background=True``.
    priority (flat name ``learner_priority``)
        How the learner process a service starts (``mode="process"``) yields the CPU to
        the services: ``"idle"`` (default; Linux's ``SCHED_IDLE`` policy and nice +10 on
        every thread) runs it only on CPU time the services leave, and a request's
        thread that wakes up preempts it at once; ``"nice"`` (nice +10 only) keeps it a
        small share of the CPU even when the services take all of it, at the cost of
        request latency: at 100k items, 120 requests/s and 2,000 events/s fed on 2
        cores, the 99th percentile was 14.1-15.5 ms with ``"idle"`` against 15.9-24.5 ms
        with ``"nice"``, the learner training as many events (docs/capacity.md).
        Where the services keep every core busy, an ``"idle"`` learner falls behind
        (its lag shows in ``/health``); on a platform without ``SCHED_IDLE``,
        ``"idle"`` is ``"nice"``. A ``lifelongrec learn`` started by hand takes
        ``--priority`` (default ``idle``).
    """

    background: bool = _setting(True, _FLAG)
    mode: str = _setting(
        "process", _Plain(OneOf("process", "thread", "external"), str), flat="learner_mode"
    )
    priority: str = _setting("idle", _Plain(OneOf(*PRIORITIES), str), flat="learner_priority")
    batch: int = _setting(256, _integer(1), flat="learner_batch")
    share: float = _setting(0.5, _SHARE, flat="learner_share")
    challenger_every: int = _setting(5_000, _integer(0))
    challenger_min_seconds: float = _setting(600.0, _NON_NEGATIVE)


@dataclass
class GateSettings(_Group):
    """The promotion gate and the held-out slice it judges a challenger on.

    Attributes
    ----------
    metric, tolerance (flat names ``gate_metric``, ``gate_tolerance``)
        The promotion gate (see :class:`~lifelongrec.registry.PromotionGate`).
    min_users, min_items (flat names ``gate_min_users``, ``gate_min_items``)
        The fewest distinct users and items a held-out slice needs before the gate may
        decide on it (a burst of events on one item made a slice on which every model
        scored NDCG 1.0, and a challenger was promoted on the tie).
    holdout_events
        Fresh events a challenger is judged on (events it never learned).
    holdout_max_events
        How far the held-out slice may grow while it lacks ``min_users`` distinct users
        or ``min_items`` distinct items; a challenger whose slice is still degenerate at
        this size is dropped unjudged (and logged), and a new one is made later.
    history_events
        Past events the gate's held-out queries are ranked from.
    """

    metric: str = _setting("ndcg@10", _GATE["metric"], flat="gate_metric")
    tolerance: float = _setting(0.0, _GATE["tolerance"], flat="gate_tolerance")
    min_users: int = _setting(20, _integer(1), flat="gate_min_users")
    min_items: int = _setting(20, _integer(1), flat="gate_min_items")
    holdout_events: int = _setting(1_000, _integer(1))
    holdout_max_events: int = _setting(10_000, _integer(1))
    history_events: int = _setting(50_000, _integer(1))

    def _check_params(self) -> None:
        if self.holdout_max_events < self.holdout_events:
            raise ParameterError(
                "holdout_max_events",
                self.holdout_max_events,
                f"an integer >= holdout_events ({self.holdout_events})",
            )
        self.promotion_gate().validate()

    def promotion_gate(self) -> PromotionGate:
        """The promotion gate these settings describe."""
        return PromotionGate(
            self.metric, self.tolerance, min_users=self.min_users, min_items=self.min_items
        )


@dataclass
class LimitSettings(_Group):
    """Request sizes, and the priority of reads over writes.

    Attributes
    ----------
    max_batch
        Most events (or catalogue items) in one ``ingest`` (``upsert_items``) call.
    read_priority_ms
        Longest one step of ingestion (the store write, each part the live model
        observes) waits for the serving reads in flight (GET ``/users/...`` and
        ``/items/...``) to finish, in milliseconds; ``0``: ingestion never waits. Reads
        then never share the interpreter with a batch of events, which is what keeps
        the recommendation tail short under a steady event feed (docs/service.md).
    """

    max_batch: int = _setting(10_000, _integer(1))
    read_priority_ms: float = _setting(20.0, _NON_NEGATIVE)


@dataclass
class UserSettings(_Group):
    """Users kept in memory.

    Attributes
    ----------
    max_users
        The most users whose state (recent events, seen items, cached vector) the
        service keeps in memory (0: no cap). Above it the least recently active tenth is
        evicted from the live model and the trainer; their events stay in the store,
        and a user who comes back (an event or a recommendation request) is restored
        from their ``rehydrate_events`` most recent stored events. This is what bounds
        memory under a flood of new user ids (how far: docs/service.md, "Memory", and
        docs/benchmarks.md, "Memory under a flood of new users").
    rehydrate_events
        How many of a returning user's most recent stored events restore their state.
    """

    max_users: int = _setting(100_000, _integer(0))
    rehydrate_events: int = _setting(200, _integer(1))


#: Event types that count as a click on a shown item (``click_types``): every standard
#: type that engages with the item (not ``impression``, ``search``,
#: ``remove_from_cart``, ``dislike`` or ``skip``).
CLICK_TYPES = (
    "interaction",
    "view",
    "click",
    "cart",
    "add_to_cart",
    "wishlist",
    "purchase",
    "rating",
    "review",
    "like",
    "share",
    "play",
)
_TYPES = Satisfies(
    lambda v: (
        isinstance(v, (list, tuple)) and all(isinstance(t, str) and 0 < len(t) <= 64 for t in v)
    ),
    "a list of event type names (1-64 characters)",
)


@dataclass
class FeedbackSettings(_Group):
    """Impressions and the online metrics of the feedback they get.

    Attributes
    ----------
    log_impressions
        Log every answer's items (request id, user, item, rank, score, model version,
        arm, time) to the store, off the request path.
    flush_seconds (flat name ``impression_flush_seconds``)
        How often the impression thread stores the buffer: a crash of the process loses
        about this long of impressions while the store keeps up, and the backlog when it
        does not (up to ``buffer`` rows; events are never lost: they are stored before
        the reply; impressions are committed without an fsync, so a power loss may also
        take back those stored since the last event write or checkpoint).
    flush_rows (flat name ``impression_flush_rows``)
        A buffer this long is stored at once, before the interval is up.
    buffer (flat name ``impression_buffer``)
        The most impressions buffered; beyond it they are counted as dropped
        (``impressions_dropped``) instead of growing memory.
    attribution_window
        Seconds after an impression in which a feedback event on its item without a
        ``request_id`` is attributed to it (the latest such impression).
    click_types, conversion_types
        Event types that count as a click on a shown item (default
        :data:`CLICK_TYPES`), and as a conversion (default ``["purchase"]``).
    """

    log_impressions: bool = _setting(True, _FLAG)
    flush_seconds: float = _setting(
        1.0, _Plain(Number(0, low_open=True), int, float), flat="impression_flush_seconds"
    )
    flush_rows: int = _setting(5_000, _integer(1), flat="impression_flush_rows")
    buffer: int = _setting(200_000, _integer(1), flat="impression_buffer")
    attribution_window: int = _setting(86_400, _integer(0))
    click_types: list[str] = _setting(check=_TYPES, factory=lambda: list(CLICK_TYPES))
    conversion_types: list[str] = _setting(check=_TYPES, factory=lambda: ["purchase"])


@dataclass
class ExperimentSettings(_Group):
    """Online experiments (``POST /experiments``).

    Attributes
    ----------
    tick_seconds (flat name ``experiment_tick_seconds``)
        How often the experiment thread looks at the running experiment (its verdict,
        an automatic promotion or stop) and stores its counts: a crash loses at most
        this long of counts.
    track_requests (flat name ``experiment_track_requests``)
        The most experiment answers remembered for attributing the clicks that follow
        them (the oldest are forgotten first; a click on a forgotten answer is not
        counted).
    min_impressions (flat name ``experiment_min_impressions``)
        The default of an experiment's ``min_impressions``: impressions every arm needs
        before any decision.
    """

    tick_seconds: float = _setting(
        5.0, _Plain(Number(0, low_open=True), int, float), flat="experiment_tick_seconds"
    )
    track_requests: int = _setting(100_000, _integer(1), flat="experiment_track_requests")
    min_impressions: int = _setting(100, _integer(1), flat="experiment_min_impressions")


_GROUPS: dict[str, type[_Group]] = {
    "store": StoreSettings,
    "index": IndexSettings,
    "learner": LearnerSettings,
    "gate": GateSettings,
    "limits": LimitSettings,
    "users": UserSettings,
    "feedback": FeedbackSettings,
    "experiments": ExperimentSettings,
}
#: flat name -> (group, field)
_FLAT: dict[str, tuple[str, str]] = {
    _flat_name(f): (group, f.name) for group, cls in _GROUPS.items() for f in fields(cls)
}


# ----------------------------------------------------------------------- config
@dataclass
class ServiceConfig:
    """Settings of a :class:`RecommenderService` (all have working defaults), grouped by
    concern; see each group for its settings.

    Attributes
    ----------
    model, model_params
        The model trained on first start (``lifelongrec models`` lists names).
    store : StoreSettings
        ``synthetic_events``, ``seed``, ``event_types``.
    index : IndexSettings
        ``ann_threshold``, ``hnsw_m``, ``hnsw_ef_search``, ``hnsw_exact_head``,
        ``index_max_delta``.
    learner : LearnerSettings
        ``background``, ``learner_batch``, ``learner_share``, ``challenger_every``,
        ``challenger_min_seconds``.
    gate : GateSettings
        ``gate_metric``, ``gate_tolerance``, ``gate_min_users``, ``gate_min_items``,
        ``holdout_events``, ``holdout_max_events``, ``history_events``.
    limits : LimitSettings
        ``max_batch``.
    users : UserSettings
        ``max_users``, ``rehydrate_events``.
    feedback : FeedbackSettings
        ``log_impressions``, ``impression_flush_seconds``, ``impression_flush_rows``,
        ``impression_buffer``, ``attribution_window``, ``click_types``,
        ``conversion_types``.
    experiments : ExperimentSettings
        ``experiment_tick_seconds``, ``experiment_track_requests``,
        ``experiment_min_impressions``.

    The names listed are the flat names (as in ``--config`` files); inside a group some
    are shorter (``learner.batch`` is ``learner_batch``). Both read:
    ``config.learner.batch == config.learner_batch``.

    Examples
    --------
    >>> cfg = ServiceConfig.from_dict({"max_users": 500, "learner": {"batch": 64}})
    >>> cfg.users.max_users, cfg.learner_batch
    (500, 64)
    >>> cfg.to_dict()["learner_batch"]
    64
    """

    model: str = _setting("sequential")
    model_params: dict[str, Any] = _setting(check=_HYPERPARAMETERS, factory=dict)
    store: StoreSettings = field(default_factory=StoreSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    learner: LearnerSettings = field(default_factory=LearnerSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    users: UserSettings = field(default_factory=UserSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    experiments: ExperimentSettings = field(default_factory=ExperimentSettings)

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not attributes: the flat names.
        where = _FLAT.get(name)
        if where is None or where[0] not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self.__dict__[where[0]], where[1])

    def check_params(self) -> None:
        """Check every setting against its declared constraint, then the groups' rules
        over several settings.

        Raises
        ------
        ParameterError
            A setting breaks its constraint (the error names its flat name).
        """
        _HYPERPARAMETERS.check("model_params", self.model_params)
        for group in _GROUPS:
            value = getattr(self, group)
            if not isinstance(value, _GROUPS[group]):
                raise ParameterError(group, type(value).__name__, f"a {_GROUPS[group].__name__}")
            value.check_params()

    def validate(self) -> ServiceConfig:
        """:meth:`check_params`, then ``self`` (for chaining)."""
        self.check_params()
        return self

    def promotion_gate(self) -> PromotionGate:
        """The promotion gate these settings describe."""
        return self.gate.promotion_gate()

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ServiceConfig:
        """Settings from flat names, groups, or both (``{"max_users": 10, "learner":
        {"batch": 64}}``), checked.

        Raises
        ------
        ParameterError
            An unknown setting (``config``, listing the known ones), a setting given
            twice, or one that breaks its constraint.
        """
        if not isinstance(values, Mapping):
            raise ParameterError("config", type(values).__name__, "a dict of settings")
        top: dict[str, Any] = {}
        grouped: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
        given: dict[str, str] = {}  # flat name -> how it was given
        unknown: list[str] = []

        def put(flat: str, value: Any, how: str) -> None:
            if flat in given:
                raise ParameterError(flat, value, f"one value (also given as {given[flat]})")
            given[flat] = how
            if flat in ("model", "model_params"):
                top[flat] = value
            else:
                group, name = _FLAT[flat]
                grouped[group][name] = value

        for key, value in values.items():
            key = str(key)
            if key in _GROUPS:
                if isinstance(value, _GROUPS[key]):  # e.g. {**config.__dict__}
                    value = dataclasses.asdict(value)
                if not isinstance(value, Mapping):
                    raise ParameterError(key, value, f"a dict of {key} settings")
                members = {_flat_name(f): f.name for f in fields(_GROUPS[key])}
                by_name = {f.name: _flat_name(f) for f in fields(_GROUPS[key])}
                for name, v in value.items():
                    flat = by_name.get(str(name))
                    if flat is None:
                        unknown.append(f"{key}.{name}")
                    else:
                        put(flat, v, f"{key}.{members[flat]}")
            elif key in _FLAT or key in ("model", "model_params"):
                put(key, value, key)
            else:
                unknown.append(key)
        if unknown:
            raise ParameterError("config", sorted(unknown), f"settings among {_known()}")
        config = cls(**top, **{g: _GROUPS[g](**v) for g, v in grouped.items()})
        return config.validate()

    def to_dict(self, grouped: bool = False) -> dict[str, Any]:
        """The settings as JSON data: by flat name (default; what ``service.json`` and
        ``/health`` hold), or ``grouped`` by concern."""
        out: dict[str, Any] = {"model": self.model, "model_params": dict(self.model_params)}
        for group in _GROUPS:
            values = dataclasses.asdict(getattr(self, group))
            if grouped:
                out[group] = values
            else:
                for f in fields(_GROUPS[group]):
                    out[_flat_name(f)] = values[f.name]
        return out


def _known() -> list[str]:
    return sorted(["model", "model_params", *_FLAT, *(f"{g}.*" for g in _GROUPS)])
