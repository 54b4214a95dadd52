"""The embedded event store: round trips, idempotency, atomicity, errors, erasure,
the catalogue, threads, and durability under ``kill -9``."""

import doctest
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

import lifelongrec.data._store as store_module
from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    AppendResult,
    Dataset,
    EventStore,
    PostgresEventStore,
    StoreClosedError,
    make_events,
    make_items,
    open_store,
)

USERS = ["u1", "u2", "u1", "u3", "u1"]
ITEMS = ["a", "b", "c", "a", "b"]
TIMES = [30, 10, 10, 20, 40]
TYPES = ["view", "click", "view", "purchase", "view"]
VALUES = [1.0, np.nan, 2.5, np.nan, -3.0]


@pytest.fixture
def path(tmp_path):
    return tmp_path / "events.sqlite"


@pytest.fixture
def store(store_location):
    """A new store, once on each backend (SQLite, PostgreSQL where a server runs)."""
    with open_store(store_location) as s:
        yield s


def sample(n=None):
    cut = slice(None, n)
    times = np.asarray(TIMES[cut], dtype=np.int64)
    return make_events(USERS[cut], ITEMS[cut], times, TYPES[cut], VALUES[cut])


def expected(users, items, times, types, values, seqs):
    frame = make_events(users, items, np.asarray(times, dtype=np.int64), types, values)
    frame["seq"] = np.asarray(seqs, dtype=np.int64)
    return frame


# ------------------------------------------------------------------ round trips
def test_append_then_read_gives_the_frame_back_with_dtypes(store):
    result = store.append(sample())
    assert isinstance(result, AppendResult)
    assert (result.n_written, result.n_duplicates, result.last_seq) == (5, 0, 5)
    assert result.seqs.tolist() == [1, 2, 3, 4, 5] and result.seqs.dtype == np.int64
    got = store.read()
    pd.testing.assert_frame_equal(got, expected(USERS, ITEMS, TIMES, TYPES, VALUES, range(1, 6)))
    assert list(got.columns) == [*EVENT_COLUMNS, "seq"]
    assert (store.n_events, store.last_seq) == (5, 5)


def test_append_accepts_object_columns_any_order_and_index(store):
    frame = pd.DataFrame(
        {
            "value": np.array([None, 4, 0.5], dtype=object),
            "event_type": np.array(["x", "y", "z"], dtype=object),
            "timestamp": np.array([5, np.int64(-7), 2**40], dtype=object),
            "item_id": np.array(["i1", "i2", "i3"]),  # numpy str_
            "user_id": ["a", "b", "c"],
        },
        index=[10, 3, 7],
    )
    before = frame.copy()
    store.append(frame)
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is untouched
    want = expected(
        ["a", "b", "c"],
        ["i1", "i2", "i3"],
        [5, -7, 2**40],
        ["x", "y", "z"],
        [np.nan, 4.0, 0.5],
        [1, 2, 3],
    )
    pd.testing.assert_frame_equal(store.read(), want)


def test_seq_grows_across_calls_and_read_pages_with_a_cursor(store):
    store.append(sample(2))
    r = store.append(sample())
    assert r.seqs.tolist() == [3, 4, 5, 6, 7] and r.last_seq == 7
    full = store.read()
    assert full["seq"].tolist() == list(range(1, 8))
    pages, cursor = [], 0
    while True:
        page = store.read(after_seq=cursor, limit=3)
        if page.empty:
            break
        assert len(page) <= 3
        pages.append(page)
        cursor = int(page["seq"].iloc[-1])
    pd.testing.assert_frame_equal(pd.concat(pages, ignore_index=True), full)
    assert store.read(after_seq=7).empty and len(store.read(limit=0)) == 0


def test_empty_batch_writes_nothing(store):
    store.append(sample(2))
    r = store.append(sample(0))
    assert (r.n_written, r.n_duplicates, r.last_seq, len(r.seqs)) == (0, 0, 2, 0)
    empty = store.read(after_seq=2)
    pd.testing.assert_frame_equal(empty, expected([], [], [], [], [], []))


