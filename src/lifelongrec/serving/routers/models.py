"""The model registry: versions, promotion, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from lifelongrec.serving._deps import ServiceDep, require_read, require_write

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", dependencies=[require_read], summary="Versions, champion and live version")
def list_models(service: ServiceDep) -> dict[str, Any]:
    return service.models()


@router.post(
    "/rollback",
    dependencies=[require_write],
    summary="Serve the previous champion again",
    responses={409: {"description": "Nothing to roll back to"}},
)
def rollback(service: ServiceDep) -> dict[str, Any]:
    return service.rollback()


@router.post(
    "/{version}/promote",
    dependencies=[require_write],
    summary="Make a version the champion and serve it",
    responses={404: {"description": "Unknown version"}},
)
def promote(
    version: Annotated[str, Path(min_length=1, max_length=64)], service: ServiceDep
) -> dict[str, Any]:
    return service.promote(version)
