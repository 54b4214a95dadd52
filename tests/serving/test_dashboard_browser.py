"""The dashboard as a person uses it: a real headless Chromium (Debian's ``chromium``,
driven by Playwright) against a real HTTP server on a small trained home. It logs in
through the login page, visits every page, checks that each shows live figures of the
traffic the test sent, promotes and rolls back through the models page with a write key,
and checks that the browser reported no console error and no failed request. Screenshots
of every page go to the test's temporary folder.

Skipped, with the reason, where ``/usr/bin/chromium`` or the ``playwright`` package is
missing (``.ci/run`` installs the browser first when it runs as root). Nothing here
downloads a browser.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from lifelongrec.serving import create_app, serve_in_thread

READ_KEY = "read-key-0123456789"  # the keys fixture of conftest.py
WRITE_KEY = "write-key-0123456789"

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"no browser: {CHROMIUM} is absent (install Debian's chromium package; .ci/run "
        "does when it runs as root)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is absent (pip install -e '.[test]')"
)

PAGES = ("", "/learning", "/experiments", "/models", "/explorer")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A browser page whose console errors, uncaught exceptions and failed or refused
    requests are collected."""

    def __init__(self, context, base: str) -> None:
        self.base = base
        self.page = context.new_page()
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", self.failed)
        self.page.on(
            "response",
            lambda r: self.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None,
        )

    def failed(self, request) -> None:
        # a refresh still in flight when the test moves to another page is cancelled by
        # the browser (ERR_ABORTED): not a failure of the service
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.url} {request.failure}")

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()


def _clicks(http: httpx.Client, service) -> None:
    """Recommendations for ten users, and a click on the first item each was shown."""
    for user in service.live_model.known_users()[:10]:
        answer = http.get(f"/users/{user}/recommendations", params={"k": 5}).json()
        shown = answer["items"][0]["item_id"]
        click = {"user_id": user, "item_id": shown, "event_type": "click"}
        r = http.post("/events", json={**click, "request_id": answer["request_id"]})
        assert r.status_code == 201


@pytest.fixture
def server(service, keys, feed):
    """A running server with a second model version and some traffic."""
    app = create_app(service, keys)
    with serve_in_thread(app, log_level="warning") as srv:
        base = f"http://127.0.0.1:{srv.port}"
        with httpx.Client(base_url=base, headers={"X-API-Key": WRITE_KEY}, timeout=30) as http:
            feed(http, service, 300)
            _clicks(http, service)
            for _ in range(10):
                service.learn_step()
            feed(http, service, 120, start=2_000_100_000)  # the held-out slice
            for _ in range(5):
                service.learn_step()
            assert len(http.get("/models").json()["versions"]) == 2
            yield base, http


def _logged_in(browser, base: str) -> Watched:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    w = Watched(context, base)
    w.goto("/dashboard/learning")
    assert w.page.url.startswith(base + "/dashboard/login?next=/dashboard/learning")
    w.page.fill("#key", READ_KEY)
    w.page.click("#login-form button[type=submit]")
    w.page.wait_for_url(base + "/dashboard/learning")
    return w


