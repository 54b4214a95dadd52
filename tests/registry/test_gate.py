"""PromotionGate: hand-computed figures, tolerance (absolute and relative), min_events,
real models (a degraded challenger is rejected, a better one promoted), bad settings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lifelongrec import DataError, ParameterError
from lifelongrec.data import make_events
from lifelongrec.evaluation import evaluate_window
from lifelongrec.models import EASE, ItemKNN, Popularity
from lifelongrec.registry import GateDecision, PromotionGate

L3 = 1.0 / math.log2(3)  # NDCG of a hit in the second place

# Popularity fitted on X_EVENTS ranks x (3 events) before y (1); on Y_EVENTS y before x.
X_EVENTS = make_events(["a", "b", "b", "c"], ["x", "x", "y", "x"], [1, 2, 3, 4])
Y_EVENTS = make_events(["a", "b", "b", "c"], ["y", "y", "x", "y"], [1, 2, 3, 4])
# Held out: two new users, each with no history before their event: ranked by popularity.
# d:y is a hit at rank 1 for the x-model (NDCG 1/log2 3), rank 0 for the y-model (NDCG 1);
# e:z is on an item neither model knows: a miss for both.
HOLDOUT = make_events(["d", "e"], ["y", "z"], [5, 6])
HISTORY = pd.concat([X_EVENTS, HOLDOUT], ignore_index=True)


@pytest.fixture(scope="module")
def x_model():
    return Popularity().fit(X_EVENTS)


@pytest.fixture(scope="module")
def y_model():
    return Popularity().fit(Y_EVENTS)


def test_hand_computed_figures(x_model, y_model):
    d = PromotionGate("ndcg@2").decide(x_model, y_model, HOLDOUT, HISTORY)
    assert isinstance(d, GateDecision)
    assert d.champion_value == pytest.approx(L3 / 2)
    assert d.challenger_value == pytest.approx(1.0 / 2)
    assert d.promoted and d.n_events == 2 and d.threshold == pytest.approx(L3 / 2)
    assert d.challenger_metrics["n_unknown_items"] == 1
    assert "promoted" in d.reason and "ndcg@2" in d.reason
    # the other way round the worse model is rejected
    d = PromotionGate("ndcg@2").decide(y_model, x_model, HOLDOUT, HISTORY)
    assert not d.promoted and "rejected" in d.reason
    assert (d.champion_value, d.challenger_value) == pytest.approx((0.5, L3 / 2))


def test_ties_are_promoted(x_model, y_model):
    # Recall@2 is 1/2 for both (d:y in the top 2 of both, e:z missed by both).
    for metric in ("recall@2", "hr@2"):
        d = PromotionGate(metric).decide(y_model, x_model, HOLDOUT, HISTORY)
        assert d.champion_value == d.challenger_value == pytest.approx(0.5)
        assert d.promoted


@pytest.mark.parametrize(
    ("tolerance", "relative", "promoted"),
    [
        # champion 0.5, challenger L3/2 = 0.3155: a shortfall of 0.1845 (36.9%)
        (0.18, False, False),
        (0.19, False, True),
        (0.36, True, False),
        (0.37, True, True),
        (0.19, True, False),  # 0.5 * (1 - 0.19) = 0.405 > 0.3155
    ],
)
def test_tolerance_absolute_and_relative(x_model, y_model, tolerance, relative, promoted):
    gate = PromotionGate("ndcg@2", tolerance=tolerance, relative=relative)
    d = gate.decide(y_model, x_model, HOLDOUT, HISTORY)
    expected_bar = 0.5 * (1 - tolerance) if relative else 0.5 - tolerance
    assert d.threshold == pytest.approx(expected_bar)
    assert d.promoted is promoted
    assert d.tolerance == tolerance and d.relative is relative


def test_without_a_champion_the_challenger_is_promoted_and_evaluated(x_model):
    d = PromotionGate("ndcg@2").decide(None, x_model, HOLDOUT, HISTORY)
    assert d.promoted and d.champion_value is None and d.threshold is None
    assert d.challenger_value == pytest.approx(L3 / 2)
    assert d.reason == "no champion yet"


def test_too_few_events_keeps_the_champion(x_model, y_model):
    gate = PromotionGate("ndcg@2", min_events=3)
    d = gate.decide(x_model, y_model, HOLDOUT, HISTORY)
    assert not d.promoted and d.challenger_value is None and d.n_events == 2
    assert "min_events=3" in d.reason
    d = gate.decide(None, y_model, HOLDOUT, HISTORY)
    assert d.promoted and "no champion" in d.reason


@pytest.mark.parametrize("min_events, decided", [(1, True), (2, True), (3, False), (10, False)])
def test_min_events_boundary(x_model, y_model, min_events, decided):
    """HOLDOUT has 2 events: the gate decides at min_events <= 2 and not above."""
    gate = PromotionGate("ndcg@2", min_events=min_events)
    d = gate.decide(x_model, y_model, HOLDOUT, HISTORY)
    assert d.decided is decided and d.n_events == 2
    assert (d.challenger_value is None) is (not decided)
    assert (gate.shortfall(HOLDOUT) is None) is decided


def test_a_degenerate_slice_keeps_the_champion_undecided(x_model, y_model):
    """A slice from too few distinct users or on too few items decides nothing: every
    model that ranks its one item first scores NDCG 1.0 there, so "not worse" would
    promote anything."""
    burst = make_events(["d"] * 4, ["y"] * 4, [6, 7, 8, 9])
    gate = PromotionGate("ndcg@2", min_users=2)
    assert gate.shortfall(burst) == (
        "the held-out slice has 1 distinct users, fewer than min_users=2"
    )
    d = gate.decide(x_model, y_model, burst, HISTORY)
    assert not d.promoted and not d.decided and d.challenger_value is None
    assert "min_users=2" in d.reason
    gate = PromotionGate("ndcg@2", min_items=2)
    assert "min_items=2" in gate.shortfall(burst)
    assert gate.shortfall(HOLDOUT) is None
    d = gate.decide(None, y_model, burst, HISTORY)
    assert d.promoted and not d.decided and "no champion" in d.reason
    assert PromotionGate("ndcg@2").decide(x_model, y_model, HOLDOUT, HISTORY).decided


def test_decision_is_json_data(x_model, y_model):
    import json

    d = PromotionGate("ndcg@2").decide(x_model, y_model, HOLDOUT, HISTORY)
    back = json.loads(json.dumps(d.to_dict()))
    assert back["promoted"] is True and back["metric"] == "ndcg@2"
    assert back["champion_metrics"]["ndcg@2"] == pytest.approx(L3 / 2)


# ---------------------------------------------------------------- real models
def test_a_degraded_challenger_is_rejected_and_a_better_one_promoted(split, scrambled):
    train, holdout, history = split
    champion = ItemKNN().fit(train)
    degraded = ItemKNN().fit(scrambled)  # user-item links destroyed
    gate = PromotionGate("ndcg@10")
    d = gate.decide(champion, degraded, holdout, history)
    assert not d.promoted
    assert d.challenger_value < d.champion_value
    # the figures are those of the prequential protocol's per-event evaluation
    assert d.champion_value == evaluate_window(champion, holdout, history, 10)["ndcg@10"]
    assert d.n_events == len(holdout)
    better = gate.decide(degraded, EASE(l2=10.0).fit(train), holdout, history)
    assert better.promoted and better.challenger_value > better.champion_value
    weaker = gate.decide(champion, Popularity().fit(train), holdout, history)
    assert not weaker.promoted


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"metric": "ndcg"}, "metric"),
        ({"metric": "map@10"}, "metric"),
        ({"metric": "ndcg@0"}, "metric"),
        ({"metric": 10}, "metric"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"tolerance": "0.1"}, "tolerance"),
        ({"tolerance": 1.5, "relative": True}, "tolerance"),
        ({"relative": "yes"}, "relative"),
        ({"min_events": 0}, "min_events"),
        ({"min_events": 2.0}, "min_events"),
        ({"min_users": 0}, "min_users"),
        ({"min_users": True}, "min_users"),
        ({"min_items": -1}, "min_items"),
        ({"min_items": "3"}, "min_items"),
    ],
)
def test_bad_settings(x_model, kwargs, name):
    gate = PromotionGate(**kwargs)
    with pytest.raises(ParameterError, match=repr(name)):
        gate.decide(None, x_model, HOLDOUT, HISTORY)


def test_bad_models_and_data(x_model):
    gate = PromotionGate("ndcg@2")
    with pytest.raises(ParameterError, match="'challenger'"):
        gate.decide(x_model, Popularity(), HOLDOUT, HISTORY)
    with pytest.raises(ParameterError, match="'champion'"):
        gate.decide("v000001", x_model, HOLDOUT, HISTORY)
    with pytest.raises(DataError, match="held-out events"):
        gate.decide(x_model, x_model, [("d", "y", 5)], HISTORY)
    with pytest.raises(DataError, match="lacks required columns"):
        gate.decide(x_model, x_model, HOLDOUT.drop(columns="timestamp"), HISTORY)
    with pytest.raises(DataError):
        gate.decide(x_model, x_model, HOLDOUT, "history.csv")


def test_repr_and_params():
    gate = PromotionGate("recall@5", tolerance=0.01, relative=True, min_events=20)
    assert gate.get_params() == {
        "metric": "recall@5",
        "tolerance": 0.01,
        "relative": True,
        "min_events": 20,
        "min_users": 1,
        "min_items": 1,
    }
    assert repr(gate).startswith("PromotionGate(metric='recall@5'")
    assert gate.validate() == ("recall", 5)
    twin = eval(repr(gate), {"PromotionGate": PromotionGate})
    assert twin.get_params() == gate.get_params() == gate.clone().get_params()
    gate.check_params()
    assert PromotionGate(tolerance=1.5).validate() == ("ndcg", 10)  # absolute: any >= 0
    PromotionGate(relative=np.bool_(True), tolerance=1, min_items=np.int64(2)).check_params()
    with pytest.raises(ParameterError) as err:
        PromotionGate(min_users=True).validate()
    assert str(err.value) == "parameter 'min_users' must be an integer >= 1; got True"
