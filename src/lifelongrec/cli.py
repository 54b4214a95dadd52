"""The ``lifelongrec`` command line: ``data``, ``evaluate``, ``train``, ``stream``, ``demo``,
``models``, ``serve``.

Argument parsing lives here and only here; the library never reads ``sys.argv``.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lifelongrec._errors import LifelongrecError, ParameterError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="lifelongrec: recommenders that keep learning. Data, evaluation, models.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect interaction data.")
app.add_typer(data_app, name="data")

SYNTHETIC = "synthetic"


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
_JSON_WORDS = {"true": True, "false": False, "null": None}


def _parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["factors=32", "l2=100.0", "verbose=false"]`` -> ``{"factors": 32, "l2": 100.0,
    "verbose": False}``: Python literals, ``true``/``false``/``null``, else the string."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ParameterError("--param", pair, "KEY=VALUE, e.g. --param factors=32")
        if raw.strip() in _JSON_WORDS:  # true/false/null as typed in a shell or JSON
            params[key.strip()] = _JSON_WORDS[raw.strip()]
            continue
        try:
            params[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key.strip()] = raw  # a bare string such as similarity=cosine
    return params


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
TIMESTAMP_UNITS = ("s", "ms", "us", "ns")


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``"user=userId,item_id=movieId"`` -> ``{"user_id": "userId", "item_id": "movieId"}``.

    Roles are the event fields or their short names (:data:`COLUMN_ROLES`, any case);
    spaces around names are ignored. ``None`` or a blank text gives ``None``.

    Raises
    ------
    ParameterError
        An entry without ``=``, an empty role or column, an unknown role, or a field
        named twice.
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


def load_data(
    source: str,
    *,
    synthetic_events: int = 100_000,
    seed: int = 0,
    columns: str | dict[str, str] | None = None,
    timestamp_unit: str | None = None,
):
    """A :class:`~lifelongrec.data.Dataset` from a path or the word ``synthetic``.

    ``columns`` (``--columns`` text or a field -> column dict) and ``timestamp_unit``
    apply to table files (see :func:`lifelongrec.data.read_table`). Columns recognised
    from the header under other names than the fields' are reported on stderr.
    """
    from lifelongrec import data as D

    mapping = parse_columns(columns) if isinstance(columns, str) else columns
    if timestamp_unit is not None and timestamp_unit not in TIMESTAMP_UNITS:
        raise ParameterError("--timestamp-unit", timestamp_unit, f"one of {TIMESTAMP_UNITS}")
    if source == SYNTHETIC:
        for option, value in (("--columns", mapping), ("--timestamp-unit", timestamp_unit)):
            if value:
                raise ParameterError(
                    option, value, "left out for the synthetic world (its columns are fixed)"
                )
        return D.synthetic(n_events=synthetic_events, seed=seed)
    try:
        dataset = D.load(Path(source), columns=mapping, timestamp_unit=timestamp_unit)
    except ParameterError as exc:
        if exc.name in ("columns", "timestamp_unit"):
            option = "--" + exc.name.replace("_", "-")
            raise ParameterError(option, exc.value, exc.expected) from None
        raise
    note = columns_note(dataset)
    if note:
        typer.echo(note, err=True)
    return dataset


def columns_note(dataset) -> str:
    """``"columns recognised in the header: user_id <- userId, ..."``, or ``""`` when
    no column was recognised under another name than its field's."""
    used = dataset.meta.get("columns") or {}
    found = [f for f in dataset.meta.get("columns_recognised") or () if used.get(f) != f]
    if not found:
        return ""
    pairs = ", ".join(f"{f} <- {used[f]}" for f in dataset.meta["columns_recognised"])
    return f"columns recognised in the header: {pairs} (--columns ROLE=COLUMN to choose others)"


def service_data(
    data: str | None, *, columns: str | None = None, timestamp_unit: str | None = None
):
    """What ``serve`` hands the service as its first data: ``data`` itself (a path, the
    word ``synthetic`` or ``None``) unless ``--columns``/``--timestamp-unit`` are given,
    then the :class:`~lifelongrec.data.Dataset` read with them."""
    if data is None or (parse_columns(columns) is None and timestamp_unit is None):
        if data is None and (columns or timestamp_unit):
            raise ParameterError(
                "--columns" if columns else "--timestamp-unit",
                columns or timestamp_unit,
                "used with --data (it only applies to the data of a first start)",
            )
        return data
    return load_data(data, columns=columns, timestamp_unit=timestamp_unit)


def prepare(dataset, *, dedupe: bool = True, min_rating: float | None = None):
    """The evaluation preprocessing: stable time order, one event per (user, item) pair
    (the first: the task is to predict items new to the user), optional rating threshold.
    Every step's removed rows are recorded in ``dataset.report``."""
    from lifelongrec import data as D

    ds = D.sort_by_time(dataset)
    if min_rating is not None:
        ds = D.implicit_feedback(ds, threshold=min_rating)
    if dedupe:
        ds = D.deduplicate(ds, subset=("user_id", "item_id"), keep="first")
    return ds


