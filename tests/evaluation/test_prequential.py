"""The prequential protocol: figures known by hand, a slow reference loop, no leakage,
backward transfer, and the result's keys."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from lifelongrec import DataError, ParameterError
from lifelongrec.data import Dataset, make_events, synthetic, time_windows
from lifelongrec.evaluation import evaluate_window, prequential
from lifelongrec.models import get_model
from lifelongrec.training import Static


def hand_stream() -> pd.DataFrame:
    """Three windows of four events (distinct timestamps).

    W0: a:x b:x b:y c:x           -> popularity x=3, y=1 (x first)
    W1: d:y d:x a:z e:z           -> z is new
    W2: f:z g:z g:y a:y
    """
    users = ["a", "b", "b", "c", "d", "d", "a", "e", "f", "g", "g", "a"]
    items = ["x", "x", "y", "x", "y", "x", "z", "z", "z", "z", "y", "y"]
    return make_events(users, items, np.arange(1, 13))


L3 = 1.0 / math.log2(3)  # NDCG of a hit at rank 1 (the second place)


def test_hand_computed_windows_for_a_static_popularity_model():
    r = prequential(get_model("popularity"), hand_stream(), "static", 3, k=2, progress=False)
    w0, w1, w2 = r["windows"]
    assert w0["recall@2"] is None and w0["n_events"] == 4
    # W1: d:y sees nothing -> ranking x, y -> y second (hit, 1/log2 3); d:x sees {y} -> x
    # first; a:z and e:z: z unknown -> misses
    assert w1["recall@2"] == pytest.approx(2 / 4)
    assert w1["ndcg@2"] == pytest.approx((L3 + 1.0) / 4)
    assert w1["n_unknown_items"] == 2
    # W2: f:z, g:z unknown; g:y sees {z} (unknown, ignored) -> y second; a:y sees {x, z}
    # -> x excluded -> y first
    assert w2["recall@2"] == pytest.approx(2 / 4)
    assert w2["ndcg@2"] == pytest.approx((L3 + 1.0) / 4)
    assert w2["n_unknown_items"] == 2
    assert r["mean"]["recall@2"] == pytest.approx(0.5)
    assert r["n_unknown_items"] == 4
    # static: the model never changes, so every figure of a window is the same one
    for w in (w1, w2):
        assert w["ndcg@2_after_update"] == w["ndcg@2"] == w["ndcg@2_final"]
    assert r["bwt"] == {"recall@2": 0.0, "ndcg@2": 0.0, "windows": [0, 1]}


def test_hand_computed_windows_for_a_finetuned_popularity_model():
    r = prequential(get_model("popularity"), hand_stream(), "finetune", 3, k=2, progress=False)
    w2 = r["windows"][2]
    # after W1 the counts are x=4, y=2, z=2 (z after y in the catalogue): f:z and g:z
    # rank z third -> misses; g:y sees {z} -> y second; a:y sees {x, z} -> y first
    assert w2["recall@2"] == pytest.approx(2 / 4)
    assert w2["ndcg@2"] == pytest.approx((L3 + 1.0) / 4)
    assert w2["n_unknown_items"] == 0
    # with K=1 only a:y is a hit
    r1 = prequential(get_model("popularity"), hand_stream(), "finetune", 3, k=1, progress=False)
    assert r1["windows"][2]["recall@1"] == pytest.approx(1 / 4)


def reference_popularity(train: pd.DataFrame, window: pd.DataFrame, log: pd.DataFrame, k: int):
    """Event by event: rank the items of ``train`` by count (ties: first appearance),
    leaving out the user's items strictly before the event; recall and NDCG."""
    counts = Counter(train["item_id"])
    order = list(dict.fromkeys(train["item_id"]))  # first appearance
    hits, gains = [], []
    for u, i, t in window[["user_id", "item_id", "timestamp"]].itertuples(index=False):
        past = set(log[(log["user_id"] == u) & (log["timestamp"] < t)]["item_id"])
        ranked = sorted(
            (j for j in order if j not in past), key=lambda j: (-counts[j], order.index(j))
        )
        rank = ranked.index(i) if i in ranked else None
        hit = rank is not None and rank < k
        hits.append(hit)
        gains.append(1.0 / math.log2(rank + 2) if hit else 0.0)
    return float(np.mean(hits)), float(np.mean(gains))


