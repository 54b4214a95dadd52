"""benchmarks/impression_cost.py: the off/on alternation, the medians and their p99
difference (computed from the runs it made), and the request path's own cost."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def cost_bench(benchmark_module):
    with benchmark_module("impression_cost") as module:
        yield module


@pytest.fixture(scope="module")
def common(benchmark_module):
    with benchmark_module("_common") as module:
        yield module


def test_record_cost_is_measured_per_call(cost_bench):
    got = cost_bench.record_cost(3_000)
    assert 0 < got["p50_us"] <= got["p99_us"] and got["mean_us"] > 0


def test_runs_alternate_and_the_block_has_the_median_difference(
    cost_bench, common, tmp_path, monkeypatch
):
    monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    calls = []
    p99 = iter([10.0, 11.5, 12.0, 12.4, 9.0, 10.0])  # off, on, off, on, off, on

    def fake_load(argv):
        calls.append(argv)
        lat = {"p50": 3.0, "p95": 6.0, "p99": next(p99)}
        return {
            "recs": {"latency_ms": lat, "server": {"mean_ms": 2.0}, "achieved_rate": 200.0}
            | {"errors": 0}
        }

    monkeypatch.setattr(cost_bench.load, "main", fake_load)
    assert cost_bench.main(["--pairs", "3", "--calls", "1000", "--block", "t"]) == 0
    modes = ["log_impressions=false" in " ".join(a) for a in calls]
    assert modes == [True, False, True, False, True, False]
    assert all("--no-write" in a and "recs" in a for a in calls)
    raw = json.loads((tmp_path / "impressions-t.json").read_text())
    # medians: off 10.0 (10, 12, 9), on 11.5 (11.5, 12.4, 10): +1.5
    assert raw["p99_difference_ms"] == pytest.approx(1.5)
    assert "**+1.50 ms**" in (tmp_path / "benchmarks.md").read_text()
