"""TransitionDrift (do the older windows' item-to-next-item counts still hold?) and the
lifelong strategy's replay share that follows it (``replay_drift_power``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lifelongrec import ParameterError
from lifelongrec.data import make_events, time_windows
from lifelongrec.models import get_model
from lifelongrec.training import Lifelong, TransitionDrift

#: Per window, the chance that a step walks backwards: forwards, then half, then mostly
#: backwards, then forwards again.
BACKWARDS = [0.0, 0.0, 0.0, 0.5, 0.9, 0.0]


def chains(seed: int = 0) -> pd.DataFrame:
    """50 users walk over 30 items, 10 steps a window: item x is followed by one of
    x+1..x+5 (mod 30), or of x-1..x-5 with the window's chance in :data:`BACKWARDS`; at
    most 10 distinct successors per item, so every table's top 10 holds all it has seen
    (no ties to break)."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    position = rng.integers(0, 30, size=50)
    for w, backwards in enumerate(BACKWARDS):
        for step in range(10):
            for u in range(50):
                sign = -1 if rng.random() < backwards else 1
                position[u] = (position[u] + sign * rng.integers(1, 6)) % 30
                users.append(f"u{u}")
                items.append(f"i{position[u]}")
                times.append(1_000 * w + 50 * step + u)
    return make_events(users, items, times)


def independent_ratios(events: pd.DataFrame, n_windows: int, benchmark_module) -> list:
    with benchmark_module("transition_drift") as td:
        windows = time_windows(events, n_windows)
        pairs = td.window_pairs(windows)
        out: list = [None, None]
        for t in range(2, n_windows):
            latest = td.hit_rate(td.successors(pairs[t - 1 : t]), pairs[t])
            older = td.hit_rate(td.successors(pairs[: t - 1]), pairs[t])
            out.append(latest / older)
    return out


def test_ratios_match_the_benchmark_s_independent_count(benchmark_module):
    events = chains()
    drift = TransitionDrift()
    got = [drift.observe(w) for w in time_windows(events, 6)]
    want = independent_ratios(events, 6, benchmark_module)
    assert got[:2] == [None, None] and drift.ratios_ == got
    np.testing.assert_allclose(got[2:], want[2:], rtol=1e-12)
    # windows 2 and 3: every earlier window walked forwards (window 3 half of it does);
    # window 4 walks backwards, which only the latest window (3) did; window 5 forwards,
    # which the latest (4) seldom did
    assert got[2] == pytest.approx(1.0, abs=0.1) and got[3] == pytest.approx(1.0, abs=0.15)
    assert got[4] > 3 and got[5] < 0.5


def test_a_window_s_first_event_follows_the_user_s_last_one_of_an_earlier_window():
    ev = make_events(["u", "u", "v", "u", "v"], ["a", "b", "x", "c", "x"], [1, 2, 3, 10, 11])
    early, late = ev.iloc[:3], ev.iloc[3:]
    drift = TransitionDrift(top=1)
    drift.observe(early)
    drift.observe(make_events(["u"], ["a"], [5]))  # b -> a: a cross-window pair
    drift.observe(make_events(["u"], ["b"], [6]))  # a -> b: the older windows' pair
    # u: b -> c, which neither table holds; v: x -> x (the same item: no pair)
    assert drift.observe(late) is None and drift.ratios_ == [None, None, 0.0, None]


def test_max_pairs_keeps_the_most_frequent_older_pairs():
    def run(max_pairs: int) -> float | None:
        drift = TransitionDrift(max_pairs=max_pairs)
        # older: a -> b three times, c -> d once; latest: c -> d; then the new window
        drift.observe(make_events([1, 1, 2, 2, 3, 3, 4, 4], list("abababcd"), range(8)))
        drift.observe(make_events([9, 9], ["c", "d"], [10, 11]))
        return drift.observe(make_events([8, 8], ["c", "d"], [20, 21]))

    assert run(1_000_000) == 1.0  # both tables hold c -> d
    assert run(1) == math.inf  # the older counts kept a -> b only


@pytest.mark.parametrize(("name", "value"), [("top", 0), ("max_pairs", 1.5), ("top", None)])
def test_bad_settings_are_refused(name, value):
    with pytest.raises(ParameterError) as err:
        TransitionDrift(**{name: value})
    assert err.value.name == name


def test_lifelong_replays_less_where_the_order_changed():
    windows = time_windows(chains(), 6)
    share = 0.25

    def run(**kwargs) -> Lifelong:
        s = Lifelong(replay_size=10_000, replay_share=share, **kwargs)
        s.start(lambda: get_model("popularity"), windows[0])
        for w in windows[1:]:
            s.update(w)
        return s

    plain, power = run(replay_drift_power=0), run()  # off, and the default (2)
    ratios = power.transitions_.ratios_[1:]  # one per update
    assert plain.transitions_.ratios_ == power.transitions_.ratios_
    assert plain.replay_shares_ == [share] * 5
    want = [share * r**-2.0 if r is not None and r > 1 else share for r in ratios]
    assert power.replay_shares_ == pytest.approx(want)
    assert want[3] < share / 9  # window 4: the latest counts walk backwards, the older not
    n = [len(w) for w in windows[1:]]
    assert power.n_replayed_ == [
        math.floor(m * s / (1 - s) + 0.5) for m, s in zip(n, want, strict=True)
    ]
    # a drift reaction's share is scaled too
    s = Lifelong(replay_share=share, replay_drift_power=2.0)
    s.start(lambda: get_model("popularity"), windows[0])
    for t, w in enumerate(windows[1:], start=1):
        if t == 4:
            s.on_drift({"window": 4, "detections": []})
        s.update(w)
    assert s.replay_shares_[3] == pytest.approx(want[3] / 2)
    assert s.reactions_[0]["replay_share"] == pytest.approx(want[3] / 2)


@pytest.mark.parametrize("value", [-0.5, float("nan"), "2", None])
def test_replay_drift_power_bad_values(value):
    with pytest.raises(ParameterError) as err:
        Lifelong(replay_drift_power=value).check_params()
    assert err.value.name == "replay_drift_power"


def test_max_pairs_also_bounds_the_users_remembered():
    def ratio(max_pairs: int) -> float | None:
        drift = TransitionDrift(max_pairs=max_pairs)
        drift.observe(make_events(["p", "p", "q", "q"], list("abxz"), range(4)))  # a->b, x->z
        drift.observe(make_events(["u", "v", "w"], list("axy"), [5, 6, 7]))  # no pairs
        # u and v go on: with room for three users remembered, u's a -> b and v's x -> z;
        # with room for two (v and w, the latest seen), only x -> z
        drift.observe(make_events(["u", "v"], list("bz"), [8, 9]))
        # the older windows predict both of this window's pairs, the latest window one or two
        return drift.observe(make_events(["s", "s", "t", "t"], list("abxz"), range(10, 14)))

    assert ratio(3) == pytest.approx(1.0)
    assert ratio(2) == pytest.approx(0.5)
