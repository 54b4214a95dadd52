"""The FastAPI application: a short main, one router per resource, shared concerns as
dependencies and middleware (FastAPI's "bigger applications" layout).

Errors map to status codes in one place: a malformed request or event 422 (naming the
field), an unknown id 404, a registry state conflict 409, a body over the size limit 413,
a missing key 401, a key without the scope 403.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifelongrec import __version__
from lifelongrec._errors import DataError, ParameterError, UnknownIdError
from lifelongrec.data import StoreUnavailableError
from lifelongrec.registry import RegistryError
from lifelongrec.serving._auth import KeyRing, cookie_key, key_problem, request_key
from lifelongrec.serving._metrics import ServiceMetrics
from lifelongrec.serving._service import RecommenderService, ServiceError
from lifelongrec.serving._shared import GATED_READS, ReadGate
from lifelongrec.serving.routers import (
    dashboard,
    events,
    experiments,
    feedback,
    items,
    models,
    ops,
    users,
)

__all__ = ["create_app", "DEFAULT_MAX_BODY_BYTES", "OPEN_PATHS"]

log = logging.getLogger("lifelongrec.serving")

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


def _json_bytes(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    """An ASGI response as (start message, body message)."""
    payload = json.dumps(body, ensure_ascii=True).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return (
        {"type": "http.response.start", "status": status, "headers": raw},
        {"type": "http.response.body", "body": payload},
    )


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    start, message = _json_bytes(status, body, headers)
    await send(start)
    await send(message)


class BodyLimit:
    """Read a request body whole before the app sees it, refusing more than ``limit``
    bytes with 413: by the declared length before reading anything, and by what
    actually arrives (a chunked body without a length is counted as it comes). The
    refused body is not drained: the answer says ``Connection: close``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nothing to answer
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                await self._refuse(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        await _send_json(
            send,
            413,
            {
                "detail": f"request body over {self.limit} bytes; send smaller batches",
                "error": "BodyTooLarge",
            },
            {"connection": "close"},
        )


# Paths open to anyone (no key): liveness and the API's own documentation, whose
# scripts and styles the service serves itself (from fastapi-offline: no CDN, so the
# pages work on a machine without internet).
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
DOCS_ASSETS = "/docs-assets"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})


class KeyFirst:
    """Check the API key before anything of the request is read or parsed: reads
    (``GET``) need the ``read`` scope, changes the ``write`` scope, the paths of
    :data:`OPEN_PATHS` none. The routes declare the same checks as dependencies (for
    the OpenAPI document); this middleware answers first, so an unauthenticated client
    cannot make the service read and parse a body.

    A read without a key in its headers may carry it in the dashboard's cookie
    (:data:`~lifelongrec.serving._auth.KEY_COOKIE`): it is passed on as ``X-API-Key``,
    so the routes' own checks see it. Never for a change. The dashboard's pages, login
    and assets check the key themselves (a page without one redirects to the login)."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self.keys.is_open:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] in _READ_METHODS and request_key(headers) is None:
            cookie = cookie_key(headers)
            if cookie is not None:
                # in place: the middlewares before this one read the route from it
                scope["headers"] = [*scope["headers"], (b"x-api-key", cookie.encode())]
                headers = Headers(scope=scope)
        if path in OPEN_PATHS or path.startswith(DOCS_ASSETS + "/") or dashboard.is_public(path):
            await self.app(scope, receive, send)
            return
        need = "read" if scope["method"] in _READ_METHODS else "write"
        problem = key_problem(self.keys, request_key(headers), need)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, detail = problem
        extra = {"www-authenticate": "Bearer"} if status == 401 else {}
        if scope["method"] not in _READ_METHODS:
            extra["connection"] = "close"  # the unread body would follow on this connection
        await _send_json(send, status, {"detail": detail, "error": "Unauthorized"}, extra)


class CatchAll:
    """The last line: an exception no handler turned into an answer becomes a logged
    500 with a JSON body, and the connection stays usable (uvicorn closes a
    keep-alive connection without ``Connection: close`` when an exception escapes the
    app, which breaks a pooled client's next request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # half an answer is out: only closing the connection is honest
            await _send_json(
                send,
                500,
                {
                    "detail": "internal error; the server logged it",
                    "error": type(exc).__name__,
                },
            )


class Timed:
    """Request latency per route template into the metrics, and the serving reads in
    flight counted in ``reads`` (ingestion gives way to them: :class:`ReadGate`). A
    plain ASGI middleware: no extra task or thread per request."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, reads: ReadGate) -> None:
        self.app = app
        self.metrics = metrics
        self.reads = reads

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

        read = scope.get("method") == "GET" and scope.get("path", "").startswith(GATED_READS)
        try:
            with self.reads.reading() if read else contextlib.nullcontext():
                await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            method = scope.get("method", "")
            self.metrics.observe(
                method if method in _METHODS else "OTHER",  # labels stay few under fuzzing
                getattr(route, "path", "unmatched"),
                status,
                time.perf_counter() - t0,
            )


def _error(status: int, exc: Exception, home: Any = None, **extra: Any) -> JSONResponse:
    """The error answer; paths inside the home folder are shown relative to it (a
    client has no business knowing where the service keeps its files)."""
    detail = str(exc)
    if home is not None:
        for root in {str(home), str(Path(home).resolve())}:
            detail = detail.replace(root + "/", "").replace(root, "the home folder")
    return JSONResponse({"detail": detail, "error": type(exc).__name__, **extra}, status)


def _safe(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, short echo of a bad input: non-finite numbers as text, text that is
    not valid Unicode escaped, long values cut (the echo must never fail itself)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= 200 else text[:197] + "..."
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if depth >= 2:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        items = list(value.items())[:10]
        return {str(_safe(k, 3)): _safe(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_safe(v, depth + 1) for v in list(value)[:10]]
    return f"<{type(value).__name__}>"


def _loc(loc: Any) -> str:
    return ".".join(str(_safe(p, 3)) for p in loc)


def validation_answer(exc: RequestValidationError) -> JSONResponse:
    """422 naming every bad field, with a short echo of what was sent."""
    errors = []
    for e in exc.errors()[:20]:
        entry = {"loc": [_safe(p, 3) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        entry["type"] = str(e.get("type", ""))
        if "input" in e:
            entry["input"] = _safe(e["input"])
        errors.append(entry)
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    field = _loc(first["loc"])
    detail = f"{field}: {first['msg']}" if field else first["msg"]
    if len(exc.errors()) > 1:
        detail += f" (and {len(exc.errors()) - 1} more problem(s), see 'errors')"
    return JSONResponse(
        {"detail": detail, "error": "ValidationError", "field": field, "errors": errors}, 422
    )


def _methods_of(app: FastAPI, scope: Scope) -> list[str]:
    """The methods the API documents for a request's path (from the OpenAPI paths, so
    it does not depend on how the router nests its routes)."""
    path = scope.get("path", "")
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^/}]+\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods.update(m.upper() for m in operations)
    return sorted(methods)


def _lifespan(service: RecommenderService, own: bool):
    """Start the service's background threads when the app starts and, for a service
    the app owns, stop them and close the service when it shuts down."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if own and service.config.learner.background:
            service.start_learner()  # idempotent: open() may have started it
        try:
            yield
        finally:
            if own:
                service.close()

    return lifespan


