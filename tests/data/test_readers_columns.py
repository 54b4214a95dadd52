"""Generic tables: common header names are recognised (one candidate per field), ambiguous
headers are errors that list the candidates, and an explicit ``columns=`` always wins."""

import json
from pathlib import Path

import pandas as pd
import pytest

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import detect_format, load, read_table
from lifelongrec.data._readers import COLUMN_NAMES

ROWS = [("u1", "i1", 1_500_000_000, "view", 4.5), ("u2", "i2", 1_500_000_060, "buy", 2.0)]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def table(path: Path, header: list[str], rows: list[tuple]) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    return write(path, "\n".join(lines) + "\n")


def test_movielens_style_events_csv_outside_a_movielens_folder(tmp_path):
    path = write(
        tmp_path / "events.csv",
        "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n2,20,3.5,964981247\n",
    )
    assert detect_format(path) == "table"
    ds = load(path)
    assert ds.meta["format"] == "table"
    assert ds.events[["user_id", "item_id", "timestamp", "value"]].values.tolist() == [
        ["1", "10", 964982703, 4.0],
        ["2", "20", 964981247, 3.5],
    ]
    assert ds.events["event_type"].tolist() == ["interaction", "interaction"]
    assert ds.meta["columns"] == {
        "user_id": "userId",
        "item_id": "movieId",
        "timestamp": "timestamp",
        "value": "rating",
    }
    assert ds.meta["columns_recognised"] == ["user_id", "item_id", "timestamp", "value"]
    assert load(tmp_path).meta["columns"] == ds.meta["columns"]  # a folder with one table


def test_plain_user_item_timestamp_header(tmp_path):
    path = write(tmp_path / "log.csv", "user,item,timestamp\na,x,10\nb,y,20\n")
    ds = load(path)
    assert ds.events[["user_id", "item_id", "timestamp"]].values.tolist() == [
        ["a", "x", 10],
        ["b", "y", 20],
    ]
    assert ds.meta["columns"] == {"user_id": "user", "item_id": "item", "timestamp": "timestamp"}
    assert ds.events["value"].isna().all()


CASES = [(field, name) for field, names in COLUMN_NAMES.items() for name in names]


@pytest.mark.parametrize(("field", "name"), CASES)
def test_every_known_name_is_recognised(tmp_path, field, name):
    canonical = ["user_id", "item_id", "timestamp", "event_type", "value"]
    header = [name if c == field else c for c in canonical]
    ds = read_table(table(tmp_path / "t.csv", header, ROWS))
    assert ds.meta["columns"][field] == name
    assert ds.events.values.tolist() == [list(r) for r in ROWS]


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("user_id", "UserID"),
        ("user_id", "User Id"),
        ("user_id", "visitorid"),
        ("user_id", "reviewerID"),
        ("user_id", "CUSTOMER-ID"),
        ("item_id", "itemId"),
        ("item_id", "productid"),
        ("item_id", "ASIN"),
        ("item_id", "Product"),
        ("timestamp", "unixReviewTime"),
        ("timestamp", "TS"),
        ("timestamp", "Event Time"),
        ("timestamp", "createdAt"),
        ("event_type", "Behavior"),
        ("event_type", "eventType"),
        ("value", "Stars"),
        ("value", "overall"),
    ],
)
def test_names_match_whatever_the_case_and_separators(tmp_path, field, name):
    canonical = ["user_id", "item_id", "timestamp", "event_type", "value"]
    header = [name if c == field else c for c in canonical]
    ds = read_table(table(tmp_path / "t.csv", header, ROWS))
    assert ds.meta["columns"][field] == name
    assert field in ds.meta["columns_recognised"]
    assert ds.events.values.tolist() == [list(r) for r in ROWS]


