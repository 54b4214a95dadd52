"""The catalogue: upsert items (one or a batch), read one, items similar to an item."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from lifelongrec.serving._deps import ServiceDep, require_read, require_write
from lifelongrec.serving._schemas import (
    CatalogueItem,
    ItemBatch,
    ItemIn,
    ItemOut,
    ItemsOut,
    Similar,
    error_responses,
)

router = APIRouter(prefix="/items", tags=["items"])

ItemId = Annotated[str, Path(min_length=1, max_length=256)]
Wait = Annotated[
    bool,
    Query(description="Answer once the items are recommendable (their text encoded)"),
]


@router.put(
    "/{item_id}",
    response_model=ItemOut,
    dependencies=[require_write],
    summary="Add or update a catalogue item",
    responses={
        201: {"description": "Created", "model": ItemOut},
        **error_responses(400, 401, 403, 413, 422),
    },
)
def put_item(
    item_id: ItemId, body: ItemIn, service: ServiceDep, response: Response, wait: Wait = False
) -> ItemOut:
    """Stored durably before the answer; recommendable (through its content vector)
    within moments, once its text is encoded, or already with `wait=true`."""
    out = service.upsert_items([{"item_id": item_id, **body.model_dump()}], wait=wait)
    created = bool(out["n_created"])
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ItemOut(item_id=item_id, created=created, live=out["live"])


@router.put(
    "",
    response_model=ItemsOut,
    dependencies=[require_write],
    summary="Add or update many catalogue items at once",
    responses=error_responses(400, 401, 403, 413, 422),
)
def put_items(body: ItemBatch, service: ServiceDep, wait: Wait = False) -> ItemsOut:
    """All or nothing, stored durably before the answer; an id given twice counts with
    its later entry. The items are recommendable within moments, once their text is
    encoded (in one batch, much cheaper per item than one request each), or already with
    `wait=true`."""
    return ItemsOut(**service.upsert_items([i.model_dump() for i in body.items], wait=wait))


@router.get(
    "/{item_id}",
    response_model=CatalogueItem,
    dependencies=[require_read],
    summary="A catalogue item",
    responses=error_responses(401, 403, 404, 422),
)
def get_item(item_id: ItemId, service: ServiceDep) -> dict[str, Any]:
    return service.item(item_id)


@router.get(
    "/{item_id}/similar",
    response_model=Similar,
    response_model_exclude_none=True,
    dependencies=[require_read],
    summary="Items similar to an item",
    responses=error_responses(401, 403, 404, 422),
)
async def similar(
    item_id: ItemId,
    service: ServiceDep,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    details: Annotated[
        bool, Query(description="Each item's title and categories beside its id")
    ] = True,
) -> Similar:
    """A 404 for an item the live model does not know."""
    return Similar(**service.similar(item_id, k, details=details))
