"""Splits: leave-one-out, temporal cut, time windows."""

import warnings

import numpy as np
import pandas as pd
import pytest

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import (
    Dataset,
    Split,
    leave_one_out,
    make_events,
    make_items,
    temporal_split,
    time_windows,
)


def dataset(users, items, ts, **meta):
    events = make_events(users, items, np.asarray(ts, dtype=np.int64))
    return Dataset(events=events, items=make_items(sorted(set(items))), name="toy", meta=dict(meta))


def pairs(ds):
    return list(zip(ds.events["user_id"], ds.events["item_id"], strict=True))


# ----------------------------------------------------------------- leave one out
def test_loo_rules_for_short_users():
    ds = dataset(
        ["a", "b", "b", "c", "c", "c", "c"],
        ["1", "1", "2", "1", "2", "3", "4"],
        [1, 2, 3, 7, 6, 5, 4],  # c's rows are in reverse time order
    )
    split = leave_one_out(ds)
    assert isinstance(split, Split) and split.protocol == "leave_one_out"
    assert pairs(split.test) == [("b", "2"), ("c", "1")]
    assert pairs(split.valid) == [("c", "2")]
    assert sorted(pairs(split.train)) == [("a", "1"), ("b", "1"), ("c", "3"), ("c", "4")]
    assert split.meta["users_with_test"] == 2
    assert split.meta["users_with_valid"] == 1
    assert split.meta["users_without_valid"] == 1
    assert split.meta["users_train_only"] == 1
    assert split.train.items is ds.items and split.test.items is ds.items
    assert split.test.meta["split"] == "test"
    assert len(ds.events) == 7  # input untouched


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_loo_minimum_history_per_user_length(n):
    """The boundary at each history length, against an independent count: 1 event stays
    in train, 2 give train + test, 3 and more give train + valid + test."""
    ds = dataset(["u"] * n, [str(j) for j in range(n)], list(range(n)))
    split = leave_one_out(ds)
    want_test = 1 if n >= 2 else 0
    want_valid = 1 if n >= 3 else 0
    assert len(split.test.events) == want_test
    assert len(split.valid.events) == want_valid
    assert len(split.train.events) == n - want_test - want_valid
    if n >= 2:
        assert pairs(split.test) == [("u", str(n - 1))]  # the last event
    if n >= 3:
        assert pairs(split.valid) == [("u", str(n - 2))]  # the one before it
    assert split.meta["users_train_only"] == (n == 1)
    assert split.meta["users_without_valid"] == (n == 2)


def test_loo_ties_use_source_order():
    ds = dataset(["a", "a", "a"], ["x", "y", "z"], [5, 5, 5])
    split = leave_one_out(ds)
    assert pairs(split.test) == [("a", "z")]
    assert pairs(split.valid) == [("a", "y")]


def test_train_full_restores_time_order_even_on_ties():
    ds = dataset(["a", "b", "a", "a", "b", "b"], ["1", "1", "2", "3", "2", "3"], [1, 1, 2, 2, 3, 4])
    split = leave_one_out(ds)
    full = split.train_full
    assert pairs(full) == [("a", "1"), ("b", "1"), ("a", "2"), ("b", "2")]
    assert full.meta["split"] == "train_full"
    assert len(full.events) == len(split.train.events) + len(split.valid.events)


def test_loo_on_ml100k(ml100k):
    split = leave_one_out(ml100k)
    test, valid = split.test.events, split.valid.events
    assert len(test) == 943 and test["user_id"].nunique() == 943
    assert len(valid) == 943
    assert len(split.train.events) == 100_000 - 2 * 943
    last = ml100k.events.groupby("user_id")["timestamp"].max()
    assert (test.set_index("user_id")["timestamp"] == last.loc[test["user_id"]].to_numpy()).all()
    # valid is no later than test, and train no later than valid, per user
    v = valid.set_index("user_id")["timestamp"]
    assert (v <= test.set_index("user_id")["timestamp"].loc[v.index]).all()
    assert (split.train.events.groupby("user_id")["timestamp"].max() <= v.loc[last.index]).all()
    full = split.train_full.events
    assert np.all(np.diff(full["timestamp"].to_numpy()) >= 0)
    assert len(full) == 100_000 - 943


def test_loo_on_beauty_takes_each_users_last_line(beauty):
    split = leave_one_out(beauty)
    ev = beauty.events
    last_lines = ev.groupby("user_id", sort=False).tail(1)
    assert len(split.test.events) == 40_226
    assert split.test.events["timestamp"].sort_values().tolist() == last_lines["timestamp"].tolist()
    assert split.meta["users_train_only"] == 0  # every BERT4Rec user has >= 5 events


def test_loo_accepts_frame_and_rejects_empty():
    frame = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["1", "2"], "timestamp": [1, 2]})
    assert pairs(leave_one_out(frame).test) == [("a", "2")]
    with pytest.raises(DataError, match="no events to split"):
        leave_one_out(frame.iloc[:0])


# ---------------------------------------------------------------------- temporal
def test_temporal_split_cut_and_ties():
    ts = [1, 2, 3, 4, 5, 6, 7, 8, 8, 8]
    ds = dataset([str(i) for i in range(10)], ["x"] * 10, ts)
    split = temporal_split(ds, test_fraction=0.2)
    assert split.test.events["timestamp"].tolist() == [8, 8, 8]  # ties at the cut go to test
    assert split.meta["test_start"] == 8
    assert len(split.valid.events) == 0 and split.meta["valid_start"] is None
    split = temporal_split(ds, test_fraction=0.3, valid_fraction=0.2)
    assert split.train.events["timestamp"].tolist() == [1, 2, 3, 4, 5]
    assert split.valid.events["timestamp"].tolist() == [6, 7]
    assert split.meta["n_test"] == 3
    assert split.protocol == "temporal"


