"""The sequential model's default update recipe: each update takes the passes that spend
``partial_fit_budget`` of a refit's estimated compute, or more when its new events are a
large part of what a refit trains on (``partial_fit_catchup``; models/sequential/_budget.py)."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
from test_sequential import TINY

from lifelongrec import ParameterError
from lifelongrec.models import Recommender, SequentialRecommender
from lifelongrec.models.sequential._budget import (
    MAX_PASSES,
    CostModel,
    budget_passes,
    catchup_share,
    refit_shape,
    shrink_factor,
)
from lifelongrec.nn import training_windows


def _later(world, n, seed=0):
    """``n`` of the world's events again, after its last one."""
    ev = world.events.sample(n, random_state=seed).copy()
    ev["timestamp"] = int(world.events["timestamp"].max()) + 1 + np.arange(n)
    return ev


def _update_passes(model, n_update=None):
    n = model.n_updates_ if n_update is None else n_update
    return Counter(h["update"] for h in model.history_)[n]


def test_refit_shape_counts_what_training_windows_builds():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 40, size=60)
    users = np.repeat(np.arange(len(lengths)), lengths)
    n = len(users)
    items = rng.integers(1, 50, size=n)
    zeros = np.zeros(n, dtype=np.int64)
    for max_len, n_windows in ((8, 1), (8, 3), (5, 10), (50, 1)):
        w = training_windows(
            users, items, zeros, zeros, zeros - 1, np.ones(n, np.float32), max_len, n_windows
        )
        targets = int(((w.target_items > 0) & (w.target_weight > 0)).sum())
        assert refit_shape(lengths, max_len, n_windows) == (len(w), targets)


def test_pass_cost_grows_with_each_term():
    m = CostModel(dim=16, n_layers=2, ffn_mult=1, content_dim=32, n_scored=100, batch_size=8)
    base = m.pass_flops(16, 8, 50)
    assert m.pass_flops(32, 8, 50) > base  # more windows (and batches)
    assert m.pass_flops(16, 16, 50) > base  # longer windows
    assert m.pass_flops(16, 8, 51) - base == 100 * 16  # one target scores 100 items
    wider = CostModel(dim=16, n_layers=2, ffn_mult=1, content_dim=64, n_scored=100, batch_size=8)
    assert wider.pass_flops(16, 8, 50) > base  # wider content
    assert budget_passes(1.0, 10.0**9, 1.0) == MAX_PASSES
    assert budget_passes(0.1, 10.0, 0.0) == 1


def test_updates_take_the_passes_their_budget_buys(fitted, world):
    m = copy.deepcopy(fitted)
    assert m.partial_fit_epochs is None and m.partial_fit_budget == 0.1
    assert m.partial_fit_catchup == 0.6
    assert m.update_plan_ is None
    m.partial_fit(_later(world, 30))
    plan = m.update_plan_
    assert plan["budget"] == 0.1 and plan["pass_flops"] > 0 and plan["refit_flops"] > 0
    # the refit's targets: every user's events but the first, at most max_len each
    lengths = np.diff(m.user_items_.indptr)
    targets = refit_shape(lengths, TINY["max_len"], 1)[1]
    share = max(0.1, 0.6 * 30 / targets)
    assert plan["share"] == pytest.approx(share)
    expected = max(1, min(MAX_PASSES, round(share * plan["refit_flops"] / plan["pass_flops"])))
    assert plan["passes"] == expected == _update_passes(m)
    # the refit: the fit's epochs (validation off) over every user's windows
    fit_epochs = _update_passes(m, 0)
    assert fit_epochs == TINY["epochs"]
    per_epoch = plan["refit_flops"] / fit_epochs
    assert per_epoch >= targets * m.n_items * TINY["dim"]


