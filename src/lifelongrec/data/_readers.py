"""Readers: MovieLens (100K, CSV, ``::`` files), Amazon reviews, sequence files, generic tables.

Every reader returns a :class:`~lifelongrec.data.Dataset` whose ``events`` follow the
canonical schema (see :mod:`lifelongrec.data._schema`), in the source's row order. Files
are parsed in bulk (``pandas.read_csv`` with ``dtype=str``) and validated with vectorised
checks; the first bad row is reported as a :class:`~lifelongrec._errors.DataError` that
names the file, the 1-based line, the column, the value and what was expected. Readers
drop nothing: their ``report`` records how many rows were read from each file.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lifelongrec._errors import DataError, ParameterError
from lifelongrec.data._schema import (
    _TIMESTAMP_UNITS,
    _UNIT_WORDS,
    DEFAULT_EVENT_TYPE,
    EVENT_COLUMNS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    Dataset,
    LoadReport,
    _timestamp_range_text,
    _timestamp_unit_hint,
    make_events,
    make_items,
)

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

#: Genre names of MovieLens 100K in flag order (as in its ``u.genre``).
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

_ML_NO_GENRE = "(no genres listed)"
_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq", *_JSON_SUFFIXES)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_LOOKED_FOR = (
    "a folder with u.data (movielens-100k), ratings.csv (movielens-csv) or ratings.dat "
    "(movielens-dat), or holding exactly one recognised data file; an Amazon reviews "
    ".json/.jsonl file, optionally .gz, with reviewerID and asin keys (amazon); a text file "
    "of 'user item' lines (sequence); a .csv/.tsv/.parquet/.jsonl table whose header "
    "names a user column (user_id, user, userId, uid, customer_id, ...), an item column "
    "(item_id, item, movieId, product_id, sku, asin, ...) and a time column (timestamp, "
    "time, ts, date, ...), or any such table when columns= (--columns) is given (table)"
)


# ----------------------------------------------------------------------------- files
def _missing(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, f"{what} not found", str(path))


def _existing(path: str | Path, what: str = "data file or folder") -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise _missing(p, what)
    return p


def _base_suffix(path: Path) -> str:
    """The file's suffix ignoring a compression suffix: ``x.json.gz`` -> ``.json``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    opener: Callable[..., Any] = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(
            "cannot read file", path=path, value=str(exc), expected="a readable file"
        ) from exc


def _decode(raw: bytes, encoding: str | None) -> str:
    """UTF-8 (a BOM is dropped), falling back to latin-1; or the given encoding."""
    if encoding is not None:
        return raw.decode(encoding)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _ml_root(path: str | Path, marker: str, what: str) -> Path:
    """A MovieLens folder given either the folder or its main ratings file."""
    p = _existing(path, f"{what} folder")
    root = p.parent if p.is_file() else p
    if not (root / marker).is_file():
        raise _missing(root / marker, f"{what} file {marker}")
    return root


# ------------------------------------------------------------------- row locations
class _Rows:
    """Maps a 0-based data row to its 1-based line in the file, to build error messages.

    Line-based files know every row's line up front; for quoted CSV files the line is
    found only when an error is raised, by re-reading the file with :mod:`csv` (exact even
    when quoted fields span lines).
    """

    def __init__(
        self,
        path: Path,
        *,
        lines: np.ndarray | None = None,
        csv_sep: str | None = None,
        csv_encoding: str | None = None,
        n_fields: int | None = None,
        header: list[str] | None = None,
    ) -> None:
        self.path = path
        self.lines = lines
        self.csv_sep = csv_sep
        self.csv_encoding = csv_encoding
        self.n_fields = n_fields
        self.header = header

    def _csv_record(self, row: int) -> tuple[int | None, list[str] | None]:
        text = _decode(_read_bytes(self.path), self.csv_encoding)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.csv_sep or ",")
        seen = -2  # the header is record -1
        for record in reader:
            if not record:  # blank line, skipped by pandas too
                continue
            seen += 1
            if seen == row:
                return reader.line_num, record
        return None, None

    def error(
        self,
        problem: str,
        row: int,
        *,
        column: str | None,
        value: Any,
        expected: str,
    ) -> DataError:
        if self.lines is not None:
            return DataError(
                problem,
                path=self.path,
                line=int(self.lines[row]),
                column=column,
                value=value,
                expected=expected,
            )
        if self.csv_sep is not None:
            line, record = self._csv_record(row)
            if record is not None and self.n_fields is not None and len(record) != self.n_fields:
                return DataError(
                    "wrong number of fields",
                    path=self.path,
                    line=line,
                    value=self.csv_sep.join(record),
                    expected=f"{self.n_fields} fields ({', '.join(self.header or [])})",
                )
            return DataError(
                problem, path=self.path, line=line, column=column, value=value, expected=expected
            )
        # Parquet: no lines, name the row in the problem instead.
        return DataError(
            f"{problem} in row {row + 1}",
            path=self.path,
            column=column,
            value=value,
            expected=expected,
        )


