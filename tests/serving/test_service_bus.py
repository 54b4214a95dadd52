"""The service and the learner process on the event bus (``bus_url``): replicas take
each other's events from it, the learner reads through its consumer group and
acknowledges what it learned, and a bus server killed and started again (without
persistence: it comes back empty) loses no acknowledged event and gets none learned
twice. The store backends both run (SQLite; PostgreSQL where a server runs)."""

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from lifelongrec.data import RedisEventBus
from lifelongrec.serving import RecommenderService
from lifelongrec.serving._learner_process import LearnerProcess

TS = 2_000_000_000
DEADLINE = 60


def _open(home, config, bus_url, **over):
    cfg = {**config, "background": True, "learner_mode": "external", "bus_url": bus_url, **over}
    return RecommenderService.open(home, config=cfg, start=False)


def _events(service, n, seed, start):
    rng = np.random.default_rng(seed)
    users = sorted(service.live_model.known_users())[:40]
    items = sorted(service.live_model.known_items())
    return [
        {
            "user_id": users[int(rng.integers(len(users)))],
            "item_id": items[int(rng.integers(len(items)))],
            "timestamp": start + j,
        }
        for j in range(n)
    ]


def _until(what, seconds=DEADLINE):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if what():
            return
        time.sleep(0.01)
    raise AssertionError("not reached")


def test_replicas_take_each_others_events_from_the_bus(backend_home, bus_url):
    home, config = backend_home
    a, b = _open(home, config, bus_url), _open(home, config, bus_url)
    try:
        b.start_learner()  # B's followers: the bus one and the (slower) store one
        _until(lambda: b.health()["bus_following"])
        user = sorted(a.live_model.known_users())[0]
        top = b.recommend(user, k=1)["items"][0]["item_id"]
        a.ingest([{"user_id": user, "item_id": top, "timestamp": TS}])
        _until(lambda: top not in [i["item_id"] for i in b.recommend(user, k=10)["items"]])
        assert a.counters["bus_published"] == 1
        ts = TS + 1
        for j in range(6):
            a.ingest(_events(a, 50, seed=j, start=ts))
            ts += 50
            time.sleep(0.05)
        _until(lambda: b.health()["store_position"] == a.store.last_seq)
        assert a.counters["bus_published"] == 7
        # B's store follower (every 0.25 s with a working bus) may take a batch first;
        # the bus brings the rest, and nothing is taken twice
        assert 0 < b.counters["bus_events_in"] <= 301
        for u in sorted(a.live_model.known_users())[:10]:
            assert a.recommend(u, k=10)["items"] == b.recommend(u, k=10)["items"], u
        assert b.health()["config"]["bus_url"] == bus_url
    finally:
        a.close()
        b.close()


def test_the_learner_reads_through_its_group_and_acknowledges_what_it_learned(
    backend_home, bus_url
):
    home, config = backend_home
    service = _open(home, config, bus_url, gate_tolerance=1.0)
    learner = LearnerProcess(home)
    try:
        seq0 = learner.learner.cursor
        learner.step()  # joins the group: from here on it reads the bus
        ts = TS
        for j in range(6):
            service.ingest(_events(service, 100, seed=j, start=ts))
            ts += 100
            learner.step()
        for _ in range(20):
            learner.step()
        assert learner.learner.cursor == service.store.last_seq
        feed = learner.learner.feed
        assert feed.bus_events >= 500  # most came by the bus
        bus = RedisEventBus(bus_url)
        assert bus.pending("learner") == 0  # each entry acknowledged once learned
        assert learner.learner.stats()["n_events"] == service.store.last_seq - seq0
    finally:
        learner.close()
        service.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A Redis server of the test's own (no persistence, as the machines run theirs),
    so that it can be killed and started again."""

    def __init__(self):
        self.port = _free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        _until(lambda: _pings(redis, self.port), 20)

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def _pings(redis, port):
    try:
        return redis.Redis(port=port, socket_connect_timeout=0.2).ping()
    except (redis.RedisError, OSError):
        return False


def test_a_bus_server_killed_and_restarted_loses_and_doubles_nothing(
    backend_home, redis_server_url
):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian's redis-server package)")
    home, config = backend_home
    server = PrivateRedis()
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    quiet = {"challenger_every": 10**9}  # no promotion: A and B serve the same model
    a, b = _open(home, config, url, **quiet), _open(home, config, url, **quiet)
    learner = LearnerProcess(home)
    try:
        b.start_learner()
        seq0, ts, acked, n0 = learner.learner.cursor, TS, 0, a.store.n_events
        for phase in ("up", "down", "up again"):
            if phase == "down":
                server.kill()
            elif phase == "up again":
                server.start()  # empty: the stream and the learner's group are gone
            for j in range(5):
                out = a.ingest(_events(a, 60, seed=hash((phase, j)) % 1000, start=ts))
                ts += 60
                acked += out["n_written"]  # every batch acknowledged, bus or not
                learner.step()
        assert a.counters["bus_publish_errors"] >= 1
        for _ in range(40):
            learner.step()
        last = a.store.last_seq
        assert a.store.n_events - acked == n0  # no acknowledged event lost
        assert learner.learner.cursor == last
        # each event after the champion's position learned once, with the bus down or not
        assert learner.learner.stats()["n_events"] == last - seq0
        _until(lambda: b.health()["store_position"] == last)  # B took in every event
        for u in sorted(a.live_model.known_users())[:10]:
            assert a.recommend(u, k=10)["items"] == b.recommend(u, k=10)["items"], u
    finally:
        learner.close()
        a.close()
        b.close()
        server.kill()
