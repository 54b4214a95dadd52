"""The valid event-time range (TIMESTAMP_MIN .. TIMESTAMP_MAX) in every reader and in the
synthetic world: out-of-range and oversized times are typed errors that name the file,
line, column and value, and say which unit a value looks like."""

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import (
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    TIMESTAMP_RANGE,
    load,
    read_amazon_reviews,
    read_movielens_100k,
    read_movielens_csv,
    read_movielens_dat,
    read_table,
    synthetic,
)

MS = 1_500_000_000_123  # 2017-07-14T02:40:00.123Z in milliseconds
US = 1_500_000_000_123_456
NS = 1_500_000_000_123_456_789
WHEN = "2017-07-14T02:40:00Z"
INT64_OVER = "9223372036854775808"  # 2**63


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_range_constants():
    assert TIMESTAMP_MIN == 0
    assert TIMESTAMP_MAX == 7_258_118_399
    last = datetime.fromtimestamp(TIMESTAMP_MAX, tz=UTC)
    assert last.isoformat() == "2199-12-31T23:59:59+00:00"
    assert "7258118399" in TIMESTAMP_RANGE


# ------------------------------------------------------------------ MovieLens
def test_ml100k_millisecond_time_names_line_column_value_and_unit(tmp_path):
    write(tmp_path / "ml" / "u.data", f"1\t10\t4\t881250949\n2\t20\t5\t{MS}\n")
    with pytest.raises(DataError) as err:
        read_movielens_100k(tmp_path / "ml")
    e = err.value
    assert (e.line, e.column, e.value) == (2, "timestamp", str(MS))
    assert e.path.endswith("u.data")
    msg = str(e)
    assert "line 2, column 'timestamp': timestamp out of range: got '1500000000123'" in msg
    assert f"expected {TIMESTAMP_RANGE}" in msg
    assert f"it looks like milliseconds ({WHEN})" in msg
    assert "convert them to seconds first" in msg  # this reader has no unit option


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        ("-1", ""),
        (str(TIMESTAMP_MAX + 1), ""),
        (INT64_OVER, "does not even fit a 64-bit integer"),
        ("99999999999999999999999", "does not even fit a 64-bit integer"),
        ("1e30", "does not even fit a 64-bit integer"),
        ("-1e30", "does not even fit a 64-bit integer"),
    ],
)
def test_ml_csv_out_of_range_and_oversized_times(tmp_path, raw, note):
    root = tmp_path / "ml"
    write(root / "ratings.csv", f"userId,movieId,rating,timestamp\n1,1,4.0,5\n1,2,3.0,{raw}\n")
    with pytest.raises(DataError) as err:
        read_movielens_csv(root)
    e = err.value
    assert (e.line, e.column, e.value) == (3, "timestamp", raw)
    assert "timestamp out of range" in str(e)
    assert note in str(e)
    assert not isinstance(e, OverflowError)


def test_ml_csv_boundaries_are_accepted(tmp_path):
    root = tmp_path / "ml"
    body = f"1,1,4.0,{TIMESTAMP_MIN}\n1,2,3.0,{TIMESTAMP_MAX}\n"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n" + body)
    assert read_movielens_csv(root).events["timestamp"].tolist() == [TIMESTAMP_MIN, TIMESTAMP_MAX]


