"""Hyperparameter search with Optuna (optional: ``pip install lifelongrec[tune]``), judged
on validation events only.

Two protocols (``tune(protocol=...)``):

* ``"recent"`` judges a setting the way the promotion gate judges a model: fit on the
  older part of the recent events, then rank the full catalogue for every event of the
  freshest slice from its user's history before it
  (:func:`lifelongrec.evaluation.evaluate_window`). Run it every so often on the latest
  events (for example every N updates of a
  :class:`~lifelongrec.registry.ChampionChallenger`) and give the winning
  hyperparameters to the next full fit; the gate still decides whether that model goes
  live.
* ``"loo"`` is the validation side of leave-one-out (``lifelongrec evaluate``'s default
  protocol): each user's last event is the test event and is never used; the
  ``n_valid`` events before it are validation events; a setting is fitted on the rest
  and ranks the full catalogue for each validation event from its user's earlier events
  (train and earlier validation events, in order). Several validation events per user
  make the figure less noisy than one where users are few (ml-100k has 943). Choose on
  it, then run ``lifelongrec evaluate`` once with the winner for the test figure.
"""

from __future__ import annotations

import importlib
import json
import shlex
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from lifelongrec._errors import DataError, ParameterError
from lifelongrec._params import check_int, check_number, is_int, is_number
from lifelongrec.data import Dataset, as_dataset, leave_one_out
from lifelongrec.evaluation import evaluate_window
from lifelongrec.models import MODELS, Recommender, get_model
from lifelongrec.registry._continuous import split_freshest
from lifelongrec.registry._gate import PromotionGate

__all__ = ["DEFAULT_SPACES", "PROTOCOLS", "parse_space", "run_tune", "tune", "validation_score"]

#: ``tune(protocol=...)``: the freshest slice of recent events, or the events before each
#: user's last (leave-one-out's validation side).
PROTOCOLS = ("recent", "loo")

#: Search spaces used when ``tune`` is given none: a ``list`` is a set of choices, a
#: ``tuple`` ``(low, high)`` a range (integers or floats), ``(low, high, "log")`` a range
#: searched on a log scale.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "popularity": {"time_decay_days": [None, 1.0, 7.0, 30.0, 90.0]},
    "itemknn": {"k_neighbors": (10, 400, "log"), "shrink": (0.0, 100.0)},
    "userknn": {"k_neighbors": (10, 400, "log"), "shrink": (0.0, 100.0)},
    "ease": {"l2": (1.0, 5000.0, "log")},
    "als": {
        "factors": [16, 32, 64, 128],
        "regularization": (0.01, 10.0, "log"),
        "alpha": (0.5, 50.0, "log"),
    },
    "bpr": {
        "factors": [16, 32, 64, 128],
        "learning_rate": (0.001, 0.1, "log"),
        "regularization": (0.0001, 0.1, "log"),
    },
    # The sizes and regularisation of the sequential model that its defaults fix for
    # every dataset (None: the data's rule, the default); a trial of the default size
    # on ml-100k fits in about 2 minutes (2 cores).
    "sequential": {
        "dim": [32, 64, 128],
        "n_layers": [1, 2, 3],
        "dropout": (0.0, 0.5),
        "max_len": [20, 50, 100, 200],
        "n_windows": [None, 1, 2, 4, 8],
        "lr": (3e-4, 3e-3, "log"),
        "weight_decay": (1e-4, 0.3, "log"),
        "text_encoder": ["auto", None],
        "encoder": ["sasrec", "hstu"],
    },
}

_SPEC_HELP = (
    "a list of choices (None, bool, int, float or str), (low, high) with low < high, or "
    "(low, high, 'log') with 0 < low < high"
)


def _optuna() -> Any:
    try:
        return importlib.import_module("optuna")
    except ImportError:
        raise ImportError(
            "hyperparameter search needs Optuna, an optional dependency: "
            "pip install 'lifelongrec[tune]' (or pip install 'optuna>=3.6')"
        ) from None


