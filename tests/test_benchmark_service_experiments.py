"""benchmarks/service_experiments.py: its smoke run serves the two arms of each design
and case over HTTP, counts what the world was shown, writes its block; the summary
counts the runs that ended as expected."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_module):
    with benchmark_module("service_experiments") as module:
        yield module


@pytest.fixture(scope="module")
def common(benchmark_module):
    with benchmark_module("_common") as module:
        yield module


def test_the_smoke_run_serves_both_arms_and_writes_its_block(bench, common, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    assert bench.main(["--smoke", "--block", "t"]) == 0
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- service-experiments-t:begin -->" in text
    assert "service_experiments.py --smoke --block t" in text
    raw = json.loads((tmp_path / "service-experiments-t.json").read_text())
    runs = raw["runs"]
    assert sorted((r["design"], r["case"]) for r in runs) == [
        ("ab", "better"),
        ("ab", "worse"),
        ("interleaving", "better"),
        ("interleaving", "worse"),
    ]
    for r in runs:
        # worse: the sequential champion against popularity; better: the other way round
        want = ("v000002", "v000001") if r["case"] == "better" else ("v000001", "v000002")
        assert (r["champion"], r["challenger"]) == want
        assert r["status"] in ("rejected", "promoted", "stopped")
        assert r["decided"] == (r["status"] != "stopped")
        # the champion stays unless the challenger was promoted
        assert r["live_after"] == (r["challenger"] if r["status"] == "promoted" else r["champion"])
        # both arms were served; the experiment counted what the world was shown (all of
        # it when it ran to the end)
        assert set(r["impressions"]) == {"champion", "challenger"}
        assert min(r["impressions"].values()) > 0
        assert 0 < r["experiment_impressions"] <= r["drive_impressions"]
        if not r["decided"]:
            assert r["experiment_impressions"] == r["drive_impressions"]
        if r["design"] == "interleaving":  # every answer: both rankers' items, by team draft
            a, b = r["impressions"]["champion"], r["impressions"]["challenger"]
            assert abs(a - b) <= r["answers"]
            assert r["arm_requests"]["champion"] == r["arm_requests"]["challenger"]
        elif not r["decided"]:  # A/B: each answer from one arm
            assert sum(r["arm_requests"].values()) == r["answers"]
    row = "| ab | popularity vs sequential | rejected | 1 |"
    assert row in text


def test_the_summary_counts_the_runs_that_ended_as_expected(bench):
    def run(design, case, status, imps):
        return {
            "design": design,
            "case": case,
            "status": status,
            "decision": "continue",
            "experiment_impressions": imps,
            "answers": imps // 10,
            "wall_seconds": 2.0,
        }

    runs = [
        run("ab", "worse", "rejected", 3000),
        run("ab", "worse", "rejected", 5000),
        run("ab", "worse", "stopped", 9000),
        run("interleaving", "better", "promoted", 2000),
    ]
    rows = {(r["design"], r["expected"]): r for r in bench.summarise(runs)}
    ab = rows[("ab", "rejected")]
    assert (ab["n"], ab["right"], ab["imp_median"]) == (3, 2, 4000.0)
    assert ab["other"] == "stopped (continue)" and ab["imp_range"] == "3,000–5,000"
    il = rows[("interleaving", "promoted")]
    assert (il["n"], il["right"], il["imp_median"], il["other"]) == (1, 1, 2000.0, "–")
    assert len(rows) == 2  # cases without runs have no row
