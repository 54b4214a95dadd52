"""Online learning: each event updates its user's state at once; parameters follow in
mini-batches.

:class:`OnlineLearner` is the path a live service sends every new event through
(DESIGN, "Lifelong learning": *an event updates that user's state at once; parameters are
updated in mini-batches by a background learner*). For a model with a fast path
(:meth:`~lifelongrec.models.SequentialRecommender.observe` and
:meth:`~lifelongrec.models.SequentialRecommender.online_step`, the sequential model: an
:class:`~lifelongrec.training.OnlineBuffering` model):

1. :meth:`OnlineLearner.observe` validates the events and merges them into their users'
   stored histories at once, exactly as ``partial_fit`` would (new users and items get
   rows), so the next recommendation for that user reflects them; no gradient step;
2. every ``batch_size`` observed events, ``steps_per_batch`` optimiser steps run on the
   training windows ending at those events (the loss of ``partial_fit``; the optimiser
   state carries over);
3. :meth:`OnlineLearner.flush` trains on what is left.

A model without a fast path (the classical ones) gets its exact ``partial_fit`` on each
call's events: that is the incremental update they allow, state and parameters at once.

Threads
-------
One re-entrant lock, :attr:`OnlineLearner.lock`, guards the model: every method of the
learner holds it while it touches the model, and code that reads the model from another
thread (a service's ``recommend``) holds it too (``with learner.lock: ...``). Events are
validated before the lock is taken. A service constructs the learner with
``train_inline=False``, calls :meth:`OnlineLearner.observe` from its request threads
(cheap: a state update) and runs :meth:`OnlineLearner.train_pending` in one background
thread; that takes the lock for one batch's steps at a time, so a request waits at most
for one batch (its time is ``stats.step_seconds / stats.n_batches``). With
``train_inline=True`` (the default) :meth:`OnlineLearner.learn` does both in the caller's
thread. A service's shape::

    learner = OnlineLearner(model, batch_size=256, train_inline=False)

    def post_events(payload):                 # request threads
        learner.observe(payload)              # the user's state, at once

    def get_recommendations(user_id):         # request threads
        with learner.lock:
            return model.recommend(user_id, k=10)

    def background():                         # one thread
        while running:
            if not learner.train_pending():   # an update per full batch
                time.sleep(0.01)
"""

from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, NotFittedError
from lifelongrec._params import Boolean, Constraint, Integer, Params, Satisfies, is_int
from lifelongrec.data import (
    DEFAULT_EVENT_TYPE,
    EVENT_COLUMNS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    TIMESTAMP_RANGE,
    Dataset,
)
from lifelongrec.models import Recommender
from lifelongrec.training._capabilities import LearnsFromExposure, OnlineBuffering

__all__ = ["OnlineLearner", "OnlineStats", "online_events"]

_REQUIRED = ("user_id", "item_id", "timestamp")
_FIELDS = frozenset(EVENT_COLUMNS)
_ACCEPTS = (
    "a pandas DataFrame or lifelongrec.data.Dataset of events, one event as a dict, or a "
    "list of such dicts (user_id, item_id, timestamp; event_type and value optional)"
)


# ------------------------------------------------------------------ validation
def _where(i: int) -> str:
    return f"event {i} (0-based position)"


def _id(value: Any, name: str, i: int) -> str:
    if isinstance(value, str) and value:
        return value
    if is_int(value):
        return str(value)
    raise DataError(
        f"{name} is missing or not an id",
        column=name,
        value=f"{value!r} in {_where(i)}",
        expected="a non-empty string or an integer",
    )


def _timestamp(value: Any, i: int) -> int:
    if is_int(value):
        if TIMESTAMP_MIN <= int(value) <= TIMESTAMP_MAX:
            return int(value)
        raise _out_of_range(value, i)
    raise DataError(
        "timestamp is not an integer",
        column="timestamp",
        value=f"{value!r} in {_where(i)}",
        expected="integer UTC epoch seconds",
    )


