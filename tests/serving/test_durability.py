"""``kill -9`` of the real server (uvicorn in a subprocess) while it ingests: no
acknowledged event is lost, and a restart serves the same champion."""

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(home, port):
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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read().decode()[-3000:]}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            if r.status_code == 200:
                return proc, r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not answer /health within 120 s")


def _post_until_killed(port, acked, errors, stop):
    """Post batches of 40 events (unique timestamps) until the connection dies; record
    each batch acknowledged with 201."""
    n = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
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
                return  # the server is gone
            if r.status_code != 201:
                errors.append(r.text)
                return
            acked.extend(e["timestamp"] for e in batch)
            n += 40


@pytest.mark.parametrize("seed", [0])
def test_kill_9_during_ingestion_loses_no_acknowledged_event(home, seed):
    rng = random.Random(seed)
    port = _free_port()
    proc, health = _start(home, port)
    champion = health["model_version"]
    acked: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    poster = threading.Thread(target=_post_until_killed, args=(port, acked, errors, stop))
    try:
        poster.start()
        time.sleep(1.0 + rng.random())  # mid-ingestion
        n_before_kill = len(acked)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        stop.set()
        poster.join(timeout=30)
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
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    saved = json.loads((home / "service.json").read_text())
    assert saved["background"] is False  # the settings of the first start were kept