def test_catchup_trains_new_events_that_are_a_large_part_of_a_refit_harder(world):
    # a fit on few events, then as many new ones: the new events are half of a refit
    events = world.events.sort_values("timestamp", kind="stable")
    first, later = events.iloc[:150], events.iloc[150:300]
    plans = {}
    for catchup in (0.0, 0.7, 1.4):
        m = SequentialRecommender(**{**TINY, "partial_fit_catchup": catchup}).fit(first)
        m.partial_fit(later)
        plans[catchup] = m.update_plan_
    assert plans[0.0]["share"] == plans[0.0]["budget"] == 0.1  # off: the budget decides
    assert plans[0.7]["share"] > 0.1 and plans[1.4]["share"] > plans[0.7]["share"]
    assert plans[0.0]["passes"] < plans[0.7]["passes"] < plans[1.4]["passes"]
    # the same module shapes: the passes differ by the share alone
    assert plans[0.0]["refit_flops"] == plans[0.7]["refit_flops"] == plans[1.4]["refit_flops"]


def test_catchup_share_is_the_new_events_part_of_the_refit():
    assert catchup_share(0.7, 300, 1000) == pytest.approx(0.21)
    assert catchup_share(0.7, 3000, 1000) == pytest.approx(0.7)  # at most all of it
    assert catchup_share(0.0, 300, 1000) == 0.0
    assert catchup_share(0.7, 0, 1000) == 0.0


def test_a_small_window_is_trained_harder_and_a_larger_budget_buys_more(fitted, world):
    plans = {}
    for n in (3, 30, 150):
        m = copy.deepcopy(fitted)
        m.partial_fit_catchup = 0.0  # the budget alone
        m.partial_fit(_later(world, n))
        plans[n] = m.update_plan_
    assert plans[3]["passes"] >= plans[30]["passes"] >= plans[150]["passes"] >= 1
    assert plans[3]["passes"] > plans[150]["passes"]
    assert plans[3]["pass_flops"] < plans[30]["pass_flops"] < plans[150]["pass_flops"]
    more = copy.deepcopy(fitted)
    more.partial_fit_catchup = 0.0
    more.partial_fit(_later(world, 30), budget=0.5)
    assert more.update_plan_["budget"] == 0.5
    assert more.update_plan_["passes"] > plans[30]["passes"]
    assert more.partial_fit_budget == 0.1  # the hyperparameter stays


def test_the_same_update_plans_the_same_passes(world):
    a = SequentialRecommender(**TINY).fit(world).partial_fit(_later(world, 30))
    b = SequentialRecommender(**TINY).fit(world).partial_fit(_later(world, 30))
    assert a.update_plan_ == b.update_plan_
    np.testing.assert_array_equal(a.score_items(["auser0"]), b.score_items(["auser0"]))


def test_fixed_epochs_and_the_epochs_argument_come_before_the_budget(fitted, world):
    fixed = SequentialRecommender(**{**TINY, "partial_fit_epochs": 3}).fit(world)
    fixed.partial_fit(_later(world, 30))
    assert (
        fixed.update_plan_ == {"passes": 3, "budget": None, "window": 8, "shrink": 1.0}
        and _update_passes(fixed) == 3
    )
    fixed.partial_fit(_later(world, 30, seed=1), budget=0.3)  # an explicit budget wins
    assert fixed.update_plan_["budget"] == 0.3
    m = copy.deepcopy(fitted).partial_fit(_later(world, 30), epochs=1)
    plan = {"passes": 1, "budget": None, "window": 8, "shrink": 1.0}  # fixed passes: no shrink
    assert m.update_plan_ == plan and _update_passes(m) == 1


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), "0.1", True])
def test_a_bad_budget_argument_is_refused(fitted, world, bad):
    m = copy.deepcopy(fitted)
    with pytest.raises(ParameterError, match="'budget'"):
        m.partial_fit(_later(world, 5), budget=bad)
    assert m.n_updates_ == 0  # nothing learned


def test_the_plan_is_saved_with_the_model(fitted, world, tmp_path):
    m = copy.deepcopy(fitted).partial_fit(_later(world, 30))
    m.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.update_plan_ == m.update_plan_
    # the loaded model plans its next update as the original does
    loaded.partial_fit(_later(world, 10, seed=2))
    m.partial_fit(_later(world, 10, seed=2))
    assert loaded.update_plan_ == m.update_plan_


