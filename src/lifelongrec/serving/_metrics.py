"""Prometheus metrics of the service (``GET /metrics``, text exposition format).

Each app gets its own :class:`prometheus_client.CollectorRegistry`, so several services
in one process (tests) do not mix their figures.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from lifelongrec.serving._service import RecommenderService

__all__ = ["ONLINE_TTL", "ServiceMetrics"]

#: Seconds a scrape reuses the last online metrics (they join every impression with
#: the feedback events; GET /online-metrics always computes them afresh).
ONLINE_TTL = 10.0

# Request latency buckets (seconds): fine below 50 ms, where the targets are.
_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class _ServiceCollector:
    """Figures read from the service when /metrics is scraped."""

    def __init__(self, service: RecommenderService) -> None:
        self.service = service
        self._online_rows: list[dict] | None = None
        self._online_at = 0.0

    def describe(self) -> list:
        return []

    def collect(self):  # noqa: ANN201 (prometheus_client protocol)
        s = self.service
        c = s.counters
        total = GaugeMetricFamily(
            "lifelongrec_events_ingested",
            "Events written to the store since start",
            value=c["events_ingested"],
        )
        yield total
        yield GaugeMetricFamily(
            "lifelongrec_events_duplicate",
            "Events acknowledged again through a known event_id since start",
            value=c["events_duplicate"],
        )
        yield GaugeMetricFamily(
            "lifelongrec_online_lag_events",
            "Stored events the background learner has not trained on yet",
            value=s.lag()["events"],
        )
        info = GaugeMetricFamily(
            "lifelongrec_model_info", "The model version serving now (value 1)", labels=["version"]
        )
        info.add_metric([s.live_version], 1.0)
        yield info
        number = s.live_version.lstrip("v")
        yield GaugeMetricFamily(
            "lifelongrec_model_version",
            "Number of the model version serving now",
            value=float(number) if number.isdigit() else 0.0,
        )
        for name, help_ in (
            ("challengers", "Challengers judged by the promotion gate"),
            ("promotions", "Challengers promoted to champion"),
            ("learner_errors", "Background learner rounds that failed"),
        ):
            yield GaugeMetricFamily(f"lifelongrec_{name}", help_, value=c[name])
        for name, help_ in (
            ("impressions_logged", "Impressions stored since start"),
            ("impressions_dropped", "Impressions not logged: the buffer was full"),
            ("impression_flush_errors", "Impression flushes that failed (retried)"),
            ("bus_published", "Stored event batches published on the event bus"),
            ("bus_publish_errors", "Publishes on the event bus that failed (stored all the same)"),
            ("bus_events_in", "Events other processes stored, taken in from the event bus"),
            ("ingest_read_waits", "Ingestion steps that waited for serving reads in flight"),
            ("ingest_read_wait_seconds", "Seconds ingestion steps waited for serving reads"),
        ):
            yield GaugeMetricFamily(f"lifelongrec_{name}", help_, value=c[name])
        yield from self._online(s)
        learner = s.learner_stats()
        for name, help_ in (
            ("n_batches", "Online parameter updates taken"),
            ("n_trained_events", "Events the online updates trained on"),
        ):
            yield GaugeMetricFamily(f"lifelongrec_learner_{name}", help_, value=learner[name])

    def _online(self, s: RecommenderService):  # noqa: ANN202 (metric families)
        """Online metrics per model version and arm, computed at most every
        :data:`ONLINE_TTL` seconds (a join over the impressions and feedback events)."""
        now = time.monotonic()
        if self._online_rows is None or now - self._online_at > ONLINE_TTL:
            self._online_rows, self._online_at = s.online_metrics(), now
        families = {
            name: GaugeMetricFamily(f"lifelongrec_online_{name}", help_, labels=["version", "arm"])
            for name, help_ in (
                ("impressions", "Impressions logged, by model version and experiment arm"),
                ("clicks", "Impressions with an attributed click"),
                ("conversions", "Attributed conversion events (e.g. purchases)"),
                ("ctr", "Clicks per impression"),
                ("coec", "Position-aware CTR: clicks over the clicks expected at their ranks"),
            )
        }
        for row in self._online_rows:
            labels = [row["model_version"], row["arm"] or ""]
            for name, family in families.items():
                if row[name] is not None:
                    family.add_metric(labels, float(row[name]))
        yield from families.values()


class _FrozenCollector:
    """How many objects :func:`gc.freeze` took out of the collections (``lifelongrec
    serve`` freezes what its start made, so a full collection does not walk it)."""

    def collect(self):
        family = GaugeMetricFamily(
            "python_gc_frozen_objects",
            "Objects in the permanent generation (gc.freeze), skipped by every collection",
        )
        family.add_metric([], float(gc.get_freeze_count()))
        yield family


class ServiceMetrics:
    """Request latency histograms and the service's figures."""

    def __init__(self, service: RecommenderService) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "lifelongrec_request_seconds",
            "Request latency by route",
            ["method", "route", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "lifelongrec_requests",
            "Requests by route",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(_ServiceCollector(service))
        GCCollector(registry=self.registry)  # collections and objects by generation
        self.registry.register(_FrozenCollector())

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.latency.labels(*labels).observe(seconds)
        self.requests.labels(*labels).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