@pytest.mark.parametrize("strategy", ["static", "finetune"])
def test_matches_a_slow_event_by_event_reference(strategy):
    data = synthetic(n_events=1_500, seed=2)
    r = prequential(get_model("popularity"), data, strategy, 4, k=5, progress=False)
    windows = time_windows(data, 4)
    for w in range(1, 4):
        learned = windows[:1] if strategy == "static" else windows[:w]
        train = pd.concat([x.events for x in learned])
        log = pd.concat([x.events for x in windows[: w + 1]])
        rec, ndcg = reference_popularity(train, windows[w].events, log, 5)
        assert r["windows"][w]["recall@5"] == pytest.approx(rec, abs=1e-12)
        assert r["windows"][w]["ndcg@5"] == pytest.approx(ndcg, abs=1e-12)


def test_itemknn_matches_one_recommend_call_per_event():
    # The batched path against recommend_histories called once per event on the history
    # cut by hand in the test, with the model refitted on the windows learned so far.
    data = synthetic(n_events=1_200, seed=5)
    r = prequential(get_model("itemknn"), data, "retrain", 3, k=10, progress=False)
    windows = time_windows(data, 3)
    w = 2
    model = get_model("itemknn").fit(pd.concat([x.events for x in windows[:w]]))
    log = pd.concat([x.events for x in windows[: w + 1]])
    hits, gains = [], []
    for u, i, t in windows[w].events[["user_id", "item_id", "timestamp"]].itertuples(index=False):
        past = log[(log["user_id"] == u) & (log["timestamp"] < t)]
        ids, _ = model.recommend_histories(u, past, k=10)
        top = list(ids)
        hit = i in top
        hits.append(hit)
        gains.append(1.0 / math.log2(top.index(i) + 2) if hit else 0.0)
    assert r["windows"][w]["recall@10"] == pytest.approx(np.mean(hits), abs=1e-12)
    assert r["windows"][w]["ndcg@10"] == pytest.approx(np.mean(gains), abs=1e-12)


# ------------------------------------------------------------------ leakage
@pytest.fixture
def pop_model():
    return get_model("popularity").fit(
        make_events(["a", "b", "b", "c"], list("xxyx"), [1, 2, 3, 4])
    )


def test_later_events_of_the_user_are_not_visible(pop_model):
    # d:y at t=5 with d:x at t=6 in the log: seeing x (later) would exclude it and put y
    # first, a hit at K=1; from the past only, x ranks first and y is a miss
    log = make_events(["d", "d"], ["y", "x"], [5, 6])
    res = evaluate_window(pop_model, log.iloc[:1], log, k=1)
    assert res["recall@1"] == 0.0
    assert evaluate_window(pop_model, log.iloc[:1], log, k=2)["ndcg@2"] == pytest.approx(L3)


def test_the_event_itself_is_not_visible(pop_model):
    # were d:x its own history, x would be excluded and the event a miss
    log = make_events(["d", "d"], ["y", "x"], [5, 6])
    assert evaluate_window(pop_model, log.iloc[1:], log, k=1)["recall@1"] == 1.0
    # and equal timestamps are not "before": both events see an empty history
    same = make_events(["d", "d"], ["y", "x"], [5, 5])
    res = evaluate_window(pop_model, same, same, k=1)
    assert res["recall@1"] == 0.5  # x first (hit); y second (miss, x was not excluded)


def test_other_users_and_the_future_do_not_leak_through_userknn():
    # stored: u liked x and then y; a fresh query for u before y must not find u's own
    # stored row (which holds y) as a neighbour
    train = make_events(["u", "u", "v", "v"], ["x", "y", "x", "q"], [1, 2, 3, 4])
    model = get_model("userknn").fit(train)
    ev = make_events(["u"], ["y"], [2])
    res = evaluate_window(model, ev, train, k=1)
    assert res["recall@1"] == 0.0  # v's q, not u's own y, is the neighbour evidence


