"""tune(): hyperparameter search on validation events (Optuna, optional), and its errors."""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pytest

from lifelongrec import DataError, ParameterError
from lifelongrec.data import leave_one_out, make_events
from lifelongrec.evaluation import evaluate_window
from lifelongrec.models import EASE, ItemKNN
from lifelongrec.registry import (
    DEFAULT_SPACES,
    parse_space,
    split_freshest,
    tune,
    validation_score,
)


def test_public_names_exist():
    import lifelongrec.registry as registry

    for name in registry.__all__:
        assert hasattr(registry, name), name


def test_three_trials_on_recent_data(stream):
    pytest.importorskip("optuna")
    space = {"l2": (1.0, 1000.0, "log")}
    out = tune("ease", stream, space, n_trials=3, recent=600, holdout_share=0.2, seed=3)
    assert out["model"] == "ease" and out["metric"] == "ndcg@10"
    assert len(out["trials"]) == 4  # the starting point, then 3 trials
    assert out["trials"][0]["params"] == {} and out["default_params"] == EASE().get_params()
    assert all(1.0 <= t["params"]["l2"] <= 1000.0 for t in out["trials"][1:])
    assert out["best_value"] == max(t["value"] for t in out["trials"])
    assert out["improved"] == (out["best_value"] > out["default_value"])
    assert (out["n_train"], out["n_validation"]) == (480, 120)
    # an independent evaluation of the winner on the same split gives the same figure
    latest = stream.events.iloc[-600:]
    older, fresh = split_freshest(latest, 0.2)
    model = EASE(**out["best_params"]).fit(stream.with_events(older))
    assert evaluate_window(model, fresh, latest, 10)["ndcg@10"] == pytest.approx(out["best_value"])
    # seeded: the same settings are tried again
    again = tune("ease", stream, space, n_trials=3, recent=600, holdout_share=0.2, seed=3)
    assert [t["params"] for t in again["trials"]] == [t["params"] for t in out["trials"]]


def test_default_space_and_a_template_model(stream):
    pytest.importorskip("optuna")
    template = ItemKNN(k_neighbors=20)
    out = tune(template, stream.events, n_trials=2, metric="recall@5", seed=0)
    assert out["default_params"]["k_neighbors"] == 20
    assert set(out["trials"][1]["params"]) == set(DEFAULT_SPACES["itemknn"])
    assert isinstance(out["trials"][1]["params"]["k_neighbors"], int)
    assert not template.is_fitted


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"model": "nope"}, "model"),
        ({"model": 3}, "model"),
        ({"space": {"alpha": (1, 2)}}, "space"),
        ({"space": {}}, "space"),
        ({"space": {"l2": (5.0, 1.0)}}, "space['l2']"),
        ({"space": {"l2": (0.0, 1.0, "log")}}, "space['l2']"),
        ({"space": {"l2": (1.0, 2.0, "exp")}}, "space['l2']"),
        ({"space": {"l2": []}}, "space['l2']"),
        ({"space": {"l2": 5.0}}, "space['l2']"),
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": True}, "n_trials"),
        ({"metric": "auc"}, "metric"),
        ({"recent": 1}, "recent"),
        ({"recent": True}, "recent"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"seed": -1}, "seed"),
        ({"seed": None}, "seed"),
        ({"seed": False}, "seed"),
        ({"holdout_share": 1.5}, "holdout_share"),
        ({"model": "hybrid", "space": None}, "space"),
    ],
)
def test_bad_arguments(stream, kwargs, name):
    pytest.importorskip("optuna")
    args = {"model": "ease", "space": {"l2": (1.0, 10.0)}, "n_trials": 1, **kwargs}
    with pytest.raises(ParameterError, match=re.escape(repr(name))):
        tune(args.pop("model"), stream, args.pop("space"), **args)


def test_bad_data():
    pytest.importorskip("optuna")
    with pytest.raises(DataError):
        tune("ease", [("u", "i", 1)], n_trials=1)


