"""Preprocessing: stable sort, de-duplication, implicit feedback, k-core; inputs never change."""

import numpy as np
import pandas as pd
import pytest

from lifelongrec._errors import ParameterError
from lifelongrec.data import (
    Dataset,
    LoadReport,
    deduplicate,
    implicit_feedback,
    kcore,
    make_events,
    make_items,
    sort_by_time,
)


def dataset(users, items, ts, values=None, event_type=None):
    events = make_events(users, items, np.asarray(ts, dtype=np.int64), event_type, values)
    report = LoadReport()
    report.add("read", len(events), len(events), "no rows removed")
    return Dataset(events=events, items=make_items(sorted(set(items))), name="toy", report=report)


def test_sort_by_time_is_stable_and_does_not_mutate():
    ds = dataset(["a", "b", "c", "d"], ["1", "2", "3", "4"], [5, 3, 5, 3])
    before = ds.events.copy()
    out = sort_by_time(ds)
    assert out.events["user_id"].tolist() == ["b", "d", "a", "c"]  # ties keep source order
    assert out.events.index.tolist() == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(ds.events, before)
    assert len(ds.report.entries) == 1  # input report untouched
    assert [e["step"] for e in out.report.entries] == ["read", "sort_by_time"]
    assert out.items is ds.items  # catalogue shared


def test_deduplicate_exact_repeats():
    ds = dataset(["a", "a", "a", "b"], ["1", "1", "1", "1"], [1, 1, 2, 1])
    out = deduplicate(ds)
    assert out.events["timestamp"].tolist() == [1, 2, 1]
    assert out.report.entries[-1]["removed"] == 1
    assert out.report.entries[-1]["step"] == "deduplicate"
    assert len(ds.events) == 4


def test_deduplicate_pairs_first_or_last_in_time_order():
    # rows out of time order: the pair (a, 1) appears at t=9, t=2, t=5
    ds = dataset(["a", "b", "a", "a"], ["1", "1", "1", "1"], [9, 4, 2, 5], values=[1, 2, 3, 4])
    first = deduplicate(ds, subset=("user_id", "item_id"), keep="first")
    assert first.events["value"].tolist() == [2.0, 3.0]  # input order kept: b's row, then a@t=2
    last = deduplicate(ds, subset=("user_id", "item_id"), keep="last")
    assert last.events["value"].tolist() == [1.0, 2.0]  # a@t=9
    assert last.report.removed("deduplicate") == 2


def test_deduplicate_parameter_errors():
    ds = dataset(["a"], ["1"], [1])
    with pytest.raises(ParameterError, match="'subset'"):
        deduplicate(ds, subset=("user_id", "sku"))
    with pytest.raises(ParameterError, match="'keep' must be 'first' or 'last'; got 'middle'"):
        deduplicate(ds, keep="middle")


def test_implicit_feedback_threshold_and_missing_values():
    ds = dataset(["a"] * 5, list("12345"), range(5), values=[5, 3.5, 4, np.nan, 1])
    out = implicit_feedback(ds, threshold=4.0)
    assert out.events["item_id"].tolist() == ["1", "3", "4"]  # NaN kept as implicit positive
    assert out.report.entries[-1]["removed"] == 2
    strict = implicit_feedback(ds, threshold=4.0, keep_missing=False)
    assert strict.events["item_id"].tolist() == ["1", "3"]
    with pytest.raises(ParameterError, match="'threshold'"):
        implicit_feedback(ds, threshold="4")
    for bad in (True, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="'threshold' must be a finite number; got"):
            implicit_feedback(ds, threshold=bad)
    assert len(implicit_feedback(ds, threshold=np.float32(4))) == len(out)


def test_implicit_feedback_on_ml100k_matches_a_direct_count(ml100k):
    out = implicit_feedback(ml100k)
    assert len(out.events) == int((ml100k.events["value"] >= 4).sum())
    assert len(ml100k.events) == 100_000


def test_kcore_cascades_until_stable():
    # pass 1: item "3" has 1 event -> (c, 3) removed; pass 2: user "c" now has 1 event ->
    # (c, 2) removed; pass 3 removes nothing.
    users = ["a", "a", "b", "b", "c", "c"]
    items = ["1", "2", "1", "2", "2", "3"]
    out = kcore(dataset(users, items, range(6)), k=2)
    assert out.events[["user_id", "item_id"]].values.tolist() == [
        ["a", "1"],
        ["a", "2"],
        ["b", "1"],
        ["b", "2"],
    ]
    assert out.meta["kcore"]["iterations"] == 3
    assert out.report.entries[-1]["removed"] == 2
    assert "3 iterations" in out.report.entries[-1]["reason"]


def test_kcore_separate_user_and_item_minimums():
    users = ["a", "a", "a", "b"]
    items = ["1", "2", "3", "1"]
    out = kcore(dataset(users, items, range(4)), k=1, user_k=3, item_k=1)
    assert out.events["user_id"].tolist() == ["a", "a", "a"]
    with pytest.raises(ParameterError, match="'k' must be an integer >= 1"):
        kcore(dataset(users, items, range(4)), k=0)
    with pytest.raises(ParameterError, match="'item_k'"):
        kcore(dataset(users, items, range(4)), item_k=2.5)
    with pytest.raises(ParameterError, match="'user_k' must be an integer >= 1; got True"):
        kcore(dataset(users, items, range(4)), user_k=True)
    assert kcore(dataset(users, items, range(4)), k=np.int64(1)).meta["kcore"]["user_k"] == 1


def test_kcore_on_ml100k(ml100k):
    out = kcore(implicit_feedback(ml100k), k=10)
    assert (out.events.groupby("user_id").size() >= 10).all()
    assert (out.events.groupby("item_id").size() >= 10).all()
    assert out.report.removed() == 100_000 - len(out.events)


def test_functions_accept_an_events_frame():
    frame = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["1", "1"], "timestamp": [2, 1]})
    out = sort_by_time(frame)
    assert isinstance(out, Dataset)
    assert out.events["timestamp"].tolist() == [1, 2]
    assert out.events["event_type"].tolist() == ["interaction"] * 2
    assert len(deduplicate(frame, subset=["user_id", "item_id"])) == 1
    assert "event_type" not in frame.columns


def test_extra_columns_survive():
    ds = dataset(["a", "b"], ["1", "2"], [2, 1])
    ds.events["verified"] = [True, False]
    out = deduplicate(sort_by_time(ds))
    assert out.events["verified"].tolist() == [False, True]
