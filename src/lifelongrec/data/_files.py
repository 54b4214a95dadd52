"""Reading data files for the readers: bytes (gzip too), text, unquoted delimited lines,
quoted CSV and JSON lines, each with the row -> line map (:class:`_Rows`) that error
messages name the file and the 1-based line with.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lifelongrec._errors import DataError

_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
_TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq", *_JSON_SUFFIXES)


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