# ---------------------------------------------------------------- forgetting
def drifting_stream() -> Dataset:
    """Window 0: everyone takes items a*; later windows: items b*, then c*."""
    users, items, ts = [], [], []
    t = 0
    for block in ("a", "b", "c"):
        for u in range(12):
            for j in range(3):
                users.append(f"{block}{u}")
                items.append(f"{block}{(u + j) % 6}")
                t += 1
                ts.append(t * 3600)
    return Dataset(events=make_events(users, items, ts))


def test_backward_transfer_is_negative_when_the_model_forgets():
    # popularity with a short half-life forgets the a* items once b* and c* arrive
    model = get_model("popularity", time_decay_days=0.05)
    r = prequential(model, drifting_stream(), "finetune", 3, k=3, progress=False)
    recs = r["windows"]
    assert recs[0]["recall@3_final"] < recs[0]["recall@3_after_update"]
    assert r["bwt"]["recall@3"] < 0 and r["bwt"]["ndcg@3"] < 0
    expected = np.mean([recs[w]["ndcg@3_final"] - recs[w]["ndcg@3_after_update"] for w in (0, 1)])
    assert r["bwt"]["ndcg@3"] == pytest.approx(expected)
    assert r["bwt"]["windows"] == [0, 1]
    # the static model cannot forget
    s = prequential(model, drifting_stream(), "static", 3, k=3, progress=False)
    assert s["bwt"]["ndcg@3"] == 0.0
    assert model.is_fitted is False  # the template is never fitted


# ------------------------------------------------------------------ the result
def test_result_keys_and_json():
    data = synthetic(n_events=1_000, seed=1)
    r = prequential(get_model("itemknn"), data, Static(), 3, k=4, progress=False)
    text = json.dumps(r, allow_nan=False)  # plain JSON: no NaN, no numpy types
    assert json.loads(text) == r
    assert {
        "protocol",
        "strategy",
        "strategy_params",
        "model",
        "params",
        "k",
        "n_windows",
        "by",
        "seed",
        "n_events",
        "windows",
        "mean",
        "total_update_seconds",
        "bwt",
        "n_unknown_items",
        "n_repeat_items",
    } <= set(r)
    assert r["strategy"] == "static" and r["model"] == "itemknn" and r["n_windows"] == 3
    rec = r["windows"][1]
    for key in (
        "window",
        "start",
        "end",
        "n_events",
        "n_users",
        "recall@4",
        "ndcg@4",
        "update_seconds",
        "n_unknown_items",
        "recall@4_after_update",
        "ndcg@4_after_update",
        "recall@4_final",
        "ndcg@4_final",
    ):
        assert key in rec, key
    assert sum(w["n_events"] for w in r["windows"]) == r["n_events"] == 1_000
    assert r["windows"][0]["end"] <= r["windows"][1]["start"]
    assert r["total_update_seconds"] == pytest.approx(
        sum(w["update_seconds"] for w in r["windows"])
    )
    assert set(r["mean"]) == {"recall@4", "ndcg@4", "update_seconds", "update_cpu_seconds"}
    assert r["drift"] is None  # not watched unless asked


