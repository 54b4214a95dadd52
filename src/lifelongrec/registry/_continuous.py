"""Continuous optimisation: every update is a challenger; only a gate puts it live.

:class:`ChampionChallenger` drives an update strategy (:mod:`lifelongrec.training`) the
way production runs it. Each new window is cut in time into a part to learn and the
freshest slice, held out; the strategy learns the first part and yields a challenger; the
:class:`~lifelongrec.registry.PromotionGate` compares it with the champion on the
held-out slice; the challenger is saved in the :class:`~lifelongrec.registry.ModelRegistry`
either way (with its parent, data window, figures and the gate's verdict) and becomes
champion only if the gate says so.

:func:`judge_challenger` is the one promotion path of a gated challenger: judge it
against a given champion, register it, and make it the champion in the registry only if
the gate passed it and the champion did not change meanwhile. :meth:`ChampionChallenger.
consider` uses it with its own champion; a service that made a challenger elsewhere
(``lifelongrec serve``'s learner) uses it with the model it serves.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lifelongrec._errors import DataError, NotFittedError
from lifelongrec._params import Constraint, Integer, Number, Params, Satisfies
from lifelongrec.data import Dataset, as_dataset
from lifelongrec.models import Recommender
from lifelongrec.registry._gate import GateDecision, PromotionGate
from lifelongrec.registry._registry import ModelRegistry
from lifelongrec.training import Strategy

__all__ = ["ChampionChallenger", "judge_challenger", "split_freshest"]


def _time_sorted(events: pd.DataFrame) -> pd.DataFrame:
    order = np.argsort(events["timestamp"].to_numpy(), kind="stable")
    return events.iloc[order].reset_index(drop=True)


_HOLDOUT_SHARE = Number(0, 1, low_open=True, high_open=True)


def split_freshest(
    events: pd.DataFrame | Dataset, share: float = 0.1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cut events in time into ``(older, freshest)``, the freshest about ``share`` of them.

    Events are put in time order (stable: equal timestamps keep their order). The
    freshest part has ``round(n * share)`` events, at least one, and at least one event is
    left in the older part. The cut moves to the nearer edge of a block of equal
    timestamps (so a moment is never split) unless that would empty a part; only when
    every event has the same timestamp is such a block split.

    Raises
    ------
    DataError
        Not an events frame (or Dataset), or fewer than 2 events.
    ParameterError
        ``share`` is not a number in ``(0, 1)``.
    """
    _HOLDOUT_SHARE.check("holdout_share", share)
    if not isinstance(events, (pd.DataFrame, Dataset)):
        raise DataError(
            "cannot use this object as a window of events",
            value=type(events).__name__,
            expected="a pandas DataFrame of events or a lifelongrec.data.Dataset",
        )
    ev = _time_sorted(as_dataset(events).events)
    n = len(ev)
    if n < 2:
        raise DataError(
            "a window needs at least 2 events (one to learn, one to hold out for the "
            "promotion gate)",
            column="timestamp",
            value=f"{n} event(s)",
            expected=">= 2 events",
        )
    pos = n - min(n - 1, max(1, round(n * float(share))))
    ts = ev["timestamp"].to_numpy()
    left = int(np.searchsorted(ts, ts[pos], side="left"))
    right = int(np.searchsorted(ts, ts[pos], side="right"))
    edges = [c for c in (left, right) if 1 <= c <= n - 1]
    cut = min(edges, key=lambda c: (abs(c - pos), c)) if edges else pos
    return ev.iloc[:cut].reset_index(drop=True), ev.iloc[cut:].reset_index(drop=True)


def _span(events: pd.DataFrame) -> tuple[int, int] | None:
    if len(events) == 0:
        return None
    ts = events["timestamp"].to_numpy()
    return int(ts.min()), int(ts.max())