def _out_of_range(value: Any, i: int) -> DataError:
    hint = ""
    if is_int(value) and value > TIMESTAMP_MAX:
        hint = " (milliseconds or finer? send seconds)"
    return DataError(
        f"timestamp out of range{hint}",
        column="timestamp",
        value=f"{value!r} in {_where(i)}",
        expected=TIMESTAMP_RANGE,
    )


def _event_type(value: Any, i: int) -> str:
    if value is None:
        return DEFAULT_EVENT_TYPE
    if isinstance(value, str) and value:
        return value
    raise DataError(
        "event_type is not a name",
        column="event_type",
        value=f"{value!r} in {_where(i)}",
        expected=f"a non-empty string (None or absent: {DEFAULT_EVENT_TYPE!r})",
    )


def _value(value: Any, i: int) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool):
        v = float(value)
        if not math.isinf(v):
            return v
    raise DataError(
        "value is not a number",
        column="value",
        value=f"{value!r} in {_where(i)}",
        expected="a finite number, or None / NaN when the event has none",
    )


def _from_records(records: Sequence[Any]) -> dict[str, np.ndarray]:
    n = len(records)
    users, items, ts, types, values = [""] * n, [""] * n, [0] * n, [""] * n, [0.0] * n
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise DataError(
                "an event is not a mapping of field -> value",
                value=f"{type(r).__name__} in {_where(i)}",
                expected=_ACCEPTS,
            )
        extra = r.keys() - _FIELDS
        if extra:
            raise DataError(
                "an event has an unknown field",
                column=str(sorted(map(str, extra))[0]),
                value=f"{sorted(map(str, extra))} in {_where(i)}",
                expected=f"fields among {list(EVENT_COLUMNS)}",
            )
        for name in _REQUIRED:
            if name not in r:
                raise DataError(
                    "an event lacks a required field",
                    column=name,
                    value=_where(i),
                    expected="user_id, item_id and timestamp in every event",
                )
        users[i] = _id(r["user_id"], "user_id", i)
        items[i] = _id(r["item_id"], "item_id", i)
        ts[i] = _timestamp(r["timestamp"], i)
        types[i] = _event_type(r.get("event_type"), i)
        values[i] = _value(r.get("value"), i)
    return {
        "user_id": np.asarray(users, dtype=object),
        "item_id": np.asarray(items, dtype=object),
        "timestamp": np.asarray(ts, dtype=np.int64),
        "event_type": np.asarray(types, dtype=object),
        "value": np.asarray(values, dtype=np.float64),
    }