def _check_space(space: Mapping[str, Any], cls: type[Recommender]) -> dict[str, Any]:
    if not isinstance(space, Mapping) or not space:
        raise ParameterError("space", space, "a non-empty dict {hyperparameter: range}")
    names = cls.param_names()
    out = {}
    for name, spec in space.items():
        if name not in names:
            raise ParameterError(
                "space", name, f"hyperparameters of {cls.name} ({', '.join(names)})"
            )
        ok = False
        if isinstance(spec, list):
            ok = bool(spec) and all(
                c is None or isinstance(c, (bool, int, float, str)) for c in spec
            )
        elif isinstance(spec, tuple) and len(spec) in (2, 3):
            low, high = spec[0], spec[1]
            log = len(spec) == 3
            ok = (
                is_number(low)
                and is_number(high)
                and low < high
                and (not log or (spec[2] == "log" and low > 0))
            )
        if not ok:
            raise ParameterError(f"space[{name!r}]", spec, _SPEC_HELP)
        out[name] = spec
    return out


def _suggest(trial: Any, name: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    low, high = spec[0], spec[1]
    log = len(spec) == 3
    if is_int(low) and is_int(high):
        return trial.suggest_int(name, int(low), int(high), log=log)
    return trial.suggest_float(name, float(low), float(high), log=log)


def tune(
    model: str | Recommender,
    data: Dataset | pd.DataFrame,
    space: Mapping[str, Any] | None = None,
    *,
    n_trials: int = 20,
    metric: str = "ndcg@10",
    protocol: str = "recent",
    holdout_share: float = 0.1,
    recent: int | None = None,
    n_valid: int = 3,
    seed: int = 0,
    timeout: float | None = None,
    on_trial: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, Any]:
    """Search hyperparameters of a model on validation events (Optuna's TPE).

    Parameters
    ----------
    model
        A model name (see :data:`lifelongrec.models.MODELS`) or a Recommender whose
        hyperparameters are the starting point (it is never fitted).
    data
        Events (a Dataset keeps its catalogue for content models), in any order.
    space
        ``{hyperparameter: spec}``: a ``list`` of choices, a ``(low, high)`` range of
        integers or floats, or ``(low, high, "log")``. Default: :data:`DEFAULT_SPACES`
        for the model (there is none for ``content``, ``hybrid`` and ``sequential``:
        name what to search).
    n_trials
        Settings tried (positive int), besides the starting point, which is always
        evaluated first.
    metric
        What to maximise, as in :class:`PromotionGate` (``"ndcg@10"``, ``"recall@20"``).
    protocol
        ``"recent"`` (default): validate on the freshest events; ``"loo"``: on the
        ``n_valid`` events before each user's last, which is left out (see the module
        docstring).
    holdout_share
        ``"recent"``: the freshest share of the (recent) events used to validate, in
        ``(0, 1)``; the rest is fitted (:func:`~lifelongrec.registry.split_freshest`).
    recent
        ``"recent"``: ``None`` (all of ``data``) or the number of most recent events to
        search on.
    n_valid
        ``"loo"``: validation events per user (:func:`lifelongrec.data.leave_one_out`).
    seed
        Seed of the sampler: the same data and seed try the same settings.
    timeout
        ``None`` or seconds after which no new trial starts.
    on_trial
        Called with each trial's record (as in ``trials`` below) as it ends, the
        starting point's first (e.g. to show progress).

    Returns
    -------
    dict
        ``model``, ``metric``, ``best_params`` (every hyperparameter, the winners
        included), ``best_value``, ``default_params`` and ``default_value`` (the starting
        point; it is the best when no trial beat it), ``improved``, ``trials`` (``number``,
        ``params``, ``value``, ``seconds`` each), ``protocol``, ``n_valid``
        (``"loo"``; else ``None``), ``n_train``, ``n_validation``, ``n_left_out``
        (``"loo"``'s test events, never used), ``seed``.

    Raises
    ------
    ImportError
        Optuna is not installed (the message says how to install it).
    ParameterError
        An unknown model or hyperparameter, a bad space, ``n_trials``, ``metric``,
        ``protocol``, ``holdout_share``, ``recent``, ``n_valid`` or ``timeout``.
    DataError
        Fewer than 2 events, or not an events frame.
    """
    optuna = _optuna()
    if isinstance(model, str):
        template = get_model(model)
    elif isinstance(model, Recommender):
        template = model
    else:
        raise ParameterError("model", type(model).__name__, f"a name in {sorted(MODELS)}")
    cls = type(template)
    if space is None:
        if cls.name not in DEFAULT_SPACES:
            raise ParameterError(
                "space",
                None,
                f"a search space for {cls.name} (defaults exist for {sorted(DEFAULT_SPACES)})",
            )
        space = DEFAULT_SPACES[cls.name]
    space = _check_space(space, cls)
    check_int("n_trials", n_trials, 1)
    name, k = PromotionGate(metric).validate()
    key = f"{'recall' if name == 'hr' else name}@{k}"
    check_int("recent", recent, 2, none=True)  # events
    check_number("timeout", timeout, 0, low_open=True, none=True)  # seconds
    check_int("seed", seed, 0)
    if protocol not in PROTOCOLS:
        raise ParameterError("protocol", protocol, f"one of {list(PROTOCOLS)}")
    left_out = 0
    if protocol == "loo":
        check_int("n_valid", n_valid, 1)
        split = leave_one_out(_events_of(data), n_valid)
        train, fresh, left_out = split.train, split.valid.events, len(split.test)
        if len(fresh) == 0:
            raise DataError(
                "no validation events: every user has fewer than 3 events",
                expected="some users with 3 or more events (last: test, then validation)",
            )
    else:
        older, fresh = split_freshest(data, holdout_share)  # checks data and the share
        if recent is not None and len(older) + len(fresh) > recent:
            latest = pd.concat([older, fresh], ignore_index=True).iloc[-int(recent) :]
            older, fresh = split_freshest(latest, holdout_share)
        train = as_dataset(data).with_events(older)
    defaults = template.get_params()

    def score(params: dict[str, Any]) -> float:
        fitted = cls(**{**defaults, **params}).fit(train)
        if protocol == "loo":
            return float(validation_score(fitted, train.events, fresh, k)[key])
        events = pd.concat([train.events, fresh], ignore_index=True)
        return float(evaluate_window(fitted, fresh, events, k)[key])

    t0 = time.perf_counter()
    default_value = score({})
    trials = [{"number": -1, "params": {}, "value": default_value, "seconds": 0.0}]
    trials[0]["seconds"] = time.perf_counter() - t0
    if on_trial is not None:
        on_trial(trials[0])

    def objective(trial: Any) -> float:
        t = time.perf_counter()
        params = {p: _suggest(trial, p, spec) for p, spec in space.items()}
        value = score(params)
        trials.append(
            {
                "number": trial.number,
                "params": params,
                "value": value,
                "seconds": time.perf_counter() - t,
            }
        )
        if on_trial is not None:
            on_trial(trials[-1])
        return value

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=int(seed))
        )
        study.optimize(objective, n_trials=int(n_trials), timeout=timeout)
    finally:
        optuna.logging.set_verbosity(verbosity)
    best = max(trials, key=lambda t: t["value"])  # the first of equals: defaults win ties
    return {
        "model": cls.name,
        "metric": metric,
        "best_params": {**defaults, **best["params"]},
        "best_value": best["value"],
        "default_params": defaults,
        "default_value": default_value,
        "improved": best["value"] > default_value,
        "trials": trials,
        "protocol": protocol,
        "n_valid": int(n_valid) if protocol == "loo" else None,
        "n_train": len(train),
        "n_validation": len(fresh),
        "n_left_out": left_out,
        "seed": seed,
    }