@pytest.mark.parametrize(
    ("header", "field", "candidates"),
    [
        (["user", "user_id", "item", "timestamp"], "user_id", ["user", "user_id"]),
        (["userId", "user_id", "item", "timestamp"], "user_id", ["userId", "user_id"]),
        (["user", "sku", "asin", "timestamp"], "item_id", ["sku", "asin"]),
        (["user", "item", "time", "timestamp"], "timestamp", ["time", "timestamp"]),
        (["user", "item", "ts", "event", "action"], "event_type", ["event", "action"]),
        (["user", "item", "ts", "rating", "score"], "value", ["rating", "score"]),
    ],
)
def test_two_candidates_for_a_field_is_an_error(tmp_path, header, field, candidates):
    path = table(tmp_path / "t.csv", header, [tuple(str(i) for i in range(len(header)))])
    with pytest.raises(DataError) as err:
        read_table(path)
    e = err.value
    assert (e.line, e.value) == (1, candidates)
    msg = str(e)
    assert "several columns could hold the" in msg
    assert f"columns={{{field!r}: {candidates[0]!r}}}" in msg
    assert f"--columns {field}={candidates[0]}" in msg
    with pytest.raises(DataError, match="several columns could hold"):
        load(path)  # detected as a table, then the same error


def test_explicit_columns_win(tmp_path):
    path = write(
        tmp_path / "t.csv",
        "user,user_id,item,time,timestamp,rating\na,A,x,1,100,5\nb,B,y,2,200,3\n",
    )
    ds = read_table(path, columns={"user_id": "user_id", "timestamp": "timestamp"})
    assert ds.events[["user_id", "item_id", "timestamp", "value"]].values.tolist() == [
        ["A", "x", 100, 5.0],
        ["B", "y", 200, 3.0],
    ]
    assert ds.meta["columns"] == {
        "user_id": "user_id",
        "item_id": "item",
        "timestamp": "timestamp",
        "value": "rating",
    }
    assert ds.meta["columns_recognised"] == ["item_id", "value"]
    # a given column is never a candidate for another field, even under a known name
    ds = read_table(path, columns={"user_id": "user", "item_id": "user_id", "timestamp": "time"})
    assert ds.events[["user_id", "item_id", "timestamp"]].values.tolist() == [
        ["a", "A", 1],
        ["b", "B", 2],
    ]