def test_every_page_shows_live_figures_without_console_errors(browser, server, service, tmp_path):
    base, http = server
    w = _logged_in(browser, base)
    cookie = next(c for c in w.page.context.cookies() if c["name"] == "lifelongrec_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # overview: the traffic sent shows in the figures
    w.goto("/dashboard")
    figure = w.page.locator('[data-figure="events_ingested"] .value')
    sync_api.expect(figure).not_to_have_text("–")
    assert int(figure.inner_text().replace(",", "")) == service.counters["events_ingested"] > 0
    rps = float(w.text('[data-figure="requests_per_second"] .value').replace(",", ""))
    assert rps > 0
    assert w.text('[data-figure="champion"] .value') == http.get("/models").json()["champion"]
    sync_api.expect(w.page.locator("#routes")).to_contain_text("/users/{user_id}/recommendations")
    w.page.locator("#chart-traffic svg polyline").first.wait_for()
    w.page.screenshot(path=tmp_path / "overview.png", full_page=True)

    # learning: every version's gate decision, online metrics of the impressions shown
    w.goto("/dashboard/learning")
    sync_api.expect(w.page.locator("#decisions tbody tr")).to_have_count(2)
    sync_api.expect(w.page.locator("#decisions")).to_contain_text("v000002")
    online = w.page.locator("#online tbody tr").first
    online.wait_for()
    impressions = online.locator("td").nth(3).inner_text()
    assert int(impressions.replace(",", "")) > 0
    w.page.locator("#chart-ctr svg circle").first.wait_for()
    w.page.screenshot(path=tmp_path / "learning.png", full_page=True)

    # experiments: none started on this service
    w.goto("/dashboard/experiments")
    sync_api.expect(w.page.locator("#experiments")).to_contain_text("No experiments yet")
    w.page.screenshot(path=tmp_path / "experiments.png", full_page=True)

    # explorer: a user's history and recommendations with reasons; an item's reach
    user = service.live_model.known_users()[0]
    item = service.store.user_events(user)["item_id"].iloc[-1]
    w.goto(f"/dashboard/explorer?user={user}&item={item}")
    history = w.page.locator("#user-card table").first.locator("tbody tr")
    sync_api.expect(history).to_have_count(min(20, len(service.store.user_events(user))))
    recs = w.page.locator("#user-card table").nth(1).locator("tbody tr")
    sync_api.expect(recs).to_have_count(10)
    assert re.search(r"similar to \S+ \(cosine", recs.first.inner_text())
    card = w.page.locator("#item-card")
    sync_api.expect(card).to_contain_text(f"Item {item}")
    sync_api.expect(card.locator("table tbody tr")).to_have_count(10)  # similar items
    w.page.screenshot(path=tmp_path / "explorer.png", full_page=True)

    # the overview follows the service: events sent now show on its next refresh
    w.goto("/dashboard")
    sync_api.expect(figure).to_have_text(f"{service.counters['events_ingested']:,}")
    user_events = [{"user_id": user, "item_id": item, "event_type": "view"}] * 3
    assert http.post("/events", json={"events": user_events}).status_code == 201
    sync_api.expect(figure).to_have_text(f"{service.counters['events_ingested']:,}")

    # an experiment started now shows with its arms and verdict
    listing = http.get("/models").json()
    other = next(v["version"] for v in listing["versions"] if v["version"] != listing["champion"])
    arms = [{"name": "champion"}, {"name": "challenger", "version": other}]
    body = {"name": "dashboard check", "arms": arms, "auto": False, "force": True}
    assert http.post("/experiments", json=body).status_code == 201
    w.goto("/dashboard/experiments")
    card = w.page.locator("section.experiment")
    sync_api.expect(card).to_have_count(1)
    sync_api.expect(card.locator("h2")).to_contain_text("dashboard check")
    sync_api.expect(card.locator("table tbody tr")).to_have_count(2)
    sync_api.expect(card).to_contain_text(other)
    sync_api.expect(card).to_contain_text("Decision:")
    w.page.screenshot(path=tmp_path / "experiment.png", full_page=True)

    assert not w.problems, w.problems
    for name in ("overview", "learning", "experiments", "experiment", "explorer"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_promote_and_roll_back_through_the_models_page(browser, server, tmp_path):
    base, http = server
    w = _logged_in(browser, base)
    w.goto("/dashboard/models")
    champion = http.get("/models").json()["champion"]
    sync_api.expect(w.page.locator('[data-figure="champion"] .value')).to_have_text(champion)
    sync_api.expect(w.page.locator("#versions tbody tr")).to_have_count(2)
    sync_api.expect(w.page.locator("#lineage li")).to_have_count(2)
    sync_api.expect(w.page.locator("#lineage")).to_contain_text("v000002")

    # without a key typed in, nothing is sent
    w.page.click("#rollback")
    sync_api.expect(w.page.locator("#action-result")).to_contain_text("write scope first")
    assert http.get("/models").json()["champion"] == champion

    # the gate promoted the challenger or rejected it: promote the rejected one and roll
    # back, or roll the promoted one back and promote it again
    steps = (
        [("promote", "v000002"), ("rollback", "v000001")]
        if champion == "v000001"
        else [("rollback", "v000001"), ("promote", "v000002")]
    )
    w.page.fill("#write-key", WRITE_KEY)
    for action, expected in steps:
        w.page.click("#rollback" if action == "rollback" else f'[data-promote="{expected}"]')
        sync_api.expect(w.page.locator("#action-result")).to_contain_text(
            f"{expected} is the champion now"
        )
        assert http.get("/models").json()["champion"] == expected
        assert http.get("/health").json()["model_version"] == expected
        tile = w.page.locator('[data-figure="champion"] .value')
        sync_api.expect(tile).to_have_text(expected)
        w.page.screenshot(path=tmp_path / f"models-{action}.png", full_page=True)
    assert not w.problems, w.problems