def make_split(dataset, protocol: str):
    from lifelongrec import data as D

    if protocol == "loo":
        return D.leave_one_out(dataset)
    if protocol == "temporal":
        return D.temporal_split(dataset, test_fraction=0.2)
    raise ParameterError("--protocol", protocol, "'loo' or 'temporal'")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _run_command(
    run: Any, *args: Any, as_json: bool, param: list[str] | None, **kwargs: Any
) -> dict[str, Any]:
    """``run(*args, params=..., progress=..., **kwargs)`` with the ``--param`` pairs parsed:
    a user error exits 2 with its message; with ``as_json`` the result is printed as JSON
    (a progress bar only without it, on a terminal)."""
    try:
        params = _parse_params(param)
        result = run(*args, params=params, progress=not as_json and sys.stderr.isatty(), **kwargs)
    except (LifelongrecError, FileNotFoundError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    return result


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Plain aligned text table; floats with 4 decimals."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)
    ]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    out = [line, sep]
    for b in body:
        out.append(
            "  ".join(
                v.rjust(w) if i else v.ljust(w)
                for i, (v, w) in enumerate(zip(b, widths, strict=True))
            )
        )
    return "\n".join(out)


def metric_columns(k: int) -> list[str]:
    return [
        f"{m}@{k}" for m in ("precision", "recall", "f1", "hr", "ndcg", "mrr", "map", "coverage")
    ]


# ------------------------------------------------------------------- commands
@data_app.command("info")
def data_info(
    path: Annotated[str, typer.Argument(help="A data file or folder, or 'synthetic'.")],
    as_json: JsonOpt = False,
    synthetic_events: SyntheticEventsOpt = 100_000,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
) -> None:
    """Counts, time span, density and event types of a dataset."""
    from lifelongrec.data import describe

    try:
        dataset = load_data(
            path,
            synthetic_events=synthetic_events,
            columns=columns,
            timestamp_unit=timestamp_unit,
        )
        info = describe(dataset)
    except (LifelongrecError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    if dataset.meta.get("columns"):  # which file column fed which field
        info["columns"] = dict(dataset.meta["columns"])
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    for key, value in info.items():
        if isinstance(value, (dict, list)):
            typer.echo(f"{key}:")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k2, v2 in items:
                typer.echo(f"  {k2}: {v2}")
        else:
            typer.echo(f"{key}: {value}")


def run_evaluation(
    data: str,
    model: str,
    protocol: str,
    k: int,
    *,
    params: dict[str, Any] | None = None,
    synthetic_events: int = 100_000,
    seed: int = 0,
    dedupe: bool = True,
    min_rating: float | None = None,
    negatives: int | None = None,
    auc: bool = False,
    progress: bool = True,
    dataset=None,
    split=None,
    columns: str | dict[str, str] | None = None,
    timestamp_unit: str | None = None,
) -> dict[str, Any]:
    """Load, prepare, split, fit and evaluate one model; the dict ``evaluate --json`` prints."""
    from lifelongrec.evaluation import evaluate_model
    from lifelongrec.models import get_model

    recommender = get_model(model, **(params or {}))
    if split is None:
        dataset = prepare(
            load_data(
                data,
                synthetic_events=synthetic_events,
                seed=seed,
                columns=columns,
                timestamp_unit=timestamp_unit,
            ),
            dedupe=dedupe,
            min_rating=min_rating,
        )
        split = make_split(dataset, protocol)
    result = evaluate_model(
        recommender,
        split,
        k=k,
        sampled_negatives=negatives,
        seed=seed,
        compute_auc=auc,
        progress=progress,
    )
    out = {
        "model": model,
        "params": recommender.get_params(),
        "data": data,
        "protocol": protocol,
        "k": k,
    }
    out.update(result)
    # What the model learned along the way (the sequential model's per-epoch record and
    # its heads' validation metrics), when it keeps one.
    for attr in ("history_", "head_metrics_"):
        value = getattr(recommender, attr, None)
        if value:
            out[attr.rstrip("_")] = value
    out["n_events"] = len(dataset) if dataset is not None else None
    out["preprocessing"] = dataset.report.entries if dataset is not None else []
    return out


@app.command()
def evaluate(
    data: DataOpt = SYNTHETIC,
    model: ModelOpt = "ease",
    protocol: Annotated[
        str, typer.Option(help="loo (leave-one-out) or temporal (global 80/20 by time).")
    ] = "loo",
    k: KOpt = 10,
    as_json: JsonOpt = False,
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    synthetic_events: SyntheticEventsOpt = 100_000,
    dedupe: DedupeOpt = True,
    min_rating: MinRatingOpt = None,
    negatives: Annotated[
        int | None,
        typer.Option(help="Also report sampled metrics with N negatives (labelled sampledN_)."),
    ] = None,
    auc: Annotated[
        bool, typer.Option("--auc", help="Also compute AUC over the full catalogue.")
    ] = False,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
) -> None:
    """Fit a model on a split and report full-ranking metrics (and timings)."""
    result = _run_command(
        run_evaluation,
        data,
        model,
        protocol,
        k,
        as_json=as_json,
        param=param,
        synthetic_events=synthetic_events,
        seed=seed,
        dedupe=dedupe,
        min_rating=min_rating,
        negatives=negatives,
        auc=auc,
        columns=columns,
        timestamp_unit=timestamp_unit,
    )
    if as_json:
        return
    cols = ["model", *metric_columns(k), "fit_seconds", "recommend_seconds"]
    extra = [c for c in result if c.startswith("sampled") or c == "auc"]
    typer.echo(
        f"data={data} protocol={protocol} ranking={result.get('ranking')} users={result.get('n_users_evaluated')}"
    )
    typer.echo(format_table([result], cols + extra))


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Folder to save the fitted model in.")],
    data: DataOpt = SYNTHETIC,
    model: ModelOpt = "ease",
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    synthetic_events: SyntheticEventsOpt = 100_000,
    dedupe: DedupeOpt = True,
    min_rating: MinRatingOpt = None,
    as_json: JsonOpt = False,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
) -> None:
    """Fit a model on all of a dataset and save it; `Recommender.load(OUT)` reads it back."""
    import time

    from lifelongrec.models import get_model

    try:
        recommender = get_model(model, **_parse_params(param))
        dataset = prepare(
            load_data(
                data,
                synthetic_events=synthetic_events,
                seed=seed,
                columns=columns,
                timestamp_unit=timestamp_unit,
            ),
            dedupe=dedupe,
            min_rating=min_rating,
        )
        t0 = time.perf_counter()
        recommender.fit(dataset)
        fit_seconds = time.perf_counter() - t0
        path = recommender.save(out)
    except (LifelongrecError, FileNotFoundError) as exc:
        _fail(exc)
    summary: dict[str, Any] = {
        "model": model,
        "params": recommender.get_params(),
        "data": data,
        "n_events": len(dataset),
        "n_users": recommender.n_users,
        "n_items": recommender.n_items,
        "fit_seconds": fit_seconds,
        "out": str(path),
    }
    for attr in ("head_metrics_", "history_"):
        if hasattr(recommender, attr):
            summary[attr.rstrip("_")] = getattr(recommender, attr)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        typer.echo(
            f"fitted {model} on {summary['n_events']} events ({summary['n_users']} users, "
            f"{summary['n_items']} items) in {fit_seconds:.1f} s; saved to {path}"
        )


