"""Online metrics: impressions and the feedback attributed to them, per model version
and arm."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from lifelongrec.data import TIMESTAMP_MAX, TIMESTAMP_MIN
from lifelongrec.serving._deps import ServiceDep, require_read
from lifelongrec.serving._schemas import OnlineMetrics, error_responses

router = APIRouter(tags=["feedback"])

Bound = Annotated[int | None, Query(ge=TIMESTAMP_MIN, le=TIMESTAMP_MAX + 1)]


@router.get(
    "/online-metrics",
    response_model=OnlineMetrics,
    dependencies=[require_read],
    summary="Online metrics per model version and arm (CTR, conversion, ...)",
    responses=error_responses(401, 403, 422),
)
def online_metrics(
    service: ServiceDep,
    by: Literal["total", "hour"] = "total",
    since: Bound = None,
    until: Bound = None,
) -> OnlineMetrics:
    """Every impression the service logged in `[since, until)` (UTC epoch seconds;
    absent: unbounded), with the feedback events attributed to it: by the event's
    `request_id`, else to the latest impression of its item to its user within the
    attribution window. One row per model version and arm, or per hour of the
    impression with `by=hour`. Clicks are events of the `click_types`, conversions
    those of the `conversion_types` (service settings)."""
    f = service.config.feedback
    rows = service.online_metrics(by_hour=by == "hour", since=since, until=until)
    return OnlineMetrics(
        by=by,
        click_types=list(f.click_types),
        conversion_types=list(f.conversion_types),
        attribution_window=int(f.attribution_window),
        rows=rows,
    )