def test_training_flops_are_what_the_plan_and_the_fit_windows_say(world):
    from lifelongrec.models.sequential._budget import cost_model
    from lifelongrec.nn import training_flops

    f0 = training_flops()
    m = SequentialRecommender(**TINY).fit(world)
    # the fit (validation off): its epochs over one window per user, computed here from
    # the events per user, independently of the model's own windows
    lengths = world.events.groupby("user_id").size().to_numpy()
    n_windows, n_targets = refit_shape(lengths, TINY["max_len"], 1)
    content = m.module_.item_tower.content
    cost = cost_model(m.get_params(), m.n_items, 0 if content is None else content.shape[1])
    fit = TINY["epochs"] * cost.pass_flops(n_windows, TINY["max_len"], n_targets)
    assert m.train_gflops_ == pytest.approx(fit / 1e9)
    assert training_flops() - f0 == pytest.approx(fit)  # the process-wide count
    per_epoch = fit / 1e9 / TINY["epochs"]
    assert [h["est_gflops"] for h in m.history_] == [pytest.approx(per_epoch)] * TINY["epochs"]
    # an update adds the passes its plan chose at the cost the plan estimated
    before, f1 = m.train_gflops_, training_flops()
    m.partial_fit(_later(world, 30))
    plan = m.update_plan_
    spent = plan["passes"] * plan["pass_flops"]
    assert m.train_gflops_ - before == pytest.approx(spent / 1e9)
    assert training_flops() - f1 == pytest.approx(spent)
    m.fit(world)  # a new fit starts the model's own count again
    assert m.train_gflops_ == pytest.approx(fit / 1e9)


def test_the_training_flop_count_refuses_what_is_not_a_count():
    from lifelongrec.nn import add_training_flops, training_flops

    before = training_flops()
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="expected flops >= 0"):
            add_training_flops(bad)
    add_training_flops(0)
    assert training_flops() == before


def test_the_shrink_factor_follows_the_share_an_update_spends():
    plan = {"passes": 4, "budget": 0.1, "pass_flops": 5.0, "refit_flops": 200.0}  # 0.1
    assert shrink_factor(0.5, plan) == pytest.approx(0.5)
    assert shrink_factor(0.5, {**plan, "passes": 2}) == pytest.approx(0.5**0.5)  # half
    assert shrink_factor(0.5, {**plan, "passes": 12}) == pytest.approx(0.5)  # catch-up
    assert shrink_factor(1.0, plan) == 1.0


def test_an_update_shrinks_the_weights_before_it_trains(fitted, world):
    """With a learning rate too small to move anything, what an update leaves is its
    shrink: every weight times ``update_plan_["shrink"]``, the buffers as they were."""
    m = copy.deepcopy(fitted)
    assert m.partial_fit_shrink == 0.8  # the default
    m.partial_fit_shrink, m.lr, m.weight_decay = 0.5, 1e-12, 0.0
    # the second update's passes stop at the most an update may take, short of its budget
    for n, budget, shrunk in ((30, None, 0.5), (2, 2.0, None)):
        before = {k: v.clone() for k, v in m.module_.state_dict().items()}
        m.partial_fit(_later(world, n, seed=n), budget=budget)
        plan = m.update_plan_
        spent = plan["passes"] * plan["pass_flops"] / plan["refit_flops"]
        expected = 0.5 ** min(1.0, spent / plan["budget"])
        assert plan["shrink"] == pytest.approx(expected)
        if shrunk is not None:
            assert expected == pytest.approx(shrunk)
        else:
            assert plan["passes"] == MAX_PASSES and 0.5 < expected < 0.999
        weights = dict(m.module_.named_parameters())
        for name, value in m.module_.state_dict().items():
            factor = plan["shrink"] if name in weights else 1.0
            np.testing.assert_allclose(value, factor * before[name], rtol=1e-5, atol=1e-7)
    fixed = copy.deepcopy(fitted)
    fixed.partial_fit_shrink = 0.5
    fixed.partial_fit(_later(world, 30), epochs=2)
    assert fixed.update_plan_["shrink"] == 1.0