def judge_challenger(
    registry: ModelRegistry,
    gate: PromotionGate,
    champion: Recommender | None,
    champion_version: str | None,
    challenger: Recommender,
    holdout: Dataset | pd.DataFrame,
    history: Dataset | pd.DataFrame,
    *,
    parent: Any = None,
    window: Any = None,
    data: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    prepare: Callable[[Recommender], None] | None = None,
) -> dict[str, Any]:
    """Judge ``challenger`` against ``champion``, register it, and make it the champion
    if the gate passes it.

    The registration and the champion check happen under the registry's lock: when the
    registry's champion is no longer ``champion_version`` (someone promoted or rolled
    back while the gate evaluated), the challenger is registered as rejected, whatever
    the gate said.

    Parameters
    ----------
    registry, gate
        Where the challenger is registered; the :class:`PromotionGate` that judges it.
    champion, champion_version
        The model serving now and its version (``None``, ``None``: no champion yet).
    challenger
        A fitted model (do not change it afterwards when it is promoted).
    holdout, history
        As in :meth:`PromotionGate.decide`.
    parent
        Its parent version (default: ``champion_version``).
    window, data, tags
        As in :meth:`ModelRegistry.register`.
    prepare
        Called with the challenger after the gate decided and before it is registered
        (a service removes users erased while the gate evaluated).

    Returns
    -------
    dict
        ``version`` (the new version), ``parent``, ``champion_before``, ``promoted``,
        ``metric``, ``champion_value``, ``challenger_value``, ``threshold``, ``reason``,
        ``n_events`` (held-out), ``gate_seconds``, ``decision`` (the
        :class:`GateDecision`); ``update``, ``n_learned`` and ``update_seconds`` are
        ``None`` (:class:`ChampionChallenger` fills them).
    """
    before = champion_version
    t0 = time.perf_counter()
    decision = gate.decide(champion, challenger, holdout, history)
    gate_seconds = time.perf_counter() - t0
    metrics: dict[str, Any] = {}
    for prefix, figures in (
        ("", decision.challenger_metrics),
        ("champion_", decision.champion_metrics),
    ):
        for key, value in (figures or {}).items():
            if "@" in key:
                metrics[prefix + key] = value
    if prepare is not None:
        prepare(challenger)
    with registry._locked():
        if registry.champion() != before:  # changed while the gate evaluated
            decision = dataclasses.replace(
                decision,
                promoted=False,
                reason=f"kept: the champion changed from {before} to "
                f"{registry.champion()} while the gate evaluated; "
                f"gate said: {decision.reason}",
            )
        info = registry.register(
            challenger,
            parent=before if parent is None else parent,
            window=window,
            metrics=metrics,
            data=data,
            tags=tags,
            decision=decision,
            status="champion" if decision.promoted else "rejected",
            reason=decision.reason,
        )
    return {
        "update": None,
        "version": info.version,
        "parent": info.parent,
        "champion_before": before,
        "promoted": decision.promoted,
        "metric": decision.metric,
        "champion_value": decision.champion_value,
        "challenger_value": decision.challenger_value,
        "threshold": decision.threshold,
        "reason": decision.reason,
        "n_events": decision.n_events,
        "n_learned": None,
        "update_seconds": None,
        "gate_seconds": gate_seconds,
        "decision": decision,
    }


