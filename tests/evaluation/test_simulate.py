"""The closed-loop simulator: a seeded world, the shift, position bias and fatigue in the
users' reactions, common random numbers across strategies, the per-day report, the
command line and the errors."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lifelongrec._errors import ParameterError
from lifelongrec.cli import app
from lifelongrec.evaluation import (
    SIMULATION_LIFELONG,
    ClosedLoopWorld,
    SimulationSettings,
    gini,
    simulate,
    simulation_report,
)

SMALL = dict(n_users=120, n_items=80, n_categories=6, days=3, history_days=3, shift_day=2)


def world(**kw):
    return ClosedLoopWorld(SimulationSettings(**{**SMALL, **kw}))


def test_the_same_seed_makes_the_same_world_and_another_seed_another():
    a, b, c = world(), world(), world(seed=1)
    pd_a, pd_b = a.history().events, b.history().events
    assert pd_a.equals(pd_b) and len(pd_a) > 100
    assert not pd_a.equals(c.history().events)
    assert a.sessions(1) == b.sessions(1) != c.sessions(1)
    times = [t for t, _ in a.sessions(1)]
    assert times == sorted(times)


def test_the_shift_permutes_the_interests_of_the_shifting_users_only():
    w = world(shift_share=0.5)
    before, after = w.interest(1), w.interest(2)
    assert np.array_equal(before, w.interest(0))
    moved = w.shifted
    assert 0 < moved.sum() < len(moved)
    assert np.array_equal(after[~moved], before[~moved])
    # each shifted user's interest in category c is now their old interest in c's
    # neighbour of the permutation
    for c in range(w.settings.n_categories):
        np.testing.assert_allclose(after[moved][:, w.perm[c]], before[moved][:, c])
    none = world(shift_day=None)
    assert np.array_equal(none.interest(2), none.interest(0))


def test_browsing_follows_the_true_interests():
    w = world(n_users=1, sessions_per_day=30, organic_views=5, history_days=20, shift_day=None)
    events = w.history().events
    views = events[events["event_type"] == "view"]
    cats = w.item_category[[w.position[i] for i in views["item_id"]]]
    share = np.bincount(cats, minlength=w.settings.n_categories) / len(cats)
    top = int(np.argmax(w.interests[0]))
    assert share[top] == pytest.approx(w.interests[0, top], abs=0.08)


def test_only_items_that_have_arrived_are_browsed():
    w = world(new_items_per_day=5)
    for day in range(3):
        arrived = set(w.item_ids[w.items_on(day)])
        for n, (t, user) in enumerate(w.sessions(day)):
            assert {e[1] for e in w.browse(user, day, t, n)} <= arrived
    assert len(w.items_on(2)) == 80 + 3 * 5


def test_reactions_follow_position_bias_and_fatigue():
    # users who love every category equally, items of equal quality: only position
    # and fatigue decide
    w = world(position_bias=3.0, click_max=1.0, fatigue=1.0, n_categories=2, novelty_boost=0)
    w.interests[:] = 0.5
    w.item_quality[:] = 1e6
    items = [str(i) for i in w.item_ids[:10]]
    clicks_by_rank = np.zeros(10)
    for user in range(100):
        got = w.react(user, items, 0, 0, 0, {}, set())
        for e in got:
            if e[3] == "click":
                clicks_by_rank[items.index(e[1])] += 1
    assert clicks_by_rank[0] == 100  # always looked at, always clicked
    assert clicks_by_rank[1] < 30 and clicks_by_rank[5:].sum() < 5  # 2**-3, 6**-3 ...
    shown: dict = {}
    first = w.react(0, items[:1], 0, 0, 1, shown, set())
    again = w.react(0, items[:1], 0, 0, 2, shown, set())
    assert [e[3] for e in first][:1] == ["click"] and again == []  # fatigue 1: never twice
    assert shown[(0, items[0])] == 2


def test_gini_against_the_mean_absolute_difference():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=50).astype(float)
    mad = np.abs(x[:, None] - x[None, :]).mean()
    assert gini(x) == pytest.approx(mad / (2 * x.mean()))
    assert gini(np.zeros(4)) == 0.0 and gini(np.array([])) == 0.0


@pytest.fixture(scope="module")
def result():
    return simulate("popularity", settings=SimulationSettings(**SMALL))


def test_every_strategy_meets_the_same_users_and_the_report_adds_up(result):
    runs = result["strategies"]
    assert list(runs) == ["static", "lifelong", "retrain"]
    for day in range(3):
        rows = [runs[n]["days"][day] for n in runs]
        assert len({r["sessions"] for r in rows}) == 1  # common random numbers
        assert len({r["active_users"] for r in rows}) == 1
        for r in rows:
            assert r["impressions"] <= 10 * r["sessions"]
            assert r["ctr"] == pytest.approx(r["clicks"] / r["impressions"])
            assert 0 < r["coverage"] <= 1 and 0 <= r["exposure_gini"] <= 1
            assert r["purchases_per_user"] == pytest.approx(r["purchases"] / r["active_users"])
    assert runs["static"]["summary"]["after_shift"]["ctr"] == pytest.approx(
        runs["static"]["days"][2]["ctr"]
    )
    text = simulation_report(result)
    assert "static: mean CTR" in text and "from day 2" in text
    json.dumps(result)  # JSON-ready


def test_day_zero_is_the_same_for_every_strategy(result):
    # all start from the same fit and the same world: identical until they learn
    days = [r["days"][0] for r in result["strategies"].values()]
    assert len({(d["clicks"], d["impressions"], d["coverage"]) for d in days}) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_a_model_that_learns_daily_finds_the_new_items_a_frozen_one_cannot(seed):
    # many new items a day that users like far more while new: factors refit every day
    # place them, those of the history cannot
    s = SimulationSettings(
        **{**SMALL, "n_users": 600, "days": 4, "shift_day": None, "seed": seed},
        new_items_per_day=30,
        novelty_boost=20.0,
    )
    out = simulate("als", settings=s, strategies=["static", "retrain"])
    ctr = {n: r["summary"]["ctr"] for n, r in out["strategies"].items()}
    assert ctr["retrain"] > 1.1 * ctr["static"]


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"n_users": 0}, "n_users"),
        ({"shift_share": 1.5}, "shift_share"),
        ({"click_max": -0.1}, "click_max"),
        ({"sessions_per_day": 0}, "sessions_per_day"),
    ],
)
def test_bad_world_settings_are_refused_by_name(kw, name):
    with pytest.raises(ParameterError, match=name):
        ClosedLoopWorld(SimulationSettings(**{**SMALL, **kw}))


def test_unknown_or_no_strategies_are_refused():
    with pytest.raises(ParameterError, match="strategies"):
        simulate("popularity", settings=SimulationSettings(**SMALL), strategies=[])
    with pytest.raises(ParameterError):
        simulate("popularity", settings=SimulationSettings(**SMALL), strategies=["magic"])


def test_the_command_line_runs_it_and_writes_json_and_a_plot(tmp_path):
    png = tmp_path / "sim.png"
    args = ["simulate", "--model", "popularity", "--users", "60", "--items", "40"]
    args += ["--days", "2", "--shift-day", "1", "--world", "n_categories=4", "--json"]
    r = CliRunner().invoke(app, [*args, "--plot", str(png)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["settings"]["n_categories"] == 4 and out["settings"]["n_users"] == 60
    assert png.stat().st_size > 10_000
    bad = CliRunner().invoke(app, [*args[:-1], "--world", "position_bias=-1"])
    assert bad.exit_code == 2 and "position_bias" in bad.output
    bad = CliRunner().invoke(app, [*args, "--plot", str(tmp_path / "x.jpg")])
    assert bad.exit_code == 2 and ".png" in bad.output


def test_lifelong_distils_by_default_where_the_model_can():
    # the simulator's lifelong settings apply as far as the model has them
    assert simulate("popularity", settings=SimulationSettings(**SMALL))["lifelong"] == {}
    tiny = {"epochs": 1, "dim": 16, "n_heads": 1, "n_layers": 1, "text_encoder": None}
    s = SimulationSettings(**{**SMALL, "n_users": 40, "days": 1, "shift_day": None})
    out = simulate("sequential", tiny, s, ["lifelong"])
    assert out["lifelong"] == SIMULATION_LIFELONG == {"distill_weight": 1.0}
    mine = simulate("sequential", tiny, s, ["lifelong"], lifelong={"replay_share": 0.5})
    assert mine["lifelong"] == {"replay_share": 0.5}  # given settings replace them
