"""ChampionChallenger: every update is a registered challenger, only gated ones go live,
the live champion is never changed by learning, and no event is lost."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from lifelongrec import DataError, NotFittedError, ParameterError
from lifelongrec.data import make_events, time_windows
from lifelongrec.models import ItemKNN, Popularity
from lifelongrec.registry import (
    ChampionChallenger,
    ModelRegistry,
    PromotionGate,
    judge_challenger,
    split_freshest,
)
from lifelongrec.training import FineTune, Lifelong, Retrain

ALWAYS = PromotionGate("ndcg@10", tolerance=1.0)  # NDCG >= 0 >= champion - 1: promotes
NEVER = PromotionGate("ndcg@10", min_events=10**9)  # judges nothing: keeps the champion


@pytest.fixture(scope="module")
def windows(stream):
    return time_windows(stream, 4)


def item_counts(events):
    return Counter(events["item_id"].astype(str))


def model_counts(model):
    return {i: c for i, c in zip(model.item_ids_, model.item_counts_, strict=True) if c}


# ---------------------------------------------------------------- split_freshest
def test_split_freshest_cuts_by_time():
    ev = make_events(list("abcdefghij"), ["x"] * 10, [9, 1, 2, 3, 4, 5, 6, 7, 8, 10])
    older, fresh = split_freshest(ev, 0.2)
    assert fresh["timestamp"].tolist() == [9, 10]
    assert older["timestamp"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert split_freshest(ev, 0.01)[1]["timestamp"].tolist() == [10]  # at least one
    assert len(split_freshest(ev, 0.99)[0]) == 1  # at least one left to learn


def test_split_freshest_never_splits_a_moment():
    ev = make_events(list("abcdef"), ["x"] * 6, [1, 2, 3, 5, 5, 5])
    older, fresh = split_freshest(ev, 0.34)  # 2 of 6 would split the block at 5
    assert fresh["timestamp"].tolist() == [5, 5, 5] and len(older) == 3
    same = make_events(["a", "b", "c"], ["x"] * 3, [7, 7, 7])
    older, fresh = split_freshest(same, 0.34)  # nothing else possible: split the block
    assert (len(older), len(fresh)) == (2, 1)


def test_split_freshest_errors():
    ev = make_events(["a", "b"], ["x", "y"], [1, 2])
    for share in (0, 1, -0.1, "0.1", True):
        with pytest.raises(ParameterError, match="holdout_share"):
            split_freshest(ev, share)
    with pytest.raises(DataError, match="at least 2 events"):
        split_freshest(ev.iloc[:1], 0.1)
    with pytest.raises(DataError, match="window of events"):
        split_freshest([("a", "x", 1)], 0.1)


# ------------------------------------------------------------------- the loop
def test_no_event_is_lost_and_none_is_learned_twice(tmp_path, windows):
    cc = ChampionChallenger(FineTune(), ModelRegistry(tmp_path / "r"), ALWAYS, 0.2)
    cc.start(Popularity, windows[0])
    for w in windows[1:]:
        cc.update(w)
    everything = pd.concat([w.events for w in windows], ignore_index=True)
    learned = Counter(item_counts(everything))
    learned.subtract(item_counts(cc.pending_))
    # Popularity's counts are exact: the training line learned every event but the
    # pending slice, each once.
    assert model_counts(cc.strategy.model_) == {k: v for k, v in learned.items() if v}
    last = windows[-1].events
    assert len(cc.pending_) == round(len(last) * 0.2)
    pd.testing.assert_frame_equal(cc.pending_, split_freshest(last, 0.2)[1])
    assert [d["n_learned"] for d in cc.decisions_[1:]] == [
        len(windows[1]) - round(len(windows[1]) * 0.2),
        *[
            round(len(windows[i - 1]) * 0.2) + len(windows[i]) - round(len(windows[i]) * 0.2)
            for i in (2, 3)
        ],
    ]


def test_every_update_is_a_registered_challenger(tmp_path, windows):
    reg = ModelRegistry(tmp_path / "r")
    cc = ChampionChallenger(FineTune(), reg, ALWAYS)
    served = cc.start(ItemKNN, windows[0])
    assert reg.champion() == "v000001" and served is cc.champion_
    for w in windows[1:]:
        served = cc.update(w)
    assert [v.version for v in reg.versions()] == ["v000001", "v000002", "v000003", "v000004"]
    assert reg.champion() == "v000004" == cc.champion_version_
    assert reg.lineage(4) == ["v000004", "v000003", "v000002", "v000001"]
    info = reg.info(3)
    assert info.decision["promoted"] is True and info.tags == {"strategy": "finetune"}
    assert set(info.metrics) == {"recall@10", "ndcg@10", "champion_recall@10", "champion_ndcg@10"}
    assert info.data["n_holdout"] == cc.decisions_[2]["n_events"]
    # the window spans what the version learned plus its held-out slice
    assert info.window["end"] == int(windows[2].events["timestamp"].max())
    report = cc.report()
    assert [r["update"] for r in report] == [0, 1, 2, 3]
    json.dumps(report)  # JSON data for reports


def test_a_rejected_challenger_never_touches_the_live_champion(tmp_path, windows):
    reg = ModelRegistry(tmp_path / "r")
    cc = ChampionChallenger(FineTune(), reg, NEVER)
    champion = cc.start(ItemKNN, windows[0])
    users = list(champion.user_ids_[:10])
    before = champion.score_items(users).copy()
    n_users = champion.n_users
    assert cc.update(windows[1]) is champion
    assert cc.update(windows[2]) is champion
    # finetune learns in place: the champion was copied before the strategy touched it
    assert champion.n_users == n_users
    assert champion.score_items(users).tobytes() == before.tobytes()
    assert cc.strategy.model_ is not champion
    assert cc.strategy.model_.n_users > n_users  # the training line kept learning
    assert reg.champion() == "v000001"
    assert [v.status for v in reg.versions()] == ["champion", "rejected", "rejected"]
    # a rejected challenger stays the training line: the next one is its child
    assert reg.info(3).parent == "v000002"
    assert [d["champion_before"] for d in cc.decisions_[1:]] == ["v000001", "v000001"]


def test_the_champion_is_copied_before_an_in_place_update_after_promotion(tmp_path, windows):
    cc = ChampionChallenger(Lifelong(replay_size=50), ModelRegistry(tmp_path / "r"), ALWAYS)
    cc.start(ItemKNN, windows[0])
    promoted = cc.update(windows[1])
    assert promoted is cc.strategy.model_  # the promoted challenger serves
    users = list(promoted.user_ids_[:10])
    before = promoted.score_items(users).copy()
    cc.gate = NEVER
    assert cc.update(windows[2]) is promoted
    assert promoted.score_items(users).tobytes() == before.tobytes()


def test_retrain_fits_new_models(tmp_path, windows):
    cc = ChampionChallenger(Retrain(), ModelRegistry(tmp_path / "r"), ALWAYS)
    first = cc.start(Popularity, windows[0])
    second = cc.update(windows[1])
    assert second is not first
    held = cc.pending_
    both = pd.concat([windows[0].events, windows[1].events], ignore_index=True)
    expected = item_counts(both)
    expected.subtract(item_counts(held))
    assert model_counts(second) == {k: v for k, v in expected.items() if v}


def test_a_rollback_through_the_registry_is_followed(tmp_path, windows):
    reg = ModelRegistry(tmp_path / "r")
    cc = ChampionChallenger(FineTune(), reg, ALWAYS)
    cc.start(ItemKNN, windows[0])
    cc.update(windows[1])
    assert cc.champion_version_ == "v000002"
    reg.rollback()  # e.g. from the command line
    cc.gate = NEVER
    served = cc.update(windows[2])
    assert cc.champion_version_ == "v000001"
    assert cc.decisions_[-1]["champion_before"] == "v000001"
    users = list(served.user_ids_[:5])
    np.testing.assert_array_equal(served.score_items(users), reg.load(1).score_items(users))


def test_the_gate_decides_on_real_models(tmp_path, split, scrambled):
    """consider(): an injected degraded challenger is rejected, a better one promoted."""
    train, holdout, history = split
    reg = ModelRegistry(tmp_path / "r")
    cc = ChampionChallenger(FineTune(), reg)  # default gate: NDCG@10, tolerance 0
    first = cc.consider(Popularity().fit(train), holdout, history, window=(0, 1))
    assert first["promoted"] and first["reason"] == "no champion yet"
    better = cc.consider(ItemKNN().fit(train), holdout, history)
    assert better["promoted"] and reg.champion() == better["version"] == "v000002"
    assert better["parent"] == "v000001"  # default parent: the champion compared with
    worse = cc.consider(ItemKNN().fit(scrambled), holdout, history)
    assert not worse["promoted"] and worse["challenger_value"] < worse["champion_value"]
    assert reg.champion() == "v000002" and reg.info(3).status == "rejected"
    assert reg.info(3).decision["promoted"] is False


def test_a_champion_change_during_the_gate_wins(tmp_path, windows, monkeypatch):
    reg = ModelRegistry(tmp_path / "r")
    cc = ChampionChallenger(FineTune(), reg, ALWAYS)
    cc.start(Popularity, windows[0])
    cc.update(windows[1])
    real = ALWAYS.decide

    def slow_decide(*args):
        out = real(*args)
        reg.rollback()  # someone rolls back while the gate evaluates
        return out

    monkeypatch.setattr(ALWAYS, "decide", slow_decide)
    cc.update(windows[2])
    last = cc.decisions_[-1]
    assert not last["promoted"] and "champion changed" in last["reason"]
    assert reg.champion() == "v000001" and reg.info(3).status == "rejected"


def test_judge_challenger_against_a_given_champion(tmp_path, split, scrambled):
    """The one promotion path, without a ChampionChallenger: the champion is the one
    given (a service's live model), the registry's pointer must still be its version,
    and prepare runs after the decision and before the registration."""
    train, holdout, history = split
    reg = ModelRegistry(tmp_path / "r")
    champion = ItemKNN().fit(train)
    first = reg.register(champion, status="champion", reason="first")
    gate = PromotionGate("ndcg@10")
    seen = []
    worse = judge_challenger(
        reg,
        gate,
        champion,
        first.version,
        ItemKNN().fit(scrambled),
        holdout,
        history,
        prepare=lambda m: seen.append(reg.champion()),
    )
    assert seen == ["v000001"] and not worse["promoted"]
    assert worse["parent"] == "v000001" and reg.info(worse["version"]).status == "rejected"
    same = judge_challenger(
        reg,
        PromotionGate("ndcg@10", tolerance=1.0),
        champion,
        first.version,
        ItemKNN().fit(train),
        holdout,
        history,
        parent="v000002",
        tags={"source": "test"},
    )
    assert same["promoted"] and reg.champion() == same["version"] == "v000003"
    assert same["parent"] == "v000002" and same["champion_before"] == "v000001"
    # judged against a version that is no longer the registry's champion: kept out
    stale = judge_challenger(
        reg,
        PromotionGate("ndcg@10", tolerance=1.0),
        champion,
        first.version,
        ItemKNN().fit(train),
        holdout,
        history,
    )
    assert not stale["promoted"] and "champion changed" in stale["reason"]
    assert reg.champion() == "v000003"


def test_max_history_bounds_what_queries_see(tmp_path, windows):
    cc = ChampionChallenger(FineTune(), ModelRegistry(tmp_path / "r"), ALWAYS, max_history=150)
    cc.start(Popularity, windows[0])
    cc.update(windows[1])
    assert len(cc.history_) == 150
    tail = pd.concat([windows[0].events, windows[1].events], ignore_index=True)
    assert cc.history_["timestamp"].max() == tail["timestamp"].max()


# ---------------------------------------------------------------- error paths
def test_update_before_start(tmp_path, windows):
    cc = ChampionChallenger(FineTune(), ModelRegistry(tmp_path / "r"))
    with pytest.raises(NotFittedError, match="start"):
        cc.update(windows[1])
    cc.consider(Popularity().fit(windows[0]), windows[1].events, windows[1].events)
    with pytest.raises(NotFittedError, match="start"):  # consider() alone starts nothing
        cc.update(windows[1])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"strategy": "finetune"}, "strategy"),
        ({"registry": "runs/registry"}, "registry"),
        ({"gate": "ndcg@10"}, "gate"),
        ({"gate": PromotionGate("ndcg")}, "metric"),
        ({"holdout_share": 0}, "holdout_share"),
        ({"holdout_share": 1.0}, "holdout_share"),
        ({"holdout_share": "0.1"}, "holdout_share"),
        ({"max_history": 0}, "max_history"),
        ({"max_history": 1.5}, "max_history"),
    ],
)
def test_bad_settings(tmp_path, windows, kwargs, name):
    args = {"strategy": FineTune(), "registry": ModelRegistry(tmp_path / "r"), **kwargs}
    cc = ChampionChallenger(**args)
    with pytest.raises(ParameterError, match=repr(name)):
        cc.start(Popularity, windows[0])


def test_settings_are_params_and_clone_shares_the_registry(tmp_path, windows):
    reg = ModelRegistry(tmp_path / "r")
    gate = PromotionGate("hr@5", tolerance=0.01)
    cc = ChampionChallenger(Lifelong(seed=3), reg, gate, holdout_share=0.2, max_history=np.int64(9))
    assert cc.get_params() == {
        "strategy": cc.strategy,
        "registry": reg,
        "gate": gate,
        "holdout_share": 0.2,
        "max_history": 9,
    }
    assert repr(cc).startswith("ChampionChallenger(strategy=Lifelong(replay_size=10000, ")
    cc.check_params()
    twin = cc.clone()
    assert twin.registry is reg and twin.strategy is not cc.strategy
    assert twin.strategy.get_params() == cc.strategy.get_params()
    assert twin.gate is not gate and twin.gate.get_params() == gate.get_params()
    assert ChampionChallenger(FineTune(), reg).clone().gate is None
    with pytest.raises(ParameterError, match="'max_history' must be None or an integer >= 1"):
        ChampionChallenger(FineTune(), reg, max_history=True).check_params()


def test_a_window_too_small_to_hold_out(tmp_path, windows):
    cc = ChampionChallenger(FineTune(), ModelRegistry(tmp_path / "r"))
    cc.start(Popularity, windows[0])
    with pytest.raises(DataError, match="at least 2 events"):
        cc.update(windows[1].events.iloc[:1])
    assert len(cc.registry.versions()) == 1 and len(cc.pending_) == 0
