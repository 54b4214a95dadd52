"""Readers: MovieLens (100K, CSV, ``::`` files), Amazon reviews, sequence files, generic tables.

Every reader returns a :class:`~lifelongrec.data.Dataset` whose ``events`` follow the
canonical schema (see :mod:`lifelongrec.data._schema`), in the source's row order. Files
are parsed in bulk (``pandas.read_csv`` with ``dtype=str``) and validated with vectorised
checks; the first bad row is reported as a :class:`~lifelongrec._errors.DataError` that
names the file, the 1-based line, the column, the value and what was expected. Readers
drop nothing: their ``report`` records how many rows were read from each file.

The readers live in one module per source: :mod:`~lifelongrec.data._movielens`,
:mod:`~lifelongrec.data._amazon`, :mod:`~lifelongrec.data._sequences` and
:mod:`~lifelongrec.data._tables` (generic tables and column recognition), on the shared
helpers of :mod:`~lifelongrec.data._files` (reading files, lines named in errors) and
:mod:`~lifelongrec.data._values` (ids, numbers, timestamps). This module detects a
source's format and :func:`load` dispatches to its reader; every name the readers had
here is still importable from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data._amazon import read_amazon_reviews
from lifelongrec.data._files import (
    _JSON_SUFFIXES,
    _TABLE_SUFFIXES,
    _base_suffix,
    _existing,
    _read_bytes,
)
from lifelongrec.data._movielens import ML100K_GENRES as ML100K_GENRES
from lifelongrec.data._movielens import _release_year as _release_year
from lifelongrec.data._movielens import read_movielens_100k, read_movielens_csv, read_movielens_dat
from lifelongrec.data._schema import Dataset
from lifelongrec.data._sequences import read_sequence_file
from lifelongrec.data._tables import COLUMN_NAMES as COLUMN_NAMES
from lifelongrec.data._tables import _recognised_format, read_table

__all__ = [
    "FORMATS",
    "detect_format",
    "load",
    "read_amazon_reviews",
    "read_movielens_100k",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_sequence_file",
    "read_table",
]

FORMATS: tuple[str, ...] = (
    "movielens-100k",
    "movielens-csv",
    "movielens-dat",
    "amazon",
    "sequence",
    "table",
)

_LOOKED_FOR = (
    "a folder with u.data (movielens-100k), ratings.csv (movielens-csv) or ratings.dat "
    "(movielens-dat), or holding exactly one recognised data file; an Amazon reviews "
    ".json/.jsonl file, optionally .gz, with reviewerID and asin keys (amazon); a text file "
    "of 'user item' lines (sequence); a .csv/.tsv/.parquet/.jsonl table whose header "
    "names a user column (user_id, user, userId, uid, customer_id, ...), an item column "
    "(item_id, item, movieId, product_id, sku, asin, ...) and a time column (timestamp, "
    "time, ts, date, ...), or any such table when columns= (--columns) is given (table)"
)


# -------------------------------------------------------------------- detection
def _peek_lines(path: Path, n: int = 20) -> list[str]:
    try:
        raw = _read_bytes(path, limit=1 << 16)
    except DataError:
        return []
    lines = raw.decode("utf-8", errors="replace").replace("\r", "").split("\n")
    if len(raw) == 1 << 16:
        lines = lines[:-1]  # the last one may be cut
    return [line for line in lines if line.strip()][:n]


def _table_header(path: Path) -> list[str]:
    suffix = _base_suffix(path)
    if suffix in (".parquet", ".pq"):
        try:
            return list(pq.read_schema(path).names)
        except Exception:  # not a readable Parquet file: not recognised
            return []
    lines = _peek_lines(path, 1)
    if not lines:
        return []
    if suffix in _JSON_SUFFIXES:
        try:
            record = json.loads(lines[0])
        except ValueError:
            return []
        return list(record) if isinstance(record, dict) else []
    sep = "\t" if suffix in (".tsv", ".tab") else ","
    return [c.strip().strip('"') for c in lines[0].split(sep)]


def _detect_file(path: Path, has_columns: bool) -> str | None:
    name = path.name.lower()
    if name == "u.data":
        return "movielens-100k"
    if name == "ratings.dat":
        return "movielens-dat"
    suffix = _base_suffix(path)
    if suffix in _TABLE_SUFFIXES and has_columns:  # an explicit mapping: read as a table
        return "table"
    header = _table_header(path) if suffix in _TABLE_SUFFIXES else []
    if name == "ratings.csv" and {"userId", "movieId", "rating"} <= set(header):
        return "movielens-csv"
    if suffix in _JSON_SUFFIXES and {"reviewerID", "asin"} <= set(header):
        return "amazon"
    if suffix in _TABLE_SUFFIXES:
        return "table" if _recognised_format(header) else None
    lines = _peek_lines(path)
    # A sequence file if most sniffed lines are two tokens (the first one included); a
    # malformed line further on is then reported by the reader with its line number.
    two = [len(line.split()) == 2 for line in lines]
    if two and two[0] and sum(two) >= 0.8 * len(two):
        return "sequence"
    return None


def _resolve(path: str | Path, *, has_columns: bool = False) -> tuple[str, Path]:
    """The format of ``path`` and the file or folder its reader should get."""
    p = _existing(path)
    if p.is_file():
        fmt = _detect_file(p, has_columns)
        if fmt is None:
            raise DataError("unrecognised data format", path=p, expected=_LOOKED_FOR)
        return fmt, p
    for marker, fmt in (
        ("u.data", "movielens-100k"),
        ("ratings.csv", "movielens-csv"),
        ("ratings.dat", "movielens-dat"),
    ):
        if (p / marker).is_file():
            return fmt, p
    found = []
    for f in sorted(p.iterdir()):
        lower = f.name.lower()
        if not f.is_file() or lower.startswith((".", "readme", "license")):
            continue
        if lower.endswith((".md", ".html", ".pdf", ".py", ".sh", ".pl")):
            continue
        fmt = _detect_file(f, has_columns)
        if fmt is not None:
            found.append((fmt, f))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DataError(
            "several data files in the folder",
            path=p,
            value=[f.name for _, f in found],
            expected="a folder with exactly one data file, or the path of one file",
        )
    raise DataError("unrecognised data format", path=p, expected=_LOOKED_FOR)


def detect_format(path: str | Path) -> str:
    """The format name (one of :data:`FORMATS`) of a data file or folder.

    Parameters
    ----------
    path
        A folder with ``u.data`` (``"movielens-100k"``), ``ratings.csv``
        (``"movielens-csv"``) or ``ratings.dat`` (``"movielens-dat"``), or holding exactly
        one recognised file; a ``.json``/``.jsonl`` file (optionally ``.gz``) whose first
        object has ``reviewerID`` and ``asin`` (``"amazon"``); a ``.csv``/``.tsv``/
        ``.parquet``/``.jsonl`` file with ``user_id``, ``item_id`` and ``timestamp``
        columns (``"table"``); another text file whose first lines have two tokens each
        (``"sequence"``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        Nothing recognisable (the message lists what was looked for), or a folder holds
        several data files.
    """
    return _resolve(path)[0]


_READERS: dict[str, Callable[..., Dataset]] = {
    "movielens-100k": read_movielens_100k,
    "movielens-csv": read_movielens_csv,
    "movielens-dat": read_movielens_dat,
    "amazon": read_amazon_reviews,
    "sequence": read_sequence_file,
    "table": read_table,
}


def load(path: str | Path, format: str | None = None, **kwargs: Any) -> Dataset:
    """Read a dataset, detecting its format unless ``format`` is given.

    Parameters
    ----------
    path
        A data file or folder (see :func:`detect_format`).
    format
        One of :data:`FORMATS`; ``None`` detects it. With ``columns=`` in ``kwargs`` a
        ``.csv``/``.tsv``/``.parquet``/``.jsonl`` file is read as ``"table"`` (even one
        named ``ratings.csv``).
    **kwargs
        Passed to the reader (e.g. ``include_tags=True``, ``columns={...}``,
        ``timestamp_unit="ms"``); ``columns=None`` and ``timestamp_unit=None`` are the
        same as leaving them out.

    Raises
    ------
    ParameterError
        ``format`` is not one of :data:`FORMATS`; ``columns`` or a ``timestamp_unit``
        other than ``"s"`` for a format that is not ``"table"``.
    FileNotFoundError, DataError
        As :func:`detect_format` and the reader.
    """
    if kwargs.get("columns") is None:
        kwargs.pop("columns", None)
    if kwargs.get("timestamp_unit") is None:
        kwargs.pop("timestamp_unit", None)
    has_columns = "columns" in kwargs
    if format is None:
        fmt, target = _resolve(path, has_columns=has_columns)
    else:
        if format not in FORMATS:
            raise ParameterError("format", format, f"one of {', '.join(FORMATS)} or None")
        fmt, target = format, _existing(path)
        if target.is_dir() and fmt in ("amazon", "sequence", "table"):
            found, inner = _resolve(target, has_columns=has_columns)
            if found == fmt:
                target = inner
    if fmt != "table":
        if has_columns:
            raise ParameterError(
                "columns",
                kwargs["columns"],
                f"left out for {target}, which is read as {fmt} (its columns are fixed); a "
                "column mapping applies to a .csv/.tsv/.parquet/.jsonl table file",
            )
        unit = kwargs.pop("timestamp_unit", "s")
        if unit != "s":
            raise ParameterError(
                "timestamp_unit",
                unit,
                f"'s' or left out for {target}, which is read as {fmt} (its times are "
                "seconds); another unit applies to a table file",
            )
    return _READERS[fmt](target, **kwargs)