def test_without_optuna_the_error_says_how_to_install(stream, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now fails
    with pytest.raises(ImportError, match=r"lifelongrec\[tune\]"):
        tune("ease", stream, n_trials=1)


# ------------------------------------------------------------- leave-one-out protocol
class _Spy(ItemKNN):
    """ItemKNN that records the (user, item) pairs of every fit."""

    seen: list = []

    def fit(self, data, *args, **kwargs):
        ev = data.events if hasattr(data, "events") else data
        _Spy.seen.append(
            set(zip(ev["user_id"].astype(str), ev["item_id"].astype(str), strict=True))
        )
        return super().fit(data, *args, **kwargs)


def _independent_ndcg(model, train, valid, k):
    """NDCG@k of ``valid``, one event at a time, from the user's train and earlier valid
    events (a direct loop, no batching, no rounds)."""
    gains = []
    order = {u: 0 for u in valid["user_id"]}
    for _, row in valid.iterrows():
        u = row["user_id"]
        earlier = valid[valid["user_id"] == u].iloc[: order[u]]
        order[u] += 1
        history = pd.concat([train[train["user_id"] == u], earlier])
        if row["item_id"] not in set(model.item_ids_):
            gains.append(0.0)
            continue
        scores = model.score_histories(u, history, exclude_seen=True)
        col = list(model.item_ids_).index(row["item_id"])
        rank = int((scores > scores[col]).sum() + (scores[:col] == scores[col]).sum())
        gains.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
    return float(np.mean(gains))


def test_loo_protocol_never_fits_or_scores_a_test_event(stream):
    pytest.importorskip("optuna")
    _Spy.seen = []
    reported = []
    out = tune(_Spy(), stream, n_trials=2, protocol="loo", n_valid=2, on_trial=reported.append)
    assert reported == out["trials"]  # each trial as it ends, the starting point first
    split = leave_one_out(stream, n_valid=2)
    test = set(zip(split.test.events["user_id"], split.test.events["item_id"], strict=True))
    assert len(_Spy.seen) == 3 and all(not (fit & test) for fit in _Spy.seen)
    assert out["protocol"] == "loo" and out["n_left_out"] == len(test)
    assert (out["n_train"], out["n_validation"]) == (len(split.train), len(split.valid))
    assert out["n_train"] + out["n_validation"] + out["n_left_out"] == len(stream.events)
    # the figure is each validation event ranked from its user's earlier events
    best = ItemKNN(**out["best_params"]).fit(split.train)
    expected = _independent_ndcg(best, split.train.events, split.valid.events, 10)
    assert out["best_value"] == pytest.approx(expected)


def test_validation_score_sees_events_of_the_same_second():
    train = make_events(["a", "a", "b", "b", "b"], ["x", "y", "x", "y", "z"], [5] * 5)
    valid = make_events(["a", "a", "b"], ["z", "w", "q"], [5, 5, 5])
    model = ItemKNN().fit(train)
    out = validation_score(model, train, valid, k=1)
    # a's x and y (same second) are its history: z, b's next item after x and y, is first
    assert out["recall@1"] == pytest.approx(1 / 3) and out["n_unknown_items"] == 2
    assert (out["n_events"], out["n_users"], out["n_rounds"]) == (3, 2, 2)
    assert out["ndcg@1"] == pytest.approx(_independent_ndcg(model, train, valid, 1))
    empty = validation_score(model, train, valid.iloc[:0], k=1)
    assert empty["ndcg@1"] is None and empty["n_rounds"] == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"protocol": "temporal"}, "protocol"),
        ({"protocol": "loo", "n_valid": 0}, "n_valid"),
        ({"protocol": "loo", "n_valid": 1.5}, "n_valid"),
    ],
)
def test_bad_loo_arguments(stream, kwargs, name):
    pytest.importorskip("optuna")
    with pytest.raises(ParameterError, match=re.escape(repr(name))):
        tune("itemknn", stream, n_trials=1, **kwargs)


def test_loo_needs_users_with_three_events():
    pytest.importorskip("optuna")
    two_each = make_events(["a", "a", "b", "b"], ["x", "y", "x", "z"], [1, 2, 3, 4])
    with pytest.raises(DataError, match="no validation events"):
        tune("itemknn", two_each, n_trials=1, protocol="loo")
    with pytest.raises(DataError, match="cannot tune"):
        tune("itemknn", [("u", "i", 1)], n_trials=1, protocol="loo")


def test_parse_space():
    text = '{"dim": [32, null], "lr": {"low": 0.001, "high": 0.1, "log": true}, "x": {"low": 1, "high": 2}}'
    assert parse_space(text) == {"dim": [32, None], "lr": (0.001, 0.1, "log"), "x": (1, 2)}
    assert parse_space(None) is None
    for bad, where in [
        ("{", "--space"),
        ("[1, 2]", "--space"),
        ('{"lr": 3}', "--space['lr']"),
        ('{"lr": {"low": 1}}', "--space['lr']"),
        ('{"lr": {"low": 1, "high": 2, "step": 1}}', "--space['lr']"),
        ('{"lr": {"low": 1, "high": 2, "log": "yes"}}', "--space['lr'].log"),
    ]:
        with pytest.raises(ParameterError, match=re.escape(repr(where))):
            parse_space(bad)


def test_every_default_space_names_valid_settings():
    from lifelongrec.models import MODELS

    for name, space in DEFAULT_SPACES.items():
        cls = MODELS[name]
        assert set(space) <= set(cls.param_names()), name
        for param, spec in space.items():
            values = spec if isinstance(spec, list) else spec[:2]
            for value in values:  # every choice and both ends of a range are accepted
                cls(**{param: value}).check_params()