# ---------------------------------------------------------------------- stream
STREAM_ALL = "all"
DRIFT_NONE = "none"


def _check_stream_arguments(
    data: str,
    model: str,
    strategy: str,
    windows: int,
    params: dict[str, Any],
    replay_size: int,
    plot: Path | None,
    *,
    drift: str = "adwin",
    drift_delta: float | None = None,
    shift_at: float | None = None,
    lifelong: dict[str, Any] | None = None,
) -> list[str]:
    """Validate ``stream``'s options before any data is read; the strategy names to run."""
    from lifelongrec.evaluation import DETECTORS, DriftMonitor
    from lifelongrec.models import MODELS
    from lifelongrec.training import STRATEGIES, Lifelong

    choices = [*STRATEGIES, STREAM_ALL]
    if strategy not in choices:
        raise ParameterError("--strategy", strategy, f"one of {choices}")
    if windows < 2:
        raise ParameterError(
            "--windows", windows, "an integer >= 2 (window 0 is learned, the others evaluated)"
        )
    if model not in MODELS:
        raise ParameterError("--model", model, f"one of {sorted(MODELS)}")
    cls = MODELS[model]
    unknown = sorted(set(params) - set(cls._param_names()))
    if unknown:
        raise ParameterError(
            "--param",
            unknown,
            f"hyperparameters of {model} ({', '.join(cls._param_names()) or 'none'})",
        )
    cls(**params)._validate_params()
    if replay_size < 1:
        raise ParameterError("--replay-size", replay_size, "a positive number of events")
    if plot is not None and plot.suffix.lower() != ".png":
        raise ParameterError("--plot", str(plot), "a file name ending in .png")
    if drift not in [*DETECTORS, DRIFT_NONE]:
        raise ParameterError("--drift", drift, f"one of {[*DETECTORS, DRIFT_NONE]}")
    if drift_delta is not None:
        if drift == DRIFT_NONE:
            raise ParameterError("--drift-delta", drift_delta, "unset with --drift none")
        try:
            DriftMonitor(drift, delta=drift_delta)
        except ParameterError as exc:
            raise ParameterError("--drift-delta", drift_delta, exc.expected) from None
    if shift_at is not None:
        if data != SYNTHETIC:
            raise ParameterError(
                "--shift-at",
                shift_at,
                f"unset with --data {data}: only the synthetic world (--data synthetic) can "
                "inject an interest shift",
            )
        if not 0 < shift_at < 1:
            raise ParameterError("--shift-at", shift_at, "a fraction of the time span in (0, 1)")
    names = list(STRATEGIES) if strategy == STREAM_ALL else [strategy]
    settings = dict(lifelong or {})
    try:
        Lifelong(replay_size=replay_size, **settings)._validate()
    except ParameterError as exc:
        raise ParameterError(f"--{exc.name.replace('_', '-')}", exc.value, exc.expected) from None
    for name in ("distill_weight", "ewc_weight", "drift_replay_share"):
        value = settings.get(name)
        option = f"--{name.replace('_', '-')}"
        if value is not None and "lifelong" not in names:
            raise ParameterError(option, value, "used only with --strategy lifelong or all")
        if value is not None and name != "drift_replay_share" and name not in cls._param_names():
            raise ParameterError(
                option, value, f"unset with --model {model}, which has no {name} (sequential has)"
            )
    return names


