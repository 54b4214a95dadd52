"""Several API processes (replicas) on one home folder: what one writes, the others take
in (:meth:`RecommenderService.follow_store`), so that any replica answers any user with
their latest event.

Two services opened on the same home in this process stand for two replicas (each has
its own store connection, live model and erasure log, as two processes would); their
followers are driven by hand, so the test decides when a replica looks. Each runs on
both store backends (SQLite; PostgreSQL where a server runs). A last test runs two real
``lifelongrec serve`` processes.
"""

import numpy as np
import pytest

from lifelongrec.serving import RecommenderService

TS = 2_000_000_000
DEADLINE = 180  # seconds; a hang guard that only a broken service reaches


def _open(home, service_config):
    cfg = {**service_config, "background": True, "learner_mode": "external"}
    return RecommenderService.open(home, config=cfg, start=False)


def _top(service, user, k=5):
    return [i["item_id"] for i in service.recommend(user, k=k)["items"]]


def _knows(model, user):
    return int(model.user_rows([user])[0]) >= 0


def test_an_event_accepted_by_one_replica_is_reflected_by_the_other(backend_home):
    home, service_config = backend_home
    a, b = _open(home, service_config), _open(home, service_config)
    try:
        user = sorted(a.live_model.known_users())[0]
        top = _top(b, user)[0]
        a.ingest([{"user_id": user, "item_id": top, "timestamp": TS}])
        assert top in _top(b, user) and top not in _top(a, user)  # B has not looked yet
        assert b.follow_store() == 1 and b.follow_store() == 0
        assert top not in _top(b, user)  # seen now: excluded, as on A
        assert b.recommend(user, k=5)["items"] == a.recommend(user, k=5)["items"]
        # A writes, then B accepts an event before it looked: B takes A's in first.
        other = sorted(a.live_model.known_users())[1]
        first, second = _top(b, other, k=2)
        a.ingest([{"user_id": other, "item_id": first, "timestamp": TS + 1}])
        b.ingest([{"user_id": other, "item_id": second, "timestamp": TS + 2}])
        assert {first, second}.isdisjoint(_top(b, other, k=20))
        assert b.follow_store() == 0  # nothing left to take in
        assert a.follow_store() == 1  # A takes in B's event
        assert a.recommend(other, k=5)["items"] == b.recommend(other, k=5)["items"]
        # A user new to both, through A: B answers from their history, not cold (a user
        # B does not hold is restored from the store on their first request).
        a.ingest([{"user_id": "newcomer", "item_id": top, "timestamp": TS + 3}])
        out = b.recommend("newcomer", k=5)
        assert out["cold_start"] is False and top not in [i["item_id"] for i in out["items"]]
        assert b.follow_store() == 1  # and the event is not observed twice
        assert b.recommend("newcomer", k=5)["items"] == out["items"]
        assert a.store.n_events == b.store.n_events
    finally:
        a.close()
        b.close()


def test_catalogue_upserts_and_erasures_reach_the_other_replica(backend_home):
    home, service_config = backend_home
    a, b = _open(home, service_config), _open(home, service_config)
    try:
        a.upsert_items([{"item_id": "fresh-item", "title": "Fresh", "categories": ["fresh"]}])
        assert a.follow_store() == 0  # its own upsert: nothing to take in
        assert "fresh-item" not in b.live.item_set
        assert b.follow_store() == 1
        assert "fresh-item" in b.live.item_set
        assert [i["item_id"] for i in b.similar("fresh-item", k=3)["items"]]
        hits = b.recommend(sorted(b.live_model.known_users())[0], k=5, category="fresh")
        assert [i["item_id"] for i in hits["items"]] == ["fresh-item"]
        # An erasure through A: B forgets the user when it looks.
        user = sorted(a.live_model.known_users())[2]
        assert _knows(b.live_model, user)
        a.delete_user(user)
        b.follow_store()
        assert not _knows(b.live_model, user)
        assert b.recommend(user, k=5)["cold_start"] is True
        # B's own erasure is not the other's to repeat: A follows it too.
        second = sorted(b.live_model.known_users())[3]
        b.delete_user(second)
        a.follow_store()
        assert not _knows(a.live_model, second)
        assert b.erasures.generation == a.erasures.generation == 2
    finally:
        a.close()
        b.close()


