"""Data as an experiment names it: a path or the word ``synthetic``, a column mapping
as text, the evaluation preprocessing and a split protocol by name.

These are the text forms the command line (``lifelongrec evaluate --data ... --columns
...``) and the benchmarks use; their errors name the command-line options
(``--columns``, ``--timestamp-unit``, ``--protocol``) the arguments stand for. The
readers underneath are :func:`~lifelongrec.data.load` and
:func:`~lifelongrec.data.read_table`.
"""

from __future__ import annotations

from pathlib import Path

from lifelongrec._errors import ParameterError
from lifelongrec.data._preprocess import deduplicate, implicit_feedback, sort_by_time
from lifelongrec.data._readers import load
from lifelongrec.data._schema import Dataset
from lifelongrec.data._split import Split, leave_one_out, temporal_split
from lifelongrec.data._synthetic import synthetic

__all__ = [
    "COLUMN_ROLES",
    "PROTOCOLS",
    "SYNTHETIC",
    "TIMESTAMP_UNITS",
    "columns_note",
    "load_data",
    "make_split",
    "parse_columns",
    "prepare",
]

#: The data source that names the package's synthetic world.
SYNTHETIC = "synthetic"

#: ``--columns`` roles: the field names and their short forms.
COLUMN_ROLES: dict[str, str] = {
    "user_id": "user_id",
    "user": "user_id",
    "item_id": "item_id",
    "item": "item_id",
    "timestamp": "timestamp",
    "time": "timestamp",
    "event_type": "event_type",
    "type": "event_type",
    "value": "value",
    "rating": "value",
}
_ROLES_TEXT = (
    "ROLE=COLUMN pairs separated by commas, ROLE one of user_id (user), item_id (item), "
    "timestamp (time), event_type (type), value (rating); e.g. "
    "--columns user_id=userId,item_id=movieId,timestamp=ts"
)

#: Units of numeric times in a table file (``timestamp_unit``).
TIMESTAMP_UNITS = ("s", "ms", "us", "ns")

