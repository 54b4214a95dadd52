"""Hyperparameter search on recent data with Optuna (optional: ``pip install lifelongrec[tune]``).

The search judges a setting the way the promotion gate judges a model: fit on the older
part of the recent events, then rank the full catalogue for every event of the freshest
slice from its user's history before it (:func:`lifelongrec.evaluation.evaluate_window`).
Run it every so often on the latest events (for example every N updates of a
:class:`~lifelongrec.registry.ChampionChallenger`) and give the winning hyperparameters to
the next full fit; the gate still decides whether that model goes live.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_int, check_number, is_int, is_number
from lifelongrec.data import Dataset, as_dataset
from lifelongrec.evaluation import evaluate_window
from lifelongrec.models import MODELS, Recommender, get_model
from lifelongrec.registry._continuous import split_freshest
from lifelongrec.registry._gate import PromotionGate

__all__ = ["DEFAULT_SPACES", "tune"]

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
    holdout_share: float = 0.1,
    recent: int | None = None,
    seed: int = 0,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Search hyperparameters of a model on the most recent events (Optuna's TPE).

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
    holdout_share
        The freshest share of the (recent) events used to validate, in ``(0, 1)``; the
        rest is fitted (:func:`~lifelongrec.registry.split_freshest`).
    recent
        ``None`` (all of ``data``) or the number of most recent events to search on.
    seed
        Seed of the sampler: the same data and seed try the same settings.
    timeout
        ``None`` or seconds after which no new trial starts.

    Returns
    -------
    dict
        ``model``, ``metric``, ``best_params`` (every hyperparameter, the winners
        included), ``best_value``, ``default_params`` and ``default_value`` (the starting
        point; it is the best when no trial beat it), ``improved``, ``trials`` (``number``,
        ``params``, ``value``, ``seconds`` each), ``n_train``, ``n_validation``, ``seed``.

    Raises
    ------
    ImportError
        Optuna is not installed (the message says how to install it).
    ParameterError
        An unknown model or hyperparameter, a bad space, ``n_trials``, ``metric``,
        ``holdout_share``, ``recent`` or ``timeout``.
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
    older, fresh = split_freshest(data, holdout_share)  # checks data and the share
    if recent is not None and len(older) + len(fresh) > recent:
        latest = pd.concat([older, fresh], ignore_index=True).iloc[-int(recent) :]
        older, fresh = split_freshest(latest, holdout_share)
    events = pd.concat([older, fresh], ignore_index=True)
    train = as_dataset(data).with_events(older)
    defaults = template.get_params()

    def score(params: dict[str, Any]) -> float:
        fitted = cls(**{**defaults, **params}).fit(train)
        value = evaluate_window(fitted, fresh, events, k)[key]
        return float(value)

    t0 = time.perf_counter()
    default_value = score({})
    trials = [{"number": -1, "params": {}, "value": default_value, "seconds": 0.0}]
    trials[0]["seconds"] = time.perf_counter() - t0

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
        "n_train": len(older),
        "n_validation": len(fresh),
        "seed": seed,
    }
