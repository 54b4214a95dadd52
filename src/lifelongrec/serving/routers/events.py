"""POST /events: behaviour events in, durably."""

from __future__ import annotations

import time

from fastapi import APIRouter, status

from lifelongrec.serving._deps import ServiceDep, require_write
from lifelongrec.serving._schemas import Ack, EventBatch, EventIn, EventsBody, error_responses

router = APIRouter(prefix="/events", tags=["events"])


@router.post(
    "",
    response_model=Ack,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require_write],
    summary="Record one event or a batch",
    responses=error_responses(400, 401, 403, 413, 422),
)
def post_events(body: EventsBody, service: ServiceDep) -> Ack:
    """Validate, store durably (the reply comes after the commit), and update the users'
    state at once: their next recommendation reflects these events. An event whose
    `event_id` is already stored is acknowledged again but not stored twice. An event
    may name the `request_id` of the recommendation it answers (online metrics). An
    event without a `timestamp` gets the time the server received it. A malformed event, or an
    `event_type` outside the service's vocabulary, is a 422 and nothing of the batch is
    written."""
    received = int(time.time())
    events: list[EventIn] = body.events if isinstance(body, EventBatch) else [body]
    records = [e.model_dump(exclude={"event_id", "request_id"}) for e in events]
    for r in records:
        if r["value"] is None:
            r["value"] = float("nan")
        if r["timestamp"] is None:
            r["timestamp"] = received
    ids = [e.event_id for e in events]
    requests = [e.request_id for e in events]
    result = service.ingest(
        records,
        ids if any(i is not None for i in ids) else None,
        requests if any(r is not None for r in requests) else None,
    )
    return Ack(**result)
