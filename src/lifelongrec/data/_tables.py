"""The generic table reader (CSV/TSV, Parquet, JSON lines) and its column recognition:
the common header names of each event field (:data:`COLUMN_NAMES`) and the mapping of a
header onto the event columns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data._files import (
    _ABSENT,
    _JSON_SUFFIXES,
    _base_suffix,
    _existing,
    _json_table,
    _read_csv,
    _Rows,
)
from lifelongrec.data._schema import (
    _TIMESTAMP_UNITS,
    EVENT_COLUMNS,
    Dataset,
    LoadReport,
    make_events,
)
from lifelongrec.data._values import _dataset, _floats, _ids, _timestamps

__all__ = ["COLUMN_NAMES", "read_table"]


def _table_kind(p: Path, sep: str | None) -> str:
    suffix = _base_suffix(p)
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in _JSON_SUFFIXES:
        return "jsonl"
    if suffix in (".csv", ".tsv", ".tab") or sep is not None:
        return "csv"
    raise DataError(
        "unsupported table file",
        path=p,
        value=suffix or p.name,
        expected="a .csv, .tsv, .parquet or .jsonl file (or pass sep= for other text tables)",
    )


#: Header names recognised for each event field when ``columns=`` does not name its
#: column; compared ignoring case, spaces, ``_``, ``-`` and ``.`` (``userId``, ``User ID``
#: and ``user_id`` are the same name).
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "user_id": (
        "user_id",
        "user",
        "uid",
        "customer_id",
        "customer",
        "visitor_id",
        "client_id",
        "member_id",
        "reviewer_id",
    ),
    "item_id": (
        "item_id",
        "item",
        "movie_id",
        "product_id",
        "product",
        "sku",
        "asin",
        "article_id",
        "content_id",
        "track_id",
        "song_id",
        "book_id",
        "isbn",
    ),
    "timestamp": (
        "timestamp",
        "time",
        "ts",
        "datetime",
        "date",
        "event_time",
        "created_at",
        "unix_time",
        "unix_review_time",
    ),
    "event_type": (
        "event_type",
        "event",
        "type",
        "action",
        "behavior",
        "behaviour",
        "interaction_type",
    ),
    "value": ("value", "rating", "score", "stars", "overall", "weight", "quantity"),
}
_REQUIRED = ("user_id", "item_id", "timestamp")
_FIELD_WORDS = {
    "user_id": "user id",
    "item_id": "item id",
    "timestamp": "time",
    "event_type": "event type",
    "value": "value",
}


def _name_key(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", str(name).lower())


_NAME_KEYS = {f: frozenset(_name_key(n) for n in names) for f, names in COLUMN_NAMES.items()}


def _header_candidates(header: list[str], field: str, taken: set[str]) -> list[str]:
    """The columns of ``header`` whose name is a known name of ``field``."""
    return [c for c in header if c not in taken and _name_key(c) in _NAME_KEYS[field]]


def _is_known_name(name: str) -> bool:
    """Whether ``name`` is a known name of any event field."""
    key = _name_key(name)
    return any(key in keys for keys in _NAME_KEYS.values())


def _recognised_format(header: list[str]) -> bool:
    """Whether a table header has a user, an item and a time column (maybe several)."""
    return all(_header_candidates(header, f, set()) for f in _REQUIRED)


def _map_columns(
    header: list[str],
    given: dict[str, str],
    *,
    path: Path,
    line: int | None,
) -> tuple[dict[str, str], list[str]]:
    """Field -> column: ``given`` first, then recognised header names (see
    :data:`COLUMN_NAMES`); and the fields whose column was recognised.

    A given column that the header lacks, a required field with no column and a field
    with several candidate columns raise :class:`DataError`.
    """
    absent = [f for f in given if given[f] not in header]
    if absent:
        named = ", ".join(f"{given[f]!r} ({f})" for f in given)
        raise DataError(
            "missing column",
            path=path,
            line=line,
            column=given[absent[0]],
            value=header,
            expected=f"columns {named}",
        )
    mapping = dict(given)
    taken = set(given.values())
    recognised: list[str] = []
    for field in EVENT_COLUMNS:
        if field in given:
            continue
        found = _header_candidates(header, field, taken)
        if len(found) > 1:
            raise DataError(
                f"several columns could hold the {_FIELD_WORDS[field]}",
                path=path,
                line=line,
                value=found,
                expected=f"one {_FIELD_WORDS[field]} column; say which with "
                f"columns={{{field!r}: {found[0]!r}}} (on the command line: "
                f"--columns {field}={found[0]})",
            )
        if found:
            mapping[field] = found[0]
            recognised.append(field)
        elif field in _REQUIRED:
            raise DataError(
                "missing column",
                path=path,
                line=line,
                column=field,
                value=header,
                expected=f"a {_FIELD_WORDS[field]} column named one of "
                f"{', '.join(COLUMN_NAMES[field])} (any case, with or without '_'), or its "
                f"name given with columns={{{field!r}: NAME}} (on the command line: "
                f"--columns {field}=NAME)",
            )
    return mapping, recognised


def read_table(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    *,
    sep: str | None = None,
    timestamp_unit: str = "s",
) -> Dataset:
    """Read events from a generic CSV/TSV, Parquet or JSON-lines table.

    Parameters
    ----------
    path
        A ``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq`` or ``.jsonl``/``.ndjson``/
        ``.json`` (JSON lines) file; text files may be compressed (``.gz`` ...).
    columns
        Canonical name -> the file's column name, e.g. ``{"user_id": "uid", "item_id":
        "sku", "timestamp": "ts", "event_type": "action", "value": "rating"}``. A given
        name always wins. A field not given is looked up in the header among the
        common names of :data:`COLUMN_NAMES` (ignoring case, spaces, ``_``, ``-`` and
        ``.``: ``userId``, ``movieId``, ``rating``, ``timestamp`` are recognised; for
        JSON lines every key of every object is in the header). ``user_id``,
        ``item_id`` and ``timestamp`` must be found; ``event_type`` (default
        ``"interaction"``) and ``value`` (default NaN) are read when found. Other
        columns are ignored.
    sep
        Field separator of a text table (default ``","``, or TAB for ``.tsv``).
    timestamp_unit
        ``"s"``, ``"ms"``, ``"us"`` or ``"ns"``: the unit of numeric timestamps.

    Returns
    -------
    Dataset
        Events in file order; ``items`` and ``users`` are ``None``. ``meta["columns"]``
        maps each field read to the file column that fed it; ``meta["columns_recognised"]``
        lists the fields whose column was recognised from the header (not given).

    Notes
    -----
    Timestamp rule: a datetime column (e.g. Parquet) is converted to UTC. A numeric
    column, or a text column whose first value is a number, holds Unix epoch times in
    ``timestamp_unit`` (floored to seconds); every value must then be an integer. Any
    other text column holds ISO-8601 date/times: values with a UTC offset are converted
    to UTC, values without one are taken as UTC. Every time must lie in
    :data:`~lifelongrec.data.TIMESTAMP_MIN` .. :data:`~lifelongrec.data.TIMESTAMP_MAX`
    (1970-01-01 .. 2199-12-31); a number above it that reads as a plausible time in a
    finer unit is reported with that unit.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ParameterError
        ``columns`` has a key that is not a canonical event column, or ``timestamp_unit``
        is not one of ``"s"``, ``"ms"``, ``"us"``, ``"ns"``.
    DataError
        A given column is missing, a required field has no column or several candidate
        columns, the file is empty, or a value is bad or out of range (line named).
    """
    p = _existing(path, "table file")
    if timestamp_unit not in _TIMESTAMP_UNITS:
        raise ParameterError(
            "timestamp_unit", timestamp_unit, f"one of {', '.join(map(repr, _TIMESTAMP_UNITS))}"
        )
    given = dict(columns or {})
    unknown = [k for k in given if k not in EVENT_COLUMNS]
    if unknown:
        raise ParameterError(
            "columns", given, f"a mapping whose keys are among {', '.join(EVENT_COLUMNS)}"
        )
    kind = _table_kind(p, sep)
    mapping: dict[str, str] = {}
    recognised: list[str] = []
    if kind == "parquet":
        try:
            header = list(pq.read_schema(p).names)
        except Exception as exc:  # pyarrow raises several types for a non-Parquet file
            raise DataError(
                "cannot read Parquet file", path=p, value=str(exc), expected="a Parquet file"
            ) from exc
        mapping, recognised = _map_columns(header, given, path=p, line=None)
    elif kind == "jsonl":
        named = set(given.values())
        header, cols, rows = _json_table(p, lambda k: k in named or _is_known_name(k))
        mapping, recognised = _map_columns(header, given, path=p, line=None)
    else:
        if sep is None:
            sep = "\t" if _base_suffix(p) in (".tsv", ".tab") else ","

        def check_header(header: list[str]) -> None:
            nonlocal mapping, recognised
            mapping, recognised = _map_columns(header, given, path=p, line=1)

        frame, rows = _read_csv(p, (), sep=sep, check_header=check_header)
    wanted = [c for c in EVENT_COLUMNS if c in mapping]
    if kind == "parquet":
        frame = pd.read_parquet(p, columns=[mapping[c] for c in wanted])
        if len(frame) == 0:
            raise DataError("no data rows", path=p, expected="at least one row")
        rows = _Rows(p)
    elif kind == "jsonl":
        # The keys of every object are the header. Given and required keys must be in
        # every object; an object may lack an optional one (then missing, as null).
        must = [mapping[c] for c in wanted if c in _REQUIRED or c in given]
        for key in must:
            lacking = [i for i, v in enumerate(cols[key]) if v is _ABSENT]
            if lacking:
                raise DataError(
                    "missing field",
                    path=p,
                    line=int(rows.lines[lacking[0]]),
                    column=key,
                    expected=f"keys {', '.join(must)} in every object",
                )
        frame = pd.DataFrame(
            {
                mapping[c]: pd.Series(
                    [None if v is _ABSENT else v for v in cols[mapping[c]]], dtype=object
                ).infer_objects()  # JSON numbers/strings: let pandas infer a dtype
                for c in wanted
            }
        )
        wanted = [c for c in wanted if mapping[c] in must or frame[mapping[c]].notna().any()]
    event_types: Any = None
    if "event_type" in wanted:
        event_types = _ids(frame[mapping["event_type"]], rows, mapping["event_type"], "event type")
    values = None
    if "value" in wanted:
        values = _floats(
            frame[mapping["value"]], rows, mapping["value"], "value", allow_missing=True
        )
    events = make_events(
        _ids(frame[mapping["user_id"]], rows, mapping["user_id"], "user id"),
        _ids(frame[mapping["item_id"]], rows, mapping["item_id"], "item id"),
        _timestamps(frame[mapping["timestamp"]], rows, mapping["timestamp"], timestamp_unit),
        event_type=event_types,
        value=values,
    )
    report = LoadReport()
    report.add(f"read {p.name}", len(frame), len(events), "no rows removed")
    used = {c: mapping[c] for c in wanted}
    return _dataset(
        events,
        path=p,
        fmt="table",
        report=report,
        columns=used,
        columns_recognised=[c for c in recognised if c in used],
        timestamp_unit=timestamp_unit,
    )
