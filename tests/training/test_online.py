"""Online learning: state at once (exactly partial_fit's), parameters in mini-batches."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from lifelongrec import DataError, NotFittedError, ParameterError
from lifelongrec.data import Dataset, make_events, make_items
from lifelongrec.models import ItemKNN, SequentialRecommender
from lifelongrec.training import OnlineBuffering, OnlineLearner, OnlineStats, online_events

TINY = dict(
    dim=16,
    n_layers=1,
    n_heads=2,
    max_len=8,
    epochs=25,
    lr=0.01,
    batch_size=16,
    text_encoder="tfidf",
    validation=False,
    verbose=False,
)
QUICK = {**TINY, "epochs": 1}
# no dropout and a full softmax: one optimiser step is deterministic, so the online step
# can be compared with partial_fit's step number for number
EXACT = {**QUICK, "dropout": 0.0, "id_dropout": 0.0}


GROUPS = {"a": ("space robot galaxy", "scifi"), "b": ("cooking garden recipe", "home")}


def two_worlds(n_users=24, n_items=10, length=8, seed=0, event_types=True):
    """Users of group a walk through a-items in order (a3 -> a4 -> ...), b-users through
    b-items; every third event is a purchase, the others views; titles and categories
    say which group an item belongs to."""
    rng = np.random.default_rng(seed)
    users, items, ts, types = [], [], [], []
    t = 0
    for u in range(n_users):
        g = "a" if u % 2 == 0 else "b"
        start = int(rng.integers(0, n_items - length + 1))
        for j in range(length):
            users.append(f"{g}user{u}")
            items.append(f"{g}{start + j}")
            t += int(rng.integers(1, 100))
            ts.append(t)
            types.append("purchase" if (j + u) % 3 == 2 else "view")
    ev = make_events(users, items, ts, types if event_types else None)
    return Dataset(events=ev, items=catalogue(n_items), name="two-worlds")


def catalogue(n_items, extra=()):
    ids = [f"{g}{i}" for g in GROUPS for i in range(n_items)] + list(extra)
    titles = [f"{GROUPS[i[0]][0]} {i}" for i in ids]
    cats = [[GROUPS[i[0]][1]] for i in ids]
    return make_items(ids, titles, cats, [{"price": float(len(i))} for i in ids])


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine two spin-wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world():
    return two_worlds()


@pytest.fixture(scope="module")
def wide_world():
    """Each user has seen 8 of their group's 20 items: a top 5 of unseen items exists."""
    return two_worlds(n_items=20)


@pytest.fixture(scope="module")
def trained(wide_world):
    return SequentialRecommender(**{**TINY, "epochs": 10}).fit(wide_world)


@pytest.fixture(scope="module")
def quick(world):
    return SequentialRecommender(**QUICK).fit(world)


def last_ts(world) -> int:
    return int(world.events["timestamp"].max())


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module_.state_dict().items()}


# ------------------------------------------------- observe == partial_fit(epochs=0)
# what only training touches, and the one hyperparameter the twins differ in
_TRAINING_ONLY = {"_module", "_trainer", "_online", "n_updates_", "history_", "update_plan_"}
_TRAINING_ONLY |= {"_observe_growing"}


