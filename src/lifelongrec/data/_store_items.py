"""The event store's item catalogue: upserts, reads, and items as JSON-stored rows.

:class:`CatalogueMixin` is the part of :class:`~lifelongrec.data.EventStore` that
inserts and replaces items and reads them back; categories and attributes are stored as
JSON and come back equal (numpy scalars as the equal Python values).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec.data._schema import ITEM_COLUMNS
from lifelongrec.data._store_rows import (
    _CHUNK,
    _bad,
    _exact_columns,
    _id_argument,
    _lookup,
    _strings,
)

__all__ = ["ITEM_REVISIONS_SCHEMA", "CatalogueMixin", "UpsertResult"]


class UpsertResult(tuple):
    """``(n_new, n_updated)`` of :meth:`CatalogueMixin.upsert_items`, with the
    ``revision`` the upsert gave its items as an attribute (it unpacks as the pair)."""

    revision: int

    def __new__(cls, n_new: int, n_updated: int, revision: int) -> UpsertResult:
        out = super().__new__(cls, (int(n_new), int(n_updated)))
        out.revision = int(revision)
        return out


#: Schema version 3 (added to an older store when it is opened): every upsert gives the
#: rows it writes the next revision, so a reader in another process can follow the
#: catalogue's changes (:meth:`CatalogueMixin.items_since`).
ITEM_REVISIONS_SCHEMA = """
ALTER TABLE items ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
CREATE INDEX items_rev ON items (rev);
"""


class CatalogueMixin:
    """The catalogue of :class:`~lifelongrec.data.EventStore` (a part of that class, not
    usable alone: it reads and writes through the store's connections)."""

    @property
    def n_items(self) -> int:
        """The number of items in the catalogue."""
        with self._reading() as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])

    def upsert_items(self, items: pd.DataFrame) -> UpsertResult:
        """Insert new items and replace stored ones (all four fields); one durable transaction.

        Parameters
        ----------
        items
            A frame with exactly :data:`~lifelongrec.data.ITEM_COLUMNS`: ``item_id`` a
            non-empty string, unique in the batch; ``title`` a string or missing
            (``None``/NaN); ``categories`` a list (tuple, array) of strings;
            ``attributes`` a dict with string keys whose values are ``None``, bools,
            numbers, strings, or lists and dicts of these. numpy scalars are stored as
            the equal Python values; everything else comes back equal, with its type.

        Returns
        -------
        (n_new, n_updated)
            Items added, and items that were present and are now replaced (an
            :class:`UpsertResult`: its ``revision`` is the one this upsert wrote).

        Raises
        ------
        DataError
            A column is missing or unknown, an item id repeats, or a row holds a bad
            value (the message names the row and the field). Nothing is written.
        StoreClosedError
            The store is closed.
        """
        rows = _item_rows(items)
        ids = [r[0] for r in rows]
        with self._writing() as conn:
            known = _lookup(conn, "SELECT item_id, pos FROM items WHERE item_id IN", ids)
            rev = conn.execute("SELECT coalesce(max(rev), 0) + 1 FROM items").fetchone()[0]
            conn.executemany(
                "INSERT INTO items (item_id, title, categories, attributes, rev)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET"
                " title = excluded.title, categories = excluded.categories,"
                " attributes = excluded.attributes, rev = excluded.rev",
                [(*row, rev) for row in rows],
            )
        return UpsertResult(len(rows) - len(known), len(known), rev)

    @property
    def item_revision(self) -> int:
        """The catalogue's latest revision (0: no upsert yet). Read it before
        :meth:`items`, then follow the changes with :meth:`items_since`."""
        with self._reading() as conn:
            return int(conn.execute("SELECT coalesce(max(rev), 0) FROM items").fetchone()[0])

    def items_since(
        self, revision: int, limit: int | None = None, *, with_revision: bool = False
    ) -> tuple[pd.DataFrame, int]:
        """The items added or replaced after ``revision`` (whole upserts, oldest first,
        each item once with its stored fields) and the revision they bring the reader
        to; ``limit`` stops after the upsert that reaches that many items;
        ``with_revision`` adds a ``revision`` column (each item's upsert).

        Raises
        ------
        ParameterError
            ``revision`` is not a non-negative integer, or ``limit`` not a positive one.
        """
        revision = _non_negative("revision", revision)
        if limit is not None and (_non_negative("limit", limit) == 0):
            raise ParameterError("limit", limit, "a positive integer or None")
        sql = (
            "SELECT item_id, title, categories, attributes, rev FROM items"
            " WHERE rev > ? ORDER BY rev, pos"
        )
        with self._reading() as conn:
            if limit is not None:  # whole revisions: up to the one that reaches the limit
                last = conn.execute(
                    "SELECT rev FROM items WHERE rev > ? ORDER BY rev LIMIT 1 OFFSET ?",
                    (revision, int(limit) - 1),
                ).fetchone()
                if last is not None:
                    sql = sql.replace("rev > ?", "rev > ? AND rev <= ?")
            args = (revision,) if limit is None or last is None else (revision, int(last[0]))
            rows = conn.execute(sql, args).fetchall()
        reached = int(rows[-1][4]) if rows else revision
        frame = _items_frame([r[:4] for r in rows])
        if with_revision:
            frame["revision"] = np.array([r[4] for r in rows], dtype=np.int64)
        return frame, reached

    def items(self, ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The catalogue in :data:`~lifelongrec.data.ITEM_COLUMNS`, in order of first insertion
        (``ids``: only those items, in that order, the unknown ones left out).

        Types as :func:`~lifelongrec.data.make_items` gives (``object`` columns; lists
        and dicts). An empty catalogue gives an empty frame with those columns.
        """
        if ids is None:
            with self._reading() as conn:
                return _items_frame(self._item_rows(conn))
        ids = [str(i) for i in ids]
        found: dict[str, tuple] = {}
        sql = "SELECT item_id, title, categories, attributes FROM items WHERE item_id IN"
        with self._reading() as conn:
            for start in range(0, len(ids), _CHUNK):
                part = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                for row in conn.execute(f"{sql} ({marks})", part).fetchall():
                    found[row[0]] = row
        return _items_frame([found[i] for i in ids if i in found])

    def item_categories(self) -> pd.DataFrame:
        """``item_id`` and ``categories`` (lists) of every item, in order of first
        insertion: what a service needs of the whole catalogue at a start, read without
        decoding titles and attributes (at 1M items a fraction of :meth:`items`)."""
        with self._reading() as conn:
            rows = conn.execute("SELECT item_id, categories FROM items ORDER BY pos").fetchall()
        ids = [r[0] for r in rows]
        cats = json.loads("[" + ",".join(r[1] for r in rows) + "]") if rows else []
        return pd.DataFrame(
            {
                "item_id": pd.Series(ids, dtype=object),
                "categories": pd.Series(cats, dtype=object),
            }
        )

    @staticmethod
    def _item_rows(conn: sqlite3.Connection) -> list[tuple]:
        sql = "SELECT item_id, title, categories, attributes FROM items ORDER BY pos"
        return conn.execute(sql).fetchall()

    def item(self, item_id: str) -> dict[str, Any] | None:
        """One item as ``{"item_id", "title", "categories", "attributes"}``, or ``None``.

        Raises
        ------
        ParameterError
            ``item_id`` is not a non-empty string.
        """
        item_id = _id_argument("item_id", item_id)
        sql = "SELECT item_id, title, categories, attributes FROM items WHERE item_id = ?"
        with self._reading() as conn:
            row = conn.execute(sql, (item_id,)).fetchone()
        if row is None:
            return None
        return dict(zip(ITEM_COLUMNS, _item_values(row), strict=True))

    def item_details(self, item_ids: Sequence[str]) -> dict[str, tuple[str | None, list[str]]]:
        """``{item_id: (title, categories)}`` of the given ids that are in the catalogue
        (one indexed lookup per 900 ids; for answers that show items by name)."""
        ids = [str(i) for i in item_ids]
        out: dict[str, tuple[str | None, list[str]]] = {}
        with self._reading() as conn:
            for start in range(0, len(ids), _CHUNK):
                part = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                sql = f"SELECT item_id, title, categories FROM items WHERE item_id IN ({marks})"
                for item_id, title, cats in conn.execute(sql, part).fetchall():
                    out[item_id] = (title, json.loads(cats))
        return out


def _non_negative(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ParameterError(name, value, "a non-negative integer")
    return int(value)


def _json_value(value: Any, where: str) -> Any:
    """``value`` as JSON-storable Python (numpy scalars -> Python), or TypeError(where)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic) and isinstance(value, (np.bool_, np.number)):
        return value.item()
    if isinstance(value, list):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            out[k] = _json_value(v, f"{where}[{k!r}]")
        return out
    raise TypeError(f"{where} is a {type(value).__name__}")


