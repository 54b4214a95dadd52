"""benchmarks/stream.py: issue 4's table is computed from the prequential results it runs
or imports (shares against retrain, update compute after the first fit)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def stream_bench(benchmark_module):
    with benchmark_module("stream") as module:
        yield module


def test_runs_imports_merges_and_writes_shares_against_retrain(stream_bench, tmp_path, monkeypatch):
    from lifelongrec.evaluation import run_stream

    common = stream_bench._common  # the script's docs-block writer, pointed at tmp_path
    monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    common = dict(windows=3, k=10, synthetic_events=3000, progress=False, drift="none")
    # one strategy run elsewhere (as `lifelongrec stream --json` prints it), imported
    lifelong = run_stream("synthetic", "popularity", "lifelong", **common)
    path = tmp_path / "lifelong.json"
    path.write_text(json.dumps(lifelong))
    argv = ["--datasets", "synthetic", "--synthetic-events", "3000", "--windows", "3"]
    argv += ["--drift", "none", "--block", "t", "--models", "popularity"]
    stream_bench.main([*argv, "--strategies", "static", "retrain"])
    stream_bench.main(
        [*argv[:-2], "--models", "--import", f"synthetic:popularity:{path}", "--merge"]
    )
    raw = json.loads((tmp_path / "stream-t.json").read_text())
    (run,) = raw["results"]
    assert sorted(run["strategies"]) == ["lifelong", "retrain", "static"]
    by = {r["strategy"]: r for r in raw["rows"]}
    ref = run["strategies"]["retrain"]
    got = run["strategies"]["lifelong"]
    assert by["lifelong"]["ndcg_share"] == pytest.approx(
        got["mean"]["ndcg@10"] / ref["mean"]["ndcg@10"]
    )
    assert by["lifelong"]["cpu_share"] == pytest.approx(
        got["total_update_cpu_seconds_after_first"] / ref["total_update_cpu_seconds_after_first"]
    )
    assert by["retrain"]["ndcg_share"] == pytest.approx(1.0)
    assert by["static"]["bwt"] == 0.0  # a model that never learns forgets nothing
    text = (tmp_path / "benchmarks.md").read_text()
    assert (
        text.count("<!-- stream-t:begin -->") == 1
        and "| synthetic | popularity | lifelong |" in text
    )
    assert (tmp_path / "stream-t-synthetic-popularity.png").stat().st_size > 0


def test_imported_params_lists_what_differs_from_the_defaults(stream_bench):
    from lifelongrec.models import get_model

    defaults = get_model("sequential").get_params()
    changed = {**defaults, "partial_fit_epochs": 16, "verbose": False, "device": "cpu"}
    results = [
        {
            "dataset": "synthetic",
            "model": "sequential",
            "imported": {"lifelong": "a.json", "static": "b.json"},
            "strategies": {"lifelong": {"params": changed}, "static": {"params": defaults}},
        },
        {"dataset": "x", "model": "ease", "strategies": {"retrain": {}}},  # not imported
    ]
    # the script's function for the parameters an imported run differed in (no CLI of its own)
    assert stream_bench._imported_params(results) == {
        "synthetic/sequential/lifelong": {"partial_fit_epochs": 16}
    }
