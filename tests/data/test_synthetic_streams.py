"""The families of synthetic streams: disjoint seeds, the settings they promise to cover,
and a docstring table that tells the truth."""

from __future__ import annotations

import dataclasses

import pytest

from lifelongrec._errors import ParameterError
from lifelongrec.data import STREAM_FAMILIES, SyntheticWorld, synthetic_streams
from lifelongrec.data import _synthetic_streams as module


def test_train_and_test_differ_in_seeds_and_settings():
    train, test = synthetic_streams("train"), synthetic_streams("test", large=True)
    assert STREAM_FAMILIES == ("train", "test")
    assert 4 <= len(train) <= 8 and 4 <= len(synthetic_streams("test")) <= 6
    assert not {w.seed for w in train.values()} & {w.seed for w in test.values()}

    def settings(world: SyntheticWorld) -> dict:
        return {k: v for k, v in dataclasses.asdict(world).items() if k != "seed"}

    train_settings = [settings(w) for w in train.values()]
    assert all(settings(w) not in train_settings for w in test.values())
    assert all(name.startswith("train-") for name in train)
    assert all(name.startswith("test-") for name in test)


@pytest.mark.parametrize("family", STREAM_FAMILIES)
def test_each_family_covers_the_kinds_of_stream(family):
    worlds = list(synthetic_streams(family).values())
    shifted = [w for w in worlds if w.shift_at is not None]
    assert len(shifted) < len(worlds)  # one stream without shift
    assert any(w.shift_days == 0 for w in shifted) and any(w.shift_days > 0 for w in shifted)
    assert {w.shift_share for w in shifted} == {0.5, 1.0}
    assert all(0.4 <= w.shift_at <= 0.8 for w in shifted)
    assert all(0.05 <= w.new_item_rate <= 0.5 for w in worlds)
    assert all(2 <= w.mean_session_views <= 8 for w in worlds)
    if family == "train":  # one-off visitors, aging items, changing order: as ml-latest-small
        assert any(w.user_active_days is not None and w.new_user_rate == 1 for w in worlds)
        assert any(w.item_half_life_days is not None for w in worlds)
        assert any(w.chain_redraw_days is not None for w in worlds)
    sizes = sorted(w.n_events for w in worlds)
    assert sizes[0] <= 12_000 and 20_000 <= sizes[len(sizes) // 2] <= 100_000
    assert sizes[-1] <= 100_000


def test_only_the_large_test_stream_has_a_million_events():
    large = synthetic_streams("test", large=True)
    (big,) = [name for name, w in large.items() if w.n_events >= 1_000_000]
    assert big not in synthetic_streams("test") and big.endswith("-1m")
    assert synthetic_streams("train", large=True) == synthetic_streams("train")


def test_a_stream_generates_what_it_says():
    world = synthetic_streams("train")["train-small-10k"]
    data = world.generate()
    assert len(data.events) == 10_000
    assert data.meta["shift_users"] == round(0.5 * data.meta["n_users"])
    assert data.meta["shift_end_timestamp"] - data.meta["shift_timestamp"] == 10 * 86_400


def _table_rows() -> dict[str, list[str]]:
    doc = synthetic_streams.__doc__ or ""
    rows = [line.split() for line in doc.splitlines()]
    return {r[0]: r[1:] for r in rows if r and r[0].startswith(("train-", "test-"))}


def test_the_docstring_tables_match_the_streams():
    rows = _table_rows()
    every = {**synthetic_streams("train"), **synthetic_streams("test", large=True)}
    assert sorted(rows) == sorted(every)
    for name, w in every.items():
        events, seed, new, shift, share, days, views = rows[name]
        assert int(events.replace(",", "")) == w.n_events, name
        assert int(seed) == w.seed and float(new) == w.new_item_rate, name
        assert float(views) == w.mean_session_views, name
        assert w.duration_days == 90.0
        if w.shift_at is None:
            assert (shift, share, days) == ("--", "--", "--"), name
        else:
            assert float(shift) == w.shift_at and float(share) == w.shift_share, name
            assert float(days) == w.shift_days, name


def test_the_family_is_a_copy():
    streams = synthetic_streams("train")
    streams.clear()
    assert synthetic_streams("train")
    assert module.synthetic_streams is synthetic_streams


@pytest.mark.parametrize(
    "kwargs, name",
    [({"family": "validation"}, "family"), ({"family": "test", "large": "yes"}, "large")],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ParameterError) as info:
        synthetic_streams(**kwargs)
    assert info.value.name == name