#: Split protocols by name (:func:`make_split`).
PROTOCOLS = ("loo", "temporal")


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``"user=userId,item_id=movieId"`` -> ``{"user_id": "userId", "item_id": "movieId"}``.

    Roles are the event fields or their short names (:data:`COLUMN_ROLES`, any case);
    spaces around names are ignored. ``None`` or a blank text gives ``None``.

    Raises
    ------
    ParameterError
        An entry without ``=``, an empty role or column, an unknown role, or a field
        named twice.

    Examples
    --------
    >>> parse_columns("User=userId, item=movieId")
    {'user_id': 'userId', 'item_id': 'movieId'}
    >>> parse_columns("  ") is None
    True
    """
    if text is None or not text.strip():
        return None
    mapping: dict[str, str] = {}
    for entry in text.split(","):
        role, sep, column = (part.strip() for part in entry.partition("="))
        if not sep or not role or not column:
            raise ParameterError("--columns", entry.strip(), _ROLES_TEXT)
        field = COLUMN_ROLES.get(role.lower())
        if field is None:
            raise ParameterError("--columns", entry.strip(), f"a known role: {_ROLES_TEXT}")
        if field in mapping:
            raise ParameterError(
                "--columns", entry.strip(), f"each field once ({field} is given twice)"
            )
        mapping[field] = column
    return mapping


def _no_table_options_for_synthetic(columns: object, timestamp_unit: object) -> None:
    for option, value in (("--columns", columns), ("--timestamp-unit", timestamp_unit)):
        if value:
            raise ParameterError(
                option, value, "left out for the synthetic world (its columns are fixed)"
            )


def load_data(
    source: str,
    *,
    synthetic_events: int = 100_000,
    seed: int = 0,
    columns: str | dict[str, str] | None = None,
    timestamp_unit: str | None = None,
    shift_at: float | None = None,
) -> Dataset:
    """A :class:`~lifelongrec.data.Dataset` from a path or the word ``synthetic``.

    Parameters
    ----------
    source
        A data file or folder (see :func:`~lifelongrec.data.load`), or ``"synthetic"``
        for the package's synthetic world of ``synthetic_events`` events made with
        ``seed``.
    columns, timestamp_unit
        For table files (see :func:`~lifelongrec.data.read_table`): which column holds
        each field (``--columns`` text as in :func:`parse_columns`, or a field ->
        column dict) and the unit of numeric times (one of :data:`TIMESTAMP_UNITS`).
        Which columns were recognised in the header is in ``meta``; :func:`columns_note`
        says it in words.
    shift_at
        Synthetic world only: a sudden interest shift at this fraction of the time span
        (``lifelongrec stream --shift-at``); the caller checks the source and the range.

    Raises
    ------
    ParameterError
        A bad ``--columns`` text or ``--timestamp-unit``, or either given for the
        synthetic world or for a format whose columns are fixed.
    FileNotFoundError, DataError
        As :func:`~lifelongrec.data.load`.

    Examples
    --------
    >>> len(load_data("synthetic", synthetic_events=500))
    500
    """
    if shift_at is not None:
        _no_table_options_for_synthetic(columns, timestamp_unit)
        return synthetic(n_events=synthetic_events, seed=seed, shift_at=shift_at)
    mapping = parse_columns(columns) if isinstance(columns, str) else columns
    if timestamp_unit is not None and timestamp_unit not in TIMESTAMP_UNITS:
        raise ParameterError("--timestamp-unit", timestamp_unit, f"one of {TIMESTAMP_UNITS}")
    if source == SYNTHETIC:
        _no_table_options_for_synthetic(mapping, timestamp_unit)
        return synthetic(n_events=synthetic_events, seed=seed)
    try:
        return load(Path(source), columns=mapping, timestamp_unit=timestamp_unit)
    except ParameterError as exc:
        if exc.name in ("columns", "timestamp_unit"):
            option = "--" + exc.name.replace("_", "-")
            raise ParameterError(option, exc.value, exc.expected) from None
        raise


def columns_note(dataset: Dataset) -> str:
    """``"columns recognised in the header: user_id <- userId, ..."``, or ``""`` when
    no column was recognised under another name than its field's.

    Examples
    --------
    >>> columns_note(load_data("synthetic", synthetic_events=100))
    ''
    """
    used = dataset.meta.get("columns") or {}
    found = [f for f in dataset.meta.get("columns_recognised") or () if used.get(f) != f]
    if not found:
        return ""
    pairs = ", ".join(f"{f} <- {used[f]}" for f in dataset.meta["columns_recognised"])
    return f"columns recognised in the header: {pairs} (--columns ROLE=COLUMN to choose others)"


def prepare(dataset: Dataset, *, dedupe: bool = True, min_rating: float | None = None) -> Dataset:
    """The evaluation preprocessing: stable time order, one event per (user, item) pair
    (the first: the task is to predict items new to the user), optional rating threshold.

    Every step's removed rows are recorded in ``dataset.report``; the input is left
    untouched.

    Examples
    --------
    >>> ds = prepare(load_data("synthetic", synthetic_events=500))
    >>> [e["step"] for e in ds.report.entries][-2:]
    ['sort_by_time', 'deduplicate']
    """
    ds = sort_by_time(dataset)
    if min_rating is not None:
        ds = implicit_feedback(ds, threshold=min_rating)
    if dedupe:
        ds = deduplicate(ds, subset=("user_id", "item_id"), keep="first")
    return ds


def make_split(dataset: Dataset, protocol: str) -> Split:
    """The split of an evaluation protocol by name: ``"loo"``
    (:func:`~lifelongrec.data.leave_one_out`) or ``"temporal"`` (a global 80/20 cut by
    time, :func:`~lifelongrec.data.temporal_split`).

    Raises
    ------
    ParameterError
        ``protocol`` is not one of :data:`PROTOCOLS`.
    """
    if protocol == "loo":
        return leave_one_out(dataset)
    if protocol == "temporal":
        return temporal_split(dataset, test_fraction=0.2)
    raise ParameterError("--protocol", protocol, "'loo' or 'temporal'")
