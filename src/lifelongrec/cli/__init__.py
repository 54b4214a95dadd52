"""The ``lifelongrec`` command line: ``data``, ``evaluate``, ``train``, ``stream``,
``simulate``, ``report``, ``tune``, ``demo``, ``models`` (:mod:`._models`), ``serve``,
``learn`` (:mod:`._learn`).

Argument parsing lives in this package and only here; the library never reads ``sys.argv``. A
command parses its options, calls the library (the experiment runners of
:mod:`lifelongrec.evaluation`, the data helpers of :mod:`lifelongrec.data`, the model
registry, the service) and prints what it returns; a user error exits 2 with its
message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from lifelongrec._errors import LifelongrecError, ParameterError
from lifelongrec.cli._common import (
    SYNTHETIC,
    ColumnsOpt,
    DataOpt,
    DedupeOpt,
    JsonOpt,
    KOpt,
    MinRatingOpt,
    ModelOpt,
    ParamOpt,
    SeedOpt,
    SyntheticEventsOpt,
    TimestampUnitOpt,
    _fail,
    _load,
    _note,
    _run_command,
)
from lifelongrec.cli._common import (
    service_data as service_data,
)
from lifelongrec.cli._learn import learn
from lifelongrec.cli._models import models_app
from lifelongrec.cli._serve import serve
from lifelongrec.cli._serve import serve_banner as serve_banner

# The library is imported inside the commands: `lifelongrec --help` and the registry
# commands start without loading pandas or torch.

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="lifelongrec: recommenders that keep learning. Data, evaluation, models.",
)
data_app = typer.Typer(no_args_is_help=True, help="Inspect interaction data.")
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.command("learn")(learn)
app.command("serve")(serve)


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
        dataset = _load(
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
    from lifelongrec.evaluation import evaluation_report, run_evaluation

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
    if not as_json:
        typer.echo(evaluation_report(result, data, protocol))


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

    from lifelongrec.data import prepare
    from lifelongrec.evaluation import parse_params
    from lifelongrec.models import get_model
    from lifelongrec.nn import is_main

    try:
        recommender = get_model(model, **parse_params(param))
        dataset = prepare(
            _load(
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
        if not is_main():  # under torchrun the other processes hold the same model
            return
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
            "reacts to a detection: its next update replays less (and trains more with "
            "--drift-epochs-factor above 1)."
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
            help="Lifelong, after a drift: the next update's compute budget "
            "(partial_fit_budget; partial_fit_epochs where that is set) times this (>= 1; "
            "1: no heavier update)."
        ),
    ] = 1.0,
    drift_replay_share: Annotated[
        float | None,
        typer.Option(
            help="Lifelong, after a drift: the next update's replay share "
            "(default: half of --replay-share)."
        ),
    ] = None,
    replay_drift_power: Annotated[
        float | None,
        typer.Option(
            help="Lifelong: replay less where what follows what has changed: the share "
            "times (how much better the latest window's item-to-next-item counts predict "
            "the new window than older windows' do) ** -this, where above 1; 0: off "
            "(default: the strategy's)."
        ),
    ] = None,
    shift_at: Annotated[
        float | None,
        typer.Option(
            help="Synthetic data only: a sudden interest shift at this fraction "
            "of the time span, in (0, 1)."
        ),
    ] = None,
    catalogue_time: Annotated[
        str | None,
        typer.Option(
            help="The catalogue's publication time of each item (a column of the items "
            "or a key of their attributes, e.g. 'arrival' in the synthetic shop): items "
            "join the model when published, before their first event."
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
    from lifelongrec.evaluation import run_stream, stream_report

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
        replay_drift_power=replay_drift_power,
        shift_at=shift_at,
        catalogue_time=catalogue_time,
        plot=plot,
        synthetic_events=synthetic_events,
        seed=seed,
        dedupe=dedupe,
        min_rating=min_rating,
        columns=columns,
        timestamp_unit=timestamp_unit,
    )
    if not as_json:
        typer.echo(stream_report(result, k))


@app.command()
def simulate(
    model: ModelOpt = "sequential",
    strategies: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            help="A strategy to run (repeatable): static, lifelong, retrain, finetune. "
            "Default: static, lifelong and retrain.",
        ),
    ] = None,
    users: Annotated[int, typer.Option(help="Simulated users.")] = 2_000,
    items: Annotated[int, typer.Option(help="Items at day 0.")] = 1_000,
    days: Annotated[int, typer.Option(help="Simulated days served.")] = 30,
    shift_day: Annotated[
        int | None,
        typer.Option(help="The day the users' interests shift (0 or less: no shift)."),
    ] = 15,
    new_items_per_day: Annotated[int, typer.Option(help="Items arriving every day.")] = 10,
    k: KOpt = 10,
    world: Annotated[
        list[str] | None,
        typer.Option(
            "--world",
            help="Another setting of the simulated world KEY=VALUE (repeatable), e.g. "
            "position_bias=0.5; see lifelongrec.evaluation.SimulationSettings.",
        ),
    ] = None,
    param: ParamOpt = None,
    as_json: JsonOpt = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG: CTR, purchases, coverage and compute by day.")
    ] = None,
    seed: SeedOpt = 0,
    url: Annotated[
        str | None,
        typer.Option(
            help="Drive the running service at this address over HTTP (e.g. "
            "http://127.0.0.1:8000) instead of the in-process strategies; it should have "
            "been started on the world's history (lifelongrec.evaluation.ClosedLoopWorld).",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="With --url: a key with the read and write scopes (sent as X-API-Key).",
        ),
    ] = None,
) -> None:
    """Closed-loop simulation: users with true, drifting interests ask for
    recommendations every simulated day, react to them with position bias and fatigue,
    and their actions are the model's next data. Reports CTR, purchases, coverage,
    exposure Gini and update compute per day for each strategy, on the same users.
    With --url the users ask a running service instead (it learns and runs its
    experiments by itself): the same figures per day, and the versions that answered."""
    from lifelongrec.evaluation import parse_params, simulate, simulation_report

    try:
        settings = parse_params(world)
        settings.update(
            n_users=users,
            n_items=items,
            days=days,
            shift_day=shift_day if shift_day is not None and shift_day > 0 else None,
            new_items_per_day=new_items_per_day,
            k=k,
            seed=seed,
        )
    except LifelongrecError as exc:
        _fail(exc)
    if url is not None:
        if strategies or param or plot is not None:
            _fail(
                ParameterError(
                    "--url",
                    url,
                    "given without --strategy, --param or --plot (the service serves its own "
                    "models)",
                )
            )
        _simulate_service(url, api_key, settings, as_json=as_json)
        return
    if api_key is not None:
        _fail(ParameterError("--api-key", "a key", "given with --url (a key is for a service)"))
    result = _run_command(
        simulate,
        model,
        as_json=as_json,
        param=param,
        strategies=strategies or ["static", "lifelong", "retrain"],
        world=settings,
        plot=plot,
    )
    if not as_json:
        typer.echo(simulation_report(result))


def _simulate_service(url: str, api_key: str | None, world: dict, *, as_json: bool) -> None:
    """``lifelongrec simulate --url``: the world against a running service."""
    from lifelongrec.evaluation import SimulationSettings, drive_service, format_table

    try:
        settings = SimulationSettings(**world)
        result = drive_service(url, settings, api_key=api_key, notify=None if as_json else _note)
    except (LifelongrecError, TypeError) as exc:  # TypeError: an unknown --world setting
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    keys = ("day", "answers", "ctr", "purchases_per_user", "coverage", "exposure_gini")
    rows = [{**{k: d[k] for k in keys}, "versions": _counts(d["versions"])} for d in result["days"]]
    typer.echo(format_table(rows, [*keys, "versions"]))
    sm = result["summary"]
    typer.echo(
        f"{url}: mean CTR {sm['ctr']:.4f}, purchases/user {sm['purchases_per_user']:.3f}, "
        f"{result['requests']} requests in {result['wall_seconds']:.1f} s"
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


@app.command()
def report(
    run: Annotated[
        Path, typer.Argument(help="The JSON of `evaluate`, `stream` or `simulate` (--json).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="The HTML file to write (default: RUN with .html).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="The page's title.")] = None,
) -> None:
    """Write a self-contained HTML report (tables, embedded plots; nothing fetched from
    elsewhere) of a run's JSON."""
    from lifelongrec.evaluation import html_report

    try:
        result = json.loads(run.read_text())
        page = html_report(result, title)
    except (OSError, ValueError) as exc:
        _fail(ParameterError("RUN", str(run), f"a readable JSON file of a run ({exc})"))
    except LifelongrecError as exc:
        _fail(exc)
    target = out if out is not None else run.with_suffix(".html")
    target.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {target}")


