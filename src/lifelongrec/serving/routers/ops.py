"""Health and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from lifelongrec.serving._deps import ServiceDep, has_read_key, require_read
from lifelongrec.serving._schemas import error_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/health",
    summary="Liveness (no key needed); with a read key, what is serving and how",
)
def health(service: ServiceDep, detailed: Annotated[bool, Depends(has_read_key)]) -> dict[str, Any]:
    """Without a key: `{"status": "ok"}` (a liveness probe). With a key that has the
    `read` scope: the live model, counts, the learner's lag and phase timings, the
    settings and the event types accepted."""
    return service.health() if detailed else {"status": "ok"}


@router.get(
    "/metrics",
    dependencies=[require_read],
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **error_responses(401, 403)},
)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
