"""The dashboard without a browser: the login and its cookie (reads only), redirects,
the pages and assets it serves, and the fields of its JSON endpoints."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from lifelongrec.cli import serve_banner
from lifelongrec.serving import KeyRing, create_app

READ_KEY = "read-key-0123456789"  # the keys fixture of conftest.py
WRITE_KEY = "write-key-0123456789"
PAGES = ("/dashboard", "/dashboard/learning", "/dashboard/experiments")
PAGES += ("/dashboard/models", "/dashboard/explorer")


@pytest.fixture
def browser(service, keys):
    """A client that sends no key of its own (as a browser before the login)."""
    with TestClient(create_app(service, keys)) as c:
        yield c


def _login(c: TestClient, key: str = READ_KEY, next_: str = "/dashboard"):
    return c.post("/dashboard/login", data={"key": key, "next": next_}, follow_redirects=False)


@pytest.mark.parametrize("page", PAGES)
def test_a_page_without_a_key_redirects_to_the_login(browser, page):
    r = browser.get(page, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/dashboard/login?next={page}"
    login = browser.get(r.headers["location"])
    assert login.status_code == 200 and 'name="key"' in login.text
    assert f'value="{page}"' in login.text


def test_the_login_sets_an_http_only_strict_cookie_and_opens_the_pages(browser):
    r = _login(browser, next_="/dashboard/models")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/models"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"lifelongrec_key={READ_KEY};")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    for page in PAGES:
        answer = browser.get(page, follow_redirects=False)
        assert answer.status_code == 200, page
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert f'href="{page}" class="active"' in answer.text
    # the cookie stands for the key on the API's reads too
    assert browser.get("/models").json()["champion"] == "v000001"
    assert "model_version" in browser.get("/health").json()


def test_a_bad_key_gets_the_login_page_again_with_401_and_no_cookie(browser):
    for key in ("not-a-key-at-all", ""):
        r = _login(browser, key=key)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("text/html")
        assert "Unknown key" in r.text and "set-cookie" not in r.headers
    assert browser.get("/dashboard", follow_redirects=False).status_code == 303


def test_a_key_without_the_read_scope_is_refused_with_403(service):
    keys = KeyRing.from_env("write-only-key-0123:write")
    with TestClient(create_app(service, keys)) as c:
        r = _login(c, key="write-only-key-0123")
        assert r.status_code == 403 and "read scope" in r.text
        assert "set-cookie" not in r.headers


def test_the_cookie_counts_for_reads_only(browser, service):
    assert _login(browser).status_code == 303
    n_events = service.store.n_events
    event = {"user_id": "u1", "item_id": "i000001"}
    for method, url, body in (
        ("POST", "/models/rollback", None),
        ("POST", "/models/v000001/promote", None),
        ("POST", "/events", event),
        ("DELETE", "/users/u00001", None),
    ):
        r = browser.request(method, url, json=body)
        assert r.status_code == 401, (method, url, r.text)
    assert service.store.n_events == n_events
    # the same change with the key in the header is accepted
    r = browser.post("/events", json=event, headers={"X-API-Key": WRITE_KEY})
    assert r.status_code == 201
    assert service.store.n_events == n_events + 1


def test_the_json_endpoints_need_a_key_like_the_api(browser):
    for url in ("/dashboard/api/overview", "/dashboard/api/learning", "/dashboard/api/explore"):
        r = browser.get(url)
        assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert browser.get("/models").status_code == 401
    r = browser.get("/dashboard/api/overview", headers={"X-API-Key": READ_KEY})
    assert r.status_code == 200


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example", "/models"])
def test_the_login_goes_to_dashboard_pages_only(browser, target):
    r = _login(browser, next_=target)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"


def test_logging_out_clears_the_cookie(browser):
    _login(browser)
    r = browser.post("/dashboard/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert 'lifelongrec_key=""' in r.headers["set-cookie"]
    assert browser.get("/dashboard", follow_redirects=False).status_code == 303
    assert browser.get("/models").status_code == 401


def test_open_access_needs_no_login(service):
    with TestClient(create_app(service, KeyRing.open_access())) as c:
        assert c.get("/dashboard", follow_redirects=False).status_code == 200
        r = c.get("/dashboard/login?next=/dashboard/models", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/models"


def test_the_experiments_page_asks_the_experiments_api_only_where_there_is_one(browser):
    _login(browser)
    page = browser.get("/dashboard/experiments").text
    has_api = "/experiments" in browser.get("/openapi.json").json()["paths"]
    assert f'data-experiments="{int(has_api)}"' in page


def test_the_pages_and_assets_fetch_nothing_from_elsewhere(browser):
    _login(browser)
    urls = set()
    for page in PAGES:
        urls.update(re.findall(r'(?:src|href|action)="([^"]+)"', browser.get(page).text))
    assert urls and all(u.startswith("/") or u.startswith("?") or u == "data:," for u in urls)
    for name, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        r = browser.get(f"/dashboard/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        outside = re.findall(r"https?://[^\s\"'`)]+", r.text)
        assert outside in ([], ["http://www.w3.org/2000/svg"]), outside  # the SVG namespace
    assert browser.get("/dashboard/static/secrets.json").status_code == 404
    assert browser.get("/dashboard/static/../_auth.py").status_code == 404


# ------------------------------------------------------------------ the figures
def _traffic(client, service, n_users=5):
    users = service.live_model.known_users()[:n_users]
    answers = [client.get(f"/users/{u}/recommendations", params={"k": 5}).json() for u in users]
    events = [
        {"user_id": a["user_id"], "item_id": a["items"][0]["item_id"], "event_type": "click"}
        for a in answers
    ]
    assert client.post("/events", json={"events": events}).status_code == 201
    return answers


def test_overview_fields(client, service):
    answers = _traffic(client, service)
    d = client.get("/dashboard/api/overview").json()
    assert d["champion"] == d["model_version"] == "v000001"
    assert d["events_ingested"] == len(answers) and d["n_events"] == service.store.n_events
    t = d["traffic"]
    assert t["requests"] == len(answers) + 1  # the recommendations and the events
    assert t["events_per_second"] > 0 and t["requests_per_second"] > 0
    lat = t["latency_ms"]
    assert lat["count"] == len(answers) + 1 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
    routes = {(r["method"], r["route"]): r for r in t["routes"]}
    assert routes["GET", "/users/{user_id}/recommendations"]["requests"] == len(answers)
    assert routes["POST", "/events"]["errors"] == 0
    assert not any(r.startswith("/dashboard") for _, r in routes)  # its own polling left out
    assert len(t["series"]) == 1 and t["series"][0]["requests_per_second"] > 0
    learner = d["learner"]
    assert learner["lag_events"] == len(answers) and learner["running"] is False
    assert {"batches", "trained_events", "challengers", "promotions", "errors"} <= set(learner)


def test_learning_fields(client, service):
    answers = _traffic(client, service)
    d = client.get("/dashboard/api/learning").json()
    assert [v["version"] for v in d["decisions"]] == ["v000001"]
    first = d["decisions"][0]
    assert first["status"] == "champion" and first["judged"] is False
    assert d["gate"]["metric"] == "ndcg@10"
    assert [h["action"] for h in d["history"]] == ["promote"]
    (row,) = d["online"]
    assert row["model_version"] == "v000001" and row["hour"] % 3600 == 0
    assert row["impressions"] == sum(len(a["items"]) for a in answers)
    assert row["clicks"] == len(answers)
    assert d["drift"] == []


def test_explorer_user_and_item(client, service):
    answers = _traffic(client, service, n_users=3)
    user = answers[0]["user_id"]
    d = client.get(f"/dashboard/api/user/{user}").json()
    stored = service.store.user_events(user)
    assert d["n_events"] == len(stored)
    assert len(d["history"]) == min(20, len(stored))
    assert d["history"][0]["item_id"] == stored["item_id"].iloc[-1]  # newest first
    assert d["history"][0]["event_type"] == "click" and d["history"][0]["title"]
    recs = d["recommendations"]["items"]
    assert len(recs) == 10 and all(r["reason"] and "title" in r for r in recs)

    item = answers[0]["items"][0]["item_id"]
    shown_to = {a["user_id"] for a in answers if item in {i["item_id"] for i in a["items"]}}
    d = client.get(f"/dashboard/api/item/{item}").json()
    assert d["item"]["item_id"] == item and d["in_model"] is True
    assert len(d["similar"]) == 10 and item not in {s["item_id"] for s in d["similar"]}
    reach = d["reach"]
    assert reach["users_shown"] == len(shown_to)
    assert reach["impressions"] >= len(shown_to) and reach["last_shown"] is not None
    # the item was in the first answer: every answer counts, the user view's too
    assert reach["answers_since_first_shown"] == len(answers) + 1
    assert reach["events"] == len(service.store.read().query("item_id == @item"))
    top = reach["top_k"]
    assert top["k"] == 10 and 1 <= top["users_sampled"] <= 3
    assert 0 <= top["users_with_item_in_top_k"] <= top["users_sampled"]


def test_a_new_catalogue_item_has_no_reach_yet(client):
    body = {"title": "A brand new kettle", "categories": ["Home"], "attributes": {}}
    assert client.put("/items/brand-new?wait=true", json=body).status_code == 201
    d = client.get("/dashboard/api/item/brand-new").json()
    assert d["item"]["title"] == "A brand new kettle"
    assert d["reach"]["impressions"] == d["reach"]["events"] == 0
    assert d["reach"]["first_shown"] is None and d["reach"]["answers_since_first_shown"] == 0


def test_unknown_user_or_item_is_404(client):
    for url in ("/dashboard/api/user/nobody-at-all", "/dashboard/api/item/nothing-at-all"):
        r = client.get(url)
        assert r.status_code == 404 and r.json()["kind"] in {"user", "item"}


def test_explore_lists_recent_users_and_popular_items(client, service):
    _traffic(client, service, n_users=2)
    d = client.get("/dashboard/api/explore").json()
    assert d["recent_users"][:2] == [u for u in service.live_model.known_users()[:2]][::-1]
    assert len(d["popular_items"]) == 10


def test_serve_says_where_the_dashboard_is(keys):
    text = serve_banner("127.0.0.1", 8000, keys, "v000001")
    assert "dashboard in a browser: http://127.0.0.1:8000/dashboard (log in" in text
    text = serve_banner("127.0.0.1", 8000, KeyRing.open_access(), "v000001")
    assert text.count("http://127.0.0.1:8000/dashboard\n") == 1
