"""The model registry: versions, promotion, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from lifelongrec._errors import UnknownIdError
from lifelongrec.serving._deps import ServiceDep, require_read, require_write
from lifelongrec.serving._schemas import error_responses

router = APIRouter(prefix="/models", tags=["models"])

Version = Annotated[
    str,
    Path(
        pattern=r"^(v[0-9]{6}|[0-9]{1,6})$",
        description="A version id like v000003, or its number",
        examples=["v000001"],
    ),
]


@router.get(
    "",
    dependencies=[require_read],
    summary="Versions, champion and live version",
    responses=error_responses(401, 403),
)
def list_models(service: ServiceDep) -> dict[str, Any]:
    return service.models()


@router.post(
    "/rollback",
    dependencies=[require_write],
    summary="Serve the previous champion again",
    responses=error_responses(401, 403, 409),
)
def rollback(service: ServiceDep) -> dict[str, Any]:
    return service.rollback()


@router.post(
    "/{version}/promote",
    dependencies=[require_write],
    summary="Make a version the champion and serve it",
    responses=error_responses(401, 403, 404, 409, 422),
)
def promote(version: Version, service: ServiceDep) -> dict[str, Any]:
    """A 404 for a version the registry does not hold (``0`` and ``v000000`` included:
    numbering starts at 1)."""
    if int(version.lstrip("v")) == 0:
        raise UnknownIdError("version", [version], hint="version numbers start at 1")
    return service.promote(version)
