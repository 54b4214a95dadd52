"""topk_rows: the ranking primitive every recommender's output goes through."""

import numpy as np
import pytest

from lifelongrec.models._base import topk_rows


def reference_topk(row, k):
    """Obviously correct: sort by (score descending, column ascending)."""
    return sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference_with_heavy_ties_and_minus_inf(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n, m = int(rng.integers(1, 5)), int(rng.integers(1, 30))
        k = int(rng.integers(1, m + 3))
        S = rng.integers(0, 4, (n, m)).astype(np.float32)
        S[rng.random((n, m)) < 0.2] = -np.inf
        idx, vals = topk_rows(S, k)
        assert idx.shape == (n, min(k, m))
        for i in range(n):
            ref = reference_topk(S[i], k)
            assert list(idx[i]) == ref
            np.testing.assert_array_equal(vals[i], S[i, ref])


def test_all_tied_row_takes_lowest_columns():
    idx, vals = topk_rows(np.zeros((2, 100), dtype=np.float32), 3)
    assert idx.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert (vals == 0).all()


def test_empty_and_zero_k():
    idx, vals = topk_rows(np.zeros((3, 0), dtype=np.float32), 5)
    assert idx.shape == (3, 0) and vals.shape == (3, 0)
