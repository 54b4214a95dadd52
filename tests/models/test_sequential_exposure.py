"""Exposure-aware updates: impressions a user skipped become negatives of what the user
did next (``exposure_weight``), checked piece by piece against hand computations and
end to end on the two-group world."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from test_sequential import TINY, two_worlds

from lifelongrec import DataError
from lifelongrec.data import Dataset, make_events
from lifelongrec.models import SequentialRecommender
from lifelongrec.models.sequential._exposure import exposure_lists, waiting
from lifelongrec.nn import concat_windows, exposure_loss, training_windows


# ------------------------------------------------------------------ the loss
def test_exposure_loss_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    user, pos = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    skipped = torch.randn(3, 2, 4, generator=g)
    valid = torch.tensor([[True, False], [True, True], [False, False]])
    weight = torch.tensor([1.0, 0.5, 2.0])
    got = float(exposure_loss(user, pos, skipped, valid, weight))
    u, p, s = user.numpy(), pos.numpy(), skipped.numpy()
    num = den = 0.0
    for r in range(3):
        for k in range(2):
            if valid[r, k]:
                diff = float(u[r] @ s[r, k] - u[r] @ p[r])
                num += float(weight[r]) * np.log1p(np.exp(diff))
                den += float(weight[r])
    assert got == pytest.approx(num / den, rel=1e-5)


def test_exposure_loss_without_valid_pairs_is_zero_and_keeps_the_graph():
    user = torch.randn(2, 3, requires_grad=True)
    out = exposure_loss(
        user, torch.randn(2, 3), torch.randn(2, 1, 3), torch.zeros(2, 1, dtype=bool)
    )
    assert float(out.detach()) == 0.0
    out.backward()  # a batch without exposures still back-propagates
    assert user.grad is not None and float(user.grad.abs().sum()) == 0.0


def test_exposure_loss_falls_as_the_target_rises_above_the_skipped():
    user = torch.tensor([[1.0, 0.0]])
    skipped = torch.tensor([[[0.5, 0.0]]])
    valid = torch.ones(1, 1, dtype=bool)
    low = exposure_loss(user, torch.tensor([[0.0, 0.0]]), skipped, valid)
    high = exposure_loss(user, torch.tensor([[3.0, 0.0]]), skipped, valid)
    assert float(high) < float(low)


# --------------------------------------------------------------- the windows
def test_training_windows_carry_each_targets_exposures():
    # user 0: events at items 1, 2, 3; user 1: items 4, 5 (shifted rows)
    users = np.array([0, 0, 0, 1, 1])
    items = np.array([1, 2, 3, 4, 5])
    zeros = np.zeros(5, dtype=np.int64)
    exposed = np.zeros((5, 2), dtype=np.int64)
    exposed[2] = [7, 8]  # skipped before user 0's third event
    exposed[4] = [9, 0]  # and before user 1's second
    w = training_windows(users, items, zeros, zeros, zeros, np.ones(5), 3, 1, None, exposed)
    assert w.target_exposed is not None and w.target_exposed.shape == (2, 3, 2)
    for row in range(2):
        for col in range(3):
            target = w.target_items[row, col]
            want = exposed[int(np.flatnonzero(items == target)[0])] if target else [0, 0]
            assert w.target_exposed[row, col].tolist() == list(want)
    assert sorted(w.target_exposed[w.target_exposed > 0].tolist()) == [7, 8, 9]


def test_stacking_windows_pads_exposures_and_fills_parts_without():
    users, items = np.array([0, 0, 0]), np.array([1, 2, 3])
    zeros = np.zeros(3, dtype=np.int64)
    exposed = np.array([[0], [0], [6]])
    a = training_windows(users, items, zeros, zeros, zeros, np.ones(3), 3, 1, None, exposed)
    b = training_windows(users, items, zeros, zeros, zeros, np.ones(3), 3, 1)
    assert b.target_exposed is None
    both = concat_windows(a, b)
    assert both.target_exposed.shape == (2, 3, 1)
    assert both.target_exposed[0].ravel().tolist() == [0, 0, 6]
    assert not both.target_exposed[1].any()
    assert concat_windows(b, b).target_exposed is None


# ------------------------------------------------------------ the skip lists
def _merged(users, items, ts):
    return {"user": np.array(users), "item": np.array(items), "ts": np.array(ts)}


def test_exposure_lists_tie_skips_to_the_next_event_and_leave_out_what_was_acted_on():
    # user u0 (row 0): events on items i0 (t=10), i1 (t=20), i2 (t=30); u1 (row 1): i0 at 15
    merged = _merged([0, 0, 0, 1], [1, 2, 3, 1], [10, 20, 30, 15])
    users, items = {"u0": 0, "u1": 1}, {"i0": 0, "i1": 1, "i2": 2, "i3": 3, "i4": 4}
    shown = pd.DataFrame(
        {
            "user_id": ["u0", "u0", "u0", "u0", "u0", "u1", "u1", "ghost", "u0"],
            "item_id": ["i3", "i1", "i4", "i3", "i2", "i3", "i4", "i3", "nope"],
            "timestamp": [12, 12, 12, 25, 25, 5, 16, 12, 12],
        }
    )
    out, counts = exposure_lists(shown, merged, users, items)
    # u0 at 12: i3 and i4 skipped, i1 acted on at 20 -> tied to the event at t=20 (index 1)
    # u0 at 25: i3 skipped (again), i2 acted on at 30 -> tied to t=30 (index 2)
    # u1 at 5: i3 skipped -> its event at 15 (index 3); u1 at 16: no event after -> left out
    assert counts == {"impressions": 9, "known": 7, "skipped": 5, "used": 4}
    assert sorted(out[1][out[1] > 0].tolist()) == [4, 5]  # shifted rows of i3, i4
    assert out[2][out[2] > 0].tolist() == [4]
    assert out[3][out[3] > 0].tolist() == [4]
    assert not out[0].any()


class _GetOnly(dict):
    """An id index that may only be asked id by id: a lookup that reads it whole (what
    ``Series.map(dict)`` does, a second per online step at a million items, holding the
    GIL while the service's requests wait) fails the test."""

    def __iter__(self):
        raise AssertionError("the whole index was read")

    keys = items = values = __iter__


def test_exposure_lookups_follow_the_impressions_not_the_catalogue():
    merged = _merged([0, 0, 0, 1], [1, 2, 3, 1], [10, 20, 30, 15])
    users = _GetOnly({"u0": 0, "u1": 1} | {f"x{j}": 2 + j for j in range(100)})
    items = _GetOnly(
        {"i0": 0, "i1": 1, "i2": 2, "i3": 3, "i4": 4} | {f"y{j}": 5 + j for j in range(100)}
    )
    shown = pd.DataFrame(
        {
            "user_id": ["u0", "u0", "u0", "u0", "u0", "u1", "u1", "ghost", "u0"],
            "item_id": ["i3", "i1", "i4", "i3", "i2", "i3", "i4", "i3", "nope"],
            "timestamp": [12, 12, 12, 25, 25, 5, 16, 12, 12],
        }
    )
    out, counts = exposure_lists(shown, merged, users, items)
    assert counts == {"impressions": 9, "known": 7, "skipped": 5, "used": 4}  # as with dicts
    assert sorted(out[1][out[1] > 0].tolist()) == [4, 5]
    kept = waiting(shown, merged, users)
    # kept for a later step: u1's impression at 16 (no event after it) and the ghost's
    assert kept.index.tolist() == [6, 7]


def test_exposure_lists_keep_the_latest_and_drop_repeats():
    merged = _merged([0], [1], [100])
    items = {f"i{j}": j for j in range(30)}
    shown = pd.DataFrame(
        {
            "user_id": ["u"] * 26,
            "item_id": [f"i{j}" for j in range(1, 26)] + ["i25"],
            "timestamp": list(range(1, 26)) + [3],
        }
    )
    out, counts = exposure_lists(shown, merged, {"u": 0}, items, max_exposed=5)
    assert out.shape == (1, 5)
    assert out[0].tolist() == [26, 25, 24, 23, 22]  # the latest first, i25 once
    assert counts["used"] == 5


def _list_frame(rows, request_ids=None, ranks=None):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    if request_ids is not None:
        frame["request_id"] = request_ids
    if ranks is not None:
        frame["rank"] = ranks
    return frame


@pytest.mark.parametrize("form", ["order", "rank", "request"])
def test_skip_above_keeps_what_was_passed_over_on_the_way_to_an_action(form):
    # u (row 0) is shown i1..i4 at t=10 and acts on i3 (rank 3) at t=11; shown i5, i6 at
    # t=20 and acts on neither; the next event after that is i7 at t=30
    merged = _merged([0, 0, 0], [3, 8, 8], [11, 30, 31])
    items = {f"i{j}": j - 1 for j in range(1, 9)}
    rows = [("u", f"i{j}", 10) for j in (1, 2, 3, 4)] + [("u", f"i{j}", 20) for j in (5, 6)]
    ranks = [1, 2, 3, 4, 1, 2]
    if form == "order":
        frame = _list_frame(rows)
    elif form == "rank":  # rows out of rank order: the rank column decides
        order = [3, 1, 0, 2, 4, 5]
        frame = _list_frame([rows[j] for j in order], ranks=[ranks[j] for j in order])
    else:  # two lists at the same time told apart by their request ids
        rows[4:] = [("u", f"i{j}", 10) for j in (5, 6)]
        frame = _list_frame(rows, request_ids=["r1"] * 4 + ["r2"] * 2, ranks=ranks)
    out, counts = exposure_lists(frame, merged, {"u": 0}, items, above=True)
    assert counts["skipped"] == 2  # i1, i2 (above i3); i4 below it; the second list none
    assert sorted(out[0][out[0] > 0].tolist()) == [1, 2]  # shifted rows of i1, i2
    every, _ = exposure_lists(frame, merged, {"u": 0}, items)
    assert sorted(every[every > 0].tolist()) == [1, 2, 4, 5, 6]


def test_exposure_lists_without_skips_give_none():
    merged = _merged([0], [1], [10])
    shown = pd.DataFrame({"user_id": ["u"], "item_id": ["i0"], "timestamp": [5]})
    out, counts = exposure_lists(shown, merged, {"u": 0}, {"i0": 0})
    assert out is None and counts["skipped"] == 0


# ------------------------------------------------------------- the impressions
@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ([1, 2], "impressions are not a DataFrame"),
        (pd.DataFrame({"user_id": ["u"], "item_id": ["i"]}), "lacks required columns"),
        (
            pd.DataFrame({"user_id": [None], "item_id": ["i"], "timestamp": [1]}),
            "row 0 has no user_id",
        ),
        (
            pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i", "i"], "timestamp": [1, 1.5]}),
            "row 1 has a timestamp that is no whole number",
        ),
        (
            pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": ["soon"]}),
            "row 0 has a timestamp",
        ),
    ],
)
def test_bad_impressions_are_refused_with_what_was_wrong(frame, message):
    events = make_events(["u"], ["i"], [1])
    with pytest.raises(DataError, match=message):
        Dataset(events, impressions=frame)