def test_concurrent_writers_lose_nothing_and_converge(backend_home):
    home, service_config = backend_home
    import threading

    a, b = _open(home, service_config), _open(home, service_config)
    try:
        users = sorted(a.live_model.known_users())[:20]
        items = sorted(a.live_model.known_items())
        n0 = a.store.n_events

        def write(service, seed):
            rng = np.random.default_rng(seed)
            for j in range(20):
                service.ingest(
                    [
                        {
                            "user_id": users[int(rng.integers(len(users)))],
                            "item_id": items[int(rng.integers(len(items)))],
                            "timestamp": TS + 100 * j + k,
                        }
                        for k in range(25)
                    ]
                )

        threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert a.store.n_events == n0 + 1_000
        a.follow_store()
        b.follow_store()
        for u in users:
            assert a.recommend(u, k=10)["items"] == b.recommend(u, k=10)["items"], u
    finally:
        a.close()
        b.close()


def _serve(home, port, config_file):
    """``lifelongrec serve`` on ``home``; returns the process once /health answers."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "lifelongrec.cli", "serve", "--home", str(home), "--open"]
        + ["--port", str(port), "--config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        assert proc.poll() is None, f"serve exited with {proc.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("serve did not answer")


def _health(port):
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()


def _alive(pid):
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgresql+bus"])
def cluster_home(request, home, service_config):
    """``(home, settings)``: the tiny home on SQLite alone, then with its store on
    PostgreSQL and a Redis event bus (skipped, saying why, without those servers)."""
    if request.param == "sqlite":
        return home, service_config
    url = request.getfixturevalue("postgres_store_url")
    bus = request.getfixturevalue("bus_url")
    request.getfixturevalue("copy_store")(home, url)
    return home, {**service_config, "store_url": url, "bus_url": bus}


def test_kill_9_of_the_replica_running_the_learner(cluster_home, tmp_path):
    """Two ``serve`` processes on one home, one learner between them. SIGKILL of the
    replica that started the learner: every event it acknowledged is in the store and
    reflected by the other, its learner stops (its parent is gone), and the other
    replica starts the next one."""
    home, service_config = cluster_home
    import json
    import os
    import signal
    import socket
    import time

    import httpx

    def port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    config = tmp_path / "config.json"
    config.write_text(json.dumps({**service_config, "background": True}))
    ports = [port(), port()]
    procs = [_serve(home, p, config) for p in ports]
    try:
        end = time.monotonic() + DEADLINE
        owner = None
        while owner is None and time.monotonic() < end:
            pids = [_health(p)["learner_pid"] for p in ports]
            running = [pid for pid in pids if pid is not None and _alive(pid)]
            rounds = [_health(p)["learner_rounds"] for p in ports]
            if len(running) == 1 and max(rounds) > 0:
                owner = pids.index(running[0])
            time.sleep(0.2)
        assert owner is not None, "no single learner"
        learner, other = _health(ports[owner])["learner_pid"], 1 - owner
        n0 = _health(ports[other])["n_events"]
        users = [f"u{j:05d}" for j in range(1, 21)]
        shown = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[owner]}", timeout=30) as c:
            for j, u in enumerate(users):
                top = c.get(f"/users/{u}/recommendations", params={"k": 1}).json()["items"][0]
                shown[u] = top["item_id"]
                event = {"user_id": u, "item_id": top["item_id"], "timestamp": TS + j}
                assert c.post("/events", json=event).status_code == 201
        os.kill(procs[owner].pid, signal.SIGKILL)
        procs[owner].wait()
        assert _health(ports[other])["n_events"] == n0 + len(users)
        with httpx.Client(base_url=f"http://127.0.0.1:{ports[other]}", timeout=30) as c:
            time.sleep(0.2)  # a few looks of its store follower
            for u in users:  # the other replica excludes the item each user just saw
                got = c.get(f"/users/{u}/recommendations", params={"k": 50}).json()["items"]
                assert shown[u] not in [i["item_id"] for i in got], u
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and (
            _alive(learner) or _health(ports[other])["learner_pid"] is None
        ):
            time.sleep(0.2)
        assert not _alive(learner), "the killed replica's learner outlived it"
        new = _health(ports[other])["learner_pid"]
        assert new is not None and new != learner and _alive(new)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=60)
