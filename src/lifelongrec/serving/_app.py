"""The FastAPI application: a short main, one router per resource, shared concerns as
dependencies and middleware (FastAPI's "bigger applications" layout).

Errors map to status codes in one place: a malformed request or event 422 (naming the
field), an unknown id 404, a registry state conflict 409, a body over the size limit 413,
a missing key 401, a key without the scope 403.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifelongrec import __version__
from lifelongrec._errors import DataError, ParameterError, UnknownIdError
from lifelongrec.registry import RegistryError
from lifelongrec.serving._auth import KeyRing
from lifelongrec.serving._metrics import ServiceMetrics
from lifelongrec.serving._service import RecommenderService, ServiceError
from lifelongrec.serving.routers import events, items, models, ops, users

__all__ = ["create_app", "DEFAULT_MAX_BODY_BYTES"]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

DESCRIPTION = """\
A recommender that keeps learning. Send behaviour with `POST /events` (durable before the
reply, idempotent through `event_id`); ask `GET /users/{user_id}/recommendations`; add
items with `PUT /items/{item_id}`. The user's next recommendation reflects their last
event at once; a background learner trains on every event and swaps in a better model
only when the promotion gate says it is not worse.

Authentication: send an API key as `X-API-Key: KEY` (or `Authorization: Bearer KEY`).
`GET` needs the `read` scope, changes need `write`.
"""


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, by the declared length and by
    what actually arrives (a chunked body without a length is counted too)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body over {self.limit} bytes; send smaller batches"},
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class Timed:
    """Request latency per route template into the metrics (a plain ASGI middleware:
    no extra task or thread per request)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            self.metrics.observe(
                scope.get("method", ""),
                getattr(route, "path", "unmatched"),
                status,
                time.perf_counter() - t0,
            )


def _error(status: int, exc: Exception, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__, **extra}, status)


def create_app(
    service: RecommenderService,
    keys: KeyRing | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The HTTP API around a running :class:`RecommenderService`.

    Parameters
    ----------
    service
        The service (its learner already started or not, as it was opened).
    keys
        The accepted API keys; ``None``: :meth:`KeyRing.for_home` of the service's home.
    max_body_bytes
        Largest request body accepted (413 above it).
    """
    if keys is None:
        keys = KeyRing.for_home(service.home)
    app = FastAPI(
        title="lifelongrec",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "events", "description": "Behaviour in"},
            {"name": "users", "description": "Recommendations; erasure"},
            {"name": "items", "description": "The catalogue; similar items"},
            {"name": "models", "description": "Registry: versions, promotion, rollback"},
            {"name": "operations", "description": "Health and metrics"},
        ],
    )
    app.state.service = service
    app.state.keys = keys
    app.state.metrics = ServiceMetrics(service)
    for r in (events, users, items, models, ops):
        app.include_router(r.router)

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return _error(422, exc, field=exc.column)

    @app.exception_handler(ParameterError)
    async def parameter_error(request: Request, exc: ParameterError) -> JSONResponse:
        return _error(422, exc, field=exc.name)

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError) -> JSONResponse:
        return _error(404, exc, kind=exc.kind)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        return _error(409, exc)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error(503, exc)

    app.add_middleware(BodyLimit, limit=int(max_body_bytes))
    app.add_middleware(Timed, metrics=app.state.metrics)
    return app