# ------------------------------------------------------------------ end to end
def _update_data(world, seed=0):
    """A window of new events in the two-group world and impressions: every a-user is
    shown the b-items (which they never act on) before each of their new events."""
    rng = np.random.default_rng(seed)
    ev = world.events
    t0 = int(ev["timestamp"].max())
    users = sorted(set(ev["user_id"]))
    rows, shown = [], []
    for n, u in enumerate(users):
        g = u[0]
        for j in range(3):
            t = t0 + 1000 * (n * 3 + j + 1)
            rows.append((u, f"{g}{int(rng.integers(0, 10))}", t))
            if g == "a":
                shown += [(u, f"b{b}", t - 1) for b in range(3)]
    new = make_events(*zip(*rows, strict=True))
    return new, pd.DataFrame(shown, columns=["user_id", "item_id", "timestamp"])


def test_skipped_items_fall_for_the_users_who_skipped_them(world):
    base = SequentialRecommender(**{**TINY, "epochs": 10}).fit(world)
    new, shown = _update_data(world)
    scores = {}
    for weight in (0.0, 5.0):
        model = copy.deepcopy(base)
        model.exposure_weight, model.exposure_negatives = weight, "shown"  # no clicks here
        model.partial_fit(Dataset(new, world.items, impressions=shown), epochs=5)
        a_users = sorted({u for u in new["user_id"] if u.startswith("a")})
        scores[weight] = model.score_items(a_users, ["b0", "b1", "b2"]).mean()
        if weight > 0:
            assert model.exposure_counts_["used"] == len(shown)
            assert model.history_[-1]["exposure"] > 0
        else:
            assert "exposure" not in model.history_[-1]
    assert scores[5.0] < scores[0.0]


