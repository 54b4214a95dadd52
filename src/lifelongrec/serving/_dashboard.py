"""The figures of the dashboard's pages (``/dashboard/api/...``), read from the service's
public parts: its counters, the request metrics, the learner, the registry and the store.

Nothing here changes the service. Rates and latency percentiles over a recent window
come from :class:`Sampler`, which keeps a short history of the service's counters and
latency histogram, one sample each time the overview is read (every few seconds while a
dashboard is open): the rate is the counters' difference over the window, the
percentiles those of the requests that finished in it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelongrec._errors import UnknownIdError

if TYPE_CHECKING:
    from lifelongrec.serving._metrics import ServiceMetrics
    from lifelongrec.serving._service import RecommenderService

__all__ = [
    "HISTORY",
    "REACH_K",
    "WINDOW",
    "Sampler",
    "explore_view",
    "overview_view",
    "item_view",
    "learning_view",
    "user_view",
]

#: Seconds the overview's rates and percentiles are computed over.
WINDOW = 60.0
#: Samples kept for the overview's charts (one per overview read, at most one a second).
HISTORY = 300
#: The list length an item's cold-start reach is counted at.
REACH_K = 10
_HISTORY_EVENTS = 20
# Routes the dashboard itself calls while a page is open: left out of the traffic
# figures, so that watching the service does not show up as its load.
_OWN_PREFIX = "/dashboard"


@dataclass(frozen=True)
class _Sample:
    t: float
    events: float
    requests: float
    errors: float
    buckets: tuple[float, ...]  # cumulative request counts per latency bucket
    lag: float


def _latency(metrics: ServiceMetrics) -> tuple[list[float], list[float], float, float]:
    """Bucket bounds (seconds) and cumulative counts over every route but the
    dashboard's, the request count and the 5xx count."""
    bounds: list[float] = []
    counts: dict[float, float] = {}
    n = errors = 0.0
    for family in metrics.latency.collect():
        for s in family.samples:
            if s.labels.get("route", "").startswith(_OWN_PREFIX):
                continue
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                counts[le] = counts.get(le, 0.0) + s.value
            elif s.name.endswith("_count"):
                n += s.value
                if s.labels.get("status", "").startswith("5"):
                    errors += s.value
    bounds = sorted(counts)
    return bounds, [counts[b] for b in bounds], n, errors


def _percentile(bounds: list[float], cumulative: list[float], q: float) -> float | None:
    """The ``q`` quantile (milliseconds) of a cumulative histogram, linear within its
    bucket; ``None`` without requests. Above the last finite bound: that bound."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None
    target = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= target:
            if math.isinf(bound):
                return round(lower * 1000, 3)
            share = (target - below) / (count - below) if count > below else 1.0
            return round((lower + share * (bound - lower)) * 1000, 3)
        lower, below = bound, count
    return round(lower * 1000, 3)


def _percentiles(bounds: list[float], cumulative: list[float]) -> dict[str, Any]:
    return {
        "count": int(cumulative[-1]) if cumulative else 0,
        **{f"p{q}": _percentile(bounds, cumulative, q / 100) for q in (50, 95, 99)},
    }


def _routes(metrics: ServiceMetrics) -> list[dict[str, Any]]:
    """Requests, errors and latency percentiles per route since start."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for family in metrics.latency.collect():
        for s in family.samples:
            route = s.labels.get("route", "")
            if route.startswith(_OWN_PREFIX):
                continue
            row = rows.setdefault(
                (s.labels["method"], route),
                {"method": s.labels["method"], "route": route, "n": 0.0, "err": 0.0, "b": {}},
            )
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                row["b"][le] = row["b"].get(le, 0.0) + s.value
            elif s.name.endswith("_count"):
                row["n"] += s.value
                if s.labels["status"][:1] in {"4", "5"}:
                    row["err"] += s.value
    out = []
    for row in rows.values():
        bounds = sorted(row["b"])
        figures = _percentiles(bounds, [row["b"][b] for b in bounds])
        out.append(
            {
                "method": row["method"],
                "route": row["route"],
                "requests": int(row["n"]),
                "errors": int(row["err"]),
                "p50_ms": figures["p50"],
                "p95_ms": figures["p95"],
                "p99_ms": figures["p99"],
            }
        )
    out.sort(key=lambda r: -r["requests"])
    return out


