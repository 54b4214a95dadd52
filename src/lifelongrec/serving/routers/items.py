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
def put_item(item_id: ItemId, body: ItemIn, service: ServiceDep, response: Response) -> ItemOut:
    """A new item is recommendable at once through its content vector."""
    out = service.upsert_items([{"item_id": item_id, **body.model_dump()}])
    created = bool(out["n_created"])
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ItemOut(item_id=item_id, created=created)


@router.put(
    "",
    response_model=ItemsOut,
    dependencies=[require_write],
    summary="Add or update many catalogue items at once",
    responses=error_responses(400, 401, 403, 413, 422),
)
def put_items(body: ItemBatch, service: ServiceDep) -> ItemsOut:
    """All or nothing; an id given twice counts with its later entry. New items are recommendable
    at once through their content vectors (computed for the batch together, which is
    much cheaper per item than one request each)."""
    return ItemsOut(**service.upsert_items([i.model_dump() for i in body.items]))


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