def test_with_the_weight_at_zero_impressions_change_nothing(world):
    base = SequentialRecommender(**{**TINY, "epochs": 5, "exposure_weight": 0.0}).fit(world)
    new, shown = _update_data(world)
    plain, seen = copy.deepcopy(base), copy.deepcopy(base)
    plain.partial_fit(Dataset(new, world.items), epochs=2)
    seen.partial_fit(Dataset(new, world.items, impressions=shown), epochs=2)
    users = sorted(set(new["user_id"]))
    np.testing.assert_array_equal(plain.user_vectors(users), seen.user_vectors(users))


def test_a_fit_ignores_impressions():
    world = two_worlds(n_users=8)
    shown = pd.DataFrame({"user_id": ["auser0"], "item_id": ["b1"], "timestamp": [1]})
    small = {**TINY, "epochs": 2, "exposure_weight": 1.0}
    a = SequentialRecommender(**small).fit(world)
    b = SequentialRecommender(**small).fit(Dataset(world.events, world.items, impressions=shown))
    users = sorted(set(world.events["user_id"]))
    np.testing.assert_array_equal(a.user_vectors(users), b.user_vectors(users))


# ------------------------------------------------------------- online steps
def _online_model(world):
    model = SequentialRecommender(
        **{**TINY, "epochs": 3, "exposure_weight": 1.0, "exposure_negatives": "shown"}
    )
    return model.fit(world)