def _item_rows(items: Any) -> list[tuple[str, str | None, str, str]]:
    frame = _exact_columns(items, ITEM_COLUMNS, "items")
    ids = _strings(frame["item_id"].tolist(), "item_id", "item id")
    first: dict[str, int] = {}
    for pos, i in enumerate(ids):
        if i in first:
            raise _bad(
                pos, "item_id", f"item id repeated (first at row {first[i]})", i, "unique item ids"
            )
        first[i] = pos
    rows = []
    for pos, (iid, title, cats, attrs) in enumerate(
        zip(
            ids,
            frame["title"].tolist(),
            frame["categories"].tolist(),
            frame["attributes"].tolist(),
            strict=True,
        )
    ):
        if isinstance(title, float) and math.isnan(title) or title is None or title is pd.NA:
            title = None
        elif not isinstance(title, str):
            raise _bad(pos, "title", "bad title", title, "a string or None")
        if isinstance(cats, (str, bytes)) or not isinstance(cats, (list, tuple, np.ndarray)):
            raise _bad(pos, "categories", "bad categories", cats, "a list of strings")
        cats = list(cats.tolist() if isinstance(cats, np.ndarray) else cats)
        for c in cats:
            if not isinstance(c, str):
                raise _bad(pos, "categories", "a category is not a string", c, "a list of strings")
        if not isinstance(attrs, Mapping):
            raise _bad(pos, "attributes", "bad attributes", attrs, "a dict")
        try:
            attrs = _json_value(dict(attrs), "attributes")
        except TypeError as exc:
            raise _bad(
                pos,
                "attributes",
                f"value not storable ({exc})",
                attrs,
                "a dict with string keys of None, bool, numbers, strings, lists and dicts",
            ) from None
        rows.append(
            (
                iid,
                None if title is None else str(title),
                json.dumps([str(c) for c in cats]),
                json.dumps(attrs),
            )
        )
    return rows


def _item_values(row: tuple) -> tuple[str, str | None, list, dict]:
    return row[0], row[1], json.loads(row[2]), json.loads(row[3])


def _items_frame(rows: list[tuple]) -> pd.DataFrame:
    values = [_item_values(r) for r in rows]
    cols = list(zip(*values, strict=True)) if values else [()] * 4
    return pd.DataFrame(
        {c: pd.Series(list(v), dtype=object) for c, v in zip(ITEM_COLUMNS, cols, strict=True)}
    )
