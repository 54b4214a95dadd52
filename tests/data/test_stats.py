"""describe(): exact numbers on a toy dataset and on the real ones; JSON-serialisable."""

import json

import numpy as np
import pandas as pd

from lifelongrec.data import (
    Dataset,
    LoadReport,
    describe,
    implicit_feedback,
    make_events,
    make_items,
)


def test_describe_toy_dataset():
    events = make_events(
        ["a", "a", "b"],
        ["1", "2", "1"],
        np.array([0, 86400, 172800]),
        event_type=["view", "buy", "view"],
        value=[np.nan, 5.0, 3.0],
    )
    items = make_items(["1", "2", "9"], ["One", None, "Nine"], [["x"], [], ["x", "y"]])
    report = LoadReport()
    report.add("read", 4, 3, "one duplicate line")
    info = describe(Dataset(events=events, items=items, name="toy", report=report))
    assert json.loads(json.dumps(info)) == info  # plain JSON types only
    assert info["n_events"] == 3 and info["n_users"] == 2 and info["n_items"] == 2
    assert info["density"] == 3 / 4
    assert info["time"] == {
        "min": 0,
        "max": 172800,
        "min_utc": "1970-01-01T00:00:00Z",
        "max_utc": "1970-01-03T00:00:00Z",
        "span_days": 2.0,
    }
    assert info["event_types"] == {"view": 2, "buy": 1}
    assert info["value"] == {"count": 2, "min": 3.0, "max": 5.0, "mean": 4.0}
    assert info["events_per_user"] == {"min": 1, "median": 1.5, "max": 2, "mean": 1.5}
    assert info["catalogue"] == {
        "n_items": 3,
        "with_title": 2,
        "with_categories": 2,
        "n_categories": 2,
        "items_without_events": 1,
        "event_items_not_in_catalogue": 0,
    }
    assert info["report"][0]["removed"] == 1


def test_describe_frame_without_values_or_catalogue():
    frame = pd.DataFrame({"user_id": ["a"], "item_id": ["1"], "timestamp": [5]})
    info = describe(frame)
    assert info["value"] is None and info["catalogue"] is None and info["n_users_table"] is None
    assert info["event_types"] == {"interaction": 1}


def test_describe_ml100k(ml100k):
    info = describe(ml100k)
    json.dumps(info)
    assert (info["n_events"], info["n_users"], info["n_items"]) == (100_000, 943, 1682)
    assert info["density"] == 100_000 / (943 * 1682)
    # the span stated in the dataset README
    assert info["time"]["min_utc"] == "1997-09-20T03:05:10Z"
    assert info["time"]["max_utc"] == "1998-04-22T23:10:38Z"
    assert info["value"]["min"] == 1.0 and info["value"]["max"] == 5.0
    assert info["events_per_user"]["min"] == 20  # ml-100k: every user rated at least 20
    assert info["catalogue"]["n_items"] == 1682 and info["catalogue"]["with_title"] == 1682
    assert info["n_users_table"] == 943
    assert info["format"] == "movielens-100k"
    after = describe(implicit_feedback(ml100k))
    assert after["report"][-1]["step"] == "implicit_feedback"


def test_describe_ml_latest_small_and_beauty(mlsmall, beauty):
    info = describe(mlsmall)
    assert info["catalogue"]["n_items"] == 9742
    assert info["catalogue"]["items_without_events"] == 9742 - 9724
    assert info["catalogue"]["with_categories"] == 9742 - 34  # 34 "(no genres listed)"
    assert info["time"]["min_utc"] == "1996-03-29T18:36:55Z"
    assert info["time"]["max_utc"] == "2018-09-24T14:27:30Z"
    seq = describe(beauty)
    assert seq["timestamps"] == "ordinal" and "min_utc" not in seq["time"]
    assert seq["time"] == {"min": 0, "max": 353_961}
    assert seq["value"] is None
    assert seq["events_per_user"]["min"] == 5
