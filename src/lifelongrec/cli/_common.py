"""What the commands of :mod:`lifelongrec.cli` share: the options declared once, reading
data with a note on its columns, and running a library call with a user error turned
into exit code 2."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from lifelongrec._errors import LifelongrecError, ParameterError

SYNTHETIC = "synthetic"  # lifelongrec.data.SYNTHETIC, the --data default


# Options shared by several commands, declared once.
DataOpt = Annotated[str, typer.Option("--data", help="A data file or folder, or 'synthetic'.")]
ModelOpt = Annotated[str, typer.Option("--model", help="Model name, see `lifelongrec models`.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", help="Hyperparameter KEY=VALUE (repeatable).")
]
SeedOpt = Annotated[int, typer.Option(help="Seed for synthetic data and sampling.")]
SyntheticEventsOpt = Annotated[int, typer.Option(help="Size of the synthetic world.")]
DedupeOpt = Annotated[bool, typer.Option(help="Keep one event per (user, item): the first.")]
MinRatingOpt = Annotated[float | None, typer.Option(help="Keep only events rated at least this.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Which column of a table file (.csv/.tsv/.parquet/.jsonl) holds each field: "
        "ROLE=COLUMN,... with ROLE user_id (or user), item_id (item), timestamp (time), "
        "event_type (type) or value (rating), e.g. user_id=userId,item_id=movieId. "
        "Fields not given are recognised from common header names.",
    ),
]
TimestampUnitOpt = Annotated[
    str | None,
    typer.Option(
        "--timestamp-unit",
        help="Unit of numeric times in a table file: s (default), ms, us or ns.",
    ),
]
KOpt = Annotated[int, typer.Option("--k", min=1, help="Cut-off K of every metric.")]


# --------------------------------------------------------------------- helpers
def _note(text: str) -> None:
    """A note on how the data was read, on stderr."""
    typer.echo(text, err=True)


def _load(source: str, **options: Any):
    """:func:`lifelongrec.data.load_data`, its note on the recognised columns on stderr."""
    from lifelongrec.data import columns_note, load_data

    dataset = load_data(source, **options)
    note = columns_note(dataset)
    if note:
        _note(note)
    return dataset


def service_data(
    data: str | None, *, columns: str | None = None, timestamp_unit: str | None = None
):
    """What ``serve`` hands the service as its first data: ``data`` itself (a path, the
    word ``synthetic`` or ``None``) unless ``--columns``/``--timestamp-unit`` are given,
    then the :class:`~lifelongrec.data.Dataset` read with them."""
    from lifelongrec.data import parse_columns

    if data is None or (parse_columns(columns) is None and timestamp_unit is None):
        if data is None and (columns or timestamp_unit):
            raise ParameterError(
                "--columns" if columns else "--timestamp-unit",
                columns or timestamp_unit,
                "used with --data (it only applies to the data of a first start)",
            )
        return data
    return _load(data, columns=columns, timestamp_unit=timestamp_unit)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _run_command(
    run: Any, *args: Any, as_json: bool, param: list[str] | None, **kwargs: Any
) -> dict[str, Any]:
    """``run(*args, params=..., progress=..., notify=..., **kwargs)`` with the ``--param``
    pairs parsed: a user error exits 2 with its message; with ``as_json`` the result is
    printed as JSON (a progress bar only without it, on a terminal)."""
    from lifelongrec.evaluation import parse_params

    try:
        params = parse_params(param)
        progress = not as_json and sys.stderr.isatty()
        result = run(*args, params=params, progress=progress, notify=_note, **kwargs)
    except (LifelongrecError, FileNotFoundError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    return result