def create_app(
    service: RecommenderService,
    keys: KeyRing | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    own_service: bool = False,
) -> FastAPI:
    """The HTTP API around an open :class:`RecommenderService`.

    Parameters
    ----------
    service
        The service (its learner already started or not, as it was opened).
    keys
        The accepted API keys; ``None``: :meth:`KeyRing.for_home` of the service's home.
    max_body_bytes
        Largest request body accepted (413 above it).
    own_service
        The app owns the service: its lifespan starts the background learner when the
        server starts (with ``background`` set) and stops it and closes the service when
        the server shuts down (``lifelongrec serve`` opens the service with
        ``start=False`` and hands it over this way). ``False`` (default): whoever
        opened the service drives it (tests, notebooks); the app never starts or closes
        it.
    """
    if keys is None:
        keys = KeyRing.for_home(service.home)
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        lifespan=_lifespan(service, own_service),
        title="lifelongrec",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "events", "description": "Behaviour in"},
            {"name": "users", "description": "Recommendations; erasure"},
            {"name": "items", "description": "The catalogue; similar items"},
            {"name": "models", "description": "Registry: versions, promotion, rollback"},
            {"name": "feedback", "description": "Online metrics of what was shown"},
            {"name": "experiments", "description": "Online experiments: A/B, interleaving"},
            {"name": "operations", "description": "Health and metrics"},
        ],
    )
    app.state.service = service
    app.state.keys = keys
    app.state.metrics = ServiceMetrics(service)
    for r in (events, users, items, models, feedback, experiments, ops, dashboard):
        app.include_router(r.router)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_answer(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not the first route's
            headers["Allow"] = ", ".join(_methods_of(app, request.scope))
        return JSONResponse(
            {"detail": str(exc.detail), "error": "HTTPError"}, exc.status_code, headers=headers
        )

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The schema, with the event types this service accepts as an enum."""
        if app.openapi_schema is None:
            schema = default_openapi()
            event = schema.get("components", {}).get("schemas", {}).get("EventIn")
            if event is not None and service.event_types:
                field = event["properties"]["event_type"]
                field["enum"] = sorted(service.event_types)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(DataError)
    async def data_error(request: Request, exc: DataError) -> JSONResponse:
        return _error(422, exc, service.home, field=exc.column)

    @app.exception_handler(ParameterError)
    async def parameter_error(request: Request, exc: ParameterError) -> JSONResponse:
        return _error(422, exc, service.home, field=exc.name)

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError) -> JSONResponse:
        return _error(404, exc, service.home, kind=exc.kind)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        return _error(409, exc, service.home)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error(503, exc, service.home)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        # The database's address is the operator's business, not the client's: logged
        # here, answered without it. Nothing of the call was written; a retry once the
        # server is back succeeds.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "the event store is unavailable; retry", "error": type(exc).__name__},
            503,
            headers={"Retry-After": "1"},
        )

    # Starlette runs the last added middleware first: timing, then the catch-all, the
    # key check and the body limit, in that order, before any route.
    app.add_middleware(BodyLimit, limit=int(max_body_bytes))
    app.add_middleware(KeyFirst, keys=keys)
    app.add_middleware(CatchAll)
    app.add_middleware(Timed, metrics=app.state.metrics, reads=service.read_gate)
    return app
