"""The sequence-file reader: ``user item`` lines in time order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lifelongrec._errors import DataError
from lifelongrec.data._files import _existing, _read_lines
from lifelongrec.data._schema import DEFAULT_EVENT_TYPE, Dataset, LoadReport, make_events
from lifelongrec.data._values import _dataset

__all__ = ["read_sequence_file"]


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
