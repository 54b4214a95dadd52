"""Shared fixtures. Real datasets are read in place from ../shared/data (never copied)."""

import os
import uuid
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    """Under pytest-xdist, each worker's torch takes its share of the cores: two workers
    with two intra-op threads each on two cores oversubscribe them, and the tests' tiny
    matrix products then wait on each other (one test measured 3.7 s alone, 50 s so)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Tests never write to the user's cache: text encodings go to a temporary folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LIFELONGREC_CACHE_DIR", str(tmp_path_factory.mktemp("lifelongrec-cache")))
    yield
    mp.undo()


#: The PostgreSQL server the backend tests use (trust auth on the project's machines).
POSTGRES_URL = os.environ.get(
    "LIFELONGREC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def _server_url(name: str, url: str, client: str, extra: str, reach) -> str:
    """``url`` once ``reach(client_module)`` got an answer from the server there; else
    the test skips, saying why (no client package, or no server)."""
    module = pytest.importorskip(client, reason=f"{client} is not installed ({extra})")
    try:
        reach(module)
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is the reason
        pytest.skip(f"no {name} server at {url} ({str(exc).strip()[:120]})")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL; tests that need it skip, saying why, when it is absent."""
    return _server_url(
        "PostgreSQL",
        POSTGRES_URL,
        "psycopg",
        "pip install 'lifelongrec[postgres]'",
        lambda psycopg: psycopg.connect(POSTGRES_URL, connect_timeout=3).close(),
    )


@pytest.fixture
def postgres_store_url(postgres_url):
    """A store URL on the test server with a schema of its own, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url}?schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


#: The Redis server the event bus tests use.
REDIS_URL = os.environ.get("LIFELONGREC_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The test Redis server's URL; tests that need it skip, saying why, when it is absent."""
    return _server_url(
        "Redis",
        REDIS_URL,
        "redis",
        "pip install 'lifelongrec[bus]'",
        lambda redis: redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping(),
    )


@pytest.fixture
def bus_url(redis_server_url):
    """A bus URL on the test server with a stream of its own, deleted afterwards."""
    import redis

    stream = f"test:{uuid.uuid4().hex[:12]}"
    yield f"{redis_server_url}?stream={stream}"
    redis.Redis.from_url(redis_server_url).delete(stream)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path):
    """Where an event store lives, once per backend: a SQLite file, then a PostgreSQL
    schema (skipped, saying why, where no server runs)."""
    if request.param == "sqlite":
        return tmp_path / "events.sqlite"
    return request.getfixturevalue("postgres_store_url")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public datasets; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


# --------------------------------------------------------------- tiny block world
# Two disjoint groups: six "A" users each touched all five A items (space/robot titles),
# ten "B" users the B items (cooking/garden titles; more popular). The probe user "pA"
# has seen a0..a3, so the one right answer for a personalised model is "a4".
BLOCK_A = [f"a{i}" for i in range(5)]
BLOCK_B = [f"b{i}" for i in range(5)]


def _block_events():
    from lifelongrec.data import make_events

    users, items = [], []
    for u in range(6):
        for it in BLOCK_A:
            users.append(f"uA{u}")
            items.append(it)
    for u in range(10):
        for it in BLOCK_B[: 5 if u < 5 else 4]:
            users.append(f"uB{u}")
            items.append(it)
    for it in BLOCK_A[:4]:
        users.append("pA")
        items.append(it)
    return make_events(users, items, list(range(1, len(users) + 1)))


def _block_items(extra=()):
    from lifelongrec.data import make_items

    ids = BLOCK_A + BLOCK_B + list(extra)
    titles, cats = [], []
    for i in ids:
        if i.startswith("a") or i.startswith("na"):
            titles.append(f"space robot adventure {i}")
            cats.append(["scifi"])
        else:
            titles.append(f"cooking garden recipe {i}")
            cats.append(["home"])
    return make_items(ids, titles, cats, [{"price": float(n)} for n in range(len(ids))])


@pytest.fixture
def blocks_dataset():
    """A :class:`~lifelongrec.data.Dataset` of the block world, with an items catalogue."""
    from lifelongrec.data import Dataset

    return Dataset(events=_block_events(), items=_block_items(["na0", "nb0"]), name="blocks")


@pytest.fixture
def blocks_update():
    """New events for the block world: a new user "nA" (a0, a1, a2), two new items
    ("na0" bought by A users, "nb0" by B users) and one more event for "pA"."""
    from lifelongrec.data import Dataset, make_events

    users = ["nA", "nA", "nA", "uA0", "uA1", "uA2", "uB0", "uB1", "pA"]
    items = ["a0", "a1", "a2", "na0", "na0", "na0", "nb0", "nb0", "na0"]
    ev = make_events(users, items, list(range(100, 100 + len(users))))
    return Dataset(events=ev, items=_block_items(["na0", "nb0"]), name="blocks-update")


# ---------------------------------------------------------- benchmark scripts
@pytest.fixture(scope="session")
def benchmark_module():
    """Import a script of benchmarks/ as a module, for the time of a ``with``:
    ``with benchmark_module("load") as module: ...`` (its name stays in sys.modules
    meanwhile, which dataclasses in the script need). The scripts' shared helper
    (``benchmarks/_common.py``) is importable as ``_common`` meanwhile, as it is when
    Python runs a script: ``benchmark_module("_common")`` gives that very module."""
    import contextlib
    import importlib
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "benchmarks"

    @contextlib.contextmanager
    def load(name: str):
        sys.path.insert(0, str(folder))
        try:
            if name.startswith("_"):  # a helper module, imported as the scripts import it
                yield importlib.import_module(name)
                return
            spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            try:
                spec.loader.exec_module(module)
                yield module
            finally:
                sys.modules.pop(spec.name, None)
        finally:
            sys.path.remove(str(folder))

    return load
