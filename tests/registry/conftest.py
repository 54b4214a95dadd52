"""Fixtures of the registry tests: a small real stream and models fitted on it."""

from __future__ import annotations

import numpy as np
import pytest

from lifelongrec.data import deduplicate, sort_by_time, synthetic


@pytest.fixture(scope="session")
def stream():
    """A deduplicated synthetic shop (about 800 events, 75 users, 110 items) in time order."""
    data = deduplicate(
        sort_by_time(synthetic(n_events=3000, seed=1)), subset=("user_id", "item_id")
    )
    return data.with_events(data.events.reset_index(drop=True))


@pytest.fixture(scope="session")
def split(stream):
    """``(train, holdout, history)``: the oldest 85% to learn, the freshest 15% held out,
    and every event (what held-out queries may see, strictly before each)."""
    ev = stream.events
    cut = int(len(ev) * 0.85)
    return stream.with_events(ev.iloc[:cut]), ev.iloc[cut:], ev


@pytest.fixture(scope="session")
def scrambled(split):
    """The training events with items shuffled across events: user-item links destroyed,
    item counts kept (a deliberately degraded training set)."""
    train = split[0]
    ev = train.events.copy()
    ev["item_id"] = np.random.default_rng(0).permutation(ev["item_id"].to_numpy())
    return train.with_events(ev)
