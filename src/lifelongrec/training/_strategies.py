"""How a model keeps learning as time windows arrive: the update strategies.

A :class:`Strategy` owns the model while a stream is learned. The caller (for example
the prequential protocol, :func:`lifelongrec.evaluation.prequential`) only ever calls

.. code-block:: python

    model = strategy.start(model_factory, first_window)   # learn window 0
    model = strategy.update(window)                       # learn each later window

and serves whatever model the last call returned, so it needs to know nothing about what
a strategy does inside; a new strategy is a subclass with a ``name`` and an ``_update``
(and a line in :data:`STRATEGIES`).

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
    a ``set_teacher(previous)`` method: the strategy then passes it a frozen copy of the
    model as it was before the update. A model whose ``partial_fit`` takes a ``replay``
    keyword gets the replay sample there, apart from the new events (so it can tell old
    from new); any other model gets the two together, in time order.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lifelongrec._errors import NotFittedError, ParameterError
from lifelongrec.data import EVENT_COLUMNS, Dataset, as_dataset
from lifelongrec.models import Recommender

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


def _check_seed(seed: Any) -> None:
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ParameterError("seed", seed, "None or a non-negative integer")


def _time_order(events: pd.DataFrame) -> pd.DataFrame:
    order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
    return events.iloc[order].reset_index(drop=True)


class ReservoirBuffer:
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

    def __init__(self, capacity: int = 10_000, seed: int | None = 0) -> None:
        if (
            isinstance(capacity, bool)
            or not isinstance(capacity, (int, np.integer))
            or capacity < 1
        ):
            raise ParameterError("capacity", capacity, "a positive integer")
        _check_seed(seed)
        self.capacity = int(capacity)
        self.seed = seed
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


class Strategy:
    """How a model learns a stream of windows (see the module docstring).

    Subclasses set :attr:`name`, take their settings as keyword arguments (stored, not
    checked, in ``__init__``; checked by :meth:`start`) and implement :meth:`_update`.

    Attributes
    ----------
    model_ : Recommender
        The model serving now (after the last ``start``/``update``).
    n_updates_ : int
        Windows learned after the first.
    """

    name: ClassVar[str] = "base"

    def __init__(self) -> None:
        pass

    def get_params(self) -> dict[str, Any]:
        """Settings as given to ``__init__``."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _validate(self) -> None:
        """Check the settings; raise :class:`ParameterError`."""

    def start(
        self, model_factory: Callable[[], Recommender], first_window: Dataset | pd.DataFrame
    ) -> Recommender:
        """Fit a new model from ``model_factory()`` on ``first_window``; return it.

        ``model_factory`` must return a new, unfitted model each call (``retrain`` calls
        it again at every window).
        """
        self._validate()
        if not callable(model_factory):
            raise ParameterError(
                "model_factory", model_factory, "a callable returning a new Recommender"
            )
        self._factory = model_factory
        self.n_updates_ = 0
        first = as_dataset(first_window)
        self.model_ = model_factory().fit(first)
        self._started(first)
        return self.model_

    def _started(self, first: Dataset) -> None:
        """Hook after the first fit (e.g. to remember its events)."""

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
    """``partial_fit`` on the new window plus a replay sample of earlier events.

    Parameters
    ----------
    replay_size
        Capacity of the reservoir buffer of past events (positive int).
    replay_share
        Share of each update's events that are replayed, in ``[0, 1)``: with ``n`` new
        events, ``round(n * share / (1 - share))`` buffered events are drawn (fewer when
        the buffer holds fewer); ``0`` replays nothing.
    seed
        Seed of the buffer and its samples.

    Notes
    -----
    The buffer holds events of the windows *before* the one being learned (a window
    enters it after its update). Replayed events are events again to the model: a
    count-based model (``popularity``) counts them once more, which is what replay does
    to one; models that keep exact histories are unchanged by pairs they already hold but
    re-learn the replayed users (``als``, ``bpr``). Hooks for a model that can do more:
    ``set_teacher(previous)`` receives a frozen deep copy of the model before each update
    (distillation, EWC), and a ``replay`` keyword of ``partial_fit`` receives the sample
    apart from the new events.

    Attributes
    ----------
    buffer_ : ReservoirBuffer
    n_replayed_ : list[int]
        Replayed events per update.
    """

    name = "lifelong"

    def __init__(
        self, replay_size: int = 10_000, replay_share: float = 0.5, seed: int | None = 0
    ) -> None:
        self.replay_size = replay_size
        self.replay_share = replay_share
        self.seed = seed

    def _validate(self) -> None:
        r = self.replay_size
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ParameterError("replay_size", r, "a positive integer (events in the buffer)")
        s = self.replay_share
        if (
            isinstance(s, bool)
            or not isinstance(s, (int, float, np.integer, np.floating))
            or not 0 <= s < 1
        ):
            raise ParameterError("replay_share", s, "a number in [0, 1)")
        _check_seed(self.seed)

    def _started(self, first: Dataset) -> None:
        self.buffer_ = ReservoirBuffer(int(self.replay_size), self.seed)
        self.buffer_.add(first.events)
        self.n_replayed_: list[int] = []

    def _update(self, window: Dataset) -> Recommender:
        model = self.model_
        share = float(self.replay_share)
        n_replay = math.floor(len(window) * share / (1.0 - share) + 0.5)
        replay = self.buffer_.sample(n_replay)
        self.n_replayed_.append(len(replay))
        if callable(getattr(model, "set_teacher", None)):
            model.set_teacher(copy.deepcopy(model))
        if "replay" in inspect.signature(model.partial_fit).parameters:
            model.partial_fit(window, replay=window.with_events(replay))
        else:
            new = window.events.loc[:, list(EVENT_COLUMNS)]
            both = pd.concat([replay, new], ignore_index=True)
            model.partial_fit(window.with_events(_time_order(both)))
        self.buffer_.add(window.events)
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
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
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