def _stream_data(
    data: str,
    *,
    synthetic_events: int,
    seed: int,
    shift_at: float | None,
    columns: str | dict[str, str] | None = None,
    timestamp_unit: str | None = None,
):
    """``load_data``, or the synthetic world with a sudden interest shift at ``shift_at``."""
    if shift_at is None:
        return load_data(
            data,
            synthetic_events=synthetic_events,
            seed=seed,
            columns=columns,
            timestamp_unit=timestamp_unit,
        )
    from lifelongrec import data as D

    for option, value in (("--columns", columns), ("--timestamp-unit", timestamp_unit)):
        if value:
            raise ParameterError(
                option, value, "left out for the synthetic world (its columns are fixed)"
            )
    return D.synthetic(n_events=synthetic_events, seed=seed, shift_at=shift_at)


def run_stream(
    data: str,
    model: str,
    strategy: str,
    windows: int,
    k: int,
    *,
    params: dict[str, Any] | None = None,
    replay_size: int = 10_000,
    replay_share: float = 0.25,
    distill_weight: float | None = None,
    ewc_weight: float | None = None,
    drift: str = "adwin",
    drift_delta: float | None = None,
    drift_epochs_factor: float = 2.0,
    drift_replay_share: float | None = None,
    shift_at: float | None = None,
    plot: Path | None = None,
    synthetic_events: int = 100_000,
    seed: int = 0,
    dedupe: bool = True,
    min_rating: float | None = None,
    progress: bool = True,
    columns: str | dict[str, str] | None = None,
    timestamp_unit: str | None = None,
) -> dict[str, Any]:
    """Load, prepare and run the prequential protocol; the dict ``stream --json`` prints.

    One strategy gives its :func:`~lifelongrec.evaluation.prequential` result (plus
    ``data`` and ``preprocessing``); ``"all"`` gives ``{"data", "model", "params", "k",
    "n_windows", "strategies": {name: result}, ...}``, every strategy on the same windows.
    ``drift`` (``"adwin"``, ``"page-hinkley"`` or ``"none"``) watches each run's hit
    stream (a fresh detector per strategy); the lifelong settings go to
    :class:`~lifelongrec.training.Lifelong`.
    """
    from lifelongrec.evaluation import DriftMonitor, plot_prequential, prequential
    from lifelongrec.models import get_model
    from lifelongrec.training import get_strategy

    params = params or {}
    lifelong = {
        "replay_share": replay_share,
        "distill_weight": distill_weight,
        "ewc_weight": ewc_weight,
        "drift_epochs_factor": drift_epochs_factor,
        "drift_replay_share": drift_replay_share,
    }
    names = _check_stream_arguments(
        data,
        model,
        strategy,
        windows,
        params,
        replay_size,
        plot,
        drift=drift,
        drift_delta=drift_delta,
        shift_at=shift_at,
        lifelong=lifelong,
    )
    dataset = prepare(
        _stream_data(
            data,
            synthetic_events=synthetic_events,
            seed=seed,
            shift_at=shift_at,
            columns=columns,
            timestamp_unit=timestamp_unit,
        ),
        dedupe=dedupe,
        min_rating=min_rating,
    )
    monitor = None if drift == DRIFT_NONE else DriftMonitor(drift, delta=drift_delta)
    runs: dict[str, dict[str, Any]] = {}
    for name in names:
        settings = {"replay_size": replay_size, **lifelong} if name == "lifelong" else {}
        runs[name] = prequential(
            get_model(model, **params),
            dataset,
            get_strategy(name, seed=seed, **settings),
            n_windows=windows,
            k=k,
            seed=seed,
            progress=progress,
            drift=monitor,
        )
    common = {"data": data, "preprocessing": dataset.report.entries}
    if shift_at is not None:
        common["shift_at"] = shift_at
    if strategy == STREAM_ALL:
        first = runs[names[0]]
        out = {
            "data": data,
            "model": model,
            "params": first["params"],
            "k": k,
            "n_windows": first["n_windows"],
            "n_events": first["n_events"],
            "strategies": runs,
            **common,
        }
    else:
        out = {**runs[strategy], **common}
    if plot is not None:
        out["plot"] = str(plot_prequential(runs, plot))
    return out