# ------------------------------------------------------------------ idempotency
def test_event_ids_make_appends_idempotent(store):
    first = store.append(sample(3), event_ids=["e1", None, "e3"])
    assert first.seqs.tolist() == [1, 2, 3]
    again = store.append(sample(3), event_ids=["e1", None, "e3"])
    # the id-less row is written again; the two ids are duplicates of seqs 1 and 3
    assert (again.n_written, again.n_duplicates, again.last_seq) == (1, 2, 4)
    assert again.seqs.tolist() == [1, 4, 3]
    assert store.n_events == 4


def test_repeated_ids_inside_a_batch_first_wins(store):
    events = make_events(["u", "v", "w", "x"], ["first", "second", "third", "fourth"], [1, 2, 3, 4])
    r = store.append(events, event_ids=np.array(["k", "k", None, "k"], dtype=object))
    assert (r.n_written, r.n_duplicates, r.seqs.tolist()) == (2, 2, [1, 1, 2, 1])
    assert store.read()["item_id"].tolist() == ["first", "third"]


def test_nan_event_ids_count_as_none(store):
    r = store.append(sample(2), event_ids=pd.Series(["x", None]).tolist())
    r2 = store.append(sample(2), event_ids=[np.nan, "x"])
    assert (r.n_written, r2.n_written, r2.n_duplicates) == (2, 1, 1)


# ------------------------------------------------------------------ bad batches
BAD_ROWS = [
    ("user_id", ""),
    ("user_id", None),
    ("item_id", 17),
    ("event_type", ""),
    ("timestamp", 1.5),
    ("timestamp", "2020-01-01"),
    ("timestamp", True),
    ("timestamp", 2**63),
    ("value", "high"),
    ("value", True),
]


@pytest.mark.parametrize(("field", "bad"), BAD_ROWS)
def test_a_bad_row_names_row_and_field_and_writes_nothing(store, field, bad):
    store.append(sample(2), event_ids=["k0", "k1"])
    frame = sample().astype(object)
    frame.loc[3, field] = bad
    with pytest.raises(DataError) as info:
        store.append(frame, event_ids=["n0", "n1", "n2", "n3", "n4"])
    assert info.value.column == field and info.value.row == 3
    assert "row 3" in str(info.value)
    assert (store.n_events, store.last_seq) == (2, 2)
    # none of the batch's ids was recorded either
    assert store.append(sample(1), event_ids=["n0"]).n_written == 1


def test_whole_column_of_the_wrong_dtype_names_the_first_row(store):
    frame = sample()
    frame["timestamp"] = frame["timestamp"].astype(float)
    with pytest.raises(DataError, match="row 0") as info:
        store.append(frame)
    assert info.value.column == "timestamp"
    frame = sample()
    frame["timestamp"] = frame["timestamp"].astype(np.uint64)
    frame.loc[4, "timestamp"] = np.uint64(2**63)
    with pytest.raises(DataError, match="row 4"):
        store.append(frame)
    frame = sample()
    frame["value"] = [True, False, True, False, True]
    with pytest.raises(DataError, match="row 0"):
        store.append(frame)
    assert store.n_events == 0


@pytest.mark.parametrize(
    ("ids", "row"), [(["a", "b", "c", 4, "e"], 3), (["a", "", "c", "d", "e"], 1)]
)
def test_a_bad_event_id_is_a_data_error(store, ids, row):
    with pytest.raises(DataError) as info:
        store.append(sample(), event_ids=ids)
    assert (info.value.column, info.value.row) == ("event_id", row)
    assert store.n_events == 0


@pytest.mark.parametrize("ids", [["a"], ["a"] * 6, "abcde", 5])
def test_event_ids_of_the_wrong_shape_are_a_parameter_error(store, ids):
    with pytest.raises(ParameterError, match="event_ids"):
        store.append(sample(), event_ids=ids)
    assert store.n_events == 0