class ChampionChallenger(Params):
    """Keep learning with a strategy; serve only what a promotion gate accepts.

    Parameters
    ----------
    strategy
        A :class:`~lifelongrec.training.Strategy` (``FineTune()``, ``Lifelong()``, ...),
        not started; this object starts and drives it.
    registry
        Where every version goes (a :class:`ModelRegistry`).
    gate
        The :class:`PromotionGate` (default: ``PromotionGate()``, NDCG@10, tolerance 0).
    holdout_share
        Share of each window held out as the freshest slice the gate judges on, in
        ``(0, 1)`` (at least one event is held out and one learned).
    max_history
        ``None`` (default) or a positive int: the most recent events kept as the history
        held-out queries are ranked from (older ones are forgotten by the gate only; the
        strategy learns every event either way).

    Attributes
    ----------
    champion_ : Recommender
        The model serving now.
    champion_version_ : str
        Its version in the registry.
    line_version_ : str
        The last version the strategy produced (the parent of the next challenger).
    pending_ : pandas.DataFrame
        The held-out slice of the last update, not learned yet (see Notes).
    history_ : pandas.DataFrame
        The events the gate ranks the next held-out queries from: every event so far,
        or the most recent ``max_history``.
    decisions_ : list of dict
        One record per registered version, for reports: ``update`` (0 for ``start``),
        ``version``, ``parent``, ``champion_before``, ``promoted``, ``metric``,
        ``champion_value``, ``challenger_value``, ``threshold``, ``reason``, ``n_events``
        (held-out), ``n_learned``, ``update_seconds``, ``gate_seconds``.

    Notes
    -----
    *No event is lost.* The held-out slice of an update is learned at the start of the
    next update (prepended to that window's older part), so every event is learned
    exactly once, one update late for the freshest slice; :attr:`pending_` holds it in the
    meantime.

    *The live champion is never changed by learning.* Strategies such as ``finetune``
    and ``lifelong`` update their model in place; when the strategy's model is the
    champion, it is deep-copied first, and the copy learns.

    *A rejected challenger stays the training line.* The strategy keeps learning from
    it (it holds every event so far), so the next challenger is its child
    (``parent``); the gate always compares against the champion. A promotion or
    rollback made through the registry by someone else (the CLI, the service) is picked
    up at the next ``update``/``consider``: the champion is reloaded from the registry.

    Examples
    --------
    >>> import tempfile
    >>> from lifelongrec.data import synthetic, time_windows
    >>> from lifelongrec.models import ItemKNN
    >>> from lifelongrec.training import FineTune
    >>> w = time_windows(synthetic(n_events=2_000, seed=0), 3)
    >>> cc = ChampionChallenger(FineTune(), ModelRegistry(tempfile.mkdtemp()))
    >>> _ = cc.start(ItemKNN, w[0])
    >>> _ = cc.update(w[1])
    >>> [d["version"] for d in cc.decisions_], cc.line_version_
    (['v000001', 'v000002'], 'v000002')
    """

    _constraints: ClassVar[dict[str, Constraint]] = {
        "strategy": Satisfies(lambda s: isinstance(s, Strategy), "a lifelongrec.training.Strategy"),
        "registry": Satisfies(
            lambda r: isinstance(r, ModelRegistry), "a lifelongrec.registry.ModelRegistry"
        ),
        "gate": Satisfies(
            lambda g: g is None or isinstance(g, PromotionGate), "None or a PromotionGate"
        ),
        "holdout_share": _HOLDOUT_SHARE,
        "max_history": Integer(1, none=True),
    }

    def __init__(
        self,
        strategy: Strategy,
        registry: ModelRegistry,
        gate: PromotionGate | None = None,
        holdout_share: float = 0.1,
        max_history: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.registry = registry
        self.gate = gate
        self.holdout_share = holdout_share
        self.max_history = max_history

    # get_params, repr and check_params come from Params (checked by start and consider).
    def _check_params(self) -> None:
        self._gate().validate()

    def _gate(self) -> PromotionGate:
        return PromotionGate() if self.gate is None else self.gate

    def clone(self) -> ChampionChallenger:
        """A new, unstarted driver with clones of the strategy and gate on the *same*
        registry (a registry is a handle on a folder, not a setting to copy)."""
        return type(self)(
            self.strategy.clone(),
            self.registry,
            None if self.gate is None else self.gate.clone(),
            self.holdout_share,
            self.max_history,
        )

    # ------------------------------------------------------------- history
    def _remember(self, events: pd.DataFrame) -> None:
        if len(events):
            self._history.append(events)
        if self.max_history is not None:
            total = sum(len(f) for f in self._history)
            while self._history and total - len(self._history[0]) >= self.max_history:
                total -= len(self._history.pop(0))

    def _visible(self) -> pd.DataFrame:
        frame = pd.concat(self._history, ignore_index=True)
        if self.max_history is not None and len(frame) > self.max_history:
            frame = frame.iloc[len(frame) - int(self.max_history) :].reset_index(drop=True)
        return frame

    @property
    def history_(self) -> pd.DataFrame:
        """The events the next update's held-out queries are ranked from (a new frame)."""
        if not hasattr(self, "_history"):
            raise NotFittedError("this ChampionChallenger has not started; call start() first")
        return self._visible()

    def _sync_champion(self) -> None:
        """Follow the registry's champion pointer (someone may have promoted or rolled
        back)."""
        current = self.registry.champion()
        if current is None:
            self.champion_, self.champion_version_ = None, None
        elif current != getattr(self, "champion_version_", None):
            self.champion_ = self.registry.load(current)
            self.champion_version_ = current

    # --------------------------------------------------------------- steps
    def start(
        self,
        model_factory: Callable[[], Recommender],
        first_window: Dataset | pd.DataFrame,
    ) -> Recommender:
        """Fit the strategy's first model on ``first_window``, register it and promote it.

        Returns the champion (the model to serve).
        """
        self.check_params()
        gate = self._gate()
        first = as_dataset(first_window)
        t0 = time.perf_counter()
        model = self.strategy.start(model_factory, first)
        seconds = time.perf_counter() - t0
        info = self.registry.register(
            model,
            window=_span(first.events),
            data={"n_events": len(first), "n_learned": len(first)},
            tags={"strategy": self.strategy.name},
            status="champion",
            reason="start: first fit",
        )
        self.champion_, self.champion_version_ = model, info.version
        self.line_version_ = info.version
        self.pending_ = first.events.iloc[:0].copy()
        self._history: list[pd.DataFrame] = []
        self._remember(first.events)
        self.n_updates_ = 0
        self.decisions_: list[dict[str, Any]] = [
            {
                "update": 0,
                "version": info.version,
                "parent": None,
                "champion_before": None,
                "promoted": True,
                "metric": gate.metric,
                "champion_value": None,
                "challenger_value": None,
                "threshold": None,
                "reason": "start: first fit",
                "n_events": 0,
                "n_learned": len(first),
                "update_seconds": seconds,
                "gate_seconds": 0.0,
            }
        ]
        return model

    def update(self, window: Dataset | pd.DataFrame) -> Recommender:
        """Learn a new window through the strategy and gate the result.

        The window (at least 2 events) is cut by :func:`split_freshest`; the strategy
        learns the pending slice of the previous update plus the older part; the result
        is registered (parent: :attr:`line_version_`) and promoted iff the gate accepts
        it on the freshest part, which becomes :attr:`pending_`.

        Returns the champion (the model to serve: the new one, or the one before).

        Raises
        ------
        NotFittedError
            :meth:`start` was not called.
        DataError
            Fewer than 2 events, or not an events frame.
        """
        if not hasattr(self, "pending_"):
            raise NotFittedError(
                "this ChampionChallenger has not started; call start(model_factory, "
                "first_window) first"
            )
        data = as_dataset(window) if isinstance(window, (pd.DataFrame, Dataset)) else window
        older, holdout = split_freshest(data, self.holdout_share)
        self._sync_champion()
        learn = _time_sorted(pd.concat([self.pending_, older], ignore_index=True))
        if self.strategy.model_ is self.champion_:
            # finetune / lifelong learn in place: never touch the live champion.
            self.strategy.model_ = copy.deepcopy(self.champion_)
        t0 = time.perf_counter()
        challenger = self.strategy.update(data.with_events(learn))
        seconds = time.perf_counter() - t0
        self._remember(older)
        self._remember(holdout)
        self.pending_ = holdout
        self.n_updates_ += 1
        record = self.consider(
            challenger,
            holdout,
            self._visible(),
            parent=self.line_version_,
            window=_span(pd.concat([learn, holdout], ignore_index=True)),
            data={
                "n_learned": len(learn),
                "n_holdout": len(holdout),
                "holdout_start": int(holdout["timestamp"].min()),
                "holdout_end": int(holdout["timestamp"].max()),
            },
            tags={"strategy": self.strategy.name},
        )
        record.update(update=self.n_updates_, n_learned=len(learn), update_seconds=seconds)
        self.line_version_ = record["version"]
        return self.champion_

    def consider(
        self,
        challenger: Recommender,
        holdout: Dataset | pd.DataFrame,
        history: Dataset | pd.DataFrame,
        *,
        parent: Any = None,
        window: Any = None,
        data: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        prepare: Callable[[Recommender], None] | None = None,
    ) -> dict[str, Any]:
        """Gate a challenger made elsewhere, register it, and promote it if it passes.

        Works without :meth:`start` too: the champion is then the registry's (none in an
        empty registry, so the challenger is promoted).

        Parameters
        ----------
        challenger
            A fitted model (it becomes the champion object when promoted; do not change
            it afterwards).
        holdout, history
            As in :meth:`PromotionGate.decide`.
        parent
            Its parent version (default: the champion it was compared with).
        window, data, tags
            As in :meth:`ModelRegistry.register`.
        prepare
            Called with the challenger after the gate decided and before it is
            registered (a service removes users erased while the gate evaluated).

        Returns
        -------
        dict
            The record appended to :attr:`decisions_` (``version`` names the new
            version; the :class:`GateDecision` is under ``decision``).
        """
        self.check_params()
        gate = self._gate()
        if not hasattr(self, "decisions_"):
            self.decisions_ = []
        self._sync_champion()
        record = judge_challenger(
            self.registry,
            gate,
            self.champion_,
            self.champion_version_,
            challenger,
            holdout,
            history,
            parent=parent,
            window=window,
            data=data,
            tags=tags,
            prepare=prepare,
        )
        if record["promoted"]:
            self.champion_, self.champion_version_ = challenger, record["version"]
        self.decisions_.append(record)
        return record

    def report(self) -> list[dict[str, Any]]:
        """:attr:`decisions_` as JSON data (the gate decisions as dicts)."""
        out = []
        for r in getattr(self, "decisions_", []):
            row = dict(r)
            if isinstance(row.get("decision"), GateDecision):
                row["decision"] = row["decision"].to_dict()
            out.append(row)
        return out
