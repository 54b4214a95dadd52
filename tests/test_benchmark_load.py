"""benchmarks/load.py (and its parts _load_client.py, _load_phases.py): its arguments,
statistics and HTTP client, and one tiny end-to-end run (a real ``lifelongrec serve``
subprocess on loopback; tens of seconds)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def load(benchmark_module):
    with benchmark_module("load") as module:
        yield module


@pytest.fixture(scope="module")
def client(benchmark_module):
    with benchmark_module("_load_client") as module:
        yield module


@pytest.fixture(scope="module")
def common(benchmark_module):
    with benchmark_module("_common") as module:
        yield module


def test_arguments_and_what_they_imply(load, tmp_path):
    a = load.parse_args([])
    assert (a.items, a.events, a.rate, a.k) == (100_000, 300_000, 200.0, 10)
    assert a.users == 7_500 and a.pool == 60_000
    assert a.ann_threshold == 50_000 < a.items  # 100k items: the HNSW index
    assert a.block == "load" and a.phase_list == list(load.PHASES)
    assert a.model_params["dim"] == 64 and a.model_params["text_encoder"] is None
    small = load.parse_args(["--items", "5000", "--param", "dim=16", "--service", "hnsw_m=8"])
    assert small.ann_threshold == 4_999 and small.block == "load-5000"
    assert small.model_params["dim"] == 16 and small.service_overrides == {"hnsw_m": 8}
    exact = load.parse_args(["--items", "1000000", "--exact", "--phases", "recs,recall"])
    assert exact.ann_threshold > exact.items and exact.block == "load-1000000-exact"
    assert exact.phase_list == ["recs", "recall"]
    cfg = load.server_config(exact, {"settings": load.build_settings(exact)})
    assert cfg["background"] is True and cfg["ann_threshold"] == exact.ann_threshold
    for bad in (
        ["--phases", "recs,nope"],
        ["--rate", "0"],
        ["--feed-interval", "0"],
        ["--switch-interval-ms", "0"],
    ):
        with pytest.raises(SystemExit):
            load.parse_args(bad)


def test_serve_options_reach_the_server_command(load, client, tmp_path):
    assert load.serve_options(load.parse_args([])) == []  # serve's own default
    extra = load.serve_options(load.parse_args(["--switch-interval-ms", "5"]))
    assert extra == ["--switch-interval-ms", "5.0"]
    both = ["--no-gc-freeze", "--switch-interval-ms", "5"]
    assert load.serve_options(load.parse_args(both)) == ["--no-gc-freeze", *extra]
    cmd = client.Server(tmp_path / "home", {}, 8123, tmp_path / "log", extra).command
    assert cmd[cmd.index("serve") :][-2:] == extra and "--port" in cmd


def test_statistics(client, benchmark_module):
    q = client.quantiles_ms([0.001] * 98 + [0.010, 0.020])
    assert q["p50"] == pytest.approx(1.0) and q["max"] == pytest.approx(20.0) and q["n"] == 100
    assert np.isnan(client.quantiles_ms([])["p99"])
    u = client.schedule(200, 2, "uniform")
    assert len(u) == 400 and u[1] == pytest.approx(0.005)
    p = client.schedule(200, 20, "poisson", seed=1)
    assert p[0] == 0 and p[-1] < 20 and len(p) == pytest.approx(4000, rel=0.1)
    assert (np.diff(p) > 0).all()
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    V = np.eye(4, dtype=np.float32)
    U = np.array([[1, 2, 3, 4], [4, 3, 2, 1]], dtype=np.float32)
    pos = {i: j for j, i in enumerate(ids)}
    with benchmark_module("_load_phases") as phases:
        assert phases.exact_topk(U, V, ids, 2, None, pos) == [{"c", "d"}, {"a", "b"}]
        excl = [np.array(["d"], dtype=object), np.array([], dtype=object)]
        assert phases.exact_topk(U, V, ids, 2, excl, pos, chunk=1) == [{"b", "c"}, {"a", "b"}]


EXPOSITION = """\
# HELP lifelongrec_request_seconds Request latency by route
# TYPE lifelongrec_request_seconds histogram
lifelongrec_request_seconds_bucket{le="0.005",method="GET",route="/users/{user_id}/recommendations",status="200"} %d
lifelongrec_request_seconds_bucket{le="0.01",method="GET",route="/users/{user_id}/recommendations",status="200"} %d
lifelongrec_request_seconds_bucket{le="+Inf",method="GET",route="/users/{user_id}/recommendations",status="200"} %d
lifelongrec_request_seconds_count{method="GET",route="/users/{user_id}/recommendations",status="200"} %d
lifelongrec_request_seconds_sum{method="GET",route="/users/{user_id}/recommendations",status="200"} %f
lifelongrec_request_seconds_count{method="POST",route="/events",status="201"} 7.0
lifelongrec_learner_n_batches %d
"""


def test_prometheus_parsing_and_histogram_deltas(client, common, benchmark_module):
    before = common.metric_samples(EXPOSITION % (10, 10, 10, 10, 0.03, 2))
    after = common.metric_samples(EXPOSITION % (100, 109, 110, 110, 0.53, 5))
    assert client.metric(after, "lifelongrec_learner_n_batches") == 5
    assert client.metric(after, "lifelongrec_request_seconds_count") == 117  # both routes
    assert client.metric(after, "lifelongrec_request_seconds_count", method="POST") == 7
    with benchmark_module("_load_phases") as phases:
        route = phases.REC_ROUTE
    h = client.histogram_delta(
        before, after, "lifelongrec_request_seconds", method="GET", route=route
    )
    assert h["count"] == 100 and h["mean_ms"] == pytest.approx(5.0)
    assert h["p50_le_ms"] == 5.0 and h["p99_le_ms"] == 10.0


def test_raw_client_keep_alive_chunked_and_a_closed_idle_connection(client):
    async def main():
        seen = {"connections": 0}

        async def handle(reader, writer):
            seen["connections"] += 1
            n = 0
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                body = await reader.readexactly(length)
                n += 1
                if b"/chunked" in head:
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    writer.write(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                else:
                    out = b"echo:" + body
                    writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(out))
                    writer.write(out)
                await writer.drain()
                if b"/close-after" in head:  # like a keep-alive timeout: close when idle
                    break
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = client.RawHTTP("127.0.0.1", port, max_connections=4, timeout=5)
        assert await c.request("POST", "/x", b"hi") == (201, b"echo:hi")
        assert await c.request("GET", "/chunked") == (200, b"abcde")
        assert seen["connections"] == 1  # kept alive
        big = b"x" * 200_000
        assert await c.request("POST", "/x", big) == (201, b"echo:" + big)
        await c.request("GET", "/close-after")
        await asyncio.sleep(0.05)
        assert await c.request("GET", "/chunked") == (200, b"abcde")  # retried on a new one
        assert seen["connections"] == 2
        await c.aclose()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


def test_tiny_end_to_end_run_writes_its_block(load, common, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    argv = ["--items", "300", "--events", "1500", "--pool", "1500", "--work", str(tmp_path / "w")]
    argv += ["--param", "dim=8", "--param", "epochs=1", "--param", "n_layers=1"]
    argv += ["--param", "max_len=8", "--param", "verbose=false", "--block", "t"]
    argv += ["--rate", "40", "--duration", "1", "--warmup", "0", "--reflect", "5"]
    argv += ["--ingest-clients", "2", "--ingest-batch", "100", "--ingest-duration", "0.5"]
    argv += ["--recall", "20", "--service", "challenger_every=0"]
    res = load.main(argv)
    assert res["start"]["index"] == "hnsw" and res["start"]["n_items"] == 300
    recs = res["recs"]
    assert recs["sent"] == 40 and recs["ok"] == 40 and not recs["errors"]
    assert recs["learner"]["learner_running"]
    assert res["reflect"]["reflected"] == 5 and not res["reflect"]["failures"]
    ingest = res["ingest"]
    assert ingest["events_written"] >= 200 and not ingest["errors"]
    assert ingest["learner"]["d_n_events"] == ingest["events_written"]
    assert res["feeder"]["events_written"] > 0
    assert res["recall"]["users"] == 20 and 0 <= res["recall"]["plain"]["recall"] <= 1
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- service-t:begin -->" in text and "ANN recall@10" in text
    raw = json.loads((tmp_path / "service-t.json").read_text())
    assert raw["command"].startswith(".venv/bin/python benchmarks/load.py --items 300")
    # the second run reuses the home folder (no training) and starts from a fresh copy
    res2 = load.main([*argv, "--phases", "recs", "--no-write", "--restart"])
    assert res2["meta"]["built"] == res["meta"]["built"]
    assert res2["start"]["n_events"] == res["meta"]["n_events"]
    # --restart: a second start on the run's home, from the graph the first one saved
    assert 0 < res2["restart_s"] < 120
    assert list((tmp_path / "w" / "run" / "index").glob("*.faiss"))
    # --replicas 2: two serve processes on the home, requests sent to them in turn (an
    # event posted to one, the recommendations asked of the other: reflected across)
    res3 = load.main([*argv, "--phases", "recs,reflect", "--no-write", "--replicas", "2"])
    assert res3["recs"]["ok"] == res3["recs"]["sent"] == 40
    assert res3["reflect"]["reflected"] == 5 and not res3["reflect"]["failures"]
