"""Plain-text reports of evaluation results: what ``lifelongrec evaluate``, ``demo`` and
``stream`` print without ``--json``.

Each function takes the dicts the runners return (:func:`run_evaluation`,
:func:`compare_models`, :func:`run_stream`) and returns text; nothing is printed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lifelongrec.data import SYNTHETIC

__all__ = [
    "comparison_report",
    "evaluation_report",
    "format_table",
    "metric_columns",
    "prequential_report",
    "stream_report",
]


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table of ``rows`` (dicts) in ``columns``; floats with 4
    decimals, missing cells blank; the first column left-aligned, the others right.

    Examples
    --------
    >>> print(format_table([{"model": "ease", "ndcg@10": 0.123456}, {"model": "bpr", "ndcg@10": 1}],
    ...                    ["model", "ndcg@10"]))
    model  ndcg@10
    -----  -------
    ease    0.1235
    bpr          1
    """

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    out = [line, sep]
    for b in body:
        out.append(
            "  ".join(
                v.rjust(w) if i else v.ljust(w)
                for i, (v, w) in enumerate(zip(b, widths, strict=True))
            )
        )
    return "\n".join(out)


def metric_columns(k: int) -> list[str]:
    """The offline report's metric names at cut-off ``k``, in table order.

    Examples
    --------
    >>> metric_columns(5)[:3]
    ['precision@5', 'recall@5', 'f1@5']
    """
    return [
        f"{m}@{k}" for m in ("precision", "recall", "f1", "hr", "ndcg", "mrr", "map", "coverage")
    ]


def evaluation_report(result: Mapping[str, Any], data: str, protocol: str) -> str:
    """One :func:`run_evaluation` result: a line on the data and the protocol (as given
    to the runner: ``"loo"``, where the result names the split ``"leave_one_out"``),
    then its figures as a table (sampled metrics and AUC appended when present)."""
    k = result["k"]
    cols = ["model", *metric_columns(k), "fit_seconds", "recommend_seconds"]
    extra = [c for c in result if c.startswith("sampled") or c == "auc"]
    head = (
        f"data={data} protocol={protocol} "
        f"ranking={result.get('ranking')} users={result.get('n_users_evaluated')}"
    )
    return head + "\n" + format_table([result], cols + extra)


def comparison_report(rows: Sequence[Mapping[str, Any]], k: int) -> str:
    """:func:`compare_models` rows as one table, then a line per model that gave none."""
    cols = ["model", *metric_columns(k), "fit_seconds", "recommend_seconds"]
    lines = [format_table(rows, cols)]
    lines += [f"{r['model']}: {r['note']}" for r in rows if "note" in r]
    return "\n".join(lines)


def _drift_lines(result: Mapping[str, Any], when: Callable[[Any], str]) -> list[str]:
    """Lines on the drift detections and the strategy's reactions of one result."""
    drift = result.get("drift")
    if not drift:
        return []
    found = drift["detections"]
    where = ", ".join(f"window {d['window']} at {when(d['timestamp'])}" for d in found)
    lines = [
        f"drift ({drift['detector']}, {drift['params']['signal']}): "
        f"{len(found)} detection{'' if len(found) == 1 else 's'}" + (f": {where}" if found else "")
    ]
    if drift["true_shift_timestamp"] is not None:
        first = drift["first_detection_after_shift"]
        lag = (
            "not detected after it"
            if first is None
            else f"first detected {first['delay_events']} events "
            f"({first['delay_seconds'] / 86400:.1f} days) later"
        )
        lines.append(f"true shift at {when(drift['true_shift_timestamp'])}: {lag}")
    for r in drift["reactions"]:
        epochs, budget = r["partial_fit_epochs"], r.get("partial_fit_budget")
        heavier = f", partial_fit_epochs {epochs[0]} -> {epochs[1]}" if epochs else ""
        if budget:
            heavier = f", partial_fit_budget {budget[0]:g} -> {budget[1]:g}"
        lines.append(
            f"reaction in the update of window {r['window']}: replay share "
            f"{r['replay_share']:.2f} ({r['n_replayed']} events){heavier}"
        )
    return lines


def prequential_report(result: Mapping[str, Any], k: int, dates: bool = True) -> str:
    """One :func:`prequential` result: a line on the run, the per-window table, the mean
    over the evaluated windows, backward transfer, and the drift detections (window
    bounds as UTC dates with ``dates``, else epoch seconds)."""

    def when(t: int) -> str:
        return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d") if dates else str(t)

    recall, ndcg = f"recall@{k}", f"ndcg@{k}"
    rows = [
        {
            **r,
            "start": when(r["start"]),
            "end": when(r["end"]),
            "update_s": r["update_seconds"],
            "update_cpu_s": r["update_cpu_seconds"],
            "drift": "yes" if r.get("drift_detected") else "",
        }
        for r in result["windows"]
    ]
    cols = ["window", "start", "end", "n_events", "n_users", recall, ndcg]
    cols += [f"{ndcg}_after_update", f"{ndcg}_final", "n_unknown_items", "update_s"]
    cols += ["update_cpu_s"] + (["drift"] if result.get("drift") else [])
    mean, bwt = result["mean"], result["bwt"]

    def num(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    windows = bwt["windows"]
    span = f"windows {windows[0]}-{windows[-1]}" if windows else "no windows"
    lines = [
        f"strategy={result['strategy']} model={result['model']} windows={result['n_windows']} "
        f"events={result['n_events']} K={k}",
        format_table(rows, cols),
        f"mean over windows 1-{result['n_windows'] - 1}: {recall}={num(mean[recall])} "
        f"{ndcg}={num(mean[ndcg])}; total update seconds "
        f"{result['total_update_seconds']:.2f} ({result['total_update_seconds_after_first']:.2f}"
        f" after the first fit; CPU {result['total_update_cpu_seconds']:.2f})",
        f"backward transfer ({span}): {recall}={num(bwt[recall])} {ndcg}={num(bwt[ndcg])}",
        *_drift_lines(result, when),
    ]
    return "\n".join(lines)


def stream_report(result: Mapping[str, Any], k: int) -> str:
    """A :func:`run_stream` result: each strategy's :func:`prequential_report`, then a
    table comparing the strategies (when there are several) and the plot's file.

    Window bounds show as dates for the synthetic world and for epoch-second times (after
    1973); other data's times show as numbers.
    """
    runs = result.get("strategies") or {result["strategy"]: result}
    dates = result["data"] == SYNTHETIC or (
        min(r["windows"][0]["start"] for r in runs.values()) > 10**8
    )
    lines = [f"data={result['data']} full ranking, next item, only the past visible"]
    for run in runs.values():
        lines += ["", prequential_report(run, k, dates)]
    if len(runs) > 1:
        summary = [
            {
                "strategy": name,
                f"recall@{k}": r["mean"][f"recall@{k}"],
                f"ndcg@{k}": r["mean"][f"ndcg@{k}"],
                f"bwt_ndcg@{k}": r["bwt"][f"ndcg@{k}"],
                "update_seconds": r["total_update_seconds"],
                "after_first_s": r["total_update_seconds_after_first"],
                "update_cpu_s": r["total_update_cpu_seconds"],
                **({"drifts": r["drift"]["n_detections"]} if r.get("drift") else {}),
            }
            for name, r in runs.items()
        ]
        lines += ["", format_table(summary, list(summary[0]))]
    if "plot" in result:
        lines.append(f"plot: {result['plot']}")
    return "\n".join(lines)