def test_online_steps_learn_from_observed_impressions_and_keep_those_still_waiting(world):
    model = _online_model(world)
    t0 = int(world.events["timestamp"].max()) + 100
    shown = pd.DataFrame(
        {
            "user_id": ["auser0"] * 3 + ["auser2"] * 2,
            "item_id": ["b1", "b2", "a5", "b3", "b4"],
            "timestamp": [t0] * 3 + [t0 + 50] * 2,
        }
    )
    model.observe_impressions(shown)
    # auser0 acts on a5 after being shown it; auser2 does nothing after its impressions
    model.observe(make_events(["auser0", "auser2"], ["a5", "a6"], [t0 + 1, t0 + 10]))
    out = model.online_step()
    assert out["exposure"] > 0
    assert model.exposure_counts_ == {"impressions": 5, "known": 5, "skipped": 4, "used": 2}
    # auser2's impressions waited: its next event ties them to a target
    model.observe(make_events(["auser2"], ["a7"], [t0 + 60]))
    model.online_step()
    assert model.exposure_counts_ == {"impressions": 2, "known": 2, "skipped": 2, "used": 2}
    # nothing waits any more: a step without impressions keeps the last counts
    model.observe(make_events(["auser2"], ["a8"], [t0 + 70]))
    assert "exposure" not in model.online_step()
    assert model.exposure_counts_["used"] == 2


def test_an_erased_users_waiting_impressions_are_dropped(world):
    model = _online_model(world)
    t0 = int(world.events["timestamp"].max()) + 100
    shown = pd.DataFrame(
        {"user_id": ["auser0", "buser1"], "item_id": ["b1", "a1"], "timestamp": [t0, t0]}
    )
    model.observe_impressions(shown)
    assert model.forget_users(["auser0"]) == ["auser0"]
    model.observe(make_events(["auser0", "buser1"], ["a2", "b2"], [t0 + 5, t0 + 5]))
    model.online_step()
    assert model.exposure_counts_["impressions"] == 1  # buser1's only


def test_impressions_are_kept_only_when_the_model_learns_from_them(world):
    model = SequentialRecommender(**{**TINY, "epochs": 2, "exposure_weight": 0.0}).fit(world)
    t0 = int(world.events["timestamp"].max()) + 100
    model.observe_impressions(
        pd.DataFrame({"user_id": ["auser0"], "item_id": ["b1"], "timestamp": [t0]})
    )
    model.exposure_weight = 1.0  # turned on after the impressions came: they were not kept
    model.observe(make_events(["auser0"], ["a2"], [t0 + 5]))
    out = model.online_step()
    assert "exposure" not in out
    with pytest.raises(DataError, match="lacks required columns"):
        model.observe_impressions(pd.DataFrame({"user_id": ["auser0"]}))


def test_a_batch_without_weighted_targets_but_with_exposures_trains(world):
    """A mini-batch whose windows carry exposures but no position with a weighted
    target (all held out, say) once failed to reshape the skipped items' vectors."""
    from lifelongrec.nn import MultiTaskLoss, TrainConfig

    model = SequentialRecommender(**{**TINY, "epochs": 1}).fit(world)
    module = model.module_
    config = TrainConfig(
        epochs=1,
        batch_size=2,
        lr=0.01,
        weight_decay=0.0,
        grad_clip=0.0,
        patience=1,
        full_softmax=True,
        n_negatives=4,
        task_weights={"next_item": 1.0},
        exposure_weight=3.0,
    )
    n_items = len(model.item_ids_)
    loss = MultiTaskLoss(module, config, None, torch.full((n_items,), 1.0 / n_items))
    L = int(TINY["max_len"])
    items = torch.zeros((2, L), dtype=torch.int64)
    items[:, -3:] = torch.tensor([1, 2, 3])
    batch = {
        "items": items,
        "types": torch.zeros((2, L), dtype=torch.int64),
        "gaps": torch.zeros((2, L), dtype=torch.int64),
        "target_items": items.roll(-1, 1),
        "target_types": torch.full((2, L), -1),
        "target_weight": torch.zeros((2, L)),  # no target counts
        "target_exposed": torch.ones((2, L, 9), dtype=torch.int64),
    }
    module.train()
    total, parts = loss(batch)
    assert parts["exposure"] == 0.0 and torch.isfinite(total)
