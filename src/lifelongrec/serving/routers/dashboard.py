"""The dashboard: pages a person reads in a browser, and the JSON they draw from.

Pages (``/dashboard``, ``/dashboard/learning``, ``/dashboard/experiments``,
``/dashboard/models``, ``/dashboard/explorer``) are a small HTML shell served from the
package with one stylesheet and one script (``/dashboard/static/``); the script reads
the service's JSON APIs and draws tables and SVG charts. Nothing is fetched from
elsewhere. A page needs a read key: in a header, or in the cookie that the login page
(``/dashboard/login``) sets; without one it redirects to the login. The JSON endpoints
(``/dashboard/api/...``) answer 401 without a key like every other read. Changes
(promote, roll back) go through the ordinary API with a key typed into the page and sent
as ``X-API-Key``, never the cookie. Left out of the OpenAPI document: the pages' own
plumbing, not part of the API's contract.
"""

from __future__ import annotations

import html
import threading
from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lifelongrec.serving._auth import KEY_COOKIE, cookie_value, key_problem, request_key
from lifelongrec.serving._dashboard import (
    Sampler,
    explore_view,
    item_view,
    learning_view,
    overview_view,
    user_view,
)
from lifelongrec.serving._deps import ServiceDep, require_read

__all__ = ["PAGES", "is_public", "router"]

router = APIRouter(prefix="/dashboard", include_in_schema=False)

#: Page path (under ``/dashboard``) -> (template name, title).
PAGES = {
    "": ("overview", "Overview"),
    "/learning": ("learning", "Learning"),
    "/experiments": ("experiments", "Experiments"),
    "/models": ("models", "Models"),
    "/explorer": ("explorer", "Explorer"),
}
_PUBLIC = frozenset(
    {"/dashboard/", "/dashboard/login", "/dashboard/logout"} | {f"/dashboard{p}" for p in PAGES}
)
_STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_SAMPLER_LOCK = threading.Lock()

UserId = Annotated[str, Path(min_length=1, max_length=256)]
ItemId = Annotated[str, Path(min_length=1, max_length=256)]
K = Annotated[int, Query(ge=1, le=100)]


def is_public(path: str) -> bool:
    """Whether the key middleware lets ``path`` through: the pages, the login and the
    assets check the key themselves (a page redirects to the login instead of a 401)."""
    return path in _PUBLIC or path.startswith("/dashboard/static/")


@cache
def _asset(name: str) -> str:
    return resources.files("lifelongrec.serving.dashboard").joinpath(name).read_text("utf-8")


def _render(template: str, title: str, active: str, **fields: str) -> str:
    nav = "".join(
        f'<a href="/dashboard{path}" class="{"active" if name == active else ""}">{label}</a>'
        for path, (name, label) in PAGES.items()
    )
    body = _asset(f"{template}.html")
    for key, value in fields.items():
        body = body.replace("{{" + key + "}}", value)
    page = _asset("page.html").replace("{{content}}", body)
    for key, value in {"title": title, "nav": nav, "page": template, **fields}.items():
        page = page.replace("{{" + key + "}}", value)
    return page


def _key_problem(request: Request) -> tuple[int, str] | None:
    keys = request.app.state.keys
    return None if keys.is_open else key_problem(keys, request_key(request.headers), "read")


def _experiments_api(request: Request) -> bool:
    """Whether this service answers ``GET /experiments`` (the page asks only then, so
    that a service without it shows "no experiments" without a failed request)."""
    return "/experiments" in request.app.openapi().get("paths", {})


def _page(template: str, title: str):
    async def page(request: Request) -> Response:
        if _key_problem(request) is not None:
            target = quote(request.url.path, safe="/")
            return RedirectResponse(f"/dashboard/login?next={target}", status_code=303)
        experiments = "1" if _experiments_api(request) else "0"
        text = _render(template, title, template, experiments=experiments)
        return HTMLResponse(text, headers=_HEADERS)

    page.__name__ = f"dashboard_{template}"
    return page


for _path, (_template, _title) in PAGES.items():
    router.add_api_route(_path or "", _page(_template, _title), methods=["GET"])
router.add_api_route("/", _page("overview", "Overview"), methods=["GET"])


def _next(value: str | None) -> str:
    """Where to go after the login: a dashboard page only (no open redirect)."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard"


def _login_page(status: int, message: str, next_: str) -> HTMLResponse:
    text = _render(
        "login",
        "Log in",
        "login",
        message=html.escape(message),
        next=html.escape(next_, quote=True),
        experiments="0",
    )
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002
    if request.app.state.keys.is_open:
        return RedirectResponse(_next(next), status_code=303)
    return _login_page(200, "", _next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key of the form; on success store it in an ``HttpOnly``,
    ``SameSite=Strict`` cookie and go to the page asked for."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    key = (form.get("key") or [""])[0].strip()
    target = _next((form.get("next") or [None])[0])
    keys = request.app.state.keys
    if keys.is_open:
        return RedirectResponse(target, status_code=303)
    problem = key_problem(keys, key or None, "read")
    if problem is not None:
        status, _ = problem
        message = (
            "This key does not have the read scope."
            if status == 403
            else "Unknown key: paste a key of keys.json or $LIFELONGREC_API_KEYS."
        )
        return _login_page(status, message, target)
    out = RedirectResponse(target, status_code=303)
    out.set_cookie(
        KEY_COOKIE,
        cookie_value(key),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return out


@router.post("/logout")
async def logout() -> Response:
    out = RedirectResponse("/dashboard/login", status_code=303)
    out.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict")
    return out


@router.get("/static/{name}")
async def static(name: str) -> Response:
    media = _STATIC.get(name)
    if media is None:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Response(_asset(name), media_type=media, headers=headers)


def _sampler(request: Request, service: Any) -> Sampler:
    state = request.app.state
    with _SAMPLER_LOCK:
        sampler = getattr(state, "dashboard_sampler", None)
        if sampler is None:
            sampler = state.dashboard_sampler = Sampler(service, state.metrics)
    return sampler


@router.get("/api/overview", dependencies=[require_read])
def api_overview(request: Request, service: ServiceDep) -> dict[str, Any]:
    return overview_view(service, _sampler(request, service))


@router.get("/api/learning", dependencies=[require_read])
def api_learning(service: ServiceDep) -> dict[str, Any]:
    return learning_view(service)


@router.get("/api/explore", dependencies=[require_read])
def api_explore(service: ServiceDep) -> dict[str, Any]:
    return explore_view(service)


@router.get("/api/user/{user_id}", dependencies=[require_read])
def api_user(user_id: UserId, service: ServiceDep, k: K = 10) -> dict[str, Any]:
    return user_view(service, user_id, k)


@router.get("/api/item/{item_id}", dependencies=[require_read])
def api_item(item_id: ItemId, service: ServiceDep, k: K = 10) -> dict[str, Any]:
    return item_view(service, item_id, k)