def test_temporal_split_on_ml100k(ml100k):
    split = temporal_split(ml100k, test_fraction=0.2, valid_fraction=0.1)
    cut = split.meta["test_start"]
    assert split.train.events["timestamp"].max() < split.meta["valid_start"]
    assert split.valid.events["timestamp"].max() < cut <= split.test.events["timestamp"].min()
    assert len(split.test.events) == int((ml100k.events["timestamp"] >= cut).sum())
    assert abs(len(split.test.events) - 20_000) < 50
    assert sum(len(p.events) for p in (split.train, split.valid, split.test)) == 100_000


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": "0.2"}, "test_fraction"),
        ({"test_fraction": True}, "test_fraction"),
        ({"test_fraction": float("nan")}, "test_fraction"),
        ({"valid_fraction": -0.1}, "valid_fraction"),
        ({"valid_fraction": False}, "valid_fraction"),
        ({"test_fraction": 0.5, "valid_fraction": 0.5}, "valid_fraction"),
    ],
)
def test_temporal_split_fraction_errors(kwargs, name):
    ds = dataset(["a", "b"], ["1", "2"], [1, 2])
    with pytest.raises(ParameterError) as err:
        temporal_split(ds, **kwargs)
    assert err.value.name == name
    assert f"parameter {name!r} must be" in str(err.value)
    if len(kwargs) == 1:  # one bad fraction (not the rule over their sum)
        interval = "(0, 1)" if name == "test_fraction" else "[0, 1)"
        assert f"must be a number in {interval}; got {kwargs[name]!r}" in str(err.value)


def test_temporal_split_degenerate_and_ordinal():
    ds = dataset(["a", "b", "c"], ["1", "2", "3"], [5, 5, 5])
    with pytest.raises(DataError, match="no events before the temporal cut"):
        temporal_split(ds)
    ordinal = dataset(["a", "a", "b", "b", "c"], list("12345"), range(5), timestamps="ordinal")
    with pytest.warns(UserWarning, match="ordinal"):
        temporal_split(ordinal, test_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        temporal_split(dataset(["a", "b"], ["1", "2"], [1, 2]), test_fraction=0.5)


# -------------------------------------------------------------------- time windows
def test_time_windows_by_count_never_split_ties():
    ts = [1, 2, 3, 3, 3, 4, 5, 6]
    ds = dataset([str(i) for i in range(8)], ["x"] * 8, ts)
    windows = time_windows(ds, 2)
    assert [w.events["timestamp"].tolist() for w in windows] == [[1, 2, 3, 3, 3], [4, 5, 6]]
    assert [(w.meta["window"], w.meta["start"], w.meta["end"]) for w in windows] == [
        (0, 1, 3),
        (1, 4, 6),
    ]
    assert windows[0].meta["by"] == "count" and windows[0].meta["n_windows"] == 2
    assert windows[1].items is ds.items


def test_time_windows_by_count_on_ml100k(ml100k):
    windows = time_windows(ml100k, 5)
    sizes = [len(w.events) for w in windows]
    assert sum(sizes) == 100_000 and max(sizes) - min(sizes) < 100
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.events["timestamp"].max() < b.events["timestamp"].min()
        assert a.meta["end"] < b.meta["start"]


def test_time_windows_by_duration():
    ds = dataset(["a"] * 5, list("12345"), [0, 1, 2, 9, 10])
    windows = time_windows(ds, 3, by="duration")  # 11 seconds: [0,3], [4,7], [8,10]
    assert [w.events["timestamp"].tolist() for w in windows] == [[0, 1, 2], [], [9, 10]]
    assert [(w.meta["start"], w.meta["end"]) for w in windows] == [(0, 3), (4, 7), (8, 10)]


def test_time_windows_errors():
    ds = dataset(["a", "b", "c"], ["1", "2", "3"], [1, 1, 1])
    with pytest.raises(DataError, match="window 0 would be empty.*3 events share this timestamp"):
        time_windows(ds, 2)
    with pytest.raises(ParameterError, match="'n_windows' must be at most the number of events"):
        time_windows(ds, 4)
    with pytest.raises(ParameterError, match="'n_windows' must be an integer >= 1"):
        time_windows(ds, 0)
    with pytest.raises(ParameterError, match="'by' must be 'count' or 'duration'"):
        time_windows(ds, 2, by="size")
    assert len(time_windows(ds, 1)[0].events) == 3


def test_leave_one_out_with_several_validation_events():
    # users of 1, 2, 3, 5 and 8 events; equal timestamps keep the source order
    users = ["a"] + ["b"] * 2 + ["c"] * 3 + ["d"] * 5 + ["e"] * 8
    frame = make_events(users, [f"i{j}" for j in range(len(users))], [7] * len(users))
    one, three = leave_one_out(frame), leave_one_out(frame, n_valid=3)
    assert pairs(three.test) == pairs(one.test)  # the test events never move
    per_user = three.valid.events.groupby("user_id").size().to_dict()
    assert per_user == {"c": 1, "d": 3, "e": 3}  # min(3, n - 2): one train event at least
    assert three.train.events.groupby("user_id").size().to_dict() == {
        "a": 1,
        "b": 1,
        "c": 1,
        "d": 1,
        "e": 4,
    }
    # validation events are each user's last before the test event
    assert [i for u, i in pairs(three.valid) if u == "e"] == ["i15", "i16", "i17"]
    assert three.meta["valid_events"] == 7 and three.meta["n_valid"] == 3
    assert "n_valid" not in one.meta  # n_valid=1 is leave-one-out as before
    assert len(three.train_full) == len(one.train_full)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ParameterError, match="n_valid"):
            leave_one_out(frame, n_valid=bad)