def assert_same(a, b, where="model"):
    """Recursive equality of learned state (arrays, sparse matrices, our own objects)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif sp.issparse(a):
        assert sp.issparse(b) and a.shape == b.shape and (a != b).nnz == 0, where
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, torch.nn.Module):
        assert_same(a.state_dict(), b.state_dict(), where)
    elif isinstance(a, Mapping):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for j, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{j}]")
    elif isinstance(a, (pd.DataFrame, pd.Series)):
        assert a.equals(b), where
    elif isinstance(a, torch.optim.Optimizer):
        return  # optimiser state: what only training touches (as _trainer)
    elif type(a).__module__.startswith("lifelongrec") and hasattr(a, "__dict__"):
        assert type(a) is type(b), where
        assert_same(vars(a), vars(b), where)
    elif hasattr(a, "__dict__") and not callable(a):
        return  # foreign objects (encoders): not touched by either path
    else:
        assert a == b or (a != a and b != b), where


def assert_same_state(model, twin):
    for m in (model, twin):
        assert m.user_items_ is not None  # the read merges the cells observe left pending
    state = {k: v for k, v in vars(model).items() if k not in _TRAINING_ONLY}
    other = {k: v for k, v in vars(twin).items() if k not in _TRAINING_ONLY}
    assert_same(state, other)
    assert_same(params(model), params(twin), "parameters")


def both(model, events, items=None):
    """``observe`` on one copy, ``partial_fit`` without epochs on the other."""
    fast, slow = copy.deepcopy(model), copy.deepcopy(model)
    fast.observe(events, items)
    slow.partial_fit(events if items is None else Dataset(events=events, items=items), epochs=0)
    return fast, slow


def scenario(name, world):
    t = last_ts(world)
    if name == "in-order":
        users = ["auser0", "buser1", "auser0", "auser2", "buser3"]
        items, types = ["a1", "b2", "a5", "a7", "b0"], ["view", "purchase", "view", "view", "view"]
        return make_events(users, items, [t + 5, t + 1, t + 9, t, t + 2], types)
    if name == "out-of-order-and-ties":
        ev = world.events
        first = ev[ev["user_id"] == "auser0"]["timestamp"].to_numpy()
        tie = ev[ev["user_id"] == "buser1"]["timestamp"].to_numpy()
        return make_events(
            ["auser0", "buser1", "buser1", "auser0"],
            ["b3", "a2", "b9", "a0"],
            [int(first[0]) - 1, int(tie[3]), int(tie[-1]), int(first[4]) + 1],
            ["purchase", "view", "view", "click"],  # click: a type the model does not know
        )
    if name == "one-event":  # the shift of one row
        return make_events(["buser3"], ["b9"], [t + 7], "purchase")
    if name == "one-earlier-event":  # before the user's last stored event: a real merge
        return make_events(["buser3"], ["a9"], [t - 10**6], "view")
    if name == "many-cells":  # more cells than the per-row binary search takes
        users = [f"{'ab'[j % 2]}user{j % 24}" for j in range(40)]
        items = [f"{'ab'[(j // 3) % 2]}{j % 10}" for j in range(40)]
        return make_events(users, items, t + np.arange(40) % 7, "view")
    if name == "longer-than-max-len":
        n = 2 * TINY["max_len"] + 3
        return make_events(["buser5"] * n, [f"b{j % 10}" for j in range(n)], t + np.arange(n))
    raise AssertionError(name)


SCENARIOS = [
    "in-order",
    "out-of-order-and-ties",
    "one-event",
    "one-earlier-event",
    "many-cells",
    "longer-than-max-len",
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_observe_equals_partial_fit_without_epochs(quick, world, name):
    events = scenario(name, world)
    fast, slow = both(quick, events)
    assert_same_state(fast, slow)
    users = list(quick.user_ids_)
    np.testing.assert_array_equal(fast.score_items(users), slow.score_items(users))
    assert fast.n_updates_ == quick.n_updates_  # observe is not a training update
    assert fast.n_online_pending == len(events)


def test_observe_grows_tables_for_new_users_and_items_like_partial_fit(quick, world):
    t = last_ts(world)
    events = make_events(
        ["newbie", "auser0", "newbie", "auser2"], ["a3", "a_new", "a_new", "a4"], [t + 1] * 4
    )
    items = catalogue(10, extra=["a_new"])
    fast, slow = both(quick, events, items)
    assert "newbie" in fast.user_ids_ and "a_new" in fast.item_ids_
    assert_same_state(fast, slow)
    np.testing.assert_array_equal(
        fast.score_items(["newbie", "auser0"]), slow.score_items(["newbie", "auser0"])
    )
    assert fast.n_updates_ == quick.n_updates_ and fast.n_online_pending == 4


@pytest.mark.parametrize("name", ["long time-to-live", "ids expire", "admission", "new users"])
def test_observe_equals_partial_fit_with_a_dynamic_vocabulary(world, name):
    t = last_ts(world)
    view = "view"
    forget_before: dict[int, list[str]] = {}
    if name == "new users":  # only users are new: rows without the update's path
        settings = {}
        steps = [
            make_events(
                ["newbie0", "auser0", "newbie0", "newbie1", "newbie0"],
                ["a1", "a2", "b3", "b4", "a1"],
                [t + 1, t + 1, t + 2, t, t - 10**6],  # out of order, one before the rest
                ["view", "view", "purchase", "view", "view"],
            ),
            make_events(["newbie2", "newbie2"], ["a5", "b6"], [t + 3, t + 3]),  # a freed row
            make_events(["newbie3", "buser3"], ["a_new", "b1"], [t + 4] * 2),  # an item too
        ]
        forget_before = {1: ["buser1"]}
        slow_calls = [False, False, True]
    elif name == "admission":  # items need two events for a row
        settings = {"item_min_count": 2}
        steps = [
            make_events(["auser0", "buser1", "auser4"], ["a_rare", "b1", "b_once"], [t + 1] * 3),
            make_events(["auser2"], ["a_rare"], [t + 3], view),  # a_rare is admitted
            make_events(["auser0", "buser3"], ["a2", "b5"], [t + 4, t + 5], view),
        ]
        slow_calls = [True, True, False]  # the last: known ids, b_once still pending
    else:
        ttl = t + 10 if name == "ids expire" else 10**9
        settings = {"user_ttl": ttl, "item_ttl": ttl}
        steps = [
            make_events(["auser0"], ["a1"], [t + 1], view),
            make_events(["buser1", "auser2"], ["b2", "a3"], [t + 2, t + 3], view),
            make_events(["buser3"], ["b4"], [t + 4 + 10**4], "purchase"),  # far ahead
        ]
        slow_calls = [False, False, name == "ids expire"]
    model = SequentialRecommender(**{**QUICK, **settings}).fit(world)
    fast, slow = copy.deepcopy(model), copy.deepcopy(model)
    # which path observe takes (per row, or through the update) has no public trace:
    # a spy on the slow path's entry point records it
    growing = fast._observe_growing
    took: list[bool] = []

    def spy(*args):
        took[-1] = True
        return growing(*args)

    fast._observe_growing = spy
    for j, events in enumerate(steps):
        for m in (fast, slow):
            m.forget_users(forget_before.get(j, []))
        took.append(False)
        fast.observe(events)
        slow.partial_fit(events, epochs=0)
        assert_same_state(fast, slow)
    assert took == slow_calls
    if name == "ids expire":
        assert slow.expired_["users"] and slow.expired_["items"]
    users = [u for u in slow.user_ids_ if u is not None]
    np.testing.assert_array_equal(fast.score_items(users), slow.score_items(users))


@pytest.mark.parametrize("mode", ["like", "none"])
def test_observe_equals_partial_fit_for_ratings_and_a_single_type(mode):
    data = two_worlds(event_types=False)
    ev = data.events.copy()
    if mode == "like":
        ev["value"] = np.resize([1.0, 5.0, 4.0, np.nan], len(ev))
    model = SequentialRecommender(**{**QUICK, "epochs": 1}).fit(Dataset(ev, data.items))
    assert model.event_mode_ == mode
    t = last_ts(data)
    new = make_events(["auser0", "buser1", "auser0"], ["a2", "b1", "b4"], [t + 1, t + 2, t])
    new["value"] = [3.0, np.nan, 4.5]
    fast, slow = both(model, new)
    assert_same_state(fast, slow)


def test_observe_takes_frames_datasets_and_column_mappings_alike(quick, world):
    events = scenario("in-order", world)
    via_frame = copy.deepcopy(quick).observe(events)
    via_data = copy.deepcopy(quick).observe(Dataset(events=events))
    via_cols = copy.deepcopy(quick).observe({c: events[c].to_numpy() for c in events.columns})
    minimal = copy.deepcopy(quick).observe(events[["user_id", "item_id", "timestamp"]])
    for other in (via_data, via_cols):
        assert_same(via_frame.user_histories_, other.user_histories_)
    # without event_type every event is the default type, unknown to this model
    assert (minimal.user_histories_["types"] != via_frame.user_histories_["types"]).any()
    untouched = copy.deepcopy(quick).observe(events.iloc[:0])
    assert_same(
        untouched.user_histories_, quick.user_histories_
    ) and untouched.n_online_pending == 0


# ------------------------------------------------- online_step == partial_fit's step
def test_online_step_is_partial_fits_step_on_the_same_events(world):
    model = SequentialRecommender(**{**EXACT, "partial_fit_epochs": 1}).fit(world)
    t = last_ts(world)
    first = make_events(["auser0", "buser1", "auser0"], ["a1", "b2", "a5"], [t + 1, t + 2, t + 3])
    n = TINY["max_len"] + 2  # buser3 brings more than one window of events
    second = make_events(
        ["buser1"] + ["buser3"] * n + ["newbie", "newbie"],
        ["b7"] + [f"b{j % 10}" for j in range(n)] + ["b1", "b_new"],
        t + 4 + np.arange(n + 3),
    )
    items = catalogue(10, extra=["b_new"])
    before = params(model)
    online, batch = copy.deepcopy(model), copy.deepcopy(model)
    online.observe(first)
    online.observe(second, items)
    assert online.n_online_pending == len(first) + len(second)
    out = online.online_step(1)
    assert out["n_events"] == len(first) + len(second) and out["n_steps"] == 1
    assert out["n_windows"] == 5  # auser0, buser1, two for buser3 and newbie
    assert online.n_online_pending == 0
    batch.batch_size = 1000  # partial_fit's one epoch is then one step over all windows
    batch.partial_fit(Dataset(pd.concat([first, second], ignore_index=True), items))
    after, reference = params(online), params(batch)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    D = TINY["dim"]
    for k in after:
        a, b = after[k], reference[k]
        if k.endswith("attn.qkv.bias"):
            # the key bias has a zero gradient in exact arithmetic (softmax is shift
            # invariant), so AdamW's first step turns float noise into steps of size lr
            a, b = torch.cat([a[:D], a[2 * D :]]), torch.cat([b[:D], b[2 * D :]])
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=k)
    assert_same(online.user_histories_, batch.user_histories_)
    # the optimiser state carries over: both have taken one more AdamW step
    steps = [s["step"] for s in online.optimizer_.state.values()]
    ref = [s["step"] for s in batch.optimizer_.state.values()]
    assert [float(s) for s in steps] == [float(s) for s in ref]


def test_online_step_without_material_or_steps_trains_nothing(quick, world):
    model = copy.deepcopy(quick)
    before = params(model)
    assert model.online_step() == {"n_events": 0, "n_windows": 0, "n_steps": 0}
    model.observe(scenario("in-order", world))
    out = model.online_step(0)  # the material is used up without a step
    assert out["n_steps"] == 0 and out["n_events"] == 5 and model.n_online_pending == 0
    assert_same(params(model), before)


def test_a_new_fit_discards_material_of_the_old_tables(quick, world):
    model = copy.deepcopy(quick)
    model.observe(scenario("in-order", world))
    model.epochs = 1
    model.fit(world)
    assert model.n_online_pending == 0 and model.n_online_discarded_ == 5
    assert model.online_step()["n_events"] == 0


# ------------------------------------------------- the next recommendation, at once
def test_next_recommendation_reflects_the_last_event_at_once(trained, wide_world):
    world = wide_world
    model = copy.deepcopy(trained)
    learner = OnlineLearner(model, batch_size=1000)
    user, k = "auser2", 5
    ids_before, _ = model.recommend(user, k=k)
    scores_before = model.score_items(user)
    assert sum(str(i).startswith("a") for i in ids_before) >= 4  # an a-user gets a-items
    event = {"user_id": user, "item_id": "b4", "timestamp": last_ts(world) + 60}
    event["event_type"] = "purchase"
    learner.learn(event)
    assert learner.stats.n_steps == 0  # nothing trained: the state alone changed
    history = pd.concat(
        [world.events, make_events([user], ["b4"], [event["timestamp"]], "purchase")]
    )
    expected = model.score_histories(user, history)
    np.testing.assert_allclose(model.score_items(user), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(model.score_items(user), scores_before)
    ids_after, _ = model.recommend(user, k=k)
    assert "b4" not in ids_after  # seen at once
    b_before = sum(str(i).startswith("b") for i in ids_before)
    b_after = sum(str(i).startswith("b") for i in ids_after)
    assert b_after > b_before  # the ranking moved towards the category of the last event
    assert str(ids_after[0]).startswith("b")
    same, _ = model.recommend_histories(user, history, k=k)
    assert list(same) == list(ids_after)


# ------------------------------------------------- the learner: batches and threads
def single_events(world, n, start=1):
    t = last_ts(world)
    users = [f"{'a' if j % 2 == 0 else 'b'}user{j % 24}" for j in range(n)]
    items = [f"{u[0]}{(j * 3) % 10}" for j, u in enumerate(users)]
    return [
        {"user_id": u, "item_id": i, "timestamp": t + start + j, "event_type": "view"}
        for j, (u, i) in enumerate(zip(users, items, strict=True))
    ]


def test_parameters_change_only_when_a_batch_fills(quick, world):
    model = copy.deepcopy(quick)
    learner = OnlineLearner(model, batch_size=4, steps_per_batch=2)
    events = single_events(world, 16)
    start = params(model)
    for e in events[:3]:
        learner.learn(e)
    assert_same(params(model), start)
    assert learner.n_pending == 3 and learner.stats.n_steps == 0
    learner.learn(events[3])
    assert learner.n_pending == 0
    assert learner.stats.n_batches == 1 and learner.stats.n_steps == 2
    assert learner.stats.n_trained_events == 4
    one_batch = params(model)
    assert any(not torch.equal(start[k], one_batch[k]) for k in start)
    learner.learn(events[4:13])  # 9 events: two more batches of 4, one event left
    assert learner.stats.n_batches == 3 and learner.n_pending == 1
    assert learner.stats.n_trained_events == 12
    last = params(model)
    assert learner.flush() == 1 and learner.n_pending == 0
    assert learner.stats.n_trained_events == 13 and learner.stats.n_steps == 8
    assert any(not torch.equal(last[k], v) for k, v in params(model).items())
    assert learner.flush() == 0 and learner.stats.n_batches == 4
    assert learner.stats.n_events == 13 and learner.stats.n_calls == 5


def test_learning_in_batches_equals_observe_then_step_per_batch(world):
    model = SequentialRecommender(**EXACT).fit(world)
    events = single_events(world, 6)
    learner_model, manual = copy.deepcopy(model), copy.deepcopy(model)
    OnlineLearner(learner_model, batch_size=3).learn(events)
    for part in (events[:3], events[3:]):
        manual.observe(pd.DataFrame(part))
        manual.online_step(1)
    for k, v in params(manual).items():
        torch.testing.assert_close(params(learner_model)[k], v)


def test_background_training_thread(quick, world):
    model = copy.deepcopy(quick)
    learner = OnlineLearner(model, batch_size=8, train_inline=False)
    events = single_events(world, 40)
    learner.learn(events[:5])  # train_inline=False: state only
    assert learner.n_pending == 5 and learner.train_pending() == 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def trainer():
        try:
            while not stop.is_set():
                learner.train_pending()
                stop.wait(0.001)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=trainer)
    thread.start()
    for e in events[5:]:
        assert learner.observe(e) == 1
        with learner.lock:  # a service reads under the lock
            model.recommend(e["user_id"], k=3)
    stop.set()
    thread.join()
    assert not errors
    learner.flush()
    s = learner.stats
    assert s.n_events == 40 and s.n_trained_events == 40 and learner.n_pending == 0
    assert s.n_batches >= 1 and s.n_steps == s.n_batches


def test_new_user_and_new_item_mid_stream_are_served_and_trained(quick, world):
    model = copy.deepcopy(quick)
    learner = OnlineLearner(model, batch_size=6)
    t = last_ts(world)
    learner.learn(single_events(world, 3))
    items = catalogue(10, extra=["a_new"])
    new = make_events(["fresh", "fresh", "auser0"], ["a2", "a_new", "a_new"], [t + 10] * 3)
    learner.learn(Dataset(events=new, items=items))  # fills the batch: one step
    assert learner.stats.n_batches == 1 and learner.n_pending == 0
    row = model.item_index_["a_new"]
    assert model.module_.item_tower.id_emb.weight[row + 1].abs().sum() > 0  # trained
    ids, _ = model.recommend("fresh", k=3)
    assert "a2" not in ids and "a_new" not in ids  # served, its events seen
    history = make_events(["fresh", "fresh"], ["a2", "a_new"], [t + 10] * 2)
    np.testing.assert_allclose(
        model.score_items("fresh"), model.score_histories("fresh", history), rtol=1e-5, atol=1e-5
    )


def test_classical_model_gets_its_exact_partial_fit(world):
    model = ItemKNN().fit(world)
    twin = copy.deepcopy(model)
    learner = OnlineLearner(model, batch_size=2)
    assert not learner.fast_path
    events = single_events(world, 5)
    learner.learn(events[:2])
    learner.learn(events[2:])
    twin.partial_fit(pd.DataFrame(events[:2]))
    twin.partial_fit(pd.DataFrame(events[2:]))
    users = list(twin.user_ids_)
    np.testing.assert_allclose(model.score_items(users), twin.score_items(users))
    assert learner.flush() == 0 and learner.train_pending() == 0 and learner.n_pending == 0
    s = learner.stats
    assert (s.n_events, s.n_calls, s.n_batches, s.state_seconds > 0) == (5, 2, 0, True)


def test_stats_report_rates_and_split():
    s = OnlineStats(n_events=10, state_seconds=0.5, step_seconds=1.5)
    assert s.events_per_second == pytest.approx(5.0)
    d = s.as_dict()
    assert d["events_per_second"] == pytest.approx(5.0) and d["n_events"] == 10
    assert np.isnan(OnlineStats().events_per_second)


# ------------------------------------------------------------------ bad input
def test_online_events_accepts_the_event_forms():
    record = {"user_id": 7, "item_id": "i1", "timestamp": np.int64(100), "value": 4}
    cols, items = online_events(record)
    assert items is None
    assert cols["user_id"].tolist() == ["7"] and cols["value"].tolist() == [4.0]
    assert cols["event_type"].tolist() == ["interaction"]
    frame = pd.DataFrame(
        {"user_id": ["7", 8], "item_id": ["i1", "i2"], "timestamp": [100, 101]}
        | {"event_type": ["view", None], "value": [1, None]}
    )
    cols, _ = online_events(frame)
    assert cols["user_id"].tolist() == ["7", "8"]
    assert cols["event_type"].tolist() == ["view", "interaction"]  # absent: the default
    assert cols["value"][0] == 1.0 and np.isnan(cols["value"][1])
    frame = pd.DataFrame({"user_id": [1], "item_id": [2], "timestamp": [3]})
    cols, _ = online_events(frame)
    assert cols["item_id"].tolist() == ["2"] and np.isnan(cols["value"]).all()
    data = Dataset(events=make_events(["u"], ["a1"], [1]), items=catalogue(2))
    assert online_events(data)[1] is data.items
    assert len(online_events([])[0]["user_id"]) == 0


GOOD = {"user_id": "u", "item_id": "i", "timestamp": 5}


@pytest.mark.parametrize(
    "events, column, text",
    [
        (42, None, "cannot use this object as events"),
        ("u i 5", None, "cannot use this object as events"),
        ([GOOD, 3], None, "event 1"),
        ([GOOD, {"user_id": "u", "item_id": "i"}], "timestamp", "lacks a required field"),
        ([{**GOOD, "event_typ": "view"}], "event_typ", "unknown field"),
        ([GOOD, {**GOOD, "user_id": None}], "user_id", "event 1"),
        ([{**GOOD, "item_id": ""}], "item_id", "event 0"),
        ([{**GOOD, "item_id": 1.5}], "item_id", "not an id"),
        ([{**GOOD, "timestamp": "5"}], "timestamp", "integer"),
        ([{**GOOD, "timestamp": 5.5}], "timestamp", "integer"),
        ([{**GOOD, "timestamp": True}], "timestamp", "integer"),
        ([{**GOOD, "timestamp": 2**63}], "timestamp", "out of range .milliseconds"),
        ([{**GOOD, "timestamp": 7_258_118_400}], "timestamp", "out of range"),
        ([{**GOOD, "timestamp": -1}], "timestamp", "out of range"),
        (
            pd.DataFrame({**{k: [v, v] for k, v in GOOD.items()}, "timestamp": [5, -3]}),
            "timestamp",
            "event 1",
        ),
        (
            pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, "timestamp": [1_700_000_000_000]}),
            "timestamp",
            "milliseconds",
        ),
        (
            pd.DataFrame(
                {**{k: [v] for k, v in GOOD.items()}, "timestamp": np.array([2**64 - 1], np.uint64)}
            ),
            "timestamp",
            "out of range",
        ),
        (
            pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, "timestamp": [2**70]}),
            "timestamp",
            "out of range",
        ),
        ([{**GOOD, "event_type": 3}], "event_type", "not a name"),
        ([{**GOOD, "value": "high"}], "value", "not a number"),
        ([{**GOOD, "value": float("inf")}], "value", "finite"),
        ([{**GOOD, "value": True}], "value", "not a number"),
        (pd.DataFrame({"user_id": ["u"], "item_id": ["i"]}), None, "lacks required columns"),
        (
            pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, "user_id": [None]}),
            "user_id",
            "missing",
        ),
        (
            pd.DataFrame({**{k: [v, v] for k, v in GOOD.items()}, "timestamp": [1.0, 2.5]}),
            "timestamp",
            "event 0",
        ),
        (pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, "value": [np.inf]}), "value", "finite"),
        (
            pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, "value": ["x"]}),
            "value",
            "not a number",
        ),
        (
            pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, "event_type": [7]}),
            "event_type",
            "not a name",
        ),
    ],
)
def test_bad_events_raise_naming_field_and_position(quick, events, column, text):
    model = copy.deepcopy(quick)
    learner = OnlineLearner(model, batch_size=1)
    hist = {k: v.copy() for k, v in model.user_histories_.items()}
    with pytest.raises(DataError, match=text) as info:
        learner.learn(events)
    assert info.value.column == column
    with pytest.raises(DataError):
        learner.observe(events)
    assert learner.stats.n_events == 0 and learner.n_pending == 0  # nothing taken in
    assert_same(model.user_histories_, hist)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "8"}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"steps_per_batch": 0}, "steps_per_batch"),
        ({"steps_per_batch": 1.5}, "steps_per_batch"),
        ({"train_inline": "yes"}, "train_inline"),
    ],
)
def test_bad_learner_settings_raise(quick, kwargs, name):
    with pytest.raises(ParameterError) as info:
        OnlineLearner(quick, **kwargs)
    assert info.value.name == name


def test_learner_settings_are_params(quick, world):
    learner = OnlineLearner(quick, batch_size=np.int64(4), train_inline=False)
    assert learner.get_params() == {
        "model": quick,
        "batch_size": 4,
        "steps_per_batch": 1,
        "train_inline": False,
    }
    assert type(learner.batch_size) is int
    assert (
        repr(learner) == f"OnlineLearner(model={quick!r}, batch_size=4, "
        "steps_per_batch=1, train_inline=False)"
    )
    learner.check_params()
    twin = learner.clone()  # the same settings on a copy of the model
    assert twin.model is not quick and twin.get_params()["batch_size"] == 4
    assert twin.fast_path and isinstance(quick, OnlineBuffering)
    knn = ItemKNN().fit(world)
    assert not isinstance(knn, OnlineBuffering) and not OnlineLearner(knn).fast_path
    assert OnlineLearner(knn).n_pending == 0
    for name in ("batch_size", "steps_per_batch", "train_inline"):
        with pytest.raises(ParameterError) as info:
            OnlineLearner(quick, **{name: None})
        assert info.value.name == name and "got None" in str(info.value)


def test_learner_needs_a_fitted_recommender():
    with pytest.raises(ParameterError, match="Recommender"):
        OnlineLearner(object())
    with pytest.raises(NotFittedError):
        OnlineLearner(SequentialRecommender(**QUICK))


def test_model_fast_path_checks_its_input(quick):
    with pytest.raises(NotFittedError):
        SequentialRecommender(**QUICK).observe(make_events(["u"], ["i"], [1]))
    with pytest.raises(NotFittedError):
        SequentialRecommender(**QUICK).online_step()
    model = copy.deepcopy(quick)
    cols = {"user_id": np.array(["auser0"]), "item_id": np.array(["a1"])}
    bad = [
        ([1, 2], None, "cannot use this object as events"),
        (cols, None, "lack required columns"),
        ({**cols, "timestamp": np.array([1, 2])}, "timestamp", "differ in length"),
        ({**cols, "timestamp": np.array([1.5])}, "timestamp", "not an integer"),
        ({**cols, "timestamp": np.array(["1"], dtype=object)}, "timestamp", "not an integer"),
        ({**cols, "user_id": np.array([None]), "timestamp": [1]}, "user_id", "missing"),
        ({**cols, "item_id": np.array([np.nan]), "timestamp": [1]}, "item_id", "missing"),
        ({**cols, "timestamp": [1], "value": ["x"]}, "value", "numbers"),
    ]
    for events, column, text in bad:
        with pytest.raises(DataError, match=text) as info:
            model.observe(events)
        assert info.value.column == column
    assert_same(model.user_histories_, quick.user_histories_) and model.n_online_pending == 0
    for steps in (-1, 1.0, True):
        with pytest.raises(ParameterError, match="steps"):
            model.online_step(steps)


# ------------------------------------------------------------------ the benchmark
def test_benchmark_script_runs_its_smallest_path(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "online.py"
    spec = importlib.util.spec_from_file_location("bench_online", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n\nkeep me\n")
    argv = ["--data", "synthetic", "--synthetic-events", "800", "--fit-epochs", "1"]
    argv += ["--request-sizes", "1", "7", "--max-events", "30", "--batch-size", "8"]
    argv += ["--param", "dim=8", "--param", "max_len=10", "--threads", "1", "--out", str(out)]
    raw = bench.main(argv)
    runs = {(r["request_size"], r["mode"]): r for r in raw["results"]}
    assert set(runs) == {(1, "state"), (1, "params"), (7, "state"), (7, "params")}
    for (size, mode), r in runs.items():
        s = r["learner"]
        assert r["n_events"] == s["n_events"] == 30 and r["n_calls"] == -(-30 // size)
        assert r["events_per_second"] > 0 and r["call_ms"]["p50"] <= r["call_ms"]["p99"]
        if mode == "state":
            assert s["n_steps"] == 0 and "recommend_after_event_ms" in r
        else:  # 30 events in updates of 8: three full batches and the rest flushed
            assert s["n_batches"] == 4 and s["n_trained_events"] == 30
    text = out.read_text()
    assert "keep me" in text and text.count("<!-- online:begin -->") == 1
    assert "| 7 | params |" in text
    bench.main(argv[:-2] + ["--modes", "state", "--out", str(out)])  # replaces its block
    assert out.read_text().count("<!-- online:begin -->") == 1
    assert json.loads(out.with_suffix(".json").read_text())["results"][0]["mode"] == "state"


def test_impressions_reach_only_a_model_that_learns_from_them(world):
    shown = pd.DataFrame(
        {"user_id": ["auser0"], "item_id": ["b1"], "timestamp": [last_ts(world) + 1]}
    )
    off = OnlineLearner(SequentialRecommender(**{**QUICK, "exposure_weight": 0.0}).fit(world))
    assert not off.learns_from_exposure and off.observe_impressions(shown) == 0
    model = SequentialRecommender(**{**QUICK, "exposure_negatives": "shown"}).fit(world)
    on = OnlineLearner(model, batch_size=1)
    assert on.learns_from_exposure and on.observe_impressions(shown) == 1
    on.learn(make_events(["auser0"], ["a3"], [last_ts(world) + 2]))  # a batch of one: a step
    assert model.exposure_counts_["used"] == 1
    slow = OnlineLearner(ItemKNN().fit(world))  # no fast path: no impressions either
    assert not slow.learns_from_exposure and slow.observe_impressions(shown) == 0
