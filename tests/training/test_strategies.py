"""Update strategies (static, retrain, finetune, lifelong) and the reservoir buffer."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from lifelongrec import NotFittedError, ParameterError
from lifelongrec._params import Integer, Number, Seed
from lifelongrec.data import make_events, synthetic, time_windows
from lifelongrec.evaluation import prequential_report
from lifelongrec.models import Popularity, get_model
from lifelongrec.training import (
    STRATEGIES,
    FineTune,
    LearnsFromTeacher,
    Lifelong,
    ReservoirBuffer,
    Retrain,
    Static,
    Strategy,
    get_strategy,
)


@pytest.fixture(scope="module")
def windows():
    return time_windows(synthetic(n_events=2_000, seed=4), 4)


def factory(name: str = "itemknn", **params):
    return lambda: get_model(name, **params)


def test_registry_names_every_strategy():
    assert list(STRATEGIES) == ["static", "retrain", "finetune", "lifelong"]
    for name, cls in STRATEGIES.items():
        assert cls.name == name and issubclass(cls, Strategy)
        assert isinstance(get_strategy(name), cls)


def test_static_never_changes_after_window_0(windows):
    s = Static()
    model = s.start(factory(), windows[0])
    users = list(model.user_ids_[:5])
    before = model.score_items(users)
    n_users = model.n_users
    for w in windows[1:]:
        assert s.update(w) is model
    assert model.n_users == n_users and s.n_updates_ == 3
    np.testing.assert_array_equal(model.score_items(users), before)


@pytest.mark.parametrize("name, params", [("itemknn", {}), ("als", {"factors": 8})])
def test_retrain_equals_a_fresh_fit_on_the_union(windows, name, params):
    s = Retrain()
    first = s.start(factory(name, **params), windows[0])
    model = first
    for w in windows[1:3]:
        model = s.update(w)
    assert model is not first  # a new model each time
    union = pd.concat([w.events for w in windows[:3]], ignore_index=True)
    fresh = get_model(name, **params).fit(union)
    assert list(model.item_ids_) == list(fresh.item_ids_)
    users = list(fresh.user_ids_[:20]) + ["nobody"]
    np.testing.assert_allclose(model.score_items(users), fresh.score_items(users), rtol=1e-5)


def test_finetune_is_partial_fit_on_the_window_only(windows):
    s = FineTune()
    model = s.start(factory("popularity"), windows[0])
    assert s.update(windows[1]) is model
    counts = pd.concat([windows[0].events, windows[1].events])["item_id"].value_counts()
    got = dict(zip(model.item_ids_, model.scores_, strict=True))
    assert got == counts.astype(float).to_dict()


def test_lifelong_replays_a_sample_of_earlier_windows(windows):
    s = Lifelong(replay_size=100, replay_share=0.25, seed=1)
    model = s.start(factory("popularity"), windows[0])
    n0 = len(windows[0])
    assert len(s.buffer_) == 100 and s.buffer_.n_seen_ == n0
    s.update(windows[1])
    n_new = len(windows[1])
    expected = min(100, round(n_new * 0.25 / 0.75))
    assert s.n_replayed_ == [expected]
    # popularity counts replayed events again: the totals say how many were learned
    assert model.scores_.sum() == n0 + n_new + expected
    assert s.buffer_.n_seen_ == n0 + n_new  # the window joins the buffer after its update


def test_lifelong_with_no_replay_is_finetune(windows):
    a, b = Lifelong(replay_share=0.0), FineTune()
    ma, mb = a.start(factory(), windows[0]), b.start(factory(), windows[0])
    for w in windows[1:]:
        a.update(w)
        b.update(w)
    users = list(mb.user_ids_[:10])
    np.testing.assert_allclose(ma.score_items(users), mb.score_items(users), rtol=1e-6)
    assert a.n_replayed_ == [0, 0, 0]


def test_lifelong_hooks_teacher_and_replay_keyword(windows):
    class Student(Popularity):
        teachers: list = []
        calls: list = []

        def set_teacher(self, previous):
            self.teachers.append((previous, previous.scores_.sum()))

        def partial_fit(self, new_interactions, replay=None):
            self.calls.append((len(new_interactions), None if replay is None else len(replay)))
            return super().partial_fit(new_interactions)

    assert isinstance(Student(), LearnsFromTeacher)
    assert not isinstance(Popularity(), LearnsFromTeacher)
    s = Lifelong(replay_size=50, replay_share=0.5, seed=0)
    model = s.start(Student, windows[0])
    total_before = model.scores_.sum()
    s.update(windows[1])
    ((teacher, teacher_total),) = Student.teachers
    assert teacher is not model and teacher_total == total_before  # a frozen copy
    assert teacher.scores_.sum() == total_before  # not updated afterwards
    assert Student.calls == [(len(windows[1]), 50)]  # replay apart from the new events


def test_strategies_are_seeded(windows):
    runs = []
    for _ in range(2):
        s = Lifelong(replay_size=64, replay_share=0.5, seed=7)
        model = s.start(factory("popularity"), windows[0])
        s.update(windows[1])
        runs.append((model.scores_.copy(), s.buffer_.events))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])


def test_strategy_errors(windows):
    with pytest.raises(ParameterError, match="strategy"):
        get_strategy("forever")
    with pytest.raises(ParameterError, match="replay_size"):
        get_strategy("finetune", replay_size=10)
    assert get_strategy("static", seed=3).get_params() == {}  # seed only where taken
    with pytest.raises(NotFittedError, match="start"):
        FineTune().update(windows[0])
    with pytest.raises(ParameterError, match="replay_share"):
        Lifelong(replay_share=1.0).start(factory(), windows[0])
    with pytest.raises(ParameterError, match="replay_size"):
        Lifelong(replay_size=0).start(factory(), windows[0])
    with pytest.raises(ParameterError, match="seed"):
        Lifelong(seed=-1).start(factory(), windows[0])
    with pytest.raises(ParameterError, match="model_factory"):
        Static().start(get_model("itemknn"), windows[0])


# ---------------------------------------------------------------- reservoir
def stream(n: int):
    return make_events([f"u{i}" for i in range(n)], [f"i{i}" for i in range(n)], np.arange(n))


def test_reservoir_fills_then_keeps_capacity_and_repeats_with_a_seed():
    a, b = ReservoirBuffer(10, seed=3), ReservoirBuffer(10, seed=3)
    ev = stream(55)
    a.add(ev.iloc[:5])
    assert len(a) == 5 and a.events["item_id"].tolist() == [f"i{i}" for i in range(5)]
    for part in (ev.iloc[5:30], ev.iloc[30:]):
        a.add(part)
    b.add(ev.iloc[:5])
    b.add(ev.iloc[5:30])
    b.add(ev.iloc[30:])
    assert len(a) == 10 and a.n_seen_ == 55
    assert a.events["item_id"].is_unique
    pd.testing.assert_frame_equal(a.events, b.events)
    s = a.sample(4)
    assert len(s) == 4 and s["timestamp"].is_monotonic_increasing
    assert set(s["item_id"]) <= set(a.events["item_id"])
    assert len(a.sample(100)) == 10
    with pytest.raises(ParameterError, match="capacity"):
        ReservoirBuffer(0)


def test_reservoir_is_a_uniform_sample():
    # every one of 60 events is kept with probability 12 / 60 = 0.2, whatever its place
    n, cap, trials = 60, 12, 400
    kept = np.zeros(n)
    ev = stream(n)
    for seed in range(trials):
        buf = ReservoirBuffer(cap, seed=seed)
        buf.add(ev.iloc[:7])
        buf.add(ev.iloc[7:])
        kept[buf.events["timestamp"].to_numpy()] += 1
    rate = kept / trials
    assert abs(rate.mean() - cap / n) < 1e-12  # exactly cap kept per trial
    # early, middle and late events alike (binomial sd of a third's mean ~0.011)
    thirds = rate.reshape(3, -1).mean(axis=1)
    assert np.all(np.abs(thirds - 0.2) < 0.05), thirds


# ------------------------------------------------------- drift reaction, distillation
class Epochs(Popularity):
    """Popularity with a ``partial_fit_epochs`` hyperparameter and ``partial_fit``'s
    ``epochs`` keyword: records the passes each update ran with (and can fail, to test
    that the setting is never changed)."""

    def __init__(self, partial_fit_epochs: int = 3, fail: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.partial_fit_epochs = partial_fit_epochs
        self.fail = fail
        self.ran: list[int] = []

    def partial_fit(self, new_interactions, *, epochs=None):
        self.ran.append(self.partial_fit_epochs if epochs is None else epochs)
        if self.fail:
            raise RuntimeError("update failed")
        return super().partial_fit(new_interactions)


class FixedEpochs(Popularity):
    """A ``partial_fit_epochs`` hyperparameter but no ``epochs`` keyword: no heavier
    update is possible without changing the hyperparameter, so none is made."""

    def __init__(self, partial_fit_epochs: int = 3, **kw) -> None:
        super().__init__(**kw)
        self.partial_fit_epochs = partial_fit_epochs


def test_on_drift_makes_the_next_update_only_heavier(windows):
    s = Lifelong(replay_size=100, replay_share=0.5, drift_epochs_factor=1.5, drift_replay_share=0.2)
    model = s.start(Epochs, windows[0])
    s.update(windows[1])
    s.on_drift({"window": 2, "detections": [{"index": 7}, {"index": 9}]})
    s.update(windows[2])
    s.update(windows[3])
    assert model.ran == [3, 5, 3]  # ceil(3 * 1.5) = 5 for the update after the drift only
    assert model.partial_fit_epochs == 3  # never changed
    n = [len(w) for w in windows[1:]]
    assert s.n_replayed_ == [min(100, n[0]), min(100, round(n[1] * 0.2 / 0.8)), min(100, n[2])]
    assert s.reactions_ == [
        {
            "update": 2,
            "window": 2,
            "n_detections": 2,
            "replay_share": 0.2,
            "n_replayed": s.n_replayed_[1],
            "partial_fit_epochs": [3, 5],
            "partial_fit_budget": None,
        }
    ]
    # without drift_replay_share: half the usual share; a model without epochs: None
    t = Lifelong(replay_size=100, replay_share=0.5)
    pop = t.start(factory("popularity"), windows[0])
    t.on_drift({"window": 1, "detections": []})
    t.on_drift({"window": 1, "detections": [{}]})  # two calls, one reaction (the latest)
    before = pop.scores_.sum()
    t.update(windows[1])
    expected = min(100, round(len(windows[1]) * 0.25 / 0.75))
    assert t.n_replayed_ == [expected] and pop.scores_.sum() == before + len(windows[1]) + expected
    assert t.reactions_[0]["partial_fit_epochs"] is None and t.reactions_[0]["n_detections"] == 1
    assert t.reactions_[0]["replay_share"] == 0.25


def test_epochs_are_an_argument_never_a_changed_hyperparameter(windows):
    s = Lifelong(drift_epochs_factor=2.0)
    model = s.start(lambda: Epochs(partial_fit_epochs=2, fail=True), windows[0])
    s.on_drift({"window": 1, "detections": []})
    with pytest.raises(RuntimeError, match="update failed"):
        s.update(windows[1])
    assert model.ran == [4] and model.partial_fit_epochs == 2
    # without the keyword the usual update runs, and the reaction says so
    t = Lifelong(drift_epochs_factor=2.0)
    fixed = t.start(FixedEpochs, windows[0])
    t.on_drift({"window": 1, "detections": []})
    t.update(windows[1])
    assert fixed.partial_fit_epochs == 3 and t.reactions_[0]["partial_fit_epochs"] is None


def test_other_strategies_ignore_drift(windows):
    for cls in (Static, Retrain, FineTune):
        s = cls()
        s.start(factory("popularity"), windows[0])
        assert s.on_drift({"window": 1, "detections": [{}]}) is None
        s.update(windows[1])
        assert s.reactions_ == []


def test_lifelong_settings_are_params_and_checked(windows):
    s = get_strategy("lifelong", seed=3, distill_weight=0.5, drift_epochs_factor=3)
    assert s.get_params() == {
        "replay_size": 10_000,
        "replay_share": 0.25,
        "seed": 3,
        "distill_weight": 0.5,
        "ewc_weight": None,
        "drift_epochs_factor": 3,
        "drift_replay_share": None,
        "replay_drift_power": 2.0,
    }
    bad = [
        ({"distill_weight": -1.0}, "distill_weight"),
        ({"distill_weight": "high"}, "distill_weight"),
        ({"ewc_weight": float("inf")}, "ewc_weight"),
        ({"drift_epochs_factor": 0.5}, "drift_epochs_factor"),
        ({"drift_epochs_factor": None}, "drift_epochs_factor"),
        ({"drift_replay_share": 1.0}, "drift_replay_share"),
        ({"drift_replay_share": -0.1}, "drift_replay_share"),
    ]
    for kwargs, name in bad:
        with pytest.raises(ParameterError, match=f"'{name}'"):
            Lifelong(**kwargs).start(factory(), windows[0])
    # a model without the hyperparameter cannot be asked to distil
    with pytest.raises(ParameterError, match="distill_weight.*ItemKNN"):
        Lifelong(distill_weight=1.0).start(factory(), windows[0])
    with pytest.raises(ParameterError, match="ewc_weight"):
        Lifelong(ewc_weight=1.0).start(factory("popularity"), windows[0])
    with pytest.raises(NotFittedError, match="start"):
        Lifelong().on_drift({"window": 1, "detections": []})
    s = Lifelong()
    s.start(factory("popularity"), windows[0])
    with pytest.raises(ParameterError, match="info"):
        s.on_drift(["window", 1])


# ------------------------------------------------------------ the sequential model
#: A tiny sequential model (as ``TINY`` in tests/models/test_sequential.py, which is not
#: importable from here: pytest puts only this test's folder on the path).
TINY_SEQ = dict(
    dim=16,
    n_layers=1,
    n_heads=2,
    max_len=8,
    epochs=4,
    lr=0.01,
    batch_size=16,
    text_encoder="tfidf",
    validation=False,
    verbose=False,
    partial_fit_epochs=2,
)


@pytest.fixture(scope="module")
def seq_windows():
    """Three windows; later ones keep only items of window 0."""
    w0, w1, w2 = time_windows(synthetic(n_events=300, n_users=20, n_items=30, seed=6), 3)
    known = set(w0.events["item_id"])
    return [w0] + [w.with_events(w.events[w.events["item_id"].isin(known)]) for w in (w1, w2)]


def seq_factory(**kw):
    from lifelongrec.models import SequentialRecommender

    return lambda: SequentialRecommender(**{**TINY_SEQ, **kw})


def test_distill_and_ewc_weights_reach_the_sequential_model(seq_windows):
    w0, w1, w2 = seq_windows
    s = Lifelong(replay_share=0.0, distill_weight=5.0, ewc_weight=10.0, drift_epochs_factor=2.0)
    model = s.start(seq_factory(), w0)
    assert model.distill_weight == 5.0 and model.ewc_weight == 10.0
    assert seq_factory()().distill_weight == 0.0  # the template's own setting is 0
    # the same as a model built with those weights (the fit itself uses neither: no
    # earlier version yet), and unlike one without them
    ref = seq_factory(distill_weight=5.0, ewc_weight=10.0)().fit(w0)
    plain = seq_factory()().fit(w0)
    users = list(ref.user_ids_[:8])
    np.testing.assert_array_equal(model.score_items(users), plain.score_items(users))
    s.update(w1)
    ref.partial_fit(w1)
    plain.partial_fit(w1)
    np.testing.assert_allclose(model.score_items(users), ref.score_items(users), rtol=1e-6)
    assert np.abs(model.score_items(users) - plain.score_items(users)).max() > 1e-3
    # a drift doubles the passes of the next update only (epochs counted in history_)
    s.on_drift({"window": 2, "detections": [{}]})
    s.update(w2)
    passes = Counter(h["update"] for h in model.history_)
    assert passes[1] == 2 and passes[2] == 4 and model.partial_fit_epochs == 2
    assert s.reactions_[0]["partial_fit_epochs"] == [2, 4]


def test_by_default_a_drift_halves_the_replay_but_not_the_passes(windows):
    s = Lifelong(replay_size=100, replay_share=0.5)
    assert s.drift_epochs_factor == 1.0
    model = s.start(Epochs, windows[0])
    s.on_drift({"window": 1, "detections": [{}]})
    s.update(windows[1])
    s.update(windows[2])
    assert model.ran == [3, 3]  # the usual passes, after the drift too
    n = [len(w) for w in windows[1:3]]
    assert s.n_replayed_ == [min(100, round(n[0] * 0.25 / 0.75)), min(100, n[1])]
    assert s.reactions_[0]["replay_share"] == 0.25
    assert s.reactions_[0]["partial_fit_epochs"] == [3, 3]


def test_distillation_with_new_items_in_the_window():
    w0, w1 = time_windows(synthetic(n_events=300, n_users=20, n_items=30, seed=6), 3)[:2]
    assert set(w1.events["item_id"]) - set(w0.events["item_id"])  # new items arrive
    s = Lifelong(replay_share=0.0, distill_weight=5.0)
    model = s.start(seq_factory(epochs=2), w0)
    before = model.n_items
    s.update(w1)
    assert model.n_items > before  # the new items got rows and the update ran
    assert np.isfinite(model.score_items(list(model.user_ids_[:5]))).all()


# --------------------------------------------------------------- the settings
def out_of_range(constraint):
    """A value of the right type that ``constraint`` refuses (just past a bound)."""
    if isinstance(constraint, Seed):
        return -1
    if isinstance(constraint, Integer):
        return constraint.low - 1
    assert isinstance(constraint, Number), constraint
    if constraint.low > -np.inf:
        return constraint.low if constraint.low_open else constraint.low - 0.5
    return constraint.high if constraint.high_open else constraint.high + 0.5


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_declared_setting_refuses_a_bool_and_an_out_of_range_value(name, windows):
    cls = STRATEGIES[name]
    constraints = cls.constraints()
    assert set(constraints) == set(cls.param_names())  # every setting is declared
    cls().check_params()  # the defaults pass
    for setting, constraint in constraints.items():
        for bad in (True, out_of_range(constraint)):
            s = cls(**{setting: bad})
            with pytest.raises(ParameterError) as err:
                s.check_params()
            assert err.value.name == setting and err.value.value is bad
            assert f"'{setting}' must be {constraint.expected}; got {bad!r}" in str(err.value)
            with pytest.raises(ParameterError, match=f"'{setting}'"):
                s.start(factory("popularity"), windows[0])  # start checks them


def test_lifelong_bounds_are_the_documented_ones():
    ok = [
        {"replay_share": 0.0},
        {"replay_share": 0.999},
        {"drift_replay_share": 0},
        {"distill_weight": 0},
        {"ewc_weight": np.float32(2.5)},
        {"drift_epochs_factor": 1},
        {"replay_size": np.int64(1)},
        {"seed": None},
        {"seed": 0},
    ]
    for kwargs in ok:
        Lifelong(**kwargs).check_params()
    bad = [
        ("replay_share", None),
        ("replay_share", 1),
        ("drift_replay_share", float("nan")),
        ("distill_weight", float("inf")),
        ("drift_epochs_factor", 0.999),
        ("replay_size", 1.0),
        ("seed", 1.5),
    ]
    for name, value in bad:
        with pytest.raises(ParameterError) as err:
            Lifelong(**{name: value}).check_params()
        assert err.value.name == name


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_repr_and_clone_round_trip(name):
    cls = STRATEGIES[name]
    s = get_strategy(name, seed=5)
    twin = s.clone()
    assert type(twin) is cls and twin is not s and twin.get_params() == s.get_params()
    assert repr(twin) == repr(s)
    assert eval(repr(s), {cls.__name__: cls}).get_params() == s.get_params()
    assert not hasattr(twin, "model_")  # a clone has not started


def test_reservoir_settings_are_params():
    buf = ReservoirBuffer(np.int64(12), seed=3)
    assert buf.get_params() == {"capacity": 12, "seed": 3} and type(buf.capacity) is int
    assert repr(buf) == "ReservoirBuffer(capacity=12, seed=3)"
    buf.add(stream(5))
    twin = buf.clone()
    assert len(twin) == 0 and twin.get_params() == buf.get_params()
    for kwargs, name in [({"capacity": True}, "capacity"), ({"seed": -1}, "seed")]:
        with pytest.raises(ParameterError) as err:
            ReservoirBuffer(**kwargs)
        assert err.value.name == name


def test_a_drift_multiplies_the_budget_of_a_model_that_plans_its_passes(seq_windows):
    w0, w1, w2 = seq_windows
    s = Lifelong(replay_share=0.0, drift_epochs_factor=4.0)
    # without the catch-up floor, which the reaction leaves as it is
    model = s.start(seq_factory(partial_fit_epochs=None, partial_fit_catchup=0.0), w0)
    twin = copy.deepcopy(model)
    s.on_drift({"window": 1, "detections": [{}]})
    s.update(w1)
    b = model.partial_fit_budget
    assert model.update_plan_["budget"] == pytest.approx(4 * b) and b == 0.1
    assert s.reactions_[0]["partial_fit_budget"] == [b, pytest.approx(4 * b)]
    assert s.reactions_[0]["partial_fit_epochs"] is None
    twin.partial_fit(w1)  # the same update without the reaction
    assert twin.update_plan_["budget"] == b
    assert model.update_plan_["passes"] > twin.update_plan_["passes"]
    s.update(w2)  # the next update is an ordinary one again
    assert model.update_plan_["budget"] == b
    # the report says what the reaction did
    drift = {"detector": "page_hinkley", "params": {"signal": "ndcg@10"}, "detections": []}
    drift |= {"true_shift_timestamp": None, "reactions": s.reactions_}
    result = {"strategy": "lifelong", "model": "sequential", "n_windows": 3, "n_events": 9}
    result |= {"windows": [], "mean": {"recall@10": None, "ndcg@10": None}, "drift": drift}
    result |= {"bwt": {"windows": [], "recall@10": None, "ndcg@10": None}}
    result |= dict.fromkeys(
        ["total_update_seconds", "total_update_seconds_after_first", "total_update_cpu_seconds"],
        0.0,
    )
    report = prequential_report(result, 10)
    assert "reaction in the update of window 1: replay share 0.00 (0 events), " in report
    assert report.rstrip().endswith("partial_fit_budget 0.1 -> 0.4")
