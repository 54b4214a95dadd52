"""The catalogue: upsert an item; items similar to an item."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from lifelongrec.serving._deps import ServiceDep, require_read, require_write
from lifelongrec.serving._schemas import ItemIn, ItemOut, Similar

router = APIRouter(prefix="/items", tags=["items"])

ItemId = Annotated[str, Path(min_length=1, max_length=256)]


@router.put(
    "/{item_id}",
    response_model=ItemOut,
    dependencies=[require_write],
    summary="Add or update a catalogue item",
    responses={201: {"description": "Created"}, 200: {"description": "Updated"}},
)
def put_item(item_id: ItemId, body: ItemIn, service: ServiceDep, response: Response) -> ItemOut:
    """A new item is recommendable at once through its content vector."""
    out = service.upsert_item({"item_id": item_id, **body.model_dump()})
    response.status_code = status.HTTP_201_CREATED if out["created"] else status.HTTP_200_OK
    return ItemOut(**out)


@router.get(
    "/{item_id}/similar",
    response_model=Similar,
    dependencies=[require_read],
    summary="Items similar to an item",
    responses={404: {"description": "Unknown item"}},
)
async def similar(
    item_id: ItemId, service: ServiceDep, k: Annotated[int, Query(ge=1, le=1000)] = 10
) -> Similar:
    return Similar(**service.similar(item_id, k))
