"""The sequential model's anti-forgetting updates: replay, distillation, EWC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sequential import TINY, two_worlds

from lifelongrec.data import Dataset, make_events
from lifelongrec.models import Recommender, SequentialRecommender


def split_world():
    """The two-group world, and an update in which only a-users act (b-users are the
    ones an update may make the model forget)."""
    world = two_worlds(n_users=24, n_items=10, length=8)
    ev = world.events
    t0 = int(ev["timestamp"].max())
    users = [f"auser{u}" for u in range(0, 24, 2)] * 3
    items = [f"a{(u + j) % 10}" for j in range(3) for u in range(12)]
    update = make_events(users, items, list(range(t0 + 1, t0 + 1 + len(users))), "view")
    return world, Dataset(events=update, items=world.items)


def b_scores(model):
    b_users = [f"buser{u}" for u in range(1, 24, 2)]
    return model.score_items(b_users)


def fitted(**kw):
    world, update = split_world()
    params = {**TINY, "partial_fit_epochs": 6, **kw}
    return SequentialRecommender(**params).fit(world), world, update


def drift(**kw) -> float:
    """How far an update moves the next-item distribution of users who took no part in
    it: mean KL(before || after) of the softmax over the catalogue."""
    model, _, update = fitted(**kw)
    before = torch.log_softmax(torch.as_tensor(b_scores(model), dtype=torch.float64), -1)
    model.partial_fit(update)
    after = torch.log_softmax(torch.as_tensor(b_scores(model), dtype=torch.float64), -1)
    return float((before.exp() * (before - after)).sum(-1).mean())


def test_distillation_keeps_absent_users_closer_to_before():
    assert drift(distill_weight=5.0) < 0.9 * drift()


def test_ewc_keeps_absent_users_closer_to_before():
    assert drift(ewc_weight=10.0) < 0.5 * drift()


def test_replay_rehearses_without_rewriting_histories():
    model, world, update = fitted()
    twin, _, _ = fitted()
    past = world.events[world.events["user_id"].str.startswith("b")].iloc[::4]
    model.partial_fit(update, replay=past)
    twin.partial_fit(update)
    for key in model.user_histories_:  # the replayed events are not appended a second time
        np.testing.assert_array_equal(model.user_histories_[key], twin.user_histories_[key])
    assert model.n_replayed_ == len(past)
    # rehearsal changed what was learned
    assert not np.allclose(b_scores(model), b_scores(twin))


def test_replay_skips_unknown_ids_and_falls_back_to_the_stored_window():
    model, world, update = fitted()
    past = world.events.iloc[[0, 1]].copy()
    past.loc[past.index[0], "timestamp"] = -5  # no longer in the stored window
    unknown = make_events(["nobody"], ["a1"], [3])
    import pandas as pd

    model.partial_fit(update, replay=pd.concat([past, unknown], ignore_index=True))
    # the unknown user is skipped; both known events anchor in the same user's window:
    # the exact one and the fallback (its last stored event) are distinct windows
    assert model.n_replayed_ == 2


def test_ewc_state_survives_save_and_load(tmp_path):
    model, _, update = fitted(ewc_weight=10.0)
    back = Recommender.load(model.save(tmp_path / "m"))
    for name, f in model.ewc_.fisher.items():
        torch.testing.assert_close(back.ewc_.fisher[name], f)
        torch.testing.assert_close(back.ewc_.anchor[name], model.ewc_.anchor[name])
    model.partial_fit(update)
    back.partial_fit(update)
    np.testing.assert_allclose(b_scores(back), b_scores(model), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"ewc_weight": 1.0}, {"distill_weight": 1.0}])
def test_updates_repeat_with_the_same_seed(kw):
    a, _, update = fitted(**kw)
    b, _, _ = fitted(**kw)
    a.partial_fit(update)
    b.partial_fit(update)
    np.testing.assert_allclose(b_scores(a), b_scores(b), rtol=1e-6, atol=1e-6)


def trained_windows(monkeypatch) -> list:
    """The windows every later ``_train`` call receives (it still trains), in order."""
    seen: list = []
    # the windows trained on are not returned by partial_fit: a spy on the one
    # training entry point of fit and updates sees them
    real = SequentialRecommender._train

    def spy(self, windows, *args, **kwargs):
        seen.append(windows)
        return real(self, windows, *args, **kwargs)

    monkeypatch.setattr(SequentialRecommender, "_train", spy)
    return seen


def test_context_weight_rehearses_the_learned_events_in_the_new_events_window(monkeypatch):
    """partial_fit_context_weight: the active users' already learned events within their
    last max_len events become targets of that weight; older ones and other users' do not."""
    model, world, update = fitted(partial_fit_context_weight=0.3, max_len=5)
    seen = trained_windows(monkeypatch)
    model.partial_fit(update)
    (w,) = seen
    weights = w.target_weight[w.target_items > 0]
    n_new = len(update.events)
    # Every a-user acting in the update has 8 learned events and 3 new ones: each user's
    # one window (5 targets) holds the 3 new events and the 2 learned ones before them.
    assert len(w.target_weight) == 12
    assert np.count_nonzero(weights == 1.0) == n_new
    assert np.count_nonzero(np.isclose(weights, 0.3)) == 2 * 12
    assert len(weights) == n_new + 2 * 12  # nothing else is a target
    # Off: the new events only.
    plain, _, _ = fitted(max_len=5, partial_fit_context_weight=0.0)
    seen.clear()
    plain.partial_fit(update)
    w0 = seen[0].target_weight[seen[0].target_items > 0]
    assert np.count_nonzero(w0 == 1.0) == n_new and np.count_nonzero(w0) == n_new


