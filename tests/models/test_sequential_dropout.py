"""``dropout=None``: the data decide the sequential model's dropout by their density."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch import nn

from lifelongrec.models import Recommender, SequentialRecommender
from lifelongrec.models.sequential._params import (
    DENSE_DROPOUT,
    SPARSE_DENSITY,
    SPARSE_DROPOUT,
    data_dropout,
    with_dropout,
)

TINY = {"dim": 8, "n_layers": 1, "n_heads": 1, "max_len": 4, "epochs": 1}
TINY |= {"text_encoder": None, "verbose": False, "validation": False}


@pytest.mark.parametrize(
    ("n_events", "n_users", "n_items", "expected"),
    [
        (353_962, 40_226, 54_542, 0.5),  # Amazon Beauty: 0.016 %
        (100_836, 610, 9_724, 0.2),  # MovieLens latest-small: 1.7 %
        (100_000, 943, 1_682, 0.2),  # MovieLens 100K: 6.3 %
        (999, 1_000, 1_000, 0.5),  # just under 0.1 %
        (1_000, 1_000, 1_000, 0.2),  # 0.1 % exactly is not sparse
        (0, 0, 0, 0.5),  # nothing at all
    ],
)
def test_the_dropout_rule(n_events, n_users, n_items, expected):
    assert (SPARSE_DENSITY, SPARSE_DROPOUT, DENSE_DROPOUT) == (1e-3, 0.5, 0.2)
    assert data_dropout(n_events, n_users, n_items) == expected


def _events(n_users: int, per_user: int, n_items: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, len(users))
    return pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in users],
            "item_id": [f"i{i}" for i in items],
            "timestamp": np.arange(len(users)) * 60,
        }
    )


def _dropouts(model: SequentialRecommender) -> set[float]:
    return {m.p for m in model.module_.modules() if isinstance(m, nn.Dropout)}


SPARSE, DENSE = (2_000, 2, 10_000), (60, 20, 80)  # about 0.06 % and 25 % full


@pytest.mark.parametrize(("shape", "expected"), [(SPARSE, 0.5), (DENSE, 0.2)])
def test_a_fit_takes_the_dropout_of_its_data(shape, expected, tmp_path):
    events = _events(*shape)
    density = len(events) / (events["user_id"].nunique() * events["item_id"].nunique())
    assert (density < 0.001) == (expected == 0.5)  # counted here independently
    model = SequentialRecommender(**TINY).fit(events)
    assert model.dropout is None
    assert model.dropout_ == expected
    assert _dropouts(model) == {expected}  # every dropout layer of the module
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert loaded.dropout_ == expected and _dropouts(loaded) == {expected}
    # a setting is used and recorded as it is, whatever the data
    fixed = SequentialRecommender(**TINY, dropout=0.35).fit(events)
    assert fixed.dropout_ == 0.35 and _dropouts(fixed) == {0.35}
    # a refit on other data chooses again
    other, other_expected = (DENSE, 0.2) if expected == 0.5 else (SPARSE, 0.5)
    assert model.fit(_events(*other)).dropout_ == other_expected
    assert _dropouts(model) == {other_expected}


def test_a_model_saved_before_fits_chose_keeps_the_former_default():
    p = {"dropout": None, "dim": 8}
    assert with_dropout(p, None) == {"dropout": 0.2, "dim": 8}
    assert with_dropout(p, 0.5)["dropout"] == 0.5
    assert with_dropout({"dropout": 0.1}, 0.5)["dropout"] == 0.1  # a setting wins


@pytest.mark.parametrize("bad", [1.0, -0.1, "0.5", True])
def test_a_bad_dropout_is_refused_naming_it(bad):
    with pytest.raises((ValueError, TypeError), match="dropout"):
        SequentialRecommender(dropout=bad).fit(_events(5, 3, 5))
