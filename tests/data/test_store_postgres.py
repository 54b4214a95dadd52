"""What only the PostgreSQL store has: URLs and schemas, several processes writing at
once, a server that cannot be reached or drops the connection. (Everything the two
backends share runs against both in ``test_store.py`` and ``test_store_impressions.py``.)"""

import subprocess
import sys
import threading
import time

import pytest

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data import (
    PostgresEventStore,
    StoreUnavailableError,
    is_store_url,
    make_events,
    open_store,
    shown_url,
)


def _admin(url):
    import psycopg

    return psycopg.connect(url.split("?")[0], autocommit=True)


def test_urls_and_schemas():
    assert is_store_url("postgresql://h/db") and is_store_url("postgres://h/db")
    assert not is_store_url("events.sqlite") and not is_store_url(None)
    assert shown_url("postgresql://ann:s3cret@db:5432/x?schema=a") == (
        "postgresql://ann:***@db:5432/x?schema=a"
    )
    assert shown_url("postgresql://ann@db/x") == "postgresql://ann@db/x"
    with pytest.raises(ParameterError, match="postgresql:// URL"):
        PostgresEventStore("sqlite:///events.sqlite")
    for bad in ("1abc", "a-b", "x;drop", ""):
        with pytest.raises(ParameterError, match="schema name"):
            PostgresEventStore(f"postgresql://127.0.0.1/test?schema={bad}")


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    with pytest.raises(StoreUnavailableError, match="unavailable") as info:
        PostgresEventStore("postgresql://ann:s3cret@127.0.0.1:1/test")
    assert "127.0.0.1:1" in str(info.value) and "s3cret" not in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_a_schema_of_other_tables_or_a_newer_version_is_refused(postgres_store_url):
    schema = postgres_store_url.split("schema=")[1]
    with _admin(postgres_store_url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (id int)")
    with pytest.raises(DataError, match="not a lifelongrec event store"):
        PostgresEventStore(postgres_store_url)
    with _admin(postgres_store_url) as conn:
        conn.execute(f"DROP TABLE {schema}.orders")
    PostgresEventStore(postgres_store_url).close()  # an empty schema becomes a store
    with _admin(postgres_store_url) as conn:
        conn.execute(
            f"UPDATE {schema}.lifelongrec_store SET value = 99 WHERE key = 'schema_version'"
        )
    with pytest.raises(DataError, match="newer lifelongrec"):
        PostgresEventStore(postgres_store_url)


def test_two_store_objects_on_one_schema_see_each_other(postgres_store_url):
    with open_store(postgres_store_url) as a, open_store(postgres_store_url) as b:
        assert isinstance(a, PostgresEventStore) and "schema=" in repr(a)
        a.append(make_events(["u1"], ["x"], [1]), event_ids=["e1"])
        again = b.append(make_events(["u1", "u2"], ["x", "y"], [1, 2]), event_ids=["e1", "e2"])
        assert (again.n_written, again.seqs.tolist()) == (1, [1, 2])
        assert a.read()["item_id"].tolist() == ["x", "y"] and a.last_seq == 2


WRITER = r"""
import sys
from lifelongrec.data import make_events, open_store
store = open_store(sys.argv[1])
tag, n_batches = sys.argv[2], int(sys.argv[3])
for b in range(n_batches):
    own = [f"{tag}-{b}-{k}" for k in range(30)]
    shared = [f"shared-{b}-{k}" for k in range(10)]  # every writer sends these too
    ids = own + shared
    store.append(make_events([f"user-{tag}"] * len(ids), ids, [b] * len(ids)), event_ids=ids)
store.close()
"""


def test_concurrent_writer_processes_keep_ids_idempotent_and_the_cursor_whole(
    postgres_store_url,
):
    """Three processes append at once, each resending ids the others send; a reader
    following ``seq`` meanwhile sees every event exactly once, in order: seqs are given
    in commit order, so none commits later under a smaller number."""
    n_batches, tags = 30, ["p0", "p1", "p2"]
    store = open_store(postgres_store_url)
    try:
        seen = []
        done = threading.Event()

        def follow():
            cursor = 0
            while True:
                last = done.is_set()
                page = store.read(after_seq=cursor)
                if len(page):
                    seen.append(page)
                    cursor = int(page["seq"].iloc[-1])
                if last:
                    return
                time.sleep(0.002)

        reader = threading.Thread(target=follow)
        reader.start()
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, postgres_store_url, t, str(n_batches)])
            for t in tags
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
        done.set()
        reader.join()
        final = store.read()
        total = len(tags) * n_batches * 30 + n_batches * 10
        assert len(final) == store.n_events == total == store.last_seq
        assert final["item_id"].is_unique  # an id sent by three writers is stored once
        assert final["seq"].tolist() == list(range(1, total + 1))
        import pandas as pd

        pd.testing.assert_frame_equal(pd.concat(seen, ignore_index=True), final)
    finally:
        store.close()


def test_a_dropped_connection_fails_the_call_and_the_next_one_reconnects(postgres_store_url):
    store = open_store(postgres_store_url)
    try:
        store.append(make_events(["u1"], ["a"], [1]), event_ids=["e1"])
        assert store.n_events == 1  # a reader connection is now pooled
        # The server ends every connection of this store (as a restart would).
        with _admin(postgres_store_url) as conn:
            ended = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (f"lifelongrec:{store.schema}",),
            ).fetchone()[0]
        assert ended == 2  # the writer and the pooled reader
        failures = 0
        for call in (
            lambda: store.append(make_events(["u1"], ["b"], [2]), event_ids=["e2"]),
            lambda: store.n_events,
        ):
            try:
                call()
            except StoreUnavailableError as exc:
                assert "unavailable" in str(exc)
                failures += 1
        assert failures >= 1  # the calls on dead connections failed, saying why
        # The next calls connect again; a retried append stores its event once.
        r = store.append(make_events(["u1"], ["b"], [2]), event_ids=["e2"])
        assert r.seqs.tolist() == [2] or r.n_duplicates == 1
        assert store.read()["item_id"].tolist() == ["a", "b"]
    finally:
        store.close()
