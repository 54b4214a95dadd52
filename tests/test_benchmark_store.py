"""benchmarks/store.py: its DuckDB store keeps the EventStore's semantics, and the
whole driver runs its smallest path (seconds, synthetic events)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lifelongrec.data import make_events


@pytest.fixture(scope="module")
def bench(benchmark_module):
    # duckdb is in the test extra: this comparison runs in CI, it never skips
    with benchmark_module("store") as module:
        yield module


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_both_engines_store_the_same_events(bench, tmp_path, engine):
    cls, name = bench.ENGINES[engine]
    store = cls(tmp_path / name)
    events = make_events(["a", "b", "a", "c"], ["i1", "i2", "i3", "i4"], [5, 1, 3, 2])
    assert store.append(events, ["e1", "e2", "e1", None]) == 3  # repeat inside the batch
    assert store.append(events, ["e1", "e2", "e3", None]) == 2  # e3 and the id-less row
    assert store.delete_user("b") == 1
    got = store.read(0)
    assert got["seq"].tolist() == [1, 3, 4, 5]
    assert got["item_id"].tolist() == ["i1", "i4", "i3", "i4"]
    last = store.user_events("a", 1)
    assert last["item_id"].tolist() == ["i1"] and len(store.user_events("a", 5)) == 2
    store.close()


def test_workload_is_repeatable(bench):
    first, ids = bench.make_workload(500, 50, 40, seed=1)
    again, ids_again = bench.make_workload(500, 50, 40, seed=1)
    pd.testing.assert_frame_equal(first, again)
    assert ids == ids_again and len(set(ids)) == 500
    assert first["timestamp"].is_monotonic_increasing and np.isnan(first["value"]).any()


def test_the_driver_runs_its_smallest_path(bench, tmp_path, capsys):
    bench.main(
        [
            "--events",
            "3000",
            "--n-users",
            "50",
            "--n-items",
            "100",
            "--n1",
            "5",
            "--n100",
            "3",
            "--n1000",
            "1",
            "--users-read",
            "10",
            "--cursor-events",
            "500",
            "--deletes",
            "2",
            "--dir",
            str(tmp_path),
            "--no-write",
        ]  # fmt: skip
    )
    out = capsys.readouterr().out
    assert "| measurement | sqlite | duckdb |" in out and "**Choice: SQLite**" in out
    assert list(tmp_path.iterdir()) == []  # the stores were removed