# ------------------------------------------------------------------------ parsing
def _read_lines(
    path: Path,
    sep: str | None,
    names: tuple[str, ...],
    *,
    encoding: str | None = None,
) -> tuple[pd.DataFrame, _Rows]:
    """Parse an unquoted delimited text file (``sep=None``: runs of whitespace).

    Returns the fields as ``str`` columns named ``names`` and the row -> line map. Blank
    lines are skipped; any other line must have exactly ``len(names)`` fields.
    """
    text = _decode(_read_bytes(path), encoding)
    label = "whitespace" if sep is None else repr(sep)
    n = len(names)
    expected = f"{n} fields separated by {label} ({', '.join(names)})"
    lines = pa.array(text.split("\n"), type=pa.large_string())
    if "\r" in text:
        lines = pc.replace_substring_regex(lines, "\r$", "")
    blank = np.asarray(pc.equal(lines, ""))
    line_no = np.flatnonzero(~blank) + 1
    if len(line_no) == 0:
        raise DataError("empty file", path=path, expected=f"lines of {expected}")
    body = lines.filter(pa.array(~blank))
    if sep is None:
        stripped = pc.utf8_trim_whitespace(body)
        n_found = np.asarray(pc.count_substring_regex(stripped, r"\s+")) + 1
        n_found[np.asarray(pc.equal(stripped, ""))] = 0
    else:
        n_found = np.asarray(pc.count_substring(body, sep)) + 1
    bad = np.flatnonzero(n_found != n)
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"wrong number of fields ({int(n_found[i])})",
            path=path,
            line=int(line_no[i]),
            value=body[i].as_py(),
            expected=expected,
        )
    frame = None
    if "\r" not in text.replace("\r\n", "\n"):  # a lone CR would end a row in read_csv
        options: dict[str, Any] = {
            "header": None,
            "names": list(names),
            "dtype": str,
            "quoting": csv.QUOTE_NONE,
            "na_filter": False,
            "skip_blank_lines": True,
        }
        source = text
        if sep is None:
            options["sep"] = r"\s+"
        elif len(sep) == 1:
            options["sep"] = sep
        elif "\x1f" not in text:
            source = text.replace(sep, "\x1f")
            options["sep"] = "\x1f"
        if "sep" in options:
            frame = pd.read_csv(io.StringIO(source), engine="c", **options)
            if len(frame) != len(line_no):
                frame = None
    if frame is None:  # rare: split line by line (slower, always exact)
        split = [line.split() if sep is None else line.split(sep) for line in body.to_pylist()]
        frame = pd.DataFrame(split, columns=list(names), dtype=str)
    return frame.reset_index(drop=True), _Rows(path, lines=line_no)


def _read_csv(
    path: Path,
    required: tuple[str, ...],
    *,
    sep: str = ",",
    what: str = "",
    check_header: Callable[[list[str]], None] | None = None,
) -> tuple[pd.DataFrame, _Rows]:
    """Read a quoted CSV with a header; every column as ``str``; check required columns
    (and call ``check_header`` with the header, before data rows are required)."""
    encoding = "utf-8-sig"
    options: dict[str, Any] = {"sep": sep, "dtype": str, "na_filter": False}
    try:
        try:
            frame = pd.read_csv(path, encoding=encoding, **options)
        except UnicodeDecodeError:
            encoding = "latin-1"
            frame = pd.read_csv(path, encoding=encoding, **options)
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            "empty file",
            path=path,
            expected=f"a header line with columns {', '.join(required)} and data rows"
            if required
            else "a header line and data rows",
        ) from exc
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found is None:
            raise DataError("cannot parse CSV", path=path, value=str(exc)) from exc
        raise DataError(
            f"wrong number of fields ({found.group(3)})",
            path=path,
            line=int(found.group(2)),
            expected=f"{found.group(1)} fields{' ' + what if what else ''}",
        ) from exc
    header = [str(c) for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(
            "missing column" + ("s" if len(missing) > 1 else ""),
            path=path,
            line=1,
            column=missing[0],
            value=header,
            expected=f"a header with columns {', '.join(required)}",
        )
    if check_header is not None:
        check_header(header)
    if len(frame) == 0:
        raise DataError("no data rows", path=path, expected="rows after the header line")
    rows = _Rows(
        path,
        csv_sep=sep,
        csv_encoding=encoding,
        n_fields=len(header),
        header=header,
    )
    return frame, rows


# --------------------------------------------------------------------- validation
def _ids(s: pd.Series, rows: _Rows, column: str, what: str) -> np.ndarray:
    """Ids as an object array of ``str``; empty or missing ids are errors."""
    if s.dtype.kind == "f":  # e.g. Parquet/JSON ids read as floats: 1.0 -> "1"
        whole = s.notna() & (s % 1 == 0)
        if bool(whole[s.notna()].all()):
            s = s.astype("Int64")
    missing = s.isna().to_numpy()
    text = s.astype(str)
    bad = missing | (text == "").to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            f"empty {what}",
            i,
            column=column,
            value=None if missing[i] else "",
            expected=f"a non-empty {what}",
        )
    return text.to_numpy(dtype=object)


