"""benchmarks/replicas.py on its smallest path: two real ``serve`` processes on one home
folder, a few reflection trials and a second of ingestion through both."""

from __future__ import annotations


def test_tiny_run_through_two_replicas(benchmark_module, tmp_path):
    with benchmark_module("replicas") as replicas:
        out = replicas.main(
            [
                "--events", "1500", "--trials", "5", "--ingest-seconds", "1",
                "--writers", "1", "--batch", "50", "--work", str(tmp_path / "w"), "--no-write",
            ]
        )  # fmt: skip
    assert out["reflection"]["n"] == 5 and out["reflection"]["max"] < 10_000
    ingest = out["ingest"]
    assert ingest["errors"] == 0 and ingest["acked"] > 0
    assert ingest["stored"] == ingest["acked"]  # every acknowledged event is in the store
    pids = [out["learner_a"]["learner_pid"], out["learner_b"]["learner_pid"]]
    assert sum(p is not None for p in pids) == 1  # one learner between the two
