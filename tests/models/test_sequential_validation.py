"""The sequential model's early-stopping validation set: each user's last events held out,
each ranked from every event before it (earlier held-out events as inputs, never targets)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from lifelongrec.models import SequentialRecommender
from lifelongrec.models.sequential._windows import MAX_VALIDATION_USERS, fit_windows


def _events(lengths, oov=()):
    """Events of users 0.. with ``lengths`` events each; item rows 1.. count up globally
    (``oov``: global indices given item row 0)."""
    user = np.repeat(np.arange(len(lengths)), lengths)
    n = len(user)
    item = np.arange(1, n + 1)
    item[list(oov)] = 0
    return {
        "user": user,
        "item": item,
        "ts": 1_000 + 10 * np.arange(n),
        "type": np.zeros(n, np.int64),
        "gap": np.arange(n) % 5,
        "target_type": np.zeros(n, np.int64),
    }


def _build(ev, n_items, m, max_len=4):
    n_users = int(ev["user"].max()) + 1
    seen = sp.csr_matrix(
        (np.ones(len(ev["item"])), (ev["user"], ev["item"])), shape=(n_users, n_items + 1)
    )[:, 1:]
    cats = sp.csr_matrix((n_items, 1))
    rng = np.random.default_rng(0)
    return fit_windows(ev, n_users, seen.tocsr(), cats, max_len, 1, True, rng, m)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_held_out_events_and_their_inputs(m):
    lengths = [1, 2, 3, 6]
    ev = _events(lengths)
    windows, val = _build(ev, len(ev["item"]), m)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    expected = {}  # (user, target row) -> input items (right-aligned, width 4)
    for u, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        for k in range(min(m, n - 1)):  # the k-th event from the end
            t = s + n - 1 - k
            before = list(ev["item"][s:t])[-4:]
            expected[(u, ev["item"][t] - 1)] = [0] * (4 - len(before)) + before
    got = {int(t): items.tolist() for t, items in zip(val.targets, val.items, strict=True)}
    assert {t: i for (_, t), i in expected.items()} == got
    assert len(val) == len(expected)
    # each held-out event's time (the item-age bias is read at it) and its training
    # windows' target times are the events' own
    np.testing.assert_array_equal(val.target_ts, ev["ts"][val.targets])
    has = windows.target_items > 0
    np.testing.assert_array_equal(windows.target_ts[has], ev["ts"][windows.target_items[has] - 1])
    # the held-out events are no training target; every other event but a first is
    held = {t + 1 for (_, t) in expected}
    targets = set(windows.target_items[windows.target_items > 0].tolist())
    firsts = set((starts + 1).tolist())
    assert targets == set(range(1, len(ev["item"]) + 1)) - held - firsts
    # each row's seen cells are its user's items (the ranking leaves them out but the target)
    rows, cols = val.seen
    for row, target in enumerate(val.targets):
        u = next(u for (u, t) in expected if t == target)
        mine = sorted(cols[rows == row].tolist())
        assert mine == list(range(starts[u], starts[u] + lengths[u]))


def test_an_out_of_vocabulary_event_is_no_validation_target():
    ev = _events([5], oov=[4])  # the last event's item has no row
    _, val = _build(ev, 5, 2)
    assert val.targets.tolist() == [3]  # the fourth event (item row 4) only
    assert val.items.tolist() == [[0, 1, 2, 3]]


def test_more_users_than_the_sample_keep_their_events():
    n = MAX_VALIDATION_USERS + 50
    ev = _events([3] * n)
    windows, val = _build(ev, 3 * n, 2)
    assert len(val) == 2 * MAX_VALIDATION_USERS  # two events of each sampled user
    assert int((windows.target_items > 0).sum()) == 2 * n - 2 * MAX_VALIDATION_USERS


def test_several_validation_events_in_a_fit(world):
    tiny = {"dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 10, "epochs": 2}
    tiny |= {"text_encoder": None, "verbose": False}
    one = SequentialRecommender(**tiny, validation_events=1).fit(world)
    three = SequentialRecommender(**tiny, validation_events=3).fit(world)
    users = world.events.groupby("user_id").size()
    n1 = int((users >= 2).sum())
    n3 = int(np.minimum(users - 1, 3).clip(0).sum())
    assert one.head_metrics_["next_item"]["n_users"] == n1 <= len(users)
    assert three.head_metrics_["next_item"]["n_users"] == n3 > n1
    with pytest.raises(ValueError, match="validation_events"):
        SequentialRecommender(validation_events=0).check_params()


def test_one_event_per_user_samples_the_users_it_always_did():
    # validation_events=1 keeps the seeded sample of earlier releases: the users of
    # rng.choice over the held-out events' indices (so default figures do not move)
    n = MAX_VALIDATION_USERS + 7
    ev = _events([2] * n)
    _, val = _build(ev, 2 * n, 1)
    last = np.flatnonzero(np.r_[ev["user"][1:] != ev["user"][:-1], True])
    picked = np.random.default_rng(0).choice(last, MAX_VALIDATION_USERS, replace=False)
    assert val.targets.tolist() == sorted((ev["item"][picked] - 1).tolist())


def test_the_data_choose_the_windows_per_user(world, tmp_path):
    from lifelongrec.models import Recommender
    from lifelongrec.models.sequential._params import data_windows

    tiny = {"dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 5, "epochs": 1}
    tiny |= {"text_encoder": None, "verbose": False, "validation": False}
    lengths = world.events.groupby("user_id").size().to_numpy()
    targets = np.maximum(lengths - 1, 0)
    chosen = SequentialRecommender(**tiny, n_windows=None).fit(world)
    k = chosen.n_windows_
    assert k == data_windows(lengths, 5) > 1  # this world's users outgrow one window
    covered = np.minimum(targets, 5 * k).sum()
    assert covered >= 0.9 * targets.sum() > np.minimum(targets, 5 * (k - 1)).sum()
    # the same fit as asking for those windows, and a fixed setting is recorded as is
    fixed = SequentialRecommender(**tiny, n_windows=k).fit(world)
    assert fixed.n_windows_ == k
    assert chosen.history_[0]["next_item"] == pytest.approx(fixed.history_[0]["next_item"])
    chosen.save(tmp_path / "m")
    assert Recommender.load(tmp_path / "m").n_windows_ == k


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [
        ([30] * 943, 3),  # 943, 1,886, 2,829 events for 1, 2, 3 per user
        ([30] * 1000, 2),  # 2,000 with two
        ([30] * 2000, 1),
        ([2] * 800, 3),  # each user holds one at most: never 2,000, so the most
        ([6] * 20_000, 1),  # 10,000 of them ranked
        ([1] * 5000, 3),  # nobody can hold one out
    ],
)
def test_the_validation_events_rule(lengths, expected):
    from lifelongrec.models.sequential._params import VALIDATION_TARGET, data_validation_events

    assert VALIDATION_TARGET == 2000
    assert data_validation_events(lengths) == expected


def test_the_data_choose_the_validation_events(world, tmp_path):
    from lifelongrec.models import Recommender
    from lifelongrec.models.sequential._params import data_validation_events

    tiny = {"dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 10, "epochs": 1}
    tiny |= {"text_encoder": None, "verbose": False}
    users = world.events.groupby("user_id").size()
    chosen = SequentialRecommender(**tiny).fit(world)  # the default: None
    k = chosen.validation_events_
    assert k == data_validation_events(users.to_numpy())
    # independently: the fewest of 1-3 per user that give 2,000 events (fewer than
    # 10,000 users here, so no sampling), else 3
    held = [int(np.minimum(users - 1, j).clip(0).sum()) for j in (1, 2, 3)]
    assert k == next((j for j, n in zip((1, 2, 3), held, strict=True) if n >= 2000), 3)
    assert chosen.head_metrics_["next_item"]["n_users"] == held[k - 1]
    fixed = SequentialRecommender(**tiny, validation_events=2).fit(world)
    assert fixed.validation_events_ == 2
    chosen.save(tmp_path / "m")
    assert Recommender.load(tmp_path / "m").validation_events_ == k
