"""benchmarks/learner_rows.py: online learner throughput, row-sparse against dense steps, on
a small catalogue that still samples its softmax."""

from __future__ import annotations

import torch


def test_measures_both_modes_on_the_same_stream(benchmark_module):
    threads = torch.get_num_threads()
    try:
        with benchmark_module("learner_rows") as module:
            out = module.main(
                ["--items", "25000", "--fit-events", "1500", "--events", "600", "--no-write"]
            )
    finally:
        torch.set_num_threads(threads)
    rows = out["results"]
    assert [r["sparse_rows"] for r in rows] == [True, False]
    for r in rows:
        assert r["items"] == 25000 and r["rows"] == 25000  # the whole catalogue admitted
        assert r["events"] == 600 and r["n_steps"] == 3  # 256, 256, then the flushed rest
        assert r["events_per_s"] > 0 and r["step_ms_p50"] > 0
        assert abs(r["events_per_s"] * r["wall_s"] - 600) < 1e-6