def test_frames_with_missing_or_unknown_columns_are_refused(store):
    with pytest.raises(DataError, match="lacks required columns"):
        store.append(sample().drop(columns="value"))
    with pytest.raises(DataError, match="does not keep") as info:
        store.append(store.read().assign(extra=1))
    assert info.value.value == ["seq", "extra"]
    with pytest.raises(DataError, match="cannot use this object"):
        store.append([("u", "i", 1, "view", 1.0)])
    assert store.n_events == 0


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s: s.read(after_seq=-1), "after_seq"),
        (lambda s: s.read(after_seq=1.0), "after_seq"),
        (lambda s: s.read(limit=-2), "limit"),
        (lambda s: s.read(limit=True), "limit"),
        (lambda s: s.user_events(""), "user_id"),
        (lambda s: s.user_events(7), "user_id"),
        (lambda s: s.user_events("u1", limit=2.5), "limit"),
        (lambda s: s.delete_user(None), "user_id"),
        (lambda s: s.item(""), "item_id"),
    ],
)
def test_bad_arguments_are_parameter_errors(store, call, name):
    with pytest.raises(ParameterError) as info:
        call(store)
    assert info.value.name == name


class FailingCommit:
    """The writer connection, except that its next COMMIT fails like a full disk."""

    def __init__(self, conn):
        self.conn, self.armed = conn, True

    def execute(self, sql, *args):
        if sql == "COMMIT" and self.armed:
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_a_failed_commit_writes_nothing_and_the_store_goes_on(store):
    store.append(sample(2), event_ids=["a", "b"])
    # a full disk at COMMIT cannot be caused from outside: the store's writer connection
    # is wrapped by one that fails there
    real = store._writer
    store._writer = FailingCommit(real)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        store.append(sample(), event_ids=["c", "d", "e", "f", "g"])
    assert not real.in_transaction
    assert (store.n_events, store.last_seq) == (2, 2)
    r = store.append(sample(), event_ids=["c", "d", "e", "f", "g"])
    assert (r.n_written, r.last_seq) == (5, 7)
    store._writer = real


# ------------------------------------------------------------------ paths and files
def test_bad_paths(tmp_path):
    with pytest.raises(ParameterError, match="existing folder"):
        EventStore(tmp_path / "absent" / "events.sqlite")
    with pytest.raises(ParameterError, match="not a folder"):
        EventStore(tmp_path)
    with pytest.raises(ParameterError, match="str or os.PathLike"):
        EventStore(42)


