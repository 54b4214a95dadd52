"""benchmarks/bus.py on its smallest path: a few messages through Redis Streams and
NATS JetStream (skipped, saying why, where either server is absent)."""

from __future__ import annotations

import socket

import pytest


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_tiny_run_through_both_buses(benchmark_module, redis_server_url):
    if not _listening(4222):
        pytest.skip("no NATS server at 127.0.0.1:4222")
    pytest.importorskip("nats", reason="nats-py is not installed (pip install nats-py)")
    with benchmark_module("bus") as bus:
        out = bus.main(["--single", "20", "--batches", "10", "--batch", "50", "--no-write"])
    for name in ("redis", "nats"):
        res = out[name]
        assert 0 < res["publish_ms"]["p50"] <= res["publish_ms"]["max"]
        assert res["delivery_ms"]["p50"] > 0
        assert res["publish_events_per_s"] > 0 and res["group_events_per_s"] > 0
