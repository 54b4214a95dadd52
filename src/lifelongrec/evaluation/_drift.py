"""Drift detection on the prequential hit stream.

During prequential evaluation (:func:`lifelongrec.evaluation.prequential`) every event of
windows 1..N-1 is predicted before it is learned, so the stream of its per-event figures
(hit@K, or its NDCG@K gain) in time order tells at once when the model stopped fitting
the world: the users' interests moved, new items took the traffic. A
:class:`DriftMonitor` watches that stream with a detector from ``river.drift`` (ADWIN by
default, or Page-Hinkley) and records where it fired; the protocol then lets the update
strategy react (:meth:`lifelongrec.training.Strategy.on_drift`).

Why hit@K by default: it is the Recall@K the protocol reports, a 0/1 (Bernoulli) value,
so ADWIN's bound for values in ``[0, 1]`` applies as designed and a change in the stream
is a change in the very figure people compare. The NDCG gain (``signal="ndcg"``) is in
``[0, 1]`` too but adds the spread of the rank inside the top K, which is noise when
the question is only "does the model still find the next item".
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from lifelongrec._errors import ParameterError
from lifelongrec._params import Constraint, Integer, Number, OneOf, Params

__all__ = ["DETECTORS", "DriftMonitor"]

#: Detector names and the ``river.drift`` classes they stand for.
DETECTORS: dict[str, str] = {"adwin": "ADWIN", "page-hinkley": "PageHinkley"}

_SIGNALS = ("hit", "ndcg")
_DIRECTIONS = ("down", "up", "both")


def _river_class(detector: str) -> type:
    from river import drift as river_drift

    return getattr(river_drift, DETECTORS[detector])


#: What ``delta`` accepts, per detector (checked against the detector in
#: ``_check_params``), and ``threshold`` (Page-Hinkley only).
_DELTA: dict[str, Constraint] = {
    "adwin": Number(0, 1, low_open=True, high_open=True, none=True),
    "page-hinkley": Number(0, none=True),
}
_THRESHOLD = Number(0, low_open=True, none=True)


class DriftMonitor(Params):
    """Watch a stream of per-event figures in ``[0, 1]`` for a change of their mean.

    Parameters
    ----------
    detector
        ``"adwin"`` (``river.drift.ADWIN``: adaptive windowing, Bifet & Gavaldà 2007; no
        magnitude to tune, ``delta`` is a confidence) or ``"page-hinkley"``
        (``river.drift.PageHinkley``: a cumulative-sum test; ``delta`` is the magnitude
        of change tolerated, ``threshold`` the alarm level).
    delta
        The detector's ``delta``; ``None`` keeps river's default (ADWIN 0.002, in
        ``(0, 1)``; Page-Hinkley 0.005, at least 0).
    threshold
        Page-Hinkley's alarm threshold (> 0; ``None``: river's default, 50). ADWIN has
        none: giving one with ADWIN is an error.
    grace_period
        Events seen before the detector may fire (ADWIN's ``grace_period``, Page-Hinkley's
        ``min_instances``; an integer >= 1; ``None``: river's defaults, 10 and 30).
    signal
        What is fed per event: ``"hit"`` (1 when the item is in the top K, else 0: the
        Recall@K of the protocol) or ``"ndcg"`` (its NDCG@K gain, ``1 / log2(rank + 2)``
        for a hit, else 0). See the module docstring for why ``"hit"`` is the default.
    direction
        Which changes count: ``"down"`` (the figure dropped: the model lost touch, the
        default), ``"up"`` or ``"both"``. Page-Hinkley tests the direction itself (its
        ``mode``; ``"both"`` runs one detector per direction); ADWIN fires on any
        change, and its estimate of the mean before and after the change tells the
        direction: changes in a direction that does not count are counted in
        ``n_ignored_``, not dropped silently.

    Attributes
    ----------
    detections_ : list[dict]
        One record per detection: ``index`` (0-based position in the monitored stream),
        ``timestamp`` and ``window`` (when :meth:`update` was given them), ``direction``
        (``"down"`` or ``"up"``), and for ADWIN ``estimate_before`` / ``estimate_after``,
        its mean of the signal just before and just after the change (``None`` for
        Page-Hinkley).
    n_seen_ : int
        Values fed so far.
    n_ignored_ : int
        ADWIN changes in a direction that does not count.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> hits = np.r_[rng.random(3000) < 0.3, rng.random(3000) < 0.05]
    >>> monitor = DriftMonitor("adwin")
    >>> found = monitor.update(hits)
    >>> len(found) >= 1 and 3000 <= found[0]["index"] < 3500, found[0]["direction"]
    (True, 'down')
    """

    name: ClassVar[str] = "drift"
    _constraints: ClassVar[dict[str, Constraint]] = {
        "detector": OneOf(*DETECTORS),
        "grace_period": Integer(1, none=True),
        "signal": OneOf(*_SIGNALS),
        "direction": OneOf(*_DIRECTIONS),
    }

    def __init__(
        self,
        detector: str = "adwin",
        *,
        delta: float | None = None,
        threshold: float | None = None,
        grace_period: int | None = None,
        signal: str = "hit",
        direction: str = "down",
    ) -> None:
        self.detector = detector
        self.delta = delta
        self.threshold = threshold
        self.grace_period = grace_period
        self.signal = signal
        self.direction = direction
        self.check_params()
        self.reset()

    # ------------------------------------------------------------ parameters
    # get_params, repr, clone (a new monitor with the same settings and nothing seen) and
    # check_params come from Params; the rules below depend on the detector.
    def _check_params(self) -> None:
        label = {"adwin": "ADWIN", "page-hinkley": "Page-Hinkley"}[self.detector]
        delta = _DELTA[self.detector]
        if not delta.accepts(self.delta):
            raise ParameterError("delta", self.delta, f"{delta.expected} for {label}")
        if self.threshold is not None and self.detector != "page-hinkley":
            raise ParameterError(
                "threshold", self.threshold, "None with ADWIN (only Page-Hinkley has a threshold)"
            )
        _THRESHOLD.check("threshold", self.threshold)

    def _river_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.delta is not None:
            kwargs["delta"] = float(self.delta)
        if self.detector == "adwin":
            if self.grace_period is not None:
                kwargs["grace_period"] = int(self.grace_period)
        else:
            if self.threshold is not None:
                kwargs["threshold"] = float(self.threshold)
            if self.grace_period is not None:
                kwargs["min_instances"] = int(self.grace_period)
        return kwargs

    def detector_params(self) -> dict[str, Any]:
        """Every setting of the river detector(s) as run (river's defaults filled in)."""
        cls = _river_class(self.detector)
        sig = inspect.signature(cls.__init__)
        params = {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name != "self" and p.default is not inspect.Parameter.empty
        }
        params.update(self._river_kwargs())
        if self.detector == "page-hinkley":
            params["mode"] = self.direction
        return params

    # ------------------------------------------------------------- the stream
    def reset(self) -> None:
        """Forget the stream: fresh detector(s), no detections."""
        cls = _river_class(self.detector)
        kwargs = self._river_kwargs()
        if self.detector == "page-hinkley":
            modes = ["down", "up"] if self.direction == "both" else [self.direction]
            self._detectors = [(m, cls(**kwargs, mode=m)) for m in modes]
        else:
            self._detectors = [(None, cls(**kwargs))]
        self.detections_: list[dict[str, Any]] = []
        self.n_seen_ = 0
        self.n_ignored_ = 0

    def update(
        self,
        values: Iterable[float] | np.ndarray,
        timestamps: Iterable[int] | np.ndarray | None = None,
        *,
        window: int | None = None,
    ) -> list[dict[str, Any]]:
        """Feed ``values`` (in time order, each in ``[0, 1]``); the detections they caused.

        Parameters
        ----------
        values
            The per-event figures (``bool`` hits are taken as 0/1).
        timestamps
            Optional, one per value: recorded with a detection.
        window
            Optional window number, recorded with a detection.

        Returns
        -------
        list[dict]
            The new records of :attr:`detections_` (see the class docstring).

        Raises
        ------
        ParameterError
            ``values`` not one-dimensional numbers in ``[0, 1]`` (NaN included), or
            ``timestamps`` of another length.
        """
        x = np.asarray(values)
        if x.dtype == bool:
            x = x.astype(np.float64)
        if x.ndim != 1 or not np.issubdtype(x.dtype, np.number):
            raise ParameterError(
                "values", type(values).__name__, "a one-dimensional sequence of numbers"
            )
        x = x.astype(np.float64)
        bad = ~((x >= 0) & (x <= 1))  # NaN fails both comparisons
        if bad.any():
            raise ParameterError(
                "values",
                f"{x[bad][0]} at position {int(np.flatnonzero(bad)[0])}",
                "numbers in [0, 1] (a per-event hit or NDCG gain)",
            )
        ts = None
        if timestamps is not None:
            ts = np.asarray(timestamps)
            if ts.shape != x.shape or not np.issubdtype(ts.dtype, np.number):
                raise ParameterError(
                    "timestamps",
                    f"shape {ts.shape}, dtype {ts.dtype}",
                    f"one number per value, shape ({len(x)},)",
                )
        found: list[dict[str, Any]] = []
        for i, v in enumerate(x.tolist()):
            for mode, det in self._detectors:
                before = getattr(det, "estimation", None) if mode is None else None
                det.update(v)
                if not det.drift_detected:
                    continue
                if mode is None:  # ADWIN: the direction from its mean before and after
                    after = float(det.estimation)
                    way = "down" if after < before else "up"
                    if self.direction != "both" and way != self.direction:
                        self.n_ignored_ += 1
                        continue
                    est = {"estimate_before": float(before), "estimate_after": after}
                else:
                    way = mode
                    est = {"estimate_before": None, "estimate_after": None}
                found.append(
                    {
                        "index": self.n_seen_ + i,
                        "timestamp": None if ts is None else int(ts[i]),
                        "window": window,
                        "direction": way,
                        **est,
                    }
                )
        self.n_seen_ += len(x)
        self.detections_.extend(found)
        return found
