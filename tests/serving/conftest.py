"""Fixtures of the service tests: one tiny trained home folder, copied for each test."""

import shutil

import numpy as np
import pytest

TINY = {
    "dim": 16,
    "n_heads": 1,
    "n_layers": 1,
    "max_len": 8,
    "epochs": 2,
    "text_encoder": None,
    "validation": False,
    "verbose": False,
}
CONFIG = {
    "model": "sequential",
    "model_params": TINY,
    "synthetic_events": 3_000,
    "background": False,
    "learner_batch": 64,
    "challenger_every": 300,
    "challenger_min_seconds": 0,
    "learner_share": 1.0,
    "holdout_events": 100,
    "max_batch": 500,
}
WRITE_KEY = "write-key-0123456789"
READ_KEY = "read-key-0123456789"


@pytest.fixture
def service_config():
    """The settings the test home was made with (a copy to change)."""
    return dict(CONFIG)


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory):
    """A home folder with the event store and a first champion (trained once)."""
    from lifelongrec.serving import RecommenderService

    home = tmp_path_factory.mktemp("home-template") / "home"
    RecommenderService.open(home, data="synthetic", config=CONFIG).close()
    return home


@pytest.fixture
def home(trained_home, tmp_path):
    dst = tmp_path / "home"
    shutil.copytree(trained_home, dst)
    return dst


@pytest.fixture
def service(home):
    from lifelongrec.serving import RecommenderService

    s = RecommenderService.open(home, config=CONFIG)
    yield s
    s.close()


@pytest.fixture
def keys():
    from lifelongrec.serving import KeyRing

    return KeyRing.from_env(f"{WRITE_KEY}:read,write;{READ_KEY}:read")


@pytest.fixture
def client(service, keys):
    from fastapi.testclient import TestClient

    from lifelongrec.serving import create_app

    with TestClient(create_app(service, keys, max_body_bytes=200_000)) as c:
        c.headers["X-API-Key"] = WRITE_KEY
        yield c


def _feed(client, service, n, start=2_000_000_000):
    """Post ``n`` events of the first 40 known users on random known items, one second
    apart from ``start``, in batches of 200 (``client``: a TestClient or httpx client
    that sends a write key)."""
    users = service.live_model.known_users()[:40]
    items = service.live_model.known_items()
    rng = np.random.default_rng(0)
    events = [
        {
            "user_id": users[j % len(users)],
            "item_id": items[int(rng.integers(len(items)))],
            "timestamp": start + j,
        }
        for j in range(n)
    ]
    for s in range(0, n, 200):
        assert client.post("/events", json={"events": events[s : s + 200]}).status_code == 201


@pytest.fixture
def feed():
    """:func:`_feed`: events of known users through the API."""
    return _feed


def _copy_store(home, url):
    """The home's SQLite store copied into the PostgreSQL store at ``url`` (same
    ``seq`` numbers, so the champion's store position holds), and the home's settings
    pointed there: the home, as a first start with ``store_url`` would have made it."""
    import json

    from lifelongrec.data import EventStore, PostgresEventStore

    with EventStore(home / "events.sqlite") as src, PostgresEventStore(url) as dst:
        events = src.read()
        for start in range(0, len(events), 5_000):
            part = events.iloc[start : start + 5_000]
            got = dst.append(part.drop(columns="seq"))
            assert got.seqs.tolist() == part["seq"].tolist()
        dst.upsert_items(src.items())
    for name in ("events.sqlite", "events.sqlite-wal", "events.sqlite-shm"):
        (home / name).unlink(missing_ok=True)
    saved = json.loads((home / "service.json").read_text())
    (home / "service.json").write_text(json.dumps({**saved, "store_url": url}))


@pytest.fixture
def copy_store():
    """``copy_store(home, url)``: the home's store moved to PostgreSQL (see _copy_store)."""
    return _copy_store


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_home(request, home, service_config):
    """``(home, settings)`` once per store backend: the tiny home on SQLite, then the
    same home with its store on PostgreSQL (skipped, saying why, without a server)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_store_url")
        _copy_store(home, url)
        service_config = {**service_config, "store_url": url}
    return home, service_config
