"""A self-contained HTML report of a run: ``lifelongrec report RUN.json``.

:func:`html_report` turns the JSON that ``lifelongrec evaluate``, ``stream`` or
``simulate`` print with ``--json`` into one HTML page: the run's settings, its tables,
and its plots embedded as PNG data (drawn here with :func:`plot_prequential` and
:func:`plot_simulation`). Nothing in the page is fetched from elsewhere: styles are
inline, images are ``data:`` URLs, there is no script.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lifelongrec._errors import ParameterError
from lifelongrec.evaluation._plots import plot_prequential
from lifelongrec.evaluation._simulate import plot_simulation

__all__ = ["html_report", "report_kind"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #cfd5e2; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #eef1f7; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #e3e7ef; }
.meta { color: #5a6478; font-size: 0.9rem; }
"""


def report_kind(result: Mapping[str, Any]) -> str:
    """``"evaluate"``, ``"stream"`` (one strategy or ``all``) or ``"simulate"``, from
    the keys of a run's JSON; a :class:`ParameterError` for anything else."""
    if not isinstance(result, Mapping):
        raise ParameterError("result", type(result).__name__, "a JSON object of a run")
    strategies = result.get("strategies")
    if isinstance(strategies, Mapping) and strategies:
        first = next(iter(strategies.values()))
        if isinstance(first, Mapping) and "days" in first:
            return "simulate"
        if isinstance(first, Mapping) and "windows" in first:
            return "stream"
    if "windows" in result and "strategy" in result:
        return "stream"
    if "protocol" in result and any(str(k).startswith("ndcg@") for k in result):
        return "evaluate"
    raise ParameterError(
        "result",
        sorted(result)[:12],
        "the JSON of `lifelongrec evaluate`, `stream` or `simulate` (--json)",
    )


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, (dict, list)):
        return html.escape(json.dumps(value, default=str)[:200])
    return html.escape(str(value))


def _table(rows: list[Mapping[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(key))}</td>" for key, _ in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(draw: Callable[[str], None]) -> str:
    """An ``<img>`` with what ``draw(path)`` wrote, embedded."""
    fd, path = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        draw(path)
        data = base64.b64encode(Path(path).read_bytes()).decode()
    finally:
        os.unlink(path)
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _settings(result: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    items = [(k, result[k]) for k in keys if k in result]
    return _table([{"k": k, "v": v} for k, v in items], [("k", "setting"), ("v", "value")])


def _evaluate(result: Mapping[str, Any]) -> list[str]:
    metrics = [k for k in result if "@" in str(k)]
    rows = [{"metric": k, "value": result[k]} for k in metrics]
    return [
        "<h2>Settings</h2>",
        _settings(result, ("model", "params", "data", "protocol", "k", "ranking", "n_events")),
        "<h2>Metrics</h2>",
        _table(rows, [("metric", "metric"), ("value", "value")]),
        f'<p class="meta">fit {_cell(result.get("fit_seconds"))} s, recommend '
        f"{_cell(result.get('recommend_seconds'))} s, {_cell(result.get('n_users_evaluated'))} "
        "users evaluated.</p>",
    ]


def _stream(result: Mapping[str, Any]) -> list[str]:
    runs = result["strategies"] if "strategies" in result else {result["strategy"]: result}
    k = int(result.get("k", 10))
    rows = []
    for name, run in runs.items():
        mean = run.get("mean", {})
        rows.append(
            {
                "strategy": name,
                "ndcg": mean.get(f"ndcg@{k}"),
                "recall": mean.get(f"recall@{k}"),
                "cpu": run.get("total_update_cpu_seconds_after_first"),
                "bwt": (run.get("bwt") or {}).get(f"ndcg@{k}"),
            }
        )
    windows = []
    for name, run in runs.items():
        for w in run["windows"]:
            windows.append(
                {
                    "strategy": name,
                    "window": w["window"],
                    "events": w["n_events"],
                    "ndcg": w.get(f"ndcg@{k}"),
                    "cpu": w.get("update_cpu_seconds"),
                    "drift": w.get("drift_detected"),
                }
            )
    return [
        "<h2>Settings</h2>",
        _settings(result, ("data", "model", "params", "k", "n_windows", "n_events")),
        "<h2>Strategies</h2>",
        _table(
            rows,
            [
                ("strategy", "strategy"),
                ("ndcg", f"mean NDCG@{k}"),
                ("recall", f"mean Recall@{k}"),
                ("cpu", "update CPU s (after the first fit)"),
                ("bwt", f"BWT NDCG@{k}"),
            ],
        ),
        "<h2>Per window</h2>",
        _png(lambda p: plot_prequential(dict(runs), p)),
        _table(
            windows,
            [
                ("strategy", "strategy"),
                ("window", "window"),
                ("events", "events"),
                ("ndcg", f"NDCG@{k}"),
                ("cpu", "update CPU s"),
                ("drift", "drift detected"),
            ],
        ),
    ]


def _simulate(result: Mapping[str, Any]) -> list[str]:
    runs = result["strategies"]
    summary = []
    for name, run in runs.items():
        s = run["summary"]
        after = s.get("after_shift", {})
        summary.append({"strategy": name, **s, **{f"after_{k}": v for k, v in after.items()}})
    columns = [
        ("strategy", "strategy"),
        ("ctr", "mean CTR"),
        ("purchases_per_user", "purchases / active user"),
        ("coverage", "coverage"),
        ("exposure_gini", "exposure Gini"),
        ("update_cpu_seconds", "update CPU s"),
    ]
    if any("after_ctr" in r for r in summary):
        columns += [("after_ctr", "CTR from the shift"), ("after_update_cpu_seconds", "CPU s")]
    days = [{"strategy": n, **d} for n, run in runs.items() for d in run["days"]]
    return [
        "<h2>World</h2>",
        _table(
            [{"k": k, "v": v} for k, v in result["settings"].items()],
            [("k", "setting"), ("v", "value")],
        ),
        f'<p class="meta">model {_cell(result.get("model"))}, hyperparameters '
        f"{_cell(result.get('params'))}</p>",
        "<h2>Strategies</h2>",
        _table(summary, columns),
        "<h2>Per day</h2>",
        _png(lambda p: plot_simulation(dict(result), p)),
        _table(
            days,
            [
                ("strategy", "strategy"),
                ("day", "day"),
                ("sessions", "sessions"),
                ("impressions", "impressions"),
                ("clicks", "clicks"),
                ("ctr", "CTR"),
                ("purchases_per_user", "purchases / active user"),
                ("coverage", "coverage"),
                ("exposure_gini", "exposure Gini"),
                ("update_cpu_seconds", "update CPU s"),
            ],
        ),
    ]


def html_report(result: Mapping[str, Any], title: str | None = None) -> str:
    """The self-contained HTML page of a run's JSON (see the module docstring)."""
    kind = report_kind(result)
    parts = {"evaluate": _evaluate, "stream": _stream, "simulate": _simulate}[kind](result)
    heading = title or f"lifelongrec {kind}: {result.get('model', '')}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1>" + "".join(parts) + "</body></html>"
    )