class Sampler:
    """A short history of the service's traffic counters (see the module docstring).

    The first sample is the service's start, when every counter was zero, so the first
    read already has rates (averaged since the start when it was less than
    :data:`WINDOW` ago)."""

    def __init__(self, service: RecommenderService, metrics: ServiceMetrics) -> None:
        self.service = service
        self.metrics = metrics
        bounds, _, _, _ = _latency(metrics)
        self._start = _Sample(service.started_at, 0.0, 0.0, 0.0, (0.0,) * len(bounds), 0.0)
        self._samples: deque[_Sample] = deque(maxlen=HISTORY)
        self._lock = threading.Lock()

    def _take(self) -> tuple[_Sample, list[float]]:
        bounds, cumulative, n, errors = _latency(self.metrics)
        s = self.service
        sample = _Sample(
            time.time(),
            float(s.counters["events_ingested"]),
            n,
            errors,
            tuple(cumulative),
            float(s.lag()["events"]),
        )
        return sample, bounds

    def overview(self) -> dict[str, Any]:
        """Take a sample and return the overview's traffic figures and series."""
        now, bounds = self._take()
        with self._lock:
            if not self._samples or now.t - self._samples[-1].t >= 1.0:
                self._samples.append(now)
            history = list(self._samples)
        base = self._start
        for sample in history:
            if now.t - sample.t <= WINDOW:
                break
            base = sample
        span = max(now.t - base.t, 1e-9)
        window = [a - b for a, b in zip(now.buckets, base.buckets, strict=False)]
        series = []
        for before, after in zip([self._start, *history], history, strict=False):
            dt = after.t - before.t
            if dt <= 0:
                continue
            done = [a - b for a, b in zip(after.buckets, before.buckets, strict=False)]
            series.append(
                {
                    "t": round(after.t, 3),
                    "events_per_second": round((after.events - before.events) / dt, 3),
                    "requests_per_second": round((after.requests - before.requests) / dt, 3),
                    "p95_ms": _percentile(bounds, done, 0.95) if len(done) == len(bounds) else None,
                    "lag_events": after.lag,
                }
            )
        return {
            "window_seconds": round(span, 3),
            "events_per_second": round((now.events - base.events) / span, 3),
            "requests_per_second": round((now.requests - base.requests) / span, 3),
            "errors_per_second": round((now.errors - base.errors) / span, 3),
            "latency_ms": _percentiles(bounds, window)
            if len(window) == len(bounds)
            else _percentiles(bounds, list(now.buckets)),
            "latency_ms_since_start": _percentiles(bounds, list(now.buckets)),
            "requests": int(now.requests),
            "routes": _routes(self.metrics),
            "series": series[-HISTORY:],
        }


def overview_view(service: RecommenderService, sampler: Sampler) -> dict[str, Any]:
    """The overview page's figures: traffic (:meth:`Sampler.overview`), the learner
    and the model serving now."""
    traffic = sampler.overview()
    stats = service.learner_stats()
    counters = {k: int(v) for k, v in service.counters.items()}
    live = service.live
    return {
        "time": round(time.time(), 3),
        "uptime_seconds": round(time.time() - service.started_at, 3),
        "model_version": live.version,
        "champion": service.registry.champion(),
        "model": type(live.model).__name__,
        "n_events": int(service.store.n_events),
        "n_items": int(len(live.index) if live.index is not None else live.model.n_items),
        "n_users": int(live.model.n_users),
        "events_ingested": counters["events_ingested"],
        "impressions_logged": counters["impressions_logged"],
        "traffic": traffic,
        "learner": {
            "running": bool(service.learner.running),
            "lag_events": float(service.lag()["events"]),
            "events": int(stats["n_events"]),
            "batches": int(stats["n_batches"]),
            "trained_events": int(stats["n_trained_events"]),
            "events_per_second": _finite(stats.get("events_per_second")),
            "challengers": counters["challengers"],
            "promotions": counters["promotions"],
            "errors": counters["learner_errors"],
            "phase_seconds": service.timings.as_dict(),
        },
    }


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return round(v, 3) if math.isfinite(v) else None