def _drift_text(result: dict[str, Any], when: Any) -> list[str]:
    """Lines on the drift detections and the strategy's reactions of one result."""
    drift = result.get("drift")
    if not drift:
        return []
    found = drift["detections"]
    where = ", ".join(f"window {d['window']} at {when(d['timestamp'])}" for d in found)
    lines = [
        f"drift ({drift['detector']}, {drift['params']['signal']}): "
        f"{len(found)} detection{'' if len(found) == 1 else 's'}" + (f": {where}" if found else "")
    ]
    if drift["true_shift_timestamp"] is not None:
        first = drift["first_detection_after_shift"]
        lag = (
            "not detected after it"
            if first is None
            else f"first detected {first['delay_events']} events "
            f"({first['delay_seconds'] / 86400:.1f} days) later"
        )
        lines.append(f"true shift at {when(drift['true_shift_timestamp'])}: {lag}")
    for r in drift["reactions"]:
        epochs = r["partial_fit_epochs"]
        heavier = f", partial_fit_epochs {epochs[0]} -> {epochs[1]}" if epochs else ""
        lines.append(
            f"reaction in the update of window {r['window']}: replay share "
            f"{r['replay_share']:.2f} ({r['n_replayed']} events){heavier}"
        )
    return lines


def _stream_text(result: dict[str, Any], k: int, dates: bool) -> str:
    """A readable table of one prequential result, then its summary lines."""
    from datetime import UTC, datetime

    def when(t: int) -> str:
        return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d") if dates else str(t)

    recall, ndcg = f"recall@{k}", f"ndcg@{k}"
    rows = [
        {
            **r,
            "start": when(r["start"]),
            "end": when(r["end"]),
            "update_s": r["update_seconds"],
            "update_cpu_s": r["update_cpu_seconds"],
            "drift": "yes" if r.get("drift_detected") else "",
        }
        for r in result["windows"]
    ]
    cols = ["window", "start", "end", "n_events", "n_users", recall, ndcg]
    cols += [f"{ndcg}_after_update", f"{ndcg}_final", "n_unknown_items", "update_s"]
    cols += ["update_cpu_s"] + (["drift"] if result.get("drift") else [])
    mean, bwt = result["mean"], result["bwt"]

    def num(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    windows = bwt["windows"]
    span = f"windows {windows[0]}-{windows[-1]}" if windows else "no windows"
    lines = [
        f"strategy={result['strategy']} model={result['model']} windows={result['n_windows']} "
        f"events={result['n_events']} K={k}",
        format_table(rows, cols),
        f"mean over windows 1-{result['n_windows'] - 1}: {recall}={num(mean[recall])} "
        f"{ndcg}={num(mean[ndcg])}; total update seconds "
        f"{result['total_update_seconds']:.2f} ({result['total_update_seconds_after_first']:.2f}"
        f" after the first fit; CPU {result['total_update_cpu_seconds']:.2f})",
        f"backward transfer ({span}): {recall}={num(bwt[recall])} {ndcg}={num(bwt[ndcg])}",
        *_drift_text(result, when),
    ]
    return "\n".join(lines)


@app.command()
def stream(
    data: DataOpt = SYNTHETIC,
    model: ModelOpt = "itemknn",
    strategy: Annotated[
        str,
        typer.Option(
            help="static, retrain, finetune, lifelong, or all (each on the same windows)."
        ),
    ] = "finetune",
    windows: Annotated[
        int, typer.Option(help="Time windows (>= 2): learn window 0, then test-then-learn each.")
    ] = 10,
    k: KOpt = 10,
    as_json: JsonOpt = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write a PNG: NDCG@K per window (drift detections and the true shift as "
            "vertical lines) and cumulative update seconds."
        ),
    ] = None,
    param: ParamOpt = None,
    replay_size: Annotated[
        int, typer.Option(help="Events in the lifelong strategy's replay buffer.")
    ] = 10_000,
    replay_share: Annotated[
        float, typer.Option(help="Lifelong: share of each update's events replayed, [0, 1).")
    ] = 0.25,
    distill_weight: Annotated[
        float | None,
        typer.Option(
            help="Lifelong: set the model's distill_weight (sequential); default: the model's own."
        ),
    ] = None,
    ewc_weight: Annotated[
        float | None,
        typer.Option(
            help="Lifelong: set the model's ewc_weight (sequential); default: the model's own."
        ),
    ] = None,
    drift: Annotated[
        str,
        typer.Option(
            help="Drift detector on the per-event hits: adwin, page-hinkley or none. Lifelong "
            "reacts to a detection with a heavier next update."
        ),
    ] = "adwin",
    drift_delta: Annotated[
        float | None,
        typer.Option(
            help="The detector's delta (default: river's, adwin 0.002, page-hinkley 0.005)."
        ),
    ] = None,
    drift_epochs_factor: Annotated[
        float,
        typer.Option(
            help="Lifelong, after a drift: partial_fit_epochs times this for the "
            "next update (>= 1)."
        ),
    ] = 2.0,
    drift_replay_share: Annotated[
        float | None,
        typer.Option(
            help="Lifelong, after a drift: the next update's replay share "
            "(default: half of --replay-share)."
        ),
    ] = None,
    shift_at: Annotated[
        float | None,
        typer.Option(
            help="Synthetic data only: a sudden interest shift at this fraction "
            "of the time span, in (0, 1)."
        ),
    ] = None,
    seed: SeedOpt = 0,
    synthetic_events: SyntheticEventsOpt = 100_000,
    dedupe: DedupeOpt = True,
    min_rating: MinRatingOpt = None,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
) -> None:
    """Prequential evaluation: learn window 0, then for each later window rank every event
    from the past only, then learn the window; forgetting as backward transfer; drift
    detection on the hit stream (ADWIN by default)."""
    result = _run_command(
        run_stream,
        data,
        model,
        strategy,
        windows,
        k,
        as_json=as_json,
        param=param,
        replay_size=replay_size,
        replay_share=replay_share,
        distill_weight=distill_weight,
        ewc_weight=ewc_weight,
        drift=drift,
        drift_delta=drift_delta,
        drift_epochs_factor=drift_epochs_factor,
        drift_replay_share=drift_replay_share,
        shift_at=shift_at,
        plot=plot,
        synthetic_events=synthetic_events,
        seed=seed,
        dedupe=dedupe,
        min_rating=min_rating,
        columns=columns,
        timestamp_unit=timestamp_unit,
    )
    if as_json:
        return
    runs = result.get("strategies") or {result["strategy"]: result}
    dates = data == SYNTHETIC or min(r["windows"][0]["start"] for r in runs.values()) > 10**8
    typer.echo(f"data={data} full ranking, next item, only the past visible")
    for run in runs.values():
        typer.echo("")
        typer.echo(_stream_text(run, k, dates))
    if len(runs) > 1:
        summary = [
            {
                "strategy": name,
                f"recall@{k}": r["mean"][f"recall@{k}"],
                f"ndcg@{k}": r["mean"][f"ndcg@{k}"],
                f"bwt_ndcg@{k}": r["bwt"][f"ndcg@{k}"],
                "update_seconds": r["total_update_seconds"],
                "after_first_s": r["total_update_seconds_after_first"],
                "update_cpu_s": r["total_update_cpu_seconds"],
                **({"drifts": r["drift"]["n_detections"]} if r.get("drift") else {}),
            }
            for name, r in runs.items()
        ]
        typer.echo("")
        typer.echo(format_table(summary, list(summary[0])))
    if "plot" in result:
        typer.echo(f"plot: {result['plot']}")