class FakeClocks:
    """Stands in for the ``time`` module of the prequential protocol: a wall clock and a
    CPU clock that only move when told, so timings are exact on any machine."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def perf_counter(self) -> float:
        return self.wall

    def process_time(self) -> float:
        return self.cpu


class Busy(Static):
    """Static, but each update takes 0.05 s of CPU (``spin``) or of waiting only
    (``sleep``) on the fake clocks."""

    def __init__(self, clocks: FakeClocks, work: str = "spin", seconds: float = 0.05) -> None:
        self.clocks = clocks
        self.work = work
        self.seconds = seconds

    def _update(self, window):
        self.clocks.wall += self.seconds
        if self.work == "spin":
            self.clocks.cpu += self.seconds
        return self.model_


@pytest.mark.parametrize("work", ["spin", "sleep"])
def test_update_cpu_seconds_beside_wall_seconds(work, monkeypatch):
    import lifelongrec.evaluation._prequential as protocol

    clocks = FakeClocks()
    monkeypatch.setattr(protocol, "time", clocks)
    data = synthetic(n_events=600, seed=1)
    r = prequential(get_model("popularity"), data, Busy(clocks, work), 4, k=5, progress=False)
    recs = r["windows"]
    for rec in recs[1:]:
        assert rec["update_seconds"] == pytest.approx(0.05)
        # CPU time is counted when the update works, not when it waits
        assert rec["update_cpu_seconds"] == pytest.approx(0.05 if work == "spin" else 0.0)
    assert r["total_update_cpu_seconds"] == pytest.approx(
        sum(w["update_cpu_seconds"] for w in recs)
    )
    assert r["total_update_seconds_after_first"] == pytest.approx(
        sum(w["update_seconds"] for w in recs[1:])
    )
    assert r["total_update_cpu_seconds_after_first"] == pytest.approx(
        sum(w["update_cpu_seconds"] for w in recs[1:])
    )
    assert r["total_update_seconds"] == pytest.approx(
        recs[0]["update_seconds"] + r["total_update_seconds_after_first"]
    )
    assert r["mean"]["update_cpu_seconds"] == pytest.approx(
        np.mean([w["update_cpu_seconds"] for w in recs[1:]])
    )


def test_evaluate_window_per_event_figures_in_time_order(pop_model):
    # hand_stream's W1 with the model of W0 (x=3, y=1), K=2: d:y (t=5) second -> hit with
    # gain 1/log2(3); d:x (t=6) first -> 1; a:z, e:z unknown -> misses. Given backwards.
    log = hand_stream().iloc[:8]
    w1 = log.iloc[4:8].iloc[::-1]
    res = evaluate_window(pop_model, w1, log, k=2, per_event=True)
    pe = res["per_event"]
    np.testing.assert_array_equal(pe["timestamp"], [5, 6, 7, 8])
    np.testing.assert_array_equal(pe["hit"], [True, True, False, False])
    np.testing.assert_allclose(pe["gain"], [L3, 1.0, 0.0, 0.0])
    assert res["recall@2"] == pe["hit"].mean() and res["ndcg@2"] == pytest.approx(pe["gain"].mean())
    in_time = w1.sort_values("timestamp", kind="stable")
    assert list(pe["user_id"]) == in_time["user_id"].astype(str).tolist()
    assert list(pe["item_id"]) == in_time["item_id"].astype(str).tolist()
    plain = evaluate_window(pop_model, w1, log, k=2)
    assert "per_event" not in plain and plain == {k: v for k, v in res.items() if k != "per_event"}
    empty = evaluate_window(pop_model, w1.iloc[:0], log, per_event=True)
    assert all(len(v) == 0 for v in empty["per_event"].values())


def test_bad_arguments_raise_parameter_errors():
    data = hand_stream()
    model = get_model("popularity")
    with pytest.raises(ParameterError, match="n_windows"):
        prequential(model, data, "static", 1)
    with pytest.raises(ParameterError, match="'n_windows' must be an integer >= 2; got True"):
        prequential(model, data, "static", True)
    with pytest.raises(ParameterError, match="'k'"):
        prequential(model, data, "static", 3, k=0)
    with pytest.raises(ParameterError, match="strategy"):
        prequential(model, data, "sometimes", 3)
    with pytest.raises(ParameterError, match="strategy"):
        prequential(model, data, 42, 3)
    with pytest.raises(ParameterError, match="model"):
        prequential("popularity", data, "static", 3)
    with pytest.raises(ParameterError, match="by"):
        prequential(model, data, "static", 3, by="weekday")


def test_evaluate_window_rejects_what_is_not_events(pop_model):
    with pytest.raises(DataError, match="events to evaluate"):
        evaluate_window(pop_model, [("d", "x", 5)], hand_stream())
    with pytest.raises(DataError, match="lacks required columns"):
        evaluate_window(pop_model, pd.DataFrame({"user_id": ["d"]}), hand_stream())
    with pytest.raises(DataError, match="history"):
        evaluate_window(pop_model, hand_stream(), "not a history")
    empty = evaluate_window(pop_model, hand_stream().iloc[:0], hand_stream())
    assert empty["recall@10"] is None and empty["n_events"] == 0


# ------------------------------------------------------------- catalogue admission
def hand_catalogue() -> pd.DataFrame:
    """x and y published at the start, z at t=6 (before its first event, t=7), w after
    the last event (never due)."""
    from lifelongrec.data import make_items

    arrival = [{"arrival": 0}, {"arrival": 0}, {"arrival": 6}, {"arrival": 100}]
    return make_items(["x", "y", "z", "w"], attributes=arrival)


def test_catalogue_items_join_when_published_hand_computed():
    data = Dataset(hand_stream(), hand_catalogue())
    r = prequential(
        get_model("popularity"), data, "static", 3, k=2, progress=False, catalogue_time="arrival"
    )
    w0, w1, w2 = r["windows"]
    assert [w["n_admitted"] for w in r["windows"]] == [0, 1, 0]  # z before window 1
    # W1: d:y (t=5) ranks x, y (z not published until 6) -> y second; d:x (t=6) sees
    # {y} -> x first; a:z (t=7) sees {x} -> y, z -> z second (a hit now, not a miss);
    # e:z (t=8) ranks x, y, z -> z third: a miss
    assert w1["n_unknown_items"] == 0
    assert w1["recall@2"] == pytest.approx(3 / 4)
    assert w1["ndcg@2"] == pytest.approx((L3 + 1.0 + L3) / 4)
    # W2: z is known with no events: f:z and g:z third (misses), g:y second, a:y first
    assert w2["recall@2"] == pytest.approx(2 / 4) and w2["n_unknown_items"] == 0
    assert r["catalogue_time"] == "arrival" and r["n_unknown_items"] == 0
    # without the catalogue, z's four events are misses by construction
    plain = prequential(get_model("popularity"), data, "static", 3, k=2, progress=False)
    assert plain["n_unknown_items"] == 4 and "n_admitted" not in plain["windows"][1]
    assert plain["catalogue_time"] is None


def test_an_item_not_yet_published_is_not_ranked():
    first, second, _ = time_windows(hand_stream(), 3)
    model = get_model("popularity").fit(first)
    history = pd.concat([first.events, second.events], ignore_index=True)
    base = evaluate_window(model, second.events.iloc[:1], history, k=2)  # d:y at t=5
    assert base["ndcg@2"] == pytest.approx(L3)  # x ranks first
    later = pd.Series({"x": 6})  # x published after t=5: y ranks first
    masked = evaluate_window(model, second.events.iloc[:1], history, k=2, available=later)
    assert masked["ndcg@2"] == pytest.approx(1.0)
    # the event's own item always counts, whatever its time says
    own = evaluate_window(
        model, second.events.iloc[:1], history, k=2, available=pd.Series({"y": 9})
    )
    assert own["ndcg@2"] == pytest.approx(L3)


def test_every_strategy_sees_the_same_catalogue():
    events = synthetic(n_events=600, n_users=20, n_items=40, seed=3).events
    from lifelongrec.data import make_items

    items = make_items(sorted(set(events["item_id"])))  # the time in a column of its own
    first_seen = events.groupby("item_id")["timestamp"].min()
    items["published"] = items["item_id"].map(first_seen).to_numpy() - 1
    data = Dataset(events, items)
    for strategy in ("static", "retrain", "finetune", "lifelong"):
        r = prequential(
            get_model("itemknn"), data, strategy, 3, progress=False, catalogue_time="published"
        )
        assert r["n_unknown_items"] == 0, strategy  # every item published before its event
        assert sum(w["n_admitted"] for w in r["windows"]) > 0


def test_catalogue_time_errors_name_what_is_wrong():
    from lifelongrec.evaluation import catalogue_times, run_stream

    events = hand_stream()
    with pytest.raises(ParameterError, match="catalogue_time.*without a catalogue"):
        prequential(get_model("popularity"), events, "static", 3, catalogue_time="arrival")
    with pytest.raises(ParameterError, match="must be a column of the catalogue.*got 'released'"):
        catalogue_times(hand_catalogue(), "released")
    bad = hand_catalogue()
    bad.at[2, "attributes"] = {"arrival": "tomorrow"}
    with pytest.raises(DataError, match="item 'z': arrival is 'tomorrow'; expected a timestamp"):
        catalogue_times(bad, "arrival")
    bad.at[2, "attributes"] = {"arrival": float("inf")}
    with pytest.raises(DataError, match="item 'z'"):
        catalogue_times(bad, "arrival")
    with pytest.raises(ParameterError, match="catalogue_time"):
        run_stream("synthetic", "popularity", "static", 3, 10, catalogue_time=5)
    with pytest.raises(ParameterError, match="catalogue_time"):
        run_stream("synthetic", "popularity", "static", 3, 10, catalogue_time="")


def test_estimated_training_flops_per_learning_call():
    """Beside CPU seconds, the training FLOPs a model estimates (the sequential model's):
    a refit counts its whole fit, an update what it added; a model without estimates
    reports none."""
    from lifelongrec.training import FineTune, Retrain

    data = synthetic(n_events=500, seed=2)
    pop = prequential(get_model("popularity"), data, "finetune", 3, k=5, progress=False)
    assert pop["total_update_est_gflops_after_first"] is None
    assert all(w["update_est_gflops"] is None for w in pop["windows"])
    tiny = dict(dim=8, n_layers=1, n_heads=1, max_len=8, epochs=2, batch_size=32)
    tiny |= dict(text_encoder="tfidf", validation=False, verbose=False)
    got, models = {}, {}
    for strategy in (Static(), Retrain(), FineTune()):
        model = get_model("sequential", **tiny)
        got[strategy.name] = prequential(model, data, strategy, 3, k=5, progress=False)
        models[strategy.name] = strategy.model_
    static, retrain, finetune = got["static"], got["retrain"], got["finetune"]
    first = static["windows"][0]["update_est_gflops"]
    assert first > 0 and first == pytest.approx(retrain["windows"][0]["update_est_gflops"])
    assert static["total_update_est_gflops_after_first"] == 0.0
    # retrain's last window: the fresh model's own fit, the largest of its refits
    last = retrain["windows"][-1]["update_est_gflops"]
    assert last == pytest.approx(models["retrain"].train_gflops_)
    assert last > retrain["windows"][1]["update_est_gflops"] > first
    # fine-tune: the first fit and every update add up to what its one model trained
    per_window = [w["update_est_gflops"] for w in finetune["windows"]]
    assert sum(per_window) == pytest.approx(models["finetune"].train_gflops_)
    assert finetune["total_update_est_gflops_after_first"] == pytest.approx(sum(per_window[1:]))


def test_per_event_figures_of_every_evaluated_window():
    data = synthetic(n_events=600, seed=4)
    plain = prequential(get_model("popularity"), data, "finetune", 3, k=5, progress=False)
    r = prequential(
        get_model("popularity"), data, "finetune", 3, k=5, progress=False, per_event=True
    )
    assert "per_event" not in plain["windows"][1] and "per_event" not in r["windows"][0]
    json.dumps(r)  # plain lists
    for w in (1, 2):
        pe, rec = r["windows"][w]["per_event"], r["windows"][w]
        assert len(pe["gain"]) == rec["n_events"] and pe["timestamp"] == sorted(pe["timestamp"])
        assert np.mean(pe["gain"]) == pytest.approx(rec["ndcg@5"])
        assert np.mean(pe["hit"]) == pytest.approx(rec["recall@5"])
        assert rec["ndcg@5"] == plain["windows"][w]["ndcg@5"]  # the same figures
        assert set(pe["user_id"]) <= set(data.events["user_id"].astype(str))
