"""Recommendations for a user, and the right to be forgotten."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from lifelongrec.serving._deps import ServiceDep, require_read, require_write
from lifelongrec.serving._schemas import Erased, Recommendations, error_responses

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=256)]


@router.get(
    "/{user_id}/recommendations",
    response_model=Recommendations,
    response_model_exclude_none=True,
    dependencies=[require_read],
    summary="Top-K items for a user",
    responses=error_responses(401, 403, 404, 422),
)
async def recommendations(
    user_id: UserId,
    service: ServiceDep,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    exclude_seen: bool = True,
    category: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    explain: bool = False,
    details: Annotated[
        bool, Query(description="Each item's title and categories beside its id")
    ] = True,
) -> Recommendations:
    """The user's next items from their state now (it includes every acknowledged event).
    An unknown user gets cold-start items (popular and fresh), never an error. A
    `category` that no item has is a 404."""
    # Run on the event loop: a few ms of work (a cached user vector and an index search)
    # costs less there than the two thread hand-overs of a threadpool call, which on a
    # small machine dominate under load.
    out = service.recommend(user_id, k, exclude_seen, category, explain, details=details)
    return Recommendations(**out)


@router.delete(
    "/{user_id}",
    response_model=Erased,
    dependencies=[require_write],
    summary="Erase a user (the right to be forgotten)",
    responses=error_responses(401, 403, 404, 422),
)
def delete_user(user_id: UserId, service: ServiceDep) -> Erased:
    """Erase the user's events from the store and their state and rows from the serving
    and training models; no model served or saved after this answer holds them."""
    return Erased(**service.delete_user(user_id))
