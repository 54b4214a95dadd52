"""How a model keeps learning as time windows arrive: the update strategies.

A :class:`Strategy` owns the model while a stream is learned. The caller (for example
the prequential protocol, :func:`lifelongrec.evaluation.prequential`) only ever calls

.. code-block:: python

    model = strategy.start(model_factory, first_window)   # learn window 0
    strategy.on_drift(info)                               # optional: drift was detected
    model = strategy.update(window)                       # learn each later window

and serves whatever model the last call returned, so it needs to know nothing about what
a strategy does inside; a new strategy is a subclass with a ``name`` and an ``_update``
(and a line in :data:`STRATEGIES`). ``on_drift`` tells the strategy that a drift
detector (:class:`lifelongrec.evaluation.DriftMonitor`) fired while the window about to
be learned was evaluated; only ``lifelong`` reacts to it (the others ignore it).

Strategies
----------
``static``
    Fit window 0, never update (the baseline every update must beat).
``retrain``
    A fresh model fitted from scratch on every event so far, at every window.
``finetune``
    ``partial_fit`` on the new window only (naive fine-tuning).
``lifelong``
    ``partial_fit`` on the new window plus a replay sample of past events drawn from a
    seeded reservoir buffer (:class:`ReservoirBuffer`). A model that can learn from its
    previous version (distillation, EWC) exposes that through its own hyperparameters and
    a ``set_teacher(previous)`` method (:class:`~._capabilities.LearnsFromTeacher`):
    the strategy then passes it a frozen copy of the model as it was before the update.
    A model whose ``partial_fit`` takes a ``replay`` keyword gets the replay sample
    there, apart from the new events (so it can tell old from new); any other model gets
    the two together, in time order. The strategy can build the model with its own
    distillation and EWC on (``distill_weight``, ``ewc_weight``), and reacts to a
    detected drift with less replay and, when asked, a heavier update (more passes,
    through ``partial_fit``'s ``budget`` or ``epochs`` keyword, on a model with
    ``partial_fit_budget`` or ``partial_fit_epochs``: :class:`~._capabilities.UpdateBudget`,
    :class:`~._capabilities.UpdateEpochs`). It never changes a hyperparameter of a model
    it holds.

A strategy's settings are :class:`~lifelongrec._params.Params`: declared constraints,
``get_params``, ``repr``, ``clone`` and the public ``check_params`` (which ``start``
calls).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lifelongrec._errors import NotFittedError, ParameterError
from lifelongrec._params import Constraint, Integer, Number, Params, Seed
from lifelongrec.data import EVENT_COLUMNS, Dataset, as_dataset
from lifelongrec.models import Recommender
from lifelongrec.training._capabilities import (
    LearnsFromTeacher,
    UpdateBudget,
    UpdateEpochs,
    partial_fit_keywords,
)
from lifelongrec.training._transitions import TransitionDrift

__all__ = [
    "STRATEGIES",
    "FineTune",
    "Lifelong",
    "ReservoirBuffer",
    "Retrain",
    "Static",
    "Strategy",
    "get_strategy",
]


def _time_order(events: pd.DataFrame) -> pd.DataFrame:
    order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
    return events.iloc[order].reset_index(drop=True)


class ReservoirBuffer(Params):
    """A uniform sample of at most ``capacity`` events of a stream (Vitter's algorithm R).

    After ``n`` events have been added, every one of them is in the buffer with
    probability ``min(1, capacity / n)``, whatever the order and sizes of the batches
    they came in. Seeded: the same stream and seed give the same buffer and samples.

    Parameters
    ----------
    capacity
        Most events held (positive int).
    seed
        Seed of the replacement draws and of :meth:`sample` (``None``: fresh entropy).

    Attributes
    ----------
    n_seen_ : int
        Events added so far.
    """

    _constraints: ClassVar[dict[str, Constraint]] = {"capacity": Integer(1), "seed": Seed()}

    def __init__(self, capacity: int = 10_000, seed: int | None = 0) -> None:
        self.capacity = capacity
        self.seed = seed
        self.check_params()
        self.capacity = int(capacity)
        self._rng = np.random.default_rng(seed)
        self._events = pd.DataFrame({c: [] for c in EVENT_COLUMNS})
        self.n_seen_ = 0

    def __len__(self) -> int:
        return len(self._events)

    @property
    def events(self) -> pd.DataFrame:
        """The buffered events (a copy), in the order of their slots."""
        return self._events.copy()

    def add(self, events: pd.DataFrame | Dataset) -> None:
        """Offer ``events`` (in stream order) to the buffer."""
        new = as_dataset(events).events.loc[:, list(EVENT_COLUMNS)].reset_index(drop=True)
        m = len(new)
        if m == 0:
            return
        index = self.n_seen_ + np.arange(m, dtype=np.int64)  # 0-based position in the stream
        self.n_seen_ += m
        fill = index < self.capacity
        if fill.any():
            kept = new.loc[fill]
            self._events = (
                pd.concat([self._events, kept], ignore_index=True)
                if len(self._events)
                else kept.reset_index(drop=True)
            )
        rest = np.flatnonzero(~fill)
        if len(rest) == 0:
            return
        slot = self._rng.integers(0, index[rest] + 1)  # event i replaces slot j < capacity
        take = slot < self.capacity
        src, slot = rest[take], slot[take]
        # Several events may draw one slot: as in the sequential algorithm, the last wins.
        last = len(slot) - 1 - np.unique(slot[::-1], return_index=True)[1]
        src, slot = src[last], slot[last]
        for column in EVENT_COLUMNS:
            values = self._events[column].to_numpy(copy=True)
            values[slot] = new[column].to_numpy()[src]
            self._events[column] = values

    def sample(self, n: int) -> pd.DataFrame:
        """``min(n, len(self))`` distinct buffered events drawn uniformly, in time order."""
        n = min(int(n), len(self._events))
        if n <= 0:
            return self._events.iloc[:0].copy()
        pick = np.sort(self._rng.choice(len(self._events), size=n, replace=False))
        return _time_order(self._events.iloc[pick])


class Strategy(Params):
    """How a model learns a stream of windows (see the module docstring).

    Subclasses set :attr:`name`, take their settings as keyword arguments (stored, not
    checked, in ``__init__``; declared in ``_constraints`` and checked by
    :meth:`~lifelongrec._params.Params.check_params`, which :meth:`start` calls) and
    implement :meth:`_update`.

    Attributes
    ----------
    model_ : Recommender
        The model serving now (after the last ``start``/``update``).
    n_updates_ : int
        Windows learned after the first.
    reactions_ : list[dict]
        What the strategy did about detected drifts (see :meth:`on_drift`), one record
        per reacting update; always empty for a strategy that does not react.
    """

    name: ClassVar[str] = "base"

    def __init__(self) -> None:
        pass

    def start(
        self, model_factory: Callable[[], Recommender], first_window: Dataset | pd.DataFrame
    ) -> Recommender:
        """Fit a new model from ``model_factory()`` on ``first_window``; return it.

        ``model_factory`` must return a new, unfitted model each call (``retrain`` calls
        it again at every window).
        """
        self.check_params()
        if not callable(model_factory):
            raise ParameterError(
                "model_factory", model_factory, "a callable returning a new Recommender"
            )
        self._factory = model_factory
        self.n_updates_ = 0
        self.reactions_: list[dict[str, Any]] = []
        first = as_dataset(first_window)
        self.model_ = self._configure(model_factory()).fit(first)
        self._started(first)
        return self.model_

    def _configure(self, model: Recommender) -> Recommender:
        """Hook on the new model before its first fit; returns the model to fit (e.g. one
        built with other hyperparameters)."""
        return model

    def _started(self, first: Dataset) -> None:
        """Hook after the first fit (e.g. to remember its events)."""

    def on_drift(self, info: dict[str, Any]) -> None:
        """A drift detector fired while the next window to learn was evaluated.

        Called (by :func:`lifelongrec.evaluation.prequential`) before :meth:`update` of
        that window. ``info`` holds ``window`` (its number) and ``detections`` (the
        detector's records, see :class:`lifelongrec.evaluation.DriftMonitor`). The base
        strategy does nothing; :class:`Lifelong` changes its next update (less replay,
        and more passes when its ``drift_epochs_factor`` is above 1).
        """

    def update(self, window: Dataset | pd.DataFrame) -> Recommender:
        """Learn ``window`` (the events after everything learned so far); return the
        model to serve from now on (the same object or a new one)."""
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"this {type(self).__name__} strategy has not started; call "
                "start(model_factory, first_window) first"
            )
        self.model_ = self._update(as_dataset(window))
        self.n_updates_ += 1
        return self.model_

    def _update(self, window: Dataset) -> Recommender:
        raise NotImplementedError


class Static(Strategy):
    """Fit the first window and never learn again."""

    name = "static"

    def _update(self, window: Dataset) -> Recommender:
        return self.model_


class Retrain(Strategy):
    """Fit a fresh model from scratch on every event so far, at every window.

    The most expensive strategy and the reference a cheap update should come close to.
    Window events are appended in the order they arrive (windows are consecutive in time,
    so the union is in time order too).
    """

    name = "retrain"

    def _started(self, first: Dataset) -> None:
        self._seen = [first]

    def _update(self, window: Dataset) -> Recommender:
        self._seen.append(window)
        events = pd.concat([w.events for w in self._seen], ignore_index=True)
        union = window.with_events(events)
        union.meta["window"] = f"0-{len(self._seen) - 1}"
        return self._factory().fit(union)


class FineTune(Strategy):
    """``partial_fit`` on each new window only (what forgets the most)."""

    name = "finetune"

    def _update(self, window: Dataset) -> Recommender:
        return self.model_.partial_fit(window)


class Lifelong(Strategy):
    """``partial_fit`` on the new window plus a replay sample of earlier events, the
    model's own distillation / EWC switched on when asked, a reaction to drift.

    Parameters
    ----------
    replay_size
        Capacity of the reservoir buffer of past events (positive int).
    replay_share
        Share of each update's events that are replayed, in ``[0, 1)``: with ``n`` new
        events, ``round(n * share / (1 - share))`` buffered events are drawn (fewer when
        the buffer holds fewer); ``0`` replays nothing. Default 0.25: on ml-latest-small
        (10 windows, sequential model) it ranked better than 0.5 at half the update
        compute, and better than a full retrain at a fraction of its compute (the
        figures: docs/lifelong.md, "What it earns", and docs/benchmarks.md, "Lifelong
        learning (issue 4): where it stands").
    seed
        Seed of the buffer and its samples.
    distill_weight, ewc_weight
        ``None`` (the default: leave the model's own setting) or a number >= 0: the
        model is built (from the factory's model's hyperparameters) with that value of
        its hyperparameter of that name before its first fit (the sequential model
        has both: distillation from the model as it was before each update, and the
        Fisher-weighted pull towards it). Set before the fit because EWC needs the
        Fisher information of what the fit learned, which the model estimates at the end
        of a fit only when ``ewc_weight > 0``; a fit itself uses neither (there is no
        earlier version yet), so it is the same fit. A model without that hyperparameter
        is an error, not a silent no-op. The default of ``distill_weight`` stays
        ``None`` until measurements pick one.
    drift_epochs_factor
        After a detected drift (:meth:`on_drift`), the next update only runs
        ``ceil(partial_fit_epochs * factor)`` passes on a model with a
        ``partial_fit_epochs`` hyperparameter whose ``partial_fit`` takes an ``epochs``
        keyword (:class:`~._capabilities.UpdateEpochs`), or, where that is ``None``,
        spends ``partial_fit_budget * factor`` of a refit's estimated compute
        (:class:`~._capabilities.UpdateBudget`, through ``partial_fit``'s ``budget``
        keyword); the hyperparameters are not changed. A number >= 1; ``1`` (the
        default) turns the heavier update off, so a detection only changes the replay
        share. Chosen on the train family of streams, where ml-100k is the one stream
        whose detector fires under lifelong updates (on nearly every window: its hit
        rate wanders without a shift): 2 gave 88.1 % of a full retrain's mean NDCG@10
        at 22.5 % of its update CPU, 1 gave 92.0 % at 19.5 % and less forgetting
        (docs/lifelong.md, "After a detected drift").
    drift_replay_share
        The replay share of that next update, in ``[0, 1)``; ``None`` (default): half of
        ``replay_share``.
    replay_drift_power
        How much less to replay where what follows what has changed (a number >= 0; 0
        turns it off). Before each update, :class:`~._transitions.TransitionDrift`
        measures on the window being learned how much better the latest earlier
        window's item-to-next-item counts predict its next items than the older
        windows' counts do (``ratio``); where ``ratio > 1`` the update replays
        ``share * ratio ** -replay_drift_power`` (``share``: ``replay_share``, or the
        drift reaction's share). The buffer's events then teach an order the stream
        has left. Default 2, chosen on the train family of streams, where only
        ``train-reorder-30k`` (its next-item chain is redrawn every 11 days) and
        ``train-aging-30k`` have ratios above 1 beyond their third window: 0 gave
        lifelong 99.2 % of a full retrain's mean NDCG@10 on ``train-reorder-30k``, 1
        gave 100.5 %, 2 gave 103.0 % and 4 gave 102.5 % (docs/lifelong.md, "Replaying
        less where the order changed").

    Notes
    -----
    The buffer holds events of the windows *before* the one being learned (a window
    enters it after its update). Replayed events are events again to the model: a
    count-based model (``popularity``) counts them once more, which is what replay does
    to one; models that keep exact histories are unchanged by pairs they already hold but
    re-learn the replayed users (``als``, ``bpr``). Hooks for a model that can do more:
    ``set_teacher(previous)`` (:class:`~._capabilities.LearnsFromTeacher`) receives a
    frozen deep copy of the model before each update (distillation, EWC), and a
    ``replay`` keyword of ``partial_fit`` (:func:`~._capabilities.partial_fit_keywords`)
    receives the sample apart from the new events.

    Why a drift makes the replay share *smaller* by default, although the issue that
    asked for a reaction named "a larger replay share": the detector watches the
    prequential figures, i.e. how well the model predicts events it has *not* learned
    yet. When they drop suddenly, the world moved (the users' interests shifted, new
    items took the traffic), not the model's memory of the past; the buffer's events
    describe the world before the change, and replaying more of them pulls the update
    back towards it. The reaction therefore spends more compute on the new window (more
    passes) and less of each update on the past. Replay protects against forgetting
    during ordinary updates, which is what ``replay_share`` is for; a larger share on
    drift is one setting away (``drift_replay_share=0.75``) for a stream where that
    measures better.

    Attributes
    ----------
    buffer_ : ReservoirBuffer
    n_replayed_ : list[int]
        Replayed events per update.
    replay_shares_ : list[float]
        The replay share each update used.
    transitions_ : TransitionDrift
        The successor counts; its ``ratios_`` hold each window's ``ratio`` (``None``
        for the first two windows, which have no older counts to compare).
    reactions_ : list[dict]
        Per reacting update: ``update`` (its number, 1-based), ``window`` and
        ``n_detections`` (from :meth:`on_drift`'s ``info``), ``replay_share`` and
        ``n_replayed`` as used, and ``partial_fit_budget`` or ``partial_fit_epochs``
        ``[usual, used]`` (``None`` when the reaction did not change it).
    """

    name = "lifelong"
    _constraints: ClassVar[dict[str, Constraint]] = {
        "replay_size": Integer(1),
        "replay_share": Number(0, 1, high_open=True),
        "seed": Seed(),
        "distill_weight": Number(0, none=True),
        "ewc_weight": Number(0, none=True),
        "drift_epochs_factor": Number(1),
        "drift_replay_share": Number(0, 1, high_open=True, none=True),
        "replay_drift_power": Number(0),
    }

    def __init__(
        self,
        replay_size: int = 10_000,
        replay_share: float = 0.25,
        seed: int | None = 0,
        distill_weight: float | None = None,
        ewc_weight: float | None = None,
        drift_epochs_factor: float = 1.0,
        drift_replay_share: float | None = None,
        replay_drift_power: float = 2.0,
    ) -> None:
        self.replay_size = replay_size
        self.replay_share = replay_share
        self.seed = seed
        self.distill_weight = distill_weight
        self.ewc_weight = ewc_weight
        self.drift_epochs_factor = drift_epochs_factor
        self.drift_replay_share = drift_replay_share
        self.replay_drift_power = replay_drift_power

    def _configure(self, model: Recommender) -> Recommender:
        params = model.get_params()
        overrides = {}
        for name in ("distill_weight", "ewc_weight"):
            value = getattr(self, name)
            if value is None:
                continue
            if name not in params:
                raise ParameterError(
                    name,
                    value,
                    f"None for the {type(model).__name__} model, which has no {name} "
                    "hyperparameter (the sequential model has one)",
                )
            overrides[name] = float(value)
        return type(model)(**{**params, **overrides}) if overrides else model

    def _started(self, first: Dataset) -> None:
        self.buffer_ = ReservoirBuffer(int(self.replay_size), self.seed)
        self.buffer_.add(first.events)
        self.transitions_ = TransitionDrift()
        self.transitions_.observe(first.events)
        self.n_replayed_: list[int] = []
        self.replay_shares_: list[float] = []
        self._drift: dict[str, Any] | None = None

    def on_drift(self, info: dict[str, Any]) -> None:
        """Change the next update (only): its own replay share, and more passes when
        ``drift_epochs_factor`` is above 1.

        See the class docstring (``drift_epochs_factor``, ``drift_replay_share``). Several
        calls before one update make one reaction (the latest ``info`` is recorded).
        """
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "this Lifelong strategy has not started; call start(model_factory, "
                "first_window) before on_drift"
            )
        if not isinstance(info, dict):
            raise ParameterError("info", info, "a dict with 'window' and 'detections'")
        self._drift = dict(info)

    def _update(self, window: Dataset) -> Recommender:
        model = self.model_
        drift, self._drift = self._drift, None
        share = float(self.replay_share)
        epochs: list[int] | None = None
        budget: list[float] | None = None
        keywords = partial_fit_keywords(model)
        if drift is not None:
            share = share / 2 if self.drift_replay_share is None else float(self.drift_replay_share)
            factor = float(self.drift_epochs_factor)
            fixed = isinstance(model, UpdateEpochs) and model.partial_fit_epochs is not None
            if fixed and "epochs" in keywords:
                usual = int(model.partial_fit_epochs)
                epochs = [usual, math.ceil(usual * factor)]
            elif not fixed and isinstance(model, UpdateBudget) and "budget" in keywords:
                usual_share = float(model.partial_fit_budget)
                budget = [usual_share, usual_share * factor]
        ratio = self.transitions_.observe(window.events)
        if ratio is not None and ratio > 1 and self.replay_drift_power > 0:
            share *= ratio ** -float(self.replay_drift_power)
        self.replay_shares_.append(share)
        n_replay = math.floor(len(window) * share / (1.0 - share) + 0.5)
        replay = self.buffer_.sample(n_replay)
        self.n_replayed_.append(len(replay))
        if isinstance(model, LearnsFromTeacher):
            model.set_teacher(copy.deepcopy(model))
        passes: dict[str, Any] = {} if epochs is None else {"epochs": epochs[1]}
        if budget is not None:
            passes["budget"] = budget[1]
        if "replay" in keywords:
            model.partial_fit(window, replay=window.with_events(replay), **passes)
        else:
            new = window.events.loc[:, list(EVENT_COLUMNS)]
            both = pd.concat([replay, new], ignore_index=True)
            model.partial_fit(window.with_events(_time_order(both)), **passes)
        self.buffer_.add(window.events)
        if drift is not None:
            self.reactions_.append(
                {
                    "update": self.n_updates_ + 1,
                    "window": drift.get("window"),
                    "n_detections": len(drift.get("detections") or []),
                    "replay_share": share,
                    "n_replayed": len(replay),
                    "partial_fit_epochs": epochs,
                    "partial_fit_budget": budget,
                }
            )
        return model


#: Every strategy by its short name, in the order tables list them.
STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Static, Retrain, FineTune, Lifelong)
}


def get_strategy(name: str, **params: Any) -> Strategy:
    """A strategy by short name (see :data:`STRATEGIES`) with its settings.

    Settings a strategy does not take are ignored only when named ``seed`` (so one call
    can build any strategy with a seed); any other unknown setting raises.
    """
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ParameterError("strategy", name, f"one of {list(STRATEGIES)}") from None
    known = set(cls.param_names())
    if "seed" not in known:
        params.pop("seed", None)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ParameterError(
            "strategy settings",
            unknown,
            f"settings of {cls.__name__} ({', '.join(sorted(known)) or 'none'})",
        )
    return cls(**params)