def test_missing_field_lists_the_names_looked_for(tmp_path):
    path = write(tmp_path / "t.csv", "person,item,time\na,x,1\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    e = err.value
    assert (e.line, e.column, e.value) == (1, "user_id", ["person", "item", "time"])
    assert "a user id column named one of user_id, user, uid" in str(e)
    assert "--columns user_id=NAME" in str(e)
    with pytest.raises(DataError, match="unrecognised data format"):
        detect_format(path)
    ds = load(path, columns={"user_id": "person"})
    assert ds.events[["user_id", "item_id", "timestamp"]].values.tolist() == [["a", "x", 1]]
    assert ds.meta["columns_recognised"] == ["item_id", "timestamp"]


def test_header_problems_come_before_an_empty_body(tmp_path):
    path = write(tmp_path / "t.csv", "person,item,time\n")
    with pytest.raises(DataError, match="column 'user_id': missing column"):
        read_table(path)
    write(path, "user,item,time\n")
    with pytest.raises(DataError, match="t.csv: no data rows"):
        read_table(path)
    write(path, "")
    with pytest.raises(DataError, match="t.csv: empty file.*a header line and data rows"):
        read_table(path)


def test_movielens_folder_is_still_movielens(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n")
    write(root / "movies.csv", "movieId,title,genres\n10,Heat (1995),Action\n")
    for target in (root, root / "ratings.csv"):
        ds = load(target)
        assert ds.meta["format"] == "movielens-csv"
        assert ds.items["title"].tolist() == ["Heat (1995)"]
        assert ds.events["event_type"].tolist() == ["rating"]
    # an explicit mapping reads the file itself as a table
    ds = load(root / "ratings.csv", columns={"user_id": "movieId", "item_id": "userId"})
    assert ds.meta["format"] == "table"
    assert ds.events[["user_id", "item_id"]].values.tolist() == [["10", "1"]]
    assert ds.items is None


def test_mapping_or_unit_for_a_fixed_format_is_a_parameter_error(tmp_path):
    root = tmp_path / "ml"
    write(root / "u.data", "1\t10\t4\t881250949\n")
    with pytest.raises(ParameterError, match=r"'columns' must be left out for .*movielens-100k"):
        load(root, columns={"user_id": "a"})
    with pytest.raises(ParameterError, match=r"'timestamp_unit' must be 's' or left out"):
        load(root, timestamp_unit="ms")
    assert load(root, timestamp_unit="s").events["timestamp"].tolist() == [881250949]
    assert load(root, columns=None, timestamp_unit=None).meta["format"] == "movielens-100k"


def test_given_column_absent_from_the_header(tmp_path):
    path = write(tmp_path / "t.csv", "user,item,time\na,x,1\n")
    with pytest.raises(DataError) as err:
        read_table(path, columns={"value": "stars"})
    assert (err.value.line, err.value.column) == (1, "stars")
    assert "missing column: got ['user', 'item', 'time']" in str(err.value)


def test_parquet_with_common_names(tmp_path):
    path = tmp_path / "ev.parquet"
    pd.DataFrame(
        {
            "customerId": [7, 8],
            "SKU": ["a", "b"],
            "date": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "quantity": [2, 3],
        }
    ).to_parquet(path)
    assert detect_format(path) == "table"
    ds = load(path)
    assert ds.events[["user_id", "item_id", "timestamp", "value"]].values.tolist() == [
        ["7", "a", 1577836800, 2.0],
        ["8", "b", 1577923200, 3.0],
    ]
    assert ds.meta["columns"] == {
        "user_id": "customerId",
        "item_id": "SKU",
        "timestamp": "date",
        "value": "quantity",
    }


def test_jsonl_reads_keys_of_every_object(tmp_path):
    records = [
        {"visitorid": 1, "itemid": 5, "timestamp": 1433221332117, "event": "view"},
        {"visitorid": 1, "itemid": 6, "timestamp": 1433221332118, "event": "rate", "rating": 4},
    ]
    path = write(tmp_path / "ev.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    assert detect_format(path) == "table"
    ds = load(path, timestamp_unit="ms")
    assert ds.events["user_id"].tolist() == ["1", "1"]
    assert ds.events["item_id"].tolist() == ["5", "6"]
    assert ds.events["timestamp"].tolist() == [1433221332, 1433221332]
    assert ds.events["event_type"].tolist() == ["view", "rate"]
    assert ds.events["value"].isna().tolist() == [True, False]  # a key seen only later
    assert ds.events["value"].iloc[1] == 4.0
    assert ds.meta["columns"] == {
        "user_id": "visitorid",
        "item_id": "itemid",
        "timestamp": "timestamp",
        "event_type": "event",
        "value": "rating",
    }


def test_jsonl_required_and_ambiguous_keys(tmp_path):
    records = [{"user": "a", "item": "x", "ts": 1}, {"user": "b", "ts": 2}]
    path = write(tmp_path / "ev.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert (err.value.line, err.value.column) == (2, "item")
    assert "missing field" in str(err.value)
    records = [{"user": "a", "item": "x", "ts": 1}, {"user": "b", "item": "y", "time": 2}]
    write(path, "\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.raises(
        DataError, match=r"several columns could hold the time: got \['ts', 'time'\]"
    ):
        read_table(path)
    write(path, "\n\n")
    with pytest.raises(DataError, match="ev.jsonl: empty file"):
        read_table(path)
    write(path, '{"user": "a", "item": "x", "ts": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match="ev.jsonl, line 2: not a JSON object"):
        read_table(path)