@app.command()
def tune(
    data: DataOpt = SYNTHETIC,
    model: ModelOpt = "sequential",
    trials: Annotated[
        int, typer.Option("--trials", help="Settings tried besides the starting point.")
    ] = 20,
    protocol: Annotated[
        str,
        typer.Option(
            help="loo: validate on the events before each user's last (the test event, "
            "never used); recent: on the freshest 10 % of the events."
        ),
    ] = "loo",
    valid_events: Annotated[
        int, typer.Option("--valid-events", help="loo: validation events per user.")
    ] = 3,
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            help='Search space as JSON: {"dim": [32, 64], "lr": {"low": 0.0003, '
            '"high": 0.003, "log": true}}. Default: the model\'s own.',
        ),
    ] = None,
    metric: Annotated[str, typer.Option(help="What to maximise, e.g. ndcg@10.")] = "ndcg@10",
    timeout: Annotated[
        float | None, typer.Option(help="Seconds after which no new trial starts.")
    ] = None,
    as_json: JsonOpt = False,
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    synthetic_events: SyntheticEventsOpt = 100_000,
    dedupe: DedupeOpt = True,
    min_rating: MinRatingOpt = None,
    columns: ColumnsOpt = None,
    timestamp_unit: TimestampUnitOpt = None,
) -> None:
    """Search a model's hyperparameters on validation events (Optuna); never on test."""
    from lifelongrec.registry import run_tune

    result = _run_command(
        run_tune,
        data,
        model,
        as_json=as_json,
        param=param,
        space=space,
        protocol=protocol,
        n_trials=trials,
        n_valid=valid_events,
        metric=metric,
        timeout=timeout,
        seed=seed,
        synthetic_events=synthetic_events,
        dedupe=dedupe,
        min_rating=min_rating,
        columns=columns,
        timestamp_unit=timestamp_unit,
    )
    if not as_json:
        typer.echo(tune_report(result))


