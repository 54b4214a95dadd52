"""``final_passes``: after early stopping, the fit learns the events it held out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lifelongrec.models import SequentialRecommender

TINY = {"dim": 16, "n_layers": 1, "n_heads": 1, "max_len": 6, "epochs": 4, "lr": 0.01}
TINY |= {"text_encoder": None, "verbose": False, "validation_events": 1, "batch_size": 16}


def _world(n_users: int = 60, length: int = 6, n_items: int = 30) -> pd.DataFrame:
    """Each user views ``length`` random p-items, then z: z is only ever a user's last
    event, so a fit that holds out each user's last event never has it as a target."""
    rng = np.random.default_rng(0)
    rows, t = [], 0
    for u in range(n_users):
        for item in [*(f"p{i}" for i in rng.choice(n_items, length, replace=False)), "z"]:
            t += 60
            rows.append((f"u{u}", item, t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _z_rank(model: SequentialRecommender, events: pd.DataFrame) -> float:
    """z's mean rank (0 = top) for every user, from the events before their z."""
    users = events["user_id"].unique()
    before = events[events["item_id"] == "z"].set_index("user_id").loc[users, "timestamp"]
    scores = model.score_histories(list(users), events, before=before.to_numpy())
    z = list(model.item_ids_).index("z")
    return float((scores > scores[:, [z]]).sum(axis=1).mean())


def test_the_final_passes_learn_the_held_out_events():
    events = _world()
    plain = SequentialRecommender(**TINY).fit(events)
    final = SequentialRecommender(**TINY, final_passes=2).fit(events)
    fit_epochs = len(plain.history_)
    # the same fit up to the best epoch, then two passes more, without validation
    assert len(final.history_) == fit_epochs + 2
    assert [h["val_ndcg@10"] for h in final.history_[:fit_epochs]] == pytest.approx(
        [h["val_ndcg@10"] for h in plain.history_]
    )
    assert all(h.get("val_ndcg@10") is None for h in final.history_[fit_epochs:])
    assert final.head_metrics_ == plain.head_metrics_ and final.best_epoch_ == plain.best_epoch_
    # z was never a target of the plain fit; the final passes made it one
    assert _z_rank(final, events) < 3 < _z_rank(plain, events)


def test_without_validation_there_is_nothing_held_out_to_learn():
    events = _world(n_users=10)
    tiny = {**TINY, "validation": False}
    plain = SequentialRecommender(**tiny).fit(events)
    final = SequentialRecommender(**tiny, final_passes=2).fit(events)
    assert len(final.history_) == len(plain.history_) == TINY["epochs"]


@pytest.mark.parametrize("bad", [-1, 1.5, "2", None])
def test_a_bad_final_passes_is_refused_naming_it(bad):
    with pytest.raises((ValueError, TypeError), match="final_passes"):
        SequentialRecommender(final_passes=bad).fit(_world(n_users=4))
