"""Shared concerns of the routers: the service and the key checks (FastAPI
dependencies). They are ``async``: cheap and non-blocking, so FastAPI runs them on the
event loop instead of handing each to the threadpool.

The key checks run twice on purpose: the :class:`~lifelongrec.serving._app.KeyFirst`
middleware answers 401/403 before a body is read, and these dependencies declare the
same checks to the OpenAPI document (and hold if the app is mounted without the
middleware).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from lifelongrec.serving._auth import key_problem, request_key
from lifelongrec.serving._service import RecommenderService

__all__ = ["ServiceDep", "require_read", "require_write", "has_read_key"]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")
_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token")


async def get_service(request: Request) -> RecommenderService:
    return request.app.state.service


ServiceDep = Annotated[RecommenderService, Depends(get_service)]


def _given(key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    return key if key is not None else (bearer.credentials if bearer else None)


def _require(scope: str):
    async def check(
        request: Request,
        key: Annotated[str | None, Security(_api_key)] = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> None:
        ring = request.app.state.keys
        if ring.is_open:
            return
        problem = key_problem(ring, _given(key, bearer), scope)
        if problem is not None:
            status, detail = problem
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            raise HTTPException(status, detail=detail, headers=headers)

    return check


async def has_read_key(request: Request) -> bool:
    """Whether the request carries a key with the ``read`` scope (never refuses; not a
    security requirement of the route, which stays open)."""
    ring = request.app.state.keys
    return ring.is_open or key_problem(ring, request_key(request.headers), "read") is None


require_read = Depends(_require("read"))
require_write = Depends(_require("write"))
