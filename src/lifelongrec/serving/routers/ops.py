"""Health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from lifelongrec.serving._deps import ServiceDep, require_read

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness and what is serving (no key needed)")
def health(service: ServiceDep) -> dict[str, Any]:
    return service.health()


@router.get(
    "/metrics",
    dependencies=[require_read],
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
