"""benchmarks/distributed.py: the table it writes from its runs (the runs themselves are
``lifelongrec evaluate`` under torchrun, tested in tests/training/test_distributed.py)."""

from __future__ import annotations

import json


def test_summary_and_block_from_the_runs(benchmark_module, monkeypatch, tmp_path):
    with benchmark_module("_common") as common:
        monkeypatch.setattr(common, "DOC", tmp_path / "benchmarks.md")
        monkeypatch.setattr(common, "RAW_DIR", tmp_path)
        with benchmark_module("distributed") as module:
            calls = []

            def fake(args, seed, procs):
                calls.append((seed, procs))
                return {
                    "seed": seed,
                    "procs": procs,
                    "threads_per_proc": 2 // procs,
                    "ndcg@10": 0.1 + 0.01 * seed,
                    "hr@10": 0.2,
                    "fit_seconds": 10.0 * procs,
                    "epochs": 5,
                    "train_s_per_epoch": 2.0 / procs,
                }

            monkeypatch.setattr(module, "evaluate", fake)
            module.main(["--seeds", "0", "1", "--procs", "2"])
    assert calls == [(0, 1), (0, 2), (1, 1), (1, 2)]
    text = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- distributed-ml-100k:begin -->" in text
    assert "| 1 process(es) x 2 thread(s) | 0.1050 ± 0.0071 |" in text  # mean ± sample std
    assert "| 10.0 ± 0.0 | 5.0 ± 0.0 | 2.00 ± 0.00 |" in text
    assert "2 processes against one: 2.00x faster" in text
    raw = json.loads((tmp_path / "distributed-ml-100k.json").read_text())
    assert len(raw["results"]) == 4
