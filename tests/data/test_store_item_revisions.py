"""The catalogue's revisions: a reader in another process follows item upserts
(:meth:`EventStore.items_since`), and an older store gains them when opened."""

import sqlite3

import pytest

from lifelongrec import ParameterError
from lifelongrec.data import EventStore, make_items


def _items(ids, title="t"):
    return make_items(ids, [f"{title} {i}" for i in ids], [["c"]] * len(ids), [{}] * len(ids))


def test_upserts_are_followed_by_revision(tmp_path):
    with EventStore(tmp_path / "s.sqlite") as store:
        assert store.item_revision == 0 and len(store.items_since(0)[0]) == 0
        store.upsert_items(_items(["a", "b"]))
        start = store.item_revision
        assert start == 1
        store.upsert_items(_items(["c"]))
        store.upsert_items(_items(["a"], title="new"))  # a replaced item comes again
        got, rev = store.items_since(start)
        assert got["item_id"].tolist() == ["c", "a"] and rev == 3
        assert got.set_index("item_id").loc["a", "title"] == "new a"
        empty, same = store.items_since(rev)
        assert len(empty) == 0 and same == rev
        # Whole upserts only: the limit stops after the upsert that reaches it.
        first, r1 = store.items_since(0, limit=1)
        assert first["item_id"].tolist() == ["b"] and r1 == 1  # "a" moved to revision 3
        more, r2 = store.items_since(0, limit=2)
        assert more["item_id"].tolist() == ["b", "c"] and r2 == 2
        assert store.items_since(0, limit=100)[1] == 3
        for bad in (-1, 1.5, True, "1"):
            with pytest.raises(ParameterError, match="revision"):
                store.items_since(bad)
        with pytest.raises(ParameterError, match="limit"):
            store.items_since(0, limit=0)


def test_a_store_of_schema_version_2_gains_item_revisions(tmp_path):
    path = tmp_path / "s.sqlite"
    with EventStore(path) as store:
        store.upsert_items(_items(["a"]))
    conn = sqlite3.connect(path)  # take the store back to schema 2
    conn.executescript(
        """
        DROP INDEX items_rev;
        ALTER TABLE items DROP COLUMN rev;
        PRAGMA user_version = 2;
        """
    )
    conn.close()
    with EventStore(path) as store:
        assert store.item_revision == 0  # items stored before count as revision 0
        assert store.items()["item_id"].tolist() == ["a"]
        store.upsert_items(_items(["b"]))
        assert store.items_since(0)[0]["item_id"].tolist() == ["b"]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    finally:
        conn.close()


def test_partial_catalogue_reads_agree_with_the_whole(tmp_path):
    with EventStore(tmp_path / "s.sqlite") as store:
        assert store.item_categories().empty and store.items([]).empty
        items = make_items(
            ["a", "b", "c"],
            ["A", None, "C"],
            [["x", "y"], [], ["z"]],
            [{"p": 1}, {}, {"q": [1, 2]}],
        )
        store.upsert_items(items)
        whole = store.items()
        cats = store.item_categories()
        assert cats["item_id"].tolist() == whole["item_id"].tolist()
        assert cats["categories"].tolist() == whole["categories"].tolist()
        some = store.items(["c", "missing", "a"])
        assert some["item_id"].tolist() == ["c", "a"]
        assert some.to_dict("records") == whole.set_index("item_id").loc[
            ["c", "a"]
        ].reset_index().to_dict("records")
