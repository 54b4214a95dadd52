"""``scripts/cluster.sh``: a local cluster of two ``serve`` processes on PostgreSQL and a
Redis bus comes up, an event accepted by one is reflected by the other, and Ctrl-C stops
every process. Its argument checks answer without starting anything."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster.sh"
KEY = "cluster-key-0123456789"
TS = 2_000_000_000


def _two_free_ports():
    """A port p such that p and p + 1 are both free now."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind(("127.0.0.1", port))
                s2.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports")


def test_bad_arguments_are_refused_before_anything_starts(tmp_path):
    for args, said in (
        (["--replicas", "0"], "--replicas"),
        (["--port", "x"], "--port"),
        (["--bogus"], "unknown option --bogus"),
    ):
        r = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True)
        assert r.returncode == 2 and said in r.stderr
    r = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--replicas" in r.stdout


def test_a_local_cluster_comes_up_reflects_across_processes_and_stops(
    tmp_path, service_config, postgres_store_url, bus_url
):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**service_config, "background": True}))
    port = _two_free_ports()
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "--home", str(tmp_path / "home"), "--replicas", "2"]
        + ["--port", str(port), "--store", postgres_store_url, "--bus", bus_url]
        + ["--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LIFELONGREC_API_KEYS": f"{KEY}:read,write"},
        start_new_session=True,
    )
    lines = []
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end:
            line = proc.stdout.readline()
            assert line, f"the script ended: {lines}"
            lines.append(line)
            if line.startswith("cluster ready"):
                break
        assert any(f"127.0.0.1:{port + 1}" in line for line in lines), lines
        head = {"Authorization": f"Bearer {KEY}"}
        a = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=head, timeout=30)
        b = httpx.Client(base_url=f"http://127.0.0.1:{port + 1}", headers=head, timeout=30)
        user = "u00003"
        top = b.get(f"/users/{user}/recommendations", params={"k": 1}).json()["items"][0]
        event = {"user_id": user, "item_id": top["item_id"], "timestamp": TS}
        assert a.post("/events", json=event).status_code == 201
        end = time.monotonic() + 10
        while time.monotonic() < end:
            got = b.get(f"/users/{user}/recommendations", params={"k": 10}).json()["items"]
            if top["item_id"] not in [i["item_id"] for i in got]:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("B never reflected the event A accepted")
        assert b.get("/health").json()["config"]["bus_url"] == bus_url
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    assert "cluster stopped" in out
    for p in (port, port + 1):
        try:
            httpx.get(f"http://127.0.0.1:{p}/health", timeout=2)
            raise AssertionError(f"port {p} still answers")
        except httpx.HTTPError:
            pass