def tune_report(result: dict[str, Any]) -> str:
    """The text ``lifelongrec tune`` prints: the starting point, the winner, each trial."""
    metric = result["metric"]
    lines = [
        f"{result['model']} on {result['data']} ({result['protocol']}: "
        f"{result['n_train']} train, {result['n_validation']} validation events"
        + (f", {result['n_left_out']} test events left out" if result["n_left_out"] else "")
        + f"); {len(result['trials']) - 1} trials in {result['seconds']:.0f} s",
        f"starting point: validation {metric} {result['default_value']:.4f}",
        f"best:           validation {metric} {result['best_value']:.4f}"
        + (
            "  " + " ".join(f"{k}={v}" for k, v in result["changed"].items())
            if result["improved"]
            else "  (no trial beat the starting point)"
        ),
    ]
    for t in sorted(result["trials"][1:], key=lambda t: -t["value"])[:10]:
        setting = " ".join(f"{k}={v}" for k, v in t["params"].items())
        lines.append(f"  {t['value']:.4f}  {t['seconds']:6.1f} s  {setting}")
    if result.get("evaluate") and result["improved"]:
        lines.append(f"test figure of the best: {result['evaluate']}")
    return "\n".join(lines)


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
    from lifelongrec.data import describe, make_split, prepare
    from lifelongrec.evaluation import compare_models, comparison_report
    from lifelongrec.models import MODELS

    names = model or list(MODELS)
    try:
        dataset = prepare(
            _load(
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
    rows = compare_models(
        data,
        names,
        protocol,
        k,
        seed=seed,
        dataset=dataset,
        split=split,
        on_model=lambda name: typer.echo(f"  fitting {name} ...", err=True),
    )
    typer.echo(comparison_report(list(rows), k))


def main() -> None:  # console-script entry point (and ``python -m lifelongrec.cli``)
    import sys

    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 writes
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
    app()
