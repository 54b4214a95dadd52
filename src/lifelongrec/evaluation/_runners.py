"""Experiment runners: what ``lifelongrec evaluate``, ``stream`` and ``demo`` run, as
functions that take the commands' arguments and return the dicts ``--json`` prints.

Each runner loads its data (a path or ``"synthetic"``, see
:func:`lifelongrec.data.load_data`), applies the evaluation preprocessing
(:func:`lifelongrec.data.prepare`) and drives a protocol of this package:
:func:`run_evaluation` the offline protocol (:func:`evaluate_model`),
:func:`compare_models` it for several models on one split, :func:`run_stream` the
prequential protocol (:func:`prequential`) for one or every update strategy.

The arguments are the command-line options' values, and the errors a runner raises
itself name the option (``--windows``), so the command line and a script report a bad
setting alike.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lifelongrec._errors import LifelongrecError, ParameterError
from lifelongrec.data import (
    SYNTHETIC,
    Dataset,
    Split,
    columns_note,
    load_data,
    make_split,
    prepare,
)
from lifelongrec.evaluation._drift import DETECTORS, DriftMonitor
from lifelongrec.evaluation._offline import evaluate_model
from lifelongrec.evaluation._plots import plot_prequential
from lifelongrec.evaluation._prequential import prequential
from lifelongrec.models import MODELS, get_model
from lifelongrec.training import STRATEGIES, Lifelong, get_strategy

__all__ = [
    "DRIFT_NONE",
    "STREAM_ALL",
    "check_stream_arguments",
    "compare_models",
    "parse_params",
    "run_evaluation",
    "run_stream",
]

#: ``run_stream(strategy=...)``: every strategy of :data:`lifelongrec.training.STRATEGIES`
#: on the same windows.
STREAM_ALL = "all"
#: ``run_stream(drift=...)``: no drift detector.
DRIFT_NONE = "none"

_JSON_WORDS = {"true": True, "false": False, "null": None}

Notify = Callable[[str], object]


def parse_params(pairs: Sequence[str] | None) -> dict[str, Any]:
    """Hyperparameters from ``KEY=VALUE`` texts, as ``--param`` takes them.

    A value is a Python literal (``32``, ``1e-3``, ``(1, 2)``, ``True``), one of the JSON
    words ``true``/``false``/``null``, or else the text itself (``similarity=cosine``).

    Raises
    ------
    ParameterError
        An entry without ``=`` or without a key.

    Examples
    --------
    >>> parse_params(["factors=32", "l2=100.0", "verbose=false", "similarity=cosine"])
    {'factors': 32, 'l2': 100.0, 'verbose': False, 'similarity': 'cosine'}
    """
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


def _load(source: str, notify: Notify | None, **options: Any) -> Dataset:
    """:func:`load_data`, telling ``notify`` which columns were recognised."""
    dataset = load_data(source, **options)
    note = columns_note(dataset)
    if note and notify is not None:
        notify(note)
    return dataset


# --------------------------------------------------------------------- offline
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
    dataset: Dataset | None = None,
    split: Split | None = None,
    columns: str | dict[str, str] | None = None,
    timestamp_unit: str | None = None,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """Load, prepare, split, fit and evaluate one model: ``lifelongrec evaluate``.

    Parameters
    ----------
    data
        A data file or folder, or ``"synthetic"`` (of ``synthetic_events`` events).
    model
        A name of :data:`lifelongrec.models.MODELS`, built with ``params``.
    protocol
        ``"loo"`` or ``"temporal"`` (:func:`lifelongrec.data.make_split`).
    k
        Cut-off of every metric.
    seed
        Seed of the synthetic world and of sampled negatives.
    dedupe, min_rating
        The preprocessing (:func:`lifelongrec.data.prepare`).
    negatives, auc, progress
        As :func:`evaluate_model` (``sampled_negatives``, ``compute_auc``, ``progress``).
    dataset, split
        A prepared dataset and its split, to evaluate several models on the same split
        (then ``data`` is only a label and nothing is loaded).
    columns, timestamp_unit
        For table files, as :func:`lifelongrec.data.load_data`.
    notify
        Called with notes on how the data was read (columns recognised under other
        names than their fields'); ``None``: no notes.

    Returns
    -------
    dict
        ``model``, ``params``, ``data``, ``protocol``, ``k``, the figures of
        :func:`evaluate_model`, the model's training record when it keeps one
        (``history``, ``head_metrics``), ``n_events`` and ``preprocessing`` (the
        preprocessing report's entries).

    Examples
    --------
    >>> out = run_evaluation("synthetic", "popularity", "loo", 5, synthetic_events=2000,
    ...                      progress=False)
    >>> out["model"], out["ranking"], 0.0 <= out["ndcg@5"] <= out["hr@5"] <= 1.0
    ('popularity', 'full', True)
    """
    recommender = get_model(model, **(params or {}))
    if split is None:
        dataset = prepare(
            _load(
                data,
                notify,
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


def compare_models(
    data: str,
    models: Sequence[str],
    protocol: str,
    k: int,
    *,
    dataset: Dataset,
    split: Split,
    seed: int = 0,
    on_model: Notify | None = None,
) -> Iterator[dict[str, Any]]:
    """Evaluate every model of ``models`` on the same ``split``: ``lifelongrec demo``.

    A generator: each model is fitted when its row is asked for, after
    ``on_model(name)`` (e.g. to say which one is being fitted). A row is
    :func:`run_evaluation`'s dict, or ``{"model": name, "note": "n/a: <why>"}`` when the
    model refuses the data (a :class:`~lifelongrec.LifelongrecError`).

    Examples
    --------
    >>> from lifelongrec.data import load_data, make_split, prepare
    >>> ds = prepare(load_data("synthetic", synthetic_events=2000))
    >>> rows = compare_models("synthetic", ["popularity", "itemknn"], "loo", 10,
    ...                       dataset=ds, split=make_split(ds, "loo"))
    >>> [r["model"] for r in rows]
    ['popularity', 'itemknn']
    """
    for name in models:
        if on_model is not None:
            on_model(name)
        try:
            yield run_evaluation(
                data, name, protocol, k, seed=seed, dataset=dataset, split=split, progress=False
            )
        except LifelongrecError as exc:
            yield {"model": name, "note": f"n/a: {exc}"}


# ---------------------------------------------------------------------- stream
def _check_model_params(model: str, params: dict[str, Any]) -> type:
    """The model class of ``model``, its hyperparameters ``params`` checked."""
    if model not in MODELS:
        raise ParameterError("--model", model, f"one of {sorted(MODELS)}")
    cls = MODELS[model]
    names = cls.param_names()
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ParameterError(
            "--param",
            unknown,
            f"hyperparameters of {model} ({', '.join(names) or 'none'})",
        )
    cls(**params).check_params()  # the model's public check, without data
    return cls


def check_stream_arguments(
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
    """Check :func:`run_stream`'s arguments before any data is read.

    ``lifelong`` holds the :class:`~lifelongrec.training.Lifelong` settings other than
    ``replay_size`` (``replay_share``, ``distill_weight``, ...). Returns the names of
    the strategies to run.

    Raises
    ------
    ParameterError
        Naming the option: ``--strategy``, ``--windows`` (>= 2), ``--model``,
        ``--param`` (an unknown hyperparameter; a bad value names the hyperparameter),
        ``--replay-size``, ``--plot`` (a .png), ``--drift``, ``--drift-delta``,
        ``--shift-at`` (synthetic data only, in (0, 1)), a lifelong setting
        (``--replay-share``, ...) or a lifelong-only setting given for another strategy
        or a model without it.

    Examples
    --------
    >>> check_stream_arguments("synthetic", "itemknn", "all", 3, {}, 100, None)
    ['static', 'retrain', 'finetune', 'lifelong']
    >>> check_stream_arguments("synthetic", "itemknn", "finetune", 1, {}, 100, None)
    Traceback (most recent call last):
    ...
    lifelongrec._errors.ParameterError: parameter '--windows' must be an integer >= 2 (window 0 is learned, the others evaluated); got 1
    """
    choices = [*STRATEGIES, STREAM_ALL]
    if strategy not in choices:
        raise ParameterError("--strategy", strategy, f"one of {choices}")
    if windows < 2:
        raise ParameterError(
            "--windows", windows, "an integer >= 2 (window 0 is learned, the others evaluated)"
        )
    cls = _check_model_params(model, params)
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
        Lifelong(replay_size=replay_size, **settings).check_params()
    except ParameterError as exc:
        raise ParameterError(f"--{exc.name.replace('_', '-')}", exc.value, exc.expected) from None
    hyperparameters = cls.param_names()
    of_the_model = ("distill_weight", "ewc_weight")  # set on the model, which must have them
    for name in (*of_the_model, "drift_replay_share", "replay_drift_power"):
        value = settings.get(name)
        option = f"--{name.replace('_', '-')}"
        if value is not None and "lifelong" not in names:
            raise ParameterError(option, value, "used only with --strategy lifelong or all")
        if value is not None and name in of_the_model and name not in hyperparameters:
            raise ParameterError(
                option, value, f"unset with --model {model}, which has no {name} (sequential has)"
            )
    return names


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
    drift_epochs_factor: float = 1.0,
    drift_replay_share: float | None = None,
    replay_drift_power: float | None = None,
    shift_at: float | None = None,
    catalogue_time: str | None = None,
    plot: Path | None = None,
    synthetic_events: int = 100_000,
    seed: int = 0,
    dedupe: bool = True,
    min_rating: float | None = None,
    progress: bool = True,
    columns: str | dict[str, str] | None = None,
    timestamp_unit: str | None = None,
    notify: Notify | None = None,
    dataset: Dataset | None = None,
) -> dict[str, Any]:
    """Load, prepare and run the prequential protocol: ``lifelongrec stream``.

    The arguments are checked first (:func:`check_stream_arguments`), before any data
    is read. ``strategy`` is one of :data:`lifelongrec.training.STRATEGIES` or
    ``"all"`` (each on the same windows, from a new model). ``drift``
    (``"adwin"``, ``"page-hinkley"`` or ``"none"``) watches each run's hit stream (a
    fresh detector per strategy, :class:`DriftMonitor` with ``drift_delta``); the
    lifelong settings (``replay_size``, ``replay_share``, ``distill_weight``,
    ``ewc_weight``, ``drift_epochs_factor``, ``drift_replay_share``,
    ``replay_drift_power``: ``None`` keeps the strategy's default) go to
    :class:`~lifelongrec.training.Lifelong`. ``shift_at`` injects a sudden interest
    shift into the synthetic world; ``catalogue_time`` admits catalogue items when they
    are published (:func:`prequential`); ``plot`` writes a PNG (:func:`plot_prequential`).
    ``notify`` is as in :func:`run_evaluation`. ``dataset`` runs on that dataset (e.g.
    a :class:`~lifelongrec.data.SyntheticWorld`'s, with its own shift) instead of
    loading ``data``, which is then only its label; it is preprocessed the same way
    (``dedupe``, ``min_rating``), and ``shift_at`` must be unset.

    Returns
    -------
    dict
        One strategy: its :func:`prequential` result plus ``data`` and
        ``preprocessing`` (and ``shift_at``); ``"all"``: ``{"data", "model", "params",
        "k", "n_windows", "n_events", "strategies": {name: result}, "preprocessing",
        ...}``. With ``plot``, also ``plot`` (the file written).

    Examples
    --------
    >>> out = run_stream("synthetic", "popularity", "static", 3, 10, drift="none",
    ...                  synthetic_events=1500, progress=False)
    >>> out["strategy"], out["n_windows"], out["bwt"]["ndcg@10"]
    ('static', 3, 0.0)
    >>> from lifelongrec.data import SyntheticWorld
    >>> world = SyntheticWorld(n_events=1500, seed=4, shift_at=0.6, shift_share=0.5)
    >>> out = run_stream("half-shift", "popularity", "static", 3, 10, progress=False,
    ...                  dataset=world.generate())
    >>> out["data"], out["drift"]["true_shift_timestamp"] is not None
    ('half-shift', True)
    """
    params = params or {}
    if catalogue_time is not None and (not isinstance(catalogue_time, str) or not catalogue_time):
        raise ParameterError(
            "catalogue_time", catalogue_time, "None or the name of an item column or attribute"
        )
    if dataset is not None and shift_at is not None:
        raise ParameterError(
            "shift_at", shift_at, "unset with a dataset (give the dataset its own shift)"
        )
    lifelong = {
        "replay_share": replay_share,
        "distill_weight": distill_weight,
        "ewc_weight": ewc_weight,
        "drift_epochs_factor": drift_epochs_factor,
        "drift_replay_share": drift_replay_share,
    }
    if replay_drift_power is not None:
        lifelong["replay_drift_power"] = replay_drift_power
    names = check_stream_arguments(
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
    if dataset is None:
        dataset = _load(
            data,
            notify,
            synthetic_events=synthetic_events,
            seed=seed,
            shift_at=shift_at,
            columns=columns,
            timestamp_unit=timestamp_unit,
        )
    dataset = prepare(dataset, dedupe=dedupe, min_rating=min_rating)
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
            catalogue_time=catalogue_time,
        )
    common: dict[str, Any] = {"data": data, "preprocessing": dataset.report.entries}
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