@app.command()
def demo(
    data: DataOpt = SYNTHETIC,
    k: KOpt = 10,
    protocol: Annotated[str, typer.Option()] = "loo",
    synthetic_events: SyntheticEventsOpt = 100_000,
    seed: SeedOpt = 0,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Restrict to these models.")
    ] = None,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
) -> None:
    """The main job: evaluate every recommender on one dataset and print the comparison."""
    from lifelongrec.data import describe
    from lifelongrec.models import MODELS

    names = model or list(MODELS)
    try:
        dataset = prepare(
            load_data(
                data,
                synthetic_events=synthetic_events,
                seed=seed,
                columns=columns,
                timestamp_unit=timestamp_unit,
            )
        )
        split = make_split(dataset, protocol)
    except (LifelongrecError, FileNotFoundError) as exc:
        _fail(exc)
    info = describe(dataset)
    typer.echo(
        f"data: {data} ({info['n_events']} events, {info['n_users']} users, {info['n_items']} items); "
        f"protocol: {protocol}; full ranking, K={k}"
    )
    rows = []
    for name in names:
        typer.echo(f"  fitting {name} ...", err=True)
        try:
            res = run_evaluation(
                data, name, protocol, k, seed=seed, dataset=dataset, split=split, progress=False
            )
        except LifelongrecError as exc:
            rows.append({"model": name, "note": f"n/a: {exc}"})
            continue
        rows.append(res)
    cols = ["model", *metric_columns(k), "fit_seconds", "recommend_seconds"]
    typer.echo(format_table(rows, cols))
    for r in rows:
        if "note" in r:
            typer.echo(f"{r['model']}: {r['note']}")


