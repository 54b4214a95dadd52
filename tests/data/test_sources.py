"""Data as an experiment names it (``lifelongrec.data``): load_data, parse_columns,
columns_note, prepare, make_split."""

from __future__ import annotations

import pytest

from lifelongrec import ParameterError
from lifelongrec.data import (
    COLUMN_ROLES,
    PROTOCOLS,
    SYNTHETIC,
    TIMESTAMP_UNITS,
    Dataset,
    columns_note,
    load_data,
    make_events,
    make_split,
    parse_columns,
    prepare,
    synthetic,
)


def table(path, header="userId,movieId,rating,timestamp", scale=1):
    lines, t = [header], 1_500_000_000
    for u in range(6):
        for i in range(4):
            lines.append(f"u{u},i{i},{1 + (u + i) % 5},{t * scale}")
            t += 60
    path.write_text("\n".join(lines) + "\n")
    return path, len(lines) - 1


def test_constants():
    assert SYNTHETIC == "synthetic" and PROTOCOLS == ("loo", "temporal")
    assert TIMESTAMP_UNITS == ("s", "ms", "us", "ns")
    assert set(COLUMN_ROLES.values()) == {"user_id", "item_id", "timestamp", "event_type", "value"}


# ----------------------------------------------------------------- parse_columns
def test_parse_columns_roles_short_names_any_case_and_blanks():
    got = parse_columns("User = a, item=b,TIME=c,type=d,rating=e")
    assert got == {
        "user_id": "a",
        "item_id": "b",
        "timestamp": "c",
        "event_type": "d",
        "value": "e",
    }
    assert parse_columns(None) is None and parse_columns(" ") is None


@pytest.mark.parametrize(
    ("text", "value", "words"),
    [
        ("user_id", "user_id", "ROLE=COLUMN"),
        ("usr=a", "usr=a", "a known role"),
        ("user=a, user_id=b", "user_id=b", "user_id is given twice"),
        ("=a", "=a", "ROLE=COLUMN"),
        ("user=", "user=", "ROLE=COLUMN"),
    ],
)
def test_parse_columns_names_the_bad_entry(text, value, words):
    with pytest.raises(ParameterError, match=words) as info:
        parse_columns(text)
    assert info.value.name == "--columns" and info.value.value == value


# --------------------------------------------------------------------- load_data
def test_load_data_synthetic_is_the_synthetic_world():
    got = load_data("synthetic", synthetic_events=700, seed=3)
    want = synthetic(n_events=700, seed=3)
    assert got.events.equals(want.events)
    shifted = load_data("synthetic", synthetic_events=700, seed=3, shift_at=0.5)
    assert (
        shifted.meta["shift_timestamp"]
        == synthetic(700, seed=3, shift_at=0.5).meta["shift_timestamp"]
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"columns": "user=a"}, "--columns"),
        ({"columns": {"user_id": "a"}}, "--columns"),
        ({"timestamp_unit": "ms"}, "--timestamp-unit"),
        ({"timestamp_unit": "ms", "shift_at": 0.5}, "--timestamp-unit"),
        ({"columns": "bad"}, "--columns"),
        ({"timestamp_unit": "min"}, "--timestamp-unit"),
    ],
)
def test_load_data_refuses_table_options_for_the_synthetic_world(kwargs, name):
    with pytest.raises(ParameterError) as info:
        load_data("synthetic", synthetic_events=100, **kwargs)
    assert info.value.name == name


def test_load_data_reads_a_table_with_columns_text_or_mapping(tmp_path):
    path, n = table(tmp_path / "log.csv", header="who,what,stars,when", scale=1000)
    text = load_data(str(path), columns="user=who,item=what,time=when", timestamp_unit="ms")
    mapping = load_data(
        str(path),
        columns={"user_id": "who", "item_id": "what", "timestamp": "when"},
        timestamp_unit="ms",
    )
    assert len(text) == len(mapping) == n
    assert text.events["timestamp"].min() == 1_500_000_000
    assert text.events.equals(mapping.events)
    # only the value column was not named: it was recognised by its header
    assert columns_note(text) == (
        "columns recognised in the header: value <- stars (--columns ROLE=COLUMN to choose others)"
    )


def test_load_data_names_the_options_of_a_format_with_fixed_columns(tmp_path):
    root = tmp_path / "ml"
    root.mkdir()
    (root / "u.data").write_text("1\t10\t4\t881250949\n")
    with pytest.raises(ParameterError, match="movielens-100k") as info:
        load_data(str(root), columns="user=a")
    assert info.value.name == "--columns"
    with pytest.raises(ParameterError) as info:
        load_data(str(root), timestamp_unit="ms")
    assert info.value.name == "--timestamp-unit"
    with pytest.raises(FileNotFoundError):
        load_data(str(tmp_path / "missing"))


def test_columns_note_says_which_columns_were_recognised(tmp_path):
    path, _ = table(tmp_path / "events.csv")
    note = columns_note(load_data(str(path)))
    assert note == (
        "columns recognised in the header: user_id <- userId, item_id <- movieId, "
        "timestamp <- timestamp, value <- rating (--columns ROLE=COLUMN to choose others)"
    )
    path, _ = table(tmp_path / "plain.csv", header="user_id,item_id,value,timestamp")
    assert columns_note(load_data(str(path))) == ""  # the fields' own names


# ----------------------------------------------------------- prepare, make_split
def test_prepare_sorts_keeps_the_first_pair_and_thresholds_without_changing_its_input():
    ev = make_events(
        ["a", "a", "b", "a"], ["x", "y", "x", "x"], [30, 10, 20, 40], value=[5, 2, 4, 1]
    )
    data = Dataset(events=ev)
    before = data.events.copy()
    out = prepare(data)
    assert out.events["timestamp"].tolist() == [10, 20, 30]  # the later a/x dropped
    assert [e["step"] for e in out.report.entries][-2:] == ["sort_by_time", "deduplicate"]
    rated = prepare(data, min_rating=3)
    assert sorted(rated.events["timestamp"].tolist()) == [20, 30]
    assert len(prepare(data, dedupe=False)) == 4
    assert data.events.equals(before)


def test_make_split_by_protocol_name():
    data = prepare(synthetic(n_events=800, seed=1))
    assert make_split(data, "loo").protocol == "leave_one_out"
    assert make_split(data, "temporal").protocol == "temporal"
    with pytest.raises(ParameterError, match="'loo' or 'temporal'") as info:
        make_split(data, "random")
    assert info.value.name == "--protocol"