def _first_bad(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def _from_frame(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            "events frame lacks required columns",
            value=missing,
            expected="columns user_id, item_id, timestamp (event_type and value optional)",
        )
    n = len(frame)
    out: dict[str, np.ndarray] = {}
    for name in ("user_id", "item_id"):
        col = frame[name]
        bad = col.isna().to_numpy() | (col.astype(str) == "").to_numpy()
        if bad.any():
            i = _first_bad(bad)
            raise DataError(
                f"{name} is missing",
                column=name,
                value=f"{col.iloc[i]!r} in {_where(i)}",
                expected="an id in every event",
            )
        out[name] = col.astype(str).to_numpy(dtype=object)
    ts = frame["timestamp"]
    if ts.dtype.kind not in "iu":
        raw = ts.to_numpy(dtype=object)
        for i, v in enumerate(raw):
            _timestamp(v, i)
    values = ts.to_numpy()
    if ts.dtype.kind == "u":
        bad = values > TIMESTAMP_MAX
    else:
        bad = (values < TIMESTAMP_MIN) | (values > TIMESTAMP_MAX)
    if len(values) and bad.any():
        i = _first_bad(bad)
        raise _out_of_range(values[i], i)
    out["timestamp"] = values.astype(np.int64)
    if "event_type" in frame.columns:
        et = frame["event_type"]
        null = et.isna().to_numpy()
        types = et.astype(object).to_numpy(copy=True)
        types[null] = DEFAULT_EVENT_TYPE
        ok = np.fromiter((isinstance(t, str) and t != "" for t in types), bool, n)
        if not ok.all():
            i = _first_bad(~ok)
            _event_type(types[i], i)
        out["event_type"] = types
    else:
        out["event_type"] = np.full(n, DEFAULT_EVENT_TYPE, dtype=object)
    if "value" in frame.columns:
        v = frame["value"]
        if v.dtype.kind in "fiu":
            values = v.to_numpy(dtype=np.float64)
            inf = np.isinf(values)
            if inf.any():
                i = _first_bad(inf)
                _value(values[i], i)
        else:
            values = np.asarray(
                [_value(None if pd.isna(x) else x, i) for i, x in enumerate(v.tolist())],
                dtype=np.float64,
            )
        out["value"] = values
    else:
        out["value"] = np.full(n, np.nan)
    return out


def online_events(events: Any) -> tuple[dict[str, np.ndarray], pd.DataFrame | None]:
    """Check a small batch of events and return it as column arrays (no pandas for records).

    Parameters
    ----------
    events
        One event as a dict (``user_id``, ``item_id``, ``timestamp``; ``event_type`` and
        ``value`` optional), a list of such dicts, a DataFrame with those columns, or a
        :class:`~lifelongrec.data.Dataset` (whose ``items`` are returned too). Ids may be
        strings or integers (they become strings); timestamps are integer UTC epoch
        seconds; a missing or ``None`` ``event_type`` is ``"interaction"`` and a missing
        ``value`` is NaN. A frame's other columns are ignored (as everywhere in the
        package); a dict's other keys are an error.

    Returns
    -------
    columns : dict of str to ndarray
        ``user_id``, ``item_id``, ``event_type`` (object arrays of ``str``), ``timestamp``
        (int64) and ``value`` (float64), in input order.
    items : DataFrame or None
        The Dataset's catalogue, else ``None``.

    Raises
    ------
    DataError
        Names the field and the 0-based position of the first bad event: an unknown
        object, a record that is not a dict, a missing required field, an unknown field
        (a misspelling would otherwise be ignored), a missing or empty id, a timestamp
        that is not an integer, an event type that is not a string, a value that is not
        a finite number.

    Examples
    --------
    >>> cols, _ = online_events({"user_id": 7, "item_id": "i1", "timestamp": 100})
    >>> cols["user_id"].tolist(), cols["event_type"].tolist(), cols["timestamp"].dtype.name
    (['7'], ['interaction'], 'int64')
    """
    items = None
    if isinstance(events, Dataset):
        events, items = events.events, events.items
    if isinstance(events, pd.DataFrame):
        return _from_frame(events), items
    if isinstance(events, Mapping):
        return _from_records([events]), items
    if isinstance(events, Sequence) and not isinstance(events, (str, bytes)):
        return _from_records(events), items
    raise DataError(
        "cannot use this object as events", value=type(events).__name__, expected=_ACCEPTS
    )


# ------------------------------------------------------------------ the learner
@dataclass
class OnlineStats:
    """Counters of an :class:`OnlineLearner` (cumulative since it was made).

    Attributes
    ----------
    n_events : int
        Events taken in (their users' state updated).
    n_calls : int
        Calls that took events in (``learn`` / ``observe``).
    n_batches : int
        Parameter updates: mini-batches trained (``steps_per_batch`` steps each).
    n_steps : int
        Optimiser steps taken.
    n_trained_events : int
        Events the parameter updates trained on.
    n_windows : int
        Training windows those updates used (at most one per event).
    state_seconds : float
        Time spent validating events and updating state (for a model without a fast
        path: its whole ``partial_fit``).
    step_seconds : float
        Time spent in optimiser steps.
    """

    n_events: int = 0
    n_calls: int = 0
    n_batches: int = 0
    n_steps: int = 0
    n_trained_events: int = 0
    n_windows: int = 0
    state_seconds: float = 0.0
    step_seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        """Events taken in per second of learner time (state updates and steps)."""
        total = self.state_seconds + self.step_seconds
        return self.n_events / total if total > 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        """The counters and ``events_per_second`` as a plain dict (JSON-ready)."""
        return {**asdict(self), "events_per_second": self.events_per_second}


class OnlineLearner(Params):
    """Feed a fitted model events as they happen (see the module docstring).

    Parameters
    ----------
    model
        A fitted :class:`~lifelongrec.models.Recommender`. With ``observe`` and
        ``online_step`` (the sequential model) state updates are immediate and parameter
        updates mini-batched; any other model gets ``partial_fit`` on each call.
    batch_size
        Observed events per parameter update (a positive integer). Larger batches amortise
        the step (one step costs about as much for 64 events of one user as for one) but
        delay what the parameters learn; the state is up to date either way.
    steps_per_batch
        Optimiser steps per update (an integer >= 1), each over all of the batch's
        training windows.
    train_inline
        ``True``: :meth:`learn` runs the parameter updates in the caller's thread as
        batches fill. ``False``: :meth:`learn` only updates state and queues the events;
        a background thread calls :meth:`train_pending`.

    Attributes
    ----------
    lock : threading.RLock
        Held by every method while it touches the model; hold it to read the model from
        another thread.
    stats : OnlineStats
        Counters and timings.

    Raises
    ------
    ParameterError
        ``model`` is not a Recommender, or a setting is out of range (the settings are
        :class:`~lifelongrec._params.Params`: declared, checked by ``check_params``).
    NotFittedError
        ``model`` has not been fitted.

    Examples
    --------
    >>> from lifelongrec.data import make_events
    >>> from lifelongrec.models import SequentialRecommender
    >>> ev = make_events(["a", "a", "b", "b"], ["x", "y", "y", "z"], [1, 2, 3, 4])
    >>> model = SequentialRecommender(dim=8, n_heads=1, max_len=4, epochs=1,
    ...     text_encoder=None, validation=False, verbose=False).fit(ev)
    >>> learner = OnlineLearner(model, batch_size=2)
    >>> _ = learner.learn({"user_id": "a", "item_id": "z", "timestamp": 5})
    >>> int(model.user_items_[model.user_rows("a")[0]].sum())   # a has seen z at once
    3
    >>> _ = learner.learn([{"user_id": "c", "item_id": "x", "timestamp": 6}])  # a new user
    >>> learner.stats.n_events, learner.stats.n_batches, learner.n_pending
    (2, 1, 0)
    """

    _constraints: ClassVar[dict[str, Constraint]] = {
        "model": Satisfies(lambda m: isinstance(m, Recommender), "a lifelongrec Recommender"),
        "batch_size": Integer(1),
        "steps_per_batch": Integer(1),
        "train_inline": Boolean(),
    }

    def __init__(
        self,
        model: Recommender,
        batch_size: int = 256,
        steps_per_batch: int = 1,
        train_inline: bool = True,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.steps_per_batch = steps_per_batch
        self.train_inline = train_inline
        self.check_params()
        if not model.is_fitted:
            raise NotFittedError(
                f"this {type(model).__name__} is not fitted yet; fit it before learning online"
            )
        self.batch_size = int(batch_size)
        self.steps_per_batch = int(steps_per_batch)
        self.train_inline = bool(train_inline)
        # The model never changes (a setting), so neither does its ability; a runtime
        # Protocol check costs microseconds, too much for every event of a service.
        self._buffers = isinstance(model, OnlineBuffering)
        self.lock = threading.RLock()
        self.stats = OnlineStats()

    @property
    def fast_path(self) -> bool:
        """Whether the model updates state at once and parameters in mini-batches (an
        :class:`~lifelongrec.training.OnlineBuffering` model)."""
        return self._buffers

    @property
    def n_pending(self) -> int:
        """Events observed but not trained on yet (0 for a model without a fast path)."""
        with self.lock:
            return int(self.model.n_online_pending) if self._buffers else 0

    # --------------------------------------------------------------- taking events
    def learn(self, events: Any, items: pd.DataFrame | None = None) -> OnlineLearner:
        """Take in 1..N events: state at once, parameters as batches fill.

        Parameters
        ----------
        events
            See :func:`online_events` (one dict, a list of dicts, a DataFrame or a
            Dataset). An empty batch does nothing.
        items
            Catalogue rows of new items (``item_id, title, categories, attributes``), so
            that content-aware models score them from content at once; overrides a
            Dataset's ``items``.

        Returns
        -------
        OnlineLearner
            ``self``.

        Raises
        ------
        DataError
            A bad event (see :func:`online_events`); nothing of the call is taken in.
        """
        if not self.fast_path or not self.train_inline:
            self.observe(events, items)
            return self
        t0 = time.perf_counter()
        cols, data_items = online_events(events)
        items = data_items if items is None else items
        n = len(cols["user_id"])
        checked = time.perf_counter() - t0
        start = 0
        while start < n:
            with self.lock:
                t0 = time.perf_counter()
                room = max(self.batch_size - self.model.n_online_pending, 1)
                part = {k: v[start : start + room] for k, v in cols.items()}
                self.model.observe(part, items)
                self.stats.state_seconds += time.perf_counter() - t0 + checked
                checked = 0.0
                self.stats.n_events += len(part["user_id"])
                start += len(part["user_id"])
                if self.model.n_online_pending >= self.batch_size:
                    self._step()
        if n:
            self.stats.n_calls += 1
        return self

    def observe(self, events: Any, items: pd.DataFrame | None = None) -> int:
        """Update state now and queue the events for :meth:`train_pending`; no step.

        For a model without a fast path this is its ``partial_fit`` on the events. Same
        arguments and errors as :meth:`learn`; returns the number of events taken in.
        """
        t0 = time.perf_counter()
        cols, data_items = online_events(events)
        items = data_items if items is None else items
        n = len(cols["user_id"])
        if n == 0:
            return 0
        with self.lock:
            if self.fast_path:
                self.model.observe(cols, items)
            else:
                frame = pd.DataFrame({c: cols[c] for c in EVENT_COLUMNS})
                self.model.partial_fit(frame if items is None else Dataset(frame, items))
            self.stats.state_seconds += time.perf_counter() - t0
            self.stats.n_events += n
            self.stats.n_calls += 1
        return n

    @property
    def learns_from_exposure(self) -> bool:
        """Whether the model's online steps learn from impressions now (a
        :class:`~lifelongrec.training.LearnsFromExposure` model on the fast path whose
        ``exposure_weight`` is above 0)."""
        model = self.model
        if not self.fast_path or not isinstance(model, LearnsFromExposure):
            return False
        return float(model.exposure_weight) > 0

    def observe_impressions(self, impressions: pd.DataFrame) -> int:
        """Hand what users were shown (``user_id``, ``item_id``, ``timestamp``; also
        ``request_id``, ``rank``) to a model that learns from it
        (:attr:`learns_from_exposure`) for its next steps; returns how many rows it took
        (0, keeping nothing, for any other model).

        Raises
        ------
        DataError
            Impressions that are not such a frame (the model names the first bad row).
        """
        if not self.learns_from_exposure or len(impressions) == 0:
            return 0
        with self.lock:
            self.model.observe_impressions(impressions)
        return len(impressions)

    # ----------------------------------------------------------- parameter steps
    def train_pending(self) -> int:
        """Run a parameter update while at least ``batch_size`` events are queued.

        Each update trains on everything queued when it starts (``batch_size`` events, or
        more when state updates ran ahead of the steps) and holds :attr:`lock` for its
        ``steps_per_batch`` steps only. Returns the number of updates run.
        """
        done = 0
        while self.fast_path:
            with self.lock:
                if self.model.n_online_pending < self.batch_size:
                    break
                self._step()
            done += 1
        return done

    def flush(self) -> int:
        """Train on whatever is queued, however few events; returns updates run (0 or 1)."""
        with self.lock:
            if not self.fast_path or self.model.n_online_pending == 0:
                return 0
            self._step()
            return 1

    def _step(self) -> None:
        t0 = time.perf_counter()
        out = self.model.online_step(self.steps_per_batch)
        self.stats.step_seconds += time.perf_counter() - t0
        self.stats.n_batches += 1
        self.stats.n_steps += int(out["n_steps"])
        self.stats.n_trained_events += int(out["n_events"])
        self.stats.n_windows += int(out["n_windows"])