def test_update_windows_follow_the_active_users_median_new_events(monkeypatch):
    """partial_fit_max_len=None (default): each update's windows (new and replayed) are
    as long as its users' median count of new events, at least 8, at most max_len."""
    model, world, _ = fitted(max_len=30)
    assert model.partial_fit_max_len is None
    seen = trained_windows(monkeypatch)
    t0 = int(world.events["timestamp"].max())

    def update(counts: dict[str, int]) -> Dataset:
        users = [u for u, n in counts.items() for _ in range(n)]
        items = [f"a{j % 10}" for j in range(len(users))]
        ts = list(range(t0 + 1, t0 + 1 + len(users)))
        return Dataset(events=make_events(users, items, ts, "view"), items=world.items)

    past = world.events[world.events["user_id"].str.startswith("b")].iloc[::4]
    # 21, 20 and 5 new events: median 20
    model.partial_fit(update({"auser0": 21, "auser2": 20, "auser4": 5}), replay=past)
    assert seen[-1].items.shape[1] == 20 and model.update_plan_["window"] == 20
    fresh = (seen[-1].target_weight > 0) & (seen[-1].target_items > 0)
    assert np.count_nonzero(fresh) >= 46  # every new event is a target (plus context)
    t0 += 100
    model.partial_fit(update({"auser0": 2, "auser2": 3, "auser6": 1}))  # median 2
    assert seen[-1].items.shape[1] == 8 and model.update_plan_["window"] == 8
    t0 += 100
    model.partial_fit(update({"auser0": 45, "auser2": 40}))  # median 42.5 > max_len
    assert seen[-1].items.shape[1] == 30 and model.update_plan_["window"] == 30
    # an integer fixes it, whatever the update
    model.partial_fit_max_len = 12
    t0 += 100
    model.partial_fit(update({"auser0": 21, "auser2": 20}))
    assert seen[-1].items.shape[1] == 12 and model.update_plan_["window"] == 12
    # an update that stops on a held-out slice has the same windows
    model.partial_fit_max_len, model.partial_fit_patience = None, 1
    t0 += 100
    model.partial_fit(update({"auser0": 21, "auser2": 20, "auser4": 5}))
    assert model.update_plan_["window"] == 20 and seen[-1].items.shape[1] == 20


def test_replayed_windows_rehearse_eight_events_in_longer_context(monkeypatch):
    """With update windows longer than 8, a replayed window keeps its whole context as
    input but only its last 8 events as targets (as an 8-event window had them)."""
    model, world, update = fitted(partial_fit_max_len=12, max_len=12)
    short, _, _ = fitted(partial_fit_max_len=8, max_len=12)
    seen = trained_windows(monkeypatch)
    past = world.events[world.events["user_id"].str.startswith("b")].iloc[::4]
    model.partial_fit(update, replay=past)
    short.partial_fit(update, replay=past)
    long_w, short_w = seen
    n = model.n_replayed_
    assert n == short.n_replayed_ > 0
    replay_long, replay_short = long_w.target_weight[-n:], short_w.target_weight[-n:]
    assert not replay_long[:, :4].any()  # the 4 oldest positions: context only
    np.testing.assert_array_equal(replay_long[:, 4:], replay_short)
    np.testing.assert_array_equal(long_w.target_items[-n:, 4:], short_w.target_items[-n:])


def test_update_windows_are_partial_fit_max_len_long(monkeypatch):
    """partial_fit_max_len: update windows (new and replayed) are that long; a user with
    more new events than fit in one gets several, and every new event is a target once."""
    model, world, update = fitted(partial_fit_max_len=2)
    seen = trained_windows(monkeypatch)
    past = world.events[world.events["user_id"].str.startswith("b")].iloc[::4]
    model.partial_fit(update, replay=past)
    (w,) = seen
    assert w.items.shape[1] == 2 and w.target_items.shape[1] == 2
    # 3 new events per a-user (12 of them), 2 targets per window: 2 windows each, then
    # one window per replayed event (concatenated after them)
    assert len(w.items) == 12 * 2 + model.n_replayed_ and model.n_replayed_ > 0
    fresh = (w.target_weight[:24] > 0) & (w.target_items[:24] > 0)
    assert np.count_nonzero(fresh) == len(update.events)
    # scoring keeps the full context: the model's user state is max_len long
    assert model.user_histories_["items"].shape[1] == int(TINY["max_len"])