# ---------------------------------------------------------------------- models
models_app = typer.Typer(
    help="Model names and defaults (no subcommand); the model registry: list, show, "
    "promote, rollback, verify."
)
app.add_typer(models_app, name="models")

RegistryOpt = Annotated[
    Path,
    typer.Option(
        "--registry",
        envvar="LIFELONGREC_REGISTRY",
        help="The model registry folder (or $LIFELONGREC_REGISTRY).",
    ),
]
VersionArg = Annotated[str, typer.Argument(help="A version id (v000003) or its number (3).")]
ReasonOpt = Annotated[str, typer.Option(help="Why, recorded in the registry's history.")]


def _open_registry(root: Path):
    """An existing registry (never creates one from the command line)."""
    from lifelongrec.registry import ModelRegistry

    return ModelRegistry(root, create=False)


def _registry_call(run: Any) -> Any:
    """``run()``; a user error (unknown version, no champion, corruption) exits 2."""
    try:
        return run()
    except (LifelongrecError, FileNotFoundError) as exc:
        _fail(exc)


def _window_text(window: dict[str, Any] | None) -> str:
    if not window:
        return ""
    if "label" in window:
        return str(window["label"])
    return f"{window['start']}-{window['end']}"


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context) -> None:
    """List the available models and their default hyperparameters (no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    from lifelongrec.models import MODELS

    for name, cls in MODELS.items():
        typer.echo(f"{name:12s} {cls().get_params()}")


@models_app.command("list")
def models_list(registry: RegistryOpt, as_json: JsonOpt = False) -> None:
    """Every version in a registry, oldest first, with status, parent, window and figures."""
    infos = _registry_call(lambda: _open_registry(registry).versions())
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    if not infos:
        typer.echo(f"{registry}: no versions")
        return
    figures = sorted(
        {
            key
            for i in infos
            for key, value in i.metrics.items()
            if not key.startswith("champion_") and isinstance(value, (int, float))
        }
    )
    rows = [
        {
            "version": i.version,
            "status": i.status,
            "model": i.model,
            "parent": i.parent or "",
            "created": i.created_at[:19],
            "window": _window_text(i.window),
            **{key: i.metrics.get(key) for key in figures},
        }
        for i in infos
    ]
    typer.echo(format_table(rows, list(rows[0])))


@models_app.command("show")
def models_show(version: VersionArg, registry: RegistryOpt, as_json: JsonOpt = False) -> None:
    """Everything the registry knows about one version, and its lineage."""

    def run() -> dict[str, Any]:
        reg = _open_registry(registry)
        return {**reg.info(version).to_dict(), "lineage": reg.lineage(version)}

    out = _registry_call(run)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        if key == "files":
            value = f"{len(value)} files, {sum(f['bytes'] for f in value.values())} bytes"
        elif key == "lineage":
            value = " <- ".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        typer.echo(f"{key}: {'' if value is None else value}")


@models_app.command("promote")
def models_promote(
    version: VersionArg, registry: RegistryOpt, reason: ReasonOpt = "", as_json: JsonOpt = False
) -> None:
    """Make a version the champion (its files are verified first)."""

    def run() -> tuple[str | None, Any]:
        reg = _open_registry(registry)
        before = reg.champion()
        return before, reg.promote(version, reason=reason or "promoted from the command line")

    before, info = _registry_call(run)
    if as_json:
        typer.echo(json.dumps({**info.to_dict(), "previous": before}, indent=2))
    elif before == info.version:
        typer.echo(f"{info.version} is already the champion")
    else:
        typer.echo(f"{info.version} is now the champion (was {before or 'none'})")


@models_app.command("rollback")
def models_rollback(
    registry: RegistryOpt,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Version to restore (default: the champion before this one)."),
    ] = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Restore an earlier champion: the previous one, or any version with --to."""

    def run() -> tuple[str | None, Any]:
        reg = _open_registry(registry)
        before = reg.champion()
        return before, reg.rollback(to, reason=reason or "rolled back from the command line")

    before, info = _registry_call(run)
    if as_json:
        typer.echo(json.dumps({**info.to_dict(), "previous": before}, indent=2))
    else:
        typer.echo(f"rolled back: {info.version} is the champion again (was {before})")