def test_files_that_are_not_an_event_store(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all" * 100)
    with pytest.raises(DataError, match="not a lifelongrec event store"):
        EventStore(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(DataError, match="application id 0"):
        EventStore(other)


def test_a_file_that_cannot_be_opened(tmp_path):
    dangling = tmp_path / "events.sqlite"
    dangling.symlink_to(tmp_path / "absent" / "target.sqlite")
    with pytest.raises(DataError, match="cannot open the event store"):
        EventStore(dangling)


def test_a_store_from_a_newer_version_is_refused(path):
    EventStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(DataError, match="newer lifelongrec") as info:
        EventStore(path)
    assert info.value.path == str(path)


def test_an_empty_file_becomes_a_store(path):
    path.touch()
    with EventStore(path) as s:
        assert s.append(sample(1)).n_written == 1


def test_reopen_keeps_events_items_and_the_seq_counter(store_location):
    with open_store(store_location) as s:
        s.append(sample(), event_ids=["a", "b", "c", "d", "e"])
        s.upsert_items(make_items(["a"], ["Alpha"]))
        s.delete_user("u1")  # u1 holds seq 5, the last one
        assert s.last_seq == 5
    with open_store(store_location) as s:
        assert (s.n_events, s.last_seq, s.n_items) == (2, 5, 1)
        r = s.append(sample(2), event_ids=["b", "new"])  # "b" (u2) is still stored
        assert (r.n_written, r.seqs.tolist()) == (1, [2, 6])  # seq 5 is never reused


# ------------------------------------------------------------------ closed stores
CALLS = [
    lambda s: s.append(sample(1)),
    lambda s: s.read(),
    lambda s: s.user_events("u1"),
    lambda s: s.delete_user("u1"),
    lambda s: s.upsert_items(make_items(["a"])),
    lambda s: s.items(),
    lambda s: s.item("a"),
    lambda s: s.to_dataset(),
    lambda s: s.last_seq,
    lambda s: s.n_events,
    lambda s: s.n_items,
]


@pytest.mark.parametrize("call", CALLS)
def test_a_closed_store_refuses_every_call(store_location, call):
    with open_store(store_location) as s:
        s.append(sample())
    assert s.closed
    with pytest.raises(StoreClosedError, match="closed"):
        call(s)
    s.close()  # closing twice is fine
    assert "closed" in repr(s)


# ------------------------------------------------------------------ user history
def test_user_events_are_the_most_recent_in_time_order(store):
    rng = np.random.default_rng(3)
    n = 60
    users = rng.choice(["p", "q", "r"], size=n)
    times = rng.integers(0, 15, size=n)  # many ties
    items = [f"i{k}" for k in range(n)]
    store.append(make_events(users, items, times))
    table = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": times})
    table["seq"] = np.arange(1, n + 1)
    for user in ["p", "q", "r"]:
        mine = table[table["user_id"] == user].sort_values(["timestamp", "seq"], kind="stable")
        for limit in [None, 0, 1, 5, 1000]:
            got = store.user_events(user, limit=limit)
            want = mine if limit is None else mine.iloc[len(mine) - min(limit, len(mine)) :]
            assert got["item_id"].tolist() == want["item_id"].tolist()
            assert got["seq"].tolist() == want["seq"].tolist()
    none = store.user_events("nobody")
    assert none.empty and list(none.columns) == [*EVENT_COLUMNS, "seq"]


# ------------------------------------------------------------------ erasure
def test_delete_user_erases_the_events_and_their_ids(store):
    store.append(sample(), event_ids=["a", "b", "c", "d", "e"])
    assert store.delete_user("u1") == 3
    assert store.delete_user("u1") == 0 and store.delete_user("never") == 0
    left = store.read()
    assert left["user_id"].tolist() == ["u2", "u3"] and left["seq"].tolist() == [2, 4]
    assert store.user_events("u1").empty
    again = store.append(sample(), event_ids=["a", "b", "c", "d", "e"])
    assert again.n_written == 3 and again.seqs.tolist() == [6, 2, 7, 4, 8]


def test_deleted_events_leave_no_bytes_in_the_files(path):
    marker = "ERASE-ME-7f3c9a"

    def raw() -> bytes:
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))

    with EventStore(path) as s:
        items = [f"{marker}-i{k}" for k in range(50)] + [f"kept-{k}" for k in range(50)]
        events = make_events([marker] * 50 + ["keep"] * 50, items, range(100))
        s.append(events, event_ids=[f"{marker}-e{k}" for k in range(50)] + [None] * 50)
        assert marker.encode() in raw()  # the test can fail
        assert s.delete_user(marker) == 50
        assert s.n_events == 50
    data = raw()
    assert marker.encode() not in data
    assert b"kept-49" in data  # the other user's events are still there


# ------------------------------------------------------------------ the catalogue
def catalogue():
    return make_items(
        ["m1", "m2", "m3"],
        ["Alien", None, "Ratatouille"],
        [["sci-fi", "horror"], [], ("family",)],
        [
            {"year": 1979, "price": 9.99, "tags": ["x", 1, None], "extra": {"ok": True}},
            {},
            {"year": np.int64(2007), "rating": np.float64(4.5), "new": np.bool_(False)},
        ],
    )


def test_items_round_trip_with_lists_and_dicts(store):
    assert store.upsert_items(catalogue()) == (3, 0)
    want = make_items(
        ["m1", "m2", "m3"],
        ["Alien", None, "Ratatouille"],
        [["sci-fi", "horror"], [], ["family"]],
        [
            {"year": 1979, "price": 9.99, "tags": ["x", 1, None], "extra": {"ok": True}},
            {},
            {"year": 2007, "rating": 4.5, "new": False},
        ],
    )
    got = store.items()
    pd.testing.assert_frame_equal(got, want)
    assert type(got["attributes"][2]["year"]) is int and type(got["attributes"][2]["new"]) is bool
    assert store.item("m1") == dict(zip(ITEM_COLUMNS, want.iloc[0].tolist(), strict=True))
    assert store.item("zzz") is None
    assert store.n_items == 3


def test_upsert_replaces_known_items_and_keeps_first_insertion_order(store):
    store.upsert_items(catalogue())
    update = make_items(
        ["new", "m2"], ["Fresh", "Brazil"], [["a"], ["comedy"]], [{}, {"year": 1985}]
    )
    update.loc[0, "title"] = np.nan  # a missing title
    assert store.upsert_items(update) == (1, 1)
    got = store.items()
    assert got["item_id"].tolist() == ["m1", "m2", "m3", "new"]
    assert store.item("m2") == {
        "item_id": "m2",
        "title": "Brazil",
        "categories": ["comedy"],
        "attributes": {"year": 1985},
    }
    assert store.item("new")["title"] is None


