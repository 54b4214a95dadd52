"""benchmarks/ann_head.py: its table on small synthetic vectors, checked independently."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(benchmark_module):
    with benchmark_module("ann_head") as module:
        yield module


def test_head_table_full_head_is_exact_and_no_head_is_the_graph(bench):
    rng = np.random.default_rng(0)
    V = rng.standard_normal((2000, 8)).astype(np.float32)
    V *= rng.pareto(2.0, (2000, 1)).astype(np.float32) + 0.5  # a long tail of norms
    U = rng.standard_normal((30, 8)).astype(np.float32)
    ids = np.array([f"i{j}" for j in range(2000)], dtype=object)
    seen = [rng.choice(2000, 20, replace=False) for _ in range(30)]
    rows, info = bench.head_table(ids, V, U, seen, [0, 2000], [1, 64], m=4, ef_construction=16)
    by = {(r["head"], r["ef_search"]): r for r in rows}
    assert set(by) == {(0, 1), (0, 64), (2000, 1), (2000, 64)}
    for ef in (1, 64):  # every row in the head: the answer is exact
        assert by[(2000, ef)]["recall@10"] == 1.0
        assert by[(2000, ef)]["recall@10 seen excluded"] == 1.0
        assert by[(2000, ef)]["users with recall < 0.5"] == 0
    # the graph alone at efSearch 1 with M 4 misses, and its misses are recorded
    assert by[(0, 1)]["recall@10"] < 1.0
    want_missed = round((1 - by[(0, 1)]["recall@10"]) * 30 * 10)
    assert len(info["misses"]["missed"]) == want_missed
    assert len(info["misses"]["found"]) == 300 - want_missed
    table = bench.md_table(rows, bench.COLS)  # the docs table renders every row
    assert table.count("\n") == 1 + len(rows) and "| 2000 | 64 | 1.0000 | 1.0000 | 0 |" in table


def test_with_head_picks_the_largest_norms(bench):
    from lifelongrec.serving import ItemIndex

    rng = np.random.default_rng(1)
    V = rng.standard_normal((300, 4)).astype(np.float32)
    index = ItemIndex(ann_threshold=0, m=4, ef_construction=16, exact_head=0)
    index.build([f"i{j}" for j in range(300)], V)
    bench.with_head(index, 25)
    rows = sorted(np.argsort(-np.linalg.norm(V, axis=1))[:25].tolist())
    assert index.head_ids.tolist() == [f"i{r}" for r in rows]  # in row order
    bench.with_head(index, 0)
    assert index.head_ids.size == 0


def test_main_refuses_a_folder_that_is_not_a_home(bench, tmp_path):
    with pytest.raises(SystemExit, match="not a service home folder"):
        bench.main(["--home", str(tmp_path), "--no-write"])