@models_app.command("verify")
def models_verify(version: VersionArg, registry: RegistryOpt) -> None:
    """Check a version's files against the SHA-256 sums in its manifest (exit 2 if not)."""

    def run() -> str:
        reg = _open_registry(registry)
        reg.verify(version)
        return reg.info(version).version

    typer.echo(f"{_registry_call(run)}: files match the manifest")


# ---------------------------------------------------------------------- serve
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve_banner(host: str, port: int, keys: Any, version: str) -> str:
    """What ``serve`` prints once it is ready: where to point a browser or curl."""
    where = f"[{host}]" if ":" in host else host
    base = f"http://{where}:{port}"
    lines = [
        f"lifelongrec is serving model {version} on {base}",
        f"  API docs in a browser: {base}/docs",
    ]
    header = ""
    if keys.is_open:
        lines.append("  open access (--open): no API key needed")
    else:
        lines.append(f"  API keys from {keys.source}")
        if keys.created:
            for k in keys.keys():
                lines.append(f"    {k['name'] or 'key'} ({', '.join(k['scopes'])}): {k['key']}")
        write = next((k for k in keys.keys() if "write" in k["scopes"]), None)
        if write is not None and keys.created:
            header = f"-H 'X-API-Key: {write['key']}' "
        else:
            header = "-H 'X-API-Key: YOUR_KEY' "
    lines.append(f"  try: curl {header}{base}/users/u00001/recommendations?k=5")
    return "\n".join(lines)


@app.command()
def serve(
    home: Annotated[Path, typer.Option("--home", help="The service's home folder.")] = Path(
        "lifelongrec-home"
    ),
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Data for the first start (a path or 'synthetic'); later starts load the "
            "champion from the home folder.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 8000,
    model: ModelOpt = "sequential",
    param: ParamOpt = None,
    synthetic_events: SyntheticEventsOpt = 20_000,
    seed: SeedOpt = 0,
    config: Annotated[
        Path | None,
        typer.Option(help="A JSON file of service settings (see ServiceConfig)."),
    ] = None,
    open_access: Annotated[
        bool,
        typer.Option("--open", help="No API keys (development on localhost only)."),
    ] = False,
    torch_threads: Annotated[
        int,
        typer.Option(min=1, help="Threads for torch and faiss (1 keeps request latency steady)."),
    ] = 1,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
    header_timeout: Annotated[
        float,
        typer.Option(
            min=0.001, help="Seconds a client has to send a request's headers (slow clients)."
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(min=0.001, help="Longest pause in a request body, in seconds."),
    ] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(min=1, help="Open connections at most (the oldest slow one makes room)."),
    ] = 4096,
) -> None:
    """Run the recommendation service: HTTP API, durable events, online learning."""
    import torch

    from lifelongrec.serving import KeyRing, RecommenderService, create_app
    from lifelongrec.serving._server import ServerLimits, run_server

    if open_access and host not in _LOOPBACK:
        _fail(
            ParameterError(
                "--open",
                host,
                "a loopback --host (127.0.0.1, localhost, ::1): open access "
                "is for development on your own machine",
            )
        )
    import faiss
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # the first index build: all cores
    threadpool_limits(torch_threads)  # BLAS of exact scoring: parallel requests instead
    settings: dict[str, Any] | None = {}
    if config is not None:
        try:
            settings = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            _fail(ParameterError("--config", str(config), f"a readable JSON file ({exc})"))
    params = _parse_params(param)
    if config is None and not params and (home / "service.json").is_file():
        settings = None  # a later start: the settings saved by the last one
    else:
        settings.setdefault("model", model)
        settings.setdefault("seed", seed)
        settings.setdefault("synthetic_events", synthetic_events)
        if params:
            settings["model_params"] = {**settings.get("model_params", {}), **params}
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("lifelongrec")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    typer.echo(f"opening {home} ...", err=True)
    try:
        limits = ServerLimits(
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
        ).validate()
        # --columns / --timestamp-unit read the data of a first start; a later start has
        # its events in the home folder already.
        first = data if (home / "service.json").is_file() else None
        if first is None:
            first = service_data(data, columns=columns, timestamp_unit=timestamp_unit)
        service = RecommenderService.open(home, data=first, config=settings, start=False)
        faiss.omp_set_num_threads(torch_threads)  # later builds leave a core to requests
        keys = KeyRing.open_access() if open_access else KeyRing.for_home(home)
    except (LifelongrecError, OSError) as exc:
        _fail(exc)
    app_ = create_app(service, keys, own_service=True)  # its lifespan runs the learner
    typer.echo(serve_banner(host, port, keys, service.live_version))
    try:
        run_server(app_, host=host, port=port, limits=limits)
    finally:
        service.close()


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
