"""benchmarks/ann.py runs its smallest path (a second) and measures what it says."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ann(benchmark_module):
    with benchmark_module("ann") as module:
        yield module


def test_exact_topk_is_the_brute_force_order(ann):
    items, users = ann.make_data(500, 4, 8, seed=0)
    assert items.shape == (500, 8) and users.shape == (4, 8) and items.dtype == np.float32
    top = ann.exact_topk(items, users, 5)
    want = np.argsort(-(users.astype(np.float64) @ items.T.astype(np.float64)), axis=1)[:, :5]
    assert (top == want).all()


def test_smallest_run(ann, capsys):
    import faiss

    before = faiss.omp_get_max_threads()
    try:
        ann.main(
            ["--sizes", "1500", "--queries", "20", "--exact-queries", "10", "--ef-construction",
             "20", "--threads", "1", "--build-threads", "1", "--no-write"]
        )  # fmt: skip
    finally:
        faiss.omp_set_num_threads(before)
    out = capsys.readouterr().out
    rows = [r for r in out.splitlines() if r.startswith("| 1500 | 1 | exact |")]
    assert len(rows) == 4  # one per filter
    assert all("| 1.0000 |" in r for r in rows)  # exact search is its own ground truth
    assert "| 1500 | hnsw | exclude 50 | 2 |" in out
