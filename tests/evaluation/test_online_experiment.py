"""Online experiments in the closed-loop world: sticky assignment, a clearly worse
challenger stopped and a better one found by both designs, what the result counts."""

import numpy as np
import pytest

from lifelongrec._errors import ParameterError
from lifelongrec.evaluation import ClosedLoopWorld, SimulationSettings
from lifelongrec.evaluation._online_experiment import assign_arm, run_experiment
from lifelongrec.models import get_model

WORLD = dict(
    n_users=800,
    n_items=300,
    n_categories=10,
    days=4,
    history_days=7,
    shift_day=None,
    new_items_per_day=0,
)


@pytest.fixture(scope="module")
def rankers():
    s = SimulationSettings(**WORLD)
    history = ClosedLoopWorld(s).history()
    return s, get_model("als").fit(history), get_model("popularity").fit(history)


def test_assignment_is_sticky_balanced_and_salted():
    users = [f"u{j}" for j in range(4_000)]
    first = [assign_arm(u, "exp-1") for u in users]
    assert first == [assign_arm(u, "exp-1") for u in users]
    assert abs(first.count("b") / len(users) - 0.5) < 0.03
    other = [assign_arm(u, "exp-2") for u in users]
    agree = np.mean([x == y for x, y in zip(first, other, strict=True)])
    assert 0.45 < agree < 0.55  # independent of the first experiment
    assert [assign_arm(u, "x", share_b=0.0) for u in users[:50]] == ["a"] * 50


@pytest.mark.parametrize("design", ["ab", "interleave"])
def test_a_worse_challenger_is_stopped_and_a_better_one_found(rankers, design):
    s, good, bad = rankers
    worse = run_experiment(good, bad, s, design)
    assert worse["decision"] == "a" and worse["effect"] < 0 and worse["p_value"] <= 0.05
    better = run_experiment(bad, good, s, design)
    assert better["decision"] == "b" and better["effect"] > 0
    assert worse["impressions"] <= 10 * worse["requests"]
    if design == "ab":
        assert worse["requests_a"] + worse["requests_b"] == worse["requests"]
        assert worse["clicks_per_request_a"] > worse["clicks_per_request_b"]
    else:
        assert worse["wins_a"] > worse["wins_b"]
        assert worse["wins_a"] + worse["wins_b"] + worse["ties"] == worse["requests"]


def test_the_same_ranker_twice_runs_to_the_end_without_a_decision(rankers):
    s, good, _ = rankers
    # both propose every item: nothing to credit
    out = run_experiment(good, good, s, "interleave")
    assert out["decision"] is None and out["day"] == s.days - 1
    assert out["wins_a"] == out["wins_b"] == 0 and out["ties"] == out["requests"] > 0
    # the original team draft: one list, its items alternately credited to the two
    # copies, so clicks split evenly
    out = run_experiment(good, good, s, "interleave", neutral=False)
    assert out["decision"] is None and out["day"] == s.days - 1
    assert abs(out["wins_a"] - out["wins_b"]) < 0.25 * (out["wins_a"] + out["wins_b"])


def test_an_unknown_design_is_refused(rankers):
    s, good, bad = rankers
    with pytest.raises(ParameterError, match="design"):
        run_experiment(good, bad, s, "multi-armed")