def _drift(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drift detections recorded with the versions (a ``drift`` entry of a version's
    tags or data: what a learner that runs a drift detector writes)."""
    out = []
    for v in versions:
        for where in ("tags", "data"):
            found = (v.get(where) or {}).get("drift")
            if found:
                records = found if isinstance(found, list) else [found]
                out.extend({"version": v["version"], "detection": r} for r in records)
    return out


def learning_view(service: RecommenderService) -> dict[str, Any]:
    """The learning page's figures: the gate's decision on every version, the
    promotion history, online metrics per version by hour and drift detections."""
    models = service.models()
    decisions = []
    for v in models["versions"]:
        d = v.get("decision") or {}
        decisions.append(
            {
                "version": v["version"],
                "created_at": v["created_at"],
                "parent": v["parent"],
                "status": v["status"],
                "registered_as": v["registered_as"],
                "judged": bool(d),
                "promoted": d.get("promoted"),
                "decided": d.get("decided"),
                "metric": d.get("metric"),
                "champion_value": d.get("champion_value"),
                "challenger_value": d.get("challenger_value"),
                "threshold": d.get("threshold"),
                "n_events": d.get("n_events"),
                "reason": d.get("reason"),
            }
        )
    gate = service.gate.get_params()
    return {
        "champion": models["champion"],
        "live": models["live"],
        "gate": {k: v for k, v in gate.items() if isinstance(v, (str, int, float, bool))},
        "decisions": decisions,
        "history": service.registry.history(),
        "online": service.online_metrics(by_hour=True),
        "drift": _drift(models["versions"]),
    }


def _history(service: RecommenderService, user_id: str) -> tuple[int, list[dict[str, Any]]]:
    frame = service.store.user_events(user_id)
    n = len(frame)
    recent = frame.iloc[-_HISTORY_EVENTS:][::-1]  # newest first
    details = service.store.item_details(recent["item_id"].astype(str).tolist())
    rows = []
    for r in recent.itertuples(index=False):
        title, cats = details.get(str(r.item_id), (None, []))
        value = float(r.value)
        rows.append(
            {
                "item_id": str(r.item_id),
                "title": title,
                "categories": list(cats),
                "event_type": str(r.event_type),
                "timestamp": int(r.timestamp),
                "value": value if math.isfinite(value) else None,
            }
        )
    return n, rows


def user_view(service: RecommenderService, user_id: str, k: int = 10) -> dict[str, Any]:
    """A user's stored history (newest first, the last 20 events) and their
    recommendations now, with reasons. The recommendations are an answer like any
    other: their impressions are logged.

    Raises
    ------
    UnknownIdError
        The store holds no event of the user.
    """
    n, history = _history(service, user_id)
    if n == 0:
        raise UnknownIdError("user", [user_id], hint="the store holds no event of this user")
    recs = service.recommend(user_id, k, exclude_seen=True, explain=True, details=True)
    return {"user_id": user_id, "n_events": n, "history": history, "recommendations": recs}


def _reach(service: RecommenderService, item_id: str, k: int) -> dict[str, Any] | None:
    """Of the users whose vectors the service holds now (those served recently), how
    many have the item in their top ``k`` of the index (seen items not excluded);
    ``None`` for a model served without an index."""
    live = service.live
    if live.index is None or item_id not in live.index:
        return None
    users = list(live.vectors)
    vectors = [v for v in (live.cached_vector(u) for u in users) if v is not None]
    if not vectors:
        return {"k": k, "users_sampled": 0, "users_with_item_in_top_k": 0}
    ids, _ = live.index.search(np.stack(vectors), k)
    ids = np.asarray(ids, dtype=object).reshape(len(vectors), -1)
    hits = int(sum(item_id in set(row.tolist()) for row in ids))
    return {"k": k, "users_sampled": len(vectors), "users_with_item_in_top_k": hits}


def item_view(service: RecommenderService, item_id: str, k: int = 10) -> dict[str, Any]:
    """An item's catalogue entry, similar items and reach so far: impressions, users
    shown, events, and its reach among recently served users
    (:data:`REACH_K`).

    Raises
    ------
    UnknownIdError
        Neither the catalogue nor the live model knows the item.
    """
    try:
        entry: dict[str, Any] | None = service.item(item_id)
    except UnknownIdError:
        entry = None
    try:
        similar = service.similar(item_id, k, details=True)["items"]
        in_model = True
    except UnknownIdError:
        similar, in_model = [], False
    if entry is None and not in_model:
        raise UnknownIdError(
            "item", [item_id], hint="neither the catalogue nor the live model has it"
        )
    service.flush_impressions()  # the buffered ones count too
    return {
        "item_id": item_id,
        "item": entry,
        "in_model": in_model,
        "similar": similar,
        "reach": {**service.store.item_reach(item_id), "top_k": _reach(service, item_id, REACH_K)},
    }


def explore_view(service: RecommenderService, n: int = 10) -> dict[str, Any]:
    """Starting points for the explorer: the most recently active users and the most
    popular live items."""
    last = service.store.user_last_seqs()
    recent = sorted(last, key=last.__getitem__, reverse=True)[:n]
    popular = [i for i, _ in service.live.popular[:n]]
    return {"recent_users": recent, "popular_items": popular}
