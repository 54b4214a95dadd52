"""benchmarks/experiments.py: the A/A table with its exact interval and the design
comparison, computed from the experiments it runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats


@pytest.fixture(scope="module")
def experiments_bench(benchmark_module):
    with benchmark_module("experiments") as module:
        yield module


@pytest.fixture(scope="module")
def common(benchmark_module):
    with benchmark_module("_common") as module:
        yield module


def test_clopper_pearson_matches_the_beta_quantiles(experiments_bench):
    low, high = experiments_bench.clopper_pearson(10, 200)
    assert low == pytest.approx(stats.beta.ppf(0.025, 10, 191))
    assert high == pytest.approx(stats.beta.ppf(0.975, 11, 190))
    assert experiments_bench.clopper_pearson(0, 50)[0] == 0.0
    assert experiments_bench.clopper_pearson(50, 50)[1] == 1.0


def test_writes_the_aa_rate_and_the_designs(experiments_bench, common, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(common, "RAW_DIR", tmp_path)
    argv = ["--aa", "2", "--pairs", "1", "--world", "days=2", "--block", "t"]
    assert experiments_bench.main(argv) == 0
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- experiments-t:begin -->" in text and "| design | experiments |" in text
    raw = json.loads((tmp_path / "experiments-t.json").read_text())
    assert len(raw["aa"]["ab"]) == len(raw["aa"]["interleave"]) == 2
    fp = sum(r["decision"] is not None for r in raw["aa"]["ab"])
    assert f"| ab | 2 | {fp} |" in text


def test_the_equal_power_point_counts_undecided_and_wrong_runs_as_never(experiments_bench):
    runs = [
        {"decision": "b", "impressions": 300},
        {"decision": "b", "impressions": 100},
        {"decision": "a", "impressions": 50},  # wrong: never right
        {"decision": None, "impressions": 900},  # undecided: never
    ]
    assert experiments_bench.power_point(runs, "b", 0.5) == 300.0  # 2 of 4 by 300
    assert experiments_bench.power_point(runs, "b", 0.75) is None  # only 2 of 4 ever
    assert experiments_bench.power_ratio(600.0, 300.0) == "2.00x"
    assert "horizon" in experiments_bench.power_ratio(None, 300.0)
    assert experiments_bench.power_floor(runs, "b", 0.5) is None  # reached
    # 3 of 4 needed: the undecided run could still get there after its 900
    assert experiments_bench.power_floor(runs, "b", 0.75) == 900.0
    assert experiments_bench.power_ratio(None, 300.0, 900.0).startswith("more than 3.0x")
    never = [*runs[:3], {"decision": "a", "impressions": 80}]
    assert experiments_bench.power_floor(never, "b", 0.75) == float("inf")


def test_the_bottom_damage_puts_the_lowest_ranked_first_and_shuffle_keeps_the_items(
    experiments_bench,
):
    class Fixed:
        def recommend(self, users, k=10):
            ids = [[f"i{j}" for j in range(k)] + [None] * 2 for _ in users]
            return ids, [[1.0] * (k + 2) for _ in users]

    pool = np.array([f"i{j}" for j in range(8)], dtype=object)
    low = experiments_bench.Damaged(Fixed(), "bottom2", pool, seed=0)
    ids, _ = low.recommend(["u", "v"], k=4)
    assert ids.tolist() == [["i7", "i6", "i0", "i1"]] * 2
    mixed = experiments_bench.Damaged(Fixed(), "shuffle", pool, seed=0)
    rows = mixed.recommend([f"u{j}" for j in range(50)], k=4)[0]
    assert all(sorted(r[:4]) == ["i0", "i1", "i2", "i3"] for r in rows.tolist())
    assert all(r[4:] == [None, None] for r in rows.tolist())  # the padding stays last
    assert len({tuple(r) for r in rows.tolist()}) > 5  # an order of its own per answer


def test_a_damaged_ranker_replaces_the_share_of_each_list_it_is_told(experiments_bench):
    class Fixed:
        def recommend(self, users, k=10):
            ids = [[f"i{j}" for j in range(k)] for _ in users]
            return ids, [[1.0] * k for _ in users]

    pool = np.array([f"i{j}" for j in range(200)], dtype=object)
    none = experiments_bench.Damaged(Fixed(), 0.0, pool, seed=0)
    assert none.recommend(["u"], k=10)[0][0].tolist() == [f"i{j}" for j in range(10)]
    half = experiments_bench.Damaged(Fixed(), 0.5, pool, seed=0)
    ids, _ = half.recommend([f"u{j}" for j in range(400)], k=10)
    changed = sum(
        row[j] != f"i{j}" for row in ids for j in range(10)
    )  # a replaced position holds an item the list did not hold
    assert 0.45 < changed / 4000 < 0.55
    assert all(len(set(row.tolist())) == 10 for row in ids)  # no repeats in a list
    rev = experiments_bench.Damaged(Fixed(), "rev", pool, seed=0)
    assert rev.recommend(["u"], k=4)[0][0].tolist() == ["i3", "i2", "i1", "i0"]
    page = experiments_bench.Damaged(Fixed(), "offset3", pool, seed=0)
    ids, scores = page.recommend(["u", "v"], k=4)
    assert ids.tolist() == [["i3", "i4", "i5", "i6"]] * 2 and np.shape(scores) == (2, 4)