def _events_of(data: Any) -> Dataset:
    if not isinstance(data, (pd.DataFrame, Dataset)):
        raise DataError(
            "cannot tune on this object",
            value=type(data).__name__,
            expected="a pandas DataFrame of events or a lifelongrec.data.Dataset",
        )
    return as_dataset(data)


def validation_score(
    model: Recommender, train: pd.DataFrame, valid: pd.DataFrame, k: int = 10
) -> dict[str, Any]:
    """Recall@K and NDCG@K of a ``model`` fitted on ``train`` on the events ``valid``,
    each ranked (full catalogue, the user's earlier items excluded) from its user's
    ``train`` events and the ``valid`` events before it, in order.

    ``valid`` holds each user's events after all their ``train`` events (as
    :func:`lifelongrec.data.leave_one_out` cuts them): the ``r``-th event of each user
    is ranked in round ``r``, from ``train`` and rounds ``< r``. A query sees every one
    of those events, equal timestamps included (as leave-one-out's test ranking does):
    :func:`~lifelongrec.evaluation.evaluate_window` ranks a copy of the round whose
    timestamps are moved past the history's. The model's learned parameters are used,
    not what it stored about the users (:meth:`Recommender.score_histories`).

    Returns ``recall@k`` and ``ndcg@k`` (means over the events; ``None`` without
    events), ``n_events``, ``n_users``, ``n_rounds`` and ``n_unknown_items`` (events
    on items the model does not know: misses).

    >>> from lifelongrec.data import make_events
    >>> from lifelongrec.models import ItemKNN
    >>> train = make_events(["a", "a", "b", "b", "b"], ["x", "y", "x", "y", "z"], [1] * 5)
    >>> valid = make_events(["a", "a"], ["z", "w"], [1, 1])  # "w": unknown, a miss
    >>> out = validation_score(ItemKNN().fit(train), train, valid, k=1)
    >>> out["recall@1"], out["n_events"], out["n_rounds"], out["n_unknown_items"]
    (0.5, 2, 2, 1)
    """
    valid = valid.reset_index(drop=True)
    rounds = valid.groupby(valid["user_id"].astype(str), sort=False).cumcount().to_numpy()
    n = len(valid)
    n_rounds = int(rounds.max()) + 1 if n else 0
    history, unknown = train, 0
    total = {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0}
    for r in range(n_rounds):
        if r:
            history = pd.concat([history, valid[rounds == r - 1]], ignore_index=True)
        query = valid[rounds == r].copy()
        query["timestamp"] = int(history["timestamp"].max()) + 1
        out = evaluate_window(model, query, history, k)
        for name in total:
            total[name] += out[name] * out["n_events"]
        unknown += out["n_unknown_items"]
    return {
        **{name: (value / n if n else None) for name, value in total.items()},
        "n_events": n,
        "n_users": int(valid["user_id"].astype(str).nunique()),
        "n_rounds": n_rounds,
        "n_unknown_items": unknown,
    }


