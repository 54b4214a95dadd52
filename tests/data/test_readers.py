"""Readers: real datasets against their published facts, and every error path on small files."""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import (
    EVENT_COLUMNS,
    FORMATS,
    detect_format,
    load,
    read_amazon_reviews,
    read_movielens_100k,
    read_movielens_csv,
    read_movielens_dat,
    read_sequence_file,
    read_table,
)
from lifelongrec.data._readers import _release_year


def write(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as fh:
        fh.write(text.replace("\n", newline))
    return path


def check_schema(ds):
    ev = ds.events
    assert list(ev.columns[:5]) == list(EVENT_COLUMNS)
    assert ev["timestamp"].dtype == np.int64
    assert ev["value"].dtype == np.float64
    for col in ("user_id", "item_id", "event_type"):
        assert all(isinstance(v, str) for v in ev[col].iloc[:50])


# ------------------------------------------------------------------ real datasets
def test_ml100k_counts_first_line_and_catalogue(ml100k):
    check_schema(ml100k)
    ev = ml100k.events
    assert (len(ev), ml100k.n_users, ml100k.n_items) == (100_000, 943, 1682)
    assert ev.iloc[0].to_dict() == {
        "user_id": "196",
        "item_id": "242",
        "timestamp": 881250949,
        "event_type": "rating",
        "value": 3.0,
    }
    assert set(ev["value"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ml100k.meta["format"] == "movielens-100k"
    assert ml100k.meta["timestamps"] == "epoch"
    items = ml100k.items.set_index("item_id")
    assert len(items) == 1682
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "categories"] == ["Animation", "Children's", "Comedy"]
    assert items.loc["1", "attributes"]["release_date"] == "01-Jan-1995"
    assert items.loc["1", "attributes"]["year"] == 1995
    years = items["attributes"].map(lambda a: a.get("year"))
    assert years.notna().sum() == 1681  # item 267 is "unknown", with no date
    assert (years.min(), years.max()) == (1922, 1998)
    assert items.loc["2", "categories"] == ["Action", "Adventure", "Thriller"]
    assert ml100k.report.entries[0]["rows_in"] == 100_000
    assert ml100k.report.removed() == 0


def test_ml100k_latin1_titles_and_users(ml100k):
    titles = ml100k.items["title"]
    assert titles.str.contains("é").any()  # latin-1 decoded, not mojibake
    users = ml100k.users.set_index("user_id")
    assert len(users) == 943
    assert users.loc["1"].to_dict() == {
        "age": 24,
        "gender": "M",
        "occupation": "technician",
        "zip": "85711",
    }


def test_ml_latest_small(mlsmall):
    check_schema(mlsmall)
    assert (len(mlsmall.events), mlsmall.n_users, mlsmall.n_items) == (100_836, 610, 9724)
    assert mlsmall.events.iloc[0]["timestamp"] == 964982703
    assert set(mlsmall.events["event_type"]) == {"rating"}
    assert mlsmall.events["value"].min() == 0.5
    items = mlsmall.items.set_index("item_id")
    assert len(items) == 9742
    assert items.loc["11", "title"] == "American President, The (1995)"
    assert items.loc["11", "categories"] == ["Comedy", "Drama", "Romance"]
    assert items.loc["114335", "categories"] == []  # "(no genres listed)"
    assert items.loc["1", "attributes"] == {"imdb_id": "0114709", "tmdb_id": "862", "year": 1995}
    years = items["attributes"].map(lambda a: a.get("year"))
    assert (years.notna().sum(), years.min(), years.max()) == (9730, 1902, 2018)
    assert items.loc["171749", "attributes"]["year"] == 2006  # "(2006–2007)": the first year
    assert items.loc["40697", "title"] == "Babylon 5"
    assert "year" not in items.loc["40697", "attributes"]  # no year in the title
    assert mlsmall.users is None


def test_ml_latest_small_tags_are_opt_in(mlsmall_dir):
    ds = read_movielens_csv(mlsmall_dir, include_tags=True)
    counts = ds.events["event_type"].value_counts().to_dict()
    assert counts == {"rating": 100_836, "tag": 3683}
    tags = ds.events[ds.events["event_type"] == "tag"]
    assert tags["value"].isna().all()
    assert tags.iloc[0][["user_id", "item_id", "timestamp"]].tolist() == ["2", "60756", 1445714994]
    assert [e["step"] for e in ds.report.entries] == ["read ratings.csv", "read tags.csv"]


def test_amazon_beauty(amazon, amazon_file):
    check_schema(amazon)
    assert (len(amazon.events), amazon.n_users, amazon.n_items) == (5269, 991, 85)
    first = amazon.events.iloc[0]
    assert (first["user_id"], first["item_id"], first["timestamp"], first["value"]) == (
        "A3CIUOJXQ5VDQ2",
        "B0000530HU",
        1472688000,
        5.0,
    )
    assert set(amazon.events["event_type"]) == {"rating"}
    assert len(amazon.items) == 85
    assert amazon.items["title"].isna().all()
    assert (amazon.items["categories"].map(len) == 0).all()
    with gzip.open(amazon_file, "rt") as fh:
        n_verified = sum(json.loads(line).get("verified") is True for line in fh)
    assert amazon.meta["verified"] == n_verified
    assert "verified" not in amazon.events.columns
    flagged = read_amazon_reviews(amazon_file, verified=True)
    assert flagged.events["verified"].sum() == n_verified


def test_bert4rec_beauty_sequence(beauty):
    check_schema(beauty)
    ev = beauty.events
    assert (len(ev), beauty.n_users, beauty.n_items) == (353_962, 40_226, 54_542)
    assert beauty.meta["timestamps"] == "ordinal"
    assert np.array_equal(ev["timestamp"].to_numpy(), np.arange(353_962))
    assert ev.iloc[0][["user_id", "item_id"]].tolist() == ["1", "1"]
    assert ev.iloc[-1][["user_id", "item_id"]].tolist() == ["40226", "29458"]
    assert set(ev["event_type"]) == {"interaction"}
    assert ev["value"].isna().all()


def test_detect_format_on_real_data(shared_data):
    cases = {
        "ml-100k": "movielens-100k",
        "ml-100k/u.data": "movielens-100k",
        "ml-latest-small": "movielens-csv",
        "ml-latest-small/ratings.csv": "movielens-csv",
        "amazon-2018-all-beauty-5core": "amazon",
        "amazon-2018-all-beauty-5core/All_Beauty_5.json.gz": "amazon",
        "bert4rec-beauty": "sequence",
        "bert4rec-beauty/beauty.txt": "sequence",
    }
    for rel, fmt in cases.items():
        if (shared_data / rel).exists():
            assert detect_format(shared_data / rel) == fmt, rel
    assert set(cases.values()) <= set(FORMATS)


def test_load_folder_resolves_the_single_file(beauty_file):
    ds = load(beauty_file.parent)
    assert ds.meta["format"] == "sequence"
    assert ds.name == str(beauty_file)
    assert len(load(beauty_file.parent, format="sequence")) == 353_962


# --------------------------------------------------------------- MovieLens 100K files
def ml100k_tree(tmp_path, data="1\t10\t4\t100\n2\t20\t5\t200\n", item=None, genre=None):
    root = tmp_path / "ml"
    write(root / "u.data", data)
    if item is not None:
        write(root / "u.item", item, encoding="latin-1")
    if genre is not None:
        write(root / "u.genre", genre)
    return root


def test_ml100k_small_tree_without_genre_file(tmp_path):
    flags = "|".join(["0"] * 17 + ["1", "1"])
    root = ml100k_tree(tmp_path, item=f"10|Café (1990)|01-Jan-1990||http://x|{flags}\n")
    ds = read_movielens_100k(root)
    assert ds.items.iloc[0]["title"] == "Café (1990)"
    assert ds.items.iloc[0]["categories"] == ["War", "Western"]
    assert ds.items.iloc[0]["attributes"] == {
        "release_date": "01-Jan-1990",
        "imdb_url": "http://x",
        "year": 1990,
    }
    assert ds.users is None
    assert read_movielens_100k(root / "u.data").events.equals(ds.events)


def test_ml100k_genre_file_names_categories(tmp_path):
    root = ml100k_tree(tmp_path, item="10|A|||u|0|1\n", genre="x|0\ny|1\n\n")
    assert read_movielens_100k(root).items.iloc[0]["categories"] == ["y"]


def test_ml100k_wrong_number_of_fields(tmp_path):
    root = ml100k_tree(tmp_path, data="1\t10\t4\t100\n2\t20\t5\n")
    with pytest.raises(DataError) as err:
        read_movielens_100k(root)
    msg = str(err.value)
    assert "u.data, line 2: wrong number of fields (3)" in msg
    assert "'2\\t20\\t5'" in msg
    assert "expected 4 fields separated by '\\t' (user_id, item_id, rating, timestamp)" in msg
    assert err.value.line == 2


def test_ml100k_non_numeric_timestamp_names_exact_line(tmp_path):
    root = ml100k_tree(tmp_path, data="1\t10\t4\t100\n\n2\t20\t5\t200\n3\t30\t1\tsoon\n")
    with pytest.raises(DataError) as err:
        read_movielens_100k(root)
    assert err.value.line == 4  # the blank line 2 still counts
    assert err.value.column == "timestamp"
    assert "line 4, column 'timestamp': non-numeric timestamp: got 'soon'" in str(err.value)
    assert "expected an integer Unix timestamp" in str(err.value)


def test_ml100k_non_numeric_rating(tmp_path):
    root = ml100k_tree(tmp_path, data="1\t10\tfive\t100\n")
    with pytest.raises(DataError, match=r"line 1, column 'rating': non-numeric rating: got 'five'"):
        read_movielens_100k(root)


def test_ml100k_bad_genre_flag(tmp_path):
    root = ml100k_tree(tmp_path, item="10|A|||u|0|x\n", genre="x|0\ny|1\n")
    with pytest.raises(
        DataError, match=r"u.item, line 1, column 'y': bad genre flag: got 'x'; expected 0 or 1"
    ):
        read_movielens_100k(root)


def test_ml100k_empty_and_missing(tmp_path):
    root = ml100k_tree(tmp_path, data="")
    with pytest.raises(DataError, match=r"u.data: empty file"):
        read_movielens_100k(root)
    with pytest.raises(FileNotFoundError, match="MovieLens 100K folder not found"):
        read_movielens_100k(tmp_path / "nowhere")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="file u.data not found"):
        read_movielens_100k(tmp_path / "empty_dir")


# ------------------------------------------------------------------ MovieLens CSV
RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n2,1,5,964982224\n"
MOVIES = (
    'movieId,title,genres\n1,"Toy Story, The (1995)",Adventure|Comedy\n3,Odd,(no genres listed)\n'
)


def test_ml_csv_crlf_quoted_and_25m_style(tmp_path):
    root = tmp_path / "ml-25m"
    write(root / "ratings.csv", RATINGS, newline="\r\n")
    write(root / "movies.csv", MOVIES, newline="\r\n")
    ds = read_movielens_csv(root)
    assert ds.events["value"].tolist() == [4.0, 3.5, 5.0]
    assert ds.items["title"].tolist() == ["Toy Story, The (1995)", "Odd"]
    assert ds.items["categories"].tolist() == [["Adventure", "Comedy"], []]
    assert ds.items["attributes"].tolist() == [{"year": 1995}, {}]
    assert detect_format(root) == "movielens-csv"


@pytest.mark.parametrize(
    ("title", "release_date", "year"),
    [
        ("Heat (1995)", None, 1995),
        ("Heat (1995)  ", None, 1995),  # trailing blanks
        ("2001: A Space Odyssey (1968)", None, 1968),  # a number inside the title
        ("1984 (1956)", None, 1956),
        ("Babylon 5 (1994-1998)", None, 1994),  # a span: the first year
        ("Death Note (2006\u20132007)", None, 2006),  # en dash
        ("Show (2017- )", None, 2017),  # an open span
        ("Babylon 5", None, None),
        ("Kids (1995) Remastered", None, None),  # the year must end the title
        ("Short (95)", None, None),
        (None, None, None),
        ("Toy Story (1995)", "01-Jan-1996", 1996),  # ml-100k's release date first
        ("Toy Story (1995)", "", 1995),  # an empty date: the title's year
        ("Toy Story", "sometime", None),
    ],
)
def test_release_year(title, release_date, year):
    assert _release_year(title, release_date) == year


def test_ml_csv_missing_column(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,timestamp\n1,1,964982703\n")
    with pytest.raises(DataError) as err:
        read_movielens_csv(root)
    msg = str(err.value)
    assert "ratings.csv, line 1, column 'rating': missing column" in msg
    assert "got ['userId', 'movieId', 'timestamp']" in msg
    assert "expected a header with columns userId, movieId, rating, timestamp" in msg


def test_ml_csv_short_and_long_rows(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n\n2,2,3.0\n")
    with pytest.raises(DataError, match=r"ratings.csv, line 4: wrong number of fields.*'2,2,3.0'"):
        read_movielens_csv(root)
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n2,2,3.0,1,9\n")
    with pytest.raises(DataError, match=r"ratings.csv, line 3: wrong number of fields \(5\)"):
        read_movielens_csv(root)


def test_ml_csv_bad_values_report_exact_line(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,good,2\n")
    with pytest.raises(DataError, match=r"line 3, column 'rating': non-numeric rating: got 'good'"):
        read_movielens_csv(root)
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,4,2\n1,3,4,2.5\n")
    with pytest.raises(
        DataError, match=r"line 4, column 'timestamp': non-integer timestamp: got '2.5'"
    ):
        read_movielens_csv(root)
    # a quoted field spanning two lines shifts the physical line numbers; they stay exact
    write(root / "ratings.csv", RATINGS)
    write(
        root / "tags.csv",
        'userId,movieId,tag,timestamp\n1,1,"two\nlines",5\n1,1,ok,later\n',
    )
    with pytest.raises(DataError, match=r"tags.csv, line 4, column 'timestamp': non-numeric"):
        read_movielens_csv(root, include_tags=True)


def test_ml_csv_empty_file_and_header_only(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", "")
    with pytest.raises(DataError, match=r"ratings.csv: empty file"):
        read_movielens_csv(root)
    write(root / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match=r"ratings.csv: no data rows"):
        read_movielens_csv(root)


def test_ml_csv_missing_tags_file(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.csv", RATINGS)
    with pytest.raises(FileNotFoundError, match="tags.csv"):
        read_movielens_csv(root, include_tags=True)


# ------------------------------------------------------------------ MovieLens .dat
def dat_tree(tmp_path):
    root = tmp_path / "ml-1m"
    write(
        root / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    )
    write(
        root / "movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Café: A Story (1996)::Animation|Children's\n",
        encoding="latin-1",
    )
    write(root / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    return root


def test_ml_dat_reads_ratings_movies_users(tmp_path):
    root = dat_tree(tmp_path)
    assert detect_format(root) == "movielens-dat"
    ds = load(root)
    assert ds.meta["format"] == "movielens-dat"
    assert ds.events.iloc[0].to_dict() == {
        "user_id": "1",
        "item_id": "1193",
        "timestamp": 978300760,
        "event_type": "rating",
        "value": 5.0,
    }
    items = ds.items.set_index("item_id")
    assert items.loc["661", "title"] == "Café: A Story (1996)"
    assert items.loc["661", "categories"] == ["Animation", "Children's"]
    assert items["attributes"].tolist() == [{"year": 1975}, {"year": 1996}]
    assert ds.users.to_dict("records")[1] == {
        "user_id": "2",
        "gender": "M",
        "age": 56,
        "occupation": "16",
        "zip": "70072",
    }


def test_ml_dat_errors(tmp_path):
    root = dat_tree(tmp_path)
    write(root / "ratings.dat", "1::1193::5::978300760\n1::661::3\n")
    with pytest.raises(
        DataError,
        match=r"ratings.dat, line 2: wrong number of fields \(3\).*expected 4 fields separated by '::'",
    ):
        read_movielens_dat(root)
    write(root / "ratings.dat", "1::1193::5::978300760\n1::661::3::x\n")
    with pytest.raises(
        DataError, match=r"ratings.dat, line 2, column 'Timestamp': non-numeric timestamp: got 'x'"
    ):
        read_movielens_dat(root)
    write(root / "ratings.dat", "1::1193::5::978300760\n")
    with pytest.raises(FileNotFoundError, match="tags.dat"):
        read_movielens_dat(root, include_tags=True)


# ------------------------------------------------------------------------ Amazon
def review(**kw):
    base = {"overall": 4.0, "reviewerID": "U1", "asin": "0001", "unixReviewTime": 100}
    base.update(kw)
    return json.dumps(base)


def test_amazon_plain_jsonl_keeps_id_spelling(tmp_path):
    path = write(
        tmp_path / "r.jsonl", "\n".join([review(), review(reviewerID="U2", verified=True)]) + "\n"
    )
    ds = read_amazon_reviews(path)
    assert ds.events["item_id"].tolist() == ["0001", "0001"]  # leading zeros kept
    assert ds.meta["verified"] == 1
    assert detect_format(path) == "amazon"


def test_amazon_bad_json_line(tmp_path):
    path = tmp_path / "r.json.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(review() + "\n" + review() + "\n{oops\n")
    with pytest.raises(DataError) as err:
        read_amazon_reviews(path)
    assert err.value.line == 3
    assert "r.json.gz, line 3: invalid JSON" in str(err.value)
    assert "expected one JSON object per line" in str(err.value)
    (tmp_path / "broken.json.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"broken.json.gz: cannot read file"):
        read_amazon_reviews(tmp_path / "broken.json.gz")


def test_amazon_missing_key_and_bad_rating(tmp_path):
    bad = json.dumps({"overall": 4.0, "reviewerID": "U1", "unixReviewTime": 1})
    path = write(tmp_path / "r.json", review() + "\n" + bad + "\n")
    with pytest.raises(DataError, match=r"line 2, column 'asin': missing field"):
        read_amazon_reviews(path)
    write(path, review() + "\n" + review(overall="great") + "\n")
    with pytest.raises(
        DataError, match=r"line 2, column 'overall': non-numeric rating: got 'great'"
    ):
        read_amazon_reviews(path)
    write(path, "\n\n")
    with pytest.raises(DataError, match=r"r.json: empty file"):
        read_amazon_reviews(path)


# ---------------------------------------------------------------------- sequences
def test_sequence_tabs_spaces_and_blank_lines(tmp_path):
    path = write(tmp_path / "seq.txt", "u1 a\nu1\tb\n\n  u2   c  \n")
    ds = read_sequence_file(path)
    assert ds.events[["user_id", "item_id"]].values.tolist() == [
        ["u1", "a"],
        ["u1", "b"],
        ["u2", "c"],
    ]
    assert ds.events["timestamp"].tolist() == [0, 1, 3]  # 0-based line numbers
    assert detect_format(path) == "sequence"


def test_sequence_malformed_line(tmp_path):
    path = write(tmp_path / "seq.txt", "1 1\n1 2\n1 3 7\n")
    with pytest.raises(DataError) as err:
        read_sequence_file(path)
    assert str(err.value).endswith(
        "seq.txt, line 3: wrong number of fields (3): got '1 3 7'; "
        "expected 2 fields separated by whitespace (user_id, item_id)"
    )
    with pytest.raises(DataError, match="empty file"):
        read_sequence_file(write(tmp_path / "empty.txt", ""))


def test_load_sequence_file_with_one_malformed_line_names_that_line(tmp_path):
    # Auto-detection must not turn one bad line into "unrecognised format".
    body = "".join(f"u1 i{i}\n" for i in range(14)) + "u2\n" + "u3 i1\n" * 5
    path = write(tmp_path / "seq.txt", body)
    with pytest.raises(DataError) as err:
        load(path)
    assert "seq.txt, line 15: wrong number of fields (1): got 'u2'" in str(err.value)


# -------------------------------------------------------------------------- tables
def test_table_csv_with_mapping_and_iso_times(tmp_path):
    path = write(
        tmp_path / "log.csv",
        "uid,sku,ts,action,rating,extra\n"
        "a,x,2020-01-01T00:00:00Z,view,,1\n"
        "a,y,2020-01-01 01:00:00+01:00,buy,5,2\n"
        "b,x,2020-01-02,view,NaN,3\n",
    )
    cols = {
        "user_id": "uid",
        "item_id": "sku",
        "timestamp": "ts",
        "event_type": "action",
        "value": "rating",
    }
    ds = read_table(path, columns=cols)
    assert ds.events["timestamp"].tolist() == [1577836800, 1577836800, 1577923200]
    assert ds.events["event_type"].tolist() == ["view", "buy", "view"]
    assert ds.events["value"].isna().tolist() == [True, False, True]
    assert ds.meta["columns"] == cols
    assert load(path, columns=cols).events.equals(ds.events)


def test_table_standard_names_tsv_and_millis(tmp_path):
    path = write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\n1\t2\t1500000000123\n")
    ds = read_table(path, timestamp_unit="ms")
    assert ds.events.iloc[0][["user_id", "item_id", "timestamp", "event_type"]].tolist() == [
        "1",
        "2",
        1500000000,
        "interaction",
    ]
    assert detect_format(path) == "table"


def test_table_parquet_and_jsonl(tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": ["a", "b"],
            "timestamp": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "value": [1.0, None],
        }
    )
    frame.to_parquet(tmp_path / "ev.parquet")
    ds = load(tmp_path / "ev.parquet")
    assert ds.meta["format"] == "table"
    assert ds.events["user_id"].tolist() == ["1", "2"]
    assert ds.events["timestamp"].tolist() == [1577836800, 1577923200]
    path = write(
        tmp_path / "ev.jsonl",
        '{"user_id": "u", "item_id": 7, "timestamp": 10, "event_type": "click"}\n'
        '{"user_id": "v", "item_id": 8, "timestamp": 11, "event_type": "cart"}\n',
    )
    ds = load(path)
    assert ds.events["item_id"].tolist() == ["7", "8"]
    assert ds.events["event_type"].tolist() == ["click", "cart"]


def test_table_missing_mapped_column(tmp_path):
    path = write(tmp_path / "log.csv", "uid,sku,when\na,x,1\n")
    with pytest.raises(DataError) as err:
        read_table(path, columns={"user_id": "uid", "item_id": "sku", "timestamp": "ts"})
    assert "log.csv, line 1, column 'ts': missing column: got ['uid', 'sku', 'when']" in str(
        err.value
    )
    pq = tmp_path / "ev.parquet"
    pd.DataFrame({"person": ["a"], "item_id": ["x"], "timestamp": [1]}).to_parquet(pq)
    with pytest.raises(DataError, match=r"ev.parquet, column 'user_id': missing column"):
        read_table(pq)
    with pytest.raises(DataError, match=r"column 'value': missing column"):
        read_table(pq, columns={"user_id": "person", "value": "value"})


def test_table_bad_timestamps(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1\na,y,2\nb,z,three\n")
    with pytest.raises(
        DataError, match=r"log.csv, line 4, column 'timestamp': non-numeric timestamp: got 'three'"
    ):
        read_table(path)
    write(path, "user_id,item_id,timestamp\na,x,2020-01-01\na,y,yesterday\n")
    with pytest.raises(
        DataError,
        match=r"line 3, column 'timestamp': unparsable timestamp: got 'yesterday'; expected an ISO-8601",
    ):
        read_table(path)
    write(path, "user_id,item_id,timestamp,value\na,x,1,bad\n")
    with pytest.raises(DataError, match=r"line 2, column 'value': non-numeric value: got 'bad'"):
        read_table(path)
    pq = tmp_path / "ev.parquet"
    pd.DataFrame(
        {"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": [1.0, None]}
    ).to_parquet(pq)
    with pytest.raises(DataError, match=r"non-numeric timestamp in row 2"):
        read_table(pq)


def test_table_parameter_errors(tmp_path):
    path = write(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1\n")
    with pytest.raises(ParameterError, match="'columns'"):
        read_table(path, columns={"user": "user_id"})
    with pytest.raises(ParameterError, match="'timestamp_unit'"):
        read_table(path, timestamp_unit="minutes")
    with pytest.raises(DataError, match="unsupported table file"):
        read_table(write(tmp_path / "log.xlsx", "x"))


# ------------------------------------------------------------------ detect and load
def test_unknown_format_lists_what_was_looked_for(tmp_path):
    path = write(tmp_path / "notes.txt", "this is not data\nat all, really\n")
    with pytest.raises(DataError) as err:
        detect_format(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: unrecognised data format")
    for word in ("u.data", "ratings.csv", "ratings.dat", "reviewerID", "'user item'", "columns="):
        assert word in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="unrecognised data format"):
        load(tmp_path / "empty")
    csv_path = write(tmp_path / "x.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="unrecognised data format"):
        detect_format(csv_path)


def test_missing_path_and_bad_format_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file or folder not found"):
        load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "missing")
    path = write(tmp_path / "s.txt", "1 2\n")
    with pytest.raises(ParameterError, match="'format' must be one of movielens-100k"):
        load(path, format="excel")


def test_folder_with_several_data_files(tmp_path):
    write(tmp_path / "d" / "a.txt", "1 2\n")
    write(tmp_path / "d" / "b.txt", "1 2\n")
    write(tmp_path / "d" / "README.md", "1 2\n")
    with pytest.raises(
        DataError, match=r"several data files in the folder: got \['a.txt', 'b.txt'\]"
    ):
        detect_format(tmp_path / "d")
    (tmp_path / "d" / "b.txt").unlink()
    assert load(tmp_path / "d").events["item_id"].tolist() == ["2"]


def test_ml_dat_reads_tags_as_tag_events(tmp_path):
    root = tmp_path / "ml-dat"
    root.mkdir()
    write(root / "ratings.dat", "1::1193::5::978300760\n2::661::3::978302109\n")
    write(root / "tags.dat", "1::661::funny::978300800\n2::1193::long::978302200\n")
    ds = read_movielens_dat(root, include_tags=True)
    ev = ds.events
    tags = ev[ev["event_type"] == "tag"]
    assert len(ev) == 4 and tags["item_id"].tolist() == ["661", "1193"]
    assert tags["timestamp"].tolist() == [978300800, 978302200] and tags["value"].isna().all()
    assert [e["step"] for e in ds.report.entries] == ["read ratings.dat", "read tags.dat"]
