"""Screenshots of every dashboard page (``docs/images/dashboard-*.png``), taken from a
real running service: a temporary home with a small sequential model on the synthetic
world, a learner that registers gated challengers, traffic (events, recommendations and
clicks on what was shown) sent through the HTTP API while a headless Chromium (Debian's
``chromium``, driven by Playwright) logs in and visits each page.

    .venv/bin/python benchmarks/dashboard_screenshots.py             # docs/images/
    .venv/bin/python benchmarks/dashboard_screenshots.py --out /tmp/shots

Needs ``/usr/bin/chromium`` (``apt-get install chromium``) and the ``playwright``
package (``pip install -e '.[test]'``); it never downloads a browser. About a minute.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from lifelongrec.serving import KeyRing, RecommenderService, create_app, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CONFIG = {
    "model": "sequential",
    "model_params": {
        "dim": 32,
        "n_heads": 2,
        "n_layers": 1,
        "max_len": 20,
        "epochs": 3,
        "text_encoder": None,
        "validation": False,
        "verbose": False,
    },
    "synthetic_events": 6_000,
    "background": False,
    "learner_batch": 64,
    "challenger_every": 400,
    "challenger_min_seconds": 0,
    "learner_share": 1.0,
    "holdout_events": 150,
}
#: Page name -> path (the explorer shows a user and an item, filled in at run time).
PAGES = {
    "overview": "/dashboard",
    "learning": "/dashboard/learning",
    "experiments": "/dashboard/experiments",
    "models": "/dashboard/models",
    "explorer": "/dashboard/explorer?user={user}&item={item}",
}


class Traffic:
    """Users asking for recommendations and reacting to them, through the HTTP API:
    each answer gets a view of one shown item and, now and then, a click or a purchase
    that names the answer's request id, and a view of another item; one user in ten is
    new (served cold start)."""

    def __init__(self, http: httpx.Client, users: list[str], items: list[str], seed: int) -> None:
        self.http = http
        self.users = users
        self.items = items
        self.rng = np.random.default_rng(seed)
        self.stop = threading.Event()

    def round(self) -> None:
        if self.rng.random() < 0.1:  # a new user: served cold start, new items among them
            user = f"new-{int(self.rng.integers(1_000_000))}"
        else:
            user = self.users[int(self.rng.integers(len(self.users)))]
        answer = self.http.get(f"/users/{user}/recommendations", params={"k": 10}).json()
        shown = [i["item_id"] for i in answer["items"]]
        rank = min(int(self.rng.geometric(0.35)) - 1, len(shown) - 1)
        events = [{"user_id": user, "item_id": shown[rank], "event_type": "view"}]
        reaction = self.rng.random()
        if reaction < 0.3:
            events.append({"user_id": user, "item_id": shown[rank], "event_type": "click"})
        if reaction < 0.05:
            events.append({"user_id": user, "item_id": shown[rank], "event_type": "purchase"})
        other = self.items[int(self.rng.integers(len(self.items)))]
        events.append({"user_id": user, "item_id": other, "event_type": "view"})
        for e in events:
            e["request_id"] = answer["request_id"] if e["item_id"] in shown else None
        r = self.http.post("/events", json={"events": events})
        r.raise_for_status()

    def run(self, rounds: int) -> None:
        for _ in range(rounds):
            self.round()

    def background(self, pause: float) -> threading.Thread:
        def loop() -> None:
            while not self.stop.is_set():
                self.round()
                time.sleep(pause)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread


def prepare(service: RecommenderService, traffic: Traffic, rounds: int) -> None:
    """Traffic, then learner rounds until the registry holds two challengers; then the
    background learner starts (it keeps learning while the pages are shown)."""
    for _ in range(8):
        traffic.run(rounds)
        while service.learn_step():
            pass
        if len(service.models()["versions"]) >= 3:
            break
    service.start_learner()


def start_experiment(http: httpx.Client, service: RecommenderService) -> None:
    """An A/B test of the newest version that is not the champion (gate verdict
    overridden: a picture needs one running)."""
    models = service.models()
    others = [v["version"] for v in models["versions"] if v["version"] != models["champion"]]
    body = {
        "name": f"{others[-1]} against the champion",
        "arms": [{"name": "champion"}, {"version": others[-1]}],
        "auto": False,
        "force": True,
    }
    r = http.post("/experiments", json=body)
    if r.status_code == 404:
        return  # a service without experiments: the page says so
    r.raise_for_status()


def screenshots(base: str, key: str, out: Path, user: str, item: str, wait: float) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(base + "/dashboard/login")
        page.fill("#key", key)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(base + "/dashboard")
        for name, path in PAGES.items():
            page.goto(base + path.format(user=user, item=item))
            # a few refreshes: the charts fill (the overview's from its own samples)
            page.wait_for_timeout(wait * (3 if name == "overview" else 1) * 1000)
            target = out / f"dashboard-{name}.png"
            page.screenshot(path=target, full_page=True)
            written.append(target)
        browser.close()
    if errors:
        raise RuntimeError(f"the browser console reported errors: {errors}")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--rounds", type=int, default=150, help="traffic rounds per learner pass")
    parser.add_argument("--wait", type=float, default=8.0, help="seconds on each page")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is absent: apt-get install chromium")
    write_key, read_key = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    keys = KeyRing.from_env(f"{write_key}:read,write;{read_key}:read")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with RecommenderService.open(home, data="synthetic", config=CONFIG) as service:
            with serve_in_thread(create_app(service, keys), log_level="warning") as srv:
                base = f"http://127.0.0.1:{srv.port}"
                headers = {"X-API-Key": write_key}
                with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                    users = service.live_model.known_users()
                    items = service.live_model.known_items()
                    traffic = Traffic(http, users[:200], items, args.seed)
                    prepare(service, traffic, args.rounds)
                    start_experiment(http, service)
                    traffic.run(args.rounds)
                    thread = traffic.background(pause=0.05)
                    try:
                        user, item = users[0], service.live.popular[3][0]
                        shots = screenshots(base, read_key, args.out, user, item, args.wait)
                    finally:
                        traffic.stop.set()
                        thread.join(10)
    for path in shots:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