def parse_space(text: str | None) -> dict[str, Any] | None:
    """A search space from JSON text, as ``lifelongrec tune --space`` takes it: an object
    ``{hyperparameter: spec}`` whose spec is a list of choices or an object ``{"low":
    L, "high": H}`` (``"log": true`` to search on a log scale); ``None`` for ``None``.

    >>> parse_space('{"dim": [32, 64], "lr": {"low": 0.0003, "high": 0.003, "log": true}}')
    {'dim': [32, 64], 'lr': (0.0003, 0.003, 'log')}

    Raises
    ------
    ParameterError
        Text that is not such JSON (naming the entry that is wrong).
    """
    if text is None:
        return None
    expected = (
        "a JSON object {hyperparameter: spec}, spec a list of choices or "
        '{"low": L, "high": H, "log": true|false}, e.g. '
        '{"dim": [32, 64], "lr": {"low": 0.0003, "high": 0.003, "log": true}}'
    )
    try:
        raw = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ParameterError("--space", text, f"{expected} (not JSON: {exc})") from None
    if not isinstance(raw, dict):
        raise ParameterError("--space", text, expected)
    space: dict[str, Any] = {}
    for name, spec in raw.items():
        if isinstance(spec, list):
            space[name] = spec
        elif isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log"}:
            log = spec.get("log", False)
            if not isinstance(log, bool):
                raise ParameterError(f"--space[{name!r}].log", log, "true or false")
            low, high = spec["low"], spec["high"]
            space[name] = (low, high, "log") if log else (low, high)
        else:
            raise ParameterError(f"--space[{name!r}]", spec, expected)
    return space