def test_empty_catalogue(store):
    got = store.items()
    assert got.empty and list(got.columns) == list(ITEM_COLUMNS)
    assert store.upsert_items(make_items([])) == (0, 0)


@pytest.mark.parametrize(
    ("field", "bad", "match"),
    [
        ("item_id", "m1", "repeated"),
        ("item_id", "", "bad item id"),
        ("title", 12, "bad title"),
        ("categories", "drama", "bad categories"),
        ("categories", ["drama", 3], "not a string"),
        ("attributes", [("k", 1)], "bad attributes"),
        ("attributes", {1: "one"}, "not a string"),
        ("attributes", {"s": {1, 2}}, "not storable"),
        ("attributes", {"t": (1, 2)}, "tuple"),
    ],
)
def test_bad_items_name_row_and_field_and_write_nothing(store, field, bad, match):
    frame = catalogue()
    frame.at[2, field] = bad
    with pytest.raises(DataError, match=match) as info:
        store.upsert_items(frame)
    assert (info.value.column, info.value.row) == (field, 2)
    assert store.n_items == 0


def test_item_frames_with_wrong_columns_are_refused(store):
    with pytest.raises(DataError, match="lacks required columns"):
        store.upsert_items(catalogue().drop(columns="attributes"))
    with pytest.raises(DataError, match="does not keep"):
        store.upsert_items(catalogue().assign(price=1.0))


# ------------------------------------------------------------------ to_dataset
def test_to_dataset_gives_events_in_time_order_and_the_catalogue(store):
    empty = store.to_dataset()
    assert isinstance(empty, Dataset) and len(empty) == 0 and empty.items is None
    store.append(sample())
    ds = store.to_dataset()
    assert ds.items is None
    order = [1, 2, 3, 0, 4]  # times 30, 10, 10, 20, 40; the tie keeps seq order
    want = make_events(
        [USERS[i] for i in order],
        [ITEMS[i] for i in order],
        np.asarray([TIMES[i] for i in order], dtype=np.int64),
        [TYPES[i] for i in order],
        [VALUES[i] for i in order],
    )
    pd.testing.assert_frame_equal(ds.events, want)
    assert ds.meta == {"format": "event-store", "timestamps": "epoch", "last_seq": 5}
    store.upsert_items(catalogue())
    pd.testing.assert_frame_equal(store.to_dataset().items, store.items())


# ------------------------------------------------------------------ threads
def test_concurrent_appends_and_cursor_reads_lose_and_double_nothing(store):
    n_threads, n_batches, own, shared = 4, 25, 20, 5
    written = [0] * n_threads
    done = threading.Event()
    seen: list[pd.DataFrame] = []
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for b in range(n_batches):
                ids = [f"t{t}-{b}-{k}" for k in range(own)] + [f"s{b}-{k}" for k in range(shared)]
                events = make_events([f"user{t}"] * len(ids), ids, [b] * len(ids))
                written[t] += store.append(events, event_ids=ids).n_written
                store.user_events(f"user{(t + 1) % n_threads}", limit=10)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def follower() -> None:
        cursor = 0
        try:
            while True:
                last_round = done.is_set()
                page = store.read(after_seq=cursor)
                if len(page):
                    seen.append(page)
                    cursor = int(page["seq"].iloc[-1])
                if last_round:
                    return
                time.sleep(0.001)  # let the writers have the interpreter
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    reader = threading.Thread(target=follower)
    reader.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    done.set()
    reader.join()
    assert not errors
    total = n_threads * n_batches * own + n_batches * shared
    final = store.read()
    assert sum(written) == total == store.n_events == len(final)
    assert final["item_id"].is_unique  # each event (its id is its item) exactly once
    assert final["seq"].tolist() == list(range(1, total + 1))
    pd.testing.assert_frame_equal(pd.concat(seen, ignore_index=True), final)


def test_close_waits_for_calls_in_flight(store_location):
    s = open_store(store_location)
    s.append(make_events(["u"] * 2000, [f"i{k}" for k in range(2000)], range(2000)))
    results = []
    th = threading.Thread(target=lambda: results.append(len(s.read())))
    th.start()
    s.close()
    th.join()
    assert results in ([2000], [])  # the read either finished or never started
    assert s.closed


