"""benchmarks/simulate.py: the per-day block, the plot and the verdict on issue 17's
simulator targets, computed from the simulation it runs."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def simulate_bench(benchmark_module):
    with benchmark_module("simulate") as module:
        yield module


@pytest.fixture(scope="module")
def common(benchmark_module):
    with benchmark_module("_common") as module:
        yield module


def test_writes_the_days_the_plot_and_the_verdict(simulate_bench, common, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    world = ["n_users=80", "n_items=40", "days=3", "shift_day=2", "history_days=2"]
    argv = ["--model", "popularity", "--block", "t"]
    for w in world:
        argv += ["--world", w]
    assert simulate_bench.main(argv) == 0
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- simulate-t:begin -->" in text and "| day | sessions | static CTR |" in text
    assert (tmp_path / "simulate-t.png").stat().st_size > 10_000
    raw = json.loads((tmp_path / "simulate-t.json").read_text())
    runs = raw["strategies"]
    life = runs["lifelong"]["summary"]["after_shift"]["ctr"]
    static = runs["static"]["summary"]["after_shift"]["ctr"]
    # the verdict's first ratio, computed again from the raw result
    assert f"lifelong CTR / static CTR (days 2+): **{life / static:.3f}**" in text
    assert raw["command"].endswith("--world history_days=2")