def _floats(
    s: pd.Series, rows: _Rows, column: str, what: str, *, allow_missing: bool
) -> np.ndarray:
    """Numbers as ``float64``; with ``allow_missing`` empty/NaN/null cells become ``NaN``."""
    if s.dtype.kind in "iuf":
        values = s.to_numpy(dtype=np.float64)
        bad = np.zeros(len(values), dtype=bool) if allow_missing else np.isnan(values)
    else:
        num = pd.to_numeric(s, errors="coerce")
        values = num.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values)
        if allow_missing:
            raw = s.astype(str).str.strip().str.lower()
            bad &= ~(s.isna() | raw.isin(["", "nan", "na", "null", "none"])).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            f"non-numeric {what}",
            i,
            column=column,
            value=s.iloc[i],
            expected="a number" + (" or an empty cell" if allow_missing else ""),
        )
    return values


def _whole_numbers(s: pd.Series, rows: _Rows, column: str, what: str, expected: str) -> np.ndarray:
    """The column's values as whole numbers, never rounded or wrapped around.

    An ``int64`` array when every value fits, ``uint64`` for values above the ``int64``
    range, else ``float64`` (finite and whole: e.g. ``1e30``). Empty, non-numeric and
    fractional values raise :class:`DataError`.
    """
    has_na = bool(s.isna().any())
    if s.dtype.kind in "iu" and not has_na:
        return s.to_numpy(dtype=np.dtype(f"{s.dtype.kind}8"))
    num = s if s.dtype.kind in "iuf" else pd.to_numeric(s, errors="coerce")
    if num.dtype.kind in "iu" and not bool(num.isna().any()):
        return num.to_numpy(dtype=np.dtype(f"{num.dtype.kind}8"))
    floats = num.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(floats)
    bad[~bad] = floats[~bad] % 1 != 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problem = f"non-numeric {what}" if np.isnan(floats[i]) else f"non-integer {what}"
        raise rows.error(problem, i, column=column, value=s.iloc[i], expected=expected)
    return floats


def _outside(values: np.ndarray, low: int, high: int) -> np.ndarray:
    """Which of ``values`` (``int64``, ``uint64`` or ``float64``) lie outside ``[low, high]``."""
    if values.dtype.kind == "u":
        return values > np.uint64(high) if high >= 0 else np.ones(len(values), dtype=bool)
    if values.dtype.kind == "f":
        return (values < float(low)) | (values > float(high))
    return (values < low) | (values > high)


def _ints(s: pd.Series, rows: _Rows, column: str, what: str) -> np.ndarray:
    """Integers (an age, an index) as ``int64``."""
    expected = "an integer"
    values = _whole_numbers(s, rows, column, what, expected)
    info = np.iinfo(np.int64)
    bad = _outside(values, int(info.min), int(info.max))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            f"{what} too large", i, column=column, value=s.iloc[i], expected="a 64-bit integer"
        )
    return values.astype(np.int64)