def test_ml_csv_tags_are_checked_too(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,5\n")
    write(root / "tags.csv", f"userId,movieId,tag,timestamp\n1,1,fun,{US}\n")
    with pytest.raises(DataError) as err:
        read_movielens_csv(root, include_tags=True)
    assert err.value.path.endswith("tags.csv")
    assert err.value.line == 2
    assert f"it looks like microseconds ({WHEN})" in str(err.value)


def test_ml_dat_nanoseconds(tmp_path):
    write(tmp_path / "ml-1m" / "ratings.dat", f"1::1193::5::978300760\n\n1::661::3::{NS}\n")
    with pytest.raises(DataError) as err:
        read_movielens_dat(tmp_path / "ml-1m")
    assert (err.value.line, err.value.column) == (3, "Timestamp")
    assert f"it looks like nanoseconds ({WHEN})" in str(err.value)


def test_ml_user_ages_are_integers_not_timestamps(tmp_path):
    root = tmp_path / "ml"
    write(root / "u.data", "1\t10\t4\t881250949\n")
    write(root / "u.user", "1|24|M|technician|85711\n2|old|F|writer|1\n")
    with pytest.raises(
        DataError, match=r"u.user, line 2, column 'age': non-numeric age: got 'old'"
    ):
        read_movielens_100k(root)
    write(root / "u.user", f"1|{INT64_OVER}|M|technician|85711\n")
    with pytest.raises(DataError, match=r"line 1, column 'age': age too large"):
        read_movielens_100k(root)


# ------------------------------------------------------------------------ Amazon
def review(t):
    return json.dumps({"overall": 4.0, "reviewerID": "U1", "asin": "A", "unixReviewTime": t})


@pytest.mark.parametrize(
    ("t", "note"),
    [
        (MS, f"it looks like milliseconds ({WHEN})"),
        (2**70, "does not even fit a 64-bit integer"),
        (1e30, "does not even fit a 64-bit integer"),
        (-86400, ""),
    ],
)
def test_amazon_out_of_range_times(tmp_path, t, note):
    path = tmp_path / "r.json.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(review(1472688000) + "\n\n" + review(t) + "\n")
    with pytest.raises(DataError) as err:
        read_amazon_reviews(path)
    assert (err.value.line, err.value.column) == (3, "unixReviewTime")
    assert "timestamp out of range" in str(err.value) and note in str(err.value)


# -------------------------------------------------------------------------- tables
def test_table_suggests_the_unit_option(tmp_path):
    path = write(tmp_path / "log.csv", f"user_id,item_id,timestamp\na,x,1500000000\nb,y,{MS}\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    msg = str(err.value)
    assert "log.csv, line 3, column 'timestamp': timestamp out of range" in msg
    assert "pass timestamp_unit='ms' (on the command line: --timestamp-unit ms)" in msg


@pytest.mark.parametrize(
    ("unit", "raw", "seconds"),
    [
        ("s", 1_500_000_000, 1_500_000_000),
        ("ms", MS, 1_500_000_000),
        ("us", US, 1_500_000_000),
        ("ns", NS, 1_500_000_000),
        ("ms", (TIMESTAMP_MAX + 1) * 1000 - 1, TIMESTAMP_MAX),  # the last millisecond
        ("ns", (TIMESTAMP_MAX + 1) * 10**9 - 1, TIMESTAMP_MAX),
        ("us", 999_999, 0),
    ],
)
def test_table_units_floor_to_seconds(tmp_path, unit, raw, seconds):
    path = write(tmp_path / "log.csv", f"user_id,item_id,timestamp\na,x,{raw}\n")
    ds = read_table(path, timestamp_unit=unit)
    assert ds.events["timestamp"].tolist() == [seconds]
    assert ds.meta["timestamp_unit"] == unit
    assert load(path, timestamp_unit=unit).events["timestamp"].tolist() == [seconds]


@pytest.mark.parametrize(
    ("unit", "raw", "expected"),
    [
        ("s", TIMESTAMP_MAX + 1, TIMESTAMP_RANGE),
        ("ms", (TIMESTAMP_MAX + 1) * 1000, "UTC epoch milliseconds from 0 (1970-01-01) to "),
        ("ms", US, "it looks like microseconds"),  # a finer unit than the one given
        ("ns", INT64_OVER, "does not even fit a 64-bit integer"),
        ("us", -1, "UTC epoch microseconds from 0"),
    ],
)
def test_table_out_of_range_in_each_unit(tmp_path, unit, raw, expected):
    path = write(tmp_path / "log.csv", f"user_id,item_id,timestamp\na,x,{raw}\n")
    with pytest.raises(DataError) as err:
        read_table(path, timestamp_unit=unit)
    assert (err.value.line, err.value.value) == (2, str(raw))
    assert expected in str(err.value)


def test_table_non_integer_times_are_still_refused(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1.5\n")
    with pytest.raises(DataError, match=r"line 2, column 'timestamp': non-integer timestamp"):
        read_table(path)


@pytest.mark.parametrize(
    "raw", ["2200-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31", "0001-01-01"]
)
def test_table_iso_times_outside_the_range(tmp_path, raw):
    path = write(tmp_path / "log.csv", f"user_id,item_id,timestamp\na,x,2020-01-01\nb,y,{raw}\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert (err.value.line, err.value.value) == (3, raw)
    assert "timestamp out of range" in str(err.value)
    assert "from 1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z" in str(err.value)


def test_table_iso_edges_and_offsets(tmp_path):
    body = "a,x,1970-01-01T00:00:00Z\nb,y,2199-12-31T23:59:59Z\nc,z,2200-01-01T00:59:59+01:00\n"
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\n" + body)
    assert read_table(path).events["timestamp"].tolist() == [0, TIMESTAMP_MAX, TIMESTAMP_MAX]
    write(path, "user_id,item_id,timestamp\na,x,2020-01-01\nb,y,not a date\n")
    with pytest.raises(DataError, match=r"line 3, column 'timestamp': unparsable timestamp"):
        read_table(path)


def test_parquet_datetimes_and_oversized_integers(tmp_path):
    path = tmp_path / "ev.parquet"
    stamps = [datetime(2020, 1, 1), datetime(2300, 1, 1)]
    table = pa.table(
        {
            "user_id": ["a", "b"],
            "item_id": ["x", "y"],
            "timestamp": pa.array(stamps, type=pa.timestamp("us")),
        }
    )
    pq.write_table(table, path)
    with pytest.raises(DataError) as err:
        read_table(path)
    assert "ev.parquet, column 'timestamp': timestamp out of range in row 2" in str(err.value)
    table = pa.table(
        {
            "user_id": ["a", "b"],
            "item_id": ["x", "y"],
            "timestamp": pa.array([5, 2**63 + 1], pa.uint64()),
        }
    )
    pq.write_table(table, path)
    with pytest.raises(DataError) as err:
        read_table(path)
    assert "timestamp out of range in row 2" in str(err.value)
    assert "does not even fit a 64-bit integer" in str(err.value)
    frame = pd.DataFrame(
        {"user_id": ["a"], "item_id": ["x"], "timestamp": pd.to_datetime(["1960-05-01"])}
    )
    frame.to_parquet(path)
    with pytest.raises(DataError, match="timestamp out of range in row 1"):
        read_table(path)


def test_jsonl_big_numbers(tmp_path):
    lines = [
        {"user_id": "a", "item_id": "x", "timestamp": 1},
        {"user_id": "b", "item_id": "y", "timestamp": 2**64 + 5},
    ]
    path = write(tmp_path / "ev.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert (err.value.line, err.value.column) == (2, "timestamp")
    assert "does not even fit a 64-bit integer" in str(err.value)
    lines[1]["timestamp"] = MS
    lines[0]["timestamp"] = 1_400_000_000_000
    write(path, "\n".join(json.dumps(r) for r in lines) + "\n")
    assert read_table(path, timestamp_unit="ms").events["timestamp"].tolist() == [
        1_400_000_000,
        1_500_000_000,
    ]


# ----------------------------------------------------------------- synthetic world
def test_synthetic_span_must_end_within_the_range():
    start = TIMESTAMP_MAX + 1 - 30 * 86400
    ds = synthetic(n_events=200, start=start, duration_days=30, seed=1)
    assert TIMESTAMP_MAX >= ds.events["timestamp"].max() >= start
    with pytest.raises(ParameterError, match="'start'.*2199-12-31"):
        synthetic(n_events=200, start=start + 1, duration_days=30)


# ------------------------------------------------------------------- real datasets
@pytest.mark.slow
def test_real_datasets_are_within_the_range(shared_data):
    """The shared datasets are in seconds: each loads, and its span is the README's."""
    spans = {
        "ml-100k": ("movielens-100k", "1997-09-20T03:05:10", "1998-04-22T23:10:38"),
        "ml-latest-small": ("movielens-csv", "1996-03-29T18:36:55", "2018-09-24T14:27:30"),
        "amazon-2018-all-beauty-5core": ("amazon", None, None),
        "bert4rec-beauty": ("sequence", None, None),
    }
    seen = 0
    for name, (fmt, first, last) in spans.items():
        if not (shared_data / name).exists():
            continue
        seen += 1
        ds = load(shared_data / name)
        assert ds.meta["format"] == fmt
        ts = ds.events["timestamp"]
        assert TIMESTAMP_MIN <= ts.min() and ts.max() <= TIMESTAMP_MAX
        if first is not None:
            utc = [
                datetime.fromtimestamp(int(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
                for t in (ts.min(), ts.max())
            ]
            assert utc == [first, last]
        if fmt == "amazon":  # compared with an independent parse of the file
            path = next((shared_data / name).glob("*.json.gz"))
            with gzip.open(path, "rt") as fh:
                times = [json.loads(line)["unixReviewTime"] for line in fh if line.strip()]
            assert ts.tolist() == times
        if fmt == "sequence":
            assert ts.tolist() == list(range(len(ts)))
    if not seen:
        pytest.skip("no real dataset found")