def run_tune(
    data: str,
    model: str,
    *,
    params: dict[str, Any] | None = None,
    space: str | None = None,
    protocol: str = "loo",
    n_trials: int = 20,
    n_valid: int = 3,
    metric: str = "ndcg@10",
    timeout: float | None = None,
    seed: int = 0,
    synthetic_events: int = 100_000,
    dedupe: bool = True,
    min_rating: float | None = None,
    columns: str | None = None,
    timestamp_unit: str | None = None,
    progress: bool = False,
    notify: Any = None,
) -> dict[str, Any]:
    """Load and prepare ``data`` as ``lifelongrec evaluate`` does, then :func:`tune`
    ``model`` (its hyperparameters ``params`` the starting point) on validation events:
    ``lifelongrec tune``. ``space`` is JSON text (:func:`parse_space`; ``None``: the
    model's :data:`DEFAULT_SPACES` entry). Returns :func:`tune`'s dict plus ``data``,
    ``space``, ``changed`` (the winning values that differ from the starting point),
    ``seconds`` and ``evaluate`` (the command that reports the winner's test figure,
    for ``"loo"``). ``notify`` gets a line of text for each trial as it ends.
    """
    from lifelongrec.data import columns_note, load_data, prepare

    parsed = parse_space(space)
    if model not in MODELS:
        raise ParameterError("--model", model, f"one of {sorted(MODELS)}")
    template = get_model(model, **(params or {}))
    template.check_params()
    dataset = load_data(
        data,
        synthetic_events=synthetic_events,
        seed=seed,
        columns=columns,
        timestamp_unit=timestamp_unit,
    )
    note = columns_note(dataset)
    if note and notify is not None:
        notify(note)
    dataset = prepare(dataset, dedupe=dedupe, min_rating=min_rating)
    t0 = time.perf_counter()
    out = tune(
        template,
        dataset,
        parsed,
        n_trials=n_trials,
        metric=metric,
        protocol=protocol,
        n_valid=n_valid,
        seed=seed,
        timeout=timeout,
        on_trial=None if notify is None else lambda t: notify(_trial_text(t, metric)),
    )
    changed = {k: v for k, v in out["best_params"].items() if out["default_params"].get(k) != v}
    result = {"data": data, "space": _space_json(parsed or DEFAULT_SPACES[model]), **out}
    result["changed"] = changed
    result["seconds"] = time.perf_counter() - t0
    if protocol == "loo":
        fixed = {**(params or {}), **changed}
        words = ["lifelongrec", "evaluate", "--data", data, "--model", model]
        options = {
            "--seed": seed if seed != 0 else None,
            "--synthetic-events": synthetic_events if data == "synthetic" else None,
            "--min-rating": min_rating,
            "--columns": columns,
            "--timestamp-unit": timestamp_unit,
        }
        for option, value in options.items():
            words += [] if value is None else [option, str(value)]
        words += [] if dedupe else ["--no-dedupe"]
        for k, v in fixed.items():
            words += ["--param", f"{k}={_param_text(v)}"]
        result["evaluate"] = " ".join(shlex.quote(w) for w in words)
    return result


def _trial_text(trial: dict[str, Any], metric: str) -> str:
    name = "starting point" if trial["number"] < 0 else f"trial {trial['number']}"
    setting = " ".join(f"{k}={v}" for k, v in trial["params"].items())
    return f"{name}: validation {metric} {trial['value']:.4f} ({trial['seconds']:.1f} s) {setting}"


def _param_text(value: Any) -> str:
    """``value`` as ``--param KEY=VALUE`` takes it back (a bare word stays bare)."""
    from lifelongrec.evaluation import parse_params

    if value is None:
        return "null"
    if isinstance(value, str) and parse_params([f"x={value}"])["x"] == value:
        return value
    return repr(value)


def _space_json(space: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            out[name] = list(spec)
        else:
            out[name] = {"low": spec[0], "high": spec[1], "log": len(spec) == 3}
    return out