def _epoch_ints(
    s: pd.Series, rows: _Rows, column: str, unit: str = "s", *, option: str | None = None
) -> np.ndarray:
    """Integer epoch times in ``unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``) as ``int64`` seconds.

    Times outside :data:`TIMESTAMP_MIN` .. :data:`TIMESTAMP_MAX` raise :class:`DataError`;
    a value that looks like a finer unit says so, and names ``option`` (how the caller
    picks the unit) when there is one.
    """
    words = _UNIT_WORDS[unit]
    expected = f"an integer Unix timestamp ({words})"
    values = _whole_numbers(s, rows, column, "timestamp", expected)
    factor = _TIMESTAMP_UNITS[unit]
    bad = _outside(values, TIMESTAMP_MIN * factor, (TIMESTAMP_MAX + 1) * factor - 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        number = values[i].item()
        raise rows.error(
            "timestamp out of range",
            i,
            column=column,
            value=s.iloc[i],
            expected=_timestamp_range_text(unit) + _timestamp_unit_hint(number, unit, option),
        )
    if values.dtype.kind == "f":
        values = np.floor(values / factor) if factor > 1 else values
    elif factor > 1:
        values = values.astype(np.int64) // factor
    return values.astype(np.int64)


def _datetime_seconds(stamps: pd.Series, raw: pd.Series, rows: _Rows, column: str) -> np.ndarray:
    """UTC date/times (no missing ones) as epoch seconds, within the valid range."""
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    seconds = naive.astype("datetime64[s]").astype(np.int64)
    bad = (seconds < TIMESTAMP_MIN) | (seconds > TIMESTAMP_MAX)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise rows.error(
            "timestamp out of range",
            i,
            column=column,
            value=raw.iloc[i],
            expected="a date/time from 1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z",
        )
    return seconds


def _iso_out_of_bounds(text: str) -> bool:
    """Whether ``text`` is an ISO-8601 date/time that pandas could not hold (e.g. year 9999)."""
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _timestamps(s: pd.Series, rows: _Rows, column: str, unit: str) -> np.ndarray:
    """Timestamps of a generic table as UTC epoch seconds; see :func:`read_table`."""
    option = "timestamp_unit"
    if isinstance(s.dtype, pd.DatetimeTZDtype) or s.dtype.kind == "M":
        stamps = pd.to_datetime(s, utc=True)
        bad = stamps.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise rows.error(
                "missing timestamp", i, column=column, value=None, expected="a date/time"
            )
        return _datetime_seconds(stamps, s, rows, column)
    if s.dtype.kind in "iuf":
        return _epoch_ints(s, rows, column, unit, option=option)
    present = s.notna() & (s.astype(str).str.strip() != "")
    if not bool(present.all()):
        i = int(np.flatnonzero(~present.to_numpy())[0])
        raise rows.error(
            "missing timestamp",
            i,
            column=column,
            value=s.iloc[i],
            expected="an epoch number or an ISO-8601 date/time",
        )
    first = str(s.iloc[0]).strip()
    if _NUMBER.fullmatch(first):
        return _epoch_ints(s.astype(str).str.strip(), rows, column, unit, option=option)
    text = s.astype(str).str.strip()
    stamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if _iso_out_of_bounds(text.iloc[i]):
            raise rows.error(
                "timestamp out of range",
                i,
                column=column,
                value=s.iloc[i],
                expected="a date/time from 1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z",
            )
        raise rows.error(
            "unparsable timestamp",
            i,
            column=column,
            value=s.iloc[i],
            expected="an ISO-8601 date/time like 2018-09-24T14:27:30Z "
            f"(the first row, {first!r}, is not a number, so the column is read as ISO-8601)",
        )
    return _datetime_seconds(stamps, s, rows, column)


def _events(
    frame: pd.DataFrame,
    rows: _Rows,
    *,
    user: str,
    item: str,
    timestamp: str,
    value: str | None,
    event_type: str,
) -> pd.DataFrame:
    """Validated canonical events from a frame of ``str`` columns."""
    users = _ids(frame[user], rows, user, "user id")
    items = _ids(frame[item], rows, item, "item id")
    stamps = _epoch_ints(frame[timestamp], rows, timestamp)
    values = None
    if value is not None:
        values = _floats(frame[value], rows, value, "rating", allow_missing=False)
    return make_events(users, items, stamps, event_type=event_type, value=values)


def _dataset(
    events: pd.DataFrame,
    *,
    path: Path,
    fmt: str,
    report: LoadReport,
    items: pd.DataFrame | None = None,
    users: pd.DataFrame | None = None,
    timestamps: str = "epoch",
    **meta: Any,
) -> Dataset:
    return Dataset(
        events=events,
        items=items,
        users=users,
        name=str(path),
        meta={"format": fmt, "timestamps": timestamps, **meta},
        report=report,
    )


def _split_genres(genres: pd.Series) -> list[list[str]]:
    return [[] if g in ("", _ML_NO_GENRE) else g.split("|") for g in genres.tolist()]


#: A MovieLens title ends in its release year, ``"Heat (1995)"``, or a span for a series,
#: ``"Babylon 5 (1994-1998)"`` (hyphen or en dash): the first year is the release.
_ML_TITLE_YEAR = re.compile(r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$")
#: ml-100k's ``release_date``: ``01-Jan-1995``.
_ML_DATE_YEAR = re.compile(r"^\d{1,2}-[A-Za-z]{3}-(\d{4})$")


def _release_year(title: Any, release_date: Any = None) -> int | None:
    """The release year of a MovieLens movie: from ``release_date`` when it parses, else
    from the ``(YYYY)`` the title ends with; ``None`` when neither says."""
    for pattern, text in ((_ML_DATE_YEAR, release_date), (_ML_TITLE_YEAR, title)):
        if isinstance(text, str) and (m := pattern.search(text.strip())):
            return int(m.group(1))
    return None


def _with_year(attributes: dict[str, Any], title: Any) -> dict[str, Any]:
    year = _release_year(title, attributes.get("release_date"))
    return attributes if year is None else {**attributes, "year": year}


# -------------------------------------------------------------------- MovieLens
def read_movielens_100k(path: str | Path) -> Dataset:
    """Read MovieLens 100K: ``u.data`` ratings, ``u.item`` movies, ``u.user`` users.

    Parameters
    ----------
    path
        The ``ml-100k`` folder (or its ``u.data`` file).

    Returns
    -------
    Dataset
        ``events``: one ``"rating"`` event per ``u.data`` line, in file order, ``value`` the
        rating. ``items`` (when ``u.item`` exists): ``title``; ``categories`` the genre
        names (from ``u.genre`` when present, else the standard 19) whose flag is 1;
        ``attributes`` the non-empty ``release_date``, ``video_release_date`` and
        ``imdb_url``, and ``year`` (int) the release year, from ``release_date`` or else
        the ``(YYYY)`` ending the title (absent when neither has one). ``users`` (when
        ``u.user`` exists): ``user_id``, ``age`` (int), ``gender``, ``occupation``, ``zip``.

    Raises
    ------
    FileNotFoundError
        The folder or ``u.data`` does not exist.
    DataError
        A line has the wrong number of fields, or a bad id, rating, timestamp or flag.
    """
    root = _ml_root(path, "u.data", "MovieLens 100K")
    report = LoadReport()
    data_path = root / "u.data"
    frame, rows = _read_lines(data_path, "\t", ("user_id", "item_id", "rating", "timestamp"))
    events = _events(
        frame,
        rows,
        user="user_id",
        item="item_id",
        timestamp="timestamp",
        value="rating",
        event_type="rating",
    )
    report.add("read u.data", len(frame), len(events), "no rows removed")

    genres = list(ML100K_GENRES)
    genre_path = root / "u.genre"
    if genre_path.is_file():
        gframe, grows = _read_lines(genre_path, "|", ("genre", "index"), encoding="latin-1")
        index = _ints(gframe["index"], grows, "index", "genre index")
        genres = [str(g) for g in gframe["genre"].to_numpy()[np.argsort(index, kind="stable")]]

    items = None
    item_path = root / "u.item"
    if item_path.is_file():
        names = ("item_id", "title", "release_date", "video_release_date", "imdb_url")
        flag_names = tuple(f"genre:{g}" for g in genres)
        iframe, irows = _read_lines(item_path, "|", names + flag_names, encoding="latin-1")
        ids = _ids(iframe["item_id"], irows, "item_id", "item id")
        flags = iframe[list(flag_names)].to_numpy(dtype=object)
        is_flag = (flags == "0") | (flags == "1")
        if not is_flag.all():
            r, c = (int(x[0]) for x in np.nonzero(~is_flag))
            raise irows.error(
                "bad genre flag",
                r,
                column=genres[c],
                value=flags[r, c],
                expected="0 or 1",
            )
        genre_arr = np.asarray(genres, dtype=object)
        categories = [genre_arr[row].tolist() for row in flags == "1"]
        attr_cols = [iframe[c].tolist() for c in names[2:]]
        titles = iframe["title"].tolist()
        attributes = [
            _with_year({k: v for k, v in zip(names[2:], vals, strict=True) if v}, title)
            for title, vals in zip(titles, zip(*attr_cols, strict=True), strict=True)
        ]
        items = make_items(ids, titles, categories, attributes)

    users = None
    user_path = root / "u.user"
    if user_path.is_file():
        uframe, urows = _read_lines(
            user_path, "|", ("user_id", "age", "gender", "occupation", "zip"), encoding="latin-1"
        )
        users = pd.DataFrame(
            {
                "user_id": _ids(uframe["user_id"], urows, "user_id", "user id"),
                "age": _ints(uframe["age"], urows, "age", "age"),
                "gender": uframe["gender"].to_numpy(dtype=object),
                "occupation": uframe["occupation"].to_numpy(dtype=object),
                "zip": uframe["zip"].to_numpy(dtype=object),
            }
        )
    return _dataset(
        events, path=root, fmt="movielens-100k", report=report, items=items, users=users
    )


def read_movielens_csv(path: str | Path, *, include_tags: bool = False) -> Dataset:
    """Read a MovieLens CSV release (ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m).

    Parameters
    ----------
    path
        The folder (or its ``ratings.csv``). ``ratings.csv`` has ``userId, movieId,
        rating, timestamp``; optional ``movies.csv`` (``movieId, title, genres``),
        ``links.csv`` (``movieId, imdbId, tmdbId``) and ``tags.csv`` (``userId, movieId,
        tag, timestamp``). Files are RFC-4180 CSV, any line ending.
    include_tags
        Also read ``tags.csv`` as events of type ``"tag"`` (``value`` NaN; the tag text is
        not kept), appended after the ratings. Off by default: tagging is a different
        signal from rating.

    Returns
    -------
    Dataset
        ``events``: ``"rating"`` events in file order (then tags). ``items`` (when
        ``movies.csv`` exists): every catalogue movie with ``title``, ``categories`` the
        ``|``-separated genres (``"(no genres listed)"`` gives none) and ``attributes``
        ``imdb_id``/``tmdb_id`` from ``links.csv`` when present and ``year`` (int), the
        release year the title ends with (``"Heat (1995)"``; the first year of a span
        such as ``"(1994-1998)"``; absent when the title has none). ``users`` is ``None``.

    Raises
    ------
    FileNotFoundError
        The folder or ``ratings.csv`` does not exist (or ``tags.csv`` when asked for).
    DataError
        A missing column, a row with the wrong number of fields, or a bad value.
    """
    root = _ml_root(path, "ratings.csv", "MovieLens CSV")
    report = LoadReport()
    ratings_path = root / "ratings.csv"
    cols = ("userId", "movieId", "rating", "timestamp")
    frame, rows = _read_csv(ratings_path, cols, what="(userId,movieId,rating,timestamp)")
    events = _events(
        frame,
        rows,
        user="userId",
        item="movieId",
        timestamp="timestamp",
        value="rating",
        event_type="rating",
    )
    report.add("read ratings.csv", len(frame), len(events), "no rows removed")
    if include_tags:
        tags_path = root / "tags.csv"
        if not tags_path.is_file():
            raise _missing(tags_path, "MovieLens tags file tags.csv (include_tags=True)")
        tframe, trows = _read_csv(tags_path, ("userId", "movieId", "tag", "timestamp"))
        tags = _events(
            tframe,
            trows,
            user="userId",
            item="movieId",
            timestamp="timestamp",
            value=None,
            event_type="tag",
        )
        report.add("read tags.csv", len(tframe), len(tags), "no rows removed")
        events = pd.concat([events, tags], ignore_index=True)

    items = None
    movies_path = root / "movies.csv"
    if movies_path.is_file():
        mframe, mrows = _read_csv(movies_path, ("movieId", "title", "genres"))
        ids = _ids(mframe["movieId"], mrows, "movieId", "item id")
        titles = mframe["title"].tolist()
        links: dict[Any, dict[str, Any]] = {}
        links_path = root / "links.csv"
        if links_path.is_file():
            lframe, _ = _read_csv(links_path, ("movieId", "imdbId", "tmdbId"))
            links = {
                m: {k: v for k, v in (("imdb_id", i), ("tmdb_id", t)) if v}
                for m, i, t in zip(
                    lframe["movieId"].tolist(),
                    lframe["imdbId"].tolist(),
                    lframe["tmdbId"].tolist(),
                    strict=True,
                )
            }
        attributes = [_with_year(links.get(m, {}), t) for m, t in zip(ids, titles, strict=True)]
        items = make_items(ids, titles, _split_genres(mframe["genres"]), attributes)
    return _dataset(
        events,
        path=root,
        fmt="movielens-csv",
        report=report,
        items=items,
        event_types=["rating", "tag"] if include_tags else ["rating"],
    )


def read_movielens_dat(path: str | Path, *, include_tags: bool = False) -> Dataset:
    """Read a MovieLens ``::``-separated release (ml-1m, ml-10m).

    Parameters
    ----------
    path
        The folder (or its ``ratings.dat``): ``ratings.dat`` (``UserID::MovieID::Rating::
        Timestamp``), optional ``movies.dat`` (``MovieID::Title::Genres``, UTF-8 or
        latin-1), ``users.dat`` (``UserID::Gender::Age::Occupation::Zip``) and
        ``tags.dat`` (``UserID::MovieID::Tag::Timestamp``).
    include_tags
        Also read ``tags.dat`` as ``"tag"`` events (see :func:`read_movielens_csv`).

    Returns
    -------
    Dataset
        As :func:`read_movielens_csv` (``attributes`` holds ``year`` only); ``users``
        (when ``users.dat`` exists) has ``user_id``, ``gender``, ``age`` (the age-group
        code, int), ``occupation`` (the code as given) and ``zip``.

    Raises
    ------
    FileNotFoundError
        The folder or ``ratings.dat`` does not exist.
    DataError
        A line with the wrong number of fields, or a bad id, rating or timestamp.
    """
    root = _ml_root(path, "ratings.dat", "MovieLens .dat")
    report = LoadReport()
    frame, rows = _read_lines(
        root / "ratings.dat", "::", ("UserID", "MovieID", "Rating", "Timestamp")
    )
    events = _events(
        frame,
        rows,
        user="UserID",
        item="MovieID",
        timestamp="Timestamp",
        value="Rating",
        event_type="rating",
    )
    report.add("read ratings.dat", len(frame), len(events), "no rows removed")
    if include_tags:
        tags_path = root / "tags.dat"
        if not tags_path.is_file():
            raise _missing(tags_path, "MovieLens tags file tags.dat (include_tags=True)")
        tframe, trows = _read_lines(tags_path, "::", ("UserID", "MovieID", "Tag", "Timestamp"))
        tags = _events(
            tframe,
            trows,
            user="UserID",
            item="MovieID",
            timestamp="Timestamp",
            value=None,
            event_type="tag",
        )
        report.add("read tags.dat", len(tframe), len(tags), "no rows removed")
        events = pd.concat([events, tags], ignore_index=True)

    items = None
    movies_path = root / "movies.dat"
    if movies_path.is_file():
        mframe, mrows = _read_lines(movies_path, "::", ("MovieID", "Title", "Genres"))
        ids = _ids(mframe["MovieID"], mrows, "MovieID", "item id")
        titles = mframe["Title"].tolist()
        attributes = [_with_year({}, t) for t in titles]
        items = make_items(ids, titles, _split_genres(mframe["Genres"]), attributes)

    users = None
    users_path = root / "users.dat"
    if users_path.is_file():
        names = ("UserID", "Gender", "Age", "Occupation", "Zip-code")
        uframe, urows = _read_lines(users_path, "::", names)
        users = pd.DataFrame(
            {
                "user_id": _ids(uframe["UserID"], urows, "UserID", "user id"),
                "gender": uframe["Gender"].to_numpy(dtype=object),
                "age": _ints(uframe["Age"], urows, "Age", "age"),
                "occupation": uframe["Occupation"].to_numpy(dtype=object),
                "zip": uframe["Zip-code"].to_numpy(dtype=object),
            }
        )
    return _dataset(
        events,
        path=root,
        fmt="movielens-dat",
        report=report,
        items=items,
        users=users,
        event_types=["rating", "tag"] if include_tags else ["rating"],
    )


# ----------------------------------------------------------------------- JSON lines
def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON-lines file."""
    text = _decode(_read_bytes(path), None)
    loads = json.loads
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except ValueError as exc:
            raise DataError(
                f"invalid JSON ({getattr(exc, 'msg', exc)})",
                path=path,
                line=n,
                value=line,
                expected="one JSON object per line",
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                "not a JSON object",
                path=path,
                line=n,
                value=line,
                expected="one JSON object per line",
            )
        yield n, record


def _json_records(
    path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ()
) -> tuple[dict[str, list[Any]], _Rows]:
    """Columns ``keys + optional`` from a JSON-lines file (one object per line)."""
    columns: dict[str, list[Any]] = {k: [] for k in (*keys, *optional)}
    line_no: list[int] = []
    for n, record in _json_lines(path):
        for k in keys:
            if k not in record:
                raise DataError(
                    "missing field",
                    path=path,
                    line=n,
                    column=k,
                    value=sorted(record),
                    expected=f"keys {', '.join(keys)}",
                )
            columns[k].append(record[k])
        for k in optional:
            columns[k].append(record.get(k))
        line_no.append(n)
    if not line_no:
        raise DataError(
            "empty file", path=path, expected=f"JSON objects with keys {', '.join(keys)}"
        )
    return columns, _Rows(path, lines=np.asarray(line_no))


#: Marks a key that a JSON object lacks (``None`` is a JSON ``null``).
_ABSENT = object()


def _json_table(
    path: Path, keep: Callable[[str], bool]
) -> tuple[list[str], dict[str, list[Any]], _Rows]:
    """Every key of a JSON-lines file (in order of first appearance) and the values of
    those ``keep`` accepts, :data:`_ABSENT` where an object lacks the key."""
    header: dict[str, None] = {}
    columns: dict[str, list[Any]] = {}
    line_no: list[int] = []
    for n, record in _json_lines(path):
        for k in record:
            if k not in header:
                header[k] = None
                if keep(k):
                    columns[k] = [_ABSENT] * len(line_no)
        for k, values in columns.items():
            values.append(record.get(k, _ABSENT))
        line_no.append(n)
    if not line_no:
        raise DataError("empty file", path=path, expected="JSON objects, one per line")
    return list(header), columns, _Rows(path, lines=np.asarray(line_no))


def read_amazon_reviews(path: str | Path, *, verified: bool = False) -> Dataset:
    """Read Amazon reviews (McAuley et al. 2014/2018 JSON lines, optionally gzipped).

    Parameters
    ----------
    path
        A ``.json``/``.jsonl`` file, optionally ``.gz``, one review per line with keys
        ``reviewerID``, ``asin``, ``overall`` and ``unixReviewTime``.
    verified
        Add a boolean ``verified`` column to ``events`` (the verified-purchase flag;
        ``False`` where absent). Off by default, keeping the canonical columns only.

    Returns
    -------
    Dataset
        ``events``: one ``"rating"`` event per review in file order, ``value`` the star
        rating. ``items``: every reviewed ``asin`` (in order of first review) with no
        title, categories or attributes (reviews files carry none). ``meta["verified"]``
        counts verified reviews.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataError
        A line is not a JSON object, or lacks a key, or has a bad rating or time.
    """
    p = _existing(path, "Amazon reviews file")
    keys = ("reviewerID", "asin", "overall", "unixReviewTime")
    cols, rows = _json_records(p, keys, optional=("verified",))
    frame = {k: pd.Series(v, dtype=object) for k, v in cols.items()}
    events = make_events(
        _ids(frame["reviewerID"], rows, "reviewerID", "user id"),
        _ids(frame["asin"], rows, "asin", "item id"),
        _epoch_ints(frame["unixReviewTime"], rows, "unixReviewTime"),
        event_type="rating",
        value=_floats(frame["overall"], rows, "overall", "rating", allow_missing=False),
    )
    flags = np.asarray([v is True for v in cols["verified"]], dtype=bool)
    if verified:
        events["verified"] = flags
    report = LoadReport()
    report.add(f"read {p.name}", len(events), len(events), "no rows removed")
    items = make_items(pd.unique(events["item_id"].to_numpy()))
    return _dataset(
        events, path=p, fmt="amazon", report=report, items=items, verified=int(flags.sum())
    )


# -------------------------------------------------------------------- sequences
def read_sequence_file(path: str | Path, *, event_type: str = DEFAULT_EVENT_TYPE) -> Dataset:
    """Read a ``user item`` per line file whose lines are in time order (e.g. BERT4Rec data).

    Parameters
    ----------
    path
        A text file, two tokens per line separated by spaces or tabs; blank lines are
        skipped.
    event_type
        The event type of every event.

    Returns
    -------
    Dataset
        ``timestamp`` is the 0-based line number, so sorting by time keeps the file order;
        ``meta["timestamps"] == "ordinal"``. ``items`` and ``users`` are ``None``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataError
        The file is empty or a line does not have exactly two tokens.
    """
    p = _existing(path, "sequence file")
    if p.is_dir():
        raise DataError(
            "is a folder", path=p, expected="a text file of 'user item' lines (use load())"
        )
    frame, rows = _read_lines(p, None, ("user_id", "item_id"))
    line_no = np.asarray(rows.lines, dtype=np.int64)
    events = make_events(
        frame["user_id"].to_numpy(dtype=object),
        frame["item_id"].to_numpy(dtype=object),
        line_no - 1,
        event_type=event_type,
    )
    report = LoadReport()
    report.add(f"read {p.name}", len(frame), len(events), "no rows removed")
    return _dataset(events, path=p, fmt="sequence", report=report, timestamps="ordinal")


# -------------------------------------------------------------------------- tables
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