# ------------------------------------------------------------------ kill -9
WRITER = r"""
import sys
from lifelongrec.data import make_events, open_store
store = open_store(sys.argv[1])
tag = sys.argv[2]
b = 0
while True:
    fresh = [f"{tag}-{b}-{k}" for k in range(40)]
    resent = [f"{tag}-{b - 1}-{k}" for k in range(10)] if b else []
    ids = resent + fresh
    r = store.append(make_events([f"user{b % 7}"] * len(ids), ids, [b] * len(ids)), event_ids=ids)
    print(f"ack {b} {r.n_written} {r.last_seq}", flush=True)
    b += 1
"""


def test_every_acknowledged_event_survives_kill_9(store_location):
    path = store_location
    rng = random.Random(11)
    acked_total = 0
    for round_ in range(3):
        tag = f"r{round_}"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = proc.stdout.readline()  # it is writing
        assert first.startswith("ack"), proc.stderr.read()
        moment = rng.uniform(0.05, 0.4)
        time.sleep(moment)
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate()
        lines = (first + rest).splitlines()
        if rest and not rest.endswith("\n"):
            lines = lines[:-1]  # a line cut by the kill was not acknowledged
        acks = [tuple(int(x) for x in line.split()[1:]) for line in lines]
        assert len(acks) >= 1 and all(written == 40 for _, written, _ in acks)
        print(f"round {round_}: killed after {moment:.3f} s, {len(acks)} batches acknowledged")

        with open_store(path) as s:  # a store a killed process had open
            events = s.read()
            stored = set(events["item_id"])
            assert events["item_id"].is_unique, f"round {round_}, kill after {moment:.3f} s"
            for b, _, last_seq in acks:
                want = {f"{tag}-{b}-{k}" for k in range(40)}
                assert want <= stored, f"batch {b} acknowledged but lost ({moment:.3f} s)"
                assert last_seq <= s.last_seq
            assert events["seq"].is_monotonic_increasing
            ids = [f"{tag}-{b}-{k}" for b, _, _ in acks for k in range(40)]
            again = s.append(make_events(["x"] * len(ids), ids, [0] * len(ids)), event_ids=ids)
            assert again.n_written == 0  # the ids survived with their events
            acked_total += len(ids)
        if not isinstance(s, PostgresEventStore):
            conn = sqlite3.connect(path)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
    assert acked_total >= 3 * 40


# ------------------------------------------------------------------ docs
def test_docstring_example_runs():
    result = doctest.testmod(store_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0


# ------------------------------------------------------- service helpers
def test_recent_events_per_user_in_time_order(store):
    store.append(
        make_events(
            ["a", "b", "a", "a", "b", "c"],
            ["x", "y", "z", "w", "x", "q"],
            [5, 1, 3, 9, 2, 4],
            event_type="view",
        )
    )
    got = store.recent_events(["b", "a", "nobody"], limit=2)
    assert got["user_id"].tolist() == ["b", "b", "a", "a"]
    assert got["item_id"].tolist() == ["y", "x", "x", "w"]  # a's two newest: t=5, t=9
    assert got["timestamp"].tolist() == [1, 2, 5, 9]
    assert len(store.recent_events([], limit=3)) == 0
    assert store.recent_events(["a"], limit=10)["item_id"].tolist() == ["z", "x", "w"]
    many = [f"u{j}" for j in range(2000)]  # more than one query's worth of ids
    assert len(store.recent_events(many + ["c"], limit=1)) == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="limit"):
            store.recent_events(["a"], limit=bad)
    assert store.user_last_seqs() == {"a": 4, "b": 5, "c": 6}
    assert store.event_types() == ["view"]


def test_item_details_by_id(store):
    store.upsert_items(make_items(["a", "b"], ["Alpha", None], [["x", "y"], []], [{}, {}]))
    assert store.item_details(["b", "zz", "a"]) == {"a": ("Alpha", ["x", "y"]), "b": (None, [])}
    assert store.item_details([]) == {}


def test_a_new_store_file_is_private(path):
    EventStore(path).close()
    assert os.stat(path).st_mode & 0o777 == 0o600
