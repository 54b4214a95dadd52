"""``kill -9`` of the real server (uvicorn in a subprocess) while it ingests: no
acknowledged event is lost, and a restart serves the same champion.

The test synchronises on what the server and the client report, not on time: the server
is ready when uvicorn says it is listening (read from its output), and it is killed once
the client has had a number of batches acknowledged. The waits have hang guards that
only a broken server reaches.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from lifelongrec.data import EventStore

HANG_GUARD = 300  # seconds; never reached unless the server or the client is stuck


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(home, port):
    """Start ``lifelongrec serve`` and return once it listens (uvicorn logs "Uvicorn
    running on" after the socket is bound): the process and its /health. Its output is
    drained by a thread from then on, so a full pipe never blocks the server."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lifelongrec.cli",
            "serve",
            "--home",
            str(home),
            "--open",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    for raw in proc.stdout:  # blocks until the server writes; ends when it exits
        lines.append(raw.decode(errors="replace"))
        if "Uvicorn running on" in lines[-1]:
            break
    else:
        proc.wait(timeout=HANG_GUARD)
        raise AssertionError(f"server exited: {''.join(lines)[-3000:]}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=HANG_GUARD)
    assert r.status_code == 200, r.text
    return proc, r.json()


def _post_until_killed(port, acked, errors, stop, enough, n_batches):
    """Post batches of 40 events (unique timestamps) until the connection dies; record
    each batch acknowledged with 201, and set ``enough`` after ``n_batches`` of them."""
    n = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=HANG_GUARD) as client:
        while not stop.is_set():
            batch = [
                {
                    "user_id": f"u{(n + j) % 50:05d}",
                    "item_id": f"i{(n + j) % 90 + 1:06d}",
                    "timestamp": 2_000_000_000 + n + j,
                    "event_id": f"k{n + j}",
                }
                for j in range(40)
            ]
            try:
                r = client.post("/events", json={"events": batch})
            except httpx.HTTPError:
                enough.set()
                return  # the server is gone
            if r.status_code != 201:
                errors.append(r.text)
                enough.set()
                return
            acked.extend(e["timestamp"] for e in batch)
            n += 40
            if n >= 40 * n_batches:
                enough.set()


@pytest.mark.parametrize("seed", [0])
def test_kill_9_during_ingestion_loses_no_acknowledged_event(home, seed):
    rng = random.Random(seed)
    port = _free_port()
    proc, health = _start(home, port)
    champion = health["model_version"]
    acked: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    enough = threading.Event()
    n_batches = rng.randint(5, 25)  # mid-ingestion: after this many acknowledged batches
    poster = threading.Thread(
        target=_post_until_killed, args=(port, acked, errors, stop, enough, n_batches)
    )
    try:
        poster.start()
        assert enough.wait(HANG_GUARD), "the client got no answers"
        n_before_kill = len(acked)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=HANG_GUARD)
    finally:
        stop.set()
        poster.join(timeout=HANG_GUARD)
        if proc.poll() is None:
            proc.kill()
    assert not errors, errors
    assert n_before_kill >= 40, "nothing was acknowledged before the kill"
    with EventStore(home / "events.sqlite") as store:
        stored = store.read(after_seq=0)
    have = set(stored["timestamp"].tolist())
    lost = [t for t in acked if t not in have]
    assert not lost, f"{len(lost)} acknowledged events lost of {len(acked)}"
    ts = stored["timestamp"]
    assert ts[ts >= 2_000_000_000].is_unique  # nothing doubled either
    # a restart serves the same champion, and the events are in the users' state
    port = _free_port()
    proc, health = _start(home, port)
    try:
        assert health["model_version"] == champion
        assert health["n_events"] == len(stored)
        r = httpx.get(f"http://127.0.0.1:{port}/users/u00001/recommendations?k=3", timeout=10)
        assert r.status_code == 200 and len(r.json()["items"]) == 3
        models = httpx.get(f"http://127.0.0.1:{port}/models", timeout=10).json()
        assert models["champion"] == champion
    finally:
        proc.send_signal(signal.SIGTERM)  # the app's lifespan stops the learner, closes
        try:
            proc.wait(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
    saved = json.loads((home / "service.json").read_text())
    assert saved["background"] is False  # the settings of the first start were kept


def test_kill_9_loses_at_most_the_last_flush_interval_of_impressions(home):
    """Impressions are buffered and stored every ``impression_flush_seconds`` (1 s):
    after a ``kill -9``, every answer older than a few flush intervals is in the
    impression log, and what is missing is only the newest answers."""
    port = _free_port()
    proc, _ = _start(home, port)
    answered: list[tuple[str, float, int]] = []  # request id, answer time, items shown
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=HANG_GUARD) as client:
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < 4.0 or len(answered) < 20:
                r = client.get(f"/users/u{n % 50:05d}/recommendations", params={"k": 5})
                assert r.status_code == 200, r.text
                body = r.json()
                answered.append((body["request_id"], time.monotonic(), len(body["items"])))
                n += 1
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
    with EventStore(home / "events.sqlite") as store:
        stored = store.impressions()
    per_request = stored.groupby("request_id").size().to_dict()
    lost = [(rid, t) for rid, t, k in answered if per_request.get(rid, 0) != k and k]
    ages = [killed_at - t for _, t in lost]
    # 1 s flush interval; 3 s leaves room for a slow flush on a loaded machine
    assert not ages or max(ages) < 3.0, (
        f"{len(lost)} of {len(answered)} answers' impressions lost, the oldest "
        f"{max(ages):.2f} s before the kill"
    )
    assert len(per_request) >= len(answered) - len(lost) > 0
