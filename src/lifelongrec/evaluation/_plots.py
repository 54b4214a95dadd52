"""Plots of evaluation results (matplotlib, drawn off-screen, no global backend change)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lifelongrec._errors import ParameterError

__all__ = ["plot_prequential"]


def _runs(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``{label: result}`` from one :func:`prequential` result or a mapping of them."""
    if "windows" in results and "k" in results:
        return {str(results.get("strategy", "run")): results}
    runs = {str(name): r for name, r in results.items()}
    if not runs or not all(isinstance(r, Mapping) and "windows" in r for r in runs.values()):
        raise ParameterError(
            "results",
            type(results).__name__,
            "a prequential() result or a mapping {label: prequential() result}",
        )
    return runs


def _window_x(records: list[Mapping[str, Any]], t: int) -> float:
    """Where timestamp ``t`` lies on the window axis: window ``w`` spans ``[w - 0.5,
    w + 0.5]`` linearly in time; between two windows, on their boundary."""
    for r in records:
        if r["start"] <= t <= r["end"]:
            span = r["end"] - r["start"]
            return r["window"] - 0.5 + ((t - r["start"]) / span if span > 0 else 0.5)
        if t < r["start"]:
            return r["window"] - 0.5
    return records[-1]["window"] + 0.5


def plot_prequential(results: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a PNG of prequential runs: NDCG@K per window, and cumulative update seconds.

    Runs with drift detection (``prequential(..., drift=...)``) get a dashed vertical
    line in their colour at each detection, placed by its timestamp inside its window
    (window ``w`` spans ``[w - 0.5, w + 0.5]``), and the true shift of the data, when it
    has one, a dotted black line.

    Parameters
    ----------
    results
        One result of :func:`~lifelongrec.evaluation.prequential`, or a mapping
        ``{label: result}`` (e.g. one per strategy), drawn as one line each.
    path
        The ``.png`` file to write (its folder is created).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ParameterError
        ``path`` does not end in ``.png``, or ``results`` is not a result or a mapping
        of results.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ParameterError("path", str(path), "a file name ending in .png")
    runs = _runs(results)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_metric, ax_cost = fig.subplots(1, 2)
    ks = {int(r["k"]) for r in runs.values()}
    key = f"ndcg@{ks.pop()}" if len(ks) == 1 else None
    shifts: set[float] = set()
    for label, run in runs.items():
        recs = run["windows"]
        metric = key or f"ndcg@{int(run['k'])}"
        xs = [r["window"] for r in recs if r.get(metric) is not None]
        ys = [r[metric] for r in recs if r.get(metric) is not None]
        (line,) = ax_metric.plot(xs, ys, marker="o", label=label)
        drift = run.get("drift") or {}
        for j, d in enumerate(drift.get("detections") or []):
            if d.get("timestamp") is None:
                continue
            ax_metric.axvline(
                _window_x(recs, d["timestamp"]),
                color=line.get_color(),
                linestyle="--",
                alpha=0.7,
                label=f"{label}: drift detected" if j == 0 else None,
            )
        if drift.get("true_shift_timestamp") is not None:
            shifts.add(_window_x(recs, drift["true_shift_timestamp"]))
        cost = np.cumsum([r["update_seconds"] for r in recs])
        ax_cost.plot([r["window"] for r in recs], cost, marker="o", label=label)
    for j, x in enumerate(sorted(shifts)):
        ax_metric.axvline(x, color="black", linestyle=":", label="true shift" if j == 0 else None)
    models = sorted({str(r.get("model")) for r in runs.values()})
    ax_metric.set_title(
        f"{(key or 'NDCG@K').upper()} per window, before learning it ({', '.join(models)})"
    )
    ax_metric.set_xlabel("window")
    ax_metric.set_ylabel((key or "NDCG@K").upper())
    ax_metric.grid(alpha=0.3)
    ax_metric.legend(fontsize="small")
    ax_cost.set_title("cumulative update time (window 0: first fit)")
    ax_cost.set_xlabel("window")
    ax_cost.set_ylabel("seconds")
    ax_cost.grid(alpha=0.3)
    ax_cost.legend()
    for ax in (ax_metric, ax_cost):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    return path
