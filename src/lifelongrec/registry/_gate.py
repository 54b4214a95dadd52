"""The promotion gate: a challenger goes live only if it is not worse than the champion.

Both models are judged on the same freshest held-out slice with the prequential
protocol's per-event figures (:func:`lifelongrec.evaluation.evaluate_window`): for
every held-out event the full catalogue is ranked from its user's history strictly
before it, and next-item Recall@K (the hit rate) and NDCG@K are averaged.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec._params import Boolean, Constraint, Integer, Number, Params, Satisfies
from lifelongrec.data import Dataset
from lifelongrec.data._schema import frame_of
from lifelongrec.evaluation import evaluate_window
from lifelongrec.models import Recommender

__all__ = ["GATE_METRICS", "GateDecision", "PromotionGate"]

#: Metrics the gate can judge by (``evaluate_window`` figures); ``hr`` is Recall@K's
#: other name here (one target per event).
GATE_METRICS = ("ndcg", "recall", "hr")
_METRIC_RE = re.compile(r"^(ndcg|recall|hr)@([1-9]\d*)$")
_METRIC = Satisfies(
    lambda m: isinstance(m, str) and _METRIC_RE.match(m) is not None,
    f"NAME@K with NAME one of {list(GATE_METRICS)}, e.g. 'ndcg@10'",
)


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one challenger.

    Attributes
    ----------
    promoted
        Whether the challenger should become champion.
    metric
        The metric judged by (``"ndcg@10"``).
    champion_value, challenger_value
        Their figures on the held-out slice (``None``: no champion, or not evaluated
        because the slice was too small).
    tolerance, relative
        The allowed shortfall: absolute, or a share of the champion's value.
    threshold
        The least challenger value that is promoted (``None`` without a champion).
    reason
        One sentence saying why.
    n_events
        Held-out events the figures average over.
    champion_metrics, challenger_metrics
        Every figure of :func:`~lifelongrec.evaluation.evaluate_window` for each model
        (``None`` when not evaluated).
    decided
        False when the slice was too small or degenerate to judge on (see
        :meth:`PromotionGate.shortfall`): the champion was kept without a comparison.
    """

    promoted: bool
    metric: str
    champion_value: float | None
    challenger_value: float | None
    tolerance: float
    relative: bool
    threshold: float | None
    reason: str
    n_events: int
    champion_metrics: dict[str, Any] | None = None
    challenger_metrics: dict[str, Any] | None = None
    decided: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (stored in the registry's manifest)."""
        return asdict(self)


def _parse_metric(metric: Any) -> tuple[str, int]:
    _METRIC.check("metric", metric)
    match = _METRIC_RE.match(metric)
    assert match is not None  # checked just above
    return match.group(1), int(match.group(2))


class PromotionGate(Params):
    """Promote a challenger iff it is not worse than the champion on fresh held-out data.

    Parameters
    ----------
    metric
        ``"ndcg@K"``, ``"recall@K"`` or ``"hr@K"`` (the same figure as recall: one target
        per event); higher is better.
    tolerance
        How much worse the challenger may be (non-negative). Absolute by default:
        promoted iff ``challenger >= champion - tolerance``.
    relative
        Read ``tolerance`` as a share in ``[0, 1]`` of the champion's value: promoted iff
        ``challenger >= champion * (1 - tolerance)``.
    min_events
        The fewest held-out events the gate judges on (positive int). On fewer it keeps
        the champion (a decision, not an error): a handful of events is noise.
    min_users, min_items
        The fewest distinct users and distinct items the held-out slice must hold
        (positive ints). A slice of many events from a few users or on a few items is
        degenerate (10,000 events on one item score NDCG 1.0 for any model that ranks
        it first, so every challenger ties the champion): on such a slice the gate
        keeps the champion and says so (``decided`` is False); a caller that can wait
        for more events checks :meth:`shortfall` first.

    Notes
    -----
    With no champion the challenger is promoted (it is still evaluated when the slice is
    large enough, so its figures are on record). Ties are promoted: "not worse" is the
    rule, so with ``tolerance=0`` an equally good challenger (newer data) goes live.

    Examples
    --------
    >>> from lifelongrec.data import make_events
    >>> from lifelongrec.models import ItemKNN, Popularity
    >>> past = make_events(["a", "a", "b", "b", "c"], ["x", "y", "x", "y", "z"], [1, 2, 3, 4, 5])
    >>> fresh = make_events(["d", "d"], ["x", "y"], [6, 7])
    >>> both = make_events(["a", "a", "b", "b", "c", "d", "d"], list("xyxyzxy"), range(1, 8))
    >>> gate = PromotionGate("ndcg@2")
    >>> d = gate.decide(Popularity().fit(past), ItemKNN().fit(past), fresh, both)
    >>> d.promoted, d.n_events
    (True, 2)
    """

    _constraints: ClassVar[dict[str, Constraint]] = {
        "metric": _METRIC,
        "tolerance": Number(0),
        "relative": Boolean(),
        "min_events": Integer(1),
        "min_users": Integer(1),
        "min_items": Integer(1),
    }

    def __init__(
        self,
        metric: str = "ndcg@10",
        tolerance: float = 0.0,
        relative: bool = False,
        min_events: int = 1,
        min_users: int = 1,
        min_items: int = 1,
    ) -> None:
        self.metric = metric
        self.tolerance = tolerance
        self.relative = relative
        self.min_events = min_events
        self.min_users = min_users
        self.min_items = min_items

    # get_params, repr, clone and check_params come from Params.
    def _check_params(self) -> None:
        if self.relative and self.tolerance > 1:
            raise ParameterError(
                "tolerance",
                self.tolerance,
                "a share in [0, 1] when relative=True (0.02 = 2% worse)",
            )

    def validate(self) -> tuple[str, int]:
        """Check the settings (:meth:`~lifelongrec._params.Params.check_params`); return
        ``(metric name, K)``.

        Raises
        ------
        ParameterError
            A bad ``metric``, ``tolerance``, ``relative``, ``min_events``, ``min_users``
            or ``min_items``.
        """
        self.check_params()
        return _parse_metric(self.metric)

    def shortfall(self, holdout: pd.DataFrame | Dataset) -> str | None:
        """Why the gate cannot decide on ``holdout`` (too few events, distinct users or
        distinct items), or ``None`` when it can."""
        self.validate()
        frame = frame_of(
            holdout,
            ("user_id", "item_id", "timestamp"),
            what="held-out events",
            frame_name="held-out events",
            accepts="a pandas DataFrame of events or a lifelongrec.data.Dataset",
        )
        n = len(frame)
        if n < self.min_events:
            return f"the held-out slice has {n} events, fewer than min_events={self.min_events}"
        users = int(frame["user_id"].nunique())
        if users < self.min_users:
            return (
                f"the held-out slice has {users} distinct users, fewer than "
                f"min_users={self.min_users}"
            )
        items = int(frame["item_id"].nunique())
        if items < self.min_items:
            return (
                f"the held-out slice has {items} distinct items, fewer than "
                f"min_items={self.min_items}"
            )
        return None

    def threshold(self, champion_value: float) -> float:
        """The least challenger value promoted against ``champion_value``."""
        tol = float(self.tolerance)
        if self.relative:
            return champion_value * (1.0 - tol)
        return champion_value - tol

    def decide(
        self,
        champion: Recommender | None,
        challenger: Recommender,
        holdout: pd.DataFrame | Dataset,
        history: pd.DataFrame | Dataset,
    ) -> GateDecision:
        """Judge ``challenger`` against ``champion`` on the held-out events.

        Parameters
        ----------
        champion
            The model serving now (fitted), or ``None`` when there is none.
        challenger
            The candidate (fitted).
        holdout
            The freshest held-out events, learned by neither model.
        history
            The events a held-out query may see, as in
            :func:`~lifelongrec.evaluation.evaluate_window`: normally every event up to
            the end of the slice, the slice included (each query sees only its user's
            events strictly before it).

        Returns
        -------
        GateDecision

        Raises
        ------
        ParameterError
            Bad settings (see :meth:`validate`), or a model that is not a fitted
            Recommender.
        DataError
            ``holdout`` or ``history`` is not an events frame (from
            :func:`~lifelongrec.evaluation.evaluate_window`).
        """
        name, k = self.validate()
        for label, model in (("champion", champion), ("challenger", challenger)):
            if model is None and label == "champion":
                continue
            if not isinstance(model, Recommender) or not model.is_fitted:
                raise ParameterError(
                    label, type(model).__name__, "a fitted lifelongrec Recommender"
                )
        key = f"{'recall' if name == 'hr' else name}@{k}"
        common = {
            "metric": self.metric,
            "tolerance": float(self.tolerance),
            "relative": bool(self.relative),
        }
        holdout = frame_of(
            holdout,
            ("user_id", "item_id", "timestamp"),
            what="held-out events",
            frame_name="held-out events",
            accepts="a pandas DataFrame of events or a lifelongrec.data.Dataset",
        )
        n_events = len(holdout)
        short = self.shortfall(holdout)
        if short is not None:
            if champion is None:
                return GateDecision(
                    promoted=True,
                    champion_value=None,
                    challenger_value=None,
                    threshold=None,
                    reason=f"no champion yet ({short}, so it was not evaluated)",
                    n_events=n_events,
                    decided=False,
                    **common,
                )
            return GateDecision(
                promoted=False,
                champion_value=None,
                challenger_value=None,
                threshold=None,
                reason=f"kept the champion: {short}",
                n_events=n_events,
                decided=False,
                **common,
            )
        ch = evaluate_window(challenger, holdout, history, k)
        value = ch[key]
        if champion is None:
            return GateDecision(
                promoted=True,
                champion_value=None,
                challenger_value=value,
                threshold=None,
                reason="no champion yet",
                n_events=ch["n_events"],
                challenger_metrics=ch,
                **common,
            )
        cp = evaluate_window(champion, holdout, history, k)
        best = cp[key]
        bar = self.threshold(best)
        promoted = value >= bar
        if self.relative:
            allowed = f"champion x (1 - {float(self.tolerance):g})"
        else:
            allowed = f"champion - {float(self.tolerance):g}"
        verdict = "promoted" if promoted else "rejected"
        relation = ">=" if promoted else "<"
        reason = (
            f"{verdict}: challenger {self.metric} {value:.6f} {relation} {bar:.6f} "
            f"({allowed}; champion {best:.6f}) on {ch['n_events']} held-out events"
        )
        return GateDecision(
            promoted=bool(promoted),
            champion_value=best,
            challenger_value=value,
            threshold=bar,
            reason=reason,
            n_events=ch["n_events"],
            champion_metrics=cp,
            challenger_metrics=ch,
            **common,
        )
