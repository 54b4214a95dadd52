"""Shared concerns of the routers: the service and the key checks (FastAPI
dependencies). They are ``async``: cheap and non-blocking, so FastAPI runs them on the
event loop instead of handing each to the threadpool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from lifelongrec.serving._service import RecommenderService

__all__ = ["ServiceDep", "require_read", "require_write"]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")
_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token")


async def get_service(request: Request) -> RecommenderService:
    return request.app.state.service


ServiceDep = Annotated[RecommenderService, Depends(get_service)]


def _require(scope: str):
    async def check(
        request: Request,
        key: Annotated[str | None, Security(_api_key)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> None:
        ring = request.app.state.keys
        if ring.is_open:
            return
        given = key if key is not None else (bearer.credentials if bearer else None)
        scopes = ring.scopes_of(given)
        if scopes is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or unknown API key: send it as 'X-API-Key: KEY' or "
                "'Authorization: Bearer KEY'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope not in scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"this API key lacks the '{scope}' scope needed here "
                f"(it has: {', '.join(sorted(scopes))})",
            )

    return check


require_read = Depends(_require("read"))
require_write = Depends(_require("write"))
